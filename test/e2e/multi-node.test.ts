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
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Connection } from '../../src/client/connection.js';
import type { CollaborativeDocument } from '../../src/client/document.js';
import { apply } from '../../src/ot/index.js';
import { verifyChain } from '../../src/server/integrity.js';
import { RedisStore } from '../../src/server/redis-store.js';
import { CliProcess, ROOT, freePort, parseMetrics, request } from '../product/helpers.js';
import { ClientNetwork } from '../support/network.js';
import { type Random, below, seededRandom } from '../support/random.js';
import { IN_CI } from '../support/redis.js';
import { sleep, waitFor, within } from '../support/wait.js';
import { Cleanup, markerCounts, randomEdit, tempDir } from './helpers.js';

const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;
if (!HAVE_REDIS && !IN_CI) console.warn('[multi-node.test] SKIPPED: redis-server is not on PATH (install Redis to run it)');

const DOC = 'shared';
const BANNER = /^Otter is running: open (http:\/\/(\S+):(\d+))\/\?doc=hello/m;

/** The URL of the private redis-server of this file. */
let redisUrl = '';
let admin: Redis;
const fileCleanup = new Cleanup();
let prefixes = 0;

/** A running `otter serve --redis` child. */
interface Node {
  readonly name: string;
  readonly cli: CliProcess;
  readonly http: string;
  readonly ws: string;
}

