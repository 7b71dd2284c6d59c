import { WebSocket as NodeWebSocket } from 'ws';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { reconnectDelay } from '../../src/client/backoff.js';
import { Connection, type ConnectionOptions, type WebSocketConstructor } from '../../src/client/connection.js';
import { handshake, tokenExpiry } from '../../src/client/token.js';
import { ProtocolError } from '../../src/protocol/parse.js';
import { EPOCH, FAKE_LIMITS, FakeWebSocket } from './fakes.js';

const base: ConnectionOptions = {
  WebSocket: FakeWebSocket,
  minReconnectDelay: 100,
  maxReconnectDelay: 1000,
  heartbeatInterval: 1000,
  // No request leaves the test: the token check after a failed attempt finds no network.
  fetch: () => Promise.reject(new Error('no network in this test')),
};

/** Advances fake time 1 ms at a time until a new socket is created; returns the ms it took. */
function msUntilNextSocket(limit = 5000): number {
  const count = FakeWebSocket.instances.length;
  for (let ms = 1; ms <= limit; ms++) {
    vi.advanceTimersByTime(1);
    if (FakeWebSocket.instances.length > count) return ms;
  }
  throw new Error(`no new socket within ${limit} ms`);
}

function connectionWithStates(options: ConnectionOptions = base): { c: Connection; states: string[]; errors: Error[] } {
  const c = new Connection('ws://h/otter', options);
  const states: string[] = [];
  const errors: Error[] = [];
  c.on('state', (s) => states.push(s));
  c.on('error', (e) => errors.push(e));
  return { c, states, errors };
}

beforeEach(() => {
  FakeWebSocket.reset();
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
});

describe('Connection: construction', () => {
  it('throws a clear error when there is no WebSocket class', () => {
    vi.stubGlobal('WebSocket', undefined);
    expect(() => new Connection('ws://h/')).toThrow(/no WebSocket class.*pass one as the WebSocket option/);
  });

  it('fails fast on contradictory options and bad URLs', () => {
    expect(() => new Connection('ws://h/', { ...base, token: 'a', getToken: () => 'b' })).toThrow(/either token or getToken/);
    expect(() => new Connection('ws://h/', { ...base, minReconnectDelay: 500, maxReconnectDelay: 100 })).toThrow(RangeError);
    expect(() => new Connection('ws://h/', { ...base, minReconnectDelay: 0 })).toThrow(RangeError);
    expect(() => new Connection('ws://h/', { ...base, heartbeatInterval: 1000, heartbeatTimeout: 1000 })).toThrow(
      /must exceed heartbeatInterval/,
    );
    expect(() => new Connection('ws://h/', { ...base, limits: { maxPayload: 0, maxOpLength: 1 } })).toThrow(/limits.maxPayload/);
    expect(() => new Connection('ws://h/', { ...base, limits: { maxPayload: 1, maxOpLength: 1.5 } })).toThrow(/limits.maxOpLength/);
    expect(() => new Connection('ws://h/', { ...base, refreshMargin: -1 })).toThrow(/refreshMargin/);
    expect(() => new Connection('not a url', base)).toThrow();
    expect(() => new Connection('ftp://h/', base)).toThrow(/must be ws:, wss:, http: or https:/);
    expect(FakeWebSocket.instances).toHaveLength(0);
  });

  it('accepts the ws package and the DOM WebSocket as WebSocket classes (checked by tsc)', () => {
    const fits = (ctor: WebSocketConstructor): WebSocketConstructor => ctor;
    expect(fits(NodeWebSocket)).toBe(NodeWebSocket);
    // Type-level only: Node 20 has no global WebSocket.
    const dom = (): WebSocketConstructor => fits(globalThis.WebSocket);
    expect(typeof dom).toBe('function');
  });
});

