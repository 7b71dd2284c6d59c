/**
 * Sequencer.refresh: two sequencers over one store, as two servers over one shared store.
 * What one commits, the other publishes on refresh — each op once, in version order — and
 * then builds on; a refresh that cannot continue the held state reloads the document instead.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Component } from '../../src/ot/index.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Sequencer } from '../../src/server/sequencer.js';
import { type OpRecord, type Store, VersionConflictError } from '../../src/server/store.js';
import { ErrorCode, type OtterError } from '../../src/protocol/errors.js';
import { StorageCorruptError } from '../../src/server/integrity.js';

/** A MemoryStore that counts its appends (refused ones included), whole-document loads, reads of ops and of marks. */
class CountingStore extends MemoryStore {
  appends = 0;
  loads = 0;
  reads = 0;
  markReads = 0;

  override getMarks(...args: Parameters<MemoryStore['getMarks']>): ReturnType<MemoryStore['getMarks']> {
    this.markReads++;
    return super.getMarks(...args);
  }

  override append(...args: Parameters<MemoryStore['append']>): Promise<void> {
    this.appends++;
    return super.append(...args);
  }

  override load(...args: Parameters<MemoryStore['load']>): ReturnType<MemoryStore['load']> {
    this.loads++;
    return super.load(...args);
  }

  override getOps(...args: Parameters<MemoryStore['getOps']>): ReturnType<MemoryStore['getOps']> {
    this.reads++;
    return super.getOps(...args);
  }
}

const DOC = 'doc';
const opened: Sequencer[] = [];

function sequencer(store: MemoryStore): { seq: Sequencer; published: OpRecord[] } {
  const seq = new Sequencer(store, { idleTimeout: 0 });
  opened.push(seq);
  const published: OpRecord[] = [];
  seq.onApplied((docId, r) => {
    if (docId === DOC) published.push(r);
  });
  return { seq, published };
}

/** Two sequencers on `store`: `a` to write, and `b`, which holds {@link DOC} open (it is loaded there). */
async function writerAndReader(store: MemoryStore): Promise<{ a: ReturnType<typeof sequencer>; b: ReturnType<typeof sequencer> }> {
  const a = sequencer(store);
  const b = sequencer(store);
  await b.seq.open(DOC, 'reader');
  return { a, b };
}

/** Inserts `text` at the end of a document of `length` code units. */
function append(length: number, text: string): Component[] {
  return length === 0 ? [text] : [length, text];
}

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
});

