import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CollaborativeDocument, type ChangeEvent, type PresenceEvent } from '../../src/client/document.js';
import { InvalidOperationError } from '../../src/ot/index.js';
import { chainChecksum } from '../../src/protocol/checksum.js';
import type { ErrorMessage, OpEntry } from '../../src/protocol/messages.js';
import { EPOCH, FakeTransport, openedDoc, serve } from './fakes.js';

function record<T>(doc: CollaborativeDocument, name: 'change' | 'presence' | 'error'): T[] {
  const events: T[] = [];
  doc.on(name, (e) => events.push(e as T));
  return events;
}

function refused(code: string, seq: number): ErrorMessage {
  return { type: 'error', code: code as ErrorMessage['code'], message: code, ref: { type: 'submit', doc: 'd', seq } };
}

describe('CollaborativeDocument: opening', () => {
  it('asks for a snapshot first and resolves ready on opened', async () => {
    const t = new FakeTransport();
    const doc = new CollaborativeDocument('d', t);
    doc.connected();
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number) }]);
    const changes = record<ChangeEvent>(doc, 'change');
    serve(doc, { type: 'opened', doc: 'd', v: 7, seq: 0, text: 'hello' });
    await doc.ready;
    expect(doc.text).toBe('hello');
    expect(doc.version).toBe(7);
    expect(changes).toEqual([{ op: ['hello'], local: false }]);
  });

  it('rebases edits made before the first snapshot onto it', () => {
    const t = new FakeTransport();
    const doc = new CollaborativeDocument('d', t);
    doc.connected();
    t.take();
    doc.insert(0, 'hi');
    expect(t.take()).toEqual([]); // nothing goes out before the document is open
    serve(doc, { type: 'opened', doc: 'd', v: 7, seq: 0, text: 'abc' });
    expect(doc.text).toBe('abchi');
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 7, seq: 1, op: [3, 'hi'] }]);
  });

  it('continues its seq after the last one the server applied for this client', () => {
    const t = new FakeTransport();
    const doc = new CollaborativeDocument('d', t);
    doc.connected();
    serve(doc, { type: 'opened', doc: 'd', v: 3, seq: 4, text: 'abc' });
    t.take();
    doc.insert(3, '!');
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 3, seq: 5, op: [3, '!'] }]);
  });

  it('rejects ready when the server refuses the open for good', async () => {
    const t = new FakeTransport();
    const doc = new CollaborativeDocument('d', t);
    doc.connected();
    serve(doc, { type: 'error', code: 'forbidden', message: 'no', ref: { type: 'open', doc: 'd' } });
    await expect(doc.ready).rejects.toMatchObject({ code: 'forbidden' });
  });
});

