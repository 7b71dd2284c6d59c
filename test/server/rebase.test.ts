/**
 * Rebasing far-behind submissions over long histories. A large op (a client's offline work) is
 * rebased over history in an OpTree, one history op at a time; the law is that the op applied
 * equals the plain op-by-op result, fold(transform(op, h, 'right')) over the history after its
 * base, op for op. `npm test` uses 10⁴-op histories; `npm run test:long` 10⁵.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Component, apply, fromPatch, transform } from '../../src/ot/index.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Sequencer } from '../../src/server/sequencer.js';
import { type Random, below, seededRandom } from '../support/random.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { ControlledStore, expectOtterError } from './helpers.js';
import { tick, within } from '../support/wait.js';

const LONG = process.env.OTTER_LONG === '1';
const DOC = 'doc';
const sequencers: Sequencer[] = [];

afterEach(async () => {
  for (const s of sequencers.splice(0)) await s.close();
});

/** A small edit at a random place of `text`: insert a few letters, delete a few, or both. */
function smallEdit(random: Random, text: string, tag: string): Component[] {
  const at = below(random, text.length + 1);
  const del = below(random, 3) === 0 ? Math.min(below(random, 4), text.length - at) : 0;
  return fromPatch(text.length, at, del, below(random, 4) === 0 ? '' : tag);
}

/**
 * A large op on `text`: `edits` scattered small edits composed (inserting unique markers),
 * built left to right so it is one canonical op of about 2·edits components.
 */
function largeOp(random: Random, text: string, edits: number): Component[] {
  const op: Component[] = [];
  let pos = 0;
  const step = Math.max(1, Math.floor(text.length / edits));
  for (let i = 0; i < edits && pos < text.length; i++) {
    const keep = 1 + below(random, 2 * step - 1);
    const retain = Math.min(keep, text.length - pos);
    op.push(retain);
    pos += retain;
    op.push(`<${i}>`);
    if (below(random, 4) === 0 && pos < text.length) {
      const del = Math.min(1 + below(random, 3), text.length - pos);
      op.push(-del);
      pos += del;
    }
  }
  if (pos < text.length) op.push(text.length - pos);
  return op;
}

interface History {
  /** The text at the head. */
  readonly text: string;
  readonly ops: Component[][];
}

/** Submits `n` small ops of client "h" at the head, one after another, on `base`. */
async function buildHistory(s: Sequencer, random: Random, base: string, n: number): Promise<History> {
  const ops: Component[][] = [];
  let text = base;
  const answers: Promise<unknown>[] = [];
  await s.submit({ docId: DOC, clientId: 'h', seq: 1, baseVersion: 0, op: [base] });
  for (let i = 0; i < n; i++) {
    const op = smallEdit(random, text, `h${i % 10}`);
    answers.push(s.submit({ docId: DOC, clientId: 'h', seq: i + 2, baseVersion: i + 1, op }));
    ops.push(op);
    text = apply(text, op);
  }
  await Promise.all(answers);
  return { text, ops };
}

describe('rebasing a far-behind op over long history', () => {
  const sizes = LONG ? [10_000, 100_000] : [2_000, 10_000];
  for (const n of sizes) {
    it(`law: a large op ${n.toLocaleString('en')} versions behind is applied exactly as the op-by-op plain rebase makes it (and a small one too)`, async () => {
      const random = seededRandom(n);
      const s = new Sequencer(new MemoryStore(), { idleTimeout: 0 });
      sequencers.push(s);
      const base = 'abcdefghijklmnopqrstuvwxyz '.repeat(400);
      const history = await buildHistory(s, random, base, n);
      // Offline work on version 1 (the base text): large, and small.
      const large = largeOp(random, base, 600);
      expect(large.length).toBeGreaterThan(1000);
      const small = smallEdit(random, base, 'SMALL');
      let expectedLarge = large;
      let expectedSmall = small;
      for (const h of history.ops) {
        expectedLarge = transform(expectedLarge, h, 'right');
        expectedSmall = transform(expectedSmall, h, 'right');
      }
      const r1 = await s.submit({ docId: DOC, clientId: 'offline', seq: 1, baseVersion: 1, op: large });
      expect(r1.duplicate).toBe(false);
      expect(JSON.stringify(r1.op)).toBe(JSON.stringify(expectedLarge));
      const afterLarge = apply(history.text, expectedLarge);
      expect((await s.getSnapshot(DOC)).text).toBe(afterLarge);
      // The small op is rebased over the history and then the large op.
      expectedSmall = transform(expectedSmall, expectedLarge, 'right');
      const r2 = await s.submit({ docId: DOC, clientId: 'late', seq: 1, baseVersion: 1, op: small });
      expect(JSON.stringify(r2.op)).toBe(JSON.stringify(expectedSmall));
      // Every marker of the offline work is in the text once.
      const { text } = await s.getSnapshot(DOC);
      for (let i = 0; i < 600; i++) {
        const marker = `<${i}>`;
        if (large.includes(marker)) expect(text.split(marker).length - 1).toBe(1);
      }
    }, 120_000);
  }
});

