/**
 * One section per error code of Sequencer.submit (and of getOps/getSnapshot where they share
 * it). Every rejection must leave the document as it was (same version, same text) and fire no
 * onApplied event.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Component, fromPatch } from '../../src/ot/index.js';
import { ErrorCode, type OtterError } from '../../src/protocol/errors.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Sequencer, type SequencerOptions, type SubmitRequest } from '../../src/server/sequencer.js';
import type { OpRecord, Store } from '../../src/server/store.js';
import { ControlledStore, expectOtterError, recordApplied, replay } from './helpers.js';
import { tick, within } from '../support/wait.js';

const DOC = 'doc';

interface Harness {
  sequencer: Sequencer;
  store: ControlledStore;
  events: Array<{ docId: string; record: OpRecord }>;
}

const open: Sequencer[] = [];

function harness(options: SequencerOptions = {}, inner: Store = new MemoryStore()): Harness {
  const store = new ControlledStore(inner);
  const sequencer = new Sequencer(store, options);
  open.push(sequencer);
  return { sequencer, store, events: recordApplied(sequencer) };
}

afterEach(async () => {
  for (const s of open.splice(0)) await within(s.close(), 5000, 'Sequencer.close');
});

/** Submits ops one after another at the head, as client `clientId` from seq 1. */
async function fill(h: Harness, texts: readonly string[], clientId = 'setup', docId = DOC): Promise<void> {
  let seq = (await h.sequencer.getClientMark(docId, clientId))?.seq ?? 0;
  for (const t of texts) {
    const head = await h.sequencer.getSnapshot(docId);
    await h.sequencer.submit({
      docId,
      clientId,
      seq: ++seq,
      baseVersion: head.version,
      op: fromPatch(head.text.length, head.text.length, 0, t),
    });
  }
}

/**
 * Runs `attempt`, expects it to reject with `code`, and checks that the document's version and
 * text did not change and that no onApplied event fired.
 */
async function rejectsUnchanged(
  h: Harness,
  attempt: () => Promise<unknown>,
  code: ErrorCode,
  docId = DOC,
): Promise<OtterError> {
  const before = await h.sequencer.getSnapshot(docId);
  const events = h.events.length;
  const error = await expectOtterError(attempt(), code);
  expect(await h.sequencer.getSnapshot(docId)).toEqual(before);
  expect(h.events.length).toBe(events);
  return error;
}

function req(overrides: Partial<Record<keyof SubmitRequest, unknown>>): SubmitRequest {
  return { docId: DOC, clientId: 'c', seq: 1, baseVersion: 0, op: ['x'], ...overrides } as unknown as SubmitRequest;
}

