/**
 * Client marks live in the store and are only cached in memory: a document opens without
 * reading them, a submission's mark is read on demand before it is decided, and exactly-once
 * holds for a client whose mark the cache forgot.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EMPTY_CHECKSUM, chainChecksum } from '../../src/protocol/checksum.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Sequencer, type SequencerOptions } from '../../src/server/sequencer.js';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import type { ClientMark, Store } from '../../src/server/store.js';
import { ControlledStore, deferred, expectOtterError, replay } from './helpers.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { tick, within } from '../support/wait.js';
import { fromPatch } from '../../src/ot/index.js';

const DOC = 'doc';

const sequencers: Sequencer[] = [];
const stores: Store[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of sequencers.splice(0)) await within(s.close(), 5000, 'Sequencer.close');
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) removeTempDir(d);
});

type Kind = 'memory' | 'sqlite';

function makeStore(kind: Kind): ControlledStore {
  let inner: Store;
  if (kind === 'memory') {
    inner = new MemoryStore();
  } else {
    const dir = makeTempDir('otter-marks-');
    dirs.push(dir);
    inner = new SqliteStore(join(dir, 'otter.db'));
  }
  stores.push(inner);
  return new ControlledStore(inner);
}

function sequencer(store: Store, options: SequencerOptions = {}): Sequencer {
  const s = new Sequencer(store, { idleTimeout: 0, ...options });
  sequencers.push(s);
  return s;
}

/** Every client id the sequencer asked the store for, in order. */
function marksAskedFor(store: ControlledStore): string[] {
  return store.markReads.flatMap((r) => r.clientIds);
}

