/**
 * Fairness at the session level (a Session over a fake transport, a real Sequencer over a
 * store that counts its history reads): an impossible request at an old base reads no history
 * and counts toward the malformed-message limit, while the answers an honest client can
 * provoke do not; history work is charged to the connection's history bucket and the server's
 * shared one: an honest client rejoining far behind is slowed (its next request waits for the
 * bucket), never closed; a flooding connection is held to the rate; an edit at the head never
 * waits for other connections' history work; a request whose cost the session cannot tell yet
 * (the document's head is unknown to it) waits for the shared bucket and is charged once
 * answered, on every reconnect; an open waiting so counts for the open deadline; the messages
 * waiting are bounded in bytes. A catch-up over maxPayload goes out in pieces to a client that
 * takes them, paced by the socket's backlog, and no frame after them is over maxPayload. Time
 * is Vitest's fake clock (Date and timers) where it matters.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Component } from '../../src/ot/index.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Rooms } from '../../src/server/rooms.js';
import { Sequencer } from '../../src/server/sequencer.js';
import { SESSION_DEFAULTS, Session, type SessionOptions, type Transport } from '../../src/server/session.js';
import type { OpRecord } from '../../src/server/store.js';
import { noTelemetry, silentLogger } from '../../src/server/telemetry.js';
import { TokenBucket } from '../../src/server/token-bucket.js';
import { tick } from '../support/wait.js';

/** A MemoryStore that counts calls of getOps (history reads). */
class CountingStore extends MemoryStore {
  reads = 0;

  override getOps(docId: string, from: number, to: number): Promise<OpRecord[]> {
    this.reads++;
    return super.getOps(docId, from, to);
  }
}

/** A transport that keeps every message sent and the close code, if any. */
class FakeTransport implements Transport {
  readonly messages: Array<Record<string, unknown> & { type: string }> = [];
  readonly frames: string[] = [];
  closed: number | undefined;
  /** What the socket has not sent yet, in bytes (a test sets it). */
  backlog = 0;

  send(frame: string): void {
    this.frames.push(frame);
    const value = JSON.parse(frame) as unknown;
    for (const m of Array.isArray(value) ? value : [value]) this.messages.push(m as Record<string, unknown> & { type: string });
  }

  close(code: number): void {
    this.closed = code;
  }

  buffered(): number {
    return this.backlog;
  }

  of(type: string): Array<Record<string, unknown>> {
    return this.messages.filter((m) => m.type === type);
  }
}

/** Lets promises, setImmediate callbacks (the outbox) and store calls run; no timers. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await tick();
}

/** A document of `n` ops ('x' appended at the head each time) written by client 'writer'. */
async function build(sequencer: Sequencer, docId: string, n: number): Promise<void> {
  const requests = Array.from({ length: n }, (_, i) => ({
    docId,
    clientId: 'writer',
    seq: i + 1,
    baseVersion: i,
    op: (i === 0 ? ['x'] : [i, 'x']) as Component[],
  }));
  for (const a of await sequencer.submitMany(requests)) if (a instanceof Error) throw a;
}

/** Fakes the clock and timers (not setImmediate, which the outbox uses) and returns a fresh in-memory sequencer. */
function onFakeClock(): Sequencer {
  vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
  return new Sequencer(new MemoryStore(), { idleTimeout: 0 });
}

/** Rooms and a server history bucket of 100 versions a second (burst 1,000): easily in debt. */
function slowServerBucket(): Shared & { readonly history: TokenBucket } {
  return { rooms: new Rooms(0), history: new TokenBucket(100, 1000, Date.now()) };
}

/** What sessions of one server share: the rooms and, if given, the shared history bucket. */
interface Shared {
  readonly rooms: Rooms;
  readonly history?: TokenBucket;
}