describe('bad-request', () => {
  const cases: Array<[string, Partial<Record<keyof SubmitRequest, unknown>>]> = [
    ['non-string docId', { docId: 42 }],
    ['missing docId', { docId: undefined }],
    ['empty docId', { docId: '' }],
    ['over-long docId', { docId: 'd'.repeat(17) }],
    ['non-string clientId', { clientId: 7 }],
    ['empty clientId', { clientId: '' }],
    ['over-long clientId', { clientId: 'c'.repeat(17) }],
    // A store may keep a client id as UTF-8, where every lone surrogate is U+FFFD: two ids
    // differing only there would share one mark.
    ['clientId with a lone high surrogate', { clientId: 'c\ud800' }],
    ['clientId with a lone low surrogate', { clientId: '\udc00c' }],
    ['epoch with a lone surrogate', { epoch: 'e\ud800' }],
    ['seq 0', { seq: 0 }],
    ['seq -1', { seq: -1 }],
    ['seq 1.5', { seq: 1.5 }],
    ['seq "1"', { seq: '1' }],
    ['seq NaN', { seq: Number.NaN }],
    ['seq 2**53', { seq: 2 ** 53 }],
    ['seq Infinity', { seq: Number.POSITIVE_INFINITY }],
    ['baseVersion -1', { baseVersion: -1 }],
    ["baseVersion '5'", { baseVersion: '5' }],
    ['baseVersion NaN', { baseVersion: Number.NaN }],
    ['baseVersion 2**53', { baseVersion: 2 ** 53 }],
    ['baseVersion 1.5', { baseVersion: 1.5 }],
    ['missing baseVersion', { baseVersion: undefined }],
    ['non-string author', { author: 5 }],
  ];

  it.each(cases)('rejects %s', async (_, overrides) => {
    const h = harness({ maxDocIdLength: 16, maxClientIdLength: 16 });
    await fill(h, ['hello']);
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ baseVersion: 1, op: [5, 'x'], ...overrides })), ErrorCode.BadRequest);
  });

  it('accepts ids of exactly the configured maximum length', async () => {
    const h = harness({ maxDocIdLength: 16, maxClientIdLength: 16 });
    await expect(
      h.sequencer.submit(req({ docId: 'd'.repeat(16), clientId: 'c'.repeat(16), baseVersion: 0, op: ['x'] })),
    ).resolves.toMatchObject({ duplicate: false, version: 1 });
  });

  it('rejects a client id or claimed epoch holding a lone surrogate in open, restore and getClientMark too, and changes nothing', async () => {
    const h = harness();
    await fill(h, ['hello']);
    const { epoch } = await h.sequencer.open(DOC, 'reader');
    const lost = { epoch, version: 1, checksum: 0 };
    const refusals: Array<[string, () => Promise<unknown>]> = [
      ['open', () => h.sequencer.open(DOC, 'c\ud800')],
      ['open with a claim', () => h.sequencer.open(DOC, 'reader', 1, { epoch: `${epoch}\udc00`, checksum: 0 })],
      ['getClientMark', () => h.sequencer.getClientMark(DOC, '\udc00')],
      ['restore', () => h.sequencer.restore({ docId: DOC, clientId: 'c\ud800', lost, samples: [], text: 'x' })],
      ['restore of a lost epoch', () => h.sequencer.restore({ docId: DOC, clientId: 'c', lost: { ...lost, epoch: 'e\ud800' }, samples: [], text: 'x' })],
    ];
    for (const [what, call] of refusals) {
      const e = await expectOtterError(call(), ErrorCode.BadRequest);
      expect(e.message, what).toMatch(/lone surrogate/);
    }
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe('hello');
    expect(h.events).toHaveLength(1);
  });

  it('rejects a request that is not an object', async () => {
    const h = harness();
    await fill(h, ['hello']);
    await rejectsUnchanged(h, () => h.sequencer.submit(null as unknown as SubmitRequest), ErrorCode.BadRequest);
    await rejectsUnchanged(h, () => h.sequencer.submit('submit' as unknown as SubmitRequest), ErrorCode.BadRequest);
  });

  it('rejects malformed versions and ids in getOps and getSnapshot', async () => {
    const h = harness();
    await fill(h, ['hello']);
    const bad = [-1, 1.5, Number.NaN, 2 ** 53, '1'] as unknown as number[];
    for (const v of bad) {
      await rejectsUnchanged(h, () => h.sequencer.getSnapshot(DOC, v), ErrorCode.BadRequest);
      await rejectsUnchanged(h, () => h.sequencer.getOps(DOC, v), ErrorCode.BadRequest);
      await rejectsUnchanged(h, () => h.sequencer.getOps(DOC, 0, v), ErrorCode.BadRequest);
    }
    await rejectsUnchanged(h, () => h.sequencer.getSnapshot(42 as unknown as string), ErrorCode.BadRequest);
    await rejectsUnchanged(h, () => h.sequencer.getOps('', 0), ErrorCode.BadRequest);
  });

  it('does not consume the seq: the same seq is accepted afterwards', async () => {
    const h = harness();
    await fill(h, ['hello']);
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ baseVersion: -1, op: [5, '!'] })), ErrorCode.BadRequest);
    await expect(h.sequencer.submit(req({ baseVersion: 1, op: [5, '!'] }))).resolves.toMatchObject({
      duplicate: false,
      version: 2,
    });
  });
});

