/**
 * Per-connection and per-user limits over real sockets: frame size, fragment and ping floods,
 * message and byte rates, malformed-message count, open documents, connections per user, the
 * open deadline, pending requests, op and document size, the heartbeat. Each limit is hit by
 * one connection while another shows the server unaffected.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Access } from '../../src/server/auth.js';
import { attempt, closeAll, connect, joined, startServer } from './helpers.js';
import type { RawClient } from '../support/raw-client.js';
import { sleep, waitFor } from '../support/wait.js';

afterEach(closeAll);

/** A bystander that proves the server still serves others: a round trip and an ack. */
async function bystanderWorks(client: RawClient, doc: string, v: number, seq: number): Promise<void> {
  await client.ping();
  expect(await client.submit(doc, v, seq, v === 0 ? ['ok'] : [v * 2, 'ok'])).toMatchObject({ type: 'ack', v: v + 1 });
}

/** Sends text frames on `client` until it closes (or `max` were sent). */
async function sendUntilClosed(client: RawClient, send: () => void, max: number): Promise<number> {
  let sent = 0;
  while (client.isOpen && sent < max) {
    send();
    sent++;
    if (sent % 1000 === 0) await sleep(0);
  }
  return (await client.waitClosed()).code;
}

describe('frame limits', () => {
  it('a frame over maxPayload closes the connection with 1009; others are unaffected', async () => {
    const { server } = await startServer({ maxPayload: 4096 });
    const other = (await joined(server, 'doc')).client;
    const { client } = await joined(server, 'doc');
    const welcome = client.messages.find((m) => m.type === 'welcome');
    expect(welcome?.limits).toMatchObject({ maxPayload: 4096 });
    client.send({ type: 'submit', doc: 'doc', v: 0, seq: 1, op: ['x'.repeat(5000)] });
    expect((await client.waitClosed()).code).toBe(1009);
    await waitFor('the server dropping the connection', () => server.connections === 1);
    expect((await server.sequencer.getSnapshot('doc')).version).toBe(0);
    await bystanderWorks(other, 'doc', 0, 1);
  });

  it('a flood of tiny continuation fragments is cut off (1008 after ws maxFragments)', async () => {
    const { server } = await startServer();
    const other = (await joined(server, 'doc')).client;
    const client = await connect(server);
    await client.hello();
    const code = await sendUntilClosed(client, () => client.ws.send('x', { fin: false }), 100_000);
    expect([1008, 1009]).toContain(code);
    await waitFor('the server dropping the connection', () => server.connections === 1);
    await bystanderWorks(other, 'doc', 0, 1);
  });

  it('fragments adding up past maxPayload close with 1009 (the total is bounded, not each fragment)', async () => {
    const { server } = await startServer({ maxPayload: 64 * 1024 });
    const other = (await joined(server, 'doc')).client;
    const client = await connect(server);
    await client.hello();
    const chunk = 'y'.repeat(1024);
    const code = await sendUntilClosed(client, () => client.ws.send(chunk, { fin: false }), 10_000);
    expect(code).toBe(1009);
    await waitFor('the server dropping the connection', () => server.connections === 1);
    await bystanderWorks(other, 'doc', 0, 1);
  });

  it('a WebSocket ping flood is cut off (ws maxPendingAutoPongs) without hurting others', async () => {
    const { server } = await startServer();
    const other = (await joined(server, 'doc')).client;
    const client = await connect(server);
    await client.hello();
    const payload = Buffer.alloc(125, 7);
    let sent = 0;
    while (client.isOpen && sent < 50_000) {
      client.ws.ping(payload);
      if (++sent % 500 === 0) await sleep(0);
    }
    await client.waitClosed();
    await waitFor('the server dropping the connection', () => server.connections === 1);
    await bystanderWorks(other, 'doc', 0, 1);
  });

  it('binary frames and invalid UTF-8 are refused', async () => {
    const { server } = await startServer();
    const { client } = await joined(server, 'doc');
    const from = client.messages.length;
    client.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
    expect((await client.nextOf('error', {}, { from: from })).code).toBe('bad-message');
    await client.ping();
    // A text frame that is not UTF-8: ws closes with 1007.
    const raw = await connect(server);
    raw.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    expect((await raw.waitClosed()).code).toBe(1007);
  });
});

describe('contradictory options', () => {
  it('throw at construction: a frame limit given twice with two values, a byte burst below the frame limit', async () => {
    await expect(startServer({ maxPayload: 4096, limits: { maxPayload: 8192 } })).rejects.toThrow(/limits.maxPayload \(8192\) contradicts maxPayload \(4096\)/);
    await expect(startServer({ maxPayload: 4096, limits: { bytesBurst: 1000 } })).rejects.toThrow(/bytesBurst \(1000\) must be at least maxPayload/);
    const { server } = await startServer({ maxPayload: 4096, limits: { maxPayload: 4096 } });
    expect(server.port).toBeGreaterThan(0);
  });
});

