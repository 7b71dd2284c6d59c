/**
 * Faults of the Redis under several `otter serve --redis` nodes, with real processes and
 * clients: Redis stopped and restarted mid-session (SIGTERM, which fsyncs the AOF, and
 * SIGKILL), Redis losing its data (FLUSHALL), and a node shut down gracefully.
 *
 * Each test starts its own `redis-server` (a free port, AOF with `appendfsync always`, in a
 * temporary directory it restarts on) and its own nodes: child processes running the command
 * line from source. The Redis on 6379 is never touched. Without `redis-server` on PATH the file
 * is skipped, saying so, except with CI=true, where it fails.
 *
 * The laws checked:
 * - Redis down: submits fail with the retryable `storage-failed` (the clients keep their edits
 *   pending and resend them), no request hangs, `/readyz` answers 503 on every node; once
 *   Redis is back, every marker is in the text exactly once, the log runs 1…head with an
 *   unbroken checksum chain, and every client and node agree.
 * - Redis killed (SIGKILL) with `appendfsync always`: no acknowledged op is lost — the
 *   document keeps its epoch, no client is told of lost data, each marker once.
 * - Redis emptied (FLUSHALL): the nodes notice that the document's epoch changed, their
 *   clients are told (a `reset` event: their text restored, or adopted), never left silently
 *   apart; the final text holds every marker exactly once — those acknowledged before the
 *   flush (lost by Redis, restored by their clients) and those typed after it.
 * The random seed is printed; OTTER_SEED=n replays one.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../src/client/connection.js';
import type { CollaborativeDocument, ResetEvent } from '../../src/client/document.js';
import { apply } from '../../src/ot/index.js';
import { verifyChain } from '../../src/server/integrity.js';
import { documentKeys } from '../../src/server/redis-keys.js';
import { RedisStore } from '../../src/server/redis-store.js';
import { CliProcess, ROOT, freePort, request } from '../product/helpers.js';
import { ClientNetwork } from '../support/network.js';
import { type Random, below, seededRandom } from '../support/random.js';
import { IN_CI } from '../support/redis.js';
import { sleep, waitFor, within } from '../support/wait.js';
import { Cleanup, markerCounts, randomEdit, tempDir } from './helpers.js';

const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;
if (!HAVE_REDIS && !IN_CI) console.warn('[redis-faults.test] SKIPPED: redis-server is not on PATH (install Redis to run it)');

const DOC = 'faulty';
const PREFIX = 'faults:';
const BANNER = /^Otter is running: open (http:\/\/(\S+):(\d+))\/\?doc=hello/m;

/** A private redis-server on a fixed port and directory, which can be stopped and started again. */
class RedisProcess {
  private child: ChildProcess | undefined;
  readonly url: string;
  readonly admin: Redis;

  constructor(
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

  /** Starts redis-server (AOF, fsync on every write) and waits until it answers. */
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

  /** Ends redis-server with `signal` (SIGTERM: a shutdown that fsyncs; SIGKILL: a crash). */
  async stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await within(exited, 10_000, `redis-server exiting after ${signal}`);
  }
}

/** A running `otter serve --redis` child. */
interface Node {
  readonly name: string;
  readonly cli: CliProcess;
  readonly http: string;
  readonly ws: string;
}

async function startNode(cleanup: Cleanup, name: string, url: string): Promise<Node> {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OTTER_')) base[k] = v;
  const argv = ['--import', 'tsx', join(ROOT, 'src/cli.ts'), 'serve', '--port', '0', '--redis', url, '--redis-prefix', PREFIX, '--log-level', 'warn'];
  const cli = new CliProcess(spawn(process.execPath, argv, { cwd: ROOT, env: base, stdio: ['ignore', 'pipe', 'pipe'] }));
  cleanup.add(() => cli.kill());
  await waitFor('node listening', () => BANNER.test(cli.stdout) || !cli.running, 20_000, () => cli.stderr);
  const m = BANNER.exec(cli.stdout);
  if (m === null) throw new Error(`node ${name} exited before listening: ${cli.stderr}`);
  return { name, cli, http: m[1] as string, ws: `ws://${m[2]}:${m[3]}` };
}