describe('invalid-op', () => {
  const malformed: Array<[string, unknown]> = [
    ['a string', 'abc'],
    ['null', null],
    ['an object', { 0: 5 }],
    ['a zero component', [5, 0]],
    ['minus zero', [5, -0]],
    ['an empty insert', [5, '']],
    ['a fractional retain', [4.5, 'x', 0.5]],
    ['a NaN component', [Number.NaN]],
    ['an unsafe retain', [2 ** 53]],
    ['a null component', [5, null]],
    ['a nested array', [[5]]],
    ['an insert holding a lone high surrogate', [5, '\uD83D']],
    ['an insert holding a lone low surrogate', ['\uDE00x', 5]],
  ];

  it.each(malformed)('rejects an op that is %s', async (_, op) => {
    const h = harness();
    await fill(h, ['hello']);
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ baseVersion: 1, op })), ErrorCode.InvalidOp);
  });

  it('rejects an op whose base length does not match the document at its base version', async () => {
    const h = harness();
    await fill(h, ['hello', ' world']); // v1 'hello' (5), v2 'hello world' (11)
    // At the head.
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ baseVersion: 2, op: [5, 'x'] })), ErrorCode.InvalidOp);
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ baseVersion: 2, op: [12, 'x'] })), ErrorCode.InvalidOp);
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ baseVersion: 2, op: [] })), ErrorCode.InvalidOp);
    // Late: it fits the head's length but not version 1's.
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ baseVersion: 1, op: [11, 'x'] })), ErrorCode.InvalidOp);
    // Late, at version 0 (empty).
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ baseVersion: 0, op: [5, 'x'] })), ErrorCode.InvalidOp);
    // The seq was not consumed.
    await expect(h.sequencer.submit(req({ baseVersion: 1, op: [5, '!'] }))).resolves.toMatchObject({ version: 3 });
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe('hello world!');
  });

  it('rejects an op splitting a surrogate pair', async () => {
    const h = harness();
    await fill(h, ['a😀b']); // a, D83D, DE00, b
    const splitting: Component[][] = [
      [2, 'x', 2], // insert between the halves
      [1, -1, 2], // delete the high half
      [2, -1, 1], // delete the low half
      [1, 'x', -1, 2], // replace the high half
    ];
    for (const op of splitting) {
      await rejectsUnchanged(h, () => h.sequencer.submit(req({ baseVersion: 1, op })), ErrorCode.InvalidOp);
    }
    // The same edits on whole code points are fine.
    await expect(h.sequencer.submit(req({ baseVersion: 1, op: [1, -2, 1] }))).resolves.toMatchObject({ version: 2 });
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe('ab');
  });
});

describe('too-large', () => {
  it('rejects an op over maxOpLength (components + inserted code units)', async () => {
    const maxOpLength = 10;
    const h = harness({ maxOpLength });
    // Exactly at the limit: 1 component + 9 code units.
    await h.sequencer.submit(req({ clientId: 'a', baseVersion: 0, op: ['123456789'] }));
    const err = await rejectsUnchanged(
      h,
      () => h.sequencer.submit(req({ clientId: 'a', seq: 2, baseVersion: 1, op: [9, '123456789'] })), // 2 + 9 = 11
      ErrorCode.TooLarge,
    );
    expect(err.message).toContain(String(maxOpLength));
    // Many components count too: 11 components, no text beyond 5 code units.
    await rejectsUnchanged(
      h,
      () => h.sequencer.submit(req({ clientId: 'a', seq: 2, baseVersion: 1, op: [1, 'a', 1, 'b', 1, 'c', 1, 'd', 1, 'e', 5] })),
      ErrorCode.TooLarge,
    );
    // The seq was not consumed; exactly the limit passes.
    await expect(
      h.sequencer.submit(req({ clientId: 'a', seq: 2, baseVersion: 1, op: [9, '12345678'] })),
    ).resolves.toMatchObject({ version: 2 });
  });

  it('answers a resubmission that grew past maxOpLength in the client as the duplicate it is', async () => {
    const h = harness({ maxOpLength: 4 });
    await h.sequencer.submit(req({ clientId: 'b', baseVersion: 0, op: ['Q'] }));
    // a's op (size 4) lands after b's at version 2, as [1, 'abc'] (size 5).
    await expect(h.sequencer.submit(req({ clientId: 'a', baseVersion: 0, op: ['abc'] }))).resolves.toMatchObject({ version: 2 });
    // The ack is lost; a's client rebased its op over b's and resends it: bigger, but the same op.
    await expect(h.sequencer.submit(req({ clientId: 'a', baseVersion: 1, op: [1, 'abc'] }))).resolves.toMatchObject({
      duplicate: true,
      version: 2,
      op: [1, 'abc'],
    });
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe('Qabc');
  });

  it('rejects an op that would grow the document over maxDocLength', async () => {
    const maxDocLength = 20;
    const h = harness({ maxDocLength });
    await fill(h, ['0123456789', '01234567']); // 18 code units at v2
    const err = await rejectsUnchanged(
      h,
      () => h.sequencer.submit(req({ baseVersion: 2, op: [18, 'abc'] })), // 21
      ErrorCode.TooLarge,
    );
    expect(err.message).toContain(String(maxDocLength));
    // A late op that fits its base but not the head after rebasing.
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ baseVersion: 1, op: [10, 'abc'] })), ErrorCode.TooLarge);
    // Exactly the limit is accepted.
    await expect(h.sequencer.submit(req({ baseVersion: 2, op: [18, 'ab'] }))).resolves.toMatchObject({ version: 3 });
    expect((await h.sequencer.getSnapshot(DOC)).text).toHaveLength(maxDocLength);
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ seq: 2, baseVersion: 3, op: [20, '!'] })), ErrorCode.TooLarge);
    // Shrinking or replacing in place is still fine at the limit.
    await expect(h.sequencer.submit(req({ seq: 2, baseVersion: 3, op: ['!', -1, 19] }))).resolves.toMatchObject({
      version: 4,
    });
  });
});