/** `otter …args` run from source, with the OTTER_* variables of the test environment replaced by `env`. */
function cliFromSource(args: string[], env: Record<string, string> = {}): CliProcess {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OTTER_')) base[k] = v;
  const argv = ['--import', 'tsx', join(ROOT, 'src/cli.ts'), ...args];
  return new CliProcess(spawn(process.execPath, argv, { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

async function startNode(cleanup: Cleanup, name: string, prefix: string, url = redisUrl): Promise<Node> {
  const cli = cliFromSource(['serve', '--port', '0', '--redis', url, '--redis-prefix', prefix, '--log-level', 'warn']);
  cleanup.add(() => cli.kill());
  await within(
    new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (BANNER.test(cli.stdout)) resolve();
      };
      cli.child.stdout?.on('data', check);
      check();
      void cli.exited.then((e) => reject(new Error(`node ${name} exited (${e.code ?? e.signal}) before listening: ${cli.stderr}`)));
    }),
    20_000,
    `node ${name} listening`,
  );
  const m = BANNER.exec(cli.stdout) as RegExpExecArray;
  return { name, cli, http: m[1] as string, ws: `ws://${m[2]}:${m[3]}` };
}

/** A client whose socket goes to `target.url` (changeable: a failover), with its frames checked. */
interface Client {
  readonly name: string;
  readonly connection: Connection;
  readonly doc: CollaborativeDocument;
  readonly net: ClientNetwork;
  readonly target: { url: string };
  /** Versions received out of order or twice, and other protocol surprises. */
  readonly violations: string[];
  /** How many `opened` answers it got. */
  opens: number;
  /** Markers this client typed. */
  readonly markers: string[];
}

function newClient(cleanup: Cleanup, node: Node, name: string): Client {
  let expected: number | undefined;
  const client: Client = {
    name,
    target: { url: node.ws },
    violations: [],
    opens: 0,
    markers: [],
    net: new ClientNetwork({
      onIncoming: (frame) => {
        const value = JSON.parse(frame) as unknown;
        for (const m of (Array.isArray(value) ? value : [value]) as Array<Record<string, unknown>>) {
          if (m['doc'] !== DOC) continue;
          const saw = (v: number, what: string): void => {
            if (expected === undefined || v !== expected + 1) client.violations.push(`${what} v${v} after v${String(expected)}`);
            expected = v;
          };
          if (m['type'] === 'opened') {
            client.opens++;
            expected = m['v'] as number;
          } else if (m['type'] === 'ops' && m['rid'] === undefined) {
            for (const e of m['ops'] as Array<{ v: number }>) saw(e.v, 'op');
          } else if (m['type'] === 'ack') {
            saw(m['v'] as number, 'ack');
          }
        }
      },
    }),
  } as unknown as Client;
  const Base = client.net.WebSocket;
  const Redirected = class extends Base {
    constructor(url: string) {
      super(url.replace(/^ws:\/\/[^/]+/, client.target.url));
    }
  };
  const connection = new Connection(node.ws, {
    clientId: name,
    minReconnectDelay: 20,
    maxReconnectDelay: 200,
    retryDelay: 20,
    WebSocket: Redirected,
  });
  Object.assign(client, { connection, doc: connection.open(DOC) });
  connection.on('error', (e) => client.violations.push(`error ${(e as { code?: string }).code ?? e.name}: ${e.message}`));
  client.doc.on('error', (m) => client.violations.push(`doc error ${m.code}: ${m.message}`));
  cleanup.add(() => {
    connection.close();
    for (const s of client.net.sockets) s.inner?.terminate();
  });
  return client;
}

/** `edits` random edits by `client`, each insert with a unique marker, paced randomly. */
async function typeAway(client: Client, random: Random, edits: number, pace = 30): Promise<void> {
  await client.doc.ready;
  for (let i = 0; i < edits; i++) {
    await sleep(below(random, pace));
    const marker = `«${client.name}-${i}»`;
    if (randomEdit(client.doc, random, marker).kind === 'insert') client.markers.push(marker);
  }
}

function describeAll(clients: readonly Client[]): string {
  return clients
    .map((c) => `${c.name} → ${c.target.url}: ${c.connection.state}, ${c.doc.syncState.kind}, v${c.doc.version}, ${c.doc.text.length} units, opens ${c.opens}`)
    .join('\n');
}

/**
 * Waits until every client is synchronized on one version and text, then checks that a fresh
 * client of each node reads the same, that the log in Redis holds exactly that history, and
 * that every marker typed is there once. Returns the head version.
 */
async function checkConverged(cleanup: Cleanup, prefix: string, nodes: readonly Node[], clients: readonly Client[]): Promise<number> {
  await waitFor(
    'every client to converge on one version and text',
    () => {
      const [first] = clients as [Client];
      return clients.every(
        (c) => c.connection.state === 'open' && c.doc.syncState.kind === 'synchronized' && c.doc.version === first.doc.version && c.doc.text === first.doc.text,
      );
    },
    20_000,
    () => `${describeAll(clients)}\n${nodes.map((n) => `${n.name} logged: ${(n.cli.stdout.split('\n').slice(1).join('\n') + n.cli.stderr).slice(-2000)}`).join('\n')}`,
  );
  const { version, text } = (clients[0] as Client).doc;
  for (const node of nodes) {
    const reader = newClient(cleanup, node, `reader-${node.name}`);
    await within(reader.doc.ready, 10_000, `a reader opening ${DOC} on ${node.name}`);
    expect({ node: node.name, version: reader.doc.version, text: reader.doc.text }).toEqual({ node: node.name, version, text });
  }
  const store = new RedisStore(redisUrl, { prefix });
  try {
    const loaded = await store.load(DOC);
    expect(loaded.head).toBe(version);
    const ops = await store.getOps(DOC, 0, version);
    expect(ops.map((r) => r.version)).toEqual(Array.from({ length: version }, (_, i) => i + 1));
    verifyChain(DOC, ops, 0);
    expect(ops.reduce((t, r) => apply(t, r.op), '')).toBe(text);
  } finally {
    await store.close();
  }
  for (const c of clients) expect({ client: c.name, violations: c.violations }).toEqual({ client: c.name, violations: [] });
  const counts = markerCounts(text);
  const typed = clients.flatMap((c) => c.markers);
  expect(typed.filter((m) => counts.get(m) !== 1).map((m) => `${m} ×${counts.get(m) ?? 0}`)).toEqual([]);
  expect(counts.size).toBe(typed.length);
  return version;
}

function seedOf(name: string): number {
  const seed = process.env.OTTER_SEED !== undefined ? Number(process.env.OTTER_SEED) : Math.floor(Math.random() * 2 ** 31);
  console.log(`[multi-node.test] ${name}: seed ${seed} (rerun with OTTER_SEED=${seed})`);
  return seed;
}

/** The value of a metric sample on `node`. */
async function metric(node: Node, sample: string): Promise<number> {
  return parseMetrics((await request(`${node.http}/metrics`)).body).get(sample) ?? 0;
}

describe('otter serve --redis: the command line', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  it('--help names --redis, --redis-prefix and their variables', async () => {
    const cli = cliFromSource(['--help']);
    cleanup.add(() => cli.kill());
    expect((await within(cli.exited, 20_000, 'otter --help')).code).toBe(0);
    for (const word of ['--redis URL', '--redis-prefix', 'OTTER_REDIS_URL', 'OTTER_REDIS_PREFIX']) expect(cli.stdout).toContain(word);
  });

  it('refuses --redis with --data or --memory (flags or variables), --redis-prefix alone, a URL that is not redis:// and a prefix with braces', async () => {
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['--redis', 'redis://127.0.0.1:1', '--memory'], {}, /--redis excludes --data and --memory/],
      [['--redis', 'redis://127.0.0.1:1', '--data', 'x.db'], {}, /--redis excludes --data and --memory/],
      [[], { OTTER_REDIS_URL: 'redis://127.0.0.1:1', OTTER_MEMORY: '1' }, /--redis excludes --data and --memory/],
      [['--redis-prefix', 'p:'], {}, /--redis-prefix needs --redis/],
      [['--redis', 'http://127.0.0.1:6379'], {}, /--redis must be a redis:\/\/ or rediss:\/\/ URL/],
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

  it('with Redis unreachable (OTTER_REDIS_URL), the node starts, /readyz answers 503 naming the failure, and /healthz 200', async () => {
    const port = await freePort();
    const cli = cliFromSource(['serve', '--port', '0', '--log-level', 'silent'], { OTTER_REDIS_URL: `redis://127.0.0.1:${port}` });
    cleanup.add(() => cli.kill());
    await waitFor('the banner', () => BANNER.test(cli.stdout), 20_000, () => cli.stderr);
    const http = (BANNER.exec(cli.stdout) as RegExpExecArray)[1] as string;
    let body = '';
    await waitFor('/readyz to answer 503', async () => {
      const answer = await request(`${http}/readyz`);
      body = answer.body;
      return answer.status === 503 && body.includes('cannot be written');
    }, 10_000, () => body);
    expect(body).toMatch(/ECONNREFUSED|max retries|did not answer/);
    expect((await request(`${http}/healthz`)).status).toBe(200);
  });
});

describe.skipIf(!HAVE_REDIS && !IN_CI)('several otter serve --redis nodes', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  beforeAll(async () => {
    if (!HAVE_REDIS) throw new Error('redis-server is required with CI=true, and it is not on PATH');
    const port = await freePort();
    const dir = tempDir(fileCleanup, 'otter-redis-');
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir];
    const child: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
    fileCleanup.add(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await within(exited, 5000, 'redis-server exiting');
      }
    });
    redisUrl = `redis://127.0.0.1:${port}`;
    admin = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    admin.on('error', () => {}); // refused until redis-server listens; commands report failures
    fileCleanup.add(() => admin.disconnect());
    await waitFor('the private redis-server to answer', async () => {
      if (admin.status !== 'ready') await admin.connect().catch(() => undefined);
      return (await admin.ping()) === 'PONG';
    }, 10_000);
  });

  afterAll(() => fileCleanup.run());

  for (const count of [2, 3]) {
    it(`${count} nodes, two clients on each, random concurrent edits: every client and node end equal, the log is contiguous, each marker once, nothing missed or twice`, async () => {
      const random = seededRandom(seedOf(`${count} nodes`));
      const prefix = `spread${prefixes++}:`;
      const nodes = await Promise.all(Array.from({ length: count }, (_, i) => startNode(cleanup, `n${i}`, prefix)));
      const clients = Array.from({ length: 2 * count }, (_, i) => newClient(cleanup, nodes[i % count] as Node, `c${i}`));
      await Promise.all(clients.map((c) => typeAway(c, seededRandom(below(random, 2 ** 31)), 30)));
      await checkConverged(cleanup, prefix, nodes, clients);
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
    const random = seededRandom(seedOf('subscription killed'));
    const prefix = `killed${prefixes++}:`;
    const [a, b] = (await Promise.all([startNode(cleanup, 'a', prefix), startNode(cleanup, 'b', prefix)])) as [Node, Node];
    const writers = [newClient(cleanup, a, 'w0'), newClient(cleanup, a, 'w1')];
    // Watchers only read: no append of theirs reloads node b, only the hints and the re-reads
    // after each new subscription bring it the ops.
    const watchers = [newClient(cleanup, b, 'r0'), newClient(cleanup, b, 'r1')];
    await Promise.all(watchers.map((w) => w.doc.ready));
    let killing = true;
    let killed = 0;
    const killer = (async () => {
      while (killing) {
        await sleep(100 + below(random, 150));
        killed += Number(await admin.client('KILL', 'TYPE', 'pubsub'));
      }
    })();
    await Promise.all(writers.map((w) => typeAway(w, seededRandom(below(random, 2 ** 31)), 60, 40)));
    killing = false;
    await killer;
    // The last edits land while no subscription listens (they are acknowledged well before
    // ioredis reconnects): no later hint brings them; only the read after resubscribing does.
    const [w0] = writers as [Client];
    for (let k = 0; k < 3; k++) {
      killed += Number(await admin.client('KILL', 'TYPE', 'pubsub'));
      if (randomEdit(w0.doc, random, `«w0-last${k}»`).kind === 'insert') w0.markers.push(`«w0-last${k}»`);
      await within(w0.doc.synced(), 5000, 'the last edits acknowledged');
    }
    expect(killed).toBeGreaterThan(4);
    await checkConverged(cleanup, prefix, [a, b], [...writers, ...watchers]);
    for (const w of watchers) expect(w.opens).toBe(1);
    expect(await metric(b, 'otter_fanout_subscriptions_total')).toBeGreaterThan(2);
  });

  it('presence across nodes: a selection made on one node is shown on the other, follows its edits, and vanishes once its node dies', async () => {
    const prefix = `presence${prefixes++}:`;
    const [a, b] = (await Promise.all([startNode(cleanup, 'a', prefix), startNode(cleanup, 'b', prefix)])) as [Node, Node];
    const mover = newClient(cleanup, a, 'mover');
    const viewer = newClient(cleanup, b, 'viewer');
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

  it('a node SIGKILLed mid-stream: its clients reconnect to another node, resend what was in flight once, and all converge', async () => {
    const random = seededRandom(seedOf('node killed'));
    const prefix = `sigkill${prefixes++}:`;
    const [a, b] = (await Promise.all([startNode(cleanup, 'a', prefix), startNode(cleanup, 'b', prefix)])) as [Node, Node];
    const clients = [newClient(cleanup, a, 'k0'), newClient(cleanup, a, 'k1'), newClient(cleanup, b, 'k2'), newClient(cleanup, b, 'k3')];
    const typing = Promise.all(clients.map((c) => typeAway(c, seededRandom(below(random, 2 ** 31)), 40)));
    await sleep(300 + below(random, 300));
    // The load balancer sends reconnections elsewhere once the node is gone.
    for (const c of clients) c.target.url = b.ws;
    a.cli.child.kill('SIGKILL');
    await within(a.cli.exited, 5000, 'node a dying');
    await typing;
    await checkConverged(cleanup, prefix, [b], clients);
    expect(clients[0]?.opens).toBeGreaterThan(1);
  });
});
