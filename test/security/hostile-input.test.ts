/**
 * Hostile input over real sockets: out-of-range and wrongly typed numbers in every numeric
 * field, prototype keys, deep nesting, oversized strings, ids that are Object.prototype
 * names, presence outside the document, and a poison op that only fails while being rebased.
 * Every refusal is an error reply with nothing applied, the server keeps answering at once,
 * and Object.prototype stays untouched.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import { closeAll, connect, joined, prototypeKeys, prototypePolluted, replayOf, startServer } from './helpers.js';
import type { RawClient, ReceivedOf } from '../support/raw-client.js';
import { waitFor } from '../support/wait.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';

let protoBefore: string[];
beforeEach(() => {
  protoBefore = prototypeKeys();
});
afterEach(async () => {
  await closeAll();
  expect(prototypeKeys()).toEqual(protoBefore);
  expect(prototypePolluted()).toBe(false);
});

/** Numbers no numeric field accepts, as JSON text. */
const BAD_NUMBERS = ['1e999', '-1e999', '"5"', '1.5', '-1', '9007199254740993', '1e300', 'null', 'true', '[]', '{}', '"1"', '0.1e1x'];

/** Raw frames with `X` standing for the bad number, one per numeric field. */
const TEMPLATES: Array<{ field: string; frame: string }> = [
  { field: 'submit.v', frame: '{"type":"submit","doc":"d","v":X,"seq":1,"op":[5,"!"]}' },
  { field: 'submit.seq', frame: '{"type":"submit","doc":"d","v":1,"seq":X,"op":[5,"!"]}' },
  { field: 'op retain', frame: '{"type":"submit","doc":"d","v":1,"seq":1,"op":[X,"!"]}' },
  { field: 'op last component', frame: '{"type":"submit","doc":"d","v":1,"seq":1,"op":["!",X]}' },
  { field: 'op middle component', frame: '{"type":"submit","doc":"d","v":1,"seq":1,"op":[2,X,3]}' },
  { field: 'presence.v', frame: '{"type":"presence","doc":"d","v":X,"selection":[{"anchor":0,"head":1}]}' },
  { field: 'selection anchor', frame: '{"type":"presence","doc":"d","v":1,"selection":[{"anchor":X,"head":1}]}' },
  { field: 'selection head', frame: '{"type":"presence","doc":"d","v":1,"selection":[{"anchor":0,"head":X}]}' },
  { field: 'open.v', frame: '{"type":"open","doc":"d","v":X}' },
];

async function seeded(limits = { maxBadMessages: 10_000, messagesPerSecond: 10_000, bytesPerSecond: 64 << 20, bytesBurst: 64 << 20 }) {
  const { server } = await startServer({ limits });
  const { client: author } = await joined(server, 'd');
  expect(await author.submit('d', 0, 1, ['hello'])).toMatchObject({ type: 'ack', v: 1 });
  const { client: watcher } = await joined(server, 'd');
  return { server, author, watcher };
}

/**
 * Sends `frame` and waits for the error it earns; then proves the server still answers at
 * once, with a round trip on `probe` (default: the same connection, which must have said hello).
 */
async function refused(client: RawClient, frame: string, what: string, probe = client): Promise<string> {
  const from = client.messages.length;
  client.sendText(frame);
  const answer = await client.next((m) => m.type === 'error' || m.type === 'ack' || m.type === 'opened', { what, from });
  expect(answer.type, `${what}: ${frame}`).toBe('error');
  await probe.ping(1000);
  return (answer as ReceivedOf<'error'>).code;
}

