/**
 * Authorization per document, credential expiry mid-session, and identity (authorship and the
 * scoping of client ids by user), over real sockets.
 */
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import type { Authenticate } from '../../src/server/auth.js';
import type { Access } from '../../src/server/auth.js';
import { closeAll, connect, joined, nowSeconds, replayOf, startServer, aboutDoc } from './helpers.js';
import type { ReceivedOf } from '../support/raw-client.js';
import { fromPatch } from '../../src/ot/index.js';
import { sleep, waitFor, within } from '../support/wait.js';

afterEach(closeAll);

/** Tokens are `user` or `user:ttlMs`; anything else is refused. */
const authenticate: Authenticate = async (token) => {
  const m = token === undefined ? null : /^([a-z]+):?(\d+)?$/.exec(token);
  if (m === null) return undefined;
  const user = m[1] as string;
  return m[2] === undefined ? { user } : { user, expiresAt: Date.now() + Number(m[2]) };
};

const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

describe('authorize', () => {
  const SECRET_TEXT = 'TOP-SECRET-7f3a9c';

  function table(): Map<string, Access> {
    return new Map<string, Access>([
      ['alice secret', 'write'],
      ['bob secret', 'read'],
      ['eve secret', 'none'],
    ]);
  }

  async function setup(t = table()) {
    const { server, logger } = await startServer({
      authenticate,
      authorize: (user, doc) => (doc === 'secret' ? (t.get(`${user} ${doc}`) ?? 'none') : 'write'),
    });
    return { server, logger, table: t };
  }

  it("'none': forbidden on open, not a byte of the document in any message, other documents keep working", async () => {
    const { server } = await setup();
    const alice = (await joined(server, 'secret', as('alice'))).client;
    await alice.submit('secret', 0, 1, [SECRET_TEXT]);
    alice.send({ type: 'presence', doc: 'secret', v: 1, selection: [{ anchor: 3, head: 5 }] });

    const eve = await connect(server, as('eve'));
    await eve.hello();
    for (const open of [{ type: 'open', doc: 'secret' }, { type: 'open', doc: 'secret', v: 0 }, { type: 'open', doc: 'secret', v: 1 }]) {
      const from = eve.messages.length;
      eve.send(open);
      const err = await eve.nextOf('error', {}, { from: from });
      expect(err).toMatchObject({ code: 'forbidden', ref: { type: 'open', doc: 'secret' } });
    }
    // Still usable for its other documents.
    const opened = await eve.open('public');
    expect(opened.type).toBe('opened');

    // Alice keeps editing (ops, presence) while eve smuggles the doc id into message bodies.
    const ops = await within(
      (async () => {
        let v = 1;
        let len = SECRET_TEXT.length;
        for (const piece of ['-more', '-and-more']) {
          const answer = await alice.submit('secret', v, v + 1, fromPatch(len, len, 0, `${SECRET_TEXT}${piece}`));
          expect(answer.type).toBe('ack');
          len += SECRET_TEXT.length + piece.length;
          v++;
        }
        return v;
      })(),
      5000,
      'alice editing',
    );
    const smuggled = [
      { type: 'submit', doc: 'secret', v: 0, seq: 1, op: ['eve was here'] },
      { type: 'submit', doc: 'secret', v: ops, seq: 1, op: [100, 'x'] },
      { type: 'presence', doc: 'secret', v: ops, selection: [{ anchor: 0, head: 1 }] },
    ];
    for (const m of smuggled) {
      const from = eve.messages.length;
      eve.send(m);
      const err = await eve.nextOf('error', {}, { from: from });
      expect(err.code).toBe('not-open');
    }
    expect((await server.sequencer.getSnapshot('secret')).version).toBe(ops);

    // Barrier: an op on the public document reaches eve, so anything sent before it has arrived.
    alice.send({ type: 'open', doc: 'public' });
    await alice.nextOf('opened', { doc: 'public' });
    await alice.submit('public', 0, 1, ['public text']);
    await eve.nextOf('ops', { doc: 'public' });
    await eve.ping();

    for (const frame of eve.frames) expect(frame).not.toContain(SECRET_TEXT);
    for (const m of aboutDoc(eve, 'secret')) {
      expect(m.type).toBe('error');
      expect(['forbidden', 'not-open']).toContain((m as ReceivedOf<'error'>).code);
    }
    expect(eve.messages.some((m) => m.type === 'presence' && m.doc === 'secret')).toBe(false);
    expect(await replayOf(server, 'secret')).toBe((await server.sequencer.getSnapshot('secret')).text);
    expect((await server.sequencer.getOps('secret', 0)).every((r) => r.author === 'alice')).toBe(true);
  });

  it("'read': opens and receives ops; a submit gets read-only, nothing is applied or broadcast, the connection stays", async () => {
    const { server } = await setup();
    const alice = (await joined(server, 'secret', as('alice'))).client;
    await alice.submit('secret', 0, 1, ['hello']);
    const { client: bob, opened } = await joined(server, 'secret', as('bob'));
    expect(opened).toMatchObject({ v: 1, text: 'hello' });
    const from = bob.messages.length;
    await alice.submit('secret', 1, 2, [5, ' world']);
    expect((await bob.nextOf('ops', { doc: 'secret' }, { from: from })).ops).toEqual([{ v: 2, op: [5, ' world'], author: 'alice' }]);

    const aliceFrom = alice.messages.length;
    for (const [seq, v, op] of [
      [1, 2, [11, '!']],
      [1, 0, ['x']],
      [2, 2, [-11]],
    ] as const) {
      const err = await bob.submit('secret', v, seq, [...op]);
      expect(err).toMatchObject({ type: 'error', code: 'read-only', ref: { type: 'submit', doc: 'secret', seq } });
    }
    expect(await server.sequencer.getSnapshot('secret')).toMatchObject({ version: 2, text: 'hello world' });
    // Sentinel: alice's next op arrives to bob as version 3: nothing of bob's came in between.
    await alice.submit('secret', 2, 3, [11, '.']);
    await waitFor('op 3 reaching bob', () => bob.opsOf('secret').some((e) => e.v === 3));
    await bob.ping();
    expect(bob.opsOf('secret').map((e) => e.v)).toEqual([2, 3]);
    expect(alice.messages.slice(aliceFrom).some((m) => m.type === 'ops')).toBe(false);
    expect(bob.isOpen).toBe(true);
  });

  it('fails closed: an unknown access value, or a throwing authorize, opens nothing', async () => {
    const { server } = await startServer({
      authenticate,
      authorize: (_user, doc) => {
        if (doc === 'throws') throw new Error('permissions database down');
        if (doc === 'rejects') return Promise.reject(new Error('permissions database down'));
        return (doc === 'weird' ? 'admin' : doc === 'undef' ? undefined : 'write') as Access;
      },
    });
    const seeder = await connect(server, as('alice'));
    await seeder.hello();
    for (const doc of ['weird', 'undef', 'throws', 'rejects']) {
      await server.sequencer.submit({ docId: doc, clientId: 'seed', seq: 1, baseVersion: 0, op: [SECRET_TEXT] });
      const err = await seeder.open(doc);
      expect(err.type).toBe('error');
      expect(['forbidden', 'storage-failed']).toContain((err as ReceivedOf<'error'>).code);
      const from = seeder.messages.length;
      seeder.send({ type: 'submit', doc, v: 1, seq: 1, op: [SECRET_TEXT.length, 'x'] });
      expect((await seeder.nextOf('error', {}, { from: from })).code).toBe('not-open');
      expect((await server.sequencer.getSnapshot(doc)).version).toBe(1);
    }
    for (const frame of seeder.frames) expect(frame).not.toContain(SECRET_TEXT);
    await seeder.ping();
  });

  it('access is decided again on re-open: a revoked user stops receiving the document', async () => {
    const t = table();
    t.set('eve secret', 'read');
    const { server } = await setup(t);
    const alice = (await joined(server, 'secret', as('alice'))).client;
    const eve = (await joined(server, 'secret', as('eve'))).client;
    await alice.submit('secret', 0, 1, ['visible']);
    await eve.nextOf('ops', { doc: 'secret' });
    t.set('eve secret', 'none');
    const err = await eve.open('secret');
    expect(err).toMatchObject({ type: 'error', code: 'forbidden' });
    const from = eve.frames.length;
    await alice.submit('secret', 1, 2, [7, SECRET_TEXT]);
    await eve.ping();
    expect(eve.frames.slice(from).join('')).not.toContain(SECRET_TEXT);
    const after = eve.messages.length;
    eve.send({ type: 'submit', doc: 'secret', v: 2, seq: 1, op: [7 + SECRET_TEXT.length, '!'] });
    // Revoked, not malformed: a submit sent before the refusal arrived is no client's fault.
    expect((await eve.nextOf('error', {}, { from: after })).code).toBe('forbidden');
  });
});

