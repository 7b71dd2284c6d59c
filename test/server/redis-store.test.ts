/**
 * RedisStore beyond the shared contract (`store-contract.test.ts` runs that): its keys (an
 * injective encoding of document ids, one hash tag per document), appends from two processes'
 * worth of connections racing on one document, the epoch of a document whose keys vanished,
 * and the integrity checks of what it reads. The Redis tests use the Redis of
 * `test/support/redis.ts` under prefixes of their own, and are skipped without it (failing
 * with CI=true).
 */
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Component } from '../../src/ot/index.js';
import { EMPTY_CHECKSUM, chainChecksum } from '../../src/protocol/checksum.js';
import { StorageCorruptError, verifyLoaded } from '../../src/server/integrity.js';
import { checkPrefix, documentKeys, encodeDocId, storeKeys } from '../../src/server/redis-keys.js';
import { PINNED_EPOCH_MS, RedisStore, decodeHint } from '../../src/server/redis-store.js';
import { type OpRecord, VersionConflictError } from '../../src/server/store.js';
import { IN_CI, REDIS_URL, RUN_PREFIX, connectRedis, deleteKeys, keysUnder, prefixFor, redisUnreachable } from '../support/redis.js';
import { sleep, waitFor, within } from '../support/wait.js';
import { RedisFanout } from '../../src/server/redis-fanout.js';
import { type RefreshNews, Sequencer } from '../../src/server/sequencer.js';
import { HeldDocuments } from '../support/held-documents.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { APPEND, CARRIED_OPS_BYTES, CONFLICT_OPS } from '../../src/server/redis-scripts.js';

/** Any string of UTF-16 code units, lone surrogates included, and the awkward ones by name. */
const anyId = fc.oneof(
  fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 12 }).map((units) => String.fromCharCode(...units)),
  fc.string(),
  fc.constantFrom('', '\uD800', '\uDC00', '\uFFFD', 'a{b}c', 'x:y', '{', '}', '{}', 'd'),
);

/** The hash tag of a key, as Redis Cluster takes it: from the first `{` to the next `}`, if not empty. */
function hashTag(key: string): string | undefined {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : undefined;
}

describe('RedisStore keys', () => {
  it('distinct document ids have distinct keys, byte for byte as ioredis sends them (UTF-8)', () => {
    fc.assert(
      fc.property(anyId, anyId, fc.constantFrom('otter:', '', 'a:b:'), (a, b, prefix) => {
        fc.pre(a !== b);
        const ka = Object.values(documentKeys(prefix, a)).map((k) => Buffer.from(k, 'utf8').toString('hex'));
        const kb = Object.values(documentKeys(prefix, b)).map((k) => Buffer.from(k, 'utf8').toString('hex'));
        const store = Object.values(storeKeys(prefix)).map((k) => Buffer.from(k, 'utf8').toString('hex'));
        expect(new Set([...ka, ...kb, ...store]).size).toBe(ka.length + kb.length + store.length);
      }),
      { numRuns: 2000 },
    );
  });

  it('all keys of a document share one non-empty hash tag, its own', () => {
    fc.assert(
      fc.property(anyId, anyId, (a, b) => {
        const tags = new Set(Object.values(documentKeys('otter:', a)).map(hashTag));
        expect(tags.size).toBe(1);
        const [tag] = tags;
        expect(tag).toBe(encodeDocId(a));
        expect(tag).toMatch(/^[A-Za-z0-9_-]+$/);
        if (a !== b) expect(hashTag(documentKeys('otter:', b).meta)).not.toBe(tag);
      }),
      { numRuns: 1000 },
    );
  });

  it('tells apart the ids that UTF-8 would merge or that look like key syntax', () => {
    const ids = ['\uD800', '\uDC00', '\uFFFD', '\uD800\uDC00', '\uDC00\uD800', 'a{b}c', 'x:y', 'x', 'y', ''];
    // ioredis would send the first three as the same bytes.
    expect(Buffer.from('\uD800').equals(Buffer.from('\uFFFD'))).toBe(true);
    const metas = ids.map((id) => Buffer.from(documentKeys('otter:', id).meta).toString('hex'));
    expect(new Set(metas).size).toBe(ids.length);
  });

  it('refuses a prefix that would hold the hash tag', () => {
    expect(() => checkPrefix('otter{x}:')).toThrow(RangeError);
    expect(() => new RedisStore(REDIS_URL, { prefix: 'a}' })).toThrow(RangeError);
    expect(() => checkPrefix('otter:')).not.toThrow();
  });

  it('refuses Cluster seeds that are none, not Redis URLs, or name a database other than 0, before connecting', () => {
    for (const cluster of [[], ['http://127.0.0.1:7000'], ['redis://127.0.0.1:7000', ''], ['redis://127.0.0.1:7000/3'], ['redis://']]) {
      expect(() => new RedisStore({ cluster }), JSON.stringify(cluster)).toThrow(RangeError);
    }
  });

  it('refuses a Sentinel target without Sentinels, with one that is not a Redis URL, or a master URL whose path is not a database number, before connecting', () => {
    const cases = [
      { sentinels: [], master: 'redis://group' },
      { sentinels: ['redis://127.0.0.1:26379', 'tcp://127.0.0.1:26380'], master: 'redis://group' },
      { sentinels: ['redis://127.0.0.1:26379'], master: 'group' },
      { sentinels: ['redis://127.0.0.1:26379'], master: 'redis://group/one' },
    ];
    for (const target of cases) expect(() => new RedisStore(target), JSON.stringify(target)).toThrow(RangeError);
  });
});