describe('Connection: handshake', () => {
  it('says hello with a random clientId that stays the same across reconnections', () => {
    const { c, states } = connectionWithStates();
    const ws = FakeWebSocket.last;
    expect(ws.url).toBe('ws://h/otter');
    expect(c.state).toBe('connecting');
    ws.open();
    expect(ws.messages()).toEqual([{ type: 'hello', protocol: 1, clientId: c.clientId }]);
    expect(c.clientId).toMatch(/^[0-9a-f]{32}$/);
    ws.receive({ type: 'welcome', protocol: 1, connectionId: 'c7', clientId: c.clientId as string, limits: FAKE_LIMITS });
    expect(c.state).toBe('open');
    expect(c.connectionId).toBe('c7');
    ws.serverClose(1001);
    expect(c.state).toBe('connecting');
    msUntilNextSocket();
    FakeWebSocket.last.open();
    expect(FakeWebSocket.last.messages()).toEqual([{ type: 'hello', protocol: 1, clientId: c.clientId }]);
    expect(new Connection('ws://h/', base).clientId).not.toBe(c.clientId);
    expect(states).toEqual(['open', 'connecting']);
  });

  it('takes http: and https: URLs as ws: and wss:', () => {
    new Connection('https://h/otter', base);
    expect(FakeWebSocket.last.url).toBe('wss://h/otter');
    new Connection('http://h:8080/otter', base);
    expect(FakeWebSocket.last.url).toBe('ws://h:8080/otter');
  });

  it('uses the clientId it is given', () => {
    const c = new Connection('ws://h/', { ...base, clientId: 'me' });
    FakeWebSocket.last.open();
    expect(FakeWebSocket.last.messages()).toEqual([{ type: 'hello', protocol: 1, clientId: 'me' }]);
    expect(c.clientId).toBe('me');
  });

  it('offers the token as the subprotocol otter.token.<token> next to otter.v1, keeping it out of the URL', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJl-_~';
    new Connection('ws://h/otter?room=1', { ...base, token: jwt });
    expect(FakeWebSocket.last.protocols).toEqual(['otter.v1', `otter.token.${jwt}`]);
    expect(FakeWebSocket.last.url).toBe('ws://h/otter?room=1');
    expect(new URL(FakeWebSocket.last.url).searchParams.has('token')).toBe(false);
  });

  it('offers only otter.v1 without a token', () => {
    new Connection('ws://h/otter', base);
    expect(FakeWebSocket.last.protocols).toEqual(['otter.v1']);
    expect(FakeWebSocket.last.url).toBe('ws://h/otter');
  });

  it('sends a token a subprotocol cannot carry as the token query parameter, keeping the URL query', () => {
    new Connection('ws://h/otter?room=1', { ...base, token: 'a b&c' });
    const url = new URL(FakeWebSocket.last.url);
    expect(url.searchParams.get('room')).toBe('1');
    expect(url.searchParams.get('token')).toBe('a b&c');
    expect(FakeWebSocket.last.protocols).toEqual(['otter.v1']);
  });

  it('awaits getToken before every connection attempt, so a reconnection re-authenticates', async () => {
    let n = 0;
    const getToken = vi.fn(async () => `t${++n}`);
    new Connection('ws://h/otter', { ...base, getToken });
    expect(FakeWebSocket.instances).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeWebSocket.last.protocols).toEqual(['otter.v1', 'otter.token.t1']);
    FakeWebSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(FakeWebSocket.last.protocols).toEqual(['otter.v1', 'otter.token.t2']);
    expect(getToken).toHaveBeenCalledTimes(2);
  });

  it('reports a failing getToken and retries with backoff', async () => {
    let fail = true;
    const { errors } = connectionWithStates({
      ...base,
      getToken: () => {
        if (fail) throw new Error('no token');
        return 'ok';
      },
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(errors.map((e) => e.message)).toEqual(['no token']);
    expect(FakeWebSocket.instances).toHaveLength(0);
    fail = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });
});

