/**
 * Several `otter serve --redis` nodes over a private Redis, with real clients, for the
 * multi-node end-to-end tests: a `redis-server` of a test's own (a free port, AOF with
 * `appendfsync always`, in a temporary directory; stoppable and restartable), nodes as child
 * processes running the command line from source (`node --import tsx src/cli.ts serve --redis …`),
 * clients (an `otter/client` Connection over a {@link ClientNetwork}, with their frames checked),
 * random typing with unique markers, and the convergence check. The Redis on 6379 is never
 * touched. Without `redis-server` on PATH such a test is skipped, saying so, except with
 * CI=true, where it fails.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { Connection } from '../../src/client/connection.js';
import type { CollaborativeDocument, ResetEvent } from '../../src/client/document.js';
import { apply } from '../../src/ot/index.js';
import { verifyChain } from '../../src/server/integrity.js';
import type { RedisTarget } from '../../src/server/redis-connection.js';
import { RedisStore } from '../../src/server/redis-store.js';
import { type Cleanup, markerCounts, randomEdit, tempDir } from './helpers.js';
import { CliProcess, ROOT, freePort, parseMetrics, request } from '../product/helpers.js';
import { ClientNetwork } from '../support/network.js';
import { type Random, below } from '../support/random.js';
import { IN_CI } from '../support/redis.js';
import { sleep, waitFor, within } from '../support/wait.js';

/** Whether `redis-server` is on PATH. */
export const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;

/**
 * Whether the tests of `file` (a name such as `multi-node.test`) that need `redis-server` are
 * skipped: true without it outside CI, and then says so on the console. With CI=true it is
 * false, so that {@link RedisProcess.started} fails them.
 */
export function skipWithoutRedis(file: string): boolean {
  const skip = !HAVE_REDIS && !IN_CI;
  if (skip) console.warn(`[${file}] SKIPPED: redis-server is not on PATH (install Redis to run it)`);
  return skip;
}

/**
 * A random seed for the test `name` of `file`: OTTER_SEED if set, otherwise a fresh one;
 * printed as `[file] name: seed n (rerun with OTTER_SEED=n)`.
 */
export function seedOf(file: string, name: string): number {
  const seed = process.env.OTTER_SEED !== undefined ? Number(process.env.OTTER_SEED) : Math.floor(Math.random() * 2 ** 31);
  console.log(`[${file}] ${name}: seed ${seed} (rerun with OTTER_SEED=${seed})`);
  return seed;
}

/** The line a node prints once it listens: group 1 its HTTP origin, 2 and 3 its host and port. */
export const BANNER = /^Otter is running: open (http:\/\/(\S+):(\d+))\/\?doc=hello/m;

/** A private redis-server on a fixed port and directory, which can be stopped and started again. */
export class RedisProcess {
  private child: ChildProcess | undefined;
  readonly url: string;
  /** A connection for test commands; a command fails after one retry while the server is down. */
  readonly admin: Redis;

  private constructor(
    cleanup: Cleanup,
    readonly port: number,
    private readonly dir: string,
  ) {
    this.url = `redis://127.0.0.1:${port}`;
    this.admin = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    this.admin.on('error', () => {}); // refused while redis-server is down; commands report failures
    cleanup.add(() => this.admin.disconnect());
    cleanup.add(() => this.stop('SIGKILL'));
  }

  /**
   * A redis-server on a free port in a new temporary directory named `dirPrefix…`, started and
   * answering; killed, disconnected and its directory removed at `cleanup`. Throws if
   * `redis-server` is not on PATH.
   */
  static async started(cleanup: Cleanup, dirPrefix: string): Promise<RedisProcess> {
    if (!HAVE_REDIS) throw new Error('redis-server is required with CI=true, and it is not on PATH');
    const redis = new RedisProcess(cleanup, await freePort(), tempDir(cleanup, dirPrefix));
    await redis.start();
    return redis;
  }

  /** Starts redis-server (AOF, fsync on every write) on its port and directory and waits until it answers. */
  async start(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir];
    this.child = spawn('redis-server', args, { stdio: 'ignore' });
    await waitFor('the private redis-server to answer', async () => {
      if (this.admin.status !== 'ready' && this.admin.status !== 'connecting' && this.admin.status !== 'reconnecting') {
        await this.admin.connect().catch(() => undefined);
      }
      return (await this.admin.ping()) === 'PONG';
    }, 10_000);
  }

  /** Ends redis-server with `signal` (SIGTERM: a shutdown that fsyncs; SIGKILL: a crash); nothing if it is not running. */
  async stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await within(exited, 10_000, `redis-server exiting after ${signal}`);
  }
}