describe('change hints', () => {
  it('carry the epoch; hints without one (four fields) are still read; anything else is not a hint', () => {
    expect(decodeHint('["d",3,"o",5,"e"]')).toEqual({ docId: 'd', head: 3, origin: 'o', at: 5, epoch: 'e' });
    expect(decodeHint('["d",3,"o",5]')).toEqual({ docId: 'd', head: 3, origin: 'o', at: 5 });
    for (const bad of ['["d",3,"o",5,7]', '["d",3,"o"]', '["d",3,"o",5,"e",1]', '{}', 'not json', '["d",3\n,"o",5]']) expect(decodeHint(bad)).toBeUndefined();
  });

  it('carry the ops of a small append as stored, after a line feed; rows that are not op records are left out, the rest of the hint kept; a reader skips decoding its own', () => {
    const text = '["d",2,"o",5,"e"]\n[[1,["a"],"c",1,7],[2,[1,"b"],"c",2,9,"ann"]]';
    expect(decodeHint(text)).toEqual({
      docId: 'd',
      head: 2,
      origin: 'o',
      at: 5,
      epoch: 'e',
      ops: [
        { version: 1, op: ['a'], clientId: 'c', seq: 1, checksum: 7 },
        { version: 2, op: [1, 'b'], clientId: 'c', seq: 2, checksum: 9, author: 'ann' },
      ],
    });
    expect(decodeHint('["d",2,"o",5,"e"]\n[[1,"a","c",1,7]]')).toEqual({ docId: 'd', head: 2, origin: 'o', at: 5, epoch: 'e' });
    expect(decodeHint('["d",2,"o",5,"e"]\nnot json')).toEqual({ docId: 'd', head: 2, origin: 'o', at: 5, epoch: 'e' });
    expect(decodeHint(text, 'o')).toEqual({ docId: 'd', head: 2, origin: 'o', at: 5, epoch: 'e' });
    expect(decodeHint(text, 'another')?.ops).toHaveLength(2);
  });
});

const redisReason = await redisUnreachable();
const skipRedis = redisReason !== undefined && !IN_CI;
if (skipRedis) {
  console.warn(`[redis-store.test] the RedisStore tests on Redis are SKIPPED: ${redisReason} (start redis-server or set OTTER_REDIS_URL)`);
}

/** The record of `version` that inserts `char` at the start of a document of `version - 1` characters. */
function recordOf(version: number, char: string, clientId: string, seq: number, before: number): OpRecord {
  const op: Component[] = version > 1 ? [char, version - 1] : [char];
  return { version, op, clientId, seq, checksum: chainChecksum(before, op) };
}

