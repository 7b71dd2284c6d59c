/**
 * Behaviours of the Sequencer: ordering, rebasing of late ops, exactly-once (also across a
 * restart and after trimming), time travel, snapshots, idle unloading and per-document
 * independence.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Component, apply, fromPatch, normalize, transform } from '../../src/ot/index.js';
import { ErrorCode, OtterError } from '../../src/protocol/errors.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Sequencer, type SequencerOptions, type SubmitRequest } from '../../src/server/sequencer.js';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import type { Store } from '../../src/server/store.js';
import { ControlledStore, expectOtterError, recordApplied, replay } from './helpers.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { sleep, tick, waitFor, within } from '../support/wait.js';
import { below, seededRandom } from '../support/random.js';

const DOC = 'doc';

const sequencers: Sequencer[] = [];
const stores: Store[] = [];
const dirs: string[] = [];

function sequencer(store: Store, options: SequencerOptions = {}): Sequencer {
  const s = new Sequencer(store, options);
  sequencers.push(s);
  return s;
}

function sqlite(file?: string): { store: SqliteStore; file: string } {
  let path = file;
  if (path === undefined) {
    const dir = makeTempDir('otter-seq-');
    dirs.push(dir);
    path = join(dir, 'otter.db');
  }
  const store = new SqliteStore(path);
  stores.push(store);
  return { store, file: path };
}

afterEach(async () => {
  for (const s of sequencers.splice(0)) await within(s.close(), 5000, 'Sequencer.close');
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) removeTempDir(d);
});

function submit(s: Sequencer, r: Partial<SubmitRequest> & Pick<SubmitRequest, 'clientId' | 'seq' | 'baseVersion' | 'op'>) {
  return s.submit({ docId: DOC, ...r });
}

/** A small deterministic generator of edits (with emoji) on `text`, on code-point boundaries. */
function editor(seed: number): (text: string) => Component[] {
  const random = seededRandom(seed);
  const rand = (n: number): number => below(random, n);
  const pieces = ['a', 'bc', '😀', 'é', '👍🏽', ' ', 'xyz'];
  return (text) => {
    const cps = Array.from(text);
    const at = rand(cps.length + 1);
    const del = cps.length > 0 && rand(3) === 0 ? rand(Math.min(4, cps.length - at) + 1) : 0;
    const insert = del > 0 && rand(2) === 0 ? '' : (pieces[rand(pieces.length)] as string);
    const pos = cps.slice(0, at).join('').length;
    const len = cps.slice(at, at + del).join('').length;
    return fromPatch(text.length, pos, len, insert === '' && len === 0 ? 'q' : insert);
  };
}