/** `otter …args` run from source, with the OTTER_* variables of the test environment replaced by `env`. */
export function cliFromSource(args: string[], env: Record<string, string> = {}): CliProcess {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OTTER_')) base[k] = v;
  const argv = ['--import', 'tsx', join(ROOT, 'src/cli.ts'), ...args];
  return new CliProcess(spawn(process.execPath, argv, { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** A running `otter serve --redis` (or `--redis-cluster`) child, and the Redis and key prefix it serves from. */
export interface Node {
  readonly name: string;
  readonly cli: CliProcess;
  /** Its HTTP origin. */
  readonly http: string;
  /** Its WebSocket origin. */
  readonly ws: string;
  /** A Redis URL, or a Cluster's seeds. */
  readonly redis: RedisTarget;
  readonly prefix: string;
}

/**
 * Starts `otter serve --redis URL --redis-prefix prefix` (or `--redis-cluster URL,…` for a
 * Cluster's seeds, `--redis-sentinel URL,…` for Sentinels; port 0, log level warn) and resolves once it prints its banner; rejects if
 * it exits first or takes over 20 s. Killed at `cleanup`.
 */
export async function startNode(cleanup: Cleanup, name: string, redis: RedisTarget, prefix: string): Promise<Node> {
  const store =
    typeof redis === 'string'
      ? ['--redis', redis]
      : 'cluster' in redis
        ? ['--redis-cluster', redis.cluster.join(',')]
        : ['--redis', redis.master, '--redis-sentinel', redis.sentinels.join(',')];
  const cli = cliFromSource(['serve', '--port', '0', ...store, '--redis-prefix', prefix, '--log-level', 'warn']);
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
  return { name, cli, http: m[1] as string, ws: `ws://${m[2]}:${m[3]}`, redis, prefix };
}

/** A client of one document whose socket goes to `target.url` (changeable: a failover), with what it was told. */
export interface Client {
  readonly name: string;
  readonly connection: Connection;
  readonly doc: CollaborativeDocument;
  readonly net: ClientNetwork;
  readonly target: { url: string };
  /** Versions received out of order or twice, errors of the connection and the document. */
  readonly violations: string[];
  /** How many `opened` answers it got. */
  opens: number;
  /** Error codes the document received, in order. */
  readonly errors: string[];
  readonly resets: ResetEvent[];
  /** Markers this client typed. */
  readonly markers: string[];
  /** How many of `markers` the server is known to have acknowledged (see {@link noteAcked}). */
  acked: number;
}

/**
 * A client named `name` (its client id) with document `docId` open through `node`; reconnects
 * after 20 to 200 ms, resends after a retryable refusal after `retryDelay` ms (doubling). Every
 * version after an `opened` must come exactly once and in order, as an ack or a live op, or it
 * is noted in `violations`. Closed, its sockets terminated, at `cleanup`.
 */
export function newClient(cleanup: Cleanup, node: Node, docId: string, name: string, retryDelay: number): Client {
  let expected: number | undefined;
  const client: Client = {
    name,
    target: { url: node.ws },
    violations: [],
    opens: 0,
    errors: [],
    resets: [],
    markers: [],
    acked: 0,
    net: new ClientNetwork({
      onIncoming: (frame) => {
        const value = JSON.parse(frame) as unknown;
        for (const m of (Array.isArray(value) ? value : [value]) as Array<Record<string, unknown>>) {
          if (m['doc'] !== docId) continue;
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
  const connection = new Connection(node.ws, { clientId: name, minReconnectDelay: 20, maxReconnectDelay: 200, retryDelay, WebSocket: Redirected });
  Object.assign(client, { connection, doc: connection.open(docId) });
  connection.on('error', (e) => client.violations.push(`error ${(e as { code?: string }).code ?? e.name}: ${e.message}`));
  client.doc.on('error', (m) => {
    client.errors.push(m.code);
    client.violations.push(`doc error ${m.code}: ${m.message}`);
  });
  client.doc.on('reset', (e) => client.resets.push(e));
  cleanup.add(() => {
    connection.close();
    for (const s of client.net.sockets) s.inner?.terminate();
  });
  return client;
}

/** Notes every marker typed so far as acknowledged if `client` has nothing unacknowledged. */
export function noteAcked(client: Client): void {
  if (client.doc.syncState.kind === 'synchronized' && client.doc.lifecycle.phase === 'live') client.acked = client.markers.length;
}

/**
 * Once the document of `client` is ready, makes random edits while `more(i)` holds for the
 * i-th, each after a pause of `minPause` plus a random number of ms below `pace`; each insert
 * carries the unique marker `«name-i»`, noted in `markers`; i counts from `first`, so that bursts
 * of typing by one client carry distinct markers. Before each edit, {@link noteAcked}.
 */
export async function typeWhile(client: Client, random: Random, more: (i: number) => boolean, pace: number, minPause = 0, first = 0): Promise<void> {
  await client.doc.ready;
  for (let i = first; more(i); i++) {
    await sleep(minPause + below(random, pace));
    noteAcked(client);
    const marker = `«${client.name}-${i}»`;
    if (randomEdit(client.doc, random, marker).kind === 'insert') client.markers.push(marker);
  }
}

/** One line per client: its target, connection, lifecycle and sync state, version, length, opens and error codes. */
export function describeAll(clients: readonly Client[]): string {
  return clients
    .map(
      (c) =>
        `${c.name} → ${c.target.url}: ${c.connection.state}, ${c.doc.lifecycle.phase}, ${c.doc.syncState.kind}, v${c.doc.version}, ${c.doc.text.length} units, opens ${c.opens}, errors ${c.errors.join(',')}`,
    )
    .join('\n');
}

/**
 * Waits (25 s at most) until every client is open, live and synchronized on one version and
 * text; then checks that a fresh client of each node reads the same, and that the log under
 * the nodes' Redis and prefix (those of the first node) runs 1…head with an unbroken checksum
 * chain replaying to that text. Returns the version, text and the document's epoch.
 */
export async function converged(
  cleanup: Cleanup,
  nodes: readonly Node[],
  clients: readonly Client[],
): Promise<{ version: number; text: string; epoch: string }> {
  await waitFor(
    'every client to converge on one version and text',
    () => {
      const [first] = clients as [Client];
      return clients.every(
        (c) => c.connection.state === 'open' && c.doc.lifecycle.phase === 'live' && c.doc.syncState.kind === 'synchronized' && c.doc.version === first.doc.version && c.doc.text === first.doc.text,
      );
    },
    25_000,
    () => `${describeAll(clients)}\n${nodes.map((n) => `${n.name} logged: ${(n.cli.stdout.split('\n').slice(1).join('\n') + n.cli.stderr).slice(-2000)}`).join('\n')}`,
  );
  const { id: docId, version, text } = (clients[0] as Client).doc;
  for (const node of nodes) {
    const reader = newClient(cleanup, node, docId, `reader-${node.name}`, 20);
    await within(reader.doc.ready, 10_000, `a reader opening ${docId} on ${node.name}`);
    expect({ node: node.name, version: reader.doc.version, text: reader.doc.text }).toEqual({ node: node.name, version, text });
  }
  const { redis, prefix } = nodes[0] as Node;
  const store = new RedisStore(redis, { prefix });
  try {
    const loaded = await store.load(docId);
    expect(loaded.head).toBe(version);
    const ops = await store.getOps(docId, 0, version);
    expect(ops.map((r) => r.version)).toEqual(Array.from({ length: version }, (_, i) => i + 1));
    verifyChain(docId, ops, 0);
    expect(ops.reduce((t, r) => apply(t, r.op), '')).toBe(text);
    return { version, text, epoch: loaded.epoch };
  } finally {
    await store.close();
  }
}

/** The markers of `markers` that are not in `text` exactly once, each as `marker ×count`. */
export function notOnce(text: string, markers: readonly string[]): string[] {
  const counts = markerCounts(text);
  return markers.filter((m) => counts.get(m) !== 1).map((m) => `${m} ×${counts.get(m) ?? 0}`);
}

/**
 * Waits (at most `ms`) until every node's `/readyz` answers 503 saying its store cannot be
 * written, and its clients have been refused a submit with the retryable `storage-failed`:
 * what a Redis that is down must do, rather than leave requests hanging.
 */
export async function expectRedisDown(nodes: readonly Node[], clients: readonly Client[], ms: number): Promise<void> {
  for (const node of nodes) {
    let body = '';
    await waitFor(`/readyz of ${node.name} to answer 503`, async () => {
      const answer = await request(`${node.http}/readyz`);
      body = answer.body;
      return answer.status === 503;
    }, ms, () => body);
    expect(body).toMatch(/cannot be written/);
  }
  await waitFor('a submit refused with storage-failed', () => clients.some((c) => c.errors.includes('storage-failed')), ms, () => describeAll(clients));
}

/** The value of a metric sample on `node` (0 when the sample is absent). */
export async function metric(node: Node, sample: string): Promise<number> {
  return parseMetrics((await request(`${node.http}/metrics`)).body).get(sample) ?? 0;
}