describe('Connection: reconnection backoff', () => {
  it('reconnectDelay stays within [min, min(max, min·2^(attempt+1))) and spans the window with the random value', () => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const cap = Math.min(1000, 100 * 2 ** (attempt + 1));
      expect(reconnectDelay(attempt, 100, 1000, () => 0)).toBe(100);
      expect(reconnectDelay(attempt, 100, 1000, () => 0.5)).toBe(100 + (cap - 100) / 2);
      const top = reconnectDelay(attempt, 100, 1000, () => 0.999999);
      expect(top).toBeLessThan(cap);
      expect(top).toBeGreaterThan(cap - 1);
    }
    expect(reconnectDelay(1e6, 100, 1000, () => 0.5)).toBe(550);
  });

  it('waits longer after each consecutive failure, jittered by Math.random, and starts over after a welcome', () => {
    const random = vi.spyOn(Math, 'random').mockReturnValue(0.5);
    new Connection('ws://h/', base);
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      FakeWebSocket.last.serverClose(1006); // never opened
      delays.push(msUntilNextSocket());
    }
    // Windows [100, 200), [100, 400), [100, 800), [100, 1000), [100, 1000); random 0.5 is mid-window.
    expect(delays).toEqual([150, 250, 450, 550, 550]);
    random.mockReturnValue(0);
    FakeWebSocket.last.serverClose(1006);
    expect(msUntilNextSocket()).toBe(100);
    random.mockReturnValue(0.5);
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.serverClose(1001);
    expect(msUntilNextSocket()).toBe(150);
  });
});

describe('Connection: documents', () => {
  it('opens documents after the welcome, returns the same instance while open, and re-opens them from their version after a reconnection', async () => {
    const c = new Connection('ws://h/', base);
    const a = c.open('a');
    const b = c.open('b');
    expect(c.open('a')).toBe(a);
    const ws = FakeWebSocket.last;
    ws.welcome();
    expect(ws.messages().slice(1)).toEqual([
      { type: 'open', doc: 'a', rid: expect.any(Number) },
      { type: 'open', doc: 'b', rid: expect.any(Number) },
    ]);
    const rids = ws.messages().slice(1).map((m) => (m as { rid: number }).rid);
    // One frame, two messages.
    ws.receive([
      { type: 'opened', doc: 'a', rid: rids[0] as number, epoch: EPOCH, sum: 0, v: 3, seq: 0, text: 'abc' },
      { type: 'opened', doc: 'b', rid: rids[1] as number, epoch: EPOCH, sum: 0, v: 0, seq: 0, text: '' },
    ]);
    await Promise.all([a.ready, b.ready]);
    expect(a.text).toBe('abc');
    ws.serverClose(1001);
    a.insert(3, '!'); // while disconnected: waits in the document
    msUntilNextSocket();
    const ws2 = FakeWebSocket.last;
    ws2.welcome();
    expect(ws2.messages().slice(1)).toEqual([
      { type: 'open', doc: 'a', rid: expect.any(Number), v: 3, epoch: EPOCH, sum: 0, pieces: true },
      { type: 'open', doc: 'b', rid: expect.any(Number), v: 0, epoch: EPOCH, sum: 0, pieces: true },
    ]);
    ws2.answerOpen('a', { v: 3, ops: [] });
    expect(ws2.messages().slice(3)).toEqual([{ type: 'submit', doc: 'a', v: 3, seq: 1, op: [3, '!'] }]);
  });

  it('opens a document at once when already welcomed, and forgets it when it is closed', () => {
    const c = new Connection('ws://h/', base);
    const ws = FakeWebSocket.last;
    ws.welcome();
    const a = c.open('a');
    expect(ws.messages().slice(1)).toEqual([{ type: 'open', doc: 'a', rid: expect.any(Number) }]);
    a.close();
    expect(ws.messages().slice(2)).toEqual([{ type: 'close', doc: 'a' }]);
    const again = c.open('a');
    expect(again).not.toBe(a);
    ws.receive({ type: 'closed', doc: 'a' }); // the answer to the first close: harmless
    ws.answerOpen('a', { v: 1, text: 'x' });
    expect(again.text).toBe('x');
  });

  it('sends errors about an open document to it, and the others to the connection', () => {
    const { c, errors } = connectionWithStates();
    const a = c.open('a');
    const docErrors: string[] = [];
    a.on('error', (e) => docErrors.push(e.code));
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.receive({ type: 'error', code: 'not-open', message: 'x', ref: { type: 'presence', doc: 'a' } });
    FakeWebSocket.last.receive({ type: 'error', code: 'bad-request', message: 'y', ref: { type: 'open' } });
    expect(docErrors).toEqual(['not-open']);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(ProtocolError);
    expect(errors[0]).toMatchObject({ code: 'bad-request', message: 'y' });
  });

  it('reports an unreadable frame as an error and goes on', () => {
    const { c, errors } = connectionWithStates();
    const a = c.open('a');
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.receive('{not json');
    FakeWebSocket.last.answerOpen('a', { v: 1, text: 'ok' });
    expect(errors.map((e) => (e as ProtocolError).code)).toEqual(['bad-message']);
    expect(a.text).toBe('ok');
  });
});

