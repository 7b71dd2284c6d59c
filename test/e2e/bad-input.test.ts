/**
 * Hostile input over a real socket: every class of bad message gets an `error` reply with its
 * stable code, nothing of it is applied, Object.prototype stays clean, and the connection stays
 * open (a following ping gets its pong) — until the connection passes `limits.maxBadMessages`
 * (4400), sends a frame over `maxPayload` (1009) or names a protocol the server does not speak
 * (4000).
 *
 * The main server raises `limits.maxBadMessages` (default 20) to 1000, since one connection
 * here sends far more than 20 bad messages on purpose; the 4400 test lowers it to 5. The two
 * flood tests lower `limits.messagesPerSecond` (default 200) and set `maxRateStrikes`; no
 * other test here comes near the default rate.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OtterServer } from '../../src/server/index.js';
import { Cleanup, headOf, startServer } from './helpers.js';
import { RawClient, type Received } from '../support/raw-client.js';
import { sleep, waitFor } from '../support/wait.js';

const cleanup = new Cleanup();
afterEach(async () => {
  RawClient.terminateAll();
  await cleanup.run();
});

type ErrorReply = Extract<Received, { type: 'error' }>;

/** A bad frame and the error it must get. */
interface Case {
  readonly name: string;
  /** The raw text to send (or a Buffer, sent as a binary frame). */
  readonly frame: string | Buffer;
  readonly code: string;
  /** If given, the error's `ref` must equal it. */
  readonly ref?: Record<string, unknown>;
}

const DOC = 'd';
/** The document is at version 1 holding "hello"; this client's next seq is 2. */
const submit = (fields: string): string => `{"type":"submit","doc":"d",${fields}}`;

