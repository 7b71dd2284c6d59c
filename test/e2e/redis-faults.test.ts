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
 * - Redis emptied (FLUSHALL), with clients typing through it or between bursts of typing: each
 *   node finds the new epoch (at its next commit, or from the other's change hint), takes the
 *   document as Redis now holds it and closes its connections; every client is told once (a
 *   `reset` naming the lost epoch) and restores or adopts; all converge with the Redis log, and
 *   each marker is there exactly once — those acknowledged before the flush came back from the
 *   clients that held them, once, not once per node. With nobody typing after the flush, the
 *   nodes' periodic check of the heads and epochs Redis records finds it.
 * The random seed is printed; OTTER_SEED=n replays one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { documentKeys } from '../../src/server/redis-keys.js';
import { request } from '../product/helpers.js';
import { type Random, below, seededRandom } from '../support/random.js';
import { type Client, type Node, RedisProcess, converged, describeAll, expectRedisDown, metric, newClient, noteAcked, notOnce, seedOf, skipWithoutRedis, startNode, typeWhile } from './redis-nodes.js';
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

/**
 * After a FLUSHALL: each node counted the lost document and none refused it as damaged; the
 * clients were refused nothing but retryable failures while the loss was found and ops made on
 * the lost epoch (`not-open`: they open it again and restore). No seq was refused as a gap: a
 * node reads a client's mark only under the epoch it holds, so the emptied Redis's lack of marks
 * is found to be a loss, not taken for a client that never wrote.
 */
async function expectLossHandled(nodes: readonly Node[], clients: readonly Client[]): Promise<void> {
  for (const node of nodes) {
    expect({ node: node.name, lost: await metric(node, 'otter_documents_lost_total') }).toEqual({ node: node.name, lost: 1 });
    expect({ node: node.name, corrupt: await metric(node, 'otter_storage_corrupt_total') }).toEqual({ node: node.name, corrupt: 0 });
  }
  const expected = new Set(['storage-failed', 'not-open']);
  for (const c of clients) expect({ client: c.name, errors: c.errors.filter((e) => !expected.has(e)) }).toEqual({ client: c.name, errors: [] });
}

/** Each client types `edits` edits; resolves, once all are acknowledged and equal, with the text they hold. */
async function typeAndSettle(clients: readonly Client[], random: Random, edits: number): Promise<string> {
  await Promise.all(clients.map((c) => typeWhile(c, seededRandom(below(random, 2 ** 31)), (i) => i < edits, 40, 10)));
  await Promise.all(clients.map((c) => within(c.doc.synced(), 10_000, `${c.name}'s edits acknowledged`)));
  await waitFor('the clients to hold one text', () => new Set(clients.map((c) => c.doc.text)).size === 1, 10_000, () => describeAll(clients));
  return (clients[0] as Client).doc.text;
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
      // Both nodes see Redis gone (a probe, or an append, failed) within a bounded time; the
      // clients keep typing, and their submits are refused as retryable, not left hanging.
      await expectRedisDown(nodes, clients, 15_000);
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

  it('Redis emptied (FLUSHALL) while four clients type through two nodes: both nodes take the new epoch, every client is told once (reset) and restores, all converge, each marker once', async () => {
    const random = seededRandom(seedOf(FILE, 'flushall typing'));
    const { redis, nodes, clients } = await setUp(cleanup);
    let typing = true;
    const typists = Promise.all(clients.map((c) => typeWhile(c, seededRandom(below(random, 2 ** 31)), () => typing, 40, 10)));
    await sleep(500 + below(random, 400));
    const epochBefore = (await redis.admin.hget(documentKeys(PREFIX, DOC).meta, 'epoch')) ?? '';
    expect(epochBefore).not.toBe('');
    await redis.admin.flushall();
    await sleep(1000 + below(random, 500));
    typing = false;
    await typists;
    const { text, epoch } = await converged(cleanup, nodes, clients);
    // Every marker once: those acknowledged before the flush (lost by Redis) came back from the
    // clients that held them, those typed after it were sent on the new document.
    expect(notOnce(text, clients.flatMap((c) => c.markers))).toEqual([]);
    expect(markerCounts(text).size).toBe(clients.reduce((n, c) => n + c.markers.length, 0));
    // The document is a new incarnation, and every client was told once that it lost the old one.
    expect(epoch).not.toBe(epochBefore);
    for (const c of clients) expect({ client: c.name, lost: c.resets.map((e) => e.lost.epoch) }).toEqual({ client: c.name, lost: [epochBefore] });
    expect(clients.flatMap((c) => c.resets).some((e) => e.action === 'restored')).toBe(true);
    await expectLossHandled(nodes, clients);
  });

  it('Redis emptied (FLUSHALL) between bursts of typing: the text every client held is restored once, not once per node or client, then the typing goes on', async () => {
    const random = seededRandom(seedOf(FILE, 'flushall between'));
    const { redis, nodes, clients } = await setUp(cleanup);
    await typeAndSettle(clients, random, 15);
    await redis.admin.flushall();
    await Promise.all(clients.map((c) => typeWhile(c, seededRandom(below(random, 2 ** 31)), (i) => i < 30, 40, 10, 15)));
    const { text } = await converged(cleanup, nodes, clients);
    // Each marker once: those held by all four at the flush were restored by the first client to
    // reopen and adopted by the others, not brought back once per client or node.
    expect(notOnce(text, clients.flatMap((c) => c.markers))).toEqual([]);
    expect(clients.flatMap((c) => c.resets).filter((e) => e.action === 'restored').length).toBeGreaterThan(0);
    for (const c of clients) expect({ client: c.name, resets: c.resets.length }).toEqual({ client: c.name, resets: 1 });
    await expectLossHandled(nodes, clients);
  });

  it('Redis emptied (FLUSHALL) while nobody types: both nodes find it within their check interval, every client is told (reset) and the text comes back once', async () => {
    const random = seededRandom(seedOf(FILE, 'flushall idle'));
    const { redis, nodes, clients } = await setUp(cleanup);
    const held = await typeAndSettle(clients, random, 10);
    await redis.admin.flushall();
    await waitFor('every client told of the loss', () => clients.every((c) => c.resets.length === 1), 15_000, () => describeAll(clients));
    const { text } = await converged(cleanup, nodes, clients);
    expect(text).toBe(held);
    expect(notOnce(text, clients.flatMap((c) => c.markers))).toEqual([]);
    await expectLossHandled(nodes, clients);
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
