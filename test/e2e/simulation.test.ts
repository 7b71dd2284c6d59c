/**
 * A randomized whole-system simulation: 2–8 real Connections over real sockets on one
 * document, random edits (emoji included, each insert carrying a unique marker «cI-N»),
 * random pauses, random socket kills (the client reconnects by itself), random half-open
 * connections (nothing gets through, nobody closes: both heartbeats must find out), random
 * offline spells (reconnection attempts fail for a while), random selections, random per-frame delivery
 * delays in both directions (per-socket order kept), and 1–2 restarts of the server on the
 * same SQLite file and port while the clients keep going.
 *
 * Checked: no committed op ever removes a marker (nobody deletes one: a commit that does
 * names the culprit); after each restart, the document reloaded from SQLite equals the one the
 * old server held, and every marker the clients had seen acknowledged is in it exactly once;
 * at the end, once every client is connected, synchronized and at the server's head, every
 * client's text equals the server's, every marker typed appears exactly once and no other
 * does, and (unless the run trims history) the op log replays to the text with every
 * (clientId, seq) once. No client reports an error other than `closed` (a submit that reached
 * a server shutting down; it is resent after the reconnect).
 *
 * Environment: OTTER_SEED=<n> runs that seed alone; OTTER_LONG=1 (npm run test:long) runs 100
 * seeds, by default 3; OTTER_SIM_TINY=1 makes half the runs keep a tiny history (see
 * `tiny` below); OTTER_VERBOSE=1 prints a summary of each run. A failure prints `seed=<n>`
 * and writes every client's frame trace to a temporary folder it names.
 *
 * The seed fixes the schedule of actions and delays; the interleaving with the network still
 * depends on timing, so rerunning a seed replays the same scenario, not necessarily the same
 * interleaving. Server limits are the defaults (no flooding: each client has at most one
 * submit in flight and throttled presence).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CollaborativeDocument } from '../../src/client/document.js';
import { apply } from '../../src/ot/index.js';
import { type OpRecord, type OtterServer, SqliteStore } from '../../src/server/index.js';
import {
  Cleanup,
  type ClientDoc,
  type TestClient,
  describeClients,
  headOf,
  markerCounts,
  newClient,
  randomEdit,
  startServer,
  stopServer,
  tempDir,
  waitConverged,
} from './helpers.js';
import { below, seededRandom } from '../support/random.js';
import { sleep } from '../support/wait.js';
import { makeTempDir } from '../support/temp-dir.js';

const LONG = process.env['OTTER_LONG'] === '1';
const ONE = process.env['OTTER_SEED'];
const SEEDS =
  ONE !== undefined && ONE !== ''
    ? [Number(ONE)]
    : LONG
      ? Array.from({ length: 100 }, (_, i) => 1000 + i)
      : [1, 2, 3];
const TINY = process.env['OTTER_SIM_TINY'] === '1';
/** Ms between the server's pings (clients ping twice as often and give up after 3×), so
 * half-open connections are found out within the run on both sides. */
const HEARTBEAT = 100;
const DOC = 'sim';

/** A failure with the seed and the last actions attached. */
class SimulationFailure extends Error {}

