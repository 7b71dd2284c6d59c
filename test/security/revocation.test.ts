/**
 * Revocation over real sockets: `authorize` asked again for documents already open — on the
 * periodic re-check (`reauthorizeInterval`) and at once on `server.revoke(user, docId?)` — closes
 * a document whose access became 'none', makes one that became 'read' read-only, tells the
 * client with a `revoked` message, refuses the submits still queued, and keeps the current
 * access when `authorize` throws or hangs. No assertion here is about elapsed time: every wait
 * is for a message, an event or a count, bounded by the helpers' timeout.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Access, Authenticate } from '../../src/server/auth.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Reauthorizer, SLICES } from '../../src/server/reauthorize.js';
import type { Session } from '../../src/server/session.js';
import { closeAll, joined, startServer, aboutDoc } from './helpers.js';
import type { RawClient } from '../support/raw-client.js';
import { fromPatch } from '../../src/ot/index.js';
import { waitFor } from '../support/wait.js';

afterEach(closeAll);

/** Tokens are user names. */
const authenticate: Authenticate = async (token) => (token === undefined || !/^[a-z]+$/.test(token) ? undefined : { user: token });
const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

const SECRET = 'SECRET-after-revocation-4c1d';

/**
 * A permission table `authorize` reads (`user doc` → access, default 'write'), counting its
 * calls per user and document; an entry of 'throw' or 'hang' makes it throw or never answer.
 */
function permissions() {
  const table = new Map<string, Access | 'throw' | 'hang'>();
  const calls = new Map<string, number>();
  const authorize = (user: string | undefined, doc: string): Access | Promise<Access> => {
    const key = `${user} ${doc}`;
    calls.set(key, (calls.get(key) ?? 0) + 1);
    const entry = table.get(key) ?? 'write';
    if (entry === 'throw') throw new Error('permissions database down');
    if (entry === 'hang') return new Promise<Access>(() => {});
    return entry;
  };
  return { table, calls, authorize, callsOf: (user: string, doc: string) => calls.get(`${user} ${doc}`) ?? 0 };
}


/** Alice writes `doc` and eve has it open; eve has received alice's first op. */
async function aliceAndEve(options: Parameters<typeof startServer>[0], doc = 'secret') {
  const { server, logger } = await startServer({ authenticate, ...options });
  const alice = (await joined(server, doc, as('alice'))).client;
  const eve = (await joined(server, doc, as('eve'))).client;
  await alice.submit(doc, 0, 1, ['visible']);
  await eve.nextOf('ops', { doc });
  return { server, logger, alice, eve };
}

/**
 * Alice commits one more op on `doc` (at version `v`, text length `len`) and on 'barrier',
 * which eve has open too; once eve has the barrier op, anything of `doc` sent before it has
 * arrived as well.
 */
async function afterBarrier(alice: RawClient, eve: RawClient, doc: string, v: number, len: number, barrierV: number): Promise<void> {
  expect(await alice.submit(doc, v, v + 1, fromPatch(len, len, 0, SECRET))).toMatchObject({ type: 'ack' });
  expect(await alice.submit('barrier', barrierV, barrierV + 1, fromPatch(barrierV, barrierV, 0, 'b'))).toMatchObject({ type: 'ack' });
  await waitFor('the barrier op reaching eve', () => eve.opsOf('barrier').some((e) => e.v === barrierV + 1));
}