describe('ordering', () => {
  it('applies sequential submits at the head in order', async () => {
    const s = sequencer(new MemoryStore());
    const events = recordApplied(s);
    const r1 = await submit(s, { clientId: 'a', seq: 1, baseVersion: 0, op: ['hello'] });
    const r2 = await submit(s, { clientId: 'a', seq: 2, baseVersion: 1, op: [5, ' world'] });
    const r3 = await submit(s, { clientId: 'b', seq: 1, baseVersion: 2, op: [-1, 'H', 10], author: 'bob' });
    expect([r1, r2, r3]).toMatchObject([
      { duplicate: false, version: 1, op: ['hello'] },
      { duplicate: false, version: 2, op: [5, ' world'] },
      { duplicate: false, version: 3, op: ['H', -1, 10] },
    ]);
    expect(await s.getSnapshot(DOC)).toMatchObject({ version: 3, text: 'Hello world' });
    const log = await s.getOps(DOC, 0);
    expect(log.map((r) => [r.version, r.clientId, r.seq])).toEqual([
      [1, 'a', 1],
      [2, 'a', 2],
      [3, 'b', 1],
    ]);
    expect(log[2]?.author).toBe('bob');
    expect(log[0]?.author).toBeUndefined();
    expect(events.map((e) => e.record)).toEqual(log);
    expect(await s.getOps(DOC, 1, 2)).toEqual(log.slice(1, 2));
    expect(await s.getOps(DOC, 3)).toEqual([]);
    expect(await s.getClientMark(DOC, 'a')).toMatchObject({ clientId: 'a', seq: 2, version: 2, baseVersion: 1 });
    expect(await s.getClientMark(DOC, 'nobody')).toBeUndefined();
  });

  it('stores and answers the op in canonical form, never aliasing the caller’s array', async () => {
    const s = sequencer(new MemoryStore());
    await submit(s, { clientId: 'a', seq: 1, baseVersion: 0, op: ['hello'] });
    // Split retain, delete before insert, split insert: valid but not canonical.
    const nonCanonical: Component[] = [2, 1, -1, 'x', 'y', 1];
    const result = await submit(s, { clientId: 'a', seq: 2, baseVersion: 1, op: nonCanonical });
    expect(result.op).toEqual(normalize(nonCanonical));
    expect(result.op).toEqual([3, 'xy', -1, 1]);
    const [record] = await s.getOps(DOC, 1);
    expect(record?.op).toEqual([3, 'xy', -1, 1]);
    nonCanonical.length = 0; // the caller reuses its array
    expect((await s.getOps(DOC, 1))[0]?.op).toEqual([3, 'xy', -1, 1]);
    expect(await s.getSnapshot(DOC)).toMatchObject({ version: 2, text: 'helxyo' });
    // The same edit resubmitted in another (equivalent) form is recognised.
    await expect(submit(s, { clientId: 'a', seq: 2, baseVersion: 1, op: [3, 'x', 'y', -1, 1] })).resolves.toMatchObject({
      duplicate: true,
      version: 2,
    });
  });

  it('rebases a late op: concurrent inserts at one position land in arrival order', async () => {
    for (const [first, second, expected] of [
      ['X', 'Y', 'aXYb'],
      ['Y', 'X', 'aYXb'],
    ] as const) {
      const s = sequencer(new MemoryStore());
      await submit(s, { clientId: 'init', seq: 1, baseVersion: 0, op: ['ab'] });
      const r1 = await submit(s, { clientId: first, seq: 1, baseVersion: 1, op: [1, first, 1] });
      const r2 = await submit(s, { clientId: second, seq: 1, baseVersion: 1, op: [1, second, 1] });
      expect(r1).toMatchObject({ duplicate: false, version: 2, op: [1, first, 1] });
      expect(r2).toMatchObject({ duplicate: false, version: 3, op: [2, second, 1] });
      expect((await s.getSnapshot(DOC)).text).toBe(expected);
    }
  });

  it('rebases concurrent submissions queued in one batch, one history op at a time', async () => {
    const s = sequencer(new MemoryStore());
    await submit(s, { clientId: 'init', seq: 1, baseVersion: 0, op: ['0123456789'] });
    // All made on version 1, sent together.
    const results = await Promise.all([
      submit(s, { clientId: 'a', seq: 1, baseVersion: 1, op: [2, -3, 5] }), // delete 234
      submit(s, { clientId: 'b', seq: 1, baseVersion: 1, op: [3, 'B', 7] }), // insert inside the deletion
      submit(s, { clientId: 'c', seq: 1, baseVersion: 1, op: [10, 'C'] }),
      submit(s, { clientId: 'd', seq: 1, baseVersion: 1, op: [-10] }), // delete everything
      submit(s, { clientId: 'e', seq: 1, baseVersion: 1, op: ['E', 10] }),
    ]);
    expect(results.map((r) => r.version)).toEqual([2, 3, 4, 5, 6]);
    // Oracle: the same one-at-a-time rebasing with the OT library.
    const history: Component[][] = [];
    let text = '0123456789';
    const submitted: Component[][] = [[2, -3, 5], [3, 'B', 7], [10, 'C'], [-10], ['E', 10]];
    for (const op of submitted) {
      let rebased = op;
      for (const h of history) rebased = transform(rebased, h, 'right');
      history.push(rebased);
      text = apply(text, rebased);
    }
    expect(results.map((r) => r.op)).toEqual(history);
    expect((await s.getSnapshot(DOC)).text).toBe(text);
    expect(text).toBe('EBC');
  });

  it('fires onApplied once per committed op, in version order, before the submitter is answered', async () => {
    const s = sequencer(new MemoryStore());
    const seen: number[] = [];
    s.onApplied((docId, r) => {
      expect(docId).toBe(DOC);
      seen.push(r.version);
    });
    const versionsAtAnswer: number[][] = [];
    await Promise.all(
      ['a', 'b', 'c', 'd'].map((c) =>
        submit(s, { clientId: c, seq: 1, baseVersion: 0, op: [c] }).then((r) => {
          expect(seen).toContain(r.version);
          versionsAtAnswer.push(seen.slice());
        }),
      ),
    );
    expect(seen).toEqual([1, 2, 3, 4]);
    expect((await s.getSnapshot(DOC)).text).toBe('abcd');
    const off = s.onApplied(() => {
      throw new Error('removed listeners are not called');
    });
    off();
    await submit(s, { clientId: 'a', seq: 2, baseVersion: 4, op: [4, '!'] });
    expect(seen).toEqual([1, 2, 3, 4, 5]);
  });

  it('keeps answering submitters when an onApplied listener throws', async () => {
    const errors: unknown[] = [];
    const s = sequencer(new MemoryStore(), { onError: (e) => errors.push(e) });
    const seen: number[] = [];
    s.onApplied(() => {
      throw new Error('listener bug');
    });
    s.onApplied((_, r) => seen.push(r.version));
    const r1 = await within(submit(s, { clientId: 'a', seq: 1, baseVersion: 0, op: ['x'] }), 5000, 'submit');
    const r2 = await within(submit(s, { clientId: 'a', seq: 2, baseVersion: 1, op: [1, 'y'] }), 5000, 'submit');
    expect([r1.version, r2.version]).toEqual([1, 2]);
    expect(seen).toEqual([1, 2]);
    expect(errors).toHaveLength(2);
    expect(await s.getSnapshot(DOC)).toMatchObject({ version: 2, text: 'xy' });
  });
});