describe('Sequencer.refresh', () => {
  it('publishes what another sequencer committed, once and in order, and the next submission builds on it without a conflict', async () => {
    const store = new CountingStore();
    const { a, b } = await writerAndReader(store);
    let text = '';
    for (let i = 1; i <= 5; i++) {
      await a.seq.submit({ docId: DOC, clientId: 'ca', seq: i, baseVersion: i - 1, op: append(text.length, `${i}`) });
      text += `${i}`;
      if (i === 2 || i === 5) expect(await b.seq.refresh(DOC)).toBe(i === 2 ? 2 : 3);
    }
    expect(await b.seq.refresh(DOC)).toBe(0);
    expect(b.published.map((r) => r.version)).toEqual([1, 2, 3, 4, 5]);
    expect(b.published).toEqual(a.published);
    const appends = store.appends;
    const result = await b.seq.submit({ docId: DOC, clientId: 'cb', seq: 1, baseVersion: 5, op: append(5, 'b') });
    expect(result).toMatchObject({ duplicate: false, version: 6, depth: 0 });
    expect(store.appends).toBe(appends + 1); // one append: no conflict, no retry
    expect((await b.seq.getSnapshot(DOC)).text).toBe('12345b');
  });

  it('calls made while one is queued join it; a document not loaded is not loaded by a refresh', async () => {
    const store = new MemoryStore();
    const a = sequencer(store);
    const b = sequencer(store);
    expect(await b.seq.refresh(DOC)).toBe(0);
    expect(b.seq.openDocuments).toBe(0);
    await b.seq.open(DOC, 'reader');
    await a.seq.submit({ docId: DOC, clientId: 'ca', seq: 1, baseVersion: 0, op: ['x'] });
    // b's batch runs (and loses its race: v1 is a's); the refreshes wait behind it.
    const submitted = b.seq.submit({ docId: DOC, clientId: 'cb', seq: 1, baseVersion: 0, op: ['y'] });
    const first = b.seq.refresh(DOC);
    expect(b.seq.refresh(DOC)).toBe(first);
    expect(await submitted).toMatchObject({ duplicate: false, version: 2 });
    expect(await first).toBe(0); // the reload after the lost race published v1 already
    expect(b.published.map((r) => r.version)).toEqual([1, 2]);
  });

  it('forgets the marks of clients whose ops came from elsewhere: their resend is recognised as a duplicate', async () => {
    const store = new MemoryStore();
    const a = sequencer(store);
    const b = sequencer(store);
    await b.seq.submit({ docId: DOC, clientId: 'mover', seq: 1, baseVersion: 0, op: ['a'] });
    // The client moves to the other server and sends its next op there.
    await a.seq.submit({ docId: DOC, clientId: 'mover', seq: 2, baseVersion: 1, op: [1, 'b'] });
    expect(await b.seq.refresh(DOC)).toBe(1);
    // It comes back and resends seq 2: b must know it landed.
    const again = await b.seq.submit({ docId: DOC, clientId: 'mover', seq: 2, baseVersion: 1, op: [1, 'b'] });
    expect(again).toMatchObject({ duplicate: true, version: 2 });
    expect((await b.seq.getSnapshot(DOC)).text).toBe('ab');
  });

  it('reloads instead when the stored ops do not continue the held chain, publishing each op still once', async () => {
    const store = new MemoryStore();
    const { a, b } = await writerAndReader(store);
    await a.seq.submit({ docId: DOC, clientId: 'ca', seq: 1, baseVersion: 0, op: ['x'] });
    // Another writer's restore merge (seq 0) changes the recoveries too: taken by a reload.
    await a.seq.restore({
      docId: DOC,
      clientId: 'restorer',
      lost: { epoch: 'gone', version: 1, checksum: 1 },
      samples: [],
      text: 'kept',
    });
    expect(await b.seq.refresh(DOC)).toBe(2);
    expect(b.published.map((r) => r.version)).toEqual([1, 2]);
    expect(b.published).toEqual(a.published);
    expect(await b.seq.refresh(DOC)).toBe(0);
  });
});

describe('Sequencer.refresh with the ops a hint carried', () => {
  it('takes offered ops that continue the head without reading the store; reads it when they do not, or when asked without ops', async () => {
    const store = new CountingStore();
    const { a, b } = await writerAndReader(store);
    const results = [];
    for (let i = 1; i <= 3; i++) results.push(await a.seq.submit({ docId: DOC, clientId: 'ca', seq: i, baseVersion: i - 1, op: append(i - 1, `${i}`) }));
    const records = a.published.slice(0, 3);
    const reads = store.reads;
    // Offered in a shuffled order, with a stale repeat: taken in version order, once.
    expect(await b.seq.refresh(DOC, { ops: [records[1] as OpRecord, records[0] as OpRecord, records[0] as OpRecord] })).toBe(2);
    expect(store.reads).toBe(reads);
    // Ops that skip the head's next version: the store is read.
    await a.seq.submit({ docId: DOC, clientId: 'ca', seq: 4, baseVersion: 3, op: append(3, '4') });
    expect(await b.seq.refresh(DOC, { ops: [a.published[3] as OpRecord] })).toBe(2);
    expect(store.reads).toBe(reads + 1);
    expect(b.published.map((r) => r.version)).toEqual([1, 2, 3, 4]);
    expect(b.published).toEqual(a.published);
    // Asked without ops (a subscription restored, a check): the store is read.
    expect(await b.seq.refresh(DOC)).toBe(0);
    expect(store.reads).toBe(reads + 2);
    expect(results.map((r) => r.version)).toEqual([1, 2, 3]);
  });

  it('offered ops at or below the head were taken in already: a refresh offered only those reads nothing', async () => {
    const store = new CountingStore();
    const { a, b } = await writerAndReader(store);
    for (let i = 1; i <= 2; i++) await a.seq.submit({ docId: DOC, clientId: 'ca', seq: i, baseVersion: i - 1, op: append(i - 1, `${i}`) });
    const records = a.published.slice(0, 2);
    expect(await b.seq.refresh(DOC, { ops: records })).toBe(2);
    const reads = store.reads;
    expect(await b.seq.refresh(DOC, { ops: [records[1] as OpRecord] })).toBe(0);
    expect(store.reads).toBe(reads);
    expect(b.published).toEqual(a.published);
  });

  it('offered ops that do not chain on its checksum are not taken: the document is reloaded from the store, which is published', async () => {
    const store = new MemoryStore();
    const { a, b } = await writerAndReader(store);
    await a.seq.submit({ docId: DOC, clientId: 'ca', seq: 1, baseVersion: 0, op: ['x'] });
    const forged: OpRecord = { ...(a.published[0] as OpRecord), op: ['y'] };
    expect(await b.seq.refresh(DOC, { ops: [forged] })).toBe(1);
    expect(b.published).toEqual(a.published);
    expect((await b.seq.getSnapshot(DOC)).text).toBe('x');
  });
});