describe('version-ahead', () => {
  it('rejects a base version newer than the head, and reads past it', async () => {
    const h = harness();
    await fill(h, ['hello']);
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ baseVersion: 2, op: [5, 'x'] })), ErrorCode.VersionAhead);
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ baseVersion: 1000, op: [5, 'x'] })), ErrorCode.VersionAhead);
    await rejectsUnchanged(h, () => h.sequencer.getSnapshot(DOC, 2), ErrorCode.VersionAhead);
    await rejectsUnchanged(h, () => h.sequencer.getOps(DOC, 2), ErrorCode.VersionAhead);
    // A new document is at version 0.
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ docId: 'new', baseVersion: 1 })), ErrorCode.VersionAhead, 'new');
    expect(await h.sequencer.getOps(DOC, 1)).toEqual([]);
  });
});

describe('history-gone', () => {
  it('rejects submissions and reads older than the retained history', async () => {
    const h = harness({ snapshotEvery: 2, retention: { ops: 2 } });
    await fill(h, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']);
    const trimmedTo = (await h.store.load(DOC)).trimmedTo;
    expect(trimmedTo).toBeGreaterThan(0);
    expect(trimmedTo).toBeGreaterThanOrEqual(10 - 2 - 2); // window 2, snapshots every 2
    expect(trimmedTo).toBeLessThanOrEqual(10 - 2);
    const texts = 'abcdefghij';
    for (const base of [0, trimmedTo - 1]) {
      await rejectsUnchanged(
        h,
        () => h.sequencer.submit(req({ baseVersion: base, op: fromPatch(base, base, 0, '!') })),
        ErrorCode.HistoryGone,
      );
      await rejectsUnchanged(h, () => h.sequencer.getOps(DOC, base), ErrorCode.HistoryGone);
      await rejectsUnchanged(h, () => h.sequencer.getSnapshot(DOC, base), ErrorCode.HistoryGone);
    }
    // The trim point itself is still retained.
    expect(await h.sequencer.getSnapshot(DOC, trimmedTo)).toMatchObject({ version: trimmedTo, text: texts.slice(0, trimmedTo) });
    expect((await h.sequencer.getOps(DOC, trimmedTo)).map((r) => r.version)).toEqual(
      Array.from({ length: 10 - trimmedTo }, (_, i) => trimmedTo + 1 + i),
    );
    await expect(
      h.sequencer.submit(req({ baseVersion: trimmedTo, op: fromPatch(trimmedTo, 0, 0, '!') })),
    ).resolves.toMatchObject({ version: 11, duplicate: false });
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe(`!${texts}`);
  });

  it('rejects reads older than the retained history served from the store', async () => {
    // No memory history: every read goes to the store.
    const h = harness({ snapshotEvery: 3, retention: { ops: 3 }, memoryHistory: 0 });
    await fill(h, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    const trimmedTo = (await h.store.load(DOC)).trimmedTo;
    expect(trimmedTo).toBeGreaterThan(0);
    await rejectsUnchanged(h, () => h.sequencer.getOps(DOC, trimmedTo - 1), ErrorCode.HistoryGone);
    await rejectsUnchanged(h, () => h.sequencer.getSnapshot(DOC, trimmedTo - 1), ErrorCode.HistoryGone);
    expect(replay(await h.sequencer.getOps(DOC, trimmedTo), (await h.sequencer.getSnapshot(DOC, trimmedTo)).text)).toBe(
      'abcdefghi',
    );
  });
});

describe('seq-gap', () => {
  it('rejects a first seq other than 1', async () => {
    const h = harness();
    await fill(h, ['hello']);
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ seq: 2, baseVersion: 1, op: [5, 'x'] })), ErrorCode.SeqGap);
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ seq: 99, baseVersion: 1, op: [5, 'x'] })), ErrorCode.SeqGap);
  });

  it('rejects a seq skipping past last + 1', async () => {
    const h = harness();
    await fill(h, ['hello']);
    await h.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [5, 'x'] }));
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ seq: 3, baseVersion: 2, op: [6, 'y'] })), ErrorCode.SeqGap);
    await expect(h.sequencer.submit(req({ seq: 2, baseVersion: 2, op: [6, 'y'] }))).resolves.toMatchObject({ version: 3 });
  });
});