describe('CollaborativeDocument: editing', () => {
  it('keeps one op in flight, composes later edits into the buffer and sends it on ack with the next seq', async () => {
    const { doc, t } = openedDoc('ab', 5);
    const changes = record<ChangeEvent>(doc, 'change');
    doc.insert(2, 'c');
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 5, seq: 1, op: [2, 'c'] }]);
    doc.insert(3, 'd');
    doc.insert(4, 'e');
    expect(t.take()).toEqual([]);
    expect(doc.text).toBe('abcde');
    expect(changes).toEqual([
      { op: [2, 'c'], local: true },
      { op: [3, 'd'], local: true },
      { op: [4, 'e'], local: true },
    ]);
    let synced = false;
    void doc.synced().then(() => (synced = true));
    serve(doc, { type: 'ack', doc: 'd', seq: 1, v: 6 });
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 6, seq: 2, op: [3, 'de'] }]);
    await Promise.resolve();
    expect(synced).toBe(false);
    serve(doc, { type: 'ack', doc: 'd', seq: 2, v: 7 });
    await doc.synced();
    expect(doc.version).toBe(7);
    expect(doc.syncState).toEqual({ kind: 'synchronized' });
  });

  it('synced() resolves at once when nothing awaits an ack', async () => {
    const { doc } = openedDoc('ab', 1);
    await expect(doc.synced()).resolves.toBeUndefined();
  });

  it('applies a remote op past the op in flight, then takes the ack at the later version', () => {
    const { doc, t } = openedDoc('ab', 1);
    doc.insert(0, 'X');
    t.take();
    const changes = record<ChangeEvent>(doc, 'change');
    serve(doc, { type: 'ops', doc: 'd', ops: [{ v: 2, op: [2, 'Y'] }] });
    expect(doc.text).toBe('XabY');
    expect(changes).toEqual([{ op: [3, 'Y'], local: false }]);
    serve(doc, { type: 'ack', doc: 'd', seq: 1, v: 3 });
    expect(doc.version).toBe(3);
    doc.insert(4, 'Z');
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 3, seq: 2, op: [4, 'Z'] }]);
  });

  it('validates submit: an invalid op throws InvalidOperationError and changes nothing', () => {
    const { doc, t } = openedDoc('a😀b', 1);
    const changes = record<ChangeEvent>(doc, 'change');
    expect(() => doc.submit([5, 'x'])).toThrow(InvalidOperationError); // past the end
    expect(() => doc.submit([2, 'x', 2])).toThrow(InvalidOperationError); // splits 😀
    expect(() => doc.submit([4, 0] as never)).toThrow(InvalidOperationError);
    expect(() => doc.submit('nope' as never)).toThrow(InvalidOperationError);
    expect(() => doc.insert(9, 'x')).toThrow(InvalidOperationError);
    expect(() => doc.insert(0, '\ud800')).toThrow(InvalidOperationError);
    expect(() => doc.delete(3, 5)).toThrow(InvalidOperationError);
    doc.submit([4]); // a no-op: accepted, ignored
    expect(doc.text).toBe('a😀b');
    expect(changes).toEqual([]);
    expect(t.take()).toEqual([]);
    expect(doc.syncState).toEqual({ kind: 'synchronized' });
  });

  it('skips ops it already has and re-opens from its version on a gap, sending nothing meanwhile', () => {
    const { doc, t } = openedDoc('ab', 1);
    serve(doc, { type: 'ops', doc: 'd', ops: [{ v: 2, op: [2, 'c'] }] });
    serve(doc, { type: 'ops', doc: 'd', ops: [{ v: 2, op: [2, 'c'] }, { v: 3, op: [3, 'd'] }] });
    expect(doc.text).toBe('abcd');
    serve(doc, { type: 'ops', doc: 'd', ops: [{ v: 5, op: [5, 'f'] }] });
    expect(doc.text).toBe('abcd');
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number), v: 3, epoch: EPOCH, sum: expect.any(Number), pieces: true }]);
    doc.insert(0, 'Z');
    expect(t.take()).toEqual([]);
    serve(doc, {
      type: 'opened',
      doc: 'd',
      v: 5,
      seq: 0,
      ops: [
        { v: 4, op: [4, 'e'] },
        { v: 5, op: [5, 'f'] },
      ],
    });
    expect(doc.text).toBe('Zabcdef');
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 5, seq: 1, op: ['Z', 6] }]);
  });

  it('ignores an ack for a seq that is not in flight', () => {
    const { doc, t } = openedDoc('ab', 1);
    doc.insert(0, 'X');
    t.take();
    serve(doc, { type: 'ack', doc: 'd', seq: 7, v: 2 });
    expect(doc.syncState.kind).toBe('awaiting-confirm');
    expect(doc.version).toBe(1);
  });
});

