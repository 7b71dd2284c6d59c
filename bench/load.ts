/**
 * Server load and fan-out: Otter vs ShareDB vs Yjs vs Hocuspocus over real WebSockets on
 * 127.0.0.1, on one server node or on several nodes sharing a backend.
 *
 *   npm run bench:load [-- --n 10,100,500 --k 40 --interval 20 --timeout 60 --systems otter,sharedb,yjs --nodes 1]
 *   npm run bench:load -- --multi        several nodes through Redis (see below; later flags override)
 *   … --repeat R                          every run R times, interleaved; the goals judge medians
 *
 * Systems: otter, sharedb, yjs (each server keeps its state to itself: one node only);
 * otter-sqlite (one node on a SQLite file); otter-redis, sharedb-redis (Postgres + Redis pub/sub)
 * and hocuspocus-redis, which run on any number of nodes (`--nodes 1,2` runs each at 1 and at 2).
 * Each run of a system that shares state gets its own private redis-server (and, for ShareDB,
 * emptied Postgres tables): bench/load-peers/backends.ts. `--multi` is `--systems
 * otter-redis,otter-sqlite,sharedb-redis,hocuspocus-redis --nodes 1,2 --n 16,64 --k 100
 * --interval 100 --timeout 60`: 10 keystrokes/s per client for 10 s.
 *
 * Scenario, identical for each system: fresh server nodes, each in a child process of its own (so
 * its CPU time is its own; node 0 is started first, then the others), one document, N clients in
 * this process, client i connected to node i mod nodes. Every client types K characters, one
 * keystroke every `interval` ms, client i offset by i·interval/N (staggered); each keystroke
 * goes right after the client's previous character (its first at ⌊len·i/N⌋). Every keystroke
 * is a distinct character, so each client can tell whose keystroke arrived and when (and through
 * which node it came). Before
 * the measured round, an unmeasured warm-up round (200 keystrokes by the first 10 clients, seen
 * by all N) JIT-compiles both sides' paths in the fresh server.
 *
 * Measured over the typing round (from the first keystroke until every client holds every
 * character and has nothing unacknowledged):
 *  - sustained ops/s: keystrokes that reached all N−1 other clients / (last arrival − first
 *    keystroke);
 *  - commits/s: ops the server sequenced in the round (the clients' version, where the system
 *    has one: not Yjs) over the same time. A client composes the keystrokes typed while its op
 *    awaits the ack into its next op, so a slow server commits fewer, larger ops;
 *  - latency: keystroke → arrival at another client, over every (keystroke, receiver) pair
 *    (p50, p99), and keystroke → arrival at the last of the N−1 others ("all", p99); with several
 *    nodes also over the cross-node pairs only (typed on one node, received on another: p50, p99);
 *  - frames/s and bytes/s the server sent (WebSocket messages and payload bytes, counted by the
 *    clients);
 *  - server CPU (user + system of the child processes, summed over the nodes) in total, per
 *    keystroke and as a share of one core over the round ("busy"), and the peak RSS (summed over
 *    the nodes); the shared backend's CPU per keystroke apart (the private redis-server, and
 *    every `postgres` process for ShareDB); the clients' CPU (this process, one core at most) as
 *    a share of the round, to show when the clients are the bottleneck;
 *  - at the end, whether every client holds the same text with every keystroke exactly once.
 * A round still unfinished `timeout` s after its first keystroke is aborted (the clients then
 * drop every incoming message unread) and reported as timed out. Prints the machine's load
 * average around each run: other processes on the machine skew latency more than CPU time.
 * Finishes with one JSON line.
 *
 * LOAD_VERBOSE=1 prints progress on stderr. LOAD_CPU_PROF=dir makes each server node write V8 CPU
 * profiles (setup and warm-up included) into a directory of dir named by system, nodes, N, sweep
 * and node: how bench/RESULTS.md's "Where the second node's CPU goes" was measured.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  PrivateRedis,
  REDIS_PERSISTENCE,
  postgresConfig,
  postgresCpu,
  postgresCpuSince,
  resetPostgres,
} from './load-peers/backends.js';
import { median } from './common.js';
import { type ClientHooks, type LoadClient, type NodeContext, type Peer, within } from './load-peers/common.js';
import type { ChildReply, ChildRequest } from './load-peers/server-child.js';
import { SYSTEMS, loadPeer } from './load-peers/systems.js';

/** The systems of this invocation (`--systems`), loaded. */
const peers = new Map<string, Peer>();
/** What `--multi` sets (flags after it override). */
const MULTI = ['--systems', 'otter-redis,otter-sqlite,sharedb-redis,hocuspocus-redis', '--nodes', '1,2', '--n', '16,64', '--k', '100', '--interval', '100', '--timeout', '60'];
const CHILD = fileURLToPath(new URL('./load-peers/server-child.ts', import.meta.url));
/**
 * Keystroke j is the character BASE + j: U+3400 … U+D7FF (CJK and Hangul blocks, below the
 * surrogates), so one UTF-16 code unit, one code point and 3 UTF-8 bytes each in every system.
 */