/** A client of one node, with what it was told. */
interface Client {
  readonly name: string;
  readonly connection: Connection;
  readonly doc: CollaborativeDocument;
  readonly net: ClientNetwork;
  /** Error codes it received, in order. */
  readonly errors: string[];
  readonly resets: ResetEvent[];
  /** Markers this client typed. */
  readonly markers: string[];
  /** How many of `markers` the server is known to have acknowledged (all typed before a synchronized moment). */
  acked: number;
}

function newClient(cleanup: Cleanup, node: Node, name: string): Client {
  const net = new ClientNetwork();
  const connection = new Connection(node.ws, { clientId: name, minReconnectDelay: 20, maxReconnectDelay: 200, retryDelay: 50, WebSocket: net.WebSocket });
  const doc = connection.open(DOC);
  const client: Client = { name, connection, doc, net, errors: [], resets: [], markers: [], acked: 0 };
  doc.on('error', (m) => client.errors.push(m.code));
  doc.on('reset', (e) => client.resets.push(e));
  cleanup.add(() => {
    connection.close();
    for (const s of net.sockets) s.inner?.terminate();
  });
  return client;
}

/** Notes every marker typed so far as acknowledged if `client` has nothing unacknowledged. */
function noteAcked(client: Client): void {
  if (client.doc.syncState.kind === 'synchronized' && client.doc.lifecycle.phase === 'live') client.acked = client.markers.length;
}

/** Types random edits on `client` (each insert with a unique marker) until `running()` says stop. */
async function typeWhile(client: Client, random: Random, running: () => boolean, pace = 40): Promise<void> {
  await client.doc.ready;
  for (let i = 0; running(); i++) {
    await sleep(10 + below(random, pace));
    noteAcked(client);
    const marker = `«${client.name}-${i}»`;
    if (randomEdit(client.doc, random, marker).kind === 'insert') client.markers.push(marker);
  }
}

function describeAll(clients: readonly Client[]): string {
  return clients
    .map((c) => `${c.name}: ${c.connection.state}, ${c.doc.lifecycle.phase}, ${c.doc.syncState.kind}, v${c.doc.version}, ${c.doc.text.length} units, errors ${c.errors.join(',')}`)
    .join('\n');
}

/**
 * Waits until every client is synchronized on one version and text; checks that a fresh
 * client of each node reads the same and that the log in Redis runs 1…head with an unbroken
 * checksum chain to that text. Returns the text and the document's epoch.
 */
async function converged(cleanup: Cleanup, redis: RedisProcess, nodes: readonly Node[], clients: readonly Client[]): Promise<{ text: string; epoch: string }> {
  await waitFor(
    'every client to converge on one version and text',
    () => {
      const [first] = clients as [Client];
      return clients.every(
        (c) => c.connection.state === 'open' && c.doc.lifecycle.phase === 'live' && c.doc.syncState.kind === 'synchronized' && c.doc.version === first.doc.version && c.doc.text === first.doc.text,
      );
    },
    25_000,
    () => `${describeAll(clients)}\n${nodes.map((n) => `${n.name} logged: ${(n.cli.stdout.split('\n').slice(1).join('\n') + n.cli.stderr).slice(-1500)}`).join('\n')}`,
  );
  const { version, text } = (clients[0] as Client).doc;
  for (const node of nodes) {
    const reader = newClient(cleanup, node, `reader-${node.name}`);
    await within(reader.doc.ready, 10_000, `a reader opening ${DOC} on ${node.name}`);
    expect({ node: node.name, version: reader.doc.version, text: reader.doc.text }).toEqual({ node: node.name, version, text });
  }
  const store = new RedisStore(redis.url, { prefix: PREFIX });
  try {
    const loaded = await store.load(DOC);
    expect(loaded.head).toBe(version);
    const ops = await store.getOps(DOC, 0, version);
    expect(ops.map((r) => r.version)).toEqual(Array.from({ length: version }, (_, i) => i + 1));
    verifyChain(DOC, ops, 0);
    expect(ops.reduce((t, r) => apply(t, r.op), '')).toBe(text);
    return { text, epoch: loaded.epoch };
  } finally {
    await store.close();
  }
}

