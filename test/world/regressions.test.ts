/**
 * The resync failures seen from outside, each replayed step by step in the loopback world
 * (real client, real session and sequencer, frames delivered by hand), and what must happen
 * instead:
 * 1. a retried open answered twice must not let the stale answer count;
 * 2. an open must not overtake an earlier submit of the same client that is still committing;
 * 3. a server that lost its data must not wipe the clients that hold it;
 * plus the checks that catch any divergence left: checksums on every ack, and a refusal that
 * contradicts the client's premise.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DivergedEvent, ResetEvent } from '../../src/client/document.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { type Link, World, type WorldClient } from '../support/world.js';

const DOC = 'doc';

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

/** Delivers the link's frames both ways until it is quiet, with time for the server's work. */
async function exchange(world: World, link: Link): Promise<void> {
  for (let i = 0; i < 100 && link.busy; i++) {
    link.deliverUp();
    await world.settle();
    link.deliverDown();
    await world.settle();
  }
}

/** A client past its handshake with its open sent but not read by the server. */
async function handshake(world: World, client: WorldClient): Promise<Link> {
  await world.settle();
  const link = world.linkOf(client) as Link;
  link.deliverDown(); // the socket opens; the client says hello
  link.deliverUp();
  await world.settle();
  link.deliverDown(); // welcome; the client sends its open
  await world.settle();
  return link;
}

/** Every message the client sent on `link` that the server has not read, parsed. */
function pendingUp(link: Link): Array<Record<string, unknown>> {
  return link.up.filter((f): f is string => typeof f === 'string').map((f) => JSON.parse(f) as Record<string, unknown>);
}

describe('regression 1: a retried open answered twice', () => {
  it('the stale answer is dropped, and the edits typed meanwhile reach the server exactly once', async () => {
    const world = new World(DOC);
    const a = world.addClient('a');
    const link = await handshake(world, a);
    expect(pendingUp(link).map((m) => m.type)).toEqual(['open']);
    link.deliverUp();
    await world.settle(); // the server answers the first open (rid 1)
    // The server then says it dropped a message, not which: the client retries its open.
    link.inject({ type: 'error', code: ErrorCode.RateLimited, message: 'slow down: the message was dropped' });
    link.deliverDown(1);
    await world.advance(100);
    const retried = pendingUp(link);
    expect(retried.map((m) => m.type)).toEqual(['open']);
    link.deliverUp();
    await world.settle(); // the server answers the second open too
    expect(link.down.map((d) => (d.kind === 'frame' ? (JSON.parse(d.data) as { type: string }).type : d.kind))).toEqual([
      'opened',
      'opened',
    ]);
    // The first answer arrives: it answers an attempt the client gave up.
    link.deliverDown(1);
    await world.settle();
    expect(a.doc.lifecycle.phase).toBe('opening');
    a.doc.insert(0, 'X');
    a.doc.insert(1, 'Y');
    expect(pendingUp(link)).toEqual([]);
    // The second answer counts: the edits go out as one op, seq 1.
    link.deliverDown(1);
    await world.settle();
    expect(pendingUp(link)).toMatchObject([{ type: 'submit', seq: 1, v: 0, op: ['XY'] }]);
    await exchange(world, link);
    const head = await world.head();
    expect(head.text).toBe('XY');
    expect(a.doc.text).toBe('XY');
    expect(a.doc.version).toBe(head.version);
    expect(a.doc.syncState.kind).toBe('synchronized');
    world.close();
  });
});