describe('CollaborativeDocument: reconnection', () => {
  function inFlightThenOffline(): ReturnType<typeof openedDoc> {
    const r = openedDoc('ab', 1);
    r.doc.insert(2, 'X');
    expect(r.t.take()).toEqual([{ type: 'submit', doc: 'd', v: 1, seq: 1, op: [2, 'X'] }]);
    r.t.up = false;
    r.doc.disconnected();
    r.doc.insert(3, 'Y'); // waits in the buffer while offline
    r.t.up = true;
    r.doc.connected();
    expect(r.t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number), v: 1, epoch: EPOCH, sum: expect.any(Number), pieces: true }]);
    return r;
  }

  it('takes its own op in the catch-up as the ack and then sends the buffer under the next seq', () => {
    const { doc, t } = inFlightThenOffline();
    serve(doc, {
      type: 'opened',
      doc: 'd',
      v: 3,
      seq: 1,
      ops: [
        { v: 2, op: ['Q', 2] },
        { v: 3, op: [3, 'X'], seq: 1 },
      ],
    });
    expect(doc.text).toBe('QabXY');
    expect(doc.version).toBe(3);
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 3, seq: 2, op: [4, 'Y'] }]);
  });

  it('takes a catch-up in pieces: keeps those of its current open, drops another attempt\'s, applies them with opened', () => {
    const { doc, t } = inFlightThenOffline();
    const rid = (doc.lifecycle as { rid: number }).rid;
    const entries = [
      { v: 2, op: ['Q', 2] },
      { v: 3, op: [3, 'X'], seq: 1 }, // its op in flight: the ack
      { v: 4, op: [4, 'Z'] },
    ];
    let sum = (doc as unknown as { checksum: number }).checksum;
    for (const e of entries) sum = chainChecksum(sum, e.op);
    doc.receive({ type: 'ops', doc: 'd', rid, ops: [entries[0] as OpEntry], sum: 2 });
    doc.receive({ type: 'ops', doc: 'd', rid: rid - 1, ops: [{ v: 2, op: ['BAD', 2] }], sum: 1 }); // a late piece of an older attempt
    doc.receive({ type: 'ops', doc: 'd', rid, ops: [entries[1] as OpEntry], sum: 3 });
    expect(doc.version).toBe(1); // nothing is applied before the answer
    doc.receive({ type: 'opened', doc: 'd', rid, epoch: EPOCH, v: 4, sum, seq: 1, ops: [entries[2] as OpEntry] });
    expect(doc.version).toBe(4);
    expect(doc.text.startsWith('QabX')).toBe(true);
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 4, seq: 2, op: expect.any(Array) }]);
  });

  it('resends an op still in flight after the catch-up with the same seq, transformed, on the new version', () => {
    const { doc, t } = inFlightThenOffline();
    serve(doc, { type: 'opened', doc: 'd', v: 2, seq: 0, ops: [{ v: 2, op: ['Q', 2] }] });
    expect(doc.text).toBe('QabXY');
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 2, seq: 1, op: [3, 'X'] }]);
    serve(doc, { type: 'ack', doc: 'd', seq: 1, v: 3 });
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 3, seq: 2, op: [4, 'Y'] }]);
  });

  it('resyncs from a snapshot that holds the op in flight: drops it, rebases the buffer, sends it as seq opened.seq + 1', () => {
    const { doc, t } = openedDoc('ab', 1);
    doc.insert(2, 'X');
    doc.insert(3, 'Y');
    t.take();
    const errors = record<ErrorMessage>(doc, 'error');
    const changes = record<ChangeEvent>(doc, 'change');
    serve(doc, refused('history-gone', 1));
    expect(errors.map((e) => e.code)).toEqual(['history-gone']);
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number) }]);
    serve(doc, { type: 'opened', doc: 'd', v: 10, seq: 1, text: 'QabX' });
    expect(doc.text).toBe('QabXY');
    expect(doc.version).toBe(10);
    expect(changes).toEqual([{ op: ['Q', 4], local: false }]);
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 10, seq: 2, op: [4, 'Y'] }]);
  });

  it('resyncs from a snapshot without the op in flight: rebases everything pending and sends it as seq opened.seq + 1', () => {
    const { doc, t } = openedDoc('ab', 1);
    doc.insert(2, 'X');
    doc.insert(3, 'Y');
    t.take();
    serve(doc, refused('invalid-op', 1));
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number) }]);
    serve(doc, { type: 'opened', doc: 'd', v: 10, seq: 0, text: 'Qab' });
    expect(doc.text).toBe('QabXY');
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 10, seq: 1, op: [3, 'XY'] }]);
  });

  it('re-opens for a snapshot after a reconnection when the last resync wish was a snapshot', () => {
    const { doc, t } = openedDoc('ab', 1);
    doc.insert(0, 'X');
    t.take();
    serve(doc, refused('seq-gap', 1));
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number) }]);
    t.up = false;
    doc.disconnected();
    t.up = true;
    doc.connected();
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number) }]);
  });
});