const BASE = 0x3400;
const MAX_KEYSTROKES = 0xd800 - BASE;
const CONNECT_BATCH = 50;
/** USER_HZ of /proc/<pid>/stat: 100 on every mainstream Linux. */
const CLOCK_TICKS = 100;
const SETUP_TIMEOUT = 60_000;
/** Keystrokes of the unmeasured warm-up round. */
const WARMUP_OPS = 200;
/** Clients typing in the warm-up round (every client receives it). */
const WARMUP_TYPISTS = 10;

interface Options {
  sizes: number[];
  k: number;
  interval: number;
  timeout: number;
  systems: string[];
  nodes: number[];
  /** Times each run is made: the whole sweep again, so the repeats of one run are spread over time. */
  repeat: number;
}

function parseArgs(args: string[]): Options {
  const o: Options = { sizes: [10, 100, 500], k: 40, interval: 20, timeout: 60, systems: ['otter', 'sharedb', 'yjs'], nodes: [1], repeat: 1 };
  const argv = args.flatMap((a) => (a === '--multi' ? MULTI : [a]));
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1] ?? '';
    i++;
    if (flag === '--n') o.sizes = value.split(',').map(Number);
    else if (flag === '--nodes') o.nodes = value.split(',').map(Number);
    else if (flag === '--k') o.k = Number(value);
    else if (flag === '--interval') o.interval = Number(value);
    else if (flag === '--timeout') o.timeout = Number(value);
    else if (flag === '--systems') o.systems = value.split(',');
    else if (flag === '--repeat') o.repeat = Number(value);
    else throw new Error(`unknown argument ${flag}`);
  }
  for (const s of o.systems) if (!SYSTEMS.includes(s)) throw new Error(`unknown system ${s}`);
  for (const k of o.nodes) if (!Number.isInteger(k) || k < 1) throw new Error(`a node count must be a positive integer, got ${k}`);
  if (!Number.isInteger(o.k) || o.k < 1) throw new Error(`K must be a positive integer, got ${o.k}`);
  if (!Number.isInteger(o.repeat) || o.repeat < 1) throw new Error(`the repeat count must be a positive integer, got ${o.repeat}`);
  if (!(o.interval > 0)) throw new Error(`the interval must be positive, got ${o.interval}`);
  if (!(o.timeout > 0)) throw new Error(`the timeout must be positive, got ${o.timeout}`);
  for (const n of o.sizes) {
    if (!Number.isInteger(n) || n < 2) throw new Error(`N must be an integer ≥ 2, got ${n}`);
    if (n * o.k + WARMUP_OPS + WARMUP_TYPISTS > MAX_KEYSTROKES) throw new Error(`N·K must be at most ${MAX_KEYSTROKES}`);
  }
  return o;
}

export interface RunResult {
  system: string;
  /** The `--systems` name. */
  key: string;
  /** Server nodes (child processes), clients assigned round-robin. */
  nodes: number;
  /** Which of the `--repeat` sweeps made it (from 1). */
  sweep: number;
  n: number;
  k: number;
  intervalMs: number;
  /** 'ok', 'timeout' or 'failed: …'. */
  status: string;
  connectMs: number;
  offeredOpsPerSec: number;
  sustainedOpsPerSec: number;
  /** Ops the server sequenced during the round (from the clients' versions; NaN without them). */
  committedOps: number;
  committedOpsPerSec: number;
  durationMs: number;
  /** Deliveries (keystroke, receiver) that arrived / expected. */
  delivered: number;
  expectedDeliveries: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  allArrivedP50Ms: number;
  allArrivedP99Ms: number;
  /** Over the (keystroke, receiver) pairs whose author and receiver are on different nodes. */
  crossLatencyP50Ms: number;
  crossLatencyP99Ms: number;
  frames: number;
  bytes: number;
  framesPerSec: number;
  bytesPerSec: number;
  serverCpuMs: number;
  /** The part of serverCpuMs spent in the kernel (system time): socket writes and reads. */
  serverSystemMs: number;
  /** Server CPU per keystroke (clients may compose several keystrokes into one submitted op). */
  serverCpuUsPerOp: number;
  /** Summed over the nodes. */
  serverPeakRssMb: number;
  /** CPU of the private redis-server over the round (NaN without one). */
  redisCpuMs: number;
  /** CPU of the `postgres` processes over the round (NaN when the system does not use Postgres). */
  postgresCpuMs: number;
  /** (Redis + Postgres CPU) per keystroke. */
  backendCpuUsPerOp: number;
  clientCpuMs: number;
  converged: boolean | null;
  convergence: string;
  problems: Record<string, number>;
  /** 1-minute load average of the machine before and after the run (other processes included). */
  loadAverage: [number, number];
}

// ─── the server child ──────────────────────────────────────────────────────────────────────

/** A server child's CPU time (all of it, and the kernel's part) and peak RSS. */
interface Usage {
  cpuMs: number;
  systemMs: number;
  rssMb: number;
}

class ServerChild {
  private nextId = 0;
  private readonly waiting = new Map<number, (r: Extract<ChildReply, { type: 'usage' }>) => void>();
  readonly url: Promise<string>;
  private readonly exited: Promise<void>;

