/**
 * The client's connection-level duties against the real server session, in the loopback
 * world: size limits (large pastes cut under the announced limits, frames never over the
 * payload limit), the server dropping messages for rate (what awaits an answer is sent again,
 * after pauses that double), and the renewal of expiring tokens.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ConnectionOptions } from '../../src/client/connection.js';
import { budgetFor, fits } from '../../src/client/split.js';
import { DEFAULT_LIMITS, opLength } from '../../src/protocol/limits.js';
import { tokenExpiry } from '../../src/client/token.js';
import type { ClientMessage, SubmitMessage } from '../../src/protocol/messages.js';
import type { ProtocolError } from '../../src/protocol/parse.js';
import type { Identity } from '../../src/server/auth.js';
import { type Link, World, type WorldClient } from '../support/world.js';

const DOC = 'd';

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** The submits the server read from `client`. */
function submits(world: World, client: WorldClient): Array<{ message: SubmitMessage; bytes: number }> {
  return world.framesOf(client).filter((f): f is { message: SubmitMessage; bytes: number } => f.message.type === 'submit');
}

/** Errors a connection reports. */
function errorsOf(client: WorldClient): ProtocolError[] {
  const errors: ProtocolError[] = [];
  client.connection.on('error', (e) => errors.push(e as ProtocolError));
  return errors;
}

/** A world whose client connects with `options`, delivered until quiet. */
async function connected(options: ConnectionOptions = {}, worldOptions: ConstructorParameters<typeof World>[1] = {}) {
  const world = new World(DOC, worldOptions);
  const client = world.addClient('a', options);
  await world.quiesce();
  return { world, client, link: world.linkOf(client) as Link };
}

describe('size limits', () => {
  /** About `bytes` bytes of UTF-8 text mixing 1- to 4-byte characters and JSON escapes. */
  function pasteOf(bytes: number): string {
    const chunk = 'Lorem ipsum "quoted" \\ back\\slash\nnew line\ttab é ü 中文字 😀🎉 \u0001 end. ';
    const size = new TextEncoder().encode(chunk).length;
    return chunk.repeat(Math.ceil(bytes / size));
  }

  it('a 3 MiB paste to a server taking 1 MiB frames goes as several submits under the limits, applied in order with consecutive seqs', async () => {
    // Byte rates high enough that no piece is dropped for rate: only the size limits are at play.
    const { world, client } = await connected({}, { session: { bytesPerSecond: 1 << 30, bytesBurst: 1 << 30 } });
    const errors = errorsOf(client);
    const doc = client.doc;
    const paste = pasteOf(3 << 20);
    doc.insert(0, 'ab');
    await world.flush();
    doc.insert(1, paste);
    doc.insert(0, '>'); // typed behind the paste
    await world.quiesce();
    expect(world.node.violations).toEqual([]);
    const sent = submits(world, client);
    expect(sent.length).toBeGreaterThanOrEqual(5); // the first edit, at least 4 pieces (3 MiB / 7/8 MiB), the last edit
    for (const f of sent) {
      expect(f.bytes).toBeLessThanOrEqual(1 << 20);
      expect(opLength(f.message.op)).toBeLessThanOrEqual(1 << 20);
    }
    expect(sent.map((f) => f.message.seq)).toEqual(sent.map((_, i) => i + 1));
    expect(sent.map((f) => f.message.v)).toEqual(sent.map((_, i) => i)); // each on the ack of the one before
    const head = await world.head();
    expect(head.text).toBe(`>a${paste}b`);
    expect(doc.text).toBe(head.text);
    expect(doc.version).toBe(sent.length);
    expect(errors).toEqual([]);
    world.close();
  });

  it('cuts edits made before the first welcome to conservative defaults, then to the smaller limits the server announces', async () => {
    const world = new World(DOC, { session: { maxPayload: 64 * 1024 }, sequencer: { maxOpLength: 10_000 } });
    const client = world.addClient('a');
    const doc = client.doc;
    const paste = pasteOf(500_000);
    doc.insert(0, paste); // nothing known of the server yet
    const state = doc.syncState;
    const pending = state.kind === 'synchronized' ? [] : [state.outstanding, ...(state.kind === 'awaiting-with-buffer' ? state.buffer : [])];
    const defaults = budgetFor(DEFAULT_LIMITS, DOC);
    expect(pending.length).toBeGreaterThan(1);
    for (const op of pending) expect(fits(op.op, defaults)).toBe(true);
    await world.quiesce();
    expect(world.node.violations).toEqual([]);
    const sent = submits(world, client);
    expect(sent.length).toBeGreaterThan(paste.length / 10_000);
    for (const f of sent) {
      expect(opLength(f.message.op)).toBeLessThanOrEqual(10_000);
      expect(f.bytes).toBeLessThanOrEqual(64 * 1024);
    }
    expect((await world.head()).text).toBe(paste);
    expect(doc.text).toBe(paste);
    world.close();
  });
});