describe('CollaborativeDocument: a server behind what the client holds', () => {
  it('an op in flight refused version-ahead: re-opens naming its epoch, version and checksum, so the server answers lost, never a bare snapshot to adopt', () => {
    const { doc, t } = openedDoc('ab', 3);
    doc.insert(2, 'X');
    t.take();
    serve(doc, refused('version-ahead', 1));
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number), v: 3, epoch: EPOCH, sum: expect.any(Number), pieces: true }]);
    expect(doc.text).toBe('abX');
  });
});

describe('CollaborativeDocument: a snapshot of another epoch', () => {
  it('asked for without a claim (a seq-gap heal), it is taken as a lost state: the client restores its text and its op in flight, never adopts the other text silently', () => {
    const { doc, t } = openedDoc('ab', 3);
    doc.insert(2, 'X');
    t.take();
    const resets: unknown[] = [];
    doc.on('reset', (e) => resets.push(e));
    serve(doc, refused('seq-gap', 1));
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number) }]);
    // The store lost the epoch meanwhile: its new incarnation holds other text.
    serve(doc, { type: 'opened', doc: 'd', epoch: 'epoch-2', v: 1, seq: 0, text: 'zz', sum: 5 });
    // The text it holds at its last version, and the op in flight on it, in a piece of its own.
    const pieces = t.take();
    expect(pieces).toMatchObject([
      { type: 'restore', doc: 'd', lost: { epoch: EPOCH, v: 3 }, part: 0, parts: 2, text: 'ab' },
      { type: 'restore', doc: 'd', lost: { epoch: EPOCH, v: 3 }, part: 1, parts: 2, text: '', op: [2, 'X'] },
    ]);
    expect(doc.text).toBe('abX');
    expect(resets).toEqual([]);
    serve(doc, { type: 'restored', doc: 'd', rid: (pieces[0] as { rid: number }).rid, v: 2, applied: true });
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number) }]);
    serve(doc, { type: 'opened', doc: 'd', epoch: 'epoch-2', v: 2, seq: 0, text: 'zzabX', sum: 6 });
    expect(doc.text).toBe('zzabX');
    expect(doc.syncState.kind).toBe('synchronized');
    expect(resets).toMatchObject([{ action: 'restored', lost: { epoch: EPOCH, version: 3 } }]);
    expect(t.take()).toEqual([]);
  });

  it('of the epoch it holds, a snapshot is taken as usual', () => {
    const { doc, t } = openedDoc('ab', 3);
    doc.insert(2, 'X');
    t.take();
    serve(doc, refused('seq-gap', 1));
    t.take();
    serve(doc, { type: 'opened', doc: 'd', v: 4, seq: 0, text: 'abc' });
    expect(doc.text).toBe('abcX');
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 4, seq: 1, op: [3, 'X'] }]);
  });
});