describe('revocation: access lowered to none', () => {
  it('on the periodic re-check: the document is closed for that connection with `revoked`, no op of it arrives afterwards', async () => {
    const p = permissions();
    const { server, alice, eve } = await aliceAndEve({ authorize: p.authorize, reauthorizeInterval: 30 });
    for (const c of [alice, eve]) {
      c.send({ type: 'open', doc: 'barrier' });
      await c.nextOf('opened', { doc: 'barrier' });
    }
    const aliceFrom = alice.messages.length;
    p.table.set('eve secret', 'none');
    const revoked = await eve.nextOf('revoked', { doc: 'secret' });
    expect(revoked).toEqual({ type: 'revoked', doc: 'secret', access: 'none' });
    // Alice is told eve left.
    await alice.nextOf('left', { doc: 'secret' }, { from: aliceFrom });

    const from = eve.messages.length;
    const framesFrom = eve.frames.length;
    await afterBarrier(alice, eve, 'secret', 1, 'visible'.length, 0);
    expect(aboutDoc(eve, 'secret', from)).toEqual([]);
    expect(eve.frames.slice(framesFrom).join('')).not.toContain(SECRET);
    // What eve still sends about it (sent before it learned) is refused as forbidden, not as
    // a malformed message; presence is dropped.
    eve.send({ type: 'presence', doc: 'secret', v: 1, selection: [{ anchor: 0, head: 0 }] });
    expect(await eve.submit('secret', 1, 1, [7, '!'])).toMatchObject({ type: 'error', code: 'forbidden', ref: { type: 'submit', seq: 1 } });
    await eve.ping();
    expect(aboutDoc(eve, 'secret', from).map((m) => (m.type === 'error' ? m.code : m.type))).toEqual(['forbidden']);
    expect((await server.sequencer.getSnapshot('secret')).text).toBe(`visible${SECRET}`);
    expect(eve.isOpen).toBe(true);
    // The other document stays open and writable for eve.
    expect(await eve.submit('barrier', 1, 1, [1, 'e'])).toMatchObject({ type: 'ack' });
    // A re-open asks authorize again: still refused.
    expect(await eve.open('secret')).toMatchObject({ type: 'error', code: 'forbidden' });
  });

  it('on server.revoke(user): at once, with no periodic re-check; revoke resolves with the number of documents changed', async () => {
    const p = permissions();
    const { server, alice, eve } = await aliceAndEve({ authorize: p.authorize, reauthorizeInterval: 0 });
    for (const c of [alice, eve]) {
      c.send({ type: 'open', doc: 'barrier' });
      await c.nextOf('opened', { doc: 'barrier' });
    }
    const before = p.callsOf('eve', 'secret');
    p.table.set('eve secret', 'none');
    expect(await server.revoke('alice')).toBe(0); // alice keeps her access
    expect(await server.revoke('eve', 'barrier')).toBe(0); // only that document is asked about
    expect(p.callsOf('eve', 'secret')).toBe(before);
    expect(await server.revoke('eve')).toBe(1);
    expect(p.callsOf('eve', 'secret')).toBe(before + 1);
    expect(await eve.nextOf('revoked', { doc: 'secret' })).toMatchObject({ access: 'none' });
    const from = eve.messages.length;
    await afterBarrier(alice, eve, 'secret', 1, 'visible'.length, 0);
    expect(aboutDoc(eve, 'secret', from)).toEqual([]);
    expect(await server.revoke('eve')).toBe(0); // nothing left to revoke
    // No periodic re-check ran: every call was an open or a revoke.
    expect(p.callsOf('eve', 'secret')).toBe(before + 1);
  });

  it('every connection of the user is re-checked; other users are not asked', async () => {
    const p = permissions();
    const { server } = await startServer({ authenticate, authorize: p.authorize, reauthorizeInterval: 0 });
    const eves = await Promise.all([1, 2, 3].map(async () => (await joined(server, 'secret', as('eve'))).client));
    const bob = (await joined(server, 'secret', as('bob'))).client;
    p.table.set('eve secret', 'none');
    p.table.set('bob secret', 'none'); // not applied: bob is not revoked
    expect(await server.revoke('eve', 'secret')).toBe(3);
    for (const eve of eves) await eve.nextOf('revoked', { doc: 'secret' });
    await bob.ping();
    expect(bob.messages.some((m) => m.type === 'revoked')).toBe(false);
    expect(p.callsOf('bob', 'secret')).toBe(1);
  });

  it('submits still queued behind a slow append when access is revoked are refused with forbidden, not applied', async () => {
    let release: () => void = () => {};
    let stalled = false;
    let appending = false;
    const gate = new Promise<void>((r) => (release = r));
    class SlowStore extends MemoryStore {
      override async append(...args: Parameters<MemoryStore['append']>): ReturnType<MemoryStore['append']> {
        if (stalled) {
          appending = true;
          await gate;
        }
        return super.append(...args);
      }
    }
    const p = permissions();
    const { server, alice, eve } = await aliceAndEve({ authorize: p.authorize, reauthorizeInterval: 0, store: new SlowStore() });
    stalled = true;
    alice.send({ type: 'submit', doc: 'secret', v: 1, seq: 2, op: [7, ' A'] }); // its append stalls
    await waitFor('alice\'s append under way', () => appending);
    eve.send({ type: 'submit', doc: 'secret', v: 1, seq: 1, op: [7, ' E1'] });
    await eve.ping(); // the submit was read and queued behind alice's batch
    p.table.set('eve secret', 'none');
    expect(await server.revoke('eve', 'secret')).toBe(1);
    await eve.nextOf('revoked', { doc: 'secret' });
    release();
    const answer = await eve.next((m) => m.type === 'error' || m.type === 'ack', { what: 'the answer to eve\'s queued submit' });
    expect(answer).toMatchObject({ type: 'error', code: 'forbidden', ref: { type: 'submit', doc: 'secret', seq: 1 } });
    await alice.nextOf('ack', { seq: 2 });
    expect((await server.sequencer.getSnapshot('secret')).text).toBe('visible A');
    expect((await server.sequencer.getOps('secret', 0)).every((r) => r.author === 'alice')).toBe(true);
  });
});