  constructor(private readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    this.url = new Promise((resolve, reject) => {
      child.on('message', (m: ChildReply) => {
        if (m.type === 'ready') resolve(m.url);
        else if (m.type === 'failed') reject(new Error(m.error));
        else this.waiting.get(m.id)?.(m);
      });
      child.once('exit', (code) => reject(new Error(`server child exited with ${code}`)));
    });
  }

  /**
   * Starts a node; with LOAD_CPU_PROF=dir it writes V8 CPU profiles into dir/`label`-node<i>
   * when it stops (one of its main thread, one of tsx's loader thread).
   */
  static start(system: string, context: NodeContext, label: string): ServerChild {
    const profile = process.env.LOAD_CPU_PROF;
    const profiling = profile ? ['--cpu-prof', `--cpu-prof-dir=${path.join(profile, `${label}-node${context.node}`)}`] : [];
    return new ServerChild(
      fork(CHILD, [system, JSON.stringify(context)], { execArgv: ['--import', 'tsx', ...profiling], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
  }

  /**
   * The child's CPU time so far (of which `systemMs` in the kernel) and peak RSS: asked over
   * IPC (process.cpuUsage, µs), or, when a saturated child does not answer within 2 s, read
   * from /proc/<pid>/stat (10 ms ticks).
   */
  async usage(): Promise<Usage> {
    const id = this.nextId++;
    const asked = new Promise<Usage>((resolve) => {
      this.waiting.set(id, (m) => {
        this.waiting.delete(id);
        resolve({ cpuMs: (m.cpu.user + m.cpu.system) / 1000, systemMs: m.cpu.system / 1000, rssMb: m.rss / 2 ** 20 });
      });
      this.send({ type: 'usage', id });
    });
    try {
      return await within(asked, 2000, 'server CPU sample');
    } catch (e) {
      this.waiting.delete(id);
      const read = this.procUsage();
      if (read === undefined) throw e;
      return read;
    }
  }

  /** CPU time (user + system, all threads) and peak RSS of the child from /proc, if readable. */
  private procUsage(): Usage | undefined {
    try {
      const stat = readFileSync(`/proc/${this.child.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14 and 15 of stat (utime, stime), counted from the state field (3): 11 and 12.
      const ticks = Number(fields[11]) + Number(fields[12]);
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.child.pid}/status`, 'utf8'));
      return {
        cpuMs: (ticks * 1000) / CLOCK_TICKS,
        systemMs: (Number(fields[12]) * 1000) / CLOCK_TICKS,
        rssMb: hwm === null ? NaN : Number(hwm[1]) / 1024,
      };
    } catch {
      return undefined;
    }
  }

  private send(m: ChildRequest): void {
    if (this.child.connected) this.child.send(m);
  }

  async stop(): Promise<void> {
    this.send({ type: 'stop' });
    const killed = await within(this.exited, 5000, 'server stop').then(
      () => false,
      () => true,
    );
    if (killed) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

// ─── one run ───────────────────────────────────────────────────────────────────────────────

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Progress on stderr with LOAD_VERBOSE=1. */
const verbose = process.env.LOAD_VERBOSE === '1';
function trace(what: string): void {
  if (verbose) console.error(`[${(performance.now() / 1000).toFixed(2)} s] ${what}`);
}

/**
 * One typing round: keystrokes offset … offset + typists·kp − 1 (client i types offset + i·kp …),
 * and what arrived of them.
 */
class Round {
  readonly count: number;
  readonly expected: number;
  readonly sentAt: Float64Array;
  readonly arrivals: Int32Array;
  readonly lastArrival: Float64Array;
  readonly latencies: Float64Array;
  /** Latencies of the deliveries from a client on one node to a client on another. */
  readonly crossLatencies: Float64Array;
  delivered = 0;
  crossDelivered = 0;
  fired = 0;

  /**
   * `typists` of the `n` clients (the first ones) type `kp` keystrokes each; all `n` receive;
   * client i is on node i mod `nodes`.
   */
  constructor(
    readonly n: number,
    readonly offset: number,
    readonly kp: number,
    readonly typists: number,
    readonly nodes: number,
  ) {
    this.count = typists * kp;
    this.expected = this.count * (n - 1);
    this.sentAt = new Float64Array(this.count).fill(NaN);
    this.arrivals = new Int32Array(this.count);
    this.lastArrival = new Float64Array(this.count);
    this.latencies = new Float64Array(this.expected);
    this.crossLatencies = new Float64Array(nodes > 1 ? this.expected : 0);
  }

  has(idx: number): boolean {
    return idx >= this.offset && idx < this.offset + this.count;
  }

  /** Keystroke `idx` arrived at client `receiver`. */
  arrived(idx: number, receiver: number, now: number): void {
    const j = idx - this.offset;
    const latency = now - (this.sentAt[j] as number);
    if (this.delivered < this.expected) this.latencies[this.delivered] = latency;
    const author = Math.floor(j / this.kp);
    if (author % this.nodes !== receiver % this.nodes && this.crossDelivered < this.crossLatencies.length) {
      this.crossLatencies[this.crossDelivered++] = latency;
    }
    this.delivered++;
    this.arrivals[j] = (this.arrivals[j] as number) + 1;
    this.lastArrival[j] = now;
  }
}

/** The shared state of one run: its directory, and its private Redis and Postgres tables if the system uses them. */
interface RunBackend {
  dir: string;
  redis: PrivateRedis | undefined;
  postgres: NodeContext['postgres'];
}

/** What the runs used, for the report. */
const backendVersions: { redis?: string; postgres?: string } = {};

async function openBackend(peer: Peer): Promise<RunBackend> {
  const backend: RunBackend = { dir: mkdtempSync(path.join(os.tmpdir(), 'otter-load-')), redis: undefined, postgres: undefined };
  if (peer.shares?.redis === true) {
    backend.redis = await PrivateRedis.start();
    backendVersions.redis = backend.redis.version;
  }
  if (peer.shares?.postgres === true) {
    backend.postgres = postgresConfig();
    try {
      backendVersions.postgres = await resetPostgres(backend.postgres);
    } catch (e) {
      await closeBackend(backend);
      throw e;
    }
  }
  return backend;
}

async function closeBackend(backend: RunBackend): Promise<void> {
  await backend.redis?.stop();
  rmSync(backend.dir, { recursive: true, force: true });
}

async function run(system: string, nodes: number, n: number, o: Options, sweep: number): Promise<RunResult> {
  const peer = peerOf(system);
  const k = o.k;
  const problems: Record<string, number> = {};
  const problem = (what: string): void => {
    if (problems[what] === undefined) trace(`${peer.name} N=${n}: first problem: ${what}`);
    problems[what] = (problems[what] ?? 0) + 1;
  };
  const warmTypists = Math.min(n, WARMUP_TYPISTS);
  const warmup = new Round(n, 0, Math.ceil(WARMUP_OPS / warmTypists), warmTypists, nodes);
  const measured = new Round(n, warmup.count, k, n, nodes);
  const total = measured.count;
  const result: RunResult = {
    system: peer.name,
    key: system,
    nodes,
    sweep,
    n,
    k,
    intervalMs: o.interval,
    status: 'ok',
    connectMs: NaN,
    offeredOpsPerSec: (n * 1000) / o.interval,
    sustainedOpsPerSec: NaN,
    committedOps: NaN,
    committedOpsPerSec: NaN,
    durationMs: NaN,
    delivered: 0,
    expectedDeliveries: measured.expected,
    latencyP50Ms: NaN,
    latencyP99Ms: NaN,
    latencyMaxMs: NaN,
    allArrivedP50Ms: NaN,
    allArrivedP99Ms: NaN,
    crossLatencyP50Ms: NaN,
    crossLatencyP99Ms: NaN,
    frames: 0,
    bytes: 0,
    framesPerSec: NaN,
    bytesPerSec: NaN,
    serverCpuMs: NaN,
    serverSystemMs: NaN,
    serverCpuUsPerOp: NaN,
    serverPeakRssMb: NaN,
    redisCpuMs: NaN,
    postgresCpuMs: NaN,
    backendCpuUsPerOp: NaN,
    clientCpuMs: NaN,
    converged: null,
    convergence: 'not checked',
    problems,
    loadAverage: [os.loadavg()[0] as number, NaN],
  };

  let measuring = false;
  /** When the round under way is abandoned; once past it, every incoming message is dropped. */
  let deadline = Infinity;
  let aborted = false;
  let frames = 0;
  let bytes = 0;
  const hooksFor = (receiver: number): ClientHooks => ({
    remoteInsert(text) {
      const now = performance.now();
      for (let j = 0; j < text.length; j++) {
        const idx = text.charCodeAt(j) - BASE;
        if (measured.has(idx)) measured.arrived(idx, receiver, now);
        else if (warmup.has(idx)) warmup.arrived(idx, receiver, now);
        else problem('an insert the benchmark did not type arrived');
      }
    },
    frame(b) {
      if (aborted) return false;
      if (performance.now() > deadline) {
        // The client process may be too flooded to reach its own timers: stop here.
        aborted = true;
        return false;
      }
      if (measuring) {
        frames++;
        bytes += b;
      }
      return true;
    },
    problem,
  });

  let backend: RunBackend | undefined;
  const servers: ServerChild[] = [];
  const clients: LoadClient[] = [];
  /** Each client's last typed character: its cursor is right after it. */
  const last: (string | undefined)[] = new Array<string | undefined>(n).fill(undefined);

  /** Types `round` on the schedule; resolves true once it all arrived everywhere, false after `timeout` s. */
  const type = async (round: Round): Promise<boolean> => {
    const t0 = performance.now() + 10;
    deadline = t0 + o.timeout * 1000;
    const m = round.typists;
    const due = (e: number): number => t0 + Math.floor(e / m) * o.interval + ((e % m) * o.interval) / m;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const fire = (e: number): void => {
      const i = e % m;
      const j = i * round.kp + Math.floor(e / m);
      const client = clients[i] as LoadClient;
      const text = client.text();
      const prev = last[i];
      let pos = Math.floor((text.length * i) / n);
      if (prev !== undefined) {
        pos = text.indexOf(prev) + 1;
        if (pos === 0) problem('a client lost its own character');
      }
      const ch = String.fromCharCode(BASE + round.offset + j);
      round.sentAt[j] = performance.now();
      client.insert(pos, ch);
      last[i] = ch;
    };
    const tick = (): void => {
      const now = performance.now();
      while (round.fired < round.count && due(round.fired) <= now) fire(round.fired++);
      if (round.fired < round.count) timer = setTimeout(tick, Math.max(0, due(round.fired) - performance.now()));
    };
    timer = setTimeout(tick, Math.max(0, t0 - performance.now()));
    const done = (): boolean =>
      round.delivered >= round.expected && round.fired >= round.count && clients.every((c) => c.settled());
    while (!done() && !aborted && performance.now() < deadline) await sleep(5);
    clearTimeout(timer);
    if (done()) return true;
    aborted = true;
    return false;
  };

  try {
    const opened = await openBackend(peer);
    backend = opened;
    const start = (node: number): ServerChild => {
      const context = { node, dir: opened.dir, redisUrl: opened.redis?.url, postgres: opened.postgres };
      const server = ServerChild.start(system, context, `${system}-x${nodes}-n${n}-sweep${sweep}`);
      servers.push(server);
      return server;
    };
    const urls = [await within(start(0).url, 30_000, 'server start')];
    const others = Array.from({ length: nodes - 1 }, (_, i) => start(i + 1));
    urls.push(...(await within(Promise.all(others.map((s) => s.url)), 30_000, 'server start')));
    const connectStart = performance.now();
    await within(
      (async () => {
        for (let i = 0; i < n; i += CONNECT_BATCH) {
          const batch = [];
          for (let j = i; j < Math.min(n, i + CONNECT_BATCH); j++) batch.push(peer.connect(urls[j % nodes] as string, j, hooksFor(j)));
          clients.push(...(await Promise.all(batch)));
        }
      })(),
      SETUP_TIMEOUT,
      `connecting ${n} clients`,
    );
    result.connectMs = performance.now() - connectStart;
    trace(`${peer.name} N=${n}: ${n} clients connected in ${result.connectMs.toFixed(0)} ms`);
    // Warm-up round (not measured): JIT-compiles both sides' paths in this fresh server.
    if (!(await type(warmup))) {
      result.status = 'timeout';
      result.convergence = 'the warm-up round did not finish in time; nothing measured';
      return result;
    }
    trace(`${peer.name} N=${n}: warm-up round done`);
    await sleep(200);

    const usage = async (): Promise<Usage> => {
      const each = await Promise.all(servers.map((s) => s.usage()));
      const sum = (field: keyof Usage): number => each.reduce((t, u) => t + u[field], 0);
      return { cpuMs: sum('cpuMs'), systemMs: sum('systemMs'), rssMb: sum('rssMb') };
    };
    const cpu0 = await usage();
    const redis0 = opened.redis?.cpuMs() ?? NaN;
    const postgres0 = opened.postgres === undefined ? undefined : postgresCpu();
    const client0 = process.cpuUsage();
    /** The newest version any client holds: ops sequenced so far. */
    const sequenced = (): number => Math.max(...clients.map((c) => c.version()));
    const version0 = sequenced();
    measuring = true;
    const finished = await type(measured);
    measuring = false;
    const committedOps = sequenced() - version0;
    const cpu1 = await usage();
    const redisCpuMs = (opened.redis?.cpuMs() ?? NaN) - redis0;
    const postgresCpuMs = postgres0 === undefined ? NaN : postgresCpuSince(postgres0);
    const client1 = process.cpuUsage(client0);
    if (!finished) result.status = 'timeout';
    trace(`${peer.name} N=${n}: measured round ${finished ? 'done' : 'timed out'}`);

    let firstSent = Infinity;
    let lastSeen = 0;
    const all: number[] = [];
    for (let j = 0; j < total; j++) {
      const sent = measured.sentAt[j] as number;
      if (sent < firstSent) firstSent = sent;
      if ((measured.arrivals[j] as number) > 0) lastSeen = Math.max(lastSeen, measured.lastArrival[j] as number);
      if (measured.arrivals[j] === n - 1) all.push((measured.lastArrival[j] as number) - sent);
    }
    const durationMs = (finished ? lastSeen : Math.min(performance.now(), deadline)) - firstSent;
    const lat = measured.latencies.subarray(0, Math.min(measured.delivered, measured.expected)).sort();
    const cross = measured.crossLatencies.subarray(0, measured.crossDelivered).sort();
    const allSorted = Float64Array.from(all).sort();
    const serverCpuMs = cpu1.cpuMs - cpu0.cpuMs;
    Object.assign(result, {
      durationMs,
      delivered: measured.delivered,
      // Keystrokes that reached every other client, per second of the round.
      sustainedOpsPerSec: (all.length * 1000) / durationMs,
      committedOps,
      committedOpsPerSec: (committedOps * 1000) / durationMs,
      latencyP50Ms: percentile(lat, 0.5),
      latencyP99Ms: percentile(lat, 0.99),
      latencyMaxMs: lat.length > 0 ? (lat[lat.length - 1] as number) : NaN,
      allArrivedP50Ms: percentile(allSorted, 0.5),
      allArrivedP99Ms: percentile(allSorted, 0.99),
      crossLatencyP50Ms: percentile(cross, 0.5),
      crossLatencyP99Ms: percentile(cross, 0.99),
      frames,
      bytes,
      framesPerSec: (frames * 1000) / durationMs,
      bytesPerSec: (bytes * 1000) / durationMs,
      serverCpuMs,
      serverSystemMs: cpu1.systemMs - cpu0.systemMs,
      serverCpuUsPerOp: (serverCpuMs * 1000) / total,
      serverPeakRssMb: cpu1.rssMb,
      redisCpuMs,
      postgresCpuMs,
      backendCpuUsPerOp:
        Number.isNaN(redisCpuMs) && Number.isNaN(postgresCpuMs)
          ? NaN
          : (((Number.isNaN(redisCpuMs) ? 0 : redisCpuMs) + (Number.isNaN(postgresCpuMs) ? 0 : postgresCpuMs)) * 1000) / total,
      clientCpuMs: (client1.user + client1.system) / 1000,
    });

    // Convergence: every client holds the same text, containing every keystroke exactly once.
    const texts = clients.map((c) => c.text());
    const reference = texts[0] ?? '';
    const differing = texts.filter((t) => t !== reference).length;
    const typed = warmup.count + measured.count;
    const distinct = new Set(reference).size;
    const complete = reference.length === typed && distinct === typed;
    result.converged = differing === 0 && complete;
    result.convergence =
      differing > 0
        ? `${finished ? '' : 'timed out: '}${differing} of ${n} clients differ from client 0`
        : complete
          ? `all ${n} identical, ${typed} characters`
          : `all identical but ${reference.length} code units / ${distinct} distinct for ${typed} keystrokes`;
  } catch (e) {
    result.status = `failed: ${e instanceof Error ? e.message : String(e)}`;
  } finally {
    measuring = false;
    aborted = true;
    for (const c of clients) {
      try {
        c.close();
      } catch {
        // already gone
      }
    }
    await Promise.all(servers.map((s) => s.stop()));
    if (backend !== undefined) await closeBackend(backend);
    result.loadAverage[1] = os.loadavg()[0] as number;
    await sleep(200);
  }
  return result;
}

// ─── output ────────────────────────────────────────────────────────────────────────────────

function machine(): { cpu: string; cores: number; node: string; platform: string } {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown CPU',
    cores: cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.arch()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM`,
  };
}

function fmt(x: number, digits = 0): string {
  if (!Number.isFinite(x)) return '—';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ms(x: number): string {
  if (!Number.isFinite(x)) return '—';
  return x < 10 ? fmt(x, 2) : x < 100 ? fmt(x, 1) : fmt(x);
}

function pct(x: number): string {
  return Number.isFinite(x) ? `${Math.round(100 * x)}%` : '—';
}

function ratio(x: number, base: number): string {
  if (!Number.isFinite(x) || !Number.isFinite(base) || base === 0) return '—';
  const r = x / base;
  return `${r < 10 ? r.toFixed(2) : r.toFixed(1)}×`;
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const left = (c: number): boolean => c < 2 || c === head.length - 1; // names and the text column
  const line = (cells: string[]): string =>
    `| ${cells.map((cell, c) => (left(c) ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number))).join(' | ')} |`;
  const rule = widths.map((w, c) => (left(c) ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`));
  return [line(head), `|${rule.join('|')}|`, ...rows.map(line)].join('\n');
}

function statusCell(r: RunResult): string {
  if (r.status === 'timeout') {
    return r.delivered === 0 && Number.isNaN(r.durationMs)
      ? 'TIMEOUT in the warm-up round'
      : `TIMEOUT (${fmt((100 * r.delivered) / r.expectedDeliveries, 1)}% delivered)`;
  }
  if (r.status !== 'ok') return r.status;
  return r.converged ? 'converged' : `DIVERGED: ${r.convergence}`;
}

/** "Otter Redis ×2", or the bare name for one node. */
function label(r: RunResult): string {
  return r.nodes === 1 ? r.system : `${r.system} ×${r.nodes}`;
}

function printResults(results: RunResult[], o: Options): void {
  const multi = results.some((r) => r.nodes > 1 || !Number.isNaN(r.backendCpuUsPerOp));
  console.log(
    table(
      [
        'system',
        'nodes',
        'N',
        'ops/s offered',
        'ops/s sustained',
        'commits/s',
        'p50 ms',
        'p99 ms',
        ...(multi ? ['p99 cross-node ms'] : []),
        'p99 all ms',
        'frames/s',
        'KB/s',
        'server CPU ms',
        'server µs/key',
        ...(multi ? ['Redis+PG µs/key'] : []),
        'server busy',
        'server RSS MB',
        'clients busy',
        'result',
      ],
      results.map((r) => [
        r.system,
        String(r.nodes),
        String(r.n),
        fmt(r.offeredOpsPerSec),
        fmt(r.sustainedOpsPerSec),
        fmt(r.committedOpsPerSec),
        ms(r.latencyP50Ms),
        ms(r.latencyP99Ms),
        ...(multi ? [ms(r.crossLatencyP99Ms)] : []),
        ms(r.allArrivedP99Ms),
        fmt(r.framesPerSec),
        fmt(r.bytesPerSec / 1000),
        fmt(r.serverCpuMs),
        fmt(r.serverCpuUsPerOp),
        ...(multi ? [fmt(r.backendCpuUsPerOp)] : []),
        pct(r.serverCpuMs / r.durationMs),
        fmt(r.serverPeakRssMb),
        pct(r.clientCpuMs / r.durationMs),
        statusCell(r),
      ]),
    ),
  );
  // The base: the first system of --systems at the same N, on the most nodes it ran on.
  const baseOf = (n: number): RunResult | undefined => results.filter((b) => b.n === n && b.key === o.systems[0]).at(-1);
  const anyBase = results.map((r) => baseOf(r.n)).find((b) => b !== undefined);
  if (anyBase === undefined) return;
  console.log(`\nRatios vs ${label(anyBase)} at the same N (ops/s and commits/s: higher is better; the rest: lower is better):\n`);
  const rows: string[][] = [];
  for (const r of results) {
    const base = baseOf(r.n);
    if (base === undefined || r === base) continue;
    rows.push([
      label(r),
      String(r.n),
      ratio(r.sustainedOpsPerSec, base.sustainedOpsPerSec),
      ratio(r.committedOpsPerSec, base.committedOpsPerSec),
      ratio(r.latencyP50Ms, base.latencyP50Ms),
      ratio(r.latencyP99Ms, base.latencyP99Ms),
      ratio(r.allArrivedP99Ms, base.allArrivedP99Ms),
      ratio(r.framesPerSec, base.framesPerSec),
      ratio(r.bytesPerSec, base.bytesPerSec),
      ratio(r.serverCpuMs, base.serverCpuMs),
      ratio(r.serverPeakRssMb, base.serverPeakRssMb),
      [r, base]
        .filter((x) => x.status !== 'ok')
        .map((x) => `${label(x)} timed out (partial run)`)
        .join('; '),
    ]);
  }
  console.log(
    table(['system', 'N', 'ops/s sustained', 'commits/s', 'p50', 'p99', 'p99 all', 'frames/s', 'bytes/s', 'server CPU', 'server RSS', 'note'], rows),
  );
  printGoals(results);
}

/** "v" for one value; "median m (v1, v2, …)" for several, in sweep order. */
function spread(xs: readonly number[], f: (x: number) => string): string {
  return xs.length === 1 ? f(xs[0] as number) : `median ${f(median(xs))} (${xs.map(f).join(', ')})`;
}

/**
 * The scale-out goals, where the runs to judge them are there: Otter on 2 nodes sustains at
 * least 10× ShareDB's 2-node ops/s on one document at 64 clients; its cross-node p99 is under
 * 20 ms at 64 clients; its server CPU per keystroke (summed over the nodes) is at most 1.3× one
 * node's. With `--repeat`, a ratio is taken within each sweep (the runs made one after the
 * other) and the goal judged on the median over the sweeps.
 */
function printGoals(results: RunResult[]): void {
  /** The runs of `key` on `nodes` nodes at N=`n`, one per sweep, in sweep order. */
  const runs = (key: string, nodes: number, n: number): RunResult[] =>
    results.filter((r) => r.key === key && r.nodes === nodes && r.n === n).sort((a, b) => a.sweep - b.sweep);
  /** x(two, other) for each sweep that has both. */
  const paired = (twos: RunResult[], others: RunResult[], x: (two: RunResult, other: RunResult) => number): number[] =>
    twos.flatMap((two) => {
      const other = others.find((r) => r.sweep === two.sweep);
      return other === undefined ? [] : [x(two, other)];
    });
  const times = (x: number): string => ratio(x, 1);
  const lines: string[] = [];
  const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  for (const n of [...new Set(results.map((r) => r.n))]) {
    const twos = runs('otter-redis', 2, n);
    if (twos.length === 0) continue;
    const sharedb2 = runs('sharedb-redis', 2, n);
    const throughput = paired(twos, sharedb2, (two, other) => two.sustainedOpsPerSec / other.sustainedOpsPerSec);
    if (throughput.length > 0) {
      const possible = paired(twos, sharedb2, (two, other) => two.offeredOpsPerSec / other.sustainedOpsPerSec);
      const commits = paired(twos, sharedb2, (two, other) => two.committedOpsPerSec / other.committedOpsPerSec);
      const goal = (x: number[]): string => (n === 64 ? ` (goal ≥ 10×: ${verdict(median(x) >= 10)})` : '');
      lines.push(
        `N=${n}: Otter Redis ×2 vs ShareDB Redis ×2, keystrokes delivered/s: ${spread(throughput, times)}${goal(throughput)}` +
          (n === 64 ? `; at most ${spread(possible, times)} is possible at the offered ${fmt(twos[0]?.offeredOpsPerSec ?? NaN)} keystrokes/s` : ''),
      );
      lines.push(`N=${n}: Otter Redis ×2 vs ShareDB Redis ×2, ops committed/s: ${spread(commits, times)}${goal(commits)}`);
    }
    const cross = twos.map((r) => r.crossLatencyP99Ms);
    lines.push(`N=${n}: Otter Redis ×2 cross-node p99 ${spread(cross, (x) => `${ms(x)} ms`)}` + (n === 64 ? ` (goal < 20 ms: ${verdict(median(cross) < 20)})` : ''));
    for (const [key, nodes] of [['otter-redis', 1], ['otter-sqlite', 1], ['otter', 1]] as const) {
      const ones = runs(key, nodes, n);
      const cpu = paired(twos, ones, (two, one) => two.serverCpuUsPerOp / one.serverCpuUsPerOp);
      if (cpu.length === 0) continue;
      lines.push(
        `N=${n}: server CPU/key Otter Redis ×2 vs ${label(ones[0] as RunResult)}: ${spread(cpu, times)} ` +
          `(${spread(paired(twos, ones, (two) => two.serverCpuUsPerOp), (x) => `${fmt(x)} µs`)} vs ${spread(ones.map((r) => r.serverCpuUsPerOp), (x) => `${fmt(x)} µs`)}; goal ≤ 1.3×: ${verdict(median(cpu) <= 1.3)})`,
      );
    }
  }
  if (lines.length === 0) return;
  console.log('\nScale-out goals:\n');
  for (const l of lines) console.log(`  ${l}`);
}

/** The loaded system named `key`. */
function peerOf(key: string): Peer {
  const p = peers.get(key);
  if (p === undefined) throw new Error(`system ${key} is not loaded`);
  return p;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  for (const s of o.systems) peers.set(s, await loadPeer(s));
  const m = machine();
  const multi = o.nodes.some((k) => k > 1) || o.systems.some((s) => peerOf(s).shares !== undefined);
  console.log(
    multi
      ? '\n## Several nodes through Redis: Otter vs ShareDB vs Hocuspocus over WebSockets on 127.0.0.1\n'
      : '\n## Server load: Otter vs ShareDB vs Yjs over WebSockets on 127.0.0.1\n',
  );
  console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.platform} | Node ${m.node} | load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(
    `scenario: one document; N clients each type K=${o.k} characters, one every ${o.interval} ms (staggered); ` +
      `each server node in a child process (nodes: ${o.nodes.join(', ')}), clients in this process, round-robin over the nodes; ` +
      `timeout ${o.timeout} s per run`,
  );
  if (multi) {
    const postgres = o.systems.some((s) => peerOf(s).shares?.postgres === true);
    console.log(
      `  shared state of each run: a private redis-server ${REDIS_PERSISTENCE.map((a) => (a === '' ? "''" : a)).join(' ')}` +
        (postgres ? `; Postgres ${postgresConfig().database}, tables emptied` : ''),
    );
  }
  for (const s of o.systems) console.log(`  ${peerOf(s).name}: ${peerOf(s).setup}`);
  console.log(
    '  latency = keystroke → arrival at another client (all (keystroke, receiver) pairs); "all" = arrival at the last receiver;\n' +
      '  frames and bytes = WebSocket messages and payload bytes the server sent, counted by the clients\n',
  );
  const results: RunResult[] = [];
  for (const s of o.systems) {
    if (peerOf(s).shares === undefined && o.nodes.some((k) => k > 1)) {
      console.log(`  ${peerOf(s).name} keeps its state to itself: run on 1 node only`);
    }
  }
  for (let sweep = 1; sweep <= o.repeat; sweep++) {
    for (const n of o.sizes) {
      for (const s of o.systems) {
        for (const nodes of o.nodes) {
          if (nodes > 1 && peerOf(s).shares === undefined) continue;
          const started = performance.now();
          const r = await run(s, nodes, n, o, sweep);
          results.push(r);
          const problems = Object.entries(r.problems);
          console.log(
            `  ${label(r)} N=${n}${o.repeat > 1 ? ` (sweep ${sweep})` : ''}: ${statusCell(r)}, ${fmt(r.sustainedOpsPerSec)} ops/s, p99 ${ms(r.latencyP99Ms)} ms, ` +
              `server CPU ${fmt(r.serverCpuMs)} ms (${pct(r.serverSystemMs / r.serverCpuMs)} in the kernel; run took ${fmt((performance.now() - started) / 1000, 1)} s, ` +
              `load average ${r.loadAverage.map((x) => x.toFixed(1)).join(' → ')})` +
              (problems.length > 0 ? `; problems: ${problems.map(([p, c]) => `${c}× ${p}`).join('; ')}` : ''),
          );
        }
      }
    }
  }
  console.log('');
  printResults(results, o);
  console.log('');
  console.log(
    JSON.stringify({
      bench: 'load',
      machine: m,
      scenario: {
        k: o.k,
        intervalMs: o.interval,
        timeoutS: o.timeout,
        nodes: o.nodes,
        repeat: o.repeat,
        otterLimits: { messagesPerSecond: 1e6, bytesPerSecond: 1e9 },
        ...(backendVersions.redis === undefined ? {} : { redis: { version: backendVersions.redis, flags: REDIS_PERSISTENCE } }),
        ...(backendVersions.postgres === undefined ? {} : { postgres: backendVersions.postgres }),
      },
      results,
    }),
  );
}

await main();