async function simulate(seed: number): Promise<void> {
  const cleanup = new Cleanup();
  const log: string[] = [];
  const say = (line: string): void => {
    log.push(line);
  };
  let clients: Array<TestClient & { doc: CollaborativeDocument }> = [];
  let server: OtterServer | undefined;
  try {
    const random = seededRandom(seed);
    const nClients = 2 + below(random, 7);
    const steps = 80 + below(random, 81);
    const nRestarts = 1 + below(random, 2);
    const restartAt = new Set<number>();
    while (restartAt.size < nRestarts) restartAt.add(Math.floor(steps * 0.15) + below(random, Math.floor(steps * 0.7)));
    const delayed = random() < 0.6;
    // With OTTER_SIM_TINY=1, half the runs keep a tiny history, so late clients resync from
    // snapshots (rebasing their pending edits, deciding from `opened.seq` whether their op in
    // flight landed) and late submissions are refused with history-gone. Off by default: it
    // currently fails on the snapshot-rebase bug shown by realtime.test.ts ("snapshot resync
    // with pending edits"): a pending insert moved into another client's marker, a pending
    // delete dropped.
    const tinyRoll = random() < 0.5;
    const tiny = TINY && tinyRoll;
    const sequencer = tiny ? { retention: { ops: 3 }, snapshotEvery: 2, memoryHistory: 2 } : {};
    say(
      `seed=${seed}: ${nClients} clients, ${steps} steps, restarts at ${[...restartAt].join(', ')}, ` +
        `delays ${delayed}, tiny history ${tiny}`,
    );

    const file = join(tempDir(cleanup, 'otter-sim-'), 'sim.db');
    server = await startServer(cleanup, { store: new SqliteStore(file), sequencer, heartbeatInterval: HEARTBEAT });
    const port = server.port;
    const url = server.url;

    clients = Array.from({ length: nClients }, (_, i) => {
      // Each client's delays come from their own stream, so network timing does not shift
      // the main schedule.
      const jitter = seededRandom(seed * 7919 + i);
      const delay = delayed ? () => (jitter() < 0.5 ? 0 : below(jitter, 25)) : undefined;
      const client = newClient(cleanup, url, `s${seed}-c${i}`, {
        heartbeatInterval: HEARTBEAT / 2,
        heartbeatTimeout: HEARTBEAT * 3,
        ...(delay === undefined ? {} : { delay }),
      });
      return Object.assign(client, { doc: client.open(DOC) });
    });
    const timers = new Set<ReturnType<typeof setTimeout>>();
    cleanup.add(() => timers.forEach((t) => clearTimeout(t)));
    await Promise.all(clients.map((c) => c.doc.ready));

    const typed: string[] = [];
    const problems: string[] = [];
    /**
     * Nobody ever deletes a marker, so no committed op may remove one: watch every commit,
     * on a shadow copy of the document, and name the first op that does.
     */
    const watch = async (s: OtterServer): Promise<void> => {
      // Listen first and read the head second, so no commit falls between the two.
      const early: OpRecord[] = [];
      let shadow: { version: number; text: string } | undefined;
      const check = (record: OpRecord): void => {
        const current = shadow as { version: number; text: string };
        if (record.version <= current.version) return;
        const before = markerCounts(current.text);
        current.text = apply(current.text, record.op);
        current.version = record.version;
        const after = markerCounts(current.text);
        const gone = [...before.keys()].filter((m) => (after.get(m) ?? 0) < (before.get(m) ?? 0));
        if (gone.length > 0) {
          problems.push(
            `v${record.version} by ${record.clientId} seq ${record.seq} removed ${gone.join(' ')}: op ${JSON.stringify(record.op)}`,
          );
        }
      };
      s.sequencer.onApplied((docId, record) => {
        if (docId !== DOC) return;
        if (shadow === undefined) early.push(record);
        else check(record);
      });
      shadow = { ...(await headOf(s, DOC)) };
      for (const record of early) check(record);
    };
    await watch(server);
    let restarting: Promise<void> = Promise.resolve();
    let restarts = 0;
    const restart = async (): Promise<void> => {
      const n = ++restarts;
      say(`restart ${n}: closing`);
      const old = server as OtterServer;
      await stopServer(old);
      const acked = clients.flatMap((c) => [...c.acks.of(DOC)]);
      // The old server's last state, from its memory (its sequencer has stopped taking work).
      const last = await headOf(old, DOC);
      server = await startServer(cleanup, { store: new SqliteStore(file), sequencer, heartbeatInterval: HEARTBEAT, port });
      await watch(server);
      const head = await headOf(server, DOC);
      say(`restart ${n}: up again at v${head.version}; ${acked.length} markers acknowledged before`);
      if (head.version !== last.version || head.text !== last.text) {
        problems.push(
          `after restart ${n}, the document reloaded from the store (v${head.version}, ${head.text.length} units) ` +
            `differs from the one the old server held (v${last.version}, ${last.text.length} units)`,
        );
      }
      const counts = markerCounts(head.text);
      const bad = acked.filter((m) => counts.get(m) !== 1).map((m) => `${m}×${counts.get(m) ?? 0}`);
      if (bad.length > 0) problems.push(`after restart ${n}, acknowledged markers lost or doubled: ${bad.join(' ')}`);
    };

    const count = new Array<number>(nClients).fill(0);
    for (let step = 0; step < steps; step++) {
      if (restartAt.has(step)) restarting = restarting.then(restart);
      const i = below(random, nClients);
      const client = clients[i] as (typeof clients)[number];
      const r = random();
      if (r < 0.72) {
        const burst = 1 + below(random, 3);
        for (let k = 0; k < burst; k++) {
          const marker = `«c${i}-${count[i]}»`;
          count[i] = (count[i] as number) + 1;
          const done = randomEdit(client.doc, random, marker, 0.3);
          if (done.kind === 'insert') typed.push(marker);
          say(`${step}: c${i} ${done.kind} ${done.kind === 'insert' ? JSON.stringify(done.text) : done.length} at ${done.pos}`);
        }
      } else if (r < 0.82) {
        say(`${step}: c${i} socket killed (${client.net.kill() ? 'was open' : 'was not open'})`);
      } else if (r < 0.84) {
        say(`${step}: c${i} connection half-open (${client.net.freeze() ? 'was open' : 'was not open'})`);
      } else if (r < 0.89) {
        const ms = 20 + below(random, 250);
        client.net.goOffline();
        say(`${step}: c${i} offline for ${ms} ms`);
        const t = setTimeout(() => {
          timers.delete(t);
          client.net.offline = false;
        }, ms);
        timers.add(t);
      } else if (r < 0.96) {
        const at = below(random, client.doc.text.length + 1);
        client.doc.setSelection({ anchor: at, head: Math.min(client.doc.text.length, at + below(random, 4)) });
        say(`${step}: c${i} selects at ${at}`);
      }
      await sleep(below(random, 4) === 0 ? 0 : below(random, 12));
    }

    await restarting;
    for (const t of timers) clearTimeout(t);
    for (const c of clients) c.net.offline = false;
    say('all back online; waiting for convergence');
    const all: ClientDoc[] = clients.map((c) => ({ name: c.name, connection: c.connection, doc: c.doc }));
    const live = server;
    const head = await waitConverged(() => live, DOC, all, 20_000);

    if (problems.length > 0) throw new Error(problems.join('\n'));
    for (const c of clients) expect(c.doc.text, `${c.name}'s text`).toBe(head.text);
    const counts = markerCounts(head.text);
    const wrong = typed.filter((m) => counts.get(m) !== 1).map((m) => `${m}×${counts.get(m) ?? 0}`);
    if (wrong.length > 0) throw new Error(`markers lost (×0) or doubled (×2+): ${wrong.join(' ')}`);
    const strangers = [...counts.keys()].filter((m) => !typed.includes(m));
    expect(strangers, 'markers nobody typed').toEqual([]);
    for (const c of clients) {
      for (const m of c.acks.of(DOC)) expect(counts.get(m), `acknowledged ${m}`).toBe(1);
    }
    if (!tiny) {
      // The whole log is still there: it replays to the text, every submission in it once.
      const ops = await live.sequencer.getOps(DOC, 0);
      expect(ops).toHaveLength(head.version);
      const keys = ops.map((o) => `${o.clientId}#${o.seq}`);
      expect(new Set(keys).size, 'a (clientId, seq) committed twice').toBe(keys.length);
      expect(ops.reduce((text, o) => apply(text, o.op), '')).toBe(head.text);
    }
    // history-gone is expected only when the history is tiny (the client resyncs).
    const expected = tiny ? / (closed|history-gone): / : / closed: /;
    for (const c of clients) expect(c.errors.filter((e) => !expected.test(e)), `${c.name}'s errors`).toEqual([]);
    if (process.env['OTTER_VERBOSE'] === '1') {
      const sockets = clients.map((c) => c.net.sockets.filter((s) => s.wasOpen).length);
      const acked = clients.reduce((n, c) => n + c.acks.of(DOC).size, 0);
      console.log(
        `seed=${seed}: ${nClients} clients, ${restarts} restarts, v${head.version}, ${head.text.length} units, ` +
          `${typed.length} markers (${acked} seen acknowledged), sockets opened per client [${sockets.join(' ')}], ` +
          `errors ${clients.flatMap((c) => c.errors).length}`,
      );
    }
  } catch (e) {
    let state = server === undefined ? '' : await describeClients(server, DOC, clients).catch(() => '');
    for (const c of clients) if (c.errors.length > 0) state += `\n${c.name} errors: ${c.errors.join(' | ')}`;
    // Each client's frames and socket events, for the post-mortem.
    const dir = makeTempDir(`otter-sim-${seed}-`);
    for (const c of clients) writeFileSync(join(dir, `${c.name}.log`), `${c.net.trace.join('\n')}\n`);
    writeFileSync(join(dir, 'actions.log'), `${log.join('\n')}\n`);
    state += `\ntraces of every client's frames: ${dir}`;
    const failure = new SimulationFailure(
      `seed=${seed}: ${e instanceof Error ? e.message : String(e)}\n--- state ---\n${state}\n--- last actions ---\n${log.slice(-40).join('\n')}`,
    );
    if (e instanceof Error && e.stack !== undefined) failure.stack = `${failure.message}\n${e.stack}`;
    throw failure;
  } finally {
    await cleanup.run();
  }
}

describe('e2e: randomized simulation (real sockets, kills, offline spells, delays, restarts on SQLite)', () => {
  it.each(SEEDS)(
    'seed=%i',
    async (seed) => {
      try {
        await simulate(seed);
      } catch (e) {
        console.error(`seed=${seed} failed; rerun with: OTTER_SEED=${seed} npx vitest run test/e2e/simulation.test.ts`);
        throw e;
      }
    },
    LONG ? 120_000 : 30_000,
  );
});