describe.skipIf(skipRedis)('RedisStore on Redis', () => {
  let admin: Redis;
  const clients: Redis[] = [];
  const stores: RedisStore[] = [];

  /** A store over a connection of its own, under `prefix`. */
  function open(prefix: string): RedisStore {
    const client = connectRedis();
    clients.push(client);
    const store = new RedisStore(client, { prefix });
    stores.push(store);
    return store;
  }

  beforeAll(() => {
    if (redisReason !== undefined) throw new Error(`Redis is required with CI=true: ${redisReason}`);
    admin = connectRedis();
  });

  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const c of clients.splice(0)) c.disconnect();
  });

  afterAll(async () => {
    if (admin === undefined) return;
    await deleteKeys(admin, RUN_PREFIX);
    admin.disconnect();
  });

  it('the fan-out check: a held document Redis lost (no epoch, another, a head behind, or the held head with another checksum) is refreshed with the epoch Redis has; one whose head is ahead is read; one in step is left alone', async () => {
    const prefix = prefixFor('check');
    const store = open(prefix);
    await store.append('ahead', 0, [recordOf(1, 'a', 'c', 1, EMPTY_CHECKSUM)], [], { epoch: 'e1' });
    await store.append('behind', 0, [recordOf(1, 'b', 'c', 1, EMPTY_CHECKSUM)], [], { epoch: 'e1' });
    await store.append('moved', 0, [recordOf(1, 'm', 'c', 1, EMPTY_CHECKSUM)], [], { epoch: 'e2' });
    await store.append('same', 0, [recordOf(1, 's', 'c', 1, EMPTY_CHECKSUM)], [], { epoch: 'e1' });
    // Written again up to the held head, by another writer after a rollback: another version 1.
    await store.append('rewritten', 0, [recordOf(1, 'r', 'c', 1, EMPTY_CHECKSUM)], [], { epoch: 'e1' });
    const sum = (char: string): number => recordOf(1, char, 'c', 1, EMPTY_CHECKSUM).checksum;
    const held: Record<string, { epoch: string; committed: number; checksum: number }> = {
      gone: { epoch: 'e1', committed: 3, checksum: 1 },
      ahead: { epoch: 'e1', committed: 0, checksum: EMPTY_CHECKSUM },
      behind: { epoch: 'e1', committed: 2, checksum: 2 },
      moved: { epoch: 'e1', committed: 1, checksum: sum('m') },
      same: { epoch: 'e1', committed: 1, checksum: sum('s') },
      rewritten: { epoch: 'e1', committed: 1, checksum: sum('x') },
    };
    const refreshed: Array<[string, string | undefined]> = [];
    const sequencer = {
      documents: () => Object.keys(held),
      held: (docId: string) => held[docId],
      refresh: (docId: string, news: RefreshNews = {}) => {
        refreshed.push([docId, news.epoch]);
        return Promise.resolve(0);
      },
      watchDocuments: () => () => true,
    };
    const fanout = new RedisFanout(store, sequencer, { checkInterval: 50 });
    try {
      // Once subscribed, the fan-out reads every held document once: then only the checks run.
      // ('same' is refreshed only then, so once it is, the subscription is done.)
      await waitFor('the refreshes after subscribing', () => refreshed.some(([d]) => d === 'same'), 5000, () => JSON.stringify(refreshed));
      refreshed.length = 0;
      await waitFor('a round of checks', () => new Set(refreshed.map(([d]) => d)).size >= 5, 5000, () => JSON.stringify(refreshed));
      await sleep(100);
    } finally {
      fanout.close();
    }
    const first = new Map<string, string | undefined>();
    for (const [d, e] of refreshed) if (!first.has(d)) first.set(d, e);
    expect(Object.fromEntries(first)).toEqual({ gone: '', ahead: undefined, behind: 'e1', moved: 'e2', rewritten: 'e1' });
  });

  it('the fan-out check: a held document never written whose pinned epoch expired (kept open over a day) is pinned again with the held epoch, not reloaded as lost', async () => {
    const prefix = prefixFor('check-pinned');
    const store = open(prefix);
    const { epoch } = await store.load('unwritten');
    // Another document's first append retires the instance id: a reload would pin another.
    await store.append('written', 0, [recordOf(1, 'w', 'c', 1, EMPTY_CHECKSUM)], [], { epoch: (await store.load('written')).epoch });
    await admin.del(documentKeys(prefix, 'unwritten').meta);
    const refreshed: Array<[string, RefreshNews]> = [];
    const sequencer = {
      documents: () => ['unwritten'],
      held: () => ({ epoch, committed: 0, checksum: EMPTY_CHECKSUM }),
      refresh: (docId: string, news: RefreshNews = {}) => {
        refreshed.push([docId, news]);
        return Promise.resolve(0);
      },
      watchDocuments: () => () => true,
    };
    const fanout = new RedisFanout(store, sequencer, { checkInterval: 50 });
    try {
      await waitFor('the epoch pinned again', async () => (await admin.hget(documentKeys(prefix, 'unwritten').meta, 'epoch')) === epoch, 5000);
      await sleep(200);
    } finally {
      fanout.close();
    }
    // Never told of another epoch (which would reload it and report a loss).
    expect(refreshed.filter(([, news]) => news.epoch !== undefined)).toEqual([]);
    expect((await store.load('unwritten')).epoch).toBe(epoch);
  });

  it("the fan-out hears the hints of the documents its sequencer holds and of no other: subscribed as one is held (then read once), unsubscribed as it is dropped", async () => {
    const prefix = prefixFor('held-hints');
    const mine = open(prefix);
    const writer = open(prefix);
    const docs = new HeldDocuments(['a']);
    const { refreshed } = docs;
    const fanout = new RedisFanout(mine, docs.sequencer, { checkInterval: 0 });
    const heads = new Map<string, number>();
    /** Another store appends one op to `docId`. */
    const appendTo = async (docId: string): Promise<void> => {
      const head = heads.get(docId) ?? 0;
      heads.set(docId, head + 1);
      await writer.append(docId, head, [recordOf(head + 1, 'x', 'w', head + 1, EMPTY_CHECKSUM)], [], { epoch: 'e1' });
    };
    const seen = (docId: string, withOps: boolean): boolean => refreshed.some(([d, o]) => d === docId && o === withOps);
    try {
      await waitFor('the first subscription', () => seen('a', false), 5000, () => JSON.stringify(refreshed));
      await appendTo('a');
      await waitFor("a's hint", () => seen('a', true), 5000, () => JSON.stringify(refreshed));
      await appendTo('b');
      // Held now: subscribed, then read once.
      docs.hold('c');
      await waitFor("c's read after its subscription", () => seen('c', false), 5000, () => JSON.stringify(refreshed));
      await appendTo('c');
      await waitFor("c's hint", () => seen('c', true), 5000, () => JSON.stringify(refreshed));
      // Dropped: no more hints of c.
      docs.drop('c');
      const before = refreshed.length;
      await appendTo('c');
      await appendTo('a');
      await waitFor("a's second hint", () => refreshed.slice(before).some(([d]) => d === 'a'), 5000, () => JSON.stringify(refreshed));
      expect(refreshed.slice(before)).toEqual([['a', true]]);
      expect(refreshed.filter(([d]) => d === 'b')).toEqual([]);
      expect(await admin.pubsub('NUMSUB', mine.hintChannel('b'), mine.hintChannel('c'), mine.hintChannel('a'))).toEqual([
        mine.hintChannel('b'),
        0,
        mine.hintChannel('c'),
        0,
        mine.hintChannel('a'),
        1,
      ]);
    } finally {
      fanout.close();
    }
    expect(docs.watchers).toEqual([]);
  });

  it("the fan-out hears the presences of the documents its sequencer holds and of no other: each document's resent once subscribed, forgotten once dropped", async () => {
    const prefix = prefixFor('held-presence');
    const mine = open(prefix);
    const other = open(prefix);
    const docs = new HeldDocuments(['a']);
    const heard: string[] = [];
    const presence = {
      receive: (text: string) => heard.push(text),
      resync: (docId?: string) => heard.push(`resync ${docId ?? 'all'}`),
      forget: (docId: string) => heard.push(`forget ${docId}`),
      listen: (docId: string) => heard.push(`listen ${docId}`),
    };
    const fanout = new RedisFanout(mine, docs.sequencer, { checkInterval: 0, presence });
    try {
      await waitFor('the first subscription', () => heard.includes('resync all'), 5000, () => JSON.stringify(heard));
      await other.publishPresence('a', 'on a');
      await other.publishPresence('b', 'on b');
      await other.publishPresence(undefined, 'to all');
      await waitFor('the message to all', () => heard.includes('to all'), 5000, () => JSON.stringify(heard));
      docs.hold('c');
      await waitFor("c's presences asked for", () => heard.includes('resync c'), 5000, () => JSON.stringify(heard));
      await other.publishPresence('c', 'on c');
      await waitFor('the presence on c', () => heard.includes('on c'), 5000, () => JSON.stringify(heard));
      docs.drop('c');
      await waitFor("c's channels given up", async () => Number(((await admin.pubsub('NUMSUB', mine.presenceChannel('c'))) as unknown[])[1]) === 0, 5000);
      await other.publishPresence('c', 'on c again');
      await other.publishPresence('a', 'on a again');
      await waitFor('the second presence on a', () => heard.includes('on a again'), 5000, () => JSON.stringify(heard));
      expect(heard).toEqual(['listen a', 'resync all', 'on a', 'to all', 'listen c', 'resync c', 'on c', 'forget c', 'on a again']);
    } finally {
      fanout.close();
    }
  });

  it('a subscription made long after it was asked for (its path stalled, not broken): the document is read again once it is made, so an op committed meanwhile is not missed', async () => {
    const prefix = prefixFor('late-subscription');
    const target = new URL(REDIS_URL);
    const proxy = await TcpProxy.start(Number(target.port || 6379));
    try {
      // Node a's connections go through the proxy; b's do not.
      const a = new RedisStore(`redis://127.0.0.1:${proxy.port}${target.pathname}`, { prefix });
      const b = open(prefix);
      const seqA = new Sequencer(a, { idleTimeout: 0 });
      const seqB = new Sequencer(b, { idleTimeout: 0 });
      const published: number[] = [];
      seqA.onApplied((_d, r) => published.push(r.version));
      let subscribed = 0;
      const fanout = new RedisFanout(a, seqA, { checkInterval: 0, telemetry: { remoteOpsPublished: () => {}, subscribed: () => void subscribed++ } });
      try {
        await waitFor('the first subscription', () => subscribed === 1, 5000);
        await seqB.submit({ docId: 'd', clientId: 'b', seq: 1, baseVersion: 0, op: ['x'] });
        // From now on the subscriber's path stalls at its next SUBSCRIBE (a's other connection passes).
        proxy.holdIf = (chunk) => /\$9\r\nsubscribe\r\n/i.test(chunk.toString('latin1'));
        await seqA.open('d', 'a');
        await sleep(1500); // past SUBSCRIBE_WAIT_MS: read once without the subscription
        await seqB.submit({ docId: 'd', clientId: 'b', seq: 2, baseVersion: 1, op: [1, 'y'] }); // its hint reaches nobody on a
        await sleep(200);
        expect(published).toEqual([]);
        proxy.release();
        await waitFor('the op committed while the subscription waited', () => published.includes(2), 5000, () => JSON.stringify(published));
      } finally {
        fanout.close();
        await seqA.close();
        await seqB.close();
        await a.close(); // before its path goes
      }
    } finally {
      await proxy.close();
    }
  });

  it('the fan-out subscribes however many documents are held (150,000: more channels than one call can spread)', async () => {
    const prefix = prefixFor('many-held');
    const store = open(prefix);
    const docs = new HeldDocuments(Array.from({ length: 150_000 }, (_, i) => `doc${i}`));
    let subscribed = 0;
    const fanout = new RedisFanout(store, docs.sequencer, { checkInterval: 0, telemetry: { remoteOpsPublished: () => {}, subscribed: () => void subscribed++ } });
    try {
      await waitFor('the subscription', () => subscribed === 1, 20_000);
      const counts = (await admin.pubsub('NUMSUB', store.hintChannel('doc0'), store.hintChannel('doc149999'))) as unknown[];
      expect([counts[1], counts[3]]).toEqual([1, 1]);
    } finally {
      fanout.close();
    }
  }, 30_000);

  it("a document dropped while the fan-out's connection is down, its subscription in flight, is not subscribed once the connection is back", async () => {
    const prefix = prefixFor('dropped-while-down');
    const store = open(prefix);
    const docs = new HeldDocuments();
    let subscribed = 0;
    const fanout = new RedisFanout(store, docs.sequencer, { checkInterval: 0, telemetry: { remoteOpsPublished: () => {}, subscribed: () => void subscribed++ } });
    // The fan-out's own connection, to cut it at the exact moment (a CLIENT KILL would come too late).
    const connection = (fanout as unknown as { connection: Redis }).connection;
    try {
      await waitFor('the first subscription', () => subscribed === 1, 5000);
      docs.hold('f');
      connection.stream.destroy();
      await new Promise((resolve) => connection.once('close', resolve));
      docs.drop('f');
      await waitFor('the subscription restored', () => subscribed === 2, 10_000);
      await sleep(100);
      expect(((await admin.pubsub('NUMSUB', store.hintChannel('f'))) as unknown[])[1]).toBe(0);
    } finally {
      fanout.close();
    }
  });

  it('an append whose hint cannot be published (a Redis without the command) still lands and says so: Redis would not undo its writes', async () => {
    const prefix = prefixFor('publish-fails');
    const client = connectRedis();
    clients.push(client);
    const k = documentKeys(prefix, 'd');
    const reply = await APPEND.run(client, [k.meta, k.ops, k.marks, k.recoveries], ['0', '1', 'e1', 'NOSUCHPUBLISH', k.hints, 'hint', '', '', '1', '1', 'member', '0', '0']);
    expect(reply).toEqual([1, expect.stringMatching(/unknown .*command/i)]);
    expect(await admin.hget(k.meta, 'head')).toBe('1');
    expect(await admin.zcard(k.ops)).toBe(1);
  });

  it("an append publishes its hint on its document's channel, with its ops when they are small and without them past CARRIED_OPS_BYTES", async () => {
    const prefix = prefixFor('hints');
    const store = open(prefix);
    const listener = connectRedis();
    clients.push(listener);
    const heard: string[] = [];
    listener.on('message', (channel: string, message: string) => heard.push(`${channel === store.hintChannel('d') ? '' : `on ${channel}: `}${message}`));
    // Another document's channel hears nothing of d.
    await listener.subscribe(store.hintChannel('d'), store.hintChannel('other'));
    const small = recordOf(1, 'a', 'c', 1, EMPTY_CHECKSUM);
    await store.append('d', 0, [small], [], { epoch: 'e1' });
    const bigOp: Component[] = [1, 'x'.repeat(CARRIED_OPS_BYTES)];
    const big = { version: 2, op: bigOp, clientId: 'c', seq: 2, checksum: chainChecksum(small.checksum, bigOp) };
    await store.append('d', 1, [big], [], { epoch: 'e1' });
    await waitFor('two hints', () => heard.length === 2, 5000, () => JSON.stringify(heard.map((h) => h.slice(0, 80))));
    const [first, second] = heard.map((h) => decodeHint(h));
    expect(first).toMatchObject({ docId: 'd', head: 1, origin: store.origin, epoch: 'e1', ops: [small] });
    expect(second).toMatchObject({ docId: 'd', head: 2, origin: store.origin, epoch: 'e1' });
    expect(second?.ops).toBeUndefined();
  });

  it('getMarks under an epoch: the marks when Redis has the document under it; VersionConflictError when it has another, or lost it', async () => {
    const prefix = prefixFor('marks-epoch');
    const store = open(prefix);
    const mark = { clientId: 'c', seq: 1, version: 1, baseVersion: 0, fingerprint: 'fp' };
    await store.append('d', 0, [recordOf(1, 'a', 'c', 1, EMPTY_CHECKSUM)], [mark], { epoch: 'e1' });
    expect(await store.getMarks('d', ['c', 'other'], 'e1')).toEqual([mark]);
    await expect(store.getMarks('d', ['c'], 'e0')).rejects.toBeInstanceOf(VersionConflictError);
    await admin.del(documentKeys(prefix, 'd').meta);
    await expect(store.getMarks('d', ['c'], 'e1')).rejects.toThrow(/has epoch \(none\) in Redis, not e1/);
    // Without an epoch, what is stored is read as it is.
    expect(await store.getMarks('d', ['c'])).toHaveLength(1);
  });

  it('keeps apart documents whose ids UTF-8 would merge, in Redis', async () => {
    const prefix = prefixFor('ids');
    const store = open(prefix);
    const ids = ['\uD800', '\uDC00', '\uFFFD', 'a{b}c', 'x:y'];
    for (const [i, id] of ids.entries()) {
      await store.append(id, 0, [recordOf(1, String.fromCharCode(65 + i), 'c', 1, EMPTY_CHECKSUM)], [], { epoch: `e${i}` });
    }
    for (const [i, id] of ids.entries()) {
      const loaded = await store.load(id);
      expect(loaded.epoch).toBe(`e${i}`);
      expect(loaded.ops.map((r) => r.op)).toEqual([[String.fromCharCode(65 + i)]]);
    }
    // Every key of each document is under its own hash tag.
    const keys = await keysUnder(admin, prefix);
    const docKeys = keys.filter((k) => k.includes('{'));
    expect(new Set(docKeys.map(hashTag))).toEqual(new Set(ids.map(encodeDocId)));
  });

  it('lets exactly one of two stores win each version when both append on the same head', async () => {
    const prefix = prefixFor('race');
    const [a, b] = [open(prefix), open(prefix)] as [RedisStore, RedisStore];
    const { epoch } = await a.load('doc');
    let checksum = EMPTY_CHECKSUM;
    const seqs = { A: 0, B: 0 };
    /** Writer `name`'s append of version `v` on head v - 1, with its next seq and its mark. */
    const attempt = (store: RedisStore, name: 'A' | 'B', v: number): Promise<void> => {
      const seq = seqs[name] + 1;
      const mark = { clientId: name, seq, version: v, baseVersion: v - 1, fingerprint: name };
      return store.append('doc', v - 1, [recordOf(v, name.toLowerCase(), name, seq, checksum)], [mark], { epoch });
    };
    const rounds = 40;
    for (let v = 1; v <= rounds; v++) {
      const results = await within(
        Promise.allSettled([attempt(a, 'A', v), attempt(b, 'B', v)]),
        10_000,
        `the appends of version ${v}`,
      );
      const won = results.findIndex((r) => r.status === 'fulfilled');
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const lost = results[1 - won] as PromiseRejectedResult;
      expect(lost.reason).toBeInstanceOf(VersionConflictError);
      expect((lost.reason as VersionConflictError).actual).toBe(v);
      const winner = won === 0 ? 'A' : 'B';
      seqs[winner]++;
      const record = recordOf(v, winner.toLowerCase(), winner, seqs[winner], checksum);
      // The refusal carries what the winner wrote: the loser needs no read to catch up.
      expect((lost.reason as VersionConflictError).committed).toEqual([record]);
      checksum = record.checksum;
    }
    const loaded = await b.load('doc');
    expect(loaded.head).toBe(rounds);
    expect(loaded.ops.map((r) => r.version)).toEqual(Array.from({ length: rounds }, (_, i) => i + 1));
    expect(() => verifyLoaded('doc', loaded)).not.toThrow();
    const marks = await a.getMarks('doc', ['A', 'B']);
    for (const m of marks) expect(m.seq).toBe(seqs[m.clientId as 'A' | 'B']);
    expect(marks.reduce((n, m) => n + m.seq, 0)).toBe(rounds);
  });

  it('a refused append carries the ops past its expected head (at most CONFLICT_OPS, in version order), and none under another epoch', async () => {
    const prefix = prefixFor('missed');
    const [a, b] = [open(prefix), open(prefix)] as [RedisStore, RedisStore];
    const { epoch } = await a.load('doc');
    const records: OpRecord[] = [];
    let checksum = EMPTY_CHECKSUM;
    for (let v = 1; v <= CONFLICT_OPS + 6; v++) {
      const r = recordOf(v, 'a', 'A', v, checksum);
      await a.append('doc', v - 1, [r], [], { epoch });
      records.push(r);
      checksum = r.checksum;
    }
    const late = (head: number, e: string): Promise<VersionConflictError> =>
      b.append('doc', head, [recordOf(head + 1, 'b', 'B', 1, EMPTY_CHECKSUM)], [], { epoch: e }).then(
        () => {
          throw new Error('the late append landed');
        },
        (err: unknown) => err as VersionConflictError,
      );
    const behindBy3 = await late(CONFLICT_OPS + 3, epoch);
    expect(behindBy3).toMatchObject({ expected: CONFLICT_OPS + 3, actual: CONFLICT_OPS + 6 });
    expect(behindBy3.committed).toEqual(records.slice(CONFLICT_OPS + 3));
    const farBehind = await late(0, epoch);
    expect(farBehind.committed).toEqual(records.slice(0, CONFLICT_OPS));
    // Another epoch: a lost or re-made document, not a race; nothing of it is handed over.
    const otherEpoch = await late(2, 'another');
    expect(otherEpoch).toBeInstanceOf(VersionConflictError);
    expect(otherEpoch.committed).toBeUndefined();
    expect((await b.load('doc')).head).toBe(CONFLICT_OPS + 6);
  });

  it('leaves no gap and no doubled version when two stores append as fast as they can', async () => {
    const prefix = prefixFor('free');
    const target = 60;
    const writer = async (store: RedisStore, name: string): Promise<number> => {
      let mine = 0;
      for (let attempt = 0; attempt < 2000; attempt++) {
        const loaded = await store.load('doc');
        if (loaded.head >= target) return mine;
        const last = loaded.ops[loaded.ops.length - 1];
        const v = loaded.head + 1;
        const record = recordOf(v, name, name, mine + 1, last?.checksum ?? EMPTY_CHECKSUM);
        const mark = { clientId: name, seq: mine + 1, version: v, baseVersion: v - 1, fingerprint: name };
        try {
          await store.append('doc', loaded.head, [record], [mark], { epoch: loaded.epoch });
          mine++;
        } catch (e) {
          expect(e).toBeInstanceOf(VersionConflictError);
        }
      }
      throw new Error(`${name} made no progress to version ${target}`);
    };
    const [x, y] = await within(Promise.all([writer(open(prefix), 'x'), writer(open(prefix), 'y')]), 20_000, 'both writers');
    const loaded = await open(prefix).load('doc');
    expect(loaded.head).toBe(target);
    expect(loaded.ops.map((r) => r.version)).toEqual(Array.from({ length: target }, (_, i) => i + 1));
    expect(() => verifyLoaded('doc', loaded)).not.toThrow();
    expect(x + y).toBe(target);
    for (const [name, count] of [['x', x], ['y', y]] as const) {
      expect(loaded.ops.filter((r) => r.clientId === name).map((r) => r.seq)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    }
  });

  it('gives a document whose keys all vanished (as after FLUSHALL) a new epoch', async () => {
    const prefix = prefixFor('flush');
    const store = open(prefix);
    const first = await store.load('doc');
    await store.append('doc', 0, [recordOf(1, 'a', 'c', 1, EMPTY_CHECKSUM)], [], { epoch: first.epoch });
    expect((await store.load('doc')).epoch).toBe(first.epoch);
    await deleteKeys(admin, prefix);
    const after = await store.load('doc');
    expect(after.head).toBe(0);
    expect(after.ops).toEqual([]);
    expect(after.epoch).not.toBe(first.epoch);
    // Another store on the same data gives new documents the same (new) epoch.
    expect((await open(prefix).load('other')).epoch).toBe(after.epoch);
  });

  it('gives a document whose own keys vanished (the store-wide keys kept) a new epoch', async () => {
    const prefix = prefixFor('evict');
    const store = open(prefix);
    const first = await store.load('doc');
    expect((await store.load('never-written')).epoch).toBe(first.epoch);
    await store.append('doc', 0, [recordOf(1, 'a', 'c', 1, EMPTY_CHECKSUM)], [], { epoch: first.epoch });
    // The epoch the document stored is no longer the one of new documents; one loaded before
    // keeps the epoch it was loaded with (every server agrees on it).
    expect((await store.load('never-loaded')).epoch).not.toBe(first.epoch);
    expect((await store.load('never-written')).epoch).toBe(first.epoch);
    await admin.del(...Object.values(documentKeys(prefix, 'doc')));
    expect(await admin.exists(storeKeys(prefix).instance)).toBe(1);
    const after = await store.load('doc');
    expect(after.head).toBe(0);
    expect(after.epoch).not.toBe(first.epoch);
  });

  it('an epoch pinned for a document only read expires (reading ids nobody writes leaves no key for good); its first append keeps it for good', async () => {
    const prefix = prefixFor('pinned');
    const store = open(prefix);
    const { epoch } = await store.load('read-only');
    const meta = documentKeys(prefix, 'read-only').meta;
    const ttl = await admin.pttl(meta);
    expect(ttl).toBeGreaterThan(PINNED_EPOCH_MS - 60_000);
    expect(ttl).toBeLessThanOrEqual(PINNED_EPOCH_MS);
    // Loaded again: the same epoch, and the expiry is not pushed back.
    expect((await store.load('read-only')).epoch).toBe(epoch);
    expect(await admin.pttl(meta)).toBeLessThanOrEqual(ttl);
    await store.append('read-only', 0, [recordOf(1, 'a', 'c', 1, EMPTY_CHECKSUM)], [], { epoch });
    expect(await admin.pttl(meta)).toBe(-1);
    // A server without this rule wrote the first op (its append kept the expiry): the next ends it.
    await admin.pexpire(meta, PINNED_EPOCH_MS);
    const r1 = recordOf(1, 'a', 'c', 1, EMPTY_CHECKSUM);
    await store.append('read-only', 1, [recordOf(2, 'b', 'c', 2, r1.checksum)], [], { epoch });
    expect(await admin.pttl(meta)).toBe(-1);
    // Pinned again with the epoch a server holds: kept if none is stored, else the stored one.
    await admin.del(meta);
    expect(await store.pin('read-only', 'held-epoch')).toBe('held-epoch');
    expect(await store.pin('read-only', 'other')).toBe('held-epoch');
    expect(await admin.pttl(meta)).toBeGreaterThan(0);
    // Expired before any write: the document loads as new, with the epoch of new documents.
    await store.load('gone');
    await admin.pexpire(documentKeys(prefix, 'gone').meta, 1);
    await sleep(20);
    expect(await admin.exists(documentKeys(prefix, 'gone').meta)).toBe(0);
    expect((await store.load('gone')).head).toBe(0);
  });

  it('refuses a snapshot that does not match its hash, and an op stored past the head', async () => {
    const prefix = prefixFor('integrity');
    const store = open(prefix);
    const { epoch } = await store.load('doc');
    const r1 = recordOf(1, 'a', 'c', 1, EMPTY_CHECKSUM);
    await store.append('doc', 0, [r1], [], { epoch });
    await store.putSnapshot('doc', { version: 1, text: 'a', checksum: r1.checksum });
    const keys = documentKeys(prefix, 'doc');
    const stored = JSON.parse((await admin.hget(keys.snapshotTexts, '1')) as string) as { text: string };
    await admin.hset(keys.snapshotTexts, '1', JSON.stringify({ ...stored, text: 'b' }));
    await expect(store.load('doc')).rejects.toBeInstanceOf(StorageCorruptError);
    await expect(store.getSnapshot('doc')).rejects.toBeInstanceOf(StorageCorruptError);
    await admin.zadd(keys.ops, 2, JSON.stringify([2, ['x', 1], 'ghost', 1, 5]));
    const r2 = recordOf(2, 'b', 'c', 2, r1.checksum);
    await expect(store.append('doc', 1, [r2], [], { epoch })).rejects.toBeInstanceOf(StorageCorruptError);
    expect(await admin.zcard(keys.ops)).toBe(2);
  });

  it('leaves a client it was given open when closed, and refuses appends after', async () => {
    const client = connectRedis();
    clients.push(client);
    const store = new RedisStore(client, { prefix: prefixFor('close') });
    await store.close();
    await expect(store.append('doc', 0, [], [], { epoch: 'e' })).rejects.toThrow(/closed/);
    await expect(store.ping()).rejects.toThrow(/closed/);
    expect(await client.ping()).toBe('PONG');
  });
});
