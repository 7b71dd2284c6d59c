/**
 * The sequencer's side of a store that lost data: which claims an open answers with `lost`
 * (another epoch, a version past the head, another checksum at that version), and how
 * `restore` brings lost states back — exactly once per lost state, bringing in only what a
 * later holder has beyond an earlier one, an op in flight kept once, and never deleting text of
 * the document when the fork point is unknown.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EMPTY_CHECKSUM, chainChecksum } from '../../src/protocol/checksum.js';
import { VersionSamples } from '../../src/client/version-samples.js';
import { type Component, apply } from '../../src/ot/index.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Sequencer } from '../../src/server/sequencer.js';
import type { Store } from '../../src/server/store.js';
import { within } from '../support/wait.js';

const DOC = 'doc';

const sequencers: Sequencer[] = [];
afterEach(async () => {
  for (const s of sequencers.splice(0)) await within(s.close(), 5000, 'Sequencer.close');
});

function sequencer(store: Store = new MemoryStore()): Sequencer {
  const s = new Sequencer(store, { idleTimeout: 0 });
  sequencers.push(s);
  return s;
}

/** Commits `texts` as one append each at the end of the document; returns the checksums after each. */
async function typeAll(s: Sequencer, client: string, texts: string[]): Promise<number[]> {
  const sums: number[] = [];
  let seq = 0;
  for (const t of texts) {
    const head = await s.getSnapshot(DOC);
    const op = head.text.length > 0 ? [head.text.length, t] : [t];
    const r = await s.submit({ docId: DOC, clientId: client, seq: ++seq, baseVersion: head.version, op });
    sums.push((r as { checksum: number }).checksum);
  }
  return sums;
}

describe('open with a claim', () => {
  it('a claim this document holds gets the catch-up', async () => {
    const s = sequencer();
    const sums = await typeAll(s, 'a', ['a', 'b', 'c']);
    const { epoch } = await s.open(DOC, 'x');
    const r = await s.open(DOC, 'x', 1, { epoch, checksum: sums[0] as number });
    expect(r).toMatchObject({ kind: 'ops', version: 3, checksum: sums[2] });
    expect(r.kind === 'ops' && r.ops.map((o) => o.version)).toEqual([2, 3]);
  });

  it('another epoch, a version past the head, or another checksum at the version: lost', async () => {
    const s = sequencer();
    const sums = await typeAll(s, 'a', ['a', 'b']);
    const { epoch } = await s.open(DOC, 'x');
    expect(await s.open(DOC, 'x', 1, { epoch: 'another', checksum: sums[0] as number })).toMatchObject({ kind: 'lost' });
    expect(await s.open(DOC, 'x', 3, { epoch, checksum: 1 })).toMatchObject({ kind: 'lost' });
    expect(await s.open(DOC, 'x', 2, { epoch, checksum: (sums[1] as number) + 1 })).toMatchObject({ kind: 'lost' });
    // Version 0 of this epoch is everyone's.
    expect(await s.open(DOC, 'x', 0, { epoch, checksum: EMPTY_CHECKSUM })).toMatchObject({ kind: 'ops' });
  });

  it('checks the checksum against the store when the version is no longer in memory', async () => {
    const s = new Sequencer(new MemoryStore(), { idleTimeout: 0, memoryHistory: 1 });
    sequencers.push(s);
    const sums = await typeAll(s, 'a', ['a', 'b', 'c', 'd']);
    const { epoch } = await s.open(DOC, 'x');
    expect(await s.open(DOC, 'x', 1, { epoch, checksum: sums[0] as number })).toMatchObject({ kind: 'ops', version: 4 });
    expect(await s.open(DOC, 'x', 1, { epoch, checksum: 42 })).toMatchObject({ kind: 'lost' });
  });

  it('a document never written has the store epoch, the same on every load', async () => {
    const store = new MemoryStore();
    const a = await sequencer(store).open(DOC, 'x');
    const b = await sequencer(store).open(DOC, 'x');
    expect(a.epoch).toBe(b.epoch);
    expect(a.epoch).toBe((await store.load(DOC)).epoch);
  });
});