/**
 * A CountingStore whose refused appends carry the first `carry` ops past the expected head, as
 * RedisStore's do (read without counting: they come with the refusal).
 */
class HandingStore extends CountingStore {
  constructor(private readonly carry: number) {
    super();
  }

  override async append(...args: Parameters<MemoryStore['append']>): Promise<void> {
    try {
      await super.append(...args);
    } catch (e) {
      if (!(e instanceof VersionConflictError) || e.actual <= e.expected) throw e;
      const missed = (await MemoryStore.prototype.getOps.call(this, e.docId, e.expected, e.actual)).slice(0, this.carry);
      throw new VersionConflictError(e.docId, e.expected, e.actual, undefined, missed);
    }
  }
}

describe('an append that loses the race to another writer', () => {
  // The winner wrote 2 ops; the refusal carries none of them (as a store that reads nothing
  // with it), 1, or both.
  for (const carry of [undefined, 1, 2]) {
    it(`takes its batch back with its clients' marks, takes in what the other wrote (${carry ?? 'none'} of 2 carried by the refusal, the log read for the rest), and commits after it: no reload, each op published once, in order`, async () => {
      const store = carry === undefined ? new CountingStore() : new HandingStore(carry);
      const { a, b } = await writerAndReader(store);
      await b.seq.submit({ docId: DOC, clientId: 'cb', seq: 1, baseVersion: 0, op: ['b0'] });
      await a.seq.submit({ docId: DOC, clientId: 'ca', seq: 1, baseVersion: 1, op: [2, 'a1'] });
      await a.seq.submit({ docId: DOC, clientId: 'ca', seq: 2, baseVersion: 2, op: [4, 'a2'] });
      const [reads, loads, markReads] = [store.reads, store.loads, store.markReads];
      // B has not heard of A's ops: its append at head 1 conflicts, then lands after them.
      const result = await b.seq.submit({ docId: DOC, clientId: 'cb', seq: 2, baseVersion: 1, op: [2, 'b1'] });
      expect(result).toMatchObject({ duplicate: false, version: 4 });
      expect(store.reads - reads).toBe(carry === 2 ? 0 : 1);
      expect(store.markReads).toBe(markReads);
      expect(store.loads).toBe(loads);
      expect(b.published.map((r) => [r.version, r.clientId])).toEqual([
        [1, 'cb'],
        [2, 'ca'],
        [3, 'ca'],
        [4, 'cb'],
      ]);
      expect(b.published.slice(1, 3)).toEqual(a.published);
      expect(await a.seq.refresh(DOC)).toBe(1);
      expect((await a.seq.getSnapshot(DOC)).text).toBe('b0a1a2b1');
      expect((await b.seq.getSnapshot(DOC)).text).toBe('b0a1a2b1');
      // B's mark was taken back with the batch and made again by the retry: its resend is a duplicate.
      const again = await b.seq.submit({ docId: DOC, clientId: 'cb', seq: 2, baseVersion: 1, op: [2, 'b1'] });
      expect(again).toMatchObject({ duplicate: true, version: 4 });
    });
  }
});