describe('seq-reused', () => {
  it('rejects the last seq resubmitted with different content', async () => {
    const h = harness();
    await fill(h, ['hello']);
    await h.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [5, 'x'] }));
    // Different op, same base.
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [5, 'y'] })), ErrorCode.SeqReused);
    // An older base whose op, rebased, is not the original.
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ seq: 1, baseVersion: 0, op: ['z'] })), ErrorCode.SeqReused);
    // A base at or after the version it produced.
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ seq: 1, baseVersion: 2, op: [6, 'x'] })), ErrorCode.SeqReused);
    // Malformed for the document: never a match.
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [3, 'x'] })), ErrorCode.SeqReused);
  });

  it('rejects it after a restart too (marks loaded from the store)', async () => {
    const store = new MemoryStore();
    const h1 = harness({}, store);
    await fill(h1, ['hello']);
    await h1.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [5, 'x'] }));
    const h2 = harness({}, store);
    await rejectsUnchanged(h2, () => h2.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [5, 'y'] })), ErrorCode.SeqReused);
    await expect(h2.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [5, 'x'] }))).resolves.toMatchObject({
      duplicate: true,
      version: 2,
      op: [5, 'x'],
    });
  });
});

describe('seq-stale', () => {
  it('rejects a seq older than the last applied one that is not in the history after its base', async () => {
    const h = harness();
    await h.sequencer.submit(req({ seq: 1, baseVersion: 0, op: ['a'] }));
    await h.sequencer.submit(req({ seq: 2, baseVersion: 1, op: [1, 'b'] }));
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ seq: 1, baseVersion: 2, op: [2, 'c'] })), ErrorCode.SeqStale);
  });

  it('answers an older seq resubmitted with its original content as a duplicate of its version', async () => {
    const h = harness();
    await h.sequencer.submit(req({ seq: 1, baseVersion: 0, op: ['a'] }));
    await h.sequencer.submit(req({ seq: 2, baseVersion: 1, op: [1, 'b'] }));
    await expect(h.sequencer.submit(req({ seq: 1, baseVersion: 0, op: ['a'] }))).resolves.toMatchObject({
      duplicate: true,
      version: 1,
      op: ['a'],
    });
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ seq: 1, baseVersion: 0, op: ['z'] })), ErrorCode.SeqReused);
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe('ab');
  });
});

