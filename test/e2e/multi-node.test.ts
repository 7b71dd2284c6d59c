/**
 * Several `otter serve --redis` processes over one Redis, with real clients spread across them.
 *
 * Each test file run starts its own `redis-server` (a free port, AOF with `appendfsync
 * always`, in a temporary directory) and, per test, its own nodes: child processes running the
 * command line from source (`node --import tsx src/cli.ts serve --redis …`), each test under a
 * key prefix of its own. The Redis on 6379 is never touched. Without `redis-server` on PATH the
 * file is skipped, saying so, except with CI=true, where it fails.
 *
 * The command line's Redis flags and `/readyz` without Redis are checked first (no Redis
 * needed). Then, what every editing test checks, besides the clients converging:
 * - every client received each version after its open exactly once, in order (its own ops as
 *   acks, the others' as live ops), and was never sent a second `opened` unless it reconnected:
 *   a node that missed a commit elsewhere would show a gap, or a client resyncing;
 * - a fresh client on each node reads the same text and version;
 * - the log in Redis runs 1…head with an unbroken checksum chain, and replays to that text;
 * - each marker a client typed is in the text exactly once.
 * Further: the hint subscriptions killed (CLIENT KILL TYPE pubsub), presence relayed between
 * nodes and dropped when its node dies, and a node SIGKILLed with its clients moving over.
 * The random seed is printed; OTTER_SEED=n replays one.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, request } from '../product/helpers.js';
import { type Random, below, seededRandom } from '../support/random.js';
import { BANNER, type Client, type Node, RedisProcess, cliFromSource, converged, metric, newClient, notOnce, seedOf, skipWithoutRedis, startNode, typeWhile } from './redis-nodes.js';
import { sleep, waitFor, within } from '../support/wait.js';
import { Cleanup, markerCounts, randomEdit } from './helpers.js';

const FILE = 'multi-node.test';
const SKIP = skipWithoutRedis(FILE);
const DOC = 'shared';

/** The private redis-server of this file. */
let redis: RedisProcess;
const fileCleanup = new Cleanup();
let prefixes = 0;

/** A client of {@link DOC} on `node`. */
function openClient(cleanup: Cleanup, node: Node, name: string): Client {
  return newClient(cleanup, node, DOC, name, 20);
}

/** `edits` random edits by `c`, each insert with a unique marker, paced randomly. */
function typeAway(c: Client, random: Random, edits: number, pace = 30): Promise<void> {
  return typeWhile(c, random, (i) => i < edits, pace);
}

/**
 * {@link converged}, then: no client saw a version out of order or twice, or an error, and
 * every marker typed is in the text exactly once.
 */
async function checkConverged(cleanup: Cleanup, nodes: readonly Node[], clients: readonly Client[]): Promise<void> {
  const { text } = await converged(cleanup, nodes, clients);
  for (const c of clients) expect({ client: c.name, violations: c.violations }).toEqual({ client: c.name, violations: [] });
  const typed = clients.flatMap((c) => c.markers);
  expect(notOnce(text, typed)).toEqual([]);
  expect(markerCounts(text).size).toBe(typed.length);
}