describe('a restore that loses the race to another writer', () => {
  it('is decided again on what the other wrote and lands after it, once', async () => {
    const store = new CountingStore();
    const { a, b } = await writerAndReader(store);
    await a.seq.submit({ docId: DOC, clientId: 'ca', seq: 1, baseVersion: 0, op: ['a1'] });
    // B has not heard of A's op: its restore's append at head 0 conflicts, then lands after it.
    const lost = { epoch: 'gone', version: 3, checksum: 7 };
    const result = await b.seq.restore({ docId: DOC, clientId: 'rb', lost, samples: [], text: 'kept' });
    expect(result).toEqual({ applied: true, version: 2 });
    expect(b.published.map((r) => [r.version, r.clientId])).toEqual([
      [1, 'ca'],
      [2, 'rb'],
    ]);
    expect((await b.seq.getSnapshot(DOC)).text).toMatch(/^(a1kept|kepta1)$/);
    // The same lost state again: covered by the recovery now stored, nothing merged twice.
    expect(await a.seq.restore({ docId: DOC, clientId: 'ra', lost, samples: [], text: 'kept' })).toEqual({ applied: false, version: 2 });

  });

  it('with conflictRetries 0, is refused as retryable (storage-failed), nothing applied, and lands when retried', async () => {
    const store = new MemoryStore();
    const a = sequencer(store);
    const b = new Sequencer(store, { idleTimeout: 0, conflictRetries: 0 });
    opened.push(b);
    await b.open(DOC, 'reader');
    await a.seq.submit({ docId: DOC, clientId: 'ca', seq: 1, baseVersion: 0, op: ['a1'] });
    const request = { docId: DOC, clientId: 'rb', lost: { epoch: 'gone', version: 3, checksum: 7 }, samples: [], text: 'kept' };
    const refused = await b.restore(request).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((refused as OtterError).code).toBe(ErrorCode.StorageFailed);
    expect((await store.load(DOC)).head).toBe(1);
    expect(await b.restore(request)).toEqual({ applied: true, version: 2 });
  });
});