describe('rate limits', () => {
  it('messages/s: rate-limited errors, then close 4429 if it goes on; other connections unaffected', async () => {
    const { server } = await startServer({ limits: { messagesPerSecond: 20, maxRateStrikes: 10 } });
    const other = (await joined(server, 'doc')).client;
    const client = await connect(server);
    await client.hello();
    for (let i = 0; i < 200 && client.isOpen; i++) client.send({ type: 'ping' });
    expect((await client.waitClosed()).code).toBe(4429);
    const limited = client.errors().filter((e) => e.code === 'rate-limited');
    expect(limited.length).toBeGreaterThan(0);
    expect(limited.every((e) => e.ref === undefined)).toBe(true); // dropped unread: no ref
    // The burst (2 × 20) passed, and little more: the rest was dropped.
    expect(client.messages.filter((m) => m.type === 'pong').length).toBeLessThan(60);
    await bystanderWorks(other, 'doc', 0, 1);
  });

  it('messages/s: a short burst past the limit is dropped with rate-limited, and the connection recovers', async () => {
    const { server } = await startServer({ limits: { messagesPerSecond: 20, maxRateStrikes: 1000 } });
    const { client } = await joined(server, 'doc');
    for (let i = 0; i < 60; i++) client.send({ type: 'ping' });
    await client.nextOf('error', { code: 'rate-limited' });
    await sleep(300); // the bucket refills
    await client.ping();
    expect(client.isOpen).toBe(true);
  });

  it('bytes/s: big frames past the byte budget are dropped with rate-limited', async () => {
    const { server } = await startServer({ maxPayload: 2048, limits: { bytesPerSecond: 1000, bytesBurst: 3000, maxRateStrikes: 1000 } });
    const other = (await joined(server, 'doc')).client;
    const { client } = await joined(server, 'doc');
    const pad = 'p'.repeat(900);
    for (let i = 0; i < 6; i++) client.send({ type: 'ping', pad });
    await client.nextOf('error', { code: 'rate-limited' });
    await sleep(50);
    const pongs = client.messages.filter((m) => m.type === 'pong').length;
    expect(pongs).toBeGreaterThan(0);
    expect(pongs).toBeLessThan(6);
    await bystanderWorks(other, 'doc', 0, 1);
  });

  it('too many malformed messages close the connection with 4400', async () => {
    const { server } = await startServer({ limits: { maxBadMessages: 5 } });
    const other = (await joined(server, 'doc')).client;
    const client = await connect(server);
    for (let i = 0; i < 10 && client.isOpen; i++) client.sendText('{not json');
    expect((await client.waitClosed()).code).toBe(4400);
    expect(client.errors().every((e) => e.code === 'bad-message')).toBe(true);
    await bystanderWorks(other, 'doc', 0, 1);
  });

  it('messages before hello are refused; a second hello is refused; an unknown protocol closes with 4000', async () => {
    const { server } = await startServer();
    const client = await connect(server);
    client.send({ type: 'open', doc: 'doc' });
    expect((await client.nextOf('error')).code).toBe('bad-request');
    await client.hello();
    const from = client.messages.length;
    client.send({ type: 'hello', protocol: 1, clientId: 'other' });
    expect((await client.nextOf('error', {}, { from: from })).code).toBe('bad-request');
    const old = await connect(server);
    old.send({ type: 'hello', protocol: 2 });
    expect((await old.nextOf('error')).code).toBe('unsupported-protocol');
    expect((await old.waitClosed()).code).toBe(4000);
  });
});