describe('CollaborativeDocument: refusals', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('storage-failed: resends the same op with the same seq after a delay, on the current version', () => {
    const { doc, t } = openedDoc('ab', 1, { retryDelay: 100 });
    doc.insert(0, 'X');
    t.take();
    serve(doc, refused('storage-failed', 1));
    serve(doc, { type: 'ops', doc: 'd', ops: [{ v: 2, op: [2, '!'] }] });
    expect(t.take()).toEqual([]);
    vi.advanceTimersByTime(100);
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 2, seq: 1, op: ['X', 3] }]);
    serve(doc, refused('storage-failed', 1));
    vi.advanceTimersByTime(199);
    expect(t.take()).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 2, seq: 1, op: ['X', 3] }]);
  });

  it('too-large: undoes the refused op (a non-local change), keeps the buffer and sends it under the refused seq', async () => {
    const { doc, t } = openedDoc('', 0);
    doc.insert(0, 'big');
    doc.insert(3, '!');
    t.take();
    const changes = record<ChangeEvent>(doc, 'change');
    const errors = record<ErrorMessage>(doc, 'error');
    serve(doc, refused('too-large', 1));
    expect(doc.text).toBe('!');
    expect(changes).toEqual([{ op: [-3, 1], local: false }]);
    expect(errors).toHaveLength(1);
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 0, seq: 1, op: ['!'] }]);
    serve(doc, { type: 'ack', doc: 'd', seq: 1, v: 1 });
    await doc.synced();
  });

  it('storage-failed on open: opens again after a delay and submits nothing meanwhile', () => {
    const { doc, t } = openedDoc('ab', 1, { retryDelay: 100 });
    doc.insert(0, 'X');
    t.take();
    t.up = false;
    doc.disconnected();
    t.up = true;
    doc.connected();
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number), v: 1, epoch: EPOCH, sum: expect.any(Number), pieces: true }]);
    serve(doc, { type: 'error', code: 'storage-failed', message: 'x', ref: { type: 'open', doc: 'd' } });
    doc.insert(0, 'Y');
    expect(t.take()).toEqual([]);
    vi.advanceTimersByTime(100);
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number), v: 1, epoch: EPOCH, sum: expect.any(Number), pieces: true }]);
    serve(doc, { type: 'opened', doc: 'd', v: 1, seq: 0, ops: [] });
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 1, seq: 1, op: ['X', 2] }]);
  });

  it('ignores an error about a seq no longer in flight, but still reports it', () => {
    const { doc, t } = openedDoc('ab', 1);
    const errors = record<ErrorMessage>(doc, 'error');
    serve(doc, refused('invalid-op', 3));
    expect(t.take()).toEqual([]);
    expect(errors).toHaveLength(1);
  });
});