describe('revocation: access lowered to read', () => {
  it('the connection stays in the room and keeps receiving; queued and later submits get read-only', async () => {
    const p = permissions();
    const { server, alice, eve } = await aliceAndEve({ authorize: p.authorize, reauthorizeInterval: 0 });
    expect(await eve.submit('secret', 1, 1, [7, '+'])).toMatchObject({ type: 'ack', v: 2 });
    await alice.nextOf('ops', { doc: 'secret' });
    p.table.set('eve secret', 'read');
    expect(await server.revoke('eve')).toBe(1);
    expect(await eve.nextOf('revoked', { doc: 'secret' })).toEqual({ type: 'revoked', doc: 'secret', access: 'read' });
    expect(await server.revoke('eve')).toBe(0); // read already: nothing changes
    const from = eve.messages.length;
    expect(await alice.submit('secret', 2, 2, [8, '!'])).toMatchObject({ type: 'ack', v: 3 });
    await waitFor('alice\'s op reaching eve', () => eve.opsOf('secret').some((e) => e.v === 3));
    expect(await eve.submit('secret', 3, 2, [9, '?'])).toMatchObject({ type: 'error', code: 'read-only', ref: { seq: 2 } });
    expect(await server.sequencer.getSnapshot('secret')).toMatchObject({ version: 3, text: 'visible+!' });
    // Presence still goes both ways.
    eve.send({ type: 'presence', doc: 'secret', v: 3, selection: [{ anchor: 1, head: 1 }] });
    await alice.nextOf('presence', { doc: 'secret' });
    expect(aboutDoc(eve, 'secret', from).some((m) => m.type === 'revoked')).toBe(false);
  });

  it('raised access is not applied live: a re-open takes it', async () => {
    const p = permissions();
    p.table.set('eve secret', 'read');
    const { server, eve } = await aliceAndEve({ authorize: p.authorize, reauthorizeInterval: 20 });
    p.table.set('eve secret', 'write');
    expect(await server.revoke('eve')).toBe(0);
    // Wait for a few periodic rounds (counted by authorize calls), then: still read-only.
    const calls = p.callsOf('eve', 'secret');
    await waitFor('three periodic re-checks', () => p.callsOf('eve', 'secret') >= calls + 3);
    expect(await eve.submit('secret', 1, 1, [7, '!'])).toMatchObject({ code: 'read-only' });
    expect(eve.messages.some((m) => m.type === 'revoked')).toBe(false);
    expect(await eve.open('secret')).toMatchObject({ type: 'opened', v: 1 });
    expect(await eve.submit('secret', 1, 1, [7, '!'])).toMatchObject({ type: 'ack', v: 2 });
  });
});

