/**
 * Server load and fan-out: Otter vs ShareDB vs Yjs over real WebSockets on 127.0.0.1.
 *
 *   npm run bench:load [-- --n 10,100,500 --k 40 --interval 20 --timeout 60 --systems otter,sharedb,yjs]
 *
 * Scenario, identical for each system: one fresh server in a child process (so its CPU time is
 * its own), one document, N clients in this process. Every client types K characters, one
 * keystroke every `interval` ms, client i offset by i·interval/N (staggered); each keystroke
 * goes right after the client's previous character (its first at ⌊len·i/N⌋). Every keystroke
 * is a distinct character, so each client can tell whose keystroke arrived and when. Before
 * the measured round, an unmeasured warm-up round (200 keystrokes by the first 10 clients, seen
 * by all N) JIT-compiles both sides' paths in the fresh server.
 *
 * Measured over the typing round (from the first keystroke until every client holds every
 * character and has nothing unacknowledged):
 *  - sustained ops/s: keystrokes that reached all N−1 other clients / (last arrival − first
 *    keystroke);
 *  - latency: keystroke → arrival at another client, over every (keystroke, receiver) pair
 *    (p50, p99), and keystroke → arrival at the last of the N−1 others ("all", p99);
 *  - frames/s and bytes/s the server sent (WebSocket messages and payload bytes, counted by the
 *    clients);
 *  - server CPU (user + system of the child process) in total, per keystroke and as a share of
 *    one core over the round ("busy"), and its peak RSS; the clients' CPU (this process, one
 *    core at most) as a share of the round, to show when the clients are the bottleneck;
 *  - at the end, whether every client holds the same text with every keystroke exactly once.
 * A round still unfinished `timeout` s after its first keystroke is aborted (the clients then
 * drop every incoming message unread) and reported as timed out. Prints the machine's load
 * average around each run: other processes on the machine skew latency more than CPU time.
 * Finishes with one JSON line.
 *
 * LOAD_VERBOSE=1 prints progress on stderr.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { type ClientHooks, type LoadClient, type Peer, within } from './load-peers/common.js';
import { otter } from './load-peers/otter.js';
import type { ChildReply, ChildRequest } from './load-peers/server-child.js';
import { sharedb } from './load-peers/sharedb.js';
import { yjs } from './load-peers/yjs.js';

const PEERS: Record<string, Peer> = { otter, sharedb, yjs };
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
}

function parseArgs(argv: string[]): Options {
  const o: Options = { sizes: [10, 100, 500], k: 40, interval: 20, timeout: 60, systems: ['otter', 'sharedb', 'yjs'] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1] ?? '';
    i++;
    if (flag === '--n') o.sizes = value.split(',').map(Number);
    else if (flag === '--k') o.k = Number(value);
    else if (flag === '--interval') o.interval = Number(value);
    else if (flag === '--timeout') o.timeout = Number(value);
    else if (flag === '--systems') o.systems = value.split(',');
    else throw new Error(`unknown argument ${flag}`);
  }
  for (const s of o.systems) if (PEERS[s] === undefined) throw new Error(`unknown system ${s}`);
  if (!Number.isInteger(o.k) || o.k < 1) throw new Error(`K must be a positive integer, got ${o.k}`);
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
  n: number;
  k: number;
  intervalMs: number;
  /** 'ok', 'timeout' or 'failed: …'. */
  status: string;
  connectMs: number;
  offeredOpsPerSec: number;
  sustainedOpsPerSec: number;
  durationMs: number;
  /** Deliveries (keystroke, receiver) that arrived / expected. */
  delivered: number;
  expectedDeliveries: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  allArrivedP50Ms: number;
  allArrivedP99Ms: number;
  frames: number;
  bytes: number;
  framesPerSec: number;
  bytesPerSec: number;
  serverCpuMs: number;
  /** Server CPU per keystroke (clients may compose several keystrokes into one submitted op). */
  serverCpuUsPerOp: number;
  serverPeakRssMb: number;
  clientCpuMs: number;
  converged: boolean | null;
  convergence: string;
  problems: Record<string, number>;
  /** 1-minute load average of the machine before and after the run (other processes included). */
  loadAverage: [number, number];
}