describe('submitMany', () => {
  it('decides every request as submit would, answering each in order with its result or its refusal', async () => {
    const many = sequencer(new MemoryStore(), { idleTimeout: 0 });
    const one = sequencer(new MemoryStore(), { idleTimeout: 0 });
    const requests: SubmitRequest[] = [
      { docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['hello'] },
      { docId: DOC, clientId: 'b', seq: 1, baseVersion: 0, op: ['>'] }, // late: rebased over a's
      { docId: DOC, clientId: 'a', seq: 3, baseVersion: 1, op: [5, '!'] }, // seq-gap
      { docId: 'other', clientId: 'a', seq: 1, baseVersion: 0, op: ['x'] },
      { docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['hello'] }, // a duplicate
      { docId: DOC, clientId: 'c', seq: 0, baseVersion: 0, op: ['?'] }, // bad-request
    ];
    const answers = await many.submitMany(requests);
    const expected = await Promise.all(requests.map((r) => one.submit(r).catch((e: unknown) => e)));
    expect(answers).toHaveLength(requests.length);
    answers.forEach((answer, i) => {
      const want = expected[i];
      if (want instanceof OtterError) {
        expect(answer).toBeInstanceOf(OtterError);
        expect((answer as OtterError).code).toBe(want.code);
      } else {
        expect(answer).toEqual(want);
      }
    });
    expect((answers[2] as OtterError).code).toBe(ErrorCode.SeqGap);
    expect((answers[5] as OtterError).code).toBe(ErrorCode.BadRequest);
    expect(await many.getSnapshot(DOC)).toEqual(await one.getSnapshot(DOC));
    expect(await many.submitMany([])).toEqual([]);
  });
});