describe('CollaborativeDocument: selection and presence', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('keeps the selection through local and remote changes and sends it throttled, mapped to the server text', () => {
    const { doc, t } = openedDoc('hello', 1, { presenceInterval: 50 });
    doc.setSelection({ anchor: 5, head: 5 });
    expect(t.take()).toEqual([{ type: 'presence', doc: 'd', v: 1, selection: [{ anchor: 5, head: 5 }] }]);
    doc.insert(5, '!');
    expect(doc.selection).toEqual([{ anchor: 6, head: 6 }]);
    t.take();
    doc.setSelection([{ anchor: 6, head: 6 }]);
    expect(t.take()).toEqual([]); // throttled
    vi.advanceTimersByTime(50);
    // The "!" is still pending: on the server text the caret sits where it was typed.
    expect(t.take()).toEqual([{ type: 'presence', doc: 'd', v: 1, selection: [{ anchor: 5, head: 5 }] }]);
    serve(doc, { type: 'ops', doc: 'd', ops: [{ v: 2, op: ['AB', 5] }] });
    expect(doc.text).toBe('ABhello!');
    expect(doc.selection).toEqual([{ anchor: 8, head: 8 }]);
    serve(doc, { type: 'ack', doc: 'd', seq: 1, v: 3 });
    vi.advanceTimersByTime(50);
    // Synchronized now: the exact selection goes out again.
    expect(t.take()).toEqual([{ type: 'presence', doc: 'd', v: 3, selection: [{ anchor: 8, head: 8 }] }]);
  });

  it('refuses a selection outside the text, and null clears it', () => {
    const { doc, t } = openedDoc('abc', 1);
    expect(() => doc.setSelection({ anchor: 0, head: 4 })).toThrow(InvalidOperationError);
    expect(() => doc.setSelection([{ anchor: -1, head: 0 }])).toThrow(InvalidOperationError);
    expect(doc.selection).toBeNull();
    doc.setSelection(null);
    expect(t.take()).toEqual([{ type: 'presence', doc: 'd', v: 1, selection: null }]);
  });

  it('sends its profile with every presence and shows the profiles of others; refuses a profile past the caps', () => {
    const profile = { name: 'Ann', color: '#00aa55', role: 'editor' };
    const { doc, t } = openedDoc('abc', 1, { profile });
    doc.setSelection({ anchor: 1, head: 1 });
    expect(t.take()).toEqual([{ type: 'presence', doc: 'd', v: 1, selection: [{ anchor: 1, head: 1 }], profile }]);
    const events = record<PresenceEvent>(doc, 'presence');
    serve(doc, { type: 'presence', doc: 'd', id: 'c9', v: 1, selection: null, user: 'bob', profile: { name: 'Bob', color: 'teal' } });
    expect(doc.presences.get('c9')).toEqual({ selection: null, user: 'bob', profile: { name: 'Bob', color: 'teal' } });
    expect(events).toEqual([{ id: 'c9', selection: null, user: 'bob', profile: { name: 'Bob', color: 'teal' } }]);
    const t2 = new FakeTransport();
    expect(() => new CollaborativeDocument('d', t2, { profile: { color: 'url(x)' } })).toThrow(TypeError);
    expect(() => new CollaborativeDocument('d', t2, { profile: { name: 'x'.repeat(129) } })).toThrow(TypeError);
  });

  it('maps remote presences through pending ops and later changes; removes them on left and on disconnect', () => {
    const { doc, t } = openedDoc('hello', 1);
    doc.insert(0, '>>');
    t.take();
    const events = record<PresenceEvent>(doc, 'presence');
    serve(doc, { type: 'presence', doc: 'd', id: 'c9', v: 1, selection: [{ anchor: 0, head: 5 }], user: 'ann' });
    // Our pending ">>" goes after ann's caret at 0.
    expect(doc.presences.get('c9')).toEqual({ selection: [{ anchor: 0, head: 7 }], user: 'ann' });
    expect(events).toEqual([{ id: 'c9', selection: [{ anchor: 0, head: 7 }], user: 'ann' }]);
    doc.insert(0, 'Z'); // our typing does not drag ann's caret
    expect(doc.presences.get('c9')?.selection).toEqual([{ anchor: 0, head: 8 }]);
    serve(doc, { type: 'ops', doc: 'd', ops: [{ v: 2, op: [5, '!'] }] }); // remote text at a caret goes before it
    expect(doc.text).toBe('Z>>hello!');
    expect(doc.presences.get('c9')?.selection).toEqual([{ anchor: 0, head: 9 }]);
    serve(doc, { type: 'presence', doc: 'd', id: 'c8', v: 2, selection: null });
    expect(doc.presences.get('c8')).toEqual({ selection: null });
    serve(doc, { type: 'left', doc: 'd', id: 'c9' });
    expect(doc.presences.has('c9')).toBe(false);
    doc.disconnected();
    expect(doc.presences.size).toBe(0);
    expect(events.slice(1)).toEqual([
      { id: 'c8', selection: null },
      { id: 'c9', selection: null },
      { id: 'c8', selection: null },
    ]);
  });

  it('maps a presence a few versions old through the ops since, and ignores one it cannot place', () => {
    const { doc } = openedDoc('abc', 1);
    serve(doc, { type: 'ops', doc: 'd', ops: [{ v: 2, op: ['XY', 3] }] });
    serve(doc, { type: 'presence', doc: 'd', id: 'c9', v: 1, selection: [{ anchor: 1, head: 1 }] });
    expect(doc.presences.get('c9')?.selection).toEqual([{ anchor: 3, head: 3 }]);
    serve(doc, { type: 'presence', doc: 'd', id: 'c7', v: 2, selection: [{ anchor: 99, head: 1 }] });
    serve(doc, { type: 'presence', doc: 'd', id: 'c6', v: 9, selection: [{ anchor: 1, head: 1 }] });
    expect(doc.presences.has('c7')).toBe(false);
    expect(doc.presences.has('c6')).toBe(false);
  });
});