describe('regression 2: an open overtaking an earlier submit', () => {
  it('an open after a reconnect is answered after the submit its old connection had sent, which it then counts', async () => {
    const world = new World(DOC);
    const a = world.addClient('a');
    const first = await handshake(world, a);
    await exchange(world, first);
    expect(a.doc.lifecycle.phase).toBe('live');
    // B is committed slowly; C is sent while B commits, on the same connection.
    world.node.store.faults.delay = 20;
    a.doc.insert(0, 'B');
    first.deliverUp();
    await world.settle();
    first.deliverDown(); // nothing yet: B is still being committed
    expect(a.doc.syncState.kind).not.toBe('synchronized');
    // The connection drops; the client's next connection opens while B still commits.
    first.drop(false);
    a.doc.insert(1, 'C');
    await world.advance(10);
    const second = world.linkOf(a) as Link;
    expect(second).not.toBe(first);
    second.deliverDown();
    second.deliverUp();
    await world.settle();
    second.deliverDown();
    await world.settle();
    expect(pendingUp(second)).toMatchObject([{ type: 'open' }]);
    second.deliverUp();
    await world.advance(30); // B's commit ends; only then is the open answered
    const opened = second.down
      .filter((d) => d.kind === 'frame')
      .map((d) => JSON.parse((d as { data: string }).data) as { type: string; seq?: number; ops?: unknown[] })
      .find((m) => m.type === 'opened');
    expect(opened).toMatchObject({ type: 'opened', seq: 1 });
    await exchange(world, second);
    const head = await world.head();
    expect(head.text).toBe('BC');
    expect(a.doc.text).toBe('BC');
    expect(a.doc.syncState.kind).toBe('synchronized');
    world.close();
  });
});

describe('regression 3: a server that lost its data', () => {
  it('does not wipe the clients that hold the document: one restores it, the others take it, all are told', async () => {
    const world = new World(DOC);
    const a = world.addClient('a');
    const b = world.addClient('b');
    const c = world.addClient('c');
    await world.flush();
    a.doc.insert(0, 'hello ');
    await world.flush();
    b.doc.insert(6, 'world');
    await world.flush();
    expect(a.doc.text).toBe('hello world');
    expect(b.doc.text).toBe('hello world');
    const resets: Array<{ who: string; event: ResetEvent }> = [];
    const changes: string[] = [];
    for (const client of [a, b, c]) {
      client.doc.on('reset', (event) => resets.push({ who: client.name, event }));
      client.doc.on('change', () => changes.push(client.doc.text));
    }
    // The server restarts without its data while all hold the text; b types more meanwhile
    // (sent before it learns the connection is gone: in flight, maybe landed, maybe not).
    world.restart('empty');
    b.doc.insert(11, '!');
    await world.quiesce();
    const head = await world.head();
    expect(head.text).toBe('hello world!');
    for (const client of [a, b, c]) expect(client.doc.text).toBe('hello world!');
    // Nobody ever showed the server's empty text.
    expect(changes).not.toContain('');
    // Whoever came back first restored the text and the others took it; b, whose op in
    // flight may or may not have landed, merged that op in either way (kept once).
    const actions = Object.fromEntries(resets.map((r) => [r.who, r.event.action]));
    expect(actions['b']).toBe('restored');
    expect([actions['a'], actions['c']].filter((a) => a === 'restored').length).toBeLessThanOrEqual(1);
    expect([actions['a'], actions['c']].every((a) => a === 'restored' || a === 'adopted')).toBe(true);
    expect(resets).toHaveLength(3);
    for (const { event } of resets) {
      expect(event.lost.version).toBe(2);
      expect(event.local.startsWith('hello world')).toBe(true);
    }
    world.close();
  });

  it('a store rolled back to an older backup gets the newer text back from its clients', async () => {
    const world = new World(DOC);
    const a = world.addClient('a');
    await world.flush();
    a.doc.insert(0, 'one ');
    await world.flush();
    const backup = world.storeLength;
    a.doc.insert(4, 'two ');
    await world.flush();
    a.doc.insert(8, 'three');
    await world.flush();
    const resets: ResetEvent[] = [];
    a.doc.on('reset', (e) => resets.push(e));
    world.restart('older', backup);
    await world.quiesce();
    const head = await world.head();
    expect(head.text).toBe('one two three');
    expect(a.doc.text).toBe('one two three');
    expect(resets).toHaveLength(1);
    expect(resets[0]).toMatchObject({ action: 'restored', lost: { version: 3 } });
    world.close();
  });

  it('with onLost: accept, the client takes the server text and keeps only its unsent edits', async () => {
    const world = new World(DOC);
    const a = world.addClient('a', { onLost: 'accept' });
    await world.flush();
    a.doc.insert(0, 'kept by nobody');
    await world.flush();
    const resets: ResetEvent[] = [];
    a.doc.on('reset', (e) => resets.push(e));
    world.restart('empty');
    a.doc.insert(0, 'new ');
    await world.quiesce();
    expect((await world.head()).text).toBe('new ');
    expect(a.doc.text).toBe('new ');
    expect(resets).toMatchObject([{ action: 'accepted', local: 'new kept by nobody', server: '' }]);
    world.close();
  });
});