describe('exactly once', () => {
  it('answers an identical resubmission with the original version and applies nothing', async () => {
    const s = sequencer(new MemoryStore());
    const events = recordApplied(s);
    await submit(s, { clientId: 'b', seq: 1, baseVersion: 0, op: ['b'] });
    const original = await submit(s, { clientId: 'a', seq: 1, baseVersion: 0, op: ['a'] });
    expect(original).toMatchObject({ duplicate: false, version: 2, op: [1, 'a'] });
    await submit(s, { clientId: 'b', seq: 2, baseVersion: 2, op: [2, 'c'] });
    const before = await s.getSnapshot(DOC);
    const n = events.length;
    for (let i = 0; i < 3; i++) {
      await expect(submit(s, { clientId: 'a', seq: 1, baseVersion: 0, op: ['a'] })).resolves.toMatchObject({
        duplicate: true,
        version: 2,
        op: [1, 'a'],
      });
    }
    expect(await s.getSnapshot(DOC)).toEqual(before);
    expect(events).toHaveLength(n);
    // Resubmissions racing the original in one batch are recognised too.
    const burst = await Promise.all([
      submit(s, { clientId: 'z', seq: 1, baseVersion: 3, op: [3, 'z'] }),
      submit(s, { clientId: 'z', seq: 1, baseVersion: 3, op: [3, 'z'] }),
      submit(s, { clientId: 'z', seq: 1, baseVersion: 3, op: [3, 'z'] }),
    ]);
    expect(burst.map((r) => [r.duplicate, r.version])).toEqual([
      [false, 4],
      [true, 4],
      [true, 4],
    ]);
    expect((await s.getOps(DOC, 0)).filter((r) => r.clientId === 'z')).toHaveLength(1);
  });

  it('recognises the in-flight op resent after the client transformed it to a newer base', async () => {
    const s = sequencer(new MemoryStore());
    const events = recordApplied(s);
    await submit(s, { clientId: 'init', seq: 1, baseVersion: 0, op: ['hello'] });
    // Client A sends its op at version 1; B's three ops are committed before it.
    const mine: Component[] = [5, '!'];
    const others: Component[][] = [['>', 5], [6, '?'], [-1, 6]];
    for (const [i, op] of others.entries()) {
      const r = await submit(s, { clientId: 'b', seq: i + 1, baseVersion: 1 + i, op });
      expect(r.version).toBe(2 + i);
    }
    const original = await submit(s, { clientId: 'a', seq: 1, baseVersion: 1, op: mine });
    expect(original.version).toBe(5);
    expect((await s.getSnapshot(DOC)).text).toBe('hello?!');
    const n = events.length;
    // A lost the ack, received B's ops 2 and 3 (not 4), and transformed its in-flight op.
    let inflight = mine;
    for (const op of others.slice(0, 2)) inflight = transform(inflight, op, 'right');
    await expect(submit(s, { clientId: 'a', seq: 1, baseVersion: 3, op: inflight })).resolves.toMatchObject({
      duplicate: true,
      version: 5,
      op: original.op,
    });
    // Rebased all the way to version 4.
    inflight = transform(inflight, others[2] as Component[], 'right');
    await expect(submit(s, { clientId: 'a', seq: 1, baseVersion: 4, op: inflight })).resolves.toMatchObject({
      duplicate: true,
      version: 5,
    });
    expect(events).toHaveLength(n);
    expect((await s.getSnapshot(DOC)).text).toBe('hello?!');
    // A different op at a newer base is not the same submission.
    await expectOtterError(submit(s, { clientId: 'a', seq: 1, baseVersion: 4, op: [6, '#'] }), ErrorCode.SeqReused);
  });

  it('survives a restart on SqliteStore (new Sequencer on the reopened file)', async () => {
    const { store, file } = sqlite();
    const s1 = sequencer(store);
    await submit(s1, { clientId: 'b', seq: 1, baseVersion: 0, op: ['b'] });
    await submit(s1, { clientId: 'b', seq: 2, baseVersion: 1, op: [1, 'B'] });
    const original = await submit(s1, { clientId: 'a', seq: 1, baseVersion: 0, op: ['a'] });
    expect(original).toMatchObject({ version: 3, op: [2, 'a'] });
    await s1.close();
    await store.close();

    const reopened = sqlite(file).store;
    const s2 = sequencer(reopened);
    const events = recordApplied(s2);
    await expect(submit(s2, { clientId: 'a', seq: 1, baseVersion: 0, op: ['a'] })).resolves.toMatchObject({
      duplicate: true,
      version: 3,
      op: [2, 'a'],
    });
    // The rebased form, checked against the history read back from the file.
    await expect(
      submit(s2, { clientId: 'a', seq: 1, baseVersion: 1, op: transform(['a'], ['b'], 'right') }),
    ).resolves.toMatchObject({ duplicate: true, version: 3 });
    await expectOtterError(submit(s2, { clientId: 'a', seq: 1, baseVersion: 0, op: ['x'] }), ErrorCode.SeqReused);
    expect(events).toHaveLength(0);
    await expect(submit(s2, { clientId: 'a', seq: 2, baseVersion: 3, op: [3, '!'] })).resolves.toMatchObject({
      duplicate: false,
      version: 4,
    });
    expect((await s2.getSnapshot(DOC)).text).toBe('bBa!');
    const log = await s2.getOps(DOC, 0);
    expect(log.filter((r) => r.clientId === 'a').map((r) => r.seq)).toEqual([1, 2]);
  });

  it('survives trimming of the op’s history, also across a restart', async () => {
    const store = new MemoryStore();
    const options = { snapshotEvery: 2, retention: { ops: 2 }, memoryHistory: 2 };
    const s1 = sequencer(store, options);
    await submit(s1, { clientId: 'a', seq: 1, baseVersion: 0, op: ['a'] });
    for (let i = 1; i <= 10; i++) {
      await submit(s1, { clientId: 'b', seq: i, baseVersion: i, op: [i, 'b'] });
    }
    expect((await store.load(DOC)).trimmedTo).toBeGreaterThan(1);
    await expectOtterError(s1.getOps(DOC, 0), ErrorCode.HistoryGone);
    const events = recordApplied(s1);
    const dup = await submit(s1, { clientId: 'a', seq: 1, baseVersion: 0, op: ['a'] });
    expect(dup).toMatchObject({ duplicate: true, version: 1 });
    expect(dup.op).toBeUndefined();

    const s2 = sequencer(store, options);
    recordApplied(s2);
    await expect(submit(s2, { clientId: 'a', seq: 1, baseVersion: 0, op: ['a'] })).resolves.toEqual({
      duplicate: true,
      version: 1,
      op: undefined,
    });
    // A rebased resend can no longer be checked against the trimmed history: refused, not applied.
    const rebased = submit(s2, { clientId: 'a', seq: 1, baseVersion: 0, op: ['x'] });
    const e = await rebased.catch((err: unknown) => err);
    expect(e).toBeInstanceOf(OtterError);
    expect([ErrorCode.SeqReused, ErrorCode.HistoryGone]).toContain((e as OtterError).code);
    expect(events).toHaveLength(0);
    expect((await s2.getSnapshot(DOC)).text).toBe(`a${'b'.repeat(10)}`);
    await expect(submit(s2, { clientId: 'a', seq: 2, baseVersion: 11, op: ['<', 11] })).resolves.toMatchObject({
      duplicate: false,
      version: 12,
    });
  });
});