describe('a store that loses a loaded document, with onStoreLost (a Redis emptied or failed over)', () => {
  /**
   * A store whose data can be swapped for an empty one, as FLUSHALL does to a Redis, or for
   * `next` (a replica that lacks the last writes).
   */
  function losable(): { store: Store; lose: (next?: MemoryStore) => void } {
    const holder = { current: new MemoryStore() };
    const store = new Proxy({} as Store, {
      get(_target, key) {
        const value: unknown = Reflect.get(holder.current, key);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(holder.current) : value;
      },
    });
    return { store, lose: (next = new MemoryStore()) => (holder.current = next) };
  }

  function watched(store: Store): { seq: Sequencer; published: number[]; lost: string[] } {
    const lost: string[] = [];
    const seq = new Sequencer(store, { idleTimeout: 0, onStoreLost: (docId, detail) => lost.push(`${docId}: ${detail}`) });
    opened.push(seq);
    const published: number[] = [];
    seq.onApplied((docId, r) => {
      if (docId === DOC) published.push(r.version);
    });
    return { seq, published, lost };
  }

  it('the next commit finds it: the queued submission is refused as retryable, nothing is published twice, and an open with the old claim answers lost', async () => {
    const { store, lose } = losable();
    const { seq, published, lost } = watched(store);
    for (let i = 1; i <= 3; i++) await seq.submit({ docId: DOC, clientId: 'a', seq: i, baseVersion: i - 1, op: append(i - 1, `${i}`) });
    const old = await seq.open(DOC, 'a');
    lose();
    const refused = await seq.submit({ docId: DOC, clientId: 'a', seq: 4, baseVersion: 3, op: append(3, '4') }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((refused as OtterError).code).toBe(ErrorCode.StorageFailed);
    expect(lost).toEqual([expect.stringMatching(/^doc: the store went back in time under this server: it holds version 0 of epoch/)]);
    const reopened = await seq.open(DOC, 'a', 3, { epoch: old.epoch, checksum: old.checksum });
    expect(reopened).toMatchObject({ kind: 'lost', version: 0 });
    expect(reopened.epoch).not.toBe(old.epoch);
    // The document goes on from the store's state; each version is published once per epoch.
    expect(await seq.submit({ docId: DOC, clientId: 'b', seq: 1, baseVersion: 0, op: ['x'] })).toMatchObject({ version: 1 });
    expect(published).toEqual([1, 2, 3, 1]);
    expect(lost).toHaveLength(1);
  });

  it('a submission made on the lost epoch is refused with not-open once the document has another, nothing applied; one made on the new epoch is taken', async () => {
    const { store, lose } = losable();
    const { seq, published } = watched(store);
    await seq.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['abc'] });
    const old = await seq.open(DOC, 'a');
    lose();
    // Another writer made the document anew and wrote to it: its version 1 is not the old one.
    const other = new Sequencer(store, { idleTimeout: 0 });
    opened.push(other);
    await other.submit({ docId: DOC, clientId: 'w', seq: 1, baseVersion: 0, op: ['xyz'] });
    const { epoch } = await store.load(DOC);
    expect(await seq.refresh(DOC, { epoch })).toBe(0);
    // A first op of its client, fitting the new text too: only its epoch tells it apart.
    const stale = await seq.submit({ docId: DOC, clientId: 'c', seq: 1, baseVersion: 1, op: [3, '?'], epoch: old.epoch }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((stale as OtterError).code).toBe(ErrorCode.NotOpen);
    expect((stale as OtterError).message).toMatch(/lost the state this op was made on/);
    expect((await seq.getSnapshot(DOC)).text).toBe('xyz');
    expect(await seq.submit({ docId: DOC, clientId: 'b', seq: 1, baseVersion: 1, op: [3, '!'], epoch })).toMatchObject({ version: 2 });
    expect(published).toEqual([1, 2]);
  });

  it('a mark read under the held epoch from a store that lost the document makes the batch wait for the reload: the loss is found and the submission refused as retryable, not as a seq gap', async () => {
    const { store: inner, lose } = losable();
    // As a RedisStore does: marks are read only under the epoch the reader holds.
    const store = new Proxy(inner, {
      get(target, key) {
        if (key !== 'getMarks') return Reflect.get(target, key) as unknown;
        return async (docId: string, ids: readonly string[], epoch?: string) => {
          const stored = (await target.load(docId)).epoch;
          if (epoch !== undefined && stored !== epoch) throw new VersionConflictError(docId, 0, 0, `has epoch ${stored}`);
          return target.getMarks(docId, ids);
        };
      },
    });
    const lost: string[] = [];
    const seq = new Sequencer(store, { idleTimeout: 0, cachedMarks: 0, onStoreLost: (docId) => lost.push(docId) });
    opened.push(seq);
    for (let i = 1; i <= 3; i++) await seq.submit({ docId: DOC, clientId: 'a', seq: i, baseVersion: i - 1, op: append(i - 1, `${i}`) });
    lose();
    // Its mark is not cached (cachedMarks 0): it is read, under the held epoch.
    const refused = await seq.submit({ docId: DOC, clientId: 'a', seq: 4, baseVersion: 3, op: append(3, '4') }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((refused as OtterError).code).toBe(ErrorCode.StorageFailed);
    expect(lost).toEqual([DOC]);
  });

  it('a store behind what was published, in the same epoch: the loss is reported, and an open claiming the newer version answers lost', async () => {
    const { store, lose } = losable();
    const { seq, published, lost } = watched(store);
    for (let i = 1; i <= 3; i++) await seq.submit({ docId: DOC, clientId: 'a', seq: i, baseVersion: i - 1, op: append(i - 1, `${i}`) });
    const held = await seq.open(DOC, 'a');
    const loaded = await store.load(DOC);
    const replica = new MemoryStore();
    await replica.append(DOC, 0, loaded.ops.slice(0, 2), [], { epoch: loaded.epoch });
    lose(replica);
    const refused = await seq.submit({ docId: DOC, clientId: 'b', seq: 1, baseVersion: 3, op: append(3, 'b') }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((refused as OtterError).code).toBe(ErrorCode.StorageFailed);
    expect(lost).toEqual([expect.stringMatching(/it holds version 2 of epoch/)]);
    expect(await seq.open(DOC, 'a', 3, { epoch: held.epoch, checksum: held.checksum })).toMatchObject({ kind: 'lost', version: 2, epoch: held.epoch });
    expect(published).toEqual([1, 2, 3]);
  });

  it('a refresh told of another epoch reloads the document and reports the loss; without onStoreLost the document is refused as damaged', async () => {
    const { store, lose } = losable();
    const { seq, lost } = watched(store);
    await seq.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['x'] });
    const plain = new Sequencer(store, { idleTimeout: 0 });
    opened.push(plain);
    await plain.open(DOC, 'r');
    lose();
    const epoch = (await store.load(DOC)).epoch;
    expect(await seq.refresh(DOC, { epoch })).toBe(0);
    expect(lost).toHaveLength(1);
    expect((await seq.open(DOC, 'r')).epoch).toBe(epoch);
    // The same hint, again: the held epoch is the store's now, nothing more happens.
    expect(await seq.refresh(DOC, { epoch })).toBe(0);
    expect(lost).toHaveLength(1);
    // The positional form of older callers is refused, not taken as no news.
    await expect(seq.refresh(DOC, epoch as never)).rejects.toBeInstanceOf(TypeError);
    const error = await plain.refresh(DOC, { epoch }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StorageCorruptError);
  });
});