describe('the server drops messages for rate', () => {
  const dropped = { type: 'error', code: 'rate-limited', message: 'slow down: the message was dropped' } as const;

  /** Makes the server drop the next `n` client messages of `type`, saying only that it did. */
  function dropNext(world: World, type: ClientMessage['type'], n: number): void {
    let left = n;
    world.node.intercept = (message, link) => {
      if (message.type !== type || left <= 0) return false;
      left -= 1;
      link.down.push({ kind: 'frame', data: JSON.stringify(dropped) });
      return true;
    };
  }

  it('resends the op in flight (same seq) after a pause; it is acknowledged and synced() resolves', async () => {
    const { world, client } = await connected();
    const errors = errorsOf(client);
    dropNext(world, 'submit', 1);
    client.doc.insert(0, 'hello');
    await world.flush();
    expect(client.doc.syncState.kind).toBe('awaiting-confirm');
    let synced = false;
    void client.doc.synced().then(() => (synced = true));
    await world.advance(240); // retryDelay, 250 by default (the world's clients use 10)
    await world.quiesce();
    expect(submits(world, client).map((f) => f.message)).toEqual([
      { type: 'submit', doc: DOC, v: 0, seq: 1, op: ['hello'] },
      { type: 'submit', doc: DOC, v: 0, seq: 1, op: ['hello'] },
    ]);
    expect(synced).toBe(true);
    expect((await world.head()).text).toBe('hello');
    expect(errors.map((e) => e.code)).toEqual(['rate-limited']);
    world.close();
  });

  it('resends an unanswered open under a new request id, and ready resolves', async () => {
    const world = new World(DOC);
    dropNext(world, 'open', 1);
    const client = world.addClient('a');
    await world.quiesce();
    await expect(client.doc.ready).resolves.toBeUndefined();
    const opens = world.framesOf(client).filter((f) => f.message.type === 'open');
    expect(opens).toHaveLength(2);
    expect((opens[0]?.message as { rid: number }).rid).not.toBe((opens[1]?.message as { rid: number }).rid);
    world.close();
  });

  it('doubles the pause while the server keeps dropping, and starts over once it answers', async () => {
    const { world, client } = await connected({ retryDelay: 250 });
    dropNext(world, 'submit', 3);
    const sentAt: number[] = [];
    const start = Date.now();
    client.doc.insert(0, 'x');
    for (let ms = 0; ms < 5000 && client.doc.syncState.kind !== 'synchronized'; ms++) {
      const before = submits(world, client).length;
      await world.flush();
      if (submits(world, client).length > before) sentAt.push(Date.now() - start);
      await world.advance(1);
    }
    // Pauses of 250, 500 and 1000 ms, each found on the next millisecond of the world's clock.
    const gaps = sentAt.slice(1).map((t, i) => t - (sentAt[i] as number));
    expect(gaps.map((g) => Math.round(g / 250) * 250)).toEqual([250, 500, 1000]);
    dropNext(world, 'submit', 1);
    client.doc.insert(1, 'y');
    const again = Date.now();
    await world.flush();
    await world.advance(250);
    await world.quiesce();
    expect(Date.now() - again).toBeLessThan(300);
    expect((await world.head()).text).toBe('xy');
    world.close();
  });

  it('an op that did arrive is resent after a dropped ping and answered as a duplicate, harmlessly', async () => {
    const { world, client, link } = await connected();
    client.doc.insert(0, 'a');
    // The server reads the submit, and says it dropped a message (a ping, say) before its ack
    // arrives: the client resends the op in flight.
    link.deliverUp();
    await world.settle();
    link.down.unshift({ kind: 'frame', data: JSON.stringify(dropped) });
    link.deliverDown(1);
    await world.advance(20);
    expect(link.up.length).toBe(1);
    await world.quiesce();
    client.doc.insert(1, 'b');
    await world.quiesce();
    expect(submits(world, client).map((f) => f.message.seq)).toEqual([1, 1, 2]);
    expect((await world.head()).text).toBe('ab');
    expect(client.doc.text).toBe('ab');
    world.close();
  });

  it('bad-message without ref: reports it and resends nothing (the same frame would fail again)', async () => {
    const { world, client } = await connected();
    const errors = errorsOf(client);
    world.node.intercept = (message, link) => {
      if (message.type !== 'submit') return false;
      world.node.intercept = undefined;
      link.down.push({ kind: 'frame', data: JSON.stringify({ type: 'error', code: 'bad-message', message: 'the frame is not valid JSON' }) });
      return true;
    };
    client.doc.insert(0, 'a');
    await world.flush();
    await world.advance(10_000);
    await world.flush();
    expect(submits(world, client)).toHaveLength(1);
    expect(errors.map((e) => e.code)).toEqual(['bad-message']);
    world.close();
  });
});