describe('the in-memory window of recent ops', () => {
  it('holds at least memoryHistory committed ops and at most a sixteenth more, whatever the commit count', async () => {
    const keep = 32;
    const s = sequencer(new MemoryStore(), { memoryHistory: keep });
    let shifts = 0;
    let start = 0;
    for (let i = 1; i <= 200; i++) {
      await submit(s, { clientId: 'a', seq: i, baseVersion: i - 1, op: i === 1 ? ['x'] : [i - 1, 'x'] });
      // The oldest version the window still holds ops after.
      let oldest = 0;
      while (s.recentOps(DOC, oldest, i) === undefined) oldest++;
      const held = i - oldest;
      expect(held).toBeGreaterThanOrEqual(Math.min(i, keep));
      expect(held).toBeLessThanOrEqual(keep + keep / 16);
      if (oldest !== start) shifts++;
      start = oldest;
    }
    // Shifted once every keep/16 + 1 commits past the first keep + keep/16 + 1, not on every commit.
    expect(shifts).toBeLessThanOrEqual(Math.ceil((200 - keep) / (keep / 16 + 1)));
  });
});

describe('time travel', () => {
  for (const kind of ['memory', 'sqlite'] as const) {
    it(`getSnapshot at every version of the window equals the replayed log (${kind})`, async () => {
      const store: Store = kind === 'memory' ? new MemoryStore() : sqlite().store;
      const window = 7;
      const s = sequencer(store, { snapshotEvery: 3, retention: { ops: window }, memoryHistory: 4 });
      const edit = editor(7);
      const texts = [''];
      const head = 40;
      for (let v = 1; v <= head; v++) {
        const client = v % 3 === 0 ? 'b' : 'a';
        const text = texts[v - 1] as string;
        const r = await submit(s, {
          clientId: client,
          seq: client === 'b' ? v / 3 : v - Math.floor(v / 3),
          baseVersion: v - 1,
          op: edit(text),
        });
        expect(r.version).toBe(v);
        if (r.duplicate) throw new Error(`version ${v} was answered as a duplicate`);
        texts.push(apply(text, r.op));
      }
      expect(await s.getSnapshot(DOC)).toMatchObject({ version: head, text: texts[head] });
      const retained: number[] = [];
      for (let v = 0; v <= head; v++) {
        try {
          const snap = await s.getSnapshot(DOC, v);
          expect(snap).toMatchObject({ version: v, text: texts[v] });
          const ops = await s.getOps(DOC, v);
          expect(ops.map((r) => r.version)).toEqual(Array.from({ length: head - v }, (_, i) => v + 1 + i));
          expect(replay(ops, snap.text)).toBe(texts[head]);
          retained.push(v);
        } catch (e) {
          expect(e).toBeInstanceOf(OtterError);
          expect((e as OtterError).code).toBe(ErrorCode.HistoryGone);
        }
      }
      // The retained versions are one suffix that covers at least the configured window.
      const first = retained[0] as number;
      expect(retained).toEqual(Array.from({ length: head - first + 1 }, (_, i) => first + i));
      expect(first).toBeLessThanOrEqual(head - window);
      expect(first).toBeGreaterThan(0); // history was trimmed at all
      expect((await store.load(DOC)).trimmedTo).toBe(first);
    });
  }
});