describe.each<Kind>(['memory', 'sqlite'])('client marks (%s store)', (kind) => {
  it('a document with 200,000 marks opens reading only the mark of the client that opens it', async () => {
    const store = makeStore(kind);
    const marks: ClientMark[] = Array.from({ length: 200_000 }, (_, i) => ({
      clientId: `c-${i}`,
      seq: 1,
      version: 1,
      baseVersion: 0,
      fingerprint: `fp-${i}`,
    }));
    await store.inner.append(DOC, 0, [{ version: 1, op: ['x'], clientId: 'c-0', seq: 1, checksum: chainChecksum(EMPTY_CHECKSUM, ['x']) }], marks, { epoch: 'e' });
    const s = sequencer(store);
    const opened = await s.open(DOC, 'newcomer');
    expect(opened).toMatchObject({ kind: 'snapshot', version: 1, seq: 0 });
    expect(store.markReads).toEqual([{ docId: DOC, clientIds: ['newcomer'], found: 0 }]);
    // One of the 200,000 is read when asked for, and only it.
    expect((await s.open(DOC, 'c-123456')).seq).toBe(1);
    expect((await s.getClientMark(DOC, 'c-199999'))?.fingerprint).toBe('fp-199999');
    expect(marksAskedFor(store)).toEqual(['newcomer', 'c-123456', 'c-199999']);
    // A submit of a client whose mark was not cached reads that mark, and only it.
    await s.submit({ docId: DOC, clientId: 'c-77', seq: 2, baseVersion: 1, op: [1, 'y'] });
    expect(marksAskedFor(store).slice(3)).toEqual(['c-77']);
  });

  it('recognises the resubmission of a client whose mark the cache forgot, and applies its next op once', async () => {
    const store = makeStore(kind);
    const s = sequencer(store, { cachedMarks: 2, memoryHistory: 0 });
    await s.submit({ docId: DOC, clientId: 'b', seq: 1, baseVersion: 0, op: ['b'] });
    // a's op was sent before it saw b's: applied late, as [1, 'A'] at version 2.
    expect(await s.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['A'] })).toMatchObject({
      duplicate: false,
      version: 2,
      op: [1, 'A'],
    });
    // Three other clients push a's mark out of a cache of two.
    for (const [i, id] of ['c', 'd', 'e'].entries()) {
      await s.submit({ docId: DOC, clientId: id, seq: 1, baseVersion: 2 + i, op: fromPatch(2 + i, 2 + i, 0, id) });
    }
    const before = store.markReads.length;
    // The same op again (a reconnect that resends its op in flight) ...
    expect(await s.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['A'] })).toMatchObject({
      duplicate: true,
      version: 2,
    });
    expect(store.markReads.slice(before).map((r) => r.clientIds)).toEqual([['a']]);
    // ... and as the client rebased it over b's op (compared with the stored history).
    expect(await s.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 1, op: [1, 'A'] })).toMatchObject({
      duplicate: true,
      version: 2,
    });
    // A different op under the same seq is refused, and the next seq is applied once.
    await expectOtterError(s.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 1, op: [1, 'Z'] }), ErrorCode.SeqReused);
    await expectOtterError(s.submit({ docId: DOC, clientId: 'a', seq: 3, baseVersion: 5, op: fromPatch(5, 0, 0, 'Z') }), ErrorCode.SeqGap);
    expect(await s.submit({ docId: DOC, clientId: 'a', seq: 2, baseVersion: 5, op: fromPatch(5, 5, 0, '!') })).toMatchObject({
      duplicate: false,
      version: 6,
    });
    expect((await s.getSnapshot(DOC)).text).toBe('bAcde!');
    expect(replay(await store.getOps(DOC, 0, 6))).toBe('bAcde!');
  });

  it('regression: reading the marks a batch lacks does not forget the cached mark of another of its clients', async () => {
    const store = makeStore(kind);
    const s = sequencer(store, { cachedMarks: 1, memoryHistory: 0 });
    await s.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['a'] });
    // A resend of a's op waits for its history to be read back; meanwhile a resends it again,
    // and b (whose mark is not cached) sends its first op: one batch, with a's mark cached.
    const gate = deferred();
    store.getOpsGate = gate.promise;
    const first = s.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['a'] });
    await tick();
    const again = s.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['a'] });
    const other = s.submit({ docId: DOC, clientId: 'b', seq: 1, baseVersion: 0, op: ['b'] });
    store.getOpsGate = undefined;
    gate.resolve();
    expect(await first).toMatchObject({ duplicate: true, version: 1 });
    expect(await again).toMatchObject({ duplicate: true, version: 1 });
    expect(await other).toMatchObject({ duplicate: false, version: 2 });
    expect((await s.getSnapshot(DOC)).text).toBe('ab');
  });

  it('keeps a mark made by an op not yet committed, even with a cache of none', async () => {
    const store = makeStore(kind);
    const s = sequencer(store, { cachedMarks: 0 });
    await s.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['A'] });
    // One batch: a's later seqs and resends of them, decided while nothing of it is committed.
    const answers = await s.submitMany([
      { docId: DOC, clientId: 'a', seq: 2, baseVersion: 1, op: [1, 'B'] },
      { docId: DOC, clientId: 'b', seq: 1, baseVersion: 1, op: [1, 'x'] },
      { docId: DOC, clientId: 'a', seq: 2, baseVersion: 1, op: [1, 'B'] },
      { docId: DOC, clientId: 'a', seq: 3, baseVersion: 1, op: [1, 'C'] },
      { docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['A'] },
    ]);
    expect(answers.map((a) => ('version' in a ? [a.duplicate, a.version] : a.code))).toEqual([
      [false, 2],
      [false, 3],
      [true, 2],
      [false, 4],
      [true, 1],
    ]);
    // While a's next op waits for the store, its resend waits in the queue behind it.
    const gate = deferred();
    store.appendGate = { docId: DOC, gate: gate.promise };
    const next = s.submit({ docId: DOC, clientId: 'a', seq: 4, baseVersion: 4, op: [4, 'D'] });
    const resend = s.submit({ docId: DOC, clientId: 'a', seq: 4, baseVersion: 4, op: [4, 'D'] });
    gate.resolve();
    expect(await next).toMatchObject({ duplicate: false, version: 5 });
    expect(await resend).toMatchObject({ duplicate: true, version: 5 });
    expect((await s.getSnapshot(DOC)).text).toBe('ABxCD');
  });

  it('a far-behind submission whose seq skips ahead of its stored mark is refused without reading history', async () => {
    const store = makeStore(kind);
    const s = sequencer(store, { cachedMarks: 1, memoryHistory: 2, catchUpBeyond: 2 });
    await s.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['A'] });
    for (let v = 1; v <= 8; v++) await s.submit({ docId: DOC, clientId: 'w', seq: v, baseVersion: v, op: [v, 'w'] });
    let reads = 0;
    const getOps = store.getOps.bind(store);
    store.getOps = (...args) => {
      reads++;
      return getOps(...args);
    };
    await expectOtterError(s.submit({ docId: DOC, clientId: 'a', seq: 9, baseVersion: 1, op: [1, '?'] }), ErrorCode.SeqGap);
    expect(reads).toBe(0);
    // Its next seq is caught up over the stored history and applied.
    expect(await s.submit({ docId: DOC, clientId: 'a', seq: 2, baseVersion: 1, op: [1, '!'] })).toMatchObject({ version: 10 });
    expect(reads).toBeGreaterThan(0);
    expect((await s.getSnapshot(DOC)).text).toBe('Awwwwwwww!');
  });
});
