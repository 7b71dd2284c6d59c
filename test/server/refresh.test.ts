/**
 * Sequencer.refresh: two sequencers over one store, as two servers over one shared store.
 * What one commits, the other publishes on refresh — each op once, in version order — and
 * then builds on; a refresh that cannot continue the held state reloads the document instead.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Component } from '../../src/ot/index.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Sequencer } from '../../src/server/sequencer.js';
import type { OpRecord, Store } from '../../src/server/store.js';
import { ErrorCode, type OtterError } from '../../src/protocol/errors.js';
import { StorageCorruptError } from '../../src/server/integrity.js';

/** A MemoryStore that counts its appends (refused ones included). */
class CountingStore extends MemoryStore {
  appends = 0;

  override append(...args: Parameters<MemoryStore['append']>): Promise<void> {
    this.appends++;
    return super.append(...args);
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
    const a = sequencer(store);
    const b = sequencer(store);
    await b.seq.open(DOC, 'reader');
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
    const a = sequencer(store);
    const b = sequencer(store);
    await b.seq.open(DOC, 'reader');
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

describe('an append that loses the race to another writer', () => {
  /** A CountingStore that also counts whole-document loads. */
  class LoadCountingStore extends CountingStore {
    loads = 0;

    override load(...args: Parameters<MemoryStore['load']>): ReturnType<MemoryStore['load']> {
      this.loads++;
      return super.load(...args);
    }
  }

  it('takes its batch back, reads only what the other wrote, and commits after it: no reload, each op published once, in order', async () => {
    const store = new LoadCountingStore();
    const a = sequencer(store);
    const b = sequencer(store);
    await b.seq.open(DOC, 'reader');
    await a.seq.submit({ docId: DOC, clientId: 'ca', seq: 1, baseVersion: 0, op: ['a1'] });
    await a.seq.submit({ docId: DOC, clientId: 'ca', seq: 2, baseVersion: 1, op: [2, 'a2'] });
    const loads = store.loads;
    // B has not heard of A's ops: its append at head 0 conflicts, then lands after them.
    const result = await b.seq.submit({ docId: DOC, clientId: 'cb', seq: 1, baseVersion: 0, op: ['b1'] });
    expect(result).toMatchObject({ duplicate: false, version: 3 });
    expect(store.loads).toBe(loads);
    expect(b.published.map((r) => [r.version, r.clientId])).toEqual([
      [1, 'ca'],
      [2, 'ca'],
      [3, 'cb'],
    ]);
    expect(await a.seq.refresh(DOC)).toBe(1);
    expect((await a.seq.getSnapshot(DOC)).text).toBe((await b.seq.getSnapshot(DOC)).text);
    // B's mark was taken back with the batch and read again: its resend is a duplicate.
    const again = await b.seq.submit({ docId: DOC, clientId: 'cb', seq: 1, baseVersion: 0, op: ['b1'] });
    expect(again).toMatchObject({ duplicate: true, version: 3 });
  });
});

describe('a store that loses a loaded document (a Redis emptied or failed over)', () => {
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

  it('the next commit finds it: the submission and the document are refused as damaged, nothing is published again', async () => {
    const { store, lose } = losable();
    const { seq, published } = sequencer(store as MemoryStore);
    for (let i = 1; i <= 3; i++) await seq.submit({ docId: DOC, clientId: 'a', seq: i, baseVersion: i - 1, op: append(i - 1, `${i}`) });
    lose();
    const refused = await seq.submit({ docId: DOC, clientId: 'a', seq: 4, baseVersion: 3, op: append(3, '4') }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((refused as OtterError).code).toBe(ErrorCode.StorageCorrupt);
    const reopened = await seq.open(DOC, 'a').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((reopened as OtterError).code).toBe(ErrorCode.StorageCorrupt);
    expect(published.map((r) => r.version)).toEqual([1, 2, 3]);
  });

  it('a refresh told of another epoch (another server made the document anew) refuses it as damaged', async () => {
    const { store, lose } = losable();
    const { seq } = sequencer(store as MemoryStore);
    await seq.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['x'] });
    lose();
    const epoch = (await store.load(DOC)).epoch;
    const error = await seq.refresh(DOC, epoch).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StorageCorruptError);
  });
});