describe('credential expiry mid-session', () => {
  it('after expiry a submit is not applied and the connection closes with 4401', async () => {
    const { server } = await startServer({ authenticate });
    const { client } = await joined(server, 'doc', as('alice:400'));
    const deadline = Date.now() + 400;
    while (Date.now() <= deadline + 20 && client.isOpen) await sleep(10);
    if (client.isOpen) client.send({ type: 'submit', doc: 'doc', v: 0, seq: 1, op: ['late'] });
    expect((await client.waitClosed()).code).toBe(4401);
    expect((await server.sequencer.getSnapshot('doc')).version).toBe(0);
    expect(client.messages.some((m) => m.type === 'ack')).toBe(false);
  });

  it('a client that refreshes before expiry stays connected and gets `authed`', async () => {
    const { server } = await startServer({ authenticate });
    const { client } = await joined(server, 'doc', as('alice:1000'));
    const from = client.messages.length;
    client.send({ type: 'auth', token: 'alice:60000' });
    const authed = await client.nextOf('authed', {}, { from: from });
    expect(authed.expiresAt).toBeGreaterThan(Date.now() + 30_000);
    await sleep(1200); // past the original expiry
    expect(client.isOpen).toBe(true);
    expect(await client.submit('doc', 0, 1, ['still here'])).toMatchObject({ type: 'ack', v: 1 });
  });

  it('a refreshed token for a different user, or a bad one, is refused with auth-expired; the old expiry stands', async () => {
    const { server } = await startServer({ authenticate });
    const { client } = await joined(server, 'doc', as('alice:1000'));
    for (const token of ['bob:60000', 'NOT A TOKEN']) {
      const from = client.messages.length;
      client.send({ type: 'auth', token });
      expect(await client.nextOf('error', {}, { from: from })).toMatchObject({ code: 'auth-expired', ref: { type: 'auth' } });
    }
    expect(client.messages.some((m) => m.type === 'authed')).toBe(false);
    expect((await client.waitClosed()).code).toBe(4401);
  });

  it('a JWT expiring mid-session closes the connection with 4401', async () => {
    const secret = 'a-test-secret-of-at-least-32-chars!';
    const { server } = await startServer({ jwt: { secret } });
    const token = await new SignJWT({ sub: 'ann', exp: nowSeconds() + 2 })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(secret));
    const { client } = await joined(server, 'doc', as(token));
    expect((await client.waitClosed(4000)).code).toBe(4401);
  });

  it('auth on a server without authentication is a bad request', async () => {
    const { server } = await startServer();
    const { client } = await joined(server, 'doc');
    const from = client.messages.length;
    client.send({ type: 'auth', token: 'whatever' });
    expect(await client.nextOf('error', {}, { from: from })).toMatchObject({ code: 'bad-request', ref: { type: 'auth' } });
  });
});