describe('hostile numbers', () => {
  it('every numeric field refuses 1e999, "5", 1.5, -1, 2^53+1 and friends, applying nothing', async () => {
    const { server, watcher } = await seeded();
    const { client } = await joined(server, 'd');
    for (const t of TEMPLATES) {
      for (const x of BAD_NUMBERS) {
        // In an op a string is an insert: [2, "5", 3] is a valid op.
        if (t.field === 'op middle component' && x.startsWith('"')) continue;
        const frame = t.frame.replace('X', x);
        const code = await refused(client, frame, t.field);
        expect(['bad-request', 'bad-message', 'invalid-op'], `${t.field} = ${x}`).toContain(code);
      }
    }
    expect(await server.sequencer.getSnapshot('d')).toMatchObject({ version: 1, text: 'hello' });
    await watcher.ping();
    expect(watcher.opsOf('d')).toEqual([]);
    expect(watcher.messages.some((m) => m.type === 'presence')).toBe(false);
  });

  it('hello.protocol: bad numbers are bad requests; a well-formed other version closes with 4000', async () => {
    const { server } = await startServer();
    const probe = (await joined(server, 'd')).client;
    const client = await connect(server);
    for (const x of BAD_NUMBERS) {
      const code = await refused(client, `{"type":"hello","protocol":${x}}`, 'hello.protocol', probe);
      expect(['bad-request', 'bad-message'], x).toContain(code);
    }
    await client.hello(); // still allowed to say hello properly
    for (const v of ['0', '2', '9007199254740991']) {
      const other = await connect(server);
      other.sendText(`{"type":"hello","protocol":${v}}`);
      expect((await other.nextOf('error')).code).toBe('unsupported-protocol');
      expect((await other.waitClosed()).code).toBe(4000);
    }
  });

  it('huge but valid numbers are answered without work proportional to their value', async () => {
    const { server } = await seeded();
    const { client } = await joined(server, 'd');
    const max = Number.MAX_SAFE_INTEGER;
    expect(await client.submit('d', max, 1, [5, '!'])).toMatchObject({ code: 'version-ahead' });
    expect(await client.submit('d', 1, max, [5, '!'])).toMatchObject({ code: 'seq-gap' });
    expect(await client.submit('d', 1, 1, [max, '!'])).toMatchObject({ code: 'invalid-op' });
    expect(await client.submit('d', 1, 1, [max, max, '!'])).toMatchObject({ code: 'invalid-op' });
    expect(await client.submit('d', 1, 1, [-max, '!'])).toMatchObject({ code: 'invalid-op' });
    expect(await client.open('d', max)).toMatchObject({ type: 'opened', v: 1, text: 'hello' });
    client.send({ type: 'presence', doc: 'd', v: 1, selection: [{ anchor: max, head: max }] });
    await client.ping();
    expect(await server.sequencer.getSnapshot('d')).toMatchObject({ version: 1, text: 'hello' });
  });
});

describe('presence outside the document', () => {
  it('a selection past the end does not stop later ops from reaching anyone, and is not relayed once the length is known', async () => {
    const { server } = await startServer();
    // Written before anyone opens it: the room starts without knowing the document's length.
    await server.sequencer.submit({ docId: 'p', clientId: 'seed', seq: 1, baseVersion: 0, op: ['hello'] });
    const { client: author } = await joined(server, 'p');
    const { client: watcher } = await joined(server, 'p');
    const { client: mallory } = await joined(server, 'p');
    mallory.send({ type: 'presence', doc: 'p', v: 1, selection: [{ anchor: 1000, head: 1000 }] });
    mallory.send({ type: 'presence', doc: 'p', v: 0, selection: [{ anchor: 3, head: 3 }] });
    await mallory.ping();
    watcher.send({ type: 'presence', doc: 'p', v: 1, selection: [{ anchor: 5, head: 5 }] });
    await watcher.ping();
    for (let i = 0; i < 3; i++) {
      const v = 1 + i;
      expect(await author.submit('p', v, 1 + i, [5 + i, '!'])).toMatchObject({ type: 'ack', v: v + 1 });
    }
    await waitFor('three ops reaching the watcher', () => watcher.opsOf('p').length === 3);
    expect(watcher.opsOf('p').map((e) => e.v)).toEqual([2, 3, 4]);
    await waitFor('three ops reaching mallory', () => mallory.opsOf('p').length === 3);
    expect(await server.sequencer.getSnapshot('p')).toMatchObject({ version: 4, text: 'hello!!!' });

    // Now the room knows the length: a range past it is not relayed.
    const from = watcher.messages.length;
    mallory.send({ type: 'presence', doc: 'p', v: 4, selection: [{ anchor: 9, head: 9 }] });
    mallory.send({ type: 'presence', doc: 'p', v: 4, selection: [{ anchor: 2, head: 2 }] });
    await waitFor('the valid presence', () => watcher.messages.slice(from).some((m) => m.type === 'presence'));
    await mallory.ping();
    await watcher.ping();
    const relayed = watcher.messages.slice(from).filter((m) => m.type === 'presence');
    expect(relayed.map((m) => m.selection)).toEqual([[{ anchor: 2, head: 2 }]]);

    // A newcomer gets every presence inside the document.
    const { client: late } = await joined(server, 'p');
    await late.ping();
    const seen = late.messages.filter((m) => m.type === 'presence');
    expect(seen.length).toBe(2);
    for (const p of seen) {
      for (const r of (p.selection as Array<{ anchor: number; head: number }> | null) ?? []) {
        expect(r.anchor).toBeLessThanOrEqual(8);
        expect(r.head).toBeLessThanOrEqual(8);
      }
    }
  });
});

