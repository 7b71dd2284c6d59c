/**
 * A Redis Cluster failover under two Otter servers, for real: a private cluster of three
 * masters with a replica each (`test/support/redis-cluster.ts`, `cluster-node-timeout` 1 s),
 * two servers (`createServer` over a RedisStore on a Cluster client each) and four clients
 * typing into one document through both. Mid-typing, the replica of the document's slot is
 * paused and its replication link cut, a few more appends are acknowledged by the master
 * alone, the master is SIGKILLed and the replica resumed: the cluster promotes it, without
 * those appends — what asynchronous replication loses when a master dies.
 *
 * The law: never a silent divergence. Meanwhile submits fail retryably (the clients keep their
 * edits and resend); afterwards the typing goes on through both servers, both servers listen
 * for the document's hints on the new master, both count the document as lost (its head fell
 * behind what they had published), every client converges on the text both servers hold, every
 * marker is in it at most once, and every acknowledged marker exactly once: the appends the
 * promoted replica lacks come back from the clients that held them, once.
 * Skipped without redis-server and redis-cli, saying so; with CI=true it fails instead. The
 * random seed is printed; OTTER_SEED=n replays one.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { documentKeys } from '../../src/server/redis-keys.js';
import { RedisStore } from '../../src/server/redis-store.js';
import type { OtterServer } from '../../src/server/index.js';
import { HAVE_CLUSTER_TOOLS, RedisCluster } from '../support/redis-cluster.js';
import { below, seededRandom } from '../support/random.js';
import { IN_CI } from '../support/redis.js';
import { sleep, waitFor, within } from '../support/wait.js';
import { Cleanup, headOf, markerCounts, newClient, randomEdit, startServer, waitConverged } from './helpers.js';
import { seedOf } from './redis-nodes.js';

const FILE = 'redis-cluster-failover.test';
const skip = !HAVE_CLUSTER_TOOLS && !IN_CI;
if (skip) console.warn(`[${FILE}] SKIPPED: redis-server and redis-cli are not both on PATH (install Redis to run it)`);

const DOC = 'failover';
const PREFIX = 'failover:';
/** Errors a client may be told while the slot has no master, or after its appends were lost. */
const EXPECTED = / (storage-failed|not-open):/;

describe.skipIf(skip)('Otter servers on a Redis Cluster whose master fails over', () => {
  const cleanup = new Cleanup();

  afterEach(async () => {
    await cleanup.run();
  });

  it('the master of the document’s slot SIGKILLed mid-typing: its replica takes over, the typing goes on, all converge, each acknowledged marker once', async () => {
    const seed = seedOf(FILE, 'failover');
    const random = seededRandom(seed);
    const cluster = await RedisCluster.started(cleanup, { replicas: 1, nodeTimeout: 1000 });
    const servers = (await Promise.all(
      [0, 1].map(() => {
        const client = cluster.client();
        cleanup.add(() => client.disconnect());
        return startServer(cleanup, { store: new RedisStore(client, { prefix: PREFIX }) });
      }),
    )) as [OtterServer, OtterServer];
    const clients = servers.flatMap((s, n) => [0, 1].map((i) => newClient(cleanup, s.url, `c${n}${i}`)));
    const docs = clients.map((c) => c.open(DOC));
    await within(Promise.all(docs.map((d) => d.ready)), 10_000, 'the clients opening');
    const key = documentKeys(PREFIX, DOC).meta;
    const before = await cluster.servers(key);
    expect(before.replicas).toHaveLength(1);
    const replica = before.replicas[0] as number;

    const round = async (r: number): Promise<void> => {
      for (const [i, doc] of docs.entries()) randomEdit(doc, random, `«${i}.${r}»`, 0.2);
      await sleep(20 + below(random, 40));
    };
    for (let r = 0; r < 10; r++) await round(r);
    // The replica stopped and its link cut, so that the last appends the master acknowledges
    // never reach it (what asynchronous replication loses when a master dies); then the master
    // killed and the replica resumed, well within the node timeout (it stays fit to take over).
    const master = new Redis(before.master, '127.0.0.1', { maxRetriesPerRequest: 1 });
    master.on('error', () => {});
    cleanup.add(() => master.disconnect());
    const headBefore = (await headOf(servers[0], DOC)).version;
    cluster.processes.pause(replica, true);
    await master.client('KILL', 'TYPE', 'replica');
    master.disconnect();
    for (let r = 10; r < 13; r++) await round(r);
    await waitFor('an append acknowledged after the cut', async () => (await headOf(servers[0], DOC)).version > headBefore, 10_000);
    await cluster.processes.kill(before.master);
    cluster.processes.pause(replica, false);
    // The typing goes on while the slot has no master, and after the replica takes over.
    let r = 13;
    const promoted = waitFor('the replica to take over the slot', async () => (await cluster.servers(key).catch(() => before)).master === replica, 30_000);
    promoted.catch(() => {}); // awaited below; a round failing first must not leave it unhandled
    for (; r < 40; r++) await round(r);
    await promoted;
    for (; r < 50; r++) await round(r);
    // Both servers listen for the document's hints on its new master.
    const channel = documentKeys(PREFIX, DOC).hints;
    const newMaster = new Redis(replica, '127.0.0.1', { maxRetriesPerRequest: 1 });
    cleanup.add(() => newMaster.disconnect());
    await waitFor('both servers subscribed on the new master', async () => Number(((await newMaster.call('PUBSUB', 'SHARDNUMSUB', channel)) as unknown[])[1]) === 2, 10_000);

    const everyone = clients.map((c, i) => ({ name: c.name, connection: c.connection, doc: docs[i] as (typeof docs)[number] }));
    const head = await waitConverged(() => servers[0], DOC, everyone, 60_000);
    expect((await headOf(servers[1], DOC)).text).toBe(head.text);
    const counts = markerCounts(head.text);
    for (const [m, n] of counts) expect(n, `${m} (seed ${seed})`).toBe(1);
    for (const c of clients) for (const m of c.acks.of(DOC)) expect(counts.get(m), `acknowledged ${m} (seed ${seed})`).toBe(1);
    for (const c of clients) expect({ client: c.name, errors: c.errors.filter((e) => !EXPECTED.test(e)) }).toEqual({ client: c.name, errors: [] });
    // The document lives on the promoted replica now, with the text every client holds; the
    // appends it never received were found lost by both servers (and restored by the clients).
    expect((await cluster.servers(key)).master).toBe(replica);
    for (const s of servers) {
      const metrics = await (await fetch(`${s.url.replace(/^ws/, 'http')}/metrics`)).text();
      expect(metrics).toMatch(/^otter_documents_lost_total [1-9]/m);
    }
  }, 120_000);
});