describe('identity', () => {
  it('the stored and broadcast author is the authenticated user, whatever the message says', async () => {
    const { server } = await startServer({ authenticate });
    const ann = (await joined(server, 'doc', as('ann'))).client;
    const bob = (await joined(server, 'doc', as('bob'))).client;
    ann.send({ type: 'submit', doc: 'doc', v: 0, seq: 1, op: ['hi'], author: 'bob', user: 'bob', clientId: 'x' });
    await ann.nextOf('ack', { seq: 1 });
    expect((await bob.nextOf('ops')).ops).toEqual([{ v: 1, op: ['hi'], author: 'ann' }]);
    expect((await server.sequencer.getOps('doc', 0)).map((r) => r.author)).toEqual(['ann']);
    ann.send({ type: 'presence', doc: 'doc', v: 1, selection: [{ anchor: 1, head: 1 }], user: 'bob', id: 'fake' });
    const p = await bob.nextOf('presence');
    expect(p.user).toBe('ann');
    expect(p.id).not.toBe('fake');
  });

  it('two users with the same clientId do not suppress each other: both ops are applied', async () => {
    const { server } = await startServer({ authenticate });
    const ann = (await joined(server, 'doc', as('ann'))).client;
    const bob = await connect(server, as('bob'));
    await bob.hello('shared-client-id');
    const ann2 = await connect(server, as('ann'));
    await ann2.hello('shared-client-id');
    await ann2.open('doc');
    expect(await ann2.submit('doc', 0, 1, ['A'])).toMatchObject({ type: 'ack', v: 1 });
    // Bob, same clientId, sees no trace of ann's mark, and his seq 1 is his own.
    expect(await bob.open('doc')).toMatchObject({ type: 'opened', v: 1, seq: 0 });
    expect(await bob.submit('doc', 0, 1, ['A'])).toMatchObject({ type: 'ack', v: 2 });
    await waitFor('both ops broadcast', () => ann.opsOf('doc').length === 2 && ann2.opsOf('doc').length === 1);
    expect(ann.opsOf('doc').map((e) => e.author)).toEqual(['ann', 'bob']);
    // Each receives the other's op as an op, not as an ack of its own.
    expect(ann2.opsOf('doc').map((e) => e.author)).toEqual(['bob']);
    expect(bob.opsOf('doc')).toEqual([]);
    expect(await server.sequencer.getSnapshot('doc')).toMatchObject({ version: 2, text: 'AA' });
    // A genuine resubmission by the same user is still recognised.
    const again = await connect(server, as('ann'));
    await again.hello('shared-client-id');
    expect(await again.open('doc')).toMatchObject({ seq: 1 });
    expect(await again.submit('doc', 0, 1, ['A'])).toMatchObject({ type: 'ack', v: 1 });
    expect((await server.sequencer.getSnapshot('doc')).version).toBe(2);
  });

  it('a clientId cannot be crafted to collide with another user\'s (user ids containing a line break)', async () => {
    const { server } = await startServer({
      authenticate: async (token) => (token === 'victim' ? { user: 'a\nb' } : token === 'attacker' ? { user: 'a' } : undefined),
    });
    const victim = await connect(server, as('victim'));
    await victim.hello('c');
    await victim.open('doc');
    expect(await victim.submit('doc', 0, 1, ['victim'])).toMatchObject({ type: 'ack', v: 1 });

    const attacker = await connect(server, as('attacker'));
    const from = attacker.messages.length;
    attacker.send({ type: 'hello', protocol: 1, clientId: 'b\nc' });
    const answer = await attacker.next<ReceivedOf<'welcome' | 'error'>>((m) => m.type === 'welcome' || m.type === 'error', { what: 'hello answer', from });
    if (answer.type === 'welcome') {
      // Accepted: then it must be a client of its own, with no access to the victim's marks.
      expect(await attacker.open('doc')).toMatchObject({ type: 'opened', seq: 0 });
      expect(await attacker.submit('doc', 1, 1, [6, '!'])).toMatchObject({ type: 'ack', v: 2 });
      expect((await server.sequencer.getSnapshot('doc')).text).toBe('victim!');
    } else {
      expect(answer.code).toBe('bad-request');
    }
    // The victim's client id still belongs to the victim alone.
    const ops = await server.sequencer.getOps('doc', 0);
    expect(ops.filter((r) => r.author === 'a\nb').length).toBe(1);
  });
});