/** The markers of `clients` that are not in `text` exactly once, with their counts. */
function notOnce(text: string, markers: readonly string[]): string[] {
  const counts = markerCounts(text);
  return markers.filter((m) => counts.get(m) !== 1).map((m) => `${m} ×${counts.get(m) ?? 0}`);
}

function seedOf(name: string): number {
  const seed = process.env.OTTER_SEED !== undefined ? Number(process.env.OTTER_SEED) : Math.floor(Math.random() * 2 ** 31);
  console.log(`[redis-faults.test] ${name}: seed ${seed} (rerun with OTTER_SEED=${seed})`);
  return seed;
}

/** A private Redis, two nodes on it, and two clients on each, all open on {@link DOC}. */
async function setUp(cleanup: Cleanup): Promise<{ redis: RedisProcess; nodes: [Node, Node]; clients: Client[] }> {
  if (!HAVE_REDIS) throw new Error('redis-server is required with CI=true, and it is not on PATH');
  const redis = new RedisProcess(cleanup, await freePort(), tempDir(cleanup, 'otter-redis-faults-'));
  await redis.start();
  const nodes = (await Promise.all([startNode(cleanup, 'a', redis.url), startNode(cleanup, 'b', redis.url)])) as [Node, Node];
  const clients = ['c0', 'c1', 'c2', 'c3'].map((name, i) => newClient(cleanup, nodes[i % 2] as Node, name));
  await within(Promise.all(clients.map((c) => c.doc.ready)), 10_000, 'the clients opening');
  return { redis, nodes, clients };
}