describe('CollaborativeDocument: close', () => {
  it('sends close, detaches, rejects synced() and ready, and refuses edits', async () => {
    const t = new FakeTransport();
    const doc = new CollaborativeDocument('d', t);
    doc.connected();
    doc.insert(0, 'x');
    const synced = doc.synced();
    t.take();
    doc.close();
    expect(t.take()).toEqual([{ type: 'close', doc: 'd' }]);
    expect(t.detached).toBe(true);
    await expect(synced).rejects.toMatchObject({ code: 'closed' });
    await expect(doc.ready).rejects.toMatchObject({ code: 'closed' });
    expect(() => doc.insert(0, 'y')).toThrow(/closed/);
    expect(doc.text).toBe('x');
    doc.close();
  });
});

describe('CollaborativeDocument: unsaved', () => {
  /** The `unsaved` events of `doc`, in order. */
  function unsavedEvents(doc: CollaborativeDocument): boolean[] {
    const events: boolean[] = [];
    doc.on('unsaved', ({ unsaved }) => events.push(unsaved));
    return events;
  }

  it('turns true on a local edit and false on its ack, once each however many edits wait behind it', () => {
    const { doc, t } = openedDoc('ab', 1);
    const events = unsavedEvents(doc);
    expect(doc.unsaved).toBe(false);
    doc.insert(2, 'c');
    expect(doc.unsaved).toBe(true);
    doc.insert(3, 'd'); // buffered behind the op in flight
    doc.insert(4, 'e');
    expect(events).toEqual([true]);
    serve(doc, { type: 'ack', doc: 'd', seq: 1, v: 2 });
    expect(t.take()).toEqual([{ type: 'submit', doc: 'd', v: 1, seq: 1, op: [2, 'c'] }, { type: 'submit', doc: 'd', v: 2, seq: 2, op: [3, 'de'] }]);
    expect(doc.unsaved).toBe(true); // the buffer is in flight now
    serve(doc, { type: 'ack', doc: 'd', seq: 2, v: 3 });
    expect(doc.unsaved).toBe(false);
    expect(events).toEqual([true, false]);
    serve(doc, { type: 'ops', doc: 'd', ops: [{ v: 4, op: [4, '!'] }] }); // remote edits save nothing
    expect(events).toEqual([true, false]);
  });

  it('counts edits made offline and before the first open, until the server acknowledges them', () => {
    const t = new FakeTransport();
    const doc = new CollaborativeDocument('d', t);
    const events = unsavedEvents(doc);
    doc.insert(0, 'early');
    expect(doc.unsaved).toBe(true);
    doc.connected();
    serve(doc, { type: 'opened', doc: 'd', v: 0, seq: 0, text: '' });
    serve(doc, { type: 'ack', doc: 'd', seq: 1, v: 1 });
    expect(events).toEqual([true, false]);
    doc.disconnected();
    doc.insert(5, '!');
    expect(events).toEqual([true, false, true]);
    doc.connected();
    serve(doc, { type: 'opened', doc: 'd', v: 1, seq: 1, ops: [] });
    expect(doc.unsaved).toBe(true);
    serve(doc, { type: 'ack', doc: 'd', seq: 2, v: 2 });
    expect(events).toEqual([true, false, true, false]);
  });

  it('a catch-up carrying its op in flight saves it', () => {
    const { doc } = openedDoc('ab', 1);
    doc.insert(2, 'X');
    const events = unsavedEvents(doc);
    doc.disconnected();
    doc.connected();
    serve(doc, { type: 'opened', doc: 'd', v: 2, seq: 1, ops: [{ v: 2, op: [2, 'X'], seq: 1 }] });
    expect(doc.unsaved).toBe(false);
    expect(events).toEqual([false]);
  });

  it('a resync from a snapshot that holds the op in flight saves it; one that does not keeps the edits unsaved', () => {
    const { doc, t } = openedDoc('ab', 1);
    const events = unsavedEvents(doc);
    doc.insert(2, 'X');
    serve(doc, refused('history-gone', 1));
    serve(doc, { type: 'opened', doc: 'd', v: 5, seq: 1, text: 'QabX' });
    expect(doc.unsaved).toBe(false);
    expect(events).toEqual([true, false]);
    doc.insert(0, 'Y');
    t.take();
    serve(doc, refused('invalid-op', 2));
    serve(doc, { type: 'opened', doc: 'd', v: 6, seq: 1, text: 'ZQabX' });
    expect(doc.text).toBe('ZYQabX');
    expect(doc.unsaved).toBe(true); // rebased and sent again
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number) }, { type: 'submit', doc: 'd', v: 6, seq: 2, op: [1, 'Y', 4] }]);
    serve(doc, { type: 'ack', doc: 'd', seq: 2, v: 7 });
    expect(events).toEqual([true, false, true, false]);
  });

  it('after a server lost its data and the document took its text (onLost: accept), the kept edits stay unsaved until acknowledged', () => {
    const { doc, t } = openedDoc('ab', 3, { onLost: 'accept' });
    const events = unsavedEvents(doc);
    doc.insert(2, 'X');
    doc.disconnected();
    doc.connected();
    t.take();
    serve(doc, { type: 'opened', doc: 'd', v: 0, seq: 0, lost: true });
    expect(t.take()).toEqual([{ type: 'open', doc: 'd', rid: expect.any(Number) }]);
    serve(doc, { type: 'opened', doc: 'd', v: 0, seq: 0, text: '', epoch: 'epoch-2' });
    expect(doc.text).toBe('X');
    expect(doc.unsaved).toBe(true);
    serve(doc, { type: 'ack', doc: 'd', seq: 1, v: 1 });
    expect(events).toEqual([true, false]);
  });

  it('an op refused for good and undone is no longer unsaved; with edits behind it, those still are', () => {
    const { doc, t } = openedDoc('', 0);
    const events = unsavedEvents(doc);
    doc.insert(0, 'big');
    serve(doc, refused('too-large', 1));
    expect(doc.text).toBe('');
    expect(doc.unsaved).toBe(false);
    expect(events).toEqual([true, false]);
    doc.insert(0, 'big');
    doc.insert(3, '!');
    t.take();
    serve(doc, refused('too-large', 1));
    expect(doc.text).toBe('!');
    expect(doc.unsaved).toBe(true);
    serve(doc, { type: 'ack', doc: 'd', seq: 1, v: 1 });
    expect(events).toEqual([true, false, true, false]);
  });

  it('edits undone because access was lowered to read are no longer unsaved', () => {
    const { doc } = openedDoc('ab', 1);
    doc.disconnected();
    doc.insert(0, 'X');
    const events = unsavedEvents(doc);
    serve(doc, { type: 'revoked', doc: 'd', access: 'read' });
    expect(doc.text).toBe('ab');
    expect(doc.unsaved).toBe(false);
    expect(events).toEqual([false]);
  });

  it('keeps its value after close: edits not acknowledged then never will be', () => {
    const { doc } = openedDoc('ab', 1);
    doc.insert(0, 'X');
    doc.close();
    expect(doc.unsaved).toBe(true);
  });
});
