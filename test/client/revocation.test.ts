/**
 * The client's side of revocation: a `revoked` message (or a re-open refused with
 * `forbidden`) makes the document emit `revoked`; made read-only it keeps receiving, undoes
 * the edits it had not sent and refuses new ones with a typed error; revoked entirely it is
 * closed and never re-opened on its own. Unit tests on a fake transport and a fake socket, and
 * one against the real server.
 */
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Connection } from '../../src/client/connection.js';
import type { ChangeEvent, CollaborativeDocument, RevokedEvent } from '../../src/client/document.js';
import { discardUnsent, applyLocal, synchronized } from '../../src/client/sync.js';
import { apply } from '../../src/ot/index.js';
import { ErrorCode, OtterError } from '../../src/protocol/errors.js';
import type { ErrorMessage } from '../../src/protocol/messages.js';
import { parseServerFrame } from '../../src/protocol/parse.js';
import type { Access } from '../../src/server/auth.js';
import { liveServer } from '../support/live-server.js';
import { FakeWebSocket, openedDoc, serve } from './fakes.js';
import { thrown } from '../support/thrown.js';

function events(doc: CollaborativeDocument) {
  const changes: ChangeEvent[] = [];
  const revoked: RevokedEvent[] = [];
  const errors: ErrorMessage[] = [];
  const order: string[] = [];
  doc.on('change', (e) => {
    changes.push(e);
    order.push('change');
  });
  doc.on('revoked', (e) => {
    revoked.push(e);
    order.push('revoked');
  });
  doc.on('error', (e) => {
    errors.push(e);
    order.push('error');
  });
  return { changes, revoked, errors, order };
}

/** The OtterError `fn` throws. */
describe('the revoked message on the wire', () => {
  it('parses with access none or read, and nothing else', () => {
    expect(parseServerFrame('{"type":"revoked","doc":"d","access":"read","x":1}')).toEqual([{ type: 'revoked', doc: 'd', access: 'read' }]);
    expect(parseServerFrame('{"type":"revoked","doc":"d","access":"none"}')).toEqual([{ type: 'revoked', doc: 'd', access: 'none' }]);
    for (const bad of ['{"type":"revoked","doc":"d"}', '{"type":"revoked","doc":"d","access":"write"}', '{"type":"revoked","access":"none"}']) {
      expect(() => parseServerFrame(bad)).toThrow();
    }
  });
});

describe('sync: discardUnsent', () => {
  it('keeps an op in flight and undoes the buffer; undoes everything when nothing is in flight', () => {
    const c = 'abc';
    let s = applyLocal(synchronized, [3, 'd']).state; // outstanding: abcd
    s = applyLocal(s, [4, 'e']).state; // buffer: abcde
    s = applyLocal(s, [-1, 4]).state; // buffer: bcde
    const local = 'bcde';
    const kept = discardUnsent(s, c, true);
    expect(kept.state.kind).toBe('awaiting-confirm');
    expect(apply(local, kept.apply)).toBe('abcd');
    let t = applyLocal(synchronized, [3, 'd']).state;
    t = applyLocal(t, [-1, 3]).state;
    const all = discardUnsent(t, c, false);
    expect(all.state).toBe(synchronized);
    expect(apply('bcd', all.apply)).toBe(c);
    expect(discardUnsent(synchronized, c, false)).toEqual({ state: synchronized, apply: [3] });
  });
});