describe('hostile structure', () => {
  it('prototype keys anywhere are refused as bad-message and leave Object.prototype untouched', async () => {
    const { server, watcher } = await seeded();
    const { client } = await joined(server, 'd');
    const frames = [
      '{"type":"open","doc":"x","__proto__":{"polluted":1}}',
      '{"__proto__":{"polluted":1},"type":"ping"}',
      '{"type":"ping","constructor":{"prototype":{"polluted":1}}}',
      '{"type":"hello","protocol":1,"prototype":{"isAdmin":true}}',
      '{"type":"presence","doc":"d","v":1,"selection":[{"anchor":0,"head":0,"__proto__":{"polluted":1}}]}',
      '{"type":"submit","doc":"d","v":1,"seq":1,"op":[5,{"__proto__":{"isAdmin":true}}]}',
      '{"type":"submit","doc":"d","v":1,"seq":1,"op":[5,"!"],"__proto__":null}',
      '{"type":"auth","token":"t","__proto__":[]}',
      '[{"__proto__":{"polluted":1}}]',
    ];
    for (const f of frames) expect(await refused(client, f, 'prototype key'), f).toBe('bad-message');
    expect(await server.sequencer.getSnapshot('d')).toMatchObject({ version: 1, text: 'hello' });
    await watcher.ping();
    expect(watcher.opsOf('d')).toEqual([]);
  });

  it('Object.prototype names as document ids, client ids and types are plain strings', async () => {
    const { server } = await startServer({ authorize: (_u, doc) => (doc === 'toString' ? 'read' : 'write') });
    const client = await connect(server);
    await client.hello('__proto__');
    for (const doc of ['__proto__', 'constructor', 'hasOwnProperty', 'prototype', 'valueOf']) {
      expect(await client.open(doc)).toMatchObject({ type: 'opened', doc, v: 0, text: '' });
      expect(await client.submit(doc, 0, 1, [doc])).toMatchObject({ type: 'ack', v: 1 });
      expect(await server.sequencer.getSnapshot(doc)).toMatchObject({ version: 1, text: doc });
    }
    expect(await client.open('toString')).toMatchObject({ type: 'opened' });
    expect(await client.submit('toString', 0, 1, ['x'])).toMatchObject({ code: 'read-only' });
    for (const type of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect(await refused(client, JSON.stringify({ type }), type)).toBe('unknown-type');
    }
  });

  it('ids that look like SQL are stored as data (SqliteStore)', async () => {
    const dir = makeTempDir('otter-security-');
    try {
      const { server } = await startServer({ store: new SqliteStore(join(dir, 'otter.db')) });
      const client = await connect(server);
      await client.hello("x'); DROP TABLE clients; --");
      const docs = ["'; DROP TABLE ops; --", 'd" OR "1"="1', 'd%_\\', 'snapshots'];
      for (const doc of docs) {
        expect(await client.open(doc)).toMatchObject({ type: 'opened', v: 0 });
        expect(await client.submit(doc, 0, 1, [doc])).toMatchObject({ type: 'ack', v: 1 });
      }
      for (const doc of docs) expect(await server.sequencer.getSnapshot(doc)).toMatchObject({ version: 1, text: doc });
      expect(await server.store.load('d')).toMatchObject({ ops: [] });
    } finally {
      await closeAll();
      removeTempDir(dir);
    }
  });

  it('deep nesting, wide objects and long strings are refused or ignored cheaply; the server answers at once', async () => {
    const { server } = await seeded();
    const { client } = await joined(server, 'd');
    const deepArrays = '['.repeat(200_000) + ']'.repeat(200_000);
    const deepObjects = '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000);
    const deepInField = `{"type":"ping","x":${'['.repeat(1000)}${']'.repeat(1000)}}`;
    for (const f of [deepArrays, deepObjects, deepInField]) expect(await refused(client, f, 'deep')).toBe('bad-message');
    // A wide object is read once and its unknown fields dropped.
    const wide: Record<string, number> = { type: 0 };
    for (let i = 0; i < 50_000; i++) wide[`k${i}`] = i;
    const from = client.messages.length;
    client.sendText(JSON.stringify({ ...wide, type: 'ping' }));
    await client.nextOf('pong', {}, { from: from });
    expect(await refused(client, JSON.stringify({ type: 'open', doc: 'x'.repeat(257) }), 'long doc')).toBe('bad-request');
    expect(await refused(client, JSON.stringify({ type: 'auth', token: 't'.repeat(8193) }), 'long token')).toBe('bad-request');
    expect(await refused(client, JSON.stringify({ type: 'x'.repeat(100_000) }), 'long type')).toBe('unknown-type');
    expect(await refused(client, JSON.stringify({ type: 'presence', doc: 'd', v: 1, selection: Array(65).fill({ anchor: 0, head: 0 }) }), 'many ranges')).toBe('bad-request');
    expect(await refused(client, JSON.stringify({ type: 'submit', doc: 'd', v: 1, seq: 1, op: [5, '\ud800'] }), 'lone surrogate')).toBe('invalid-op');
    for (const f of ['', ' ', 'null', '[]', '"ping"', '42', '{"type":null}', '{}', '\u0000', '{"type":"ping"']) {
      expect(['bad-message', 'unknown-type']).toContain(await refused(client, f, JSON.stringify(f)));
    }
    const other = await connect(server);
    const longId = JSON.stringify({ type: 'hello', protocol: 1, clientId: 'x'.repeat(129) });
    expect(await refused(other, longId, 'long client id', client)).toBe('bad-request');
    expect(await server.sequencer.getSnapshot('d')).toMatchObject({ version: 1, text: 'hello' });
  });
});

