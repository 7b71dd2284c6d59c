/**
 * Presence relayed between servers (`RelayedRooms`), with a stand-in for the store: what one
 * server shows of another's connections, message by message. The laws checked:
 * - a document given up is forgotten, and what still arrives of it is ignored until it is held
 *   again: no cursor of a connection long gone comes back;
 * - a request for presences is answered with each as the room has it now, moved through the
 *   ops since it was made; a server making such a request sends its own again first;
 * - a presence that arrives again unchanged changes nothing shown (even where it is too old to
 *   place any more);
 * - a presence shown here and not sent again within `ttl` of a request for all of them is
 *   dropped (its departure was lost);
 * - a presence waits for the room to know the document's version, so that it is moved through
 *   the ops since it was made;
 * - a server whose heartbeat lapsed while it lived on sends its presences again, and a
 *   departure or presence whose relay failed is relayed once Redis answers again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SelectionRange } from '../../src/ot/index.js';
import { RelayedRooms } from '../../src/server/redis-presence.js';
import type { RedisStore } from '../../src/server/redis-store.js';
import type { RoomMember } from '../../src/server/rooms.js';
import type { OpRecord } from '../../src/server/store.js';
import { waitFor } from '../support/wait.js';

/** What this server published: (document or none, message). */
type Sent = Array<[string | undefined, unknown[]]>;

/**
 * How the stand-in store behaves: whether a heartbeat finds this server's key still there
 * (false: it lapsed), and whether Redis can be reached (false: publishes and heartbeats fail).
 */
interface FakeRedis {
  keyAlive: boolean;
  reachable: boolean;
  /** What asking whether another server's key lives answers (default: it does). */
  isAlive?: () => Promise<boolean>;
}

/** A stand-in for the RedisStore of the server under test (origin `here`). */
function fakeStore(sent: Sent, redis: FakeRedis = { keyAlive: true, reachable: true }): RedisStore {
  const down = (): Promise<never> => Promise.reject(new Error('MaxRetriesPerRequestError'));
  return {
    origin: 'here',
    publishPresence: (docId: string | undefined, message: string) => {
      if (!redis.reachable) return down();
      sent.push([docId, JSON.parse(message) as unknown[]]);
      return Promise.resolve();
    },
    heartbeat: () => {
      if (!redis.reachable) return down();
      const alive = redis.keyAlive;
      redis.keyAlive = true;
      return Promise.resolve(alive);
    },
    isAlive: () => redis.isAlive?.() ?? Promise.resolve(true),
  } as unknown as RedisStore;
}

/** A connection of this server, recording the presences it is shown (by connection id). */
function member(id: string): RoomMember & { shown: Map<string, { v: number; selection: SelectionRange[] | null }> } {
  const shown = new Map<string, { v: number; selection: SelectionRange[] | null }>();
  return {
    connectionId: id,
    user: undefined,
    shown,
    deliver() {},
    deliverPresence(_doc, other, _user, v, selection) {
      shown.set(other, { v, selection });
    },
    deliverLeft(_doc, other) {
      shown.delete(other);
    },
    deliverHead() {},
  };
}

/** Op `version` of "x": inserts "ab" at 0. */
function record(version: number): OpRecord {
  return { version, op: version === 1 ? ['ab'] : ['ab', 2 * (version - 1)], clientId: 'w', seq: version, checksum: 0 };
}

/** A presence of connection `id` of server `there` on "x", at `v`, a caret at `at`. */
function presence(id: string, v: number, at: number): string {
  return JSON.stringify(['p', 'there', 'x', id, null, v, [{ anchor: at, head: at }], null]);
}

const rooms: RelayedRooms[] = [];
afterEach(() => {
  for (const r of rooms.splice(0)) r.close();
});

/** Rooms over a stand-in store, whose op history is `history` (records 1…n of "x"). */
function relayed(sent: Sent, history: OpRecord[] = [], options = { heartbeat: 10, ttl: 60 }, redis?: FakeRedis): RelayedRooms {
  const recent = (_doc: string, after: number, upTo: number): readonly OpRecord[] | undefined =>
    history.length >= upTo && after >= 0 ? history.slice(after, upTo) : undefined;
  const r = new RelayedRooms(fakeStore(sent, redis), recent, options, 0);
  rooms.push(r);
  return r;
}

