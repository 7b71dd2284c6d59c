/**
 * RedisStore and its fan-out on a real Redis Cluster (three masters of the test's own, see
 * `test/support/redis-cluster.ts`), through ioredis `Cluster` clients:
 * - the store contract passes (every script touches the keys of one document, one slot);
 * - the keys of each document share one slot, and documents spread over the masters;
 * - two sequencers, each over its own Cluster client with a fan-out of its own (as two nodes),
 *   editing documents that live on different masters at once: each learns the other's ops from
 *   the hints alone (the periodic check is off), every op is published once and in version
 *   order on both, and both end with the text Redis holds; the hints travel on one shard
 *   channel per document, subscribed on its slot's master only;
 * - two servers (`createServer` over a RedisStore on a Cluster client each) with real clients
 *   typing on both into two documents: every client converges, every acknowledged marker is in
 *   the text exactly once, and a selection made on one server is shown on the other.
 * Skipped without redis-server and redis-cli, saying so; with CI=true it fails instead.
 */
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Component, apply } from '../../src/ot/index.js';
import { verifyLoaded } from '../../src/server/integrity.js';
import { RedisFanout } from '../../src/server/redis-fanout.js';
import { documentKeys } from '../../src/server/redis-keys.js';
import { RedisStore } from '../../src/server/redis-store.js';
import { Sequencer } from '../../src/server/sequencer.js';
import { HeldDocuments } from '../support/held-documents.js';
import type { OpRecord } from '../../src/server/store.js';
import { storeContract } from '../../src/server/store-contract.js';
import { HAVE_CLUSTER_TOOLS, RedisCluster } from '../support/redis-cluster.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { below, seededRandom } from '../support/random.js';
import { IN_CI } from '../support/redis.js';
import { sleep, waitFor, within } from '../support/wait.js';
import { Cleanup, headOf, markerCounts, newClient, randomEdit, startServer, waitConverged } from './helpers.js';
import type { OtterServer } from '../../src/server/index.js';
import { seedOf } from './redis-nodes.js';

const skip = !HAVE_CLUSTER_TOOLS && !IN_CI;
if (skip) console.warn('[redis-cluster.test] SKIPPED: redis-server and redis-cli are not both on PATH (install Redis to run it)');