function session(
  sequencer: Sequencer,
  options: Partial<SessionOptions> = {},
  shared: Shared = { rooms: new Rooms(0) },
  transport = new FakeTransport(),
): { session: Session; transport: FakeTransport } {
  if (!sharedRooms.has(shared.rooms)) {
    sharedRooms.add(shared.rooms);
    sequencer.onApplied((docId, record) => shared.rooms.publish(docId, record));
  }
  const s = new Session(transport, {
    sequencer,
    rooms: shared.rooms,
    telemetry: noTelemetry,
    logger: silentLogger,
    options: { ...SESSION_DEFAULTS, openDeadline: 0, ...options },
    authorize: () => 'write',
    history: shared.history,
    reauthenticate: undefined,
  });
  return { session: s, transport };
}

/** Rooms already fed by a sequencer. */
const sharedRooms = new WeakSet<Rooms>();

function send(s: Session, message: Record<string, unknown>): void {
  s.receive(JSON.stringify(message));
}

afterEach(() => {
  vi.useRealTimers();
});

describe('impossible requests at an old base', () => {
  it('an impossible seq at the oldest base reads no history, is refused seq-gap and counts as malformed', async () => {
    const store = new CountingStore();
    const sequencer = new Sequencer(store, { memoryHistory: 10, idleTimeout: 0 });
    await build(sequencer, 'hist', 200);
    const { session: s, transport } = session(sequencer, { maxBadMessages: 3 });
    send(s, { type: 'hello', protocol: 1, clientId: 'mallory' });
    send(s, { type: 'open', doc: 'hist', rid: 1 });
    await settle();
    expect(transport.of('opened')).toHaveLength(1);
    store.reads = 0;
    // Length 1 at version 1: the op fits that base, only the seq is impossible.
    send(s, { type: 'submit', doc: 'hist', v: 1, seq: 999_999, op: [1] });
    await settle();
    expect(transport.of('error')).toMatchObject([{ code: 'seq-gap', ref: { type: 'submit', seq: 999_999 } }]);
    expect(store.reads).toBe(0);
    for (let i = 0; i < 3; i++) send(s, { type: 'submit', doc: 'hist', v: 1, seq: 999_999, op: [1] });
    await settle();
    expect(store.reads).toBe(0);
    expect(transport.closed).toBe(4400);
  });

  it('the same base with a possible seq does read the history (the count above can see reads)', async () => {
    const store = new CountingStore();
    const sequencer = new Sequencer(store, { memoryHistory: 10, idleTimeout: 0 });
    await build(sequencer, 'hist', 200);
    const { session: s, transport } = session(sequencer);
    send(s, { type: 'hello', protocol: 1, clientId: 'late' });
    send(s, { type: 'open', doc: 'hist', rid: 1 });
    await settle();
    store.reads = 0;
    send(s, { type: 'submit', doc: 'hist', v: 1, seq: 1, op: [1, '!'] });
    await settle();
    expect(transport.of('ack')).toMatchObject([{ seq: 1, v: 201 }]);
    expect(store.reads).toBeGreaterThan(0);
  });

  it('a stale seq, a seq gap and a base past what the client was sent count; a resend of an applied op and seq-reused do not', async () => {
    const sequencer = new Sequencer(new MemoryStore(), { idleTimeout: 0 });
    await build(sequencer, 'doc', 5);
    const { session: s, transport } = session(sequencer, { maxBadMessages: 3 });
    send(s, { type: 'hello', protocol: 1, clientId: 'c' });
    send(s, { type: 'open', doc: 'doc', rid: 1 });
    await settle();
    send(s, { type: 'submit', doc: 'doc', v: 5, seq: 1, op: [5, 'a'] });
    send(s, { type: 'submit', doc: 'doc', v: 6, seq: 2, op: [6, 'b'] });
    await settle();
    expect(transport.of('ack')).toMatchObject([{ seq: 1, v: 6 }, { seq: 2, v: 7 }]);
    // A resend of an applied op (a reconnecting client's op in flight): acknowledged again.
    send(s, { type: 'submit', doc: 'doc', v: 6, seq: 2, op: [6, 'b'] });
    await settle();
    expect(transport.of('ack')).toHaveLength(3);
    send(s, { type: 'submit', doc: 'doc', v: 99, seq: 3, op: [7, 'c'] }); // version-ahead: 1
    send(s, { type: 'submit', doc: 'doc', v: 6, seq: 1, op: [6, 'z'] }); // seq-stale: 2
    send(s, { type: 'submit', doc: 'doc', v: 6, seq: 2, op: [6, 'z'] }); // seq-reused: not counted
    send(s, { type: 'submit', doc: 'doc', v: 7, seq: 9, op: [7, 'c'] }); // seq-gap: 3
    await settle();
    expect(transport.of('error').map((e) => e.code)).toEqual(['version-ahead', 'seq-stale', 'seq-reused', 'seq-gap']);
    expect(transport.closed).toBeUndefined();
    send(s, { type: 'submit', doc: 'doc', v: 7, seq: 10, op: [7, 'c'] }); // seq-gap: 4 > 3
    await settle();
    expect(transport.closed).toBe(4400);
  });
});