describe('snapshots', () => {
  it('are taken whenever the head passes a multiple of snapshotEvery', async () => {
    const store = new ControlledStore(new MemoryStore());
    const s = sequencer(store, { snapshotEvery: 4 });
    let text = '';
    for (let v = 1; v <= 12; v++) {
      await submit(s, { clientId: 'a', seq: v, baseVersion: v - 1, op: fromPatch(text.length, text.length, 0, String(v % 10)) });
      text += String(v % 10);
    }
    expect(store.snapshotsPut.map((p) => p.version)).toEqual([4, 8, 12]);
    // One batch jumping over 16: a single snapshot at the batch's head.
    let release!: () => void;
    store.appendGate = { docId: DOC, gate: new Promise<void>((r) => (release = r)) };
    const held = submit(s, { clientId: 'b', seq: 1, baseVersion: 12, op: fromPatch(12, 12, 0, 'x') });
    await tick();
    store.appendGate = undefined;
    const batch = [1, 2, 3, 4].map((i) =>
      submit(s, { clientId: 'c', seq: i, baseVersion: 12 + i, op: fromPatch(12 + i, 12 + i, 0, 'y') }),
    );
    release();
    await held;
    await Promise.all(batch);
    expect(store.snapshotsPut.map((p) => p.version)).toEqual([4, 8, 12, 17]);
    for (const v of [4, 8, 12, 17]) {
      const snap = await store.getSnapshot(DOC, v);
      expect(snap?.version).toBe(v);
      expect(snap?.text).toBe(replay(await store.getOps(DOC, 0, v)));
    }
  });
});