/** A connection of this server that joined "x" and whose open told the room version `v`. */
function opened(r: RelayedRooms, id: string, v: number): ReturnType<typeof member> {
  const m = member(id);
  r.join('x', m);
  r.observe('x', v);
  return m;
}

/**
 * Rooms over a stand-in Redis that tests flip (key lapsed, unreachable), heartbeating every
 * 10 ms, holding "x", with a connection of this server for each of `ids` (its caret at 0).
 */
function relayedOverFakeRedis(ids: readonly string[]): { sent: Sent; redis: FakeRedis; r: RelayedRooms; members: Array<ReturnType<typeof member>> } {
  const sent: Sent = [];
  const redis: FakeRedis = { keyAlive: true, reachable: true };
  const r = relayed(sent, [], { heartbeat: 10, ttl: 60 }, redis);
  r.listen('x');
  const members = ids.map((id) => opened(r, id, 0));
  return { sent, redis, r, members };
}

/** The message relaying this server's connection `id` with its caret at 0 in "x". */
function caretAtStart(id: string): unknown[] {
  return ['p', 'here', 'x', id, null, 0, [{ anchor: 0, head: 0 }], null];
}

describe('presence relayed between servers', () => {
  it('a document given up is forgotten, and what still arrives of it is ignored until it is held again: no ghost', () => {
    const r = relayed([]);
    r.listen('x');
    const first = opened(r, 'm1', 0);
    r.receive(presence('u1', 0, 0));
    expect([...first.shown.keys()]).toEqual(['u1']);
    r.leave('x', first);
    r.forget('x');
    // Arrives while the channel is being given up.
    r.receive(presence('u2', 0, 0));
    r.listen('x');
    const second = opened(r, 'm2', 0);
    expect([...second.shown.keys()]).toEqual([]);
  });

  it('a request for presences is answered with each as the room has it now, moved through the ops since it was made', () => {
    const sent: Sent = [];
    const history = [record(1)];
    const r = relayed(sent, history);
    r.listen('x');
    const local = opened(r, 'mine', 0);
    r.setPresence('x', local, 0, [{ anchor: 0, head: 0 }]);
    r.publish('x', record(1)); // "ab" inserted before the caret
    sent.length = 0;
    r.receive(JSON.stringify(['s', 'there', 'x']));
    expect(sent).toEqual([['x', ['p', 'here', 'x', 'mine', null, 1, [{ anchor: 2, head: 2 }], null]]]);
  });

  it('a server asking for every presence again (its subscription back) sends its own again first: those who dropped them meanwhile show them again', () => {
    const sent: Sent = [];
    const r = relayed(sent);
    r.listen('x');
    const local = opened(r, 'mine', 0);
    r.setPresence('x', local, 0, [{ anchor: 0, head: 0 }]);
    sent.length = 0;
    r.resync();
    expect(sent).toEqual([
      ['x', ['p', 'here', 'x', 'mine', null, 0, [{ anchor: 0, head: 0 }], null]],
      [undefined, ['s', 'here']],
    ]);
  });

  it('a presence that arrives again unchanged changes nothing shown, though it is too old to place now', () => {
    const history = [record(1), record(2), record(3)];
    const r = relayed([], history);
    r.listen('x');
    const m = opened(r, 'm', 1);
    r.receive(presence('u1', 1, 0));
    r.publish('x', record(2));
    r.publish('x', record(3));
    // Shown as made; the member moves it through the ops it receives.
    expect(m.shown.get('u1')).toEqual({ v: 1, selection: [{ anchor: 0, head: 0 }] });
    history.length = 0; // the ops since version 1 are no longer at hand
    r.receive(presence('u1', 1, 0));
    expect(m.shown.get('u1')).toEqual({ v: 1, selection: [{ anchor: 0, head: 0 }] });
  });

  it('a presence not sent again within ttl of a request for all of them is dropped (its departure was lost); one sent again stays', async () => {
    const r = relayed([]);
    r.listen('x');
    const m = opened(r, 'm', 0);
    r.receive(presence('gone', 0, 0));
    r.receive(presence('answered', 0, 1));
    r.start();
    r.resync();
    r.receive(presence('answered', 0, 1));
    await waitFor('the unanswered presence dropped', () => !m.shown.has('gone'), 2000, () => JSON.stringify([...m.shown]));
    expect([...m.shown.keys()]).toEqual(['answered']);
  });

  it('a server whose heartbeat key lapsed while it lived on (paused, or cut off from Redis: the others dropped its presences) sends them again at its next beat', async () => {
    const { sent, redis, r, members } = relayedOverFakeRedis(['mine']);
    r.setPresence('x', members[0] as RoomMember, 0, [{ anchor: 0, head: 0 }]);
    r.start();
    await waitFor('a beat', () => sent.length > 0);
    sent.length = 0;
    redis.keyAlive = false;
    const again = JSON.stringify(caretAtStart('mine'));
    await waitFor('its presence sent again', () => sent.some(([, m]) => JSON.stringify(m) === again), 2000, () => JSON.stringify(sent));
  });

  it('a departure or presence whose relay failed (Redis unreachable) is relayed once Redis answers again: no ghost cursor elsewhere', async () => {
    const { sent, redis, r, members } = relayedOverFakeRedis(['leaving', 'staying']);
    const leaving = members[0] as RoomMember;
    const staying = members[1] as RoomMember;
    r.setPresence('x', leaving, 0, [{ anchor: 0, head: 0 }]);
    r.start();
    redis.reachable = false;
    r.setPresence('x', staying, 0, [{ anchor: 0, head: 0 }]);
    r.leave('x', leaving);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sent.filter(([, m]) => m[0] === 'l')).toEqual([]);
    redis.reachable = true;
    await waitFor(
      'the departure and the presence relayed',
      () =>
        sent.some(([, m]) => JSON.stringify(m) === JSON.stringify(['l', 'here', 'x', 'leaving'])) &&
        sent.some(([, m]) => JSON.stringify(m) === JSON.stringify(caretAtStart('staying'))),
      2000,
      () => JSON.stringify(sent),
    );
  });

  it('a departure not relayed yet is not relayed once the same connection is back in the room: its cursor is not removed elsewhere', async () => {
    const { sent, redis, r, members } = relayedOverFakeRedis(['c1']);
    const session = members[0] as RoomMember;
    r.setPresence('x', session, 0, [{ anchor: 0, head: 0 }]);
    r.start();
    redis.reachable = false;
    r.leave('x', session);
    await new Promise((resolve) => setTimeout(resolve, 30));
    redis.reachable = true;
    r.join('x', session);
    r.setPresence('x', session, 0, [{ anchor: 0, head: 0 }]);
    await waitFor('a few beats', () => sent.filter(([, m]) => m[0] === 'p').length >= 2, 2000, () => JSON.stringify(sent));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sent.filter(([, m]) => m[0] === 'l')).toEqual([]);
  });

  it("a presence that arrives while another server's heartbeat is being checked is kept, though the answer says the key had lapsed (that server is back, and sent it again)", async () => {
    let answer!: (alive: boolean) => void;
    const redis: FakeRedis = { keyAlive: true, reachable: true, isAlive: () => new Promise<boolean>((resolve) => (answer = resolve)) };
    const r = relayed([], [], { heartbeat: 10, ttl: 60 }, redis);
    r.listen('x');
    const m = opened(r, 'm', 0);
    r.receive(presence('before', 0, 0));
    await new Promise((resolve) => setTimeout(resolve, 5)); // times here are in ms
    r.start();
    await waitFor('the heartbeat check under way', () => answer !== undefined);
    await new Promise((resolve) => setTimeout(resolve, 5));
    r.receive(presence('again', 0, 1));
    answer(false);
    await waitFor('the presence from before the check dropped', () => !m.shown.has('before'), 2000, () => JSON.stringify([...m.shown]));
    expect([...m.shown.keys()]).toEqual(['again']);
  });

  it('a presence waits for the room to know the version, and is then moved through the ops since it was made', () => {
    const history = [record(1)];
    const r = relayed([], history);
    r.listen('x');
    const m = member('m');
    r.join('x', m); // the room's version is not known until the open says it
    r.receive(presence('u1', 0, 0));
    expect(m.shown.has('u1')).toBe(false);
    r.observe('x', 1);
    expect(m.shown.get('u1')).toEqual({ v: 1, selection: [{ anchor: 2, head: 2 }] });
  });
});