describe('poison ops', () => {
  it('an op that fails only while being rebased is refused alone; the others keep applying', async () => {
    const { server, author, watcher } = await seeded();
    const { client: mallory } = await joined(server, 'd');
    const { client: late } = await joined(server, 'd');
    // Based on version 0 (the empty document) but spanning 3 code units: well-formed, and it
    // only fails when transformed over version 1.
    mallory.send({ type: 'submit', doc: 'd', v: 0, seq: 1, op: [3, 'x'] });
    late.send({ type: 'submit', doc: 'd', v: 0, seq: 1, op: ['>'] }); // late but valid
    author.send({ type: 'submit', doc: 'd', v: 1, seq: 2, op: [5, '!'] });
    mallory.send({ type: 'submit', doc: 'd', v: 1, seq: 1, op: [2, -9, 'y'] }); // too long for v1
    await mallory.nextOf('error', { code: 'invalid-op' });
    await late.nextOf('ack', { seq: 1 });
    await author.nextOf('ack', { seq: 2 });
    await waitFor('both poison ops refused', () => mallory.errors().length === 2);
    expect(mallory.errors().map((e) => e.code)).toEqual(['invalid-op', 'invalid-op']);
    await waitFor('the two good ops reaching the watcher', () => watcher.opsOf('d').length === 2);
    const snap = await server.sequencer.getSnapshot('d');
    expect(snap.version).toBe(3);
    expect(snap.text).toBe(await replayOf(server, 'd'));
    expect(snap.text.split('').sort().join('')).toBe('!>ehllo'.split('').sort().join(''));
    // Mallory's seq 1 was never applied: it can still use it.
    expect(await mallory.submit('d', 3, 1, [7, '?'])).toMatchObject({ type: 'ack', v: 4 });
  });
});
