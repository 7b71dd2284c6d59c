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
 * - Redis emptied (FLUSHALL): each node finds the loss at its next commit and refuses the
 *   document as damaged (`storage-corrupt`) until restarted; no client takes the emptied
 *   store's text, every client keeps its text and its unsent edit.
 * The random seed is printed; OTTER_SEED=n replays one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { documentKeys } from '../../src/server/redis-keys.js';
import { request } from '../product/helpers.js';
import { below, seededRandom } from '../support/random.js';
import { type Client, type Node, RedisProcess, converged, describeAll, metric, newClient, noteAcked, notOnce, seedOf, skipWithoutRedis, startNode, typeWhile } from './redis-nodes.js';
import { sleep, waitFor, within } from '../support/wait.js';
import { Cleanup, markerCounts } from './helpers.js';

const FILE = 'redis-faults.test';
const SKIP = skipWithoutRedis(FILE);
const DOC = 'faulty';
const PREFIX = 'faults:';

/** A private Redis, two nodes on it, and two clients on each, all open on {@link DOC}. */
async function setUp(cleanup: Cleanup): Promise<{ redis: RedisProcess; nodes: [Node, Node]; clients: Client[] }> {
  const redis = await RedisProcess.started(cleanup, 'otter-redis-faults-');
  const nodes = (await Promise.all([startNode(cleanup, 'a', redis.url, PREFIX), startNode(cleanup, 'b', redis.url, PREFIX)])) as [Node, Node];
  const clients = ['c0', 'c1', 'c2', 'c3'].map((name, i) => newClient(cleanup, nodes[i % 2] as Node, DOC, name, 50));
  await within(Promise.all(clients.map((c) => c.doc.ready)), 10_000, 'the clients opening');
  return { redis, nodes, clients };
}

describe.skipIf(SKIP)('several otter serve --redis nodes when Redis fails', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`Redis stopped (${signal}) mid-session and restarted on its data: submits fail retryably meanwhile, /readyz says 503, then every marker once, no acknowledged op lost, all converge`, async () => {
      const random = seededRandom(seedOf(FILE, `redis ${signal}`));
      const { redis, nodes, clients } = await setUp(cleanup);
      let typing = true;
      const typists = Promise.all(clients.map((c) => typeWhile(c, seededRandom(below(random, 2 ** 31)), () => typing, 40, 10)));
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
      const { text, epoch } = await converged(cleanup, nodes, clients);
      expect(notOnce(text, clients.flatMap((c) => c.markers))).toEqual([]);
      expect(markerCounts(text).size).toBe(clients.reduce((n, c) => n + c.markers.length, 0));
      // Nothing acknowledged was lost: the document is the same incarnation, nobody was told of lost data.
      expect(acked.length).toBeGreaterThan(0);
      expect(notOnce(text, acked)).toEqual([]);
      expect(epoch).toBe(epochBefore);
      expect(clients.flatMap((c) => c.resets)).toEqual([]);
      // Refusals while the loss was being found (storage-failed), and a seq the new incarnation
    // never counted (seq-gap: Redis lost the client marks; the client heals from a snapshot).
    const expected = new Set(['storage-failed', 'seq-gap']);
    for (const c of clients) expect({ client: c.name, errors: c.errors.filter((e) => !expected.has(e)) }).toEqual({ client: c.name, errors: [] });
      for (const node of nodes) expect((await request(`${node.http}/readyz`)).status).toBe(200);
    });
  }

  it('Redis emptied (FLUSHALL) mid-session: both nodes find it at their next commit and refuse the document as damaged; no client takes what is left, every client keeps its text and edits', async () => {
    const random = seededRandom(seedOf(FILE, 'flushall'));
    const { redis, nodes, clients } = await setUp(cleanup);
    let typing = true;
    const typists = Promise.all(clients.map((c) => typeWhile(c, seededRandom(below(random, 2 ** 31)), () => typing, 40, 10)));
    await sleep(500 + below(random, 400));
    typing = false;
    await typists;
    await Promise.all(clients.map((c) => within(c.doc.synced(), 10_000, `${c.name}'s edits acknowledged`)));
    await waitFor('the clients to hold one text', () => new Set(clients.map((c) => c.doc.text)).size === 1, 10_000, () => describeAll(clients));
    const held = clients.map((c) => c.doc.text);
    await redis.admin.flushall();
    // Each client edits once more: each node finds the loss at its next commit.
    for (const c of clients) {
      c.doc.insert(0, `«${c.name}-after»`);
      c.markers.push(`«${c.name}-after»`);
    }
    await waitFor(
      'every client refused as damaged',
      () => clients.every((c) => c.errors.includes('storage-corrupt')),
      20_000,
      () => describeAll(clients),
    );
    for (const c of clients) {
      // Nothing was taken from the emptied store: the text held before, plus the new edit, unsent.
      expect({ client: c.name, text: c.doc.text }).toEqual({ client: c.name, text: `«${c.name}-after»${held[0] as string}` });
      expect({ client: c.name, resets: c.resets.length, unsaved: c.doc.unsaved }).toEqual({ client: c.name, resets: 0, unsaved: true });
    }
    // Nothing of the lost document was written back by a node.
    const meta = documentKeys(PREFIX, DOC).meta;
    expect(await redis.admin.hget(meta, 'head')).toBeNull();
    for (const node of nodes) expect(await metric(node, 'otter_storage_corrupt_total')).toBeGreaterThan(0);
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