// ─── the server child ──────────────────────────────────────────────────────────────────────

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

  static start(system: string): ServerChild {
    return new ServerChild(
      fork(CHILD, [system], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
  }

  /**
   * The child's CPU time so far and peak RSS: asked over IPC (process.cpuUsage, µs), or, when a
   * saturated child does not answer within 2 s, read from /proc/<pid>/stat (10 ms ticks).
   */
  async usage(): Promise<{ cpuMs: number; rssMb: number }> {
    const id = this.nextId++;
    const asked = new Promise<{ cpuMs: number; rssMb: number }>((resolve) => {
      this.waiting.set(id, (m) => {
        this.waiting.delete(id);
        resolve({ cpuMs: (m.cpu.user + m.cpu.system) / 1000, rssMb: m.rss / 2 ** 20 });
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
  private procUsage(): { cpuMs: number; rssMb: number } | undefined {
    try {
      const stat = readFileSync(`/proc/${this.child.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14 and 15 of stat (utime, stime), counted from the state field (3): 11 and 12.
      const ticks = Number(fields[11]) + Number(fields[12]);
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.child.pid}/status`, 'utf8'));
      return { cpuMs: (ticks * 1000) / CLOCK_TICKS, rssMb: hwm === null ? NaN : Number(hwm[1]) / 1024 };
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

/** One typing round: keystrokes offset … offset + typists·kp − 1, and what arrived of them. */
class Round {
  readonly count: number;
  readonly expected: number;
  readonly sentAt: Float64Array;
  readonly arrivals: Int32Array;
  readonly lastArrival: Float64Array;
  readonly latencies: Float64Array;
  delivered = 0;
  fired = 0;

  /** `typists` of the `n` clients (the first ones) type `kp` keystrokes each; all `n` receive. */
  constructor(
    readonly n: number,
    readonly offset: number,
    readonly kp: number,
    readonly typists = n,
  ) {
    this.count = typists * kp;
    this.expected = this.count * (n - 1);
    this.sentAt = new Float64Array(this.count).fill(NaN);
    this.arrivals = new Int32Array(this.count);
    this.lastArrival = new Float64Array(this.count);
    this.latencies = new Float64Array(this.expected);
  }

  has(idx: number): boolean {
    return idx >= this.offset && idx < this.offset + this.count;
  }

  arrived(idx: number, now: number): void {
    const j = idx - this.offset;
    if (this.delivered < this.expected) this.latencies[this.delivered] = now - (this.sentAt[j] as number);
    this.delivered++;
    this.arrivals[j] = (this.arrivals[j] as number) + 1;
    this.lastArrival[j] = now;
  }
}

async function run(system: string, n: number, o: Options): Promise<RunResult> {
  const peer = PEERS[system] as Peer;
  const k = o.k;
  const problems: Record<string, number> = {};
  const problem = (what: string): void => {
    if (problems[what] === undefined) trace(`${peer.name} N=${n}: first problem: ${what}`);
    problems[what] = (problems[what] ?? 0) + 1;
  };
  const warmTypists = Math.min(n, WARMUP_TYPISTS);
  const warmup = new Round(n, 0, Math.ceil(WARMUP_OPS / warmTypists), warmTypists);
  const measured = new Round(n, warmup.count, k);
  const total = measured.count;
  const result: RunResult = {
    system: peer.name,
    n,
    k,
    intervalMs: o.interval,
    status: 'ok',
    connectMs: NaN,
    offeredOpsPerSec: (n * 1000) / o.interval,
    sustainedOpsPerSec: NaN,
    durationMs: NaN,
    delivered: 0,
    expectedDeliveries: measured.expected,
    latencyP50Ms: NaN,
    latencyP99Ms: NaN,
    latencyMaxMs: NaN,
    allArrivedP50Ms: NaN,
    allArrivedP99Ms: NaN,
    frames: 0,
    bytes: 0,
    framesPerSec: NaN,
    bytesPerSec: NaN,
    serverCpuMs: NaN,
    serverCpuUsPerOp: NaN,
    serverPeakRssMb: NaN,
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
  const hooksFor = (): ClientHooks => ({
    remoteInsert(text) {
      const now = performance.now();
      for (let j = 0; j < text.length; j++) {
        const idx = text.charCodeAt(j) - BASE;
        if (measured.has(idx)) measured.arrived(idx, now);
        else if (warmup.has(idx)) warmup.arrived(idx, now);
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

  const server = ServerChild.start(system);
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
    const url = await within(server.url, 30_000, 'server start');
    const connectStart = performance.now();
    await within(
      (async () => {
        for (let i = 0; i < n; i += CONNECT_BATCH) {
          const batch = [];
          for (let j = i; j < Math.min(n, i + CONNECT_BATCH); j++) batch.push(peer.connect(url, j, hooksFor()));
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

    const cpu0 = await server.usage();
    const client0 = process.cpuUsage();
    measuring = true;
    const finished = await type(measured);
    measuring = false;
    const cpu1 = await server.usage();
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
    const allSorted = Float64Array.from(all).sort();
    const serverCpuMs = cpu1.cpuMs - cpu0.cpuMs;
    Object.assign(result, {
      durationMs,
      delivered: measured.delivered,
      // Keystrokes that reached every other client, per second of the round.
      sustainedOpsPerSec: (all.length * 1000) / durationMs,
      latencyP50Ms: percentile(lat, 0.5),
      latencyP99Ms: percentile(lat, 0.99),
      latencyMaxMs: lat.length > 0 ? (lat[lat.length - 1] as number) : NaN,
      allArrivedP50Ms: percentile(allSorted, 0.5),
      allArrivedP99Ms: percentile(allSorted, 0.99),
      frames,
      bytes,
      framesPerSec: (frames * 1000) / durationMs,
      bytesPerSec: (bytes * 1000) / durationMs,
      serverCpuMs,
      serverCpuUsPerOp: (serverCpuMs * 1000) / total,
      serverPeakRssMb: cpu1.rssMb,
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
    await server.stop();
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

function printResults(results: RunResult[]): void {
  console.log(
    table(
      ['system', 'N', 'ops/s offered', 'ops/s sustained', 'p50 ms', 'p99 ms', 'p99 all ms', 'frames/s', 'KB/s', 'server CPU ms', 'server µs/key', 'server busy', 'server RSS MB', 'clients busy', 'result'],
      results.map((r) => [
        r.system,
        String(r.n),
        fmt(r.offeredOpsPerSec),
        fmt(r.sustainedOpsPerSec),
        ms(r.latencyP50Ms),
        ms(r.latencyP99Ms),
        ms(r.allArrivedP99Ms),
        fmt(r.framesPerSec),
        fmt(r.bytesPerSec / 1000),
        fmt(r.serverCpuMs),
        fmt(r.serverCpuUsPerOp),
        pct(r.serverCpuMs / r.durationMs),
        fmt(r.serverPeakRssMb),
        pct(r.clientCpuMs / r.durationMs),
        statusCell(r),
      ]),
    ),
  );
  console.log('\nRatios vs Otter at the same N (ops/s: higher is better; the rest: lower is better):\n');
  const rows: string[][] = [];
  for (const r of results) {
    const base = results.find((b) => b.n === r.n && b.system === 'Otter');
    if (base === undefined || r === base) continue;
    rows.push([
      r.system,
      String(r.n),
      ratio(r.sustainedOpsPerSec, base.sustainedOpsPerSec),
      ratio(r.latencyP50Ms, base.latencyP50Ms),
      ratio(r.latencyP99Ms, base.latencyP99Ms),
      ratio(r.allArrivedP99Ms, base.allArrivedP99Ms),
      ratio(r.framesPerSec, base.framesPerSec),
      ratio(r.bytesPerSec, base.bytesPerSec),
      ratio(r.serverCpuMs, base.serverCpuMs),
      ratio(r.serverPeakRssMb, base.serverPeakRssMb),
      [r, base]
        .filter((x) => x.status !== 'ok')
        .map((x) => `${x.system} timed out (partial run)`)
        .join('; '),
    ]);
  }
  console.log(
    table(['system', 'N', 'ops/s sustained', 'p50', 'p99', 'p99 all', 'frames/s', 'bytes/s', 'server CPU', 'server RSS', 'note'], rows),
  );
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const m = machine();
  console.log('\n## Server load: Otter vs ShareDB vs Yjs over WebSockets on 127.0.0.1\n');
  console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.platform} | Node ${m.node} | load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(
    `scenario: one document; N clients each type K=${o.k} characters, one every ${o.interval} ms (staggered); ` +
      `server in a child process, clients in this process; timeout ${o.timeout} s per run`,
  );
  for (const s of o.systems) console.log(`  ${(PEERS[s] as Peer).name}: ${(PEERS[s] as Peer).setup}`);
  console.log(
    '  latency = keystroke → arrival at another client (all (keystroke, receiver) pairs); "all" = arrival at the last receiver;\n' +
      '  frames and bytes = WebSocket messages and payload bytes the server sent, counted by the clients\n',
  );
  const results: RunResult[] = [];
  for (const n of o.sizes) {
    for (const s of o.systems) {
      const started = performance.now();
      const r = await run(s, n, o);
      results.push(r);
      const problems = Object.entries(r.problems);
      console.log(
        `  ${r.system} N=${n}: ${statusCell(r)}, ${fmt(r.sustainedOpsPerSec)} ops/s, p99 ${ms(r.latencyP99Ms)} ms, ` +
          `server CPU ${fmt(r.serverCpuMs)} ms (run took ${fmt((performance.now() - started) / 1000, 1)} s, ` +
          `load average ${r.loadAverage.map((x) => x.toFixed(1)).join(' → ')})` +
          (problems.length > 0 ? `; problems: ${problems.map(([p, c]) => `${c}× ${p}`).join('; ')}` : ''),
      );
    }
  }
  console.log('');
  printResults(results);
  console.log('');
  console.log(
    JSON.stringify({
      bench: 'load',
      machine: m,
      scenario: { k: o.k, intervalMs: o.interval, timeoutS: o.timeout, otterLimits: { messagesPerSecond: 1e6, bytesPerSecond: 1e9 } },
      results,
    }),
  );
}

await main();
