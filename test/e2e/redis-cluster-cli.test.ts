/**
 * `otter serve --redis-cluster` on a real Redis Cluster (three masters of the test's own, see
 * `test/support/redis-cluster.ts`), with the nodes as child processes running the command line
 * from source and real clients. The laws checked:
 * - two nodes, each given a different node of the Cluster to start from, two clients on each
 *   typing into two documents whose slots are on different masters: every client converges with
 *   the log Redis holds (versions 1…head, an unbroken checksum chain), each marker exactly once,
 *   and a node's fan-out brings it the other's ops (counted in `otter_fanout_ops_total`);
 * - every master stopped (SIGSTOP) while the clients type: submits are refused with the
 *   retryable `storage-failed`, not left hanging, and `/readyz` answers 503 on both nodes; once
 *   the masters run again, every marker is there once, nothing acknowledged is lost, all
 *   converge and `/readyz` answers 200 again.
 * The random seed is printed; OTTER_SEED=n replays one. Skipped without redis-server and
 * redis-cli, saying so; with CI=true it fails instead.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { documentKeys } from '../../src/server/redis-keys.js';
import { request } from '../product/helpers.js';
import { HAVE_CLUSTER_TOOLS, RedisCluster } from '../support/redis-cluster.js';
import { below, seededRandom } from '../support/random.js';
import { IN_CI } from '../support/redis.js';
import { sleep, waitFor } from '../support/wait.js';
import { Cleanup, markerCounts } from './helpers.js';
import { type Client, type Node, converged, expectRedisDown, metric, newClient, noteAcked, notOnce, seedOf, startNode, typeWhile } from './redis-nodes.js';

const FILE = 'redis-cluster-cli.test';
const PREFIX = 'cli:';
const skip = !HAVE_CLUSTER_TOOLS && !IN_CI;
if (skip) console.warn(`[${FILE}] SKIPPED: redis-server and redis-cli are not both on PATH (install Redis to run it)`);

/** Two document ids whose keys live on different masters of `cluster`. */
async function docsOnTwoMasters(cluster: RedisCluster): Promise<[string, string]> {
  const byMaster = new Map<number, string>();
  for (let i = 0; byMaster.size < 2; i++) {
    const id = `doc-${i}`;
    const { master } = await cluster.servers(documentKeys(PREFIX, id).meta);
    if (!byMaster.has(master)) byMaster.set(master, id);
  }
  return [...byMaster.values()] as [string, string];
}

/** `clients` (of one document) converge on the log Redis holds, each of their markers once, every one of `acked` kept, none told of lost data. */
async function expectConverged(cleanup: Cleanup, nodes: readonly Node[], clients: readonly Client[], acked: readonly string[]): Promise<void> {
  const { text } = await converged(cleanup, nodes, clients);
  expect(notOnce(text, clients.flatMap((c) => c.markers))).toEqual([]);
  expect(markerCounts(text).size).toBe(clients.reduce((n, c) => n + c.markers.length, 0));
  expect(notOnce(text, acked)).toEqual([]);
  expect(clients.flatMap((c) => c.resets)).toEqual([]);
}

describe.skipIf(skip)('otter serve --redis-cluster', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  it('two nodes through a Cluster of three masters, clients typing into documents on two masters; every master stopped and resumed: submits refused retryably meanwhile, /readyz 503, then each marker once, nothing acknowledged lost, all converge', async () => {
    const random = seededRandom(seedOf(FILE, 'two nodes'));
    const cluster = await RedisCluster.started(cleanup);
    const [first, second, third] = cluster.ports.map((port) => `redis://127.0.0.1:${port}`) as [string, string, string];
    const nodes = (await Promise.all([
      startNode(cleanup, 'a', { cluster: [first, second] }, PREFIX),
      startNode(cleanup, 'b', { cluster: [third] }, PREFIX),
    ])) as [Node, Node];
    const docs = await docsOnTwoMasters(cluster);
    const groups = docs.map((doc, d) => [0, 1, 2, 3].map((i) => newClient(cleanup, nodes[i % 2] as Node, doc, `d${d}c${i}`, 50)));
    const clients = groups.flat();
    await Promise.all(clients.map((c) => c.doc.ready));

    let typing = true;
    const typists = Promise.all(clients.map((c) => typeWhile(c, seededRandom(below(random, 2 ** 31)), () => typing, 40, 10)));
    await sleep(600 + below(random, 400));
    for (const port of cluster.ports) cluster.processes.pause(port, true);
    for (const c of clients) noteAcked(c);
    const acked = clients.flatMap((c) => c.markers.slice(0, c.acked));
    try {
      await expectRedisDown(nodes, clients, 20_000);
    } finally {
      for (const port of cluster.ports) cluster.processes.pause(port, false);
    }
    await sleep(300 + below(random, 300));
    typing = false;
    await typists;

    expect(acked.length).toBeGreaterThan(0);
    for (const [d, group] of groups.entries()) {
      await expectConverged(cleanup, nodes, group, acked.filter((m) => m.startsWith(`«d${d}`)));
    }
    for (const c of clients) expect({ client: c.name, errors: c.errors.filter((e) => e !== 'storage-failed') }).toEqual({ client: c.name, errors: [] });
    for (const node of nodes) {
      await waitFor(`/readyz of ${node.name} to answer 200 again`, async () => (await request(`${node.http}/readyz`)).status === 200, 10_000);
      expect(await metric(node, 'otter_fanout_ops_total')).toBeGreaterThan(0);
    }
  }, 120_000);
});