describe('history work charged to the connection', () => {
  it('an honest client rejoining far behind with an empty bucket is delayed, then answered, never closed', async () => {
    const sequencer = onFakeClock();
    await build(sequencer, 'doc', 3000);
    const { session: s, transport } = session(sequencer, { historyPerSecond: 100, historyBurst: 1000 });
    send(s, { type: 'hello', protocol: 1, clientId: 'rejoiner' });
    // Caught up from version 0: 3,000 versions, charged the burst (1,000): the bucket is empty.
    send(s, { type: 'open', doc: 'doc', rid: 1, v: 0, epoch: (await sequencer.open('doc', 'x')).epoch, sum: 0 });
    await settle();
    expect(transport.of('opened')).toMatchObject([{ v: 3000 }]);
    // Its op in flight, made on version 0: taken up at once (the bucket is not in debt), and
    // charged 3,000 versions, capped at the burst: 10 s of debt at 100 per second.
    send(s, { type: 'submit', doc: 'doc', v: 0, seq: 1, op: ['<'] });
    await settle();
    expect(transport.of('ack')).toMatchObject([{ seq: 1, v: 3001 }]);
    // The next edit waits for the bucket instead of being refused.
    send(s, { type: 'submit', doc: 'doc', v: 3001, seq: 2, op: [3001, '>'] });
    send(s, { type: 'ping' });
    await settle();
    expect(transport.of('ack')).toHaveLength(1);
    expect(transport.of('pong')).toHaveLength(1); // a ping is never held back
    vi.advanceTimersByTime(9000);
    await settle();
    expect(transport.of('ack')).toHaveLength(1);
    vi.advanceTimersByTime(1000);
    await settle();
    expect(transport.of('ack')).toMatchObject([{ seq: 1 }, { seq: 2, v: 3002 }]);
    expect(transport.of('error')).toEqual([]);
    expect(transport.closed).toBeUndefined();
    const text = (await sequencer.getSnapshot('doc')).text;
    expect([text.length, text.includes('<'), text.endsWith('>')]).toEqual([3002, true, true]);
  });

  it('a connection flooding far-behind requests is held to the rate, and closed once its queue overflows', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const store = new CountingStore();
    const sequencer = new Sequencer(store, { memoryHistory: 10, idleTimeout: 0 });
    await build(sequencer, 'hist', 2000);
    const options = { historyPerSecond: 100, historyBurst: 1000, maxPendingRequests: 8, maxBadMessages: 2 };
    const { session: s, transport } = session(sequencer, options);
    send(s, { type: 'hello', protocol: 1, clientId: 'mallory' });
    send(s, { type: 'open', doc: 'hist', rid: 1 });
    await settle();
    send(s, { type: 'submit', doc: 'hist', v: 1, seq: 1, op: [1, 'a'] }); // a late op: applied
    await settle();
    expect(transport.of('ack')).toHaveLength(1);
    store.reads = 0;
    const refused = (): number => transport.of('error').filter((e) => e.code === 'seq-reused').length;
    // seq 1 again with other content at the oldest base: each one makes the server go through
    // the history (to rebase it and compare) before it can refuse it.
    const flood = (): void => send(s, { type: 'submit', doc: 'hist', v: 1, seq: 1, op: [1, 'b'] });
    for (let i = 0; i < 17; i++) flood();
    await settle();
    const readsOfOne = store.reads;
    // The bucket was empty: only the first was taken up; 16 (twice maxPendingRequests) wait.
    expect([refused(), readsOfOne > 0, transport.closed]).toEqual([1, true, undefined]);
    vi.advanceTimersByTime(10_000); // 1,000 versions at 100 per second: one more
    await settle();
    expect([refused(), store.reads]).toEqual([2, 2 * readsOfOne]);
    // A full queue is more than an honest client ever has waiting: counted as malformed.
    for (let i = 0; i < 4; i++) flood();
    await settle();
    expect(transport.closed).toBe(4400);
  });

  it('the shared bucket in debt holds far-behind requests of every connection, never an edit at the head', async () => {
    const sequencer = onFakeClock();
    await build(sequencer, 'hist', 3000);
    await build(sequencer, 'other', 1);
    const shared = slowServerBucket();
    const generous = { historyPerSecond: 100_000, historyBurst: 100_000 };
    const join = (clientId: string, docId: string): { session: Session; transport: FakeTransport } => {
      const joined = session(sequencer, generous, shared);
      send(joined.session, { type: 'hello', protocol: 1, clientId });
      send(joined.session, { type: 'open', doc: docId, rid: 1 });
      return joined;
    };
    const late = join('late', 'hist');
    const another = join('another', 'hist');
    const editor = join('editor', 'other');
    await settle();
    // 3,000 versions behind: taken up (nothing in debt yet), and the shared bucket is 2,000 in debt.
    send(late.session, { type: 'submit', doc: 'hist', v: 0, seq: 1, op: ['a'] });
    await settle();
    expect(late.transport.of('ack')).toHaveLength(1);
    send(another.session, { type: 'submit', doc: 'hist', v: 0, seq: 1, op: ['b'] });
    send(editor.session, { type: 'submit', doc: 'other', v: 1, seq: 1, op: [1, '!'] });
    await settle();
    expect([another.transport.of('ack').length, editor.transport.of('ack').length]).toEqual([0, 1]);
    vi.advanceTimersByTime(19_000);
    await settle();
    expect(another.transport.of('ack')).toHaveLength(0);
    vi.advanceTimersByTime(1000);
    await settle();
    expect(another.transport.of('ack')).toHaveLength(1);
    const errors = [late, another, editor].flatMap((j) => j.transport.of('error'));
    expect(errors).toEqual([]);
  });
});