const CASES: Case[] = [
  // not JSON, or not an object
  { name: 'not JSON', frame: '{"type":"ping"', code: 'bad-message' },
  { name: 'garbage text', frame: 'hello?', code: 'bad-message' },
  { name: 'empty frame', frame: '', code: 'bad-message' },
  { name: 'top-level array', frame: '[{"type":"ping"}]', code: 'bad-message' },
  { name: 'top-level number', frame: '42', code: 'bad-message' },
  { name: 'top-level string', frame: '"ping"', code: 'bad-message' },
  { name: 'top-level null', frame: 'null', code: 'bad-message' },
  { name: 'top-level boolean', frame: 'true', code: 'bad-message' },
  { name: 'binary frame', frame: Buffer.from('{"type":"ping"}'), code: 'bad-message' },
  // type
  { name: 'unknown type', frame: '{"type":"frobnicate","doc":"d"}', code: 'unknown-type', ref: { type: 'frobnicate', doc: 'd' } },
  { name: 'missing type', frame: '{"doc":"d","v":1}', code: 'unknown-type', ref: { doc: 'd' } },
  { name: 'non-string type', frame: '{"type":7}', code: 'unknown-type' },
  { name: 'server message type', frame: '{"type":"ack","doc":"d","seq":1,"v":1}', code: 'unknown-type' },
  // wrong field types and missing fields
  { name: 'doc is a number', frame: '{"type":"open","doc":5}', code: 'bad-request', ref: { type: 'open' } },
  { name: 'doc is missing', frame: '{"type":"open"}', code: 'bad-request' },
  { name: 'doc is an empty string', frame: '{"type":"close","doc":""}', code: 'bad-request' },
  { name: 'doc is an array', frame: '{"type":"submit","doc":["d"],"v":1,"seq":2,"op":[5,"x"]}', code: 'bad-request' },
  { name: 'op is a string', frame: submit('"v":1,"seq":2,"op":"x"'), code: 'invalid-op', ref: { type: 'submit', doc: 'd', seq: 2 } },
  { name: 'op is missing', frame: submit('"v":1,"seq":2'), code: 'invalid-op' },
  { name: 'op holds an object', frame: submit('"v":1,"seq":2,"op":[5,{"insert":"x"}]'), code: 'invalid-op' },
  { name: 'selection is a string', frame: '{"type":"presence","doc":"d","v":1,"selection":"0-1"}', code: 'bad-request' },
  { name: 'selection range without head', frame: '{"type":"presence","doc":"d","v":1,"selection":[{"anchor":0}]}', code: 'bad-request' },
  { name: 'second hello', frame: '{"type":"hello","protocol":1}', code: 'bad-request', ref: { type: 'hello' } },
  { name: 'hello with a string protocol', frame: '{"type":"hello","protocol":"1"}', code: 'bad-request' },
  { name: 'auth without authentication', frame: '{"type":"auth","token":"t"}', code: 'bad-request', ref: { type: 'auth' } },
  // strings for numbers
  { name: 'v is "1"', frame: submit('"v":"1","seq":2,"op":[5,"x"]'), code: 'bad-request', ref: { type: 'submit', doc: 'd', seq: 2 } },
  { name: 'seq is "5"', frame: submit('"v":1,"seq":"5","op":[5,"x"]'), code: 'bad-request', ref: { type: 'submit', doc: 'd' } },
  { name: 'open v is "0"', frame: '{"type":"open","doc":"d","v":"0"}', code: 'bad-request' },
  { name: 'anchor is "1"', frame: '{"type":"presence","doc":"d","v":1,"selection":[{"anchor":"1","head":1}]}', code: 'bad-request' },
  // fractions
  { name: 'v is 1.5', frame: submit('"v":1.5,"seq":2,"op":[5,"x"]'), code: 'bad-request' },
  { name: 'seq is 1.5', frame: submit('"v":1,"seq":1.5,"op":[5,"x"]'), code: 'bad-request' },
  { name: 'retain is 2.5', frame: submit('"v":1,"seq":2,"op":[2.5,"x",2.5]'), code: 'invalid-op' },
  { name: 'head is 0.5', frame: '{"type":"presence","doc":"d","v":1,"selection":[{"anchor":0,"head":0.5}]}', code: 'bad-request' },
  // negatives and zero
  { name: 'v is -1', frame: submit('"v":-1,"seq":2,"op":[5,"x"]'), code: 'bad-request' },
  { name: 'seq is -1', frame: submit('"v":1,"seq":-1,"op":[5,"x"]'), code: 'bad-request' },
  { name: 'seq is 0', frame: submit('"v":1,"seq":0,"op":[5,"x"]'), code: 'bad-request' },
  { name: 'open v is -1', frame: '{"type":"open","doc":"d","v":-1}', code: 'bad-request' },
  { name: 'anchor is -1', frame: '{"type":"presence","doc":"d","v":1,"selection":[{"anchor":-1,"head":0}]}', code: 'bad-request' },
  // 1e999 (Infinity after JSON.parse) and numbers past 2^53
  { name: 'v is 1e999', frame: submit('"v":1e999,"seq":2,"op":[5,"x"]'), code: 'bad-request' },
  { name: 'seq is -1e999', frame: submit('"v":1,"seq":-1e999,"op":[5,"x"]'), code: 'bad-request' },
  { name: 'retain is 1e999', frame: submit('"v":1,"seq":2,"op":[1e999,"x"]'), code: 'invalid-op' },
  { name: 'open v is 1e999', frame: '{"type":"open","doc":"d","v":1e999}', code: 'bad-request' },
  { name: 'v past 2^53', frame: submit('"v":9007199254740993,"seq":2,"op":[5,"x"]'), code: 'bad-request' },
  { name: 'seq past 2^53', frame: submit('"v":1,"seq":9007199254740993,"op":[5,"x"]'), code: 'bad-request' },
  { name: 'retain past 2^53', frame: submit('"v":1,"seq":2,"op":[9007199254740993,"x"]'), code: 'invalid-op' },
  { name: 'hello protocol past 2^53', frame: '{"type":"hello","protocol":9007199254740993}', code: 'bad-request' },
  // deep nesting
  { name: 'nested four deep', frame: '{"type":"ping","a":{"b":{"c":{}}}}', code: 'bad-message' },
  { name: 'nested inside a selection', frame: '{"type":"presence","doc":"d","v":1,"selection":[{"anchor":{"x":[0]},"head":0}]}', code: 'bad-message' },
  { name: 'nested 100,000 deep', frame: `{"type":"ping","x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, code: 'bad-message' },
  // prototype keys (raw JSON text: JSON.parse makes them own properties)
  { name: '__proto__ key', frame: '{"type":"ping","__proto__":{"polluted":"yes"}}', code: 'bad-message' },
  { name: 'constructor.prototype keys', frame: submit('"v":1,"seq":2,"op":[5,"x"],"constructor":{"prototype":{"polluted":"yes"}}'), code: 'bad-message' },
  { name: 'prototype key', frame: '{"type":"ping","prototype":{"polluted":"yes"}}', code: 'bad-message' },
  { name: '__proto__ in a selection range', frame: '{"type":"presence","doc":"d","v":1,"selection":[{"anchor":0,"head":0,"__proto__":{"polluted":"yes"}}]}', code: 'bad-message' },
  { name: '__proto__ as the whole message', frame: '{"__proto__":{"type":"ping","polluted":"yes"}}', code: 'bad-message' },
  // well-formed requests that cannot be granted
  { name: 'submit to a document not opened', frame: '{"type":"submit","doc":"other","v":0,"seq":1,"op":["x"]}', code: 'not-open', ref: { type: 'submit', doc: 'other', seq: 1 } },
  { name: 'presence on a document not opened', frame: '{"type":"presence","doc":"other","v":0,"selection":null}', code: 'not-open', ref: { type: 'presence', doc: 'other' } },
  { name: 'op longer than the document', frame: submit('"v":1,"seq":2,"op":[99,"x"]'), code: 'invalid-op', ref: { type: 'submit', doc: 'd', seq: 2 } },
  { name: 'op shorter than the document', frame: submit('"v":1,"seq":2,"op":[2,"x"]'), code: 'invalid-op', ref: { type: 'submit', doc: 'd', seq: 2 } },
  { name: 'delete past the end', frame: submit('"v":1,"seq":2,"op":[4,-3]'), code: 'invalid-op', ref: { type: 'submit', doc: 'd', seq: 2 } },
  { name: 'insert splitting nothing but holding a lone surrogate', frame: submit('"v":1,"seq":2,"op":[5,"\\ud83d"]'), code: 'invalid-op' },
  { name: 'base version ahead', frame: submit('"v":99,"seq":2,"op":[5,"x"]'), code: 'version-ahead', ref: { type: 'submit', doc: 'd', seq: 2 } },
  { name: 'seq skipping ahead', frame: submit('"v":1,"seq":5,"op":[5,"x"]'), code: 'seq-gap', ref: { type: 'submit', doc: 'd', seq: 5 } },
];

describe('e2e: bad input over a raw socket', () => {
  let server: OtterServer;
  let client: RawClient;
  let protoBefore: string[];

  beforeEach(async () => {
    protoBefore = Object.getOwnPropertyNames(Object.prototype).sort();
    server = await startServer(cleanup, { limits: { maxBadMessages: 1000 } });
    client = await RawClient.connect(server.url);
    await client.hello('raw');
    await client.open(DOC);
    client.send({ type: 'submit', doc: DOC, v: 0, seq: 1, op: ['hello'] });
    const ack = await client.nextOf('ack');
    expect(ack).toMatchObject({ doc: DOC, seq: 1, v: 1 });
  });

  afterEach(() => {
    // Nothing of any message leaked onto Object.prototype.
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it.each(CASES)('$name → $code, nothing applied, the connection stays open', async (c) => {
    if (typeof c.frame === 'string') client.sendText(c.frame);
    else client.sendBinary(c.frame);
    const error = await client.nextOf('error');
    expect(error.code, `reply to ${c.name}: ${error.message}`).toBe(c.code);
    expect(typeof error.message).toBe('string');
    if (c.ref !== undefined) expect(error.ref).toEqual(c.ref);
    await client.ping();
    expect(client.isOpen).toBe(true);
    expect(client.unread.filter((m) => m.type !== 'pong')).toEqual([]); // no other answer (ack, ops…)
    expect(await headOf(server, DOC)).toEqual({ version: 1, text: 'hello' });
    expect(await headOf(server, 'other')).toEqual({ version: 0, text: '' });
  });

  it('after every class of bad message in a row the connection still works: the next valid submit is seq 2 at version 2', async () => {
    for (const c of CASES) {
      if (typeof c.frame === 'string') client.sendText(c.frame);
      else client.sendBinary(c.frame);
      const error = await client.nextOf('error');
      expect(error.code, c.name).toBe(c.code);
    }
    await client.ping();
    expect(await headOf(server, DOC)).toEqual({ version: 1, text: 'hello' });
    client.send({ type: 'submit', doc: DOC, v: 1, seq: 2, op: [5, ' 🦦'] });
    expect(await client.nextOf('ack')).toMatchObject({ doc: DOC, seq: 2, v: 2 });
    expect(await headOf(server, DOC)).toEqual({ version: 2, text: 'hello 🦦' });
  });
});

describe('e2e: valid but hostile names', () => {
  it.each(['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString'])(
    'a document and a client id named %s work like any other, and touch no prototype',
    async (name) => {
      const before = Object.getOwnPropertyNames(Object.prototype).sort();
      const server = await startServer(cleanup);
      const writer = await RawClient.connect(server.url);
      const reader = await RawClient.connect(server.url);
      expect((await writer.hello(name)).clientId).toBe(name);
      await reader.hello();
      expect(await writer.open(name)).toMatchObject({ v: 0, seq: 0, text: '' });
      await reader.open(name);
      writer.send({ type: 'submit', doc: name, v: 0, seq: 1, op: [name] });
      expect(await writer.nextOf('ack')).toEqual({ type: 'ack', doc: name, seq: 1, v: 1, sum: expect.any(Number) });
      expect(await reader.nextOf('ops')).toEqual({ type: 'ops', doc: name, ops: [{ v: 1, op: [name] }], sum: expect.any(Number) });
      expect(await headOf(server, name)).toEqual({ version: 1, text: name });
      // The other documents did not see it.
      expect(await headOf(server, 'd')).toEqual({ version: 0, text: '' });
      expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(before);
    },
  );
});

describe('e2e: bad input before hello and connection-ending input', () => {
  it('anything before hello gets bad-request (or bad-message if unreadable); hello then works', async () => {
    const server = await startServer(cleanup);
    const client = await RawClient.connect(server.url);
    client.send({ type: 'ping' });
    expect(await client.nextOf('error')).toMatchObject({ code: 'bad-request', ref: { type: 'ping' } });
    client.send({ type: 'open', doc: 'd' });
    expect(await client.nextOf('error')).toMatchObject({ code: 'bad-request', ref: { type: 'open' } });
    client.send({ type: 'submit', doc: 'd', v: 0, seq: 1, op: ['x'] });
    expect(await client.nextOf('error')).toMatchObject({ code: 'bad-request', ref: { type: 'submit' } });
    client.sendText('{');
    expect(await client.nextOf('error')).toMatchObject({ code: 'bad-message' });
    expect(client.isOpen).toBe(true);
    expect(await headOf(server, 'd')).toEqual({ version: 0, text: '' });
    await client.hello();
    await client.ping();
  });

  it(`garbage beyond limits.maxBadMessages closes the connection with 4400 (limit lowered to 5)`, async () => {
    const server = await startServer(cleanup, { limits: { maxBadMessages: 5 } });
    const client = await RawClient.connect(server.url);
    await client.hello();
    await client.open('d');
    for (let i = 0; i < 5; i++) {
      client.sendText(`garbage ${i}`);
      await client.nextOf('error');
    }
    expect(client.isOpen).toBe(true); // five are tolerated
    client.sendText('{"type":"submit","doc":"d","v":0,"seq":1,"op":["x"],"__proto__":{}}');
    expect((await client.waitClosed()).code).toBe(4400);
    expect(client.messages.filter((m) => m.type === 'error')).toHaveLength(6); // the sixth is answered, then the close
    expect(await headOf(server, 'd')).toEqual({ version: 0, text: '' });
    await waitFor('the server to forget the connection', () => server.connections === 0);
  });

  it('a frame over maxPayload closes the connection with 1009 and applies nothing', async () => {
    const server = await startServer(cleanup, { maxPayload: 1024 });
    const client = await RawClient.connect(server.url);
    const welcome = await client.hello();
    expect(welcome.limits.maxPayload).toBe(1024);
    await client.open('d');
    client.send({ type: 'submit', doc: 'd', v: 0, seq: 1, op: ['x'.repeat(2000)] });
    expect((await client.waitClosed()).code).toBe(1009);
    expect(await headOf(server, 'd')).toEqual({ version: 0, text: '' });
  });

  it('a frame just under maxPayload is accepted', async () => {
    const server = await startServer(cleanup, { maxPayload: 1024 });
    const client = await RawClient.connect(server.url);
    await client.hello();
    await client.open('d');
    const frame = JSON.stringify({ type: 'submit', doc: 'd', v: 0, seq: 1, op: [''] });
    const text = 'y'.repeat(1024 - frame.length);
    client.send({ type: 'submit', doc: 'd', v: 0, seq: 1, op: [text] });
    expect(await client.nextOf('ack')).toMatchObject({ seq: 1, v: 1 });
  });

  it('a flood past limits.messagesPerSecond (lowered to 5) is refused with rate-limited, no ref, and the connection stays open', async () => {
    const server = await startServer(cleanup, { limits: { messagesPerSecond: 5, maxRateStrikes: 1000 } });
    const client = await RawClient.connect(server.url);
    await client.hello();
    await client.open('d');
    for (let i = 0; i < 30; i++) client.send({ type: 'submit', doc: 'd', v: 0, seq: 1, op: ['x'] });
    await waitFor('rate-limited refusals', () => client.messages.filter((m) => m.type === 'error').length >= 10);
    const errors = client.messages.filter((m): m is ErrorReply => m.type === 'error');
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(['rate-limited']));
    expect(errors.every((e) => e.ref === undefined)).toBe(true);
    // What got through was applied once (resubmissions of seq 1 are duplicates).
    await waitFor('the one submission', async () => (await headOf(server, 'd')).version === 1);
    expect(await headOf(server, 'd')).toEqual({ version: 1, text: 'x' });
    // Once the bucket refills, the connection answers again.
    expect(client.isOpen).toBe(true);
    await waitFor(
      'a pong after the flood',
      async () => {
        client.send({ type: 'ping' });
        await sleep(100);
        return client.messages.some((m) => m.type === 'pong');
      },
    );
  });

  it('a connection that keeps flooding past limits.maxRateStrikes (lowered to 3) is closed with 4429', async () => {
    const server = await startServer(cleanup, { limits: { messagesPerSecond: 2, maxRateStrikes: 3 } });
    const client = await RawClient.connect(server.url);
    await client.hello();
    for (let i = 0; i < 20; i++) client.send({ type: 'ping' });
    expect((await client.waitClosed()).code).toBe(4429);
  });

  it.each([2, 0])('hello with unsupported protocol %i gets unsupported-protocol and close code 4000', async (protocol) => {
    const server = await startServer(cleanup);
    const client = await RawClient.connect(server.url);
    client.send({ type: 'hello', protocol });
    expect(await client.nextOf('error')).toMatchObject({ code: 'unsupported-protocol', ref: { type: 'hello' } });
    expect((await client.waitClosed()).code).toBe(4000);
    expect(client.messages.some((m) => m.type === 'welcome')).toBe(false);
  });
});