describe('catching up a far-behind submission outside its document queue', () => {
  /** A sequencer over a gated store, with `n` ops of client "h" on a 1,080-unit base. */
  async function setup(n: number): Promise<{ s: Sequencer; store: ControlledStore; base: string; history: History }> {
    const store = new ControlledStore(new MemoryStore());
    const s = new Sequencer(store, { idleTimeout: 0 });
    sequencers.push(s);
    const base = 'abcdefghijklmnopqrstuvwxyz '.repeat(40);
    const history = await buildHistory(s, seededRandom(n), base, n);
    return { s, store, base, history };
  }

  /** Whether `promise` is still unsettled after the event loop has turned a few times. */
  async function unsettled(promise: Promise<unknown>): Promise<boolean> {
    let settled = false;
    promise.then(
      () => (settled = true),
      () => (settled = true),
    );
    for (let i = 0; i < 5; i++) await tick();
    return !settled;
  }

  it('other editors of the document go on while it catches up; its own client’s open waits for it and sees it', async () => {
    const { s, store, base } = await setup(3000);
    let release = (): void => {};
    store.getOpsGate = new Promise((resolve) => (release = resolve));
    const late = s.submit({ docId: DOC, clientId: 'late', seq: 1, baseVersion: 1, op: [5, 'LATE', base.length - 5] });
    // Client "h" edits at the head and is answered while the late op waits for its history.
    const head = 3001;
    const r = await s.submit({ docId: DOC, clientId: 'h', seq: 3002, baseVersion: head, op: ['H', (await s.getSnapshot(DOC)).text.length] });
    expect(r.version).toBe(head + 1);
    expect((await s.open(DOC, 'other')).version).toBe(head + 1);
    const ownOpen = s.open(DOC, 'late');
    expect(await unsettled(late)).toBe(true);
    expect(await unsettled(ownOpen)).toBe(true);
    release();
    store.getOpsGate = undefined;
    const applied = await late;
    // depth counts every history op it was rebased over, in the catch-up and in the queue
    expect(applied).toMatchObject({ duplicate: false, version: head + 2, depth: head });
    const opened = await ownOpen;
    expect(opened).toMatchObject({ seq: 1, version: head + 2 });
    expect((await s.getSnapshot(DOC)).text.split('LATE')).toHaveLength(2);
  });

  it('a resubmission of an op that landed long ago is still recognised (the catch-up stops before the original)', async () => {
    const { s, base } = await setup(1200);
    const op = [5, 'ONCE', base.length - 5];
    const first = await s.submit({ docId: DOC, clientId: 'late', seq: 1, baseVersion: 1, op });
    const more = await buildMore(s, 1200 + 2, 2500);
    expect(more).toBeGreaterThan(first.version + 1000);
    const again = await s.submit({ docId: DOC, clientId: 'late', seq: 1, baseVersion: 1, op });
    expect(again).toMatchObject({ duplicate: true, version: first.version });
    expect((await s.getOps(DOC, 0)).filter((r) => r.clientId === 'late')).toHaveLength(1);
  });

  it('a client’s later submission waits behind its catch-up (a resend of an op whose base history is gone stays a duplicate)', async () => {
    const store = new ControlledStore(new MemoryStore());
    const s = new Sequencer(store, { idleTimeout: 0, snapshotEvery: 100, retention: { ops: 1500 } });
    sequencers.push(s);
    const base = 'abcdefghijklmnopqrstuvwxyz '.repeat(40);
    const history = await buildHistory(s, seededRandom(7), base, 3000);
    const op = [5, 'ONCE', base.length - 5];
    let rebased: Component[] = op;
    for (const h of history.ops) rebased = transform(rebased, h, 'right');
    // The client sent its op on version 1; it landed (rebased) at 3002. Its base is trimmed soon.
    const first = await s.submit({ docId: DOC, clientId: 'late', seq: 1, baseVersion: 1, op });
    const head = await buildMore(s, 3002, 2000);
    // It reconnects and resends the op in flight as it was, then (acknowledged) its next op.
    let release = (): void => {};
    store.getOpsGate = new Promise((resolve) => (release = resolve));
    const resend = s.submit({ docId: DOC, clientId: 'late', seq: 1, baseVersion: 1, op });
    const next = s.submit({ docId: DOC, clientId: 'late', seq: 2, baseVersion: head, op: ['NEXT', (await s.getSnapshot(DOC)).text.length] });
    expect(await unsettled(next)).toBe(true);
    release();
    store.getOpsGate = undefined;
    expect(await resend).toMatchObject({ duplicate: true, version: first.version });
    expect(await next).toMatchObject({ duplicate: false, version: head + 1 });
    expect(rebased).toEqual(first.op);
  });

  it('an open 3,000 versions behind gets every op since, read in chunks', async () => {
    const { s } = await setup(3000);
    const [first] = await s.getOps(DOC, 0, 1);
    const head = await s.getSnapshot(DOC);
    const opened = await s.open(DOC, 'back', 1, { epoch: (await s.open(DOC, 'probe')).epoch, checksum: first?.checksum ?? -1 });
    expect(opened.kind).toBe('ops');
    if (opened.kind !== 'ops') return;
    expect(opened.ops.map((r) => r.version)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 2));
    expect(opened.ops.map((r) => r.op).reduce(apply, base1(first?.op))).toBe(head.text);
  });

  it('a far-behind request of a submitMany call is caught up and answered in its slot', async () => {
    const { s, base, history } = await setup(3000);
    const op = [5, 'MANY', base.length - 5];
    const answers = await within(
      s.submitMany([
        { docId: DOC, clientId: 'many', seq: 1, baseVersion: 1, op },
        { docId: DOC, clientId: 'other', seq: 1, baseVersion: 3001, op: ['!', history.text.length] },
      ]),
      10_000,
      'submitMany',
    );
    // The second, not behind, is queued at once; the first lands after it, rebased over both.
    expect(answers[1]).toMatchObject({ duplicate: false, version: 3002 });
    expect(answers[0]).toMatchObject({ duplicate: false, version: 3003, depth: 3001 });
    let expected: Component[] = op;
    for (const h of [...history.ops, ['!', history.text.length]]) expected = transform(expected, h, 'right');
    expect(answers[0]).toMatchObject({ op: expected });
  });

  it('a submission whose seq skips ahead is refused without reading any history', async () => {
    const { s, store, base } = await setup(3000);
    store.getOpsError = new Error('no history reads expected');
    const op = [base.length];
    await expectOtterError(s.submit({ docId: DOC, clientId: 'stranger', seq: 7, baseVersion: 1, op }), ErrorCode.SeqGap);
    await expectOtterError(s.submit({ docId: DOC, clientId: 'h', seq: 9999, baseVersion: 0, op: [] }), ErrorCode.SeqGap);
  });

  it('a copy of the op sent at a recent base while it catches up lands once, whichever lands first', async () => {
    const { s, store, base, history } = await setup(3000);
    let release = (): void => {};
    store.getOpsGate = new Promise((resolve) => (release = resolve));
    const op = [5, 'TWICE?', base.length - 5];
    const original = s.submit({ docId: DOC, clientId: 'late', seq: 1, baseVersion: 1, op });
    expect(await unsettled(original)).toBe(true);
    // The client got the history meanwhile, rebased its op in flight and sent it again.
    let rebased: Component[] = op;
    for (const h of history.ops) rebased = transform(rebased, h, 'right');
    release(); // the copy's own (short) rebase needs no history read; let both go
    store.getOpsGate = undefined;
    const copy = s.submit({ docId: DOC, clientId: 'late', seq: 1, baseVersion: 3001, op: rebased });
    const [a, b] = await Promise.all([original, copy]);
    expect(a.version).toBe(b.version);
    expect([a.duplicate, b.duplicate].sort()).toEqual([false, true]);
    expect((await s.getSnapshot(DOC)).text.split('TWICE?')).toHaveLength(2);
  });
});

/** Submits more small ops of client "h" from seq `seq` at the head; returns the new head. */
async function buildMore(s: Sequencer, seq: number, n: number): Promise<number> {
  const random = seededRandom(seq);
  let { text, version } = await s.getSnapshot(DOC);
  for (let i = 0; i < n; i++) {
    const op = smallEdit(random, text, 'm');
    const r = await s.submit({ docId: DOC, clientId: 'h', seq: seq + i, baseVersion: version, op });
    version = r.version;
    text = apply(text, op);
  }
  return version;
}

/** The text at version 1: the insert that made it. */
function base1(op: Component[] | undefined): string {
  return apply('', op ?? []);
}