/** Fills document "doc" of `sequencer` with 200 ops of 100 characters each; returns its epoch. */
async function hundreds(sequencer: Sequencer): Promise<string> {
  const requests = Array.from({ length: 200 }, (_, i) => ({
    docId: 'doc',
    clientId: 'writer',
    seq: i + 1,
    baseVersion: i,
    op: (i === 0 ? ['x'.repeat(100)] : [i * 100, 'x'.repeat(100)]) as Component[],
  }));
  for (const a of await sequencer.submitMany(requests)) if (a instanceof Error) throw a;
  return (await sequencer.open('doc', 'x')).epoch;
}

describe('catch-up frames', () => {
  it('a catch-up over maxPayload goes out in pieces within it to a client that takes them, in one frame to one that does not', async () => {
    const sequencer = new Sequencer(new MemoryStore(), { idleTimeout: 0 });
    const epoch = await hundreds(sequencer);
    const framesOf = async (pieces: boolean): Promise<FakeTransport> => {
      const { session: s, transport } = session(sequencer, { maxPayload: 4096 });
      send(s, { type: 'hello', protocol: 1, clientId: `reader-${pieces}` });
      await settle();
      transport.frames.length = 0;
      send(s, { type: 'open', doc: 'doc', rid: 1, v: 0, epoch, sum: 0, ...(pieces ? { pieces: true } : {}) });
      await settle();
      return transport;
    };
    const cut = await framesOf(true);
    expect(cut.frames.length).toBeGreaterThan(5);
    for (const f of cut.frames) expect(Buffer.byteLength(f)).toBeLessThanOrEqual(4096);
    const entries = cut.messages.flatMap((m) => (m.ops as Array<{ v: number }> | undefined) ?? []).map((e) => e.v);
    expect(entries).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(cut.of('opened')).toMatchObject([{ rid: 1, v: 200 }]);
    const whole = await framesOf(false);
    expect(whole.frames).toHaveLength(1);
    expect(whole.of('opened')[0]?.ops).toHaveLength(200);
  });
});