/** An unsigned JWT whose payload is `claims` (neither the client nor this world's server verifies signatures). */
function jwt(claims: object): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}.c2lnbmF0dXJl`;
}

/** Who a token of {@link jwt} names, until its `exp`; tokens in `refused` are not accepted. */
function authenticator(refused: ReadonlySet<string> = new Set()): (token: string | undefined) => Identity | undefined {
  return (token) => {
    if (token === undefined || refused.has(token)) return undefined;
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { sub?: string };
    const expiresAt = tokenExpiry(token);
    return expiresAt === undefined ? { user: claims.sub ?? 'anon' } : { user: claims.sub ?? 'anon', expiresAt };
  };
}

describe('token refresh', () => {
  const T0 = 1_700_000_000_000;

  beforeEach(() => {
    vi.setSystemTime(T0);
  });

  /** A client whose getToken hands out `tokens` in turn, connected to a world that checks them. */
  async function withTokens(tokens: string[], options: ConnectionOptions = {}, refused = new Set<string>()) {
    const getToken = vi.fn(async () => tokens.shift() ?? 'no-more-tokens');
    const world = new World(DOC, { authenticate: authenticator(refused) });
    const client = world.addClient('ann', { ...options, getToken });
    const errors = errorsOf(client);
    await world.quiesce();
    const auths = (): string[] => world.framesOf(client).flatMap((f) => (f.message.type === 'auth' ? [f.message.token] : []));
    return { world, client, getToken, errors, auths };
  }

  it('sends a fresh token in an auth message refreshMargin before the JWT expires, and reschedules from authed.expiresAt', async () => {
    const first = jwt({ sub: 'ann', exp: T0 / 1000 + 120 });
    const second = jwt({ sub: 'ann', exp: T0 / 1000 + 300 });
    const third = jwt({ sub: 'ann', exp: T0 / 1000 + 600 });
    const { world, getToken, auths } = await withTokens([first, second, third]);
    expect(getToken).toHaveBeenCalledTimes(1);
    const start = Date.now();
    await world.advance(T0 + 90_000 - start - 1); // exp − 30 s (the default margin)
    expect(getToken).toHaveBeenCalledTimes(1);
    await world.advance(1);
    await world.flush();
    expect(auths()).toEqual([second]);
    await world.advance(T0 + 270_000 - Date.now() - 1); // until the second token's exp − 30 s
    expect(getToken).toHaveBeenCalledTimes(2);
    await world.advance(1);
    await world.flush();
    expect(auths()).toEqual([second, third]);
    expect(world.links).toHaveLength(1); // the same connection throughout
    world.close();
  });

  it('after a refused refresh retries once after a short pause, then lets the credentials run out: 4401, and a reconnection with a fresh token', async () => {
    const tokens = [0, 1, 2, 3].map((i) => jwt({ sub: 'ann', exp: T0 / 1000 + (i < 3 ? 120 : 600), i }));
    const refused = new Set([tokens[1] as string, tokens[2] as string]);
    const { world, client, getToken, errors, auths } = await withTokens(tokens.slice(), { refreshMargin: 10_000 }, refused);
    await world.advance(T0 + 110_000 - Date.now());
    await world.flush();
    expect(auths()).toEqual([tokens[1]]);
    await world.advance(1000);
    await world.flush();
    expect(auths()).toEqual([tokens[1], tokens[2]]);
    expect(getToken).toHaveBeenCalledTimes(3); // no third try
    expect(errors.map((e) => e.code)).toEqual(['auth-expired', 'auth-expired']);
    // The credentials run out: the server closes with 4401; the client reconnects with a fresh token.
    await world.advance(T0 + 120_000 - Date.now());
    await world.quiesce();
    expect(getToken).toHaveBeenCalledTimes(4);
    expect(world.links).toHaveLength(2);
    expect(client.doc.lifecycle.phase).toBe('live');
    world.close();
  });

  it('does not refresh a token whose expiry is unknown (not a JWT, or no exp)', async () => {
    for (const token of ['opaque-token', jwt({ sub: 'ann' })]) {
      const getToken = vi.fn(async () => token);
      const world = new World(DOC);
      world.addClient('ann', { getToken });
      await world.quiesce();
      await world.advance(3_000_000);
      expect(getToken).toHaveBeenCalledTimes(1);
      world.close();
    }
  });

  it('refreshes a token that lives less than twice the margin halfway to its expiry, not in a loop', async () => {
    const short = (s: number): string => jwt({ sub: 'ann', exp: Math.floor(Date.now() / 1000) + s });
    const { world, getToken } = await withTokens([short(20)]);
    getToken.mockImplementation(async () => short(20));
    // Halfway from the welcome (a few ms after T0 on the world's clock) to the expiry at T0 + 20 s.
    await world.advance(T0 + 10_000 - Date.now() - 1);
    expect(getToken).toHaveBeenCalledTimes(1);
    await world.advance(20);
    await world.flush();
    expect(getToken).toHaveBeenCalledTimes(2);
    await world.advance(10_000);
    await world.flush();
    expect(getToken).toHaveBeenCalledTimes(3);
    world.close();
  });

  it('a refreshed token that expires no later than the old one is retried once, not refreshed in a loop', async () => {
    const stale = jwt({ sub: 'ann', exp: T0 / 1000 + 60 });
    const { world, getToken, auths } = await withTokens([stale]);
    getToken.mockImplementation(async () => stale); // a cached token
    await world.advance(30_000);
    await world.flush();
    await world.advance(1000);
    await world.flush();
    await world.advance(20_000);
    await world.flush();
    expect(getToken).toHaveBeenCalledTimes(3); // the connection, the refresh, its one retry
    expect(auths()).toHaveLength(2);
    world.close();
  });

  it('stops refreshing on a server without authentication (bad-request to auth)', async () => {
    const getToken = vi.fn(async () => jwt({ exp: T0 / 1000 + 60 }));
    const world = new World(DOC);
    const client = world.addClient('ann', { getToken });
    const errors = errorsOf(client);
    await world.quiesce();
    await world.advance(30_000);
    await world.flush();
    await world.advance(3_000_000);
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(errors.map((e) => e.code)).toEqual(['bad-request']);
    world.close();
  });

  it('sends an unanswered auth again after a rate-limited pause', async () => {
    const { world, auths } = await withTokens([jwt({ sub: 'ann', exp: T0 / 1000 + 60 }), jwt({ sub: 'ann', exp: T0 / 1000 + 120 })]);
    let drops = 1;
    world.node.intercept = (message, link) => {
      if (message.type !== 'auth' || drops-- <= 0) return false;
      link.down.push({ kind: 'frame', data: JSON.stringify({ type: 'error', code: 'rate-limited', message: 'dropped' }) });
      return true;
    };
    await world.advance(30_000);
    await world.flush();
    await world.advance(300);
    await world.flush();
    expect(auths()).toHaveLength(2);
    expect(auths()[0]).toBe(auths()[1]);
    world.close();
  });
});