describe('idle documents', () => {
  it('are unloaded after idleTimeout and reloaded transparently', async () => {
    const s = sequencer(new MemoryStore(), { idleTimeout: 20 });
    await s.submit({ docId: 'x', clientId: 'a', seq: 1, baseVersion: 0, op: ['x'] });
    await s.submit({ docId: 'y', clientId: 'a', seq: 1, baseVersion: 0, op: ['y'] });
    expect(s.openDocuments).toBe(2);
    await waitFor('every idle document to be unloaded', () => s.openDocuments === 0);
    // Reloaded on demand, with its marks: a resubmission is still a duplicate.
    await expect(s.submit({ docId: 'x', clientId: 'a', seq: 1, baseVersion: 0, op: ['x'] })).resolves.toMatchObject({
      duplicate: true,
      version: 1,
    });
    await expect(s.submit({ docId: 'x', clientId: 'a', seq: 2, baseVersion: 1, op: [1, '!'] })).resolves.toMatchObject({
      duplicate: false,
      version: 2,
    });
    expect(s.openDocuments).toBeGreaterThanOrEqual(1);
    expect(await s.getSnapshot('x')).toMatchObject({ version: 2, text: 'x!' });
    expect(await s.getSnapshot('y')).toMatchObject({ version: 1, text: 'y' });
    await waitFor('every idle document to be unloaded', () => s.openDocuments === 0);
  });

  it('watchers are told of each document as it is held (before its load, already listed) and as it is unloaded; a removed watcher is told nothing', async () => {
    const store = new ControlledStore(new MemoryStore());
    const s = sequencer(store, { idleTimeout: 20 });
    const told: string[] = [];
    const unwatch = s.watchDocuments({
      held: (docId) => told.push(`held ${docId} listed=${s.documents().includes(docId)} loaded=${s.held(docId) !== undefined}`),
      dropped: (docId) => told.push(`dropped ${docId} listed=${s.documents().includes(docId)}`),
    });
    await s.submit({ docId: 'x', clientId: 'a', seq: 1, baseVersion: 0, op: ['x'] });
    await s.submit({ docId: 'x', clientId: 'a', seq: 2, baseVersion: 1, op: [1, 'y'] });
    expect(told).toEqual(['held x listed=true loaded=false']);
    await waitFor('x to be unloaded', () => s.openDocuments === 0);
    expect(told).toEqual(['held x listed=true loaded=false', 'dropped x listed=false']);
    unwatch();
    await s.submit({ docId: 'z', clientId: 'a', seq: 1, baseVersion: 0, op: ['z'] });
    await waitFor('z to be unloaded', () => s.openDocuments === 0);
    expect(told).toHaveLength(2);
  });

  it('are never unloaded with idleTimeout 0, nor while work is queued', async () => {
    const store = new ControlledStore(new MemoryStore());
    const s = sequencer(store, { idleTimeout: 0 });
    await s.submit({ docId: 'x', clientId: 'a', seq: 1, baseVersion: 0, op: ['x'] });
    const s2 = sequencer(store, { idleTimeout: 10 });
    let release!: () => void;
    store.appendGate = { docId: 'z', gate: new Promise<void>((r) => (release = r)) };
    const held = s2.submit({ docId: 'z', clientId: 'a', seq: 1, baseVersion: 0, op: ['z'] });
    // Give the sweepers several chances.
    for (let i = 0; i < 10; i++) await sleep(10);
    expect(s.openDocuments).toBe(1);
    expect(s2.openDocuments).toBe(1);
    release();
    await expect(held).resolves.toMatchObject({ version: 1 });
  });
});