describe('otter serve --redis: the command line', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  it('--help names --redis, --redis-cluster, --redis-sentinel, --redis-prefix and their variables', async () => {
    const cli = cliFromSource(['--help']);
    cleanup.add(() => cli.kill());
    expect((await within(cli.exited, 20_000, 'otter --help')).code).toBe(0);
    for (const word of ['--redis URL', '--redis-cluster URLS', '--redis-sentinel URLS', '--redis-prefix', 'OTTER_REDIS_URL', 'OTTER_REDIS_CLUSTER', 'OTTER_REDIS_SENTINEL', 'OTTER_REDIS_PREFIX']) expect(cli.stdout).toContain(word);
  });

  it('refuses --redis or --redis-cluster with --data or --memory (flags or variables), both together, --redis-prefix or --redis-sentinel alone, a URL that is not redis://, a Cluster database other than 0, a master database that is not a number and a prefix with braces', async () => {
    const exclusive = /--redis and --redis-cluster exclude --data and --memory/;
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['--redis', 'redis://127.0.0.1:1', '--memory'], {}, exclusive],
      [['--redis', 'redis://127.0.0.1:1', '--data', 'x.db'], {}, exclusive],
      [[], { OTTER_REDIS_URL: 'redis://127.0.0.1:1', OTTER_MEMORY: '1' }, exclusive],
      [['--redis-cluster', 'redis://127.0.0.1:1', '--memory'], {}, exclusive],
      [[], { OTTER_REDIS_CLUSTER: 'redis://127.0.0.1:1', OTTER_DATA: 'x.db' }, exclusive],
      [['--redis', 'redis://127.0.0.1:1', '--redis-cluster', 'redis://127.0.0.1:2'], {}, /--redis and --redis-cluster exclude each other/],
      [['--redis-cluster', 'redis://127.0.0.1:2'], { OTTER_REDIS_URL: 'redis://127.0.0.1:1' }, /--redis and --redis-cluster exclude each other/],
      [['--redis-prefix', 'p:'], {}, /--redis-prefix needs --redis or --redis-cluster/],
      [['--redis', 'http://127.0.0.1:6379'], {}, /--redis must be a redis:\/\/ or rediss:\/\/ URL/],
      [['--redis-cluster', 'redis://127.0.0.1:7000,http://127.0.0.1:7001'], {}, /--redis-cluster: a Redis Cluster node must be a redis:\/\/ or rediss:\/\/ URL/],
      [['--redis-cluster', 'redis://127.0.0.1:7000,'], {}, /--redis-cluster: a Redis Cluster node must be a redis:\/\/ or rediss:\/\/ URL/],
      [['--redis-cluster', 'redis://127.0.0.1:7000/3'], {}, /--redis-cluster: a Redis Cluster has only database 0/],
      [['--redis-sentinel', 'redis://127.0.0.1:26379'], {}, /--redis-sentinel needs --redis, whose host names the master group/],
      [['--redis-cluster', 'redis://127.0.0.1:7000'], { OTTER_REDIS_SENTINEL: 'redis://127.0.0.1:26379' }, /--redis-sentinel goes with --redis, not --redis-cluster/],
      [['--redis', 'redis://a:b%zz@group', '--redis-sentinel', 'redis://127.0.0.1:26379'], {}, /--redis-sentinel: the master .* is not percent-encoded/],
      [['--redis', 'redis://group', '--redis-sentinel', 'redis://127.0.0.1:26379,http://x:1'], {}, /--redis-sentinel: a Sentinel must be a redis:\/\/ or rediss:\/\/ URL/],
      [['--redis', 'redis://group/zero'], { OTTER_REDIS_SENTINEL: 'redis://127.0.0.1:26379' }, /--redis-sentinel: the master's URL names no database/],
      [['--redis', 'redis://127.0.0.1:1', '--redis-prefix', 'a{b}:'], {}, /--redis-prefix: a key prefix may not contain/],
    ];
    await Promise.all(
      cases.map(async ([args, env, message]) => {
        const cli = cliFromSource(['serve', '--port', '0', ...args], env);
        cleanup.add(() => cli.kill());
        const exit = await within(cli.exited, 20_000, `otter serve ${args.join(' ')}`);
        expect({ args, env, code: exit.code }).toEqual({ args, env, code: 2 });
        expect(cli.stderr).toMatch(message);
      }),
    );
  });

  // A Cluster that cannot be reached keeps its commands queued without a limit: the store's
  // own deadline (5 s) fails them, so the probe fails too.
  for (const variable of ['OTTER_REDIS_URL', 'OTTER_REDIS_CLUSTER'] as const) {
    it(`with Redis unreachable (${variable}), the node starts, /readyz answers 503 naming the failure, and /healthz 200`, async () => {
      const port = await freePort();
      const cli = cliFromSource(['serve', '--port', '0', '--log-level', 'silent'], { [variable]: `redis://127.0.0.1:${port}` });
      cleanup.add(() => cli.kill());
      await waitFor('the banner', () => BANNER.test(cli.stdout), 20_000, () => cli.stderr);
      const http = (BANNER.exec(cli.stdout) as RegExpExecArray)[1] as string;
      let body = '';
      await waitFor('/readyz to answer 503', async () => {
        const answer = await request(`${http}/readyz`);
        body = answer.body;
        return answer.status === 503 && body.includes('cannot be written');
      }, 15_000, () => body);
      // The store's own failure, not the probe's timeout (which would say the store did not answer).
      expect(body).toMatch(/ECONNREFUSED|max retries|Redis did not answer/);
      expect((await request(`${http}/healthz`)).status).toBe(200);
    });
  }
});