describe('storage-failed', () => {
  it('rejects when the append fails; a resubmission then applies exactly once', async () => {
    const h = harness();
    await fill(h, ['hello']);
    h.store.appendFailures.push({ error: new Error('disk on fire') });
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [5, '!'] })), ErrorCode.StorageFailed);
    expect((await h.store.load(DOC)).ops.map((r) => r.version)).toEqual([1]);
    // Resubmitted as the client would: same seq, same base, same op.
    await expect(h.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [5, '!'] }))).resolves.toMatchObject({
      duplicate: false,
      version: 2,
      op: [5, '!'],
    });
    await expect(h.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [5, '!'] }))).resolves.toMatchObject({
      duplicate: true,
      version: 2,
      op: [5, '!'],
    });
    const log = await h.sequencer.getOps(DOC, 0);
    expect(log.filter((r) => r.clientId === 'c').map((r) => [r.seq, r.version])).toEqual([[1, 2]]);
    expect(h.events.filter((e) => e.record.clientId === 'c')).toHaveLength(1);
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe('hello!');
  });

  it('a failed append (the store failing, not a lost race) also refuses at once the submissions queued behind it: none waits for another attempt on a store that is down', async () => {
    const h = harness();
    await fill(h, ['hello']);
    h.store.appendFailures.push({ when: (_, recs) => recs.some((r) => r.clientId === 'a'), error: new Error('Redis did not answer EVALSHA within 5000 ms') });
    let release!: () => void;
    h.store.appendGate = { docId: DOC, gate: new Promise<void>((r) => (release = r)) };
    const appends = h.store.appends.length;
    const first = h.sequencer.submit(req({ clientId: 'a', seq: 1, baseVersion: 1, op: [5, 'A'] }));
    await tick();
    const queued = h.sequencer.submit(req({ clientId: 'b', seq: 1, baseVersion: 1, op: [5, 'B'] }));
    release();
    await expectOtterError(first, ErrorCode.StorageFailed);
    await expectOtterError(queued, ErrorCode.StorageFailed);
    // One attempt in all: the queued submission was not tried on the failing store.
    expect(h.store.appends.length - appends).toBeLessThanOrEqual(1);
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe('hello');
    h.store.appendGate = undefined;
    await expect(h.sequencer.submit(req({ clientId: 'b', seq: 1, baseVersion: 1, op: [5, 'B'] }))).resolves.toMatchObject({ version: 2 });
  });

  it('rejects every submission of the failed batch, and none of it is half-applied', async () => {
    const h = harness();
    await fill(h, ['hello']);
    h.store.appendFailures.push({ when: (_, recs) => recs.some((r) => r.clientId === 'b'), error: new Error('write failed') });
    // Hold the first append so the next two submissions queue up into one batch.
    let release!: () => void;
    h.store.appendGate = { docId: DOC, gate: new Promise<void>((r) => (release = r)) };
    const first = h.sequencer.submit(req({ clientId: 'a', seq: 1, baseVersion: 1, op: [5, 'A'] }));
    await tick();
    h.store.appendGate = undefined;
    const batch = [
      h.sequencer.submit(req({ clientId: 'b', seq: 1, baseVersion: 1, op: [5, 'B'] })),
      h.sequencer.submit(req({ clientId: 'c', seq: 1, baseVersion: 1, op: [5, 'C'] })),
    ];
    release();
    await expect(first).resolves.toMatchObject({ duplicate: false, version: 2 });
    for (const p of batch) await expectOtterError(p, ErrorCode.StorageFailed);
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe('helloA');
    expect((await h.store.load(DOC)).ops.map((r) => r.clientId)).toEqual(['setup', 'a']);
    expect(h.events.map((e) => e.record.clientId)).toEqual(['setup', 'a']);
    expect(await h.sequencer.getClientMark(DOC, 'b')).toBeUndefined();
    // Both retry with the same seq and apply once each.
    await expect(h.sequencer.submit(req({ clientId: 'b', seq: 1, baseVersion: 1, op: [5, 'B'] }))).resolves.toMatchObject({
      duplicate: false,
      version: 3,
    });
    await expect(h.sequencer.submit(req({ clientId: 'c', seq: 1, baseVersion: 1, op: [5, 'C'] }))).resolves.toMatchObject({
      duplicate: false,
      version: 4,
    });
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe('helloABC');
    expect(h.events.map((e) => e.record.clientId)).toEqual(['setup', 'a', 'b', 'c']);
  });

  it('rejects when loading the document fails, and recovers', async () => {
    const h = harness();
    h.store.loadError = new Error('cannot read');
    await expectOtterError(h.sequencer.submit(req({ seq: 1, baseVersion: 0, op: ['x'] })), ErrorCode.StorageFailed);
    await expectOtterError(h.sequencer.getSnapshot(DOC), ErrorCode.StorageFailed);
    h.store.loadError = undefined;
    expect(h.events).toHaveLength(0);
    await expect(h.sequencer.submit(req({ seq: 1, baseVersion: 0, op: ['x'] }))).resolves.toMatchObject({ version: 1 });
  });

  it('rejects (rather than hangs) when fetching older history fails', async () => {
    // No memory history: a late op needs the store's ops to be rebased.
    const h = harness({ memoryHistory: 0 });
    await fill(h, ['a', 'b', 'c']);
    h.store.getOpsError = new Error('read failed');
    await rejectsUnchanged(
      h,
      () => within(h.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [1, 'x'] })), 5000, 'a late submit'),
      ErrorCode.StorageFailed,
    );
    h.store.getOpsError = undefined;
    await expect(h.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [1, 'x'] }))).resolves.toMatchObject({
      duplicate: false,
      version: 4,
    });
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe('abcx');
  });
});