describe('Connection: heartbeat', () => {
  it('pings every heartbeatInterval and keeps a connection that answers', () => {
    new Connection('ws://h/', base);
    const ws = FakeWebSocket.last;
    ws.welcome();
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(1000);
      ws.receive({ type: 'pong' });
    }
    expect(ws.messages().filter((m) => m.type === 'ping')).toHaveLength(5);
    expect(ws.closedWith).toBeUndefined();
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it('closes a socket that stays silent for heartbeatTimeout (default 2× the interval) and reconnects', () => {
    const { c } = connectionWithStates();
    const ws = FakeWebSocket.last;
    ws.welcome();
    vi.advanceTimersByTime(1999);
    expect(ws.closedWith).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(ws.closedWith).toEqual({ code: 1000, reason: 'heartbeat timeout' });
    expect(c.state).toBe('connecting');
    msUntilNextSocket();
    expect(FakeWebSocket.instances).toHaveLength(2);
    ws.serverClose(1006); // the old socket's late close event changes nothing
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('a hidden tab whose timers wake together (throttled) keeps a live link, and still drops a dead one', () => {
    new Connection('ws://h/', base);
    const ws = FakeWebSocket.last;
    ws.welcome();
    // The wall clock jumps a minute while no timer ran; then the ping and the deadline run at
    // the same instant, before the pong to that ping can arrive.
    const now = vi.spyOn(Date, 'now').mockReturnValue(Date.now() + 60_000);
    vi.advanceTimersByTime(2000);
    expect(ws.closedWith).toBeUndefined();
    now.mockReturnValue(Date.now() + 1); // the pong arrives at once
    ws.receive({ type: 'pong' });
    expect(ws.closedWith).toBeUndefined();
    // A dead link: a minute later nothing answered the pings sent since.
    now.mockReturnValue(Date.now() + 60_000);
    vi.advanceTimersByTime(2000);
    expect(ws.closedWith).toBeUndefined(); // the ping sent at this wake-up is not overdue yet
    now.mockReturnValue(Date.now() + 60_000);
    vi.advanceTimersByTime(2000);
    expect(ws.closedWith).toEqual({ code: 1000, reason: 'heartbeat timeout' });
    now.mockRestore();
  });

  it('gives up on a socket that never opens after heartbeatTimeout', () => {
    new Connection('ws://h/', { ...base, heartbeatTimeout: 1500 });
    vi.advanceTimersByTime(1500);
    expect(FakeWebSocket.last.closedWith).toBeDefined();
    msUntilNextSocket();
    expect(FakeWebSocket.instances).toHaveLength(2);
  });
});

describe('Connection: stopping', () => {
  it('does not reconnect after close(): closes the socket and the documents, and refuses to open more', async () => {
    const { c, states } = connectionWithStates();
    const a = c.open('a');
    FakeWebSocket.last.welcome();
    c.close();
    expect(FakeWebSocket.last.closedWith?.code).toBe(1000);
    expect(c.state).toBe('closed');
    expect(a.closed).toBe(true);
    await expect(a.ready).rejects.toMatchObject({ code: 'closed' });
    FakeWebSocket.last.serverClose(1000);
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(() => c.open('b')).toThrow(/closed/);
    c.close();
    expect(states).toEqual(['open', 'closed']);
  });

  it('does not reconnect while a backoff is pending once closed', () => {
    const c = new Connection('ws://h/', base);
    FakeWebSocket.last.serverClose(1006);
    c.close();
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it('stops for good with an error on close code 4000 (unsupported protocol)', () => {
    const { c, errors } = connectionWithStates();
    const ws = FakeWebSocket.last;
    ws.open();
    ws.receive({ type: 'error', code: 'unsupported-protocol', message: 'no', ref: { type: 'hello' } });
    ws.serverClose(4000);
    expect(c.state).toBe('closed');
    expect(errors.map((e) => (e as ProtocolError).code)).toEqual(['unsupported-protocol']); // reported once
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it('stops with an error on close code 4000 even without an error message first', () => {
    const { c, errors } = connectionWithStates();
    FakeWebSocket.last.open();
    FakeWebSocket.last.serverClose(4000);
    expect(c.state).toBe('closed');
    expect(errors.map((e) => (e as ProtocolError).code)).toEqual(['unsupported-protocol']);
  });

  it('stops on a welcome of another protocol version', () => {
    const { c, errors } = connectionWithStates();
    FakeWebSocket.last.open();
    FakeWebSocket.last.receive({ type: 'welcome', protocol: 2, connectionId: 'c', clientId: 'x', limits: FAKE_LIMITS });
    expect(c.state).toBe('closed');
    expect(errors).toHaveLength(1);
  });

  it('on 4401 (token expired) reconnects with getToken and stops without it', async () => {
    const fixed = connectionWithStates({ ...base, token: 'old' });
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.serverClose(4401);
    expect(fixed.c.state).toBe('closed');
    expect(fixed.errors.map((e) => (e as ProtocolError).code)).toEqual(['auth-expired']);

    FakeWebSocket.reset();
    new Connection('ws://h/', { ...base, getToken: () => 'fresh' });
    await vi.advanceTimersByTimeAsync(0);
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.serverClose(4401);
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('on 4408 with no document open waits for the next open() to reconnect', () => {
    const c = new Connection('ws://h/', base);
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.serverClose(4408);
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(c.state).toBe('connecting');
    c.open('a');
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.last.welcome();
    expect(FakeWebSocket.last.messages().slice(1)).toEqual([{ type: 'open', doc: 'a', rid: expect.any(Number) }]);
  });
});

describe('Connection: oversized frames', () => {
  it('on 1009 undoes the largest submission in flight instead of resending it forever', () => {
    const c = new Connection('ws://h/', base);
    const a = c.open('a');
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.answerOpen('a', { v: 1, text: 'x' });
    const errors: string[] = [];
    a.on('error', (e) => errors.push(e.code));
    a.insert(1, 'y'.repeat(5000));
    a.insert(5001, '!'); // buffered behind it
    ws.serverClose(1009);
    expect(errors).toEqual(['too-large']);
    expect(a.text).toBe('x!');
    msUntilNextSocket();
    const ws2 = FakeWebSocket.last;
    ws2.welcome();
    ws2.answerOpen('a', { v: 1, ops: [] });
    expect(ws2.messages().slice(2)).toEqual([{ type: 'submit', doc: 'a', v: 1, seq: 1, op: [1, '!'] }]);
  });
});

/** An unsigned JWT whose payload is `claims` (the client never verifies signatures). */
function jwt(claims: object): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}.c2lnbmF0dXJl`;
}

describe('token helpers', () => {
  it('tokenExpiry reads a JWT exp in ms, without verifying; undefined for anything else', () => {
    expect(tokenExpiry(jwt({ sub: 'ann', exp: 1_790_000_000 }))).toBe(1_790_000_000_000);
    expect(tokenExpiry(jwt({ sub: 'zoë 中', exp: 12.5 }))).toBe(12_500);
    expect(tokenExpiry(jwt({ sub: 'ann' }))).toBeUndefined();
    expect(tokenExpiry(jwt({ exp: '1790000000' }))).toBeUndefined();
    expect(tokenExpiry('opaque')).toBeUndefined();
    expect(tokenExpiry('a.b')).toBeUndefined();
    expect(tokenExpiry('a.!!!.c')).toBeUndefined();
    expect(tokenExpiry('a.eyJleHAiOjF.c')).toBeUndefined(); // truncated JSON
    expect(tokenExpiry(`a.${Buffer.from('[1]').toString('base64url')}.c`)).toBeUndefined();
  });

  it('handshake: the token as a subprotocol when it can be one, else as the query parameter', () => {
    const url = new URL('wss://h/otter');
    expect(handshake(url, undefined)).toEqual({ url: 'wss://h/otter', protocols: ['otter.v1'] });
    expect(handshake(url, 'a.B-c_d~9')).toEqual({ url: 'wss://h/otter', protocols: ['otter.v1', 'otter.token.a.B-c_d~9'] });
    for (const bad of ['a b', 'a,b', 'a/b', 'a=b', 'é', '']) {
      const h = handshake(url, bad);
      expect(h.protocols).toEqual(['otter.v1']);
      expect(new URL(h.url).searchParams.get('token')).toBe(bad);
    }
  });
});

describe('Connection: the browser says the network went or came back', () => {
  /** Stands in for a browser's global scope: records listeners of `online` and `offline`. */
  function fakeBrowser(): { fire(type: 'online' | 'offline'): void; listeners: Map<string, Set<() => void>> } {
    const listeners = new Map<string, Set<() => void>>([
      ['online', new Set()],
      ['offline', new Set()],
    ]);
    vi.stubGlobal('navigator', { onLine: true });
    vi.stubGlobal('addEventListener', (type: string, listener: () => void) => listeners.get(type)?.add(listener));
    vi.stubGlobal('removeEventListener', (type: string, listener: () => void) => listeners.get(type)?.delete(listener));
    return { listeners, fire: (type) => [...(listeners.get(type) ?? [])].forEach((l) => l()) };
  }

  it('offline: closes the socket at once and reconnects; its documents keep their edits', () => {
    const browser = fakeBrowser();
    const { c, states } = connectionWithStates({ ...base, heartbeatInterval: 60_000 });
    const a = c.open('a');
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.answerOpen('a', { v: 0, text: '' });
    a.insert(0, 'x');
    browser.fire('offline');
    expect(ws.closedWith).toEqual({ code: 1000, reason: 'offline' });
    expect(c.state).toBe('connecting');
    expect(states).toEqual(['open', 'connecting']);
    expect(a.unsaved).toBe(true);
    msUntilNextSocket();
    expect(FakeWebSocket.instances).toHaveLength(2);
    browser.fire('offline'); // no socket open: nothing to do
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('online: a reconnection waiting for its backoff starts at once, and the backoff starts over', () => {
    const browser = fakeBrowser();
    vi.spyOn(Math, 'random').mockReturnValue(0.99); // every delay at the top of its window
    const c = new Connection('ws://h/', { ...base, minReconnectDelay: 1000, maxReconnectDelay: 60_000, heartbeatInterval: 120_000 });
    for (let i = 0; i < 3; i++) {
      FakeWebSocket.last.serverClose(1006);
      msUntilNextSocket(60_000);
    }
    FakeWebSocket.last.serverClose(1006); // the next attempt would wait reconnectDelay(3, …): 15.9 s
    vi.advanceTimersByTime(5000);
    const count = FakeWebSocket.instances.length;
    browser.fire('online');
    expect(FakeWebSocket.instances).toHaveLength(count + 1);
    FakeWebSocket.last.serverClose(1006);
    expect(msUntilNextSocket(60_000)).toBe(Math.ceil(reconnectDelay(0, 1000, 60_000))); // 1.99 s: the first delay again
    browser.fire('online'); // a socket is being opened: it is left alone
    expect(FakeWebSocket.instances).toHaveLength(count + 2);
    expect(c.state).toBe('connecting');
  });

  it('close() removes its listeners; where the global scope has no navigator.onLine it adds none', () => {
    const browser = fakeBrowser();
    const c = new Connection('ws://h/', base);
    expect(browser.listeners.get('online')?.size).toBe(1);
    expect(browser.listeners.get('offline')?.size).toBe(1);
    c.close();
    expect(browser.listeners.get('online')?.size).toBe(0);
    expect(browser.listeners.get('offline')?.size).toBe(0);
    vi.stubGlobal('navigator', {});
    new Connection('ws://h/', base);
    expect(browser.listeners.get('online')?.size).toBe(0);
  });
});

describe('Connection: heartbeat defaults', () => {
  it('notices a link that went silent within 10 s by default: pings every 4 s, gives up 8 s after the last frame', () => {
    const { c } = connectionWithStates({ WebSocket: FakeWebSocket });
    const ws = FakeWebSocket.last;
    ws.welcome();
    vi.advanceTimersByTime(4000);
    expect(ws.messages().filter((m) => m.type === 'ping')).toHaveLength(1);
    ws.receive({ type: 'pong' }); // the last frame; then the link goes silent
    vi.advanceTimersByTime(7999);
    expect(ws.closedWith).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(ws.closedWith).toEqual({ code: 1000, reason: 'heartbeat timeout' });
    expect(c.state).toBe('connecting');
  });
});