describe.skipIf(!HAVE_REDIS && !IN_CI)('several otter serve --redis nodes when Redis fails', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`Redis stopped (${signal}) mid-session and restarted on its data: submits fail retryably meanwhile, /readyz says 503, then every marker once, no acknowledged op lost, all converge`, async () => {
      const random = seededRandom(seedOf(`redis ${signal}`));
      const { redis, nodes, clients } = await setUp(cleanup);
      let typing = true;
      const typists = Promise.all(clients.map((c) => typeWhile(c, seededRandom(below(random, 2 ** 31)), () => typing)));
      await sleep(400 + below(random, 400));
      const epochBefore = (await redis.admin.hget(documentKeys(PREFIX, DOC).meta, 'epoch')) ?? '';
      expect(epochBefore).not.toBe('');
      await redis.stop(signal);
      // What every client had acknowledged when Redis went down.
      for (const c of clients) noteAcked(c);
      const acked = clients.flatMap((c) => c.markers.slice(0, c.acked));
      // Both nodes see Redis gone (a probe, or an append, failed) within a bounded time.
      for (const node of nodes) {
        let body = '';
        await waitFor(`/readyz of ${node.name} to answer 503`, async () => {
          const answer = await request(`${node.http}/readyz`);
          body = answer.body;
          return answer.status === 503;
        }, 15_000, () => body);
        expect(body).toMatch(/cannot be written/);
      }
      // The clients keep typing; their submits are refused as retryable, not left hanging.
      await waitFor('a submit refused with storage-failed', () => clients.some((c) => c.errors.includes('storage-failed')), 15_000, () => describeAll(clients));
      await sleep(300);
      await redis.start();
      await sleep(300 + below(random, 300));
      typing = false;
      await typists;
      const { text, epoch } = await converged(cleanup, redis, nodes, clients);
      expect(notOnce(text, clients.flatMap((c) => c.markers))).toEqual([]);
      expect(markerCounts(text).size).toBe(clients.reduce((n, c) => n + c.markers.length, 0));
      // Nothing acknowledged was lost: the document is the same incarnation, nobody was told of lost data.
      expect(acked.length).toBeGreaterThan(0);
      expect(notOnce(text, acked)).toEqual([]);
      expect(epoch).toBe(epochBefore);
      expect(clients.flatMap((c) => c.resets)).toEqual([]);
      for (const c of clients) expect({ client: c.name, errors: c.errors.filter((e) => e !== 'storage-failed') }).toEqual({ client: c.name, errors: [] });
      for (const node of nodes) expect((await request(`${node.http}/readyz`)).status).toBe(200);
    });
  }

  it('Redis emptied (FLUSHALL) mid-session: the nodes see the epoch change, every client is told (reset) and restores, each marker once', async () => {
    const random = seededRandom(seedOf('flushall'));
    const { redis, nodes, clients } = await setUp(cleanup);
    let typing = true;
    const typists = Promise.all(clients.map((c) => typeWhile(c, seededRandom(below(random, 2 ** 31)), () => typing)));
    await sleep(500 + below(random, 400));
    const epochBefore = (await redis.admin.hget(documentKeys(PREFIX, DOC).meta, 'epoch')) ?? '';
    expect(epochBefore).not.toBe('');
    await redis.admin.flushall();
    for (const c of clients) noteAcked(c);
    const acked = clients.flatMap((c) => c.markers.slice(0, c.acked));
    await sleep(1000 + below(random, 500));
    typing = false;
    await typists;
    const { text, epoch } = await converged(cleanup, redis, nodes, clients);
    // Every marker once: those acknowledged before the flush (lost by Redis) came back from the
    // clients that held them, those typed after it were sent on the new document.
    expect(acked.length).toBeGreaterThan(0);
    expect(notOnce(text, clients.flatMap((c) => c.markers))).toEqual([]);
    expect(markerCounts(text).size).toBe(clients.reduce((n, c) => n + c.markers.length, 0));
    // The document is a new incarnation, and every client was told that it lost the old one.
    expect(epoch).not.toBe(epochBefore);
    for (const c of clients) {
      expect({ client: c.name, lost: c.resets.map((e) => e.lost.epoch) }).toEqual({ client: c.name, lost: [epochBefore] });
    }
    expect(clients.flatMap((c) => c.resets).some((e) => e.action === 'restored')).toBe(true);
    for (const c of clients) expect({ client: c.name, errors: c.errors.filter((e) => e !== 'storage-failed') }).toEqual({ client: c.name, errors: [] });
  });

  it('a node shut down gracefully (SIGTERM): the presences of its connections vanish on the other node before its heartbeat key could expire', async () => {
    const { nodes, clients } = await setUp(cleanup);
    const [a] = nodes;
    const [mover, viewer] = clients as [Client, Client]; // c0 on a, c1 on b
    mover.doc.insert(0, 'hello world');
    await within(mover.doc.synced(), 5000, 'the insert acknowledged');
    mover.doc.setSelection({ anchor: 6, head: 11 });
    const seen = (): string => JSON.stringify([...viewer.doc.presences.entries()].map(([id, p]) => [id, p.selection]));
    await waitFor('the viewer on b to see the selection made on a', () => [...viewer.doc.presences.values()].some((p) => JSON.stringify(p.selection) === JSON.stringify([{ anchor: 6, head: 11 }])), 10_000, seen);
    // Only the presences of the clients of a go: c2 (on a) has none, c3 (on b) none either.
    await a.cli.stop('SIGTERM');
    // The heartbeat key lives 5 s: a departure seen well before that was relayed at shutdown.
    await waitFor('the presences of a to vanish on b', () => viewer.doc.presences.size === 0, 3000, seen);
  });
});
