/**
 * Sequencer.refresh: two sequencers over one store, as two servers over one shared store.
 * What one commits, the other publishes on refresh — each op once, in version order — and
 * then builds on; a refresh that cannot continue the held state reloads the document instead.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Component } from '../../src/ot/index.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Sequencer } from '../../src/server/sequencer.js';
import type { OpRecord } from '../../src/server/store.js';

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