describe.skipIf(SKIP)('several otter serve --redis nodes', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  beforeAll(async () => {
    redis = await RedisProcess.started(fileCleanup, 'otter-redis-');
  });

  afterAll(() => fileCleanup.run());

  for (const count of [2, 3]) {
    it(`${count} nodes, two clients on each, random concurrent edits: every client and node end equal, the log is contiguous, each marker once, nothing missed or twice`, async () => {
      const random = seededRandom(seedOf(FILE, `${count} nodes`));
      const prefix = `spread${prefixes++}:`;
      const nodes = await Promise.all(Array.from({ length: count }, (_, i) => startNode(cleanup, `n${i}`, redis.url, prefix)));
      const clients = Array.from({ length: 2 * count }, (_, i) => openClient(cleanup, nodes[i % count] as Node, `c${i}`));
      await Promise.all(clients.map((c) => typeAway(c, seededRandom(below(random, 2 ** 31)), 30)));
      await checkConverged(cleanup, nodes, clients);
      for (const c of clients) expect(c.opens).toBe(1);
      for (const node of nodes) {
        // The nodes did learn of each other's ops through the hints, and say so.
        expect(await metric(node, 'otter_fanout_ops_total')).toBeGreaterThan(0);
        expect(await metric(node, 'otter_redis_round_trip_seconds_count{command="append"}')).toBeGreaterThan(0);
        expect((await request(`${node.http}/readyz`)).status).toBe(200);
      }
    });
  }

  it('the hint subscriptions killed again and again while one node takes every edit: the other node publishes every op, none missed or twice', async () => {
    const random = seededRandom(seedOf(FILE, 'subscription killed'));
    const prefix = `killed${prefixes++}:`;
    const [a, b] = (await Promise.all([startNode(cleanup, 'a', redis.url, prefix), startNode(cleanup, 'b', redis.url, prefix)])) as [Node, Node];
    const writers = [openClient(cleanup, a, 'w0'), openClient(cleanup, a, 'w1')];
    // Watchers only read: no append of theirs reloads node b, only the hints and the re-reads
    // after each new subscription bring it the ops.
    const watchers = [openClient(cleanup, b, 'r0'), openClient(cleanup, b, 'r1')];
    await Promise.all(watchers.map((w) => w.doc.ready));
    let killing = true;
    let killed = 0;
    const killer = (async () => {
      while (killing) {
        await sleep(100 + below(random, 150));
        killed += Number(await redis.admin.client('KILL', 'TYPE', 'pubsub'));
      }
    })();
    await Promise.all(writers.map((w) => typeAway(w, seededRandom(below(random, 2 ** 31)), 60, 40)));
    killing = false;
    await killer;
    // The last edits land while no subscription listens (they are acknowledged well before
    // ioredis reconnects): no later hint brings them; only the read after resubscribing does.
    const [w0] = writers as [Client];
    for (let k = 0; k < 3; k++) {
      killed += Number(await redis.admin.client('KILL', 'TYPE', 'pubsub'));
      if (randomEdit(w0.doc, random, `«w0-last${k}»`).kind === 'insert') w0.markers.push(`«w0-last${k}»`);
      await within(w0.doc.synced(), 5000, 'the last edits acknowledged');
    }
    expect(killed).toBeGreaterThan(4);
    await checkConverged(cleanup, [a, b], [...writers, ...watchers]);
    for (const w of watchers) expect(w.opens).toBe(1);
    expect(await metric(b, 'otter_fanout_subscriptions_total')).toBeGreaterThan(2);
  });

  it('presence across nodes: a selection made on one node is shown on the other, follows its edits, and vanishes once its node dies', async () => {
    const prefix = `presence${prefixes++}:`;
    const [a, b] = (await Promise.all([startNode(cleanup, 'a', redis.url, prefix), startNode(cleanup, 'b', redis.url, prefix)])) as [Node, Node];
    const mover = openClient(cleanup, a, 'mover');
    const viewer = openClient(cleanup, b, 'viewer');
    await Promise.all([mover.doc.ready, viewer.doc.ready]);
    mover.doc.insert(0, 'hello world');
    await within(mover.doc.synced(), 5000, 'the insert acknowledged');
    mover.doc.setSelection({ anchor: 6, head: 11 });
    const seen = (): string =>
      JSON.stringify([...viewer.doc.presences.values()].map((p) => [p.selection, viewer.doc.text]));
    await waitFor('the viewer on b to see the selection made on a', () => seen() === JSON.stringify([[[{ anchor: 6, head: 11 }], 'hello world']]), 10_000, seen);
    // The viewer's own edit before the selection moves it, as on the node of the mover.
    viewer.doc.insert(0, '>> ');
    await waitFor('the selection to follow the edit', () => seen() === JSON.stringify([[[{ anchor: 9, head: 14 }], '>> hello world']]), 10_000, seen);
    // The mover's node dies; the mover cannot reach another (its target stays on a).
    a.cli.child.kill('SIGKILL');
    await within(a.cli.exited, 5000, 'node a dying');
    await waitFor("the dead node's presence to vanish on b", () => viewer.doc.presences.size === 0, 12_000, seen);
  });

  it("a selection made on one node before the other holds the document is shown there once it does: a document's presences are asked for as its channels are subscribed", async () => {
    const prefix = `late-presence${prefixes++}:`;
    const [a, b] = (await Promise.all([startNode(cleanup, 'a', redis.url, prefix), startNode(cleanup, 'b', redis.url, prefix)])) as [Node, Node];
    const mover = openClient(cleanup, a, 'mover');
    await mover.doc.ready;
    mover.doc.insert(0, 'hello world');
    await within(mover.doc.synced(), 5000, 'the insert acknowledged');
    mover.doc.setSelection({ anchor: 6, head: 11 });
    // Relayed while node b holds nothing, so hears nothing of it.
    await sleep(300);
    const viewer = openClient(cleanup, b, 'viewer');
    await viewer.doc.ready;
    const seen = (): string =>
      JSON.stringify([...viewer.doc.presences.values()].map((p) => [p.selection, viewer.doc.text]));
    await waitFor('the viewer on b to see the selection made earlier on a', () => seen() === JSON.stringify([[[{ anchor: 6, head: 11 }], 'hello world']]), 10_000, seen);
  });

  it('a node SIGKILLed mid-stream: its clients reconnect to another node, resend what was in flight once, and all converge', async () => {
    const random = seededRandom(seedOf(FILE, 'node killed'));
    const prefix = `sigkill${prefixes++}:`;
    const [a, b] = (await Promise.all([startNode(cleanup, 'a', redis.url, prefix), startNode(cleanup, 'b', redis.url, prefix)])) as [Node, Node];
    const clients = [openClient(cleanup, a, 'k0'), openClient(cleanup, a, 'k1'), openClient(cleanup, b, 'k2'), openClient(cleanup, b, 'k3')];
    const typing = Promise.all(clients.map((c) => typeAway(c, seededRandom(below(random, 2 ** 31)), 40)));
    await sleep(300 + below(random, 300));
    // The load balancer sends reconnections elsewhere once the node is gone.
    for (const c of clients) c.target.url = b.ws;
    a.cli.child.kill('SIGKILL');
    await within(a.cli.exited, 5000, 'node a dying');
    await typing;
    await checkConverged(cleanup, [b], clients);
    expect(clients[0]?.opens).toBeGreaterThan(1);
  });
});