describe('CollaborativeDocument: revoked to read', () => {
  it('undoes the edits not sent, keeps the op in flight, emits revoked, refuses new edits with read-only, keeps receiving', async () => {
    const { doc, t } = openedDoc('hello', 3);
    doc.insert(5, '!'); // in flight, seq 1
    doc.insert(0, '>'); // buffered
    t.take();
    const e = events(doc);
    serve(doc, { type: 'revoked', doc: 'd', access: 'read' });
    expect(doc.text).toBe('hello!');
    expect(e.order).toEqual(['change', 'revoked']);
    expect(e.changes).toEqual([{ op: [-1, 6], local: false }]);
    expect(e.revoked).toEqual([{ access: 'read', text: '>hello!', unconfirmed: true }]);
    expect(doc.revoked).toBe('read');
    expect(doc.closed).toBe(false);
    const err = thrown(() => doc.insert(0, 'x'), OtterError);
    expect(err.code).toBe(ErrorCode.ReadOnly);
    expect(doc.text).toBe('hello!');
    // Remote ops still arrive, around the op in flight.
    serve(doc, { type: 'ops', doc: 'd', ops: [{ v: 4, op: ['A', 5] }] });
    expect(doc.text).toBe('Ahello!');
    // The op in flight is acknowledged (it was decided before the revocation): synced.
    serve(doc, { type: 'ack', doc: 'd', seq: 1, v: 5 });
    await doc.synced();
    expect(doc.text).toBe('Ahello!');
    expect(t.take()).toEqual([]); // nothing was sent after the revocation
    // A second notice changes nothing.
    serve(doc, { type: 'revoked', doc: 'd', access: 'read' });
    expect(e.revoked.length).toBe(1);
  });

  it('an op in flight the server then refuses with read-only is undone with change and error; nothing else is sent', () => {
    const { doc, t } = openedDoc('abc', 1);
    doc.insert(3, 'd');
    t.take();
    const e = events(doc);
    serve(doc, { type: 'revoked', doc: 'd', access: 'read' });
    expect(e.changes).toEqual([]); // nothing unsent to undo
    expect(e.revoked).toEqual([{ access: 'read', text: 'abcd', unconfirmed: true }]);
    serve(doc, { type: 'error', code: 'read-only', message: 'no', ref: { type: 'submit', doc: 'd', seq: 1 } });
    expect(doc.text).toBe('abc');
    expect(e.order).toEqual(['revoked', 'change', 'error']);
    expect(doc.syncState).toBe(synchronized);
    expect(t.take()).toEqual([]);
  });

  it('an op in flight that went back to pending on a resync is undone with change and a read-only error, never sent', () => {
    const { doc, t } = openedDoc('abc', 1);
    doc.insert(3, 'd');
    t.take();
    serve(doc, { type: 'revoked', doc: 'd', access: 'read' });
    const e = events(doc);
    doc.disconnected();
    doc.connected();
    expect(t.take().map((m) => m.type)).toEqual(['open']);
    // Answered with a snapshot that does not hold the op (opened.seq 0): it is pending again.
    serve(doc, { type: 'opened', doc: 'd', v: 2, seq: 0, text: 'abcX' });
    expect(doc.text).toBe('abcX');
    expect(t.take()).toEqual([]);
    expect(e.errors.map((m) => m.code)).toEqual(['read-only']);
    expect(e.changes.at(-1)?.local).toBe(false);
  });

  it('without unsent edits: revoked says so and no change is emitted', () => {
    const { doc } = openedDoc('abc', 1);
    const e = events(doc);
    serve(doc, { type: 'revoked', doc: 'd', access: 'read' });
    expect(e.order).toEqual(['revoked']);
    expect(e.revoked).toEqual([{ access: 'read', text: 'abc', unconfirmed: false }]);
  });
});

describe('CollaborativeDocument: revoked to none', () => {
  it('is closed: revoked emitted, synced() rejects forbidden, edits throw forbidden, the text stays, nothing more is sent', async () => {
    const { doc, t } = openedDoc('abc', 1);
    doc.insert(3, 'd');
    t.take();
    const waiting = doc.synced();
    const e = events(doc);
    serve(doc, { type: 'revoked', doc: 'd', access: 'none' });
    expect(e.revoked).toEqual([{ access: 'none', text: 'abcd', unconfirmed: true }]);
    expect(doc.closed).toBe(true);
    expect(doc.revoked).toBe('none');
    expect(doc.text).toBe('abcd');
    await expect(waiting).rejects.toMatchObject({ code: 'forbidden' });
    await expect(doc.synced()).rejects.toMatchObject({ code: 'forbidden' });
    expect(thrown(() => doc.insert(0, 'x'), OtterError).code).toBe(ErrorCode.Forbidden);
    expect(t.detached).toBe(true);
    doc.connected(); // a reconnect does not re-open it
    doc.close();
    serve(doc, { type: 'ops', doc: 'd', ops: [{ v: 2, op: ['A', 3] }] });
    expect(doc.text).toBe('abcd');
    expect(t.take()).toEqual([]);
  });

  it('a re-open refused with forbidden, after the document had opened, is a revocation to none', () => {
    const { doc, t } = openedDoc('abc', 1);
    const e = events(doc);
    doc.disconnected();
    doc.connected();
    t.take();
    serve(doc, { type: 'error', code: 'forbidden', message: 'no', ref: { type: 'open', doc: 'd' } });
    expect(e.revoked).toEqual([{ access: 'none', text: 'abc', unconfirmed: false }]);
    expect(doc.closed).toBe(true);
    doc.connected();
    expect(t.take()).toEqual([]);
  });
});