describe('restore', () => {
  const lostEpoch = 'lost-epoch';
  /** The checksum chain of appending `texts` one after the other from the empty document. */
  function chain(texts: string[]): number {
    let sum = EMPTY_CHECKSUM;
    let text = '';
    for (const t of texts) {
      sum = chainChecksum(sum, text.length > 0 ? [text.length, t] : [t]);
      text += t;
    }
    return sum;
  }

  it('the first holder of a lost epoch merges its text in; a second at the same state changes nothing', async () => {
    const s = sequencer();
    const lost = { epoch: lostEpoch, version: 2, checksum: chain(['ab', 'c']) };
    const first = await s.restore({ docId: DOC, clientId: 'a', lost, samples: [], text: 'abc' });
    expect(first.applied).toBe(true);
    const second = await s.restore({ docId: DOC, clientId: 'b', lost, samples: [], text: 'abc' });
    expect(second).toEqual({ applied: false, version: first.version });
    expect((await s.getSnapshot(DOC)).text).toBe('abc');
    expect(await s.open(DOC, 'c', 2, { epoch: lostEpoch, checksum: lost.checksum })).toMatchObject({
      kind: 'lost',
      recovered: { version: 2, checksum: lost.checksum },
    });
  });

  it('a holder of an older version takes what is there; a holder of a newer one brings in only the difference', async () => {
    const s = sequencer();
    await s.restore({ docId: DOC, clientId: 'a', lost: { epoch: lostEpoch, version: 2, checksum: chain(['one ', 'two ']) }, samples: [], text: 'one two ' });
    // Someone types into the new incarnation meanwhile.
    const head = await s.getSnapshot(DOC);
    await s.submit({ docId: DOC, clientId: 'n', seq: 1, baseVersion: head.version, op: ['NEW ', head.text.length] });
    const older = await s.restore({ docId: DOC, clientId: 'b', lost: { epoch: lostEpoch, version: 1, checksum: chain(['one ']) }, samples: [], text: 'one ' });
    expect(older.applied).toBe(false);
    const newer = await s.restore({
      docId: DOC,
      clientId: 'c',
      lost: { epoch: lostEpoch, version: 3, checksum: chain(['one ', 'two ', 'three']) },
      samples: [],
      text: 'one two three',
    });
    expect(newer.applied).toBe(true);
    expect((await s.getSnapshot(DOC)).text).toBe('NEW one two three');
  });

  it('an op in flight is merged once: not when the recovered state already holds it', async () => {
    const s = sequencer();
    // b had "x" in flight on version 1; it landed as version 2, which a restores.
    const v1 = chain(['ab']);
    await s.restore({ docId: DOC, clientId: 'a', lost: { epoch: lostEpoch, version: 2, checksum: chain(['ab', 'x']) }, samples: [[1, v1]], text: 'abx' });
    const r = await s.restore({ docId: DOC, clientId: 'b', lost: { epoch: lostEpoch, version: 1, checksum: v1 }, samples: [], text: 'ab', op: [2, 'x'] });
    expect(r.applied).toBe(false);
    expect((await s.getSnapshot(DOC)).text).toBe('abx');
    // An op in flight the lost state does not hold is merged in.
    const t = await s.restore({ docId: DOC, clientId: 'c', lost: { epoch: lostEpoch, version: 1, checksum: v1 }, samples: [], text: 'ab', op: ['Z', 2] });
    expect(t.applied).toBe(true);
    expect((await s.getSnapshot(DOC)).text).toBe('Zabx');
  });

  it('a store rolled back under the same epoch: merged against the newest sample it still holds, so later writes survive', async () => {
    const s = sequencer();
    const sums = await typeAll(s, 'a', ['base ', 'lost ']);
    const { epoch } = await s.open(DOC, 'x');
    // The line as the server has it now, rolled back to version 1 and written again: simulate
    // by a client that holds version 2 with another checksum (its "lost " is not the server's).
    const theirs = await s.getSnapshot(DOC);
    await s.submit({ docId: DOC, clientId: 'w', seq: 1, baseVersion: theirs.version, op: [theirs.text.length, 'after'] });
    const r = await s.restore({
      docId: DOC,
      clientId: 'k',
      lost: { epoch, version: 2, checksum: (sums[1] as number) + 1 },
      samples: [[1, sums[0] as number]],
      text: 'base mine ',
    });
    expect(r.applied).toBe(true);
    const text = (await s.getSnapshot(DOC)).text;
    expect(text).toContain('after');
    expect(text).toContain('mine');
    expect(text).toContain('base');
  });

  it('a store rolled back under the same epoch: a client of the same line at an older version than the first restorer, not among its samples, is covered — nothing doubled, nothing back', async () => {
    const store = new MemoryStore();
    let s = sequencer(store);
    const texts: string[] = [''];
    const sums: number[] = [EMPTY_CHECKSUM];
    let seq = 0;
    const commit = async (op: Component[]): Promise<void> => {
      const head = await s.getSnapshot(DOC);
      const r = (await s.submit({ docId: DOC, clientId: 'w', seq: ++seq, baseVersion: head.version, op })) as { checksum: number };
      texts.push(apply(head.text, op));
      sums.push(r.checksum);
    };
    const append = (t: string): Promise<void> => commit((texts.at(-1) as string).length > 0 ? [(texts.at(-1) as string).length, t] : [t]);
    for (let i = 1; i <= 100; i++) await append(`a${i} `);
    for (let i = 101; i <= 200; i++) await append(`b${i} `);
    // Version 201 moves the b block to the start: text a merge from the wrong base would bring back, or twice.
    const t200 = texts[200] as string;
    const [from, to] = [t200.indexOf('b101 '), t200.length];
    await commit([t200.slice(from, to), from, -(to - from)]);
    for (let i = 202; i <= 260; i++) await append(`d${i} `);
    const { epoch } = await s.open(DOC, 'x');
    const samplesOf = (version: number): ReadonlyArray<readonly [number, number]> => {
      const v = new VersionSamples();
      v.reset(0, EMPTY_CHECKSUM);
      for (let i = 1; i <= version; i++) v.note(i, sums[i] as number);
      return v.pick(64, 100);
    };
    // The store goes back to version 100, keeping its epoch; the server starts again on it.
    await s.close();
    const held = (store as unknown as { docs: Map<string, { ops: unknown[]; snapshots: Array<{ version: number }> }> }).docs.get(DOC);
    held?.ops.splice(100);
    if (held !== undefined) held.snapshots = held.snapshots.filter((x) => x.version <= 100);
    s = sequencer(store);
    expect((await s.getSnapshot(DOC)).version).toBe(100);
    const restore = async (client: string, version: number): Promise<boolean> => {
      const opened = await s.open(DOC, client, version, { epoch, checksum: sums[version] as number });
      expect(opened.kind).toBe('lost');
      const lost = { epoch, version, checksum: sums[version] as number };
      return (await s.restore({ docId: DOC, clientId: client, lost, samples: samplesOf(version), text: texts[version] as string })).applied;
    };
    expect(await restore('A', 260)).toBe(true);
    expect((await s.getSnapshot(DOC)).text).toBe(texts[260]);
    expect(samplesOf(260).some(([v]) => v === 200)).toBe(false);
    expect(await restore('B', 200)).toBe(false);
    expect(await restore('D', 260)).toBe(false);
    expect((await s.getSnapshot(DOC)).text).toBe(texts[260]);
  });

  it("a store rolled back, then written well past that point by another writer: the lost answer's checksums lead the client to send the exact fork, and each edit is in the text once", async () => {
    const store = new MemoryStore();
    let s = sequencer(store);
    const texts: string[] = [''];
    const sums: number[] = [EMPTY_CHECKSUM];
    const marker = (i: number): string => `«c-${i}»`;
    for (let i = 1; i <= 100; i++) {
      const head = texts.at(-1) as string;
      // Scattered, as people type: each marker after the one typed 7 before it, if any.
      const at = i > 7 ? head.indexOf(marker(i - 7)) + marker(i - 7).length : 0;
      const op: Component[] = [at, marker(i), head.length - at].filter((c) => c !== 0);
      const r = (await s.submit({ docId: DOC, clientId: 'c', seq: i, baseVersion: i - 1, op })) as { checksum: number };
      texts.push(apply(head, op));
      sums.push(r.checksum);
    }
    const { epoch } = await s.open(DOC, 'x');
    // The store goes back to version 36 under the same epoch; another writer writes 84 ops on it.
    await s.close();
    const held = (store as unknown as { docs: Map<string, { ops: unknown[]; snapshots: Array<{ version: number }> }> }).docs.get(DOC);
    held?.ops.splice(36);
    if (held !== undefined) held.snapshots = held.snapshots.filter((x) => x.version <= 36);
    s = sequencer(store);
    for (let i = 1; i <= 84; i++) {
      const head = await s.getSnapshot(DOC);
      await s.submit({ docId: DOC, clientId: 'w', seq: i, baseVersion: head.version, op: [`«w-${i}»`, head.text.length] });
    }
    const opened = await s.open(DOC, 'c', 100, { epoch, checksum: sums[100] as number });
    expect(opened).toMatchObject({ kind: 'lost', version: 120 });
    const serverSums = opened.kind === 'lost' ? (opened.sums ?? []) : [];
    expect(serverSums.length).toBeGreaterThan(1);
    const samples = new VersionSamples();
    samples.reset(0, EMPTY_CHECKSUM);
    for (let i = 1; i <= 100; i++) samples.note(i, sums[i] as number);
    const picked = samples.pick(64, opened.version, serverSums);
    expect(picked.some(([v]) => v === 36)).toBe(true);
    const r = await s.restore({ docId: DOC, clientId: 'c', lost: { epoch, version: 100, checksum: sums[100] as number }, samples: picked, text: texts[100] as string });
    expect(r.applied).toBe(true);
    const text = (await s.getSnapshot(DOC)).text;
    const count = (m: string): number => text.split(m).length - 1;
    const notOnce = [...Array.from({ length: 100 }, (_, i) => marker(i + 1)), ...Array.from({ length: 84 }, (_, i) => `«w-${i + 1}»`)].filter((m) => count(m) !== 1);
    expect(notOnce).toEqual([]);
  });

  it('with no sample in common, the head is the base and the merge deletes none of its text', async () => {
    const s = sequencer();
    await typeAll(s, 'a', ['keep this ']);
    const { epoch } = await s.open(DOC, 'x');
    const r = await s.restore({ docId: DOC, clientId: 'k', lost: { epoch, version: 5, checksum: 99 }, samples: [], text: 'my own' });
    expect(r.applied).toBe(true);
    const text = (await s.getSnapshot(DOC)).text;
    expect(text).toContain('keep this ');
    expect(text).toContain('my own');
  });

  it('refuses a malformed request before touching anything', async () => {
    const s = sequencer();
    await expect(s.restore({ docId: DOC, clientId: 'k', lost: { epoch: '', version: 1, checksum: 1 }, samples: [], text: 'x' })).rejects.toMatchObject({
      code: 'bad-request',
    });
    await expect(
      s.restore({ docId: DOC, clientId: 'k', lost: { epoch: 'e', version: 1, checksum: 1 }, samples: [], text: 'x', op: [5, 'y'] }),
    ).rejects.toMatchObject({ code: 'bad-request' });
    expect(await s.getSnapshot(DOC)).toMatchObject({ version: 0, text: '' });
  });
});