describe('divergence is detected and healed', () => {
  it('an ack whose checksum disagrees with the op the client sent heals from a snapshot, keeping unsent edits', async () => {
    const world = new World(DOC);
    const a = world.addClient('a');
    await world.flush();
    const diverged: DivergedEvent[] = [];
    a.doc.on('diverged', (e) => diverged.push(e));
    a.doc.insert(0, 'abc');
    const link = world.linkOf(a) as Link;
    link.deliverUp();
    await world.settle();
    // The ack of "abc" arrives with a checksum for other content, as if the server applied another op.
    const ack = link.down.findIndex((d) => d.kind === 'frame' && d.data.includes('"ack"'));
    const frame = link.down[ack] as { kind: 'frame'; data: string };
    const message = JSON.parse(frame.data) as { sum: number };
    link.down[ack] = { kind: 'frame', data: JSON.stringify({ ...message, sum: message.sum + 1 }) };
    a.doc.insert(3, 'd');
    await world.flush();
    expect(diverged).toMatchObject([{ reason: 'checksum', version: 1 }]);
    const head = await world.head();
    expect(a.doc.text).toBe(head.text);
    expect(head.text).toContain('d');
    expect(a.doc.syncState.kind).toBe('synchronized');
    world.close();
  });

  it('a client that missed the last op (a frame lost on the way) learns it from the head the server announces once ops pause', async () => {
    const world = new World(DOC);
    const a = world.addClient('a');
    const b = world.addClient('b');
    await world.quiesce();
    a.doc.insert(0, 'last words');
    const toServer = world.linkOf(a) as Link;
    toServer.deliverUp();
    await world.settle();
    // Lost on the way: b never gets the frame with the op.
    const link = world.linkOf(b) as Link;
    const lost = link.down.findIndex((d) => d.kind === 'frame' && d.data.includes('last words'));
    expect(lost).toBeGreaterThanOrEqual(0);
    link.down.splice(lost, 1);
    await world.quiesce();
    expect(b.doc.text).toBe('');
    expect(b.doc.syncState.kind).toBe('synchronized');
    await world.advance(1100); // the ops paused: the server announces its head
    await world.quiesce();
    expect(b.doc.text).toBe('last words');
    expect(b.doc.version).toBe(1);
    world.close();
  });

  it('a refusal naming a seq the client no longer holds in flight is a contradiction: it heals', async () => {
    const world = new World(DOC);
    const a = world.addClient('a');
    await world.flush();
    a.doc.insert(0, 'x');
    await world.flush();
    const diverged: DivergedEvent[] = [];
    a.doc.on('diverged', (e) => diverged.push(e));
    const link = world.linkOf(a) as Link;
    link.inject({ type: 'error', code: ErrorCode.SeqReused, message: 'seq 1 was applied with different content', ref: { type: 'submit', doc: DOC, seq: 1 } });
    await world.flush();
    expect(diverged).toMatchObject([{ reason: 'refusal', code: ErrorCode.SeqReused }]);
    expect(a.doc.lifecycle.phase).toBe('live');
    expect(a.doc.text).toBe((await world.head()).text);
    world.close();
  });
});