describe('Connection: routing revoked', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('delivers revoked to its document; a document revoked to none is not re-opened after a reconnect', () => {
    vi.useFakeTimers();
    FakeWebSocket.reset();
    const c = new Connection('ws://h/', { WebSocket: FakeWebSocket, minReconnectDelay: 100, maxReconnectDelay: 100, heartbeatInterval: 1000 });
    const a = c.open('a');
    const b = c.open('b');
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.answerOpen('a', { v: 0, text: '' });
    FakeWebSocket.last.answerOpen('b', { v: 0, text: '' });
    const seen: string[] = [];
    a.on('revoked', (r) => seen.push(`a ${r.access}`));
    b.on('revoked', (r) => seen.push(`b ${r.access}`));
    FakeWebSocket.last.receive([{ type: 'revoked', doc: 'a', access: 'none' }, { type: 'revoked', doc: 'b', access: 'read' }]);
    expect(seen).toEqual(['a none', 'b read']);
    FakeWebSocket.last.serverClose(1006);
    vi.advanceTimersByTime(100);
    FakeWebSocket.last.welcome();
    const opens = FakeWebSocket.last.messages().filter((m) => m.type === 'open');
    expect(opens.map((m) => (m as { doc: string }).doc)).toEqual(['b']);
    // Opening it again is the application's choice: a new document.
    expect(c.open('a')).not.toBe(a);
    c.close();
  });
});

describe('client against the real server', () => {
  const live = liveServer();

  it('server.revoke: the reader is told, made read-only, keeps receiving; revoked to none it closes and stays closed', async () => {
    const access = new Map<string, Access>();
    const server = await live.start({
      reauthorizeInterval: 0,
      authenticate: async (token) => (token === undefined ? undefined : { user: token }),
      authorize: (user) => access.get(user ?? '') ?? 'write',
    });
    const make = (user: string): Connection => {
      return live.connect({ WebSocket, token: user, minReconnectDelay: 20, maxReconnectDelay: 50 });
    };
    const alice = make('alice').open('doc');
    const eveConnection = make('eve');
    const eve = eveConnection.open('doc');
    await Promise.all([alice.ready, eve.ready]);
    alice.insert(0, 'hello');
    await alice.synced();
    const eventsOf = events(eve);
    await vi.waitFor(() => expect(eve.text).toBe('hello'));

    access.set('eve', 'read');
    expect(await server.revoke('eve')).toBe(1);
    await vi.waitFor(() => expect(eventsOf.revoked).toEqual([{ access: 'read', text: 'hello', unconfirmed: false }]));
    expect(() => eve.insert(0, 'x')).toThrow(/read-only/);
    alice.insert(5, ' world');
    await vi.waitFor(() => expect(eve.text).toBe('hello world'));

    access.set('eve', 'none');
    expect(await server.revoke('eve', 'doc')).toBe(1);
    await vi.waitFor(() => expect(eve.closed).toBe(true));
    expect(eventsOf.revoked.map((r) => r.access)).toEqual(['read', 'none']);
    alice.insert(0, '>');
    await alice.synced();
    expect(eve.text).toBe('hello world');
    expect(server.openDocuments).toBe(1);
    // Nothing re-opens it: the server sees no more opens from eve.
    expect(await server.revoke('eve')).toBe(0);
    expect(eventsOf.errors).toEqual([]);
  });
});
