/**
 * A Sentinel failover under two `otter serve --redis redis://<group> --redis-sentinel …` nodes,
 * for real: a private master with a replica and a Sentinel (`test/support/redis-sentinel.ts`),
 * the nodes as child processes running the command line from source, and four clients typing
 * into one document through both. Once the replica holds every acknowledged append, the master
 * is SIGKILLed and the clients type on: the Sentinel promotes the replica.
 *
 * The laws: while there is no master, submits are refused with the retryable `storage-failed`
 * (the clients keep their edits and resend them), not left hanging; the nodes ask the Sentinel
 * for the new master and follow it; nothing acknowledged is lost (the replica had it all), so no
 * client is told of a loss; afterwards every client converges on the log the new master holds,
 * every marker typed is there exactly once. (What a failover loses when the replica lacked the
 * last appends, and how clients restore it, is tested on a Cluster:
 * `redis-cluster-failover.test.ts`, and by rolling Redis back: `storage-rollback.test.ts`.)
 * Skipped without redis-server, saying so; with CI=true it fails instead. The random seed is
 * printed; OTTER_SEED=n replays one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { documentKeys } from '../../src/server/redis-keys.js';
import { request } from '../product/helpers.js';
import { MASTER_NAME, RedisSentinels } from '../support/redis-sentinel.js';
import { ask } from '../support/redis-servers.js';
import { below, seededRandom } from '../support/random.js';
import { sleep, waitFor, within } from '../support/wait.js';
import { Cleanup, markerCounts } from './helpers.js';
import { type Node, converged, describeAll, metric, newClient, notOnce, seedOf, skipWithoutRedis, startNode, typeWhile } from './redis-nodes.js';

const FILE = 'redis-sentinel-failover.test';
const SKIP = skipWithoutRedis(FILE);
const DOC = 'failover';
const PREFIX = 'sentinel:';

describe.skipIf(SKIP)('otter serve nodes on a Sentinel-watched Redis whose master fails over', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  it('the master SIGKILLed with its replica in step, the clients typing on: submits refused retryably meanwhile, both nodes follow the promoted replica, nothing lost, all converge, every marker once', async () => {
    const random = seededRandom(seedOf(FILE, 'failover'));
    const set = await RedisSentinels.started(cleanup);
    const [master, replica] = set.dataPorts;
    const target = { sentinels: set.sentinelUrls, master: `redis://${MASTER_NAME}` };
    const nodes = (await Promise.all([startNode(cleanup, 'a', target, PREFIX), startNode(cleanup, 'b', target, PREFIX)])) as [Node, Node];
    const clients = ['c0', 'c1', 'c2', 'c3'].map((name, i) => newClient(cleanup, nodes[i % 2] as Node, DOC, name, 50));
    await within(Promise.all(clients.map((c) => c.doc.ready)), 10_000, 'the clients opening');
    const type = (first: number): { stop: () => Promise<void> } => {
      let typing = true;
      const typists = Promise.all(clients.map((c) => typeWhile(c, seededRandom(below(random, 2 ** 31)), () => typing, 40, 10, first)));
      return { stop: () => ((typing = false), typists.then(() => undefined)) };
    };

    const before = type(0);
    await sleep(600 + below(random, 400));
    await before.stop();
    await Promise.all(clients.map((c) => within(c.doc.synced(), 10_000, `${c.name}'s edits acknowledged`)));
    const meta = documentKeys(PREFIX, DOC).meta;
    const head = await ask(master, (admin) => admin.hget(meta, 'head'));
    await waitFor('the replica to hold every acknowledged append', async () => (await ask(replica, (admin) => admin.hget(meta, 'head'))) === head, 10_000);
    const acked = clients.flatMap((c) => c.markers);

    await set.processes.kill(master);
    const during = type(1000);
    await waitFor('the Sentinel to promote the replica', async () => (await set.master()) === replica, 30_000);
    await waitFor('a submit refused with storage-failed', () => clients.some((c) => c.errors.includes('storage-failed')), 20_000, () => describeAll(clients));
    await sleep(500 + below(random, 500));
    await during.stop();

    const { text, version } = await converged(cleanup, nodes, clients);
    expect(version).toBeGreaterThan(Number(head));
    expect(notOnce(text, clients.flatMap((c) => c.markers))).toEqual([]);
    expect(markerCounts(text).size).toBe(clients.reduce((n, c) => n + c.markers.length, 0));
    expect(acked.length).toBeGreaterThan(0);
    expect(notOnce(text, acked)).toEqual([]);
    expect(clients.flatMap((c) => c.resets)).toEqual([]);
    for (const c of clients) expect({ client: c.name, errors: c.errors.filter((e) => e !== 'storage-failed') }).toEqual({ client: c.name, errors: [] });
    for (const node of nodes) {
      expect({ node: node.name, lost: await metric(node, 'otter_documents_lost_total') }).toEqual({ node: node.name, lost: 0 });
      await waitFor(`/readyz of ${node.name} to answer 200`, async () => (await request(`${node.http}/readyz`)).status === 200, 10_000);
    }
  }, 120_000);
});