describe('the history buckets, whoever asks and however often', () => {
  it('an open waiting for the shared bucket counts as opened for the open deadline: an honest rejoiner is not closed', async () => {
    const sequencer = onFakeClock();
    await build(sequencer, 'doc', 3000);
    const epoch = (await sequencer.open('doc', 'x')).epoch;
    const shared = slowServerBucket();
    const editor = session(sequencer, {}, shared);
    send(editor.session, { type: 'hello', protocol: 1, clientId: 'editor' });
    send(editor.session, { type: 'open', doc: 'doc', rid: 1 });
    await settle();
    expect(editor.transport.of('opened')).toHaveLength(1);
    shared.history.charge(2200, Date.now()); // 1,200 versions in debt: 12 s at 100 per second
    const { session: s, transport } = session(sequencer, { openDeadline: 10_000 }, shared);
    send(s, { type: 'hello', protocol: 1, clientId: 'rejoiner' });
    send(s, { type: 'open', doc: 'doc', rid: 1, v: 0, epoch, sum: 0 });
    await settle();
    expect(transport.of('opened')).toHaveLength(0);
    vi.advanceTimersByTime(10_000);
    await settle();
    expect(transport.closed).toBeUndefined();
    vi.advanceTimersByTime(2000);
    await settle();
    expect(transport.of('opened')).toMatchObject([{ v: 3000 }]);
    expect(transport.closed).toBeUndefined();
  });

  it('a connection whose open waits nowhere is still closed at the open deadline', async () => {
    const sequencer = onFakeClock();
    const { session: s, transport } = session(sequencer, { openDeadline: 10_000 });
    send(s, { type: 'hello', protocol: 1, clientId: 'idle' });
    vi.advanceTimersByTime(10_000);
    await settle();
    expect(transport.closed).toBe(4408);
  });

  it('a first open far behind on a document no one has open waits for the shared bucket and is charged, on every reconnect', async () => {
    const sequencer = onFakeClock();
    await build(sequencer, 'doc', 3000);
    const epoch = (await sequencer.open('doc', 'x')).epoch;
    const shared = slowServerBucket();
    shared.history.charge(2000, Date.now()); // 1,000 versions in debt: 10 s
    const rejoin = async (clientId: string): Promise<{ session: Session; transport: FakeTransport }> => {
      const joined = session(sequencer, {}, shared);
      send(joined.session, { type: 'hello', protocol: 1, clientId });
      send(joined.session, { type: 'open', doc: 'doc', rid: 1, v: 0, epoch, sum: 0 });
      await settle();
      return joined;
    };
    const first = await rejoin('first');
    expect(first.transport.of('opened')).toHaveLength(0);
    vi.advanceTimersByTime(10_000);
    await settle();
    expect(first.transport.of('opened')).toMatchObject([{ v: 3000 }]);
    first.session.disconnected();
    // Charged once answered (3,000 versions): a new connection waits 30 s more.
    const second = await rejoin('second');
    vi.advanceTimersByTime(29_000);
    await settle();
    expect(second.transport.of('opened')).toHaveLength(0);
    vi.advanceTimersByTime(1000);
    await settle();
    expect(second.transport.of('opened')).toMatchObject([{ v: 3000 }]);
    expect([...first.transport.of('error'), ...second.transport.of('error')]).toEqual([]);
  });

  it('the messages waiting at one connection are bounded in bytes: one more is refused like a full queue', async () => {
    const sequencer = onFakeClock();
    await build(sequencer, 'doc', 3000);
    const epoch = (await sequencer.open('doc', 'x')).epoch;
    const { session: s, transport } = session(sequencer, { historyPerSecond: 100, historyBurst: 1000, maxPayload: 4096 });
    send(s, { type: 'hello', protocol: 1, clientId: 'big' });
    send(s, { type: 'open', doc: 'doc', rid: 1, v: 0, epoch, sum: 0 });
    await settle();
    send(s, { type: 'submit', doc: 'doc', v: 0, seq: 1, op: ['<'] }); // its bucket is now in debt
    await settle();
    expect(transport.of('ack')).toHaveLength(1);
    // Frames of ~4 kB each wait: four fit in four times maxPayload, the fifth does not.
    for (let seq = 2; seq <= 6; seq++) send(s, { type: 'submit', doc: 'doc', v: 3001, seq, op: [3001, 'y'.repeat(3900)] });
    await settle();
    expect(transport.of('error')).toMatchObject([{ code: 'rate-limited' }]);
    vi.advanceTimersByTime(20_000);
    await settle();
    expect(transport.of('ack').map((a) => a.seq)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('catch-up frames, bounded', () => {

  it('ops that arrive while the pieces go out are not joined with `opened` or each other into a frame over maxPayload', async () => {
    const sequencer = new Sequencer(new MemoryStore(), { idleTimeout: 0 });
    const epoch = await hundreds(sequencer);
    let written: Promise<unknown> | undefined;
    const transport = new (class extends FakeTransport {
      override send(frame: string): void {
        super.send(frame);
        // Once the first piece is out, another client commits two ops of ~3.9 kB: they are held.
        if (written === undefined && frame.startsWith('{"type":"ops","doc":"doc","rid":1')) {
          written = sequencer.submitMany(
            [1, 2].map((seq) => ({
              docId: 'doc',
              clientId: 'other',
              seq,
              baseVersion: 199 + seq,
              op: [16_100 + seq * 3900, 'y'.repeat(3900)] as Component[],
            })),
          );
        }
      }
    })();
    const { session: s } = session(sequencer, { maxPayload: 4096 }, undefined, transport);
    send(s, { type: 'hello', protocol: 1, clientId: 'reader' });
    send(s, { type: 'open', doc: 'doc', rid: 1, v: 0, epoch, sum: 0, pieces: true });
    await settle();
    await written;
    await settle();
    expect(transport.of('opened')).toMatchObject([{ rid: 1, v: 200 }]);
    const entries = transport.messages.flatMap((m) => (m.ops as Array<{ v: number }> | undefined) ?? []).map((e) => e.v);
    expect(entries).toEqual(Array.from({ length: 202 }, (_, i) => i + 1));
    for (const f of transport.frames) expect(Buffer.byteLength(f)).toBeLessThanOrEqual(4096);
  });

  it('the pieces wait while the socket has more than maxPayload unsent', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const sequencer = new Sequencer(new MemoryStore(), { idleTimeout: 0 });
    const epoch = await hundreds(sequencer);
    // A reader that reads nothing until the test lets it: every frame sent stays in the backlog.
    const transport = new (class extends FakeTransport {
      override send(frame: string): void {
        super.send(frame);
        this.backlog += Buffer.byteLength(frame);
      }
    })();
    const { session: s } = session(sequencer, { maxPayload: 4096 }, undefined, transport);
    send(s, { type: 'hello', protocol: 1, clientId: 'slow' });
    send(s, { type: 'open', doc: 'doc', rid: 1, v: 0, epoch, sum: 0, pieces: true });
    await settle();
    vi.advanceTimersByTime(1000);
    await settle();
    const pieces = (): number => transport.messages.filter((m) => m.type === 'ops' && m.rid === 1).length;
    expect([pieces() <= 3, transport.backlog <= 3 * 4096, transport.of('opened').length]).toEqual([true, true, 0]);
    for (let i = 0; i < 20 && transport.of('opened').length === 0; i++) {
      transport.backlog = 0; // the reader catches up
      vi.advanceTimersByTime(100);
      await settle();
    }
    expect(pieces()).toBeGreaterThan(5);
    expect(transport.of('opened')).toMatchObject([{ rid: 1, v: 200 }]);
  });
});