describe('closed', () => {
  it('rejects submissions after close, and finishes those queued before it', async () => {
    const h = harness();
    await fill(h, ['hello']);
    const queued = h.sequencer.submit(req({ seq: 1, baseVersion: 1, op: [5, '!'] }));
    const closing = h.sequencer.close();
    await expectOtterError(
      h.sequencer.submit(req({ clientId: 'late', seq: 1, baseVersion: 1, op: [5, '?'] })),
      ErrorCode.Closed,
    );
    await within(closing, 5000, 'close');
    await expect(queued).resolves.toMatchObject({ duplicate: false, version: 2 });
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ seq: 2, baseVersion: 2, op: [6, '?'] })), ErrorCode.Closed);
    await rejectsUnchanged(h, () => h.sequencer.submit(req({ clientId: 'late', seq: 1, baseVersion: 2, op: [6, '?'] })), ErrorCode.Closed);
    expect((await h.store.load(DOC)).ops.map((r) => r.clientId)).toEqual(['setup', 'c']);
    expect(h.events.map((e) => e.record.clientId)).toEqual(['setup', 'c']);
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe('hello!');
  });
});

describe('a poison op in a batch', () => {
  it('is rejected alone while the rest of its batch is applied', async () => {
    const h = harness();
    await fill(h, ['hello']); // v1
    // Hold an append so the following submissions queue up into one batch.
    let release!: () => void;
    h.store.appendGate = { docId: DOC, gate: new Promise<void>((r) => (release = r)) };
    const head = h.sequencer.submit(req({ clientId: 'a', seq: 1, baseVersion: 1, op: [5, ' world'] })); // v2
    await tick();
    h.store.appendGate = undefined;
    // Shape-valid; base length 11 fits the head (v2) but not version 1, so only its rebase fails.
    const poison = h.sequencer.submit(req({ clientId: 'p', seq: 1, baseVersion: 1, op: [11, '☠'] }));
    const before = h.sequencer.submit(req({ clientId: 'b', seq: 1, baseVersion: 1, op: ['<', 5] }));
    const after = h.sequencer.submit(req({ clientId: 'c', seq: 1, baseVersion: 2, op: [11, '>'] }));
    release();
    await expect(head).resolves.toMatchObject({ version: 2 });
    await expectOtterError(poison, ErrorCode.InvalidOp);
    await expect(before).resolves.toMatchObject({ duplicate: false, version: 3, op: ['<', 11] });
    await expect(after).resolves.toMatchObject({ duplicate: false, version: 4, op: [12, '>'] });
    // b and c were committed together, in one append, without the poison.
    const batchAppend = h.store.appends.find((a) => a.records.some((r) => r.clientId === 'b'));
    expect(batchAppend?.records.map((r) => r.clientId)).toEqual(['b', 'c']);
    expect((await h.sequencer.getSnapshot(DOC)).text).toBe('<hello world>');
    expect(h.events.map((e) => e.record.clientId)).toEqual(['setup', 'a', 'b', 'c']);
    expect(await h.sequencer.getClientMark(DOC, 'p')).toBeUndefined();
    // The poisoner's seq 1 is still free.
    await expect(h.sequencer.submit(req({ clientId: 'p', seq: 1, baseVersion: 4, op: [13, '.'] }))).resolves.toMatchObject({
      version: 5,
    });
  });
});