describe.skipIf(skip)('RedisStore on a Redis Cluster of three masters', () => {
  const cleanup = new Cleanup();
  let cluster: RedisCluster;
  let admin: Cluster;
  const clients: Cluster[] = [];
  /** Connections to single nodes, disconnected after the test. */
  const nodeClients: Redis[] = [];
  let prefixes = 0;

  /** A Cluster client of its own, disconnected after the test. */
  function client(): Cluster {
    const c = cluster.client();
    clients.push(c);
    return c;
  }

  beforeAll(async () => {
    cluster = await RedisCluster.started(cleanup);
    admin = cluster.client();
    cleanup.add(() => admin.disconnect());
  }, 60_000);

  afterEach(() => {
    for (const c of [...clients.splice(0), ...nodeClients.splice(0)]) c.disconnect();
  });

  afterAll(async () => {
    await cleanup.run();
  });

  describe('the store contract', () => {
    storeContract({ describe, it, beforeEach, afterEach, expect }, 'over a Cluster client', async () => new RedisStore(client(), { prefix: `contract${++prefixes}:` }));
  });

  it('keeps every key of a document in one slot, and spreads documents over the masters', async () => {
    const store = new RedisStore(client(), { prefix: 'slots:' });
    const ids = Array.from({ length: 12 }, (_, i) => `doc-${i}`);
    const { epoch } = await store.load('doc-0');
    for (const id of ids) await store.append(id, 0, [{ version: 1, op: ['x'], clientId: 'c', seq: 1, checksum: 0 }], [], { epoch });
    const masters = new Set<string>();
    for (const id of ids) {
      const keys = Object.values(documentKeys('slots:', id));
      const slots = new Set(await Promise.all(keys.map((k) => admin.cluster('KEYSLOT', k))));
      expect(slots.size).toBe(1);
      const [slot] = slots;
      const owner = (admin.slots[slot as number] ?? [])[0];
      expect(owner).toBeDefined();
      masters.add(owner as string);
      expect((await store.load(id)).head).toBe(1);
    }
    expect(masters.size).toBeGreaterThan(1);
  });

  it('two nodes editing documents on different masters at once learn each other\'s ops from the hints alone: each op once, in order, texts equal to Redis', async () => {
    const seed = seedOf('redis-cluster.test', 'two nodes');
    const random = seededRandom(seed);
    const prefix = 'nodes:';
    const docs = ['alpha', 'beta', 'gamma', 'delta'];
    const nodes = [0, 1].map(() => {
      const store = new RedisStore(client(), { prefix });
      const sequencer = new Sequencer(store, { idleTimeout: 0 });
      const published = new Map<string, OpRecord[]>(docs.map((d) => [d, []]));
      sequencer.onApplied((docId, r) => published.get(docId)?.push(r));
      const node = { store, sequencer, published, subscribed: 0, fanout: undefined as RedisFanout | undefined };
      const telemetry = { remoteOpsPublished: () => {}, subscribed: () => void node.subscribed++ };
      node.fanout = new RedisFanout(store, sequencer, { checkInterval: 0, telemetry });
      return node;
    });
    try {
      // Both hold every document open, and listen, before anyone types.
      for (const [n, node] of nodes.entries()) for (const d of docs) await node.sequencer.open(d, `opener-${n}`);
      await waitFor('both fan-outs subscribed', () => nodes.every((node) => node.subscribed > 0), 10_000);
      /** Where each marker was typed. */
      const markers = new Map<string, string>();
      /** The last seq of each typist (one per node and document: seqs count per document). */
      const seqs = new Map<string, number>();
      const typing = nodes.map(async (node, n) => {
        for (let i = 1; i <= 60; i++) {
          const docId = docs[below(random, docs.length)] as string;
          const { version, text } = await node.sequencer.getSnapshot(docId);
          // Between markers, never inside one.
          const bounds = [0, ...[...text].flatMap((c, j) => (c === '>' ? [j + 1] : []))];
          const at = bounds[below(random, bounds.length)] as number;
          const marker = `<${n}.${i}>`;
          const op = [at, marker, text.length - at].filter((c) => c !== 0) as Component[];
          const clientId = `typist-${n}-${docId}`;
          const seq = (seqs.get(clientId) ?? 0) + 1;
          seqs.set(clientId, seq);
          await node.sequencer.submit({ docId, clientId, seq, baseVersion: version, op });
          markers.set(marker, docId);
        }
      });
      await Promise.all(typing);
      const reader = new RedisStore(client(), { prefix });
      for (const d of docs) {
        const stored = await reader.load(d);
        expect(() => verifyLoaded(d, stored)).not.toThrow();
        const here = [...markers].filter(([, doc]) => doc === d).map(([m]) => m);
        expect(stored.head).toBe(here.length);
        let text = '';
        for (const r of stored.ops) text = apply(text, r.op);
        for (const [n, node] of nodes.entries()) {
          await waitFor(`node ${n} at the head of ${d}`, () => (node.published.get(d) ?? []).length === stored.head, 10_000, () =>
            JSON.stringify({ seed, node: n, doc: d, published: node.published.get(d)?.length, head: stored.head }),
          );
          const versions = (node.published.get(d) ?? []).map((r) => r.version);
          expect(versions).toEqual(Array.from({ length: stored.head }, (_, i) => i + 1));
          expect((await node.sequencer.getSnapshot(d)).text).toBe(text);
        }
        // Each marker typed here exactly once.
        for (const m of here) expect(text.split(m).length - 1, `${m} in ${d} (seed ${seed})`).toBe(1);
      }
      // The hints went over shard channels, one per document, on its slot's master: both nodes
      // subscribed there, and nobody to a plain channel (which every master would relay).
      const masters = admin.nodes('master');
      const count = async (kind: 'SHARDNUMSUB' | 'NUMSUB', channel: string): Promise<number[]> =>
        Promise.all(masters.map(async (m) => Number(((await m.call('PUBSUB', kind, channel)) as unknown[])[1])));
      for (const d of docs) {
        const channel = nodes[0]?.store.hintChannel(d) as string;
        expect((await count('SHARDNUMSUB', channel)).sort()).toEqual([0, 0, 2]);
        expect(await count('NUMSUB', channel)).toEqual([0, 0, 0]);
      }
    } finally {
      for (const node of nodes) {
        node.fanout?.close();
        await node.sequencer.close();
      }
    }
  }, 60_000);

  /** The ports of the masters, each with an admin connection of its own (disconnected after the test). */
  function masters(): Map<number, Redis> {
    const admins = new Map(cluster.ports.map((p) => [p, new Redis(p, '127.0.0.1', { maxRetriesPerRequest: 1 })]));
    for (const r of admins.values()) r.on('error', () => {});
    nodeClients.push(...admins.values());
    return admins;
  }

  /** Shard subscribers of `channel`, over all masters. */
  async function shardSubscribers(admins: Map<number, Redis>, channel: string): Promise<number> {
    let n = 0;
    for (const r of admins.values()) n += Number(((await r.call('PUBSUB', 'SHARDNUMSUB', channel)) as unknown[])[1]);
    return n;
  }

  it("a node's shard subscriber connections killed: what the other node commits meanwhile reaches it without another commit (the periodic check off)", async () => {
    const prefix = 'killed-subscriber:';
    const docId = 'watched';
    const nodes = [0, 1].map(() => {
      const store = new RedisStore(client(), { prefix });
      const sequencer = new Sequencer(store, { idleTimeout: 0 });
      const published: number[] = [];
      sequencer.onApplied((_d, r) => published.push(r.version));
      return { store, sequencer, published, fanout: new RedisFanout(store, sequencer, { checkInterval: 0 }) };
    });
    const [a, b] = nodes as [(typeof nodes)[number], (typeof nodes)[number]];
    const admins = masters();
    const channel = a.store.hintChannel(docId);
    try {
      for (const [n, node] of nodes.entries()) await node.sequencer.open(docId, `opener-${n}`);
      await waitFor('both nodes subscribed', async () => (await shardSubscribers(admins, channel)) === 2, 10_000);
      await b.sequencer.submit({ docId, clientId: 'typist', seq: 1, baseVersion: 0, op: ['x'] });
      await waitFor('a hint', () => a.published.length === 1, 10_000);
      let killed = 0;
      for (const r of admins.values()) {
        for (const line of String(await r.client('LIST')).split('\n')) {
          const id = /id=(\d+) .*name=\S*ssubscriber/.exec(line)?.[1];
          if (id !== undefined) killed += Number(await r.client('KILL', 'ID', id));
        }
      }
      expect(killed).toBeGreaterThanOrEqual(2);
      // Committed while the subscribers are gone: its hint is lost.
      await b.sequencer.submit({ docId, clientId: 'typist', seq: 2, baseVersion: 1, op: [1, 'y'] });
      await waitFor('the op committed meanwhile', () => a.published.length === 2, 10_000, () => JSON.stringify(a.published));
      expect(a.published).toEqual([1, 2]);
      await waitFor('both nodes subscribed again', async () => (await shardSubscribers(admins, channel)) === 2, 10_000);
    } finally {
      for (const node of nodes) {
        node.fanout.close();
        await node.sequencer.close();
      }
    }
  }, 30_000);

  it("a node's shard subscriber reconnected, its subscriptions slow to be made (ioredis says it is ready before they are): the document is read again once they are, so an op committed meanwhile is not missed", async () => {
    const prefix = 'slow-resubscribe:';
    const docId = 'slow';
    // Node a reaches every master through a proxy (its path can stall); node b directly.
    const proxies = await Promise.all(cluster.ports.map((port) => TcpProxy.start(port)));
    const natMap = Object.fromEntries(cluster.ports.map((port, i) => [`127.0.0.1:${port}`, { host: '127.0.0.1', port: (proxies[i] as TcpProxy).port }]));
    const viaProxy = new Cluster(
      cluster.ports.map((port) => ({ host: '127.0.0.1', port })),
      { natMap, redisOptions: { maxRetriesPerRequest: 3 } },
    );
    viaProxy.on('error', () => {});
    const node = (redis: Cluster) => {
      const store = new RedisStore(redis, { prefix });
      const sequencer = new Sequencer(store, { idleTimeout: 0 });
      const published: number[] = [];
      sequencer.onApplied((_d, r) => published.push(r.version));
      return { store, sequencer, published, fanout: new RedisFanout(store, sequencer, { checkInterval: 0 }) };
    };
    const a = node(viaProxy);
    const b = node(client());
    const admins = masters();
    try {
      for (const n of [a, b]) await n.sequencer.open(docId, 'opener');
      await waitFor('both nodes subscribed', async () => (await shardSubscribers(admins, a.store.hintChannel(docId))) === 2, 10_000);
      await b.sequencer.submit({ docId, clientId: 'typist', seq: 1, baseVersion: 0, op: ['x'] });
      await waitFor('a hint', () => a.published.length === 1, 10_000);
      // a's shard subscriber connections cut; on the new ones, subscriptions stall.
      const subscribers = proxies.flatMap((p) => p.connections.filter((c) => /ssubscribe/i.test(c.sent)));
      expect(subscribers.length).toBeGreaterThan(0);
      // The command itself (not the connection's name, which holds "ssubscriber").
      for (const p of proxies) p.holdIf = (chunk) => /\$10\r\nssubscribe\r\n/i.test(chunk.toString('latin1'));
      for (const c of subscribers) c.client.destroy();
      await sleep(1500); // past SUBSCRIBE_WAIT_MS: a read everything once, unsubscribed
      await b.sequencer.submit({ docId, clientId: 'typist', seq: 2, baseVersion: 1, op: [1, 'y'] }); // its hint reaches nobody on a
      await sleep(300);
      expect(a.published).toEqual([1]);
      for (const p of proxies) p.release();
      await waitFor('the op committed while the subscriptions stalled', () => a.published.length === 2, 10_000, () => JSON.stringify(a.published));
    } finally {
      for (const n of [a, b]) {
        n.fanout.close();
        await n.sequencer.close();
      }
      viaProxy.disconnect();
      for (const p of proxies) await p.close();
    }
  }, 30_000);

  it('a document held while its slot has just moved (the subscription answered MOVED): it is read, then subscribed on the new master', async () => {
    const prefix = 'moved-slot:';
    const docId = 'moving';
    const store = new RedisStore(client(), { prefix });
    const docs = new HeldDocuments(['warm']);
    const read = (d: string): boolean => docs.refreshed.some(([r]) => r === d);
    const fanout = new RedisFanout(store, docs.sequencer, { checkInterval: 0 });
    const admins = masters();
    const channel = store.hintChannel(docId);
    const slot = Number(await (admins.get(cluster.ports[0] as number) as Redis).cluster('KEYSLOT', channel));
    const { master } = await cluster.servers(channel);
    const target = cluster.ports.find((p) => p !== master) as number;
    const targetId = String(await (admins.get(target) as Redis).cluster('MYID'));
    try {
      await waitFor('the first subscription', () => read('warm'), 10_000);
      // The slot (empty) moves; the fan-out's view of the cluster is now stale.
      for (const p of [target, ...cluster.ports.filter((q) => q !== target)]) await (admins.get(p) as Redis).cluster('SETSLOT', slot, 'NODE', targetId);
      docs.hold(docId);
      await waitFor('the document read', () => read(docId), 10_000, () => JSON.stringify(docs.refreshed));
      await waitFor('subscribed on the new master', async () => Number(((await (admins.get(target) as Redis).call('PUBSUB', 'SHARDNUMSUB', channel)) as unknown[])[1]) === 1, 10_000);
    } finally {
      fanout.close();
      // The slot back where it was (it holds no key).
      const masterId = String(await (admins.get(master) as Redis).cluster('MYID'));
      for (const p of [master, ...cluster.ports.filter((q) => q !== master)]) await (admins.get(p) as Redis).cluster('SETSLOT', slot, 'NODE', masterId);
    }
  }, 30_000);

  it('a selection made through one server before the other holds the document is shown there once it does (presences on shard channels)', async () => {
    const local = new Cleanup();
    try {
      const [a, b] = (await Promise.all([0, 1].map(() => startServer(local, { store: new RedisStore(client(), { prefix: 'late-presence:' }) })))) as [
        OtterServer,
        OtterServer,
      ];
      const mover = newClient(local, a.url, 'mover').open('late');
      await within(mover.ready, 10_000, 'the mover opening');
      mover.insert(0, 'hello');
      mover.setSelection({ anchor: 1, head: 3 });
      await waitFor('the edit acknowledged', () => mover.syncState.kind === 'synchronized', 10_000);
      // Only now does server b hold the document.
      const viewer = newClient(local, b.url, 'viewer').open('late');
      await waitFor('the selection shown through the other server', () => [...viewer.presences.values()].some((p) => p.selection?.[0]?.head === 3), 10_000, () =>
        JSON.stringify([...viewer.presences.values()]),
      );
    } finally {
      await local.run();
    }
  }, 30_000);

  it('two servers over Cluster clients, real clients typing on both: converged, each acknowledged marker once, presence relayed', async () => {
    const seed = seedOf('redis-cluster.test', 'two servers');
    const random = seededRandom(seed);
    const local = new Cleanup();
    try {
      const [a, b] = (await Promise.all([0, 1].map(() => startServer(local, { store: new RedisStore(client(), { prefix: 'servers:' }) })))) as [
        OtterServer,
        OtterServer,
      ];
      const docs = ['north', 'south'];
      const clients = [a, b, a, b].map((server, i) => newClient(local, server.url, `c${i}`));
      const opened = clients.map((c) => docs.map((d) => ({ client: c, docId: d, doc: c.open(d) })));
      for (let round = 0; round < 25; round++) {
        for (const [i, row] of opened.entries()) {
          const target = row[below(random, row.length)] as (typeof row)[number];
          randomEdit(target.doc, random, `«${i}.${round}»`, 0.2);
        }
        await sleep(below(random, 15));
      }
      for (const d of docs) {
        const here = opened.map((row) => row.find((o) => o.docId === d) as (typeof row)[number]);
        const head = await waitConverged(() => a, d, here.map((o) => ({ name: o.client.name, connection: o.client.connection, doc: o.doc })), 20_000);
        expect((await headOf(b, d)).text).toBe(head.text);
        const counts = markerCounts(head.text);
        for (const [m, n] of counts) expect(n, `${m} in ${d} (seed ${seed})`).toBe(1);
        for (const c of clients) for (const m of c.acks.of(d)) expect(counts.get(m), `acknowledged ${m} in ${d} (seed ${seed})`).toBe(1);
      }
      for (const c of clients) expect(c.errors).toEqual([]);
      // A selection made through server a is shown to a client of server b.
      const mover = (opened[0] as (typeof opened)[number])[0] as (typeof opened)[number][number];
      const viewer = (opened[1] as (typeof opened)[number])[0] as (typeof opened)[number][number];
      mover.doc.setSelection({ anchor: 1, head: 3 });
      await waitFor('the selection shown across servers', () => [...viewer.doc.presences.values()].some((p) => p.selection?.[0]?.head === 3), 10_000, () =>
        JSON.stringify([...viewer.doc.presences.values()]),
      );
    } finally {
      await local.run();
    }
  }, 60_000);
});