describe('revocation: an authorize that fails keeps the current access', () => {
  it('a throwing authorize on the periodic re-check: access kept, logged at warn and counted, nothing crashes', async () => {
    const p = permissions();
    const { server, logger, alice, eve } = await aliceAndEve({ authorize: p.authorize, reauthorizeInterval: 20 });
    p.table.set('eve secret', 'throw');
    const calls = p.callsOf('eve', 'secret');
    await waitFor('three failing re-checks', () => p.callsOf('eve', 'secret') >= calls + 3);
    expect(await server.revoke('eve')).toBe(0);
    const warns = logger.lines.filter((l) => l.level === 'warn' && l.message.includes('access re-check failed'));
    expect(warns.length).toBeGreaterThanOrEqual(3);
    expect(warns[0]?.fields).toMatchObject({ user: 'eve', doc: 'secret', err: expect.stringContaining('permissions database down') });
    expect(await server.metrics.text()).toMatch(/otter_access_recheck_failures_total [1-9]/);
    // Eve still reads and writes.
    expect(await eve.submit('secret', 1, 1, [7, '!'])).toMatchObject({ type: 'ack', v: 2 });
    expect(await alice.submit('secret', 2, 2, [8, '?'])).toMatchObject({ type: 'ack', v: 3 });
    await waitFor('alice\'s op reaching eve', () => eve.opsOf('secret').some((e) => e.v === 3));
    expect(eve.messages.some((m) => m.type === 'revoked')).toBe(false);
  });

  it('a hung authorize: revoke resolves after reauthorizeTimeout with access kept; periodic re-checks do not pile up calls', async () => {
    const p = permissions();
    const { server, logger, alice, eve } = await aliceAndEve({ authorize: p.authorize, reauthorizeInterval: 20, reauthorizeTimeout: 50 });
    eve.send({ type: 'open', doc: 'barrier' });
    await eve.nextOf('opened', { doc: 'barrier' });
    p.table.set('eve secret', 'hang');
    expect(await server.revoke('eve', 'secret')).toBe(0);
    expect(logger.lines.some((l) => l.level === 'warn' && String(l.fields.err).includes('did not answer within 50 ms'))).toBe(true);
    // Many rounds later (counted on the other document), the hung pair was asked once more at most.
    const hung = p.callsOf('eve', 'secret');
    const barrier = p.callsOf('eve', 'barrier');
    await waitFor('five re-checks of the other document', () => p.callsOf('eve', 'barrier') >= barrier + 5);
    expect(p.callsOf('eve', 'secret')).toBeLessThanOrEqual(hung + 1);
    expect(await alice.submit('secret', 1, 2, [7, '!'])).toMatchObject({ type: 'ack', v: 2 });
    await waitFor('alice\'s op reaching eve', () => eve.opsOf('secret').some((e) => e.v === 2));
    expect(await eve.submit('secret', 2, 1, [8, '?'])).toMatchObject({ type: 'ack', v: 3 });
  });

  it('rejects bad options at createServer', async () => {
    await expect(startServer({ reauthorizeInterval: -1 })).rejects.toThrow(RangeError);
    await expect(startServer({ reauthorizeInterval: Number.NaN })).rejects.toThrow(RangeError);
    await expect(startServer({ reauthorizeTimeout: 0 })).rejects.toThrow(RangeError);
  });
});

describe('Reauthorizer: spreading the periodic re-checks', () => {
  /** A stand-in session with `docs` open that records every re-check. */
  function fakeSession(user: string, docs: string[], log: string[]): Session {
    return {
      user,
      documentIds: docs,
      revoking() {},
      recheck: async (doc: string) => {
        log.push(`${user} ${doc}`);
        return undefined;
      },
    } as unknown as Session;
  }

  it('a round re-checks every open pair once, at most its share per step; the next round waits for the interval', () => {
    const log: string[] = [];
    const sessions = Array.from({ length: 500 }, (_, i) => fakeSession(`u${i}`, ['a', 'b'], log));
    const interval = 60_000;
    const r = new Reauthorizer(() => sessions, { interval, timeout: 1000 });
    r.stop(); // driven by hand below
    const step = r.stepMs;
    expect(step).toBe(interval / SLICES);
    const perStep = Math.ceil(1000 / SLICES);
    let now = 0;
    const counts: number[] = [];
    for (let i = 0; i < SLICES; i++, now += step) {
      const before = log.length;
      r.step(now);
      counts.push(log.length - before);
    }
    expect(Math.max(...counts)).toBe(perStep);
    expect(log.length).toBe(1000);
    expect(new Set(log).size).toBe(1000);
    // The round is over, but its interval has not passed: nothing more yet.
    r.step(interval - 1);
    expect(log.length).toBe(1000);
    r.step(interval);
    expect(log.length).toBe(1000 + perStep);
  });
});