describe('resource caps', () => {
  it('maxDocuments: a further open gets too-many-documents; re-opening or closing one makes room', async () => {
    const { server } = await startServer({ limits: { maxDocuments: 2 } });
    const client = await connect(server);
    await client.hello();
    expect((await client.open('a')).type).toBe('opened');
    expect((await client.open('b')).type).toBe('opened');
    expect(await client.open('c')).toMatchObject({ type: 'error', code: 'too-many-documents', ref: { doc: 'c' } });
    expect((await client.open('a')).type).toBe('opened');
    client.send({ type: 'close', doc: 'a' });
    await client.nextOf('closed', { doc: 'a' });
    expect((await client.open('c')).type).toBe('opened');
  });

  it('maxDocuments holds for a burst of opens sent at once', async () => {
    const { server } = await startServer({ limits: { maxDocuments: 2 } });
    const client = await connect(server);
    await client.hello();
    for (let i = 0; i < 10; i++) client.send({ type: 'open', doc: `burst-${i}` });
    await waitFor('10 answers', () => client.messages.filter((m) => m.type === 'opened' || m.type === 'error').length === 10);
    expect(client.messages.filter((m) => m.type === 'opened').length).toBe(2);
    expect(client.errors().map((e) => e.code)).toEqual(Array(8).fill('too-many-documents'));
    expect(server.openDocuments).toBe(2);
  });

  it('maxDocuments holds while a slow authorize keeps opens waiting', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { server } = await startServer({
      limits: { maxDocuments: 2 },
      authorize: async (): Promise<Access> => {
        await gate;
        return 'write';
      },
    });
    const client = await connect(server);
    await client.hello();
    for (let i = 0; i < 5; i++) client.send({ type: 'open', doc: `slow-${i}` });
    await client.ping(); // all five are waiting on authorize
    release();
    await waitFor('5 answers', () => client.messages.filter((m) => m.type === 'opened' || m.type === 'error').length === 5);
    expect(client.messages.filter((m) => m.type === 'opened').length).toBe(2);
    expect(server.openDocuments).toBe(2);
  });

  it('maxPendingRequests: requests past the cap get rate-limited with their ref', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { server } = await startServer({
      limits: { maxPendingRequests: 3 },
      authorize: async (): Promise<Access> => {
        await gate;
        return 'write';
      },
    });
    const client = await connect(server);
    await client.hello();
    for (let i = 0; i < 5; i++) client.send({ type: 'open', doc: `p-${i}` });
    await client.ping();
    const limited = client.errors();
    expect(limited.map((e) => e.code)).toEqual(['rate-limited', 'rate-limited']);
    expect(limited.map((e) => (e.ref as { doc: string }).doc)).toEqual(['p-3', 'p-4']);
    release();
    await waitFor('3 opened', () => client.messages.filter((m) => m.type === 'opened').length === 3);
    // Once answered, requests are accepted again.
    expect((await client.open('p-3')).type).toBe('opened');
  });

  it('maxConnectionsPerUser: one more gets HTTP 429, also for simultaneous upgrades; a closed one frees a slot', async () => {
    const { server } = await startServer({
      maxConnectionsPerUser: 2,
      authenticate: async (token) => (token === undefined ? undefined : { user: token }),
    });
    const bearer = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });
    const attempts = await Promise.all(Array.from({ length: 6 }, () => attempt(server, bearer('ann'))));
    expect(attempts.filter((a) => a.ok).length).toBe(2);
    expect(attempts.filter((a) => !a.ok).map((a) => (a.ok ? 0 : a.status))).toEqual([429, 429, 429, 429]);
    expect(server.connections).toBe(2);
    // Another user is not affected.
    const bob = await connect(server, bearer('bob'));
    await bob.hello();
    const first = attempts.find((a) => a.ok);
    if (first?.ok) first.client.terminate();
    await waitFor('the server seeing the close', () => server.connections === 2);
    const again = await attempt(server, bearer('ann'));
    expect(again.ok).toBe(true);
  });

  it('openDeadline: a connection that never opens a document is closed with 4408', async () => {
    const { server } = await startServer({ limits: { openDeadline: 500 } });
    const idle = await connect(server);
    const helloOnly = await connect(server);
    await helloOnly.hello();
    const { client: active } = await joined(server, 'doc');
    expect((await idle.waitClosed()).code).toBe(4408);
    expect((await helloOnly.waitClosed()).code).toBe(4408);
    await sleep(100);
    await bystanderWorks(active, 'doc', 0, 1);
  });

  it('heartbeat: a connection that answers no WebSocket ping is terminated', async () => {
    const { server } = await startServer({ heartbeatInterval: 250 });
    const { client: live } = await joined(server, 'doc');
    const { client: dead } = await joined(server, 'doc');
    (dead.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    await waitFor('the server terminating the silent connection', () => server.connections === 1);
    await bystanderWorks(live, 'doc', 0, 1);
  });

  it('maxOpLength and maxDocLength: too-large, nothing applied', async () => {
    const { server } = await startServer({ sequencer: { maxOpLength: 100, maxDocLength: 150 } });
    const { client } = await joined(server, 'doc');
    expect((client.messages.find((m) => m.type === 'welcome')?.limits as { maxOpLength: number }).maxOpLength).toBe(100);
    expect(await client.submit('doc', 0, 1, ['x'.repeat(100)])).toMatchObject({ code: 'too-large' });
    // Components count too: 60 one-character inserts weigh 120.
    expect(await client.submit('doc', 0, 1, Array(60).fill('a'))).toMatchObject({ code: 'too-large' });
    expect(await client.submit('doc', 0, 1, ['y'.repeat(90)])).toMatchObject({ type: 'ack', v: 1 });
    expect(await client.submit('doc', 1, 2, [90, 'z'.repeat(90)])).toMatchObject({ type: 'error', code: 'too-large' });
    expect(await server.sequencer.getSnapshot('doc')).toMatchObject({ version: 1, text: 'y'.repeat(90) });
  });
});