describe('independence of documents', () => {
  it('a stuck or failing append on one document does not block another', async () => {
    const store = new ControlledStore(new MemoryStore());
    const s = sequencer(store);
    const events = recordApplied(s);
    let release!: () => void;
    store.appendGate = { docId: 'A', gate: new Promise<void>((r) => (release = r)) };
    store.appendFailures.push({ docId: 'A', error: new Error('A is broken') });
    const a = s.submit({ docId: 'A', clientId: 'c', seq: 1, baseVersion: 0, op: ['a'] });
    let aSettled = false;
    void a.then(
      () => (aSettled = true),
      () => (aSettled = true),
    );
    for (let i = 0; i < 5; i++) {
      const r = await within(
        s.submit({ docId: 'B', clientId: 'c', seq: i + 1, baseVersion: i, op: fromPatch(i, i, 0, 'b') }),
        5000,
        'a submit to B',
      );
      expect(r.version).toBe(i + 1);
    }
    expect(await within(s.getSnapshot('B'), 5000, 'reading B')).toMatchObject({ version: 5, text: 'bbbbb' });
    expect(aSettled).toBe(false);
    store.appendGate = undefined;
    release();
    await expectOtterError(a, ErrorCode.StorageFailed);
    expect(events.map((e) => e.docId)).toEqual(['B', 'B', 'B', 'B', 'B']);
    await expect(s.submit({ docId: 'A', clientId: 'c', seq: 1, baseVersion: 0, op: ['a'] })).resolves.toMatchObject({
      duplicate: false,
      version: 1,
    });
    expect(await s.getSnapshot('A')).toMatchObject({ version: 1, text: 'a' });
  });
});

describe('another writer on the same store', () => {
  it('retries a batch that lost the race, rebased on the winner', async () => {
    const store = new MemoryStore();
    const s1 = sequencer(store);
    const s2 = sequencer(store);
    expect(await s1.getSnapshot(DOC)).toMatchObject({ version: 0, text: '' }); // s1 holds version 0
    await submit(s2, { clientId: 'x', seq: 1, baseVersion: 0, op: ['x'] });
    await expect(submit(s1, { clientId: 'y', seq: 1, baseVersion: 0, op: ['y'] })).resolves.toMatchObject({
      duplicate: false,
      version: 2,
      op: [1, 'y'],
    });
    expect(replay(await store.getOps(DOC, 0, 10))).toBe('xy');
  });

  it('answers storage-failed once the retries are used up', async () => {
    const store = new MemoryStore();
    const s1 = sequencer(store, { conflictRetries: 0 });
    const s2 = sequencer(store);
    await s1.getSnapshot(DOC);
    await submit(s2, { clientId: 'x', seq: 1, baseVersion: 0, op: ['x'] });
    await expectOtterError(submit(s1, { clientId: 'y', seq: 1, baseVersion: 0, op: ['y'] }), ErrorCode.StorageFailed);
    expect(replay(await store.getOps(DOC, 0, 10))).toBe('x');
    // Reloaded: the retry by the client goes through.
    await expect(submit(s1, { clientId: 'y', seq: 1, baseVersion: 0, op: ['y'] })).resolves.toMatchObject({ version: 2 });
  });
});

describe('an append whose answer is lost after it landed', () => {
  it('is refused as storage-failed, its ops are published once when the state is reloaded, and a resubmission is a duplicate', async () => {
    const store = new ControlledStore(new MemoryStore());
    const s = sequencer(store);
    const events = recordApplied(s);
    await submit(s, { clientId: 'a', seq: 1, baseVersion: 0, op: ['a'] });
    store.appendFailures.push({ error: new Error('the answer was lost'), afterWriting: true });
    await expectOtterError(submit(s, { clientId: 'a', seq: 2, baseVersion: 1, op: [1, 'b'] }), ErrorCode.StorageFailed);
    // The next request reloads the document: the landed op is published then, once.
    await expect(submit(s, { clientId: 'b', seq: 1, baseVersion: 2, op: [2, 'c'] })).resolves.toMatchObject({ version: 3 });
    await expect(submit(s, { clientId: 'a', seq: 2, baseVersion: 1, op: [1, 'b'] })).resolves.toMatchObject({ duplicate: true, version: 2 });
    expect(events.map((e) => e.record.version)).toEqual([1, 2, 3]);
    expect(await s.getSnapshot(DOC)).toMatchObject({ version: 3, text: 'abc' });
  });
});
