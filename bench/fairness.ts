/**
 * Fairness under an amplification attack through old bases: do other documents' editors stay
 * fast while hostile connections ask the server to go through a long history?
 *
 * Set-up: the real server (`createServer`, default options) over a SqliteStore in a temp dir,
 * on 127.0.0.1. Document "hist" is built through the sequencer directly (submitMany): 11,000
 * ops of 4 kB (each replaces the document's one 4,000-character block, so the text stays 4 kB
 * while the history holds ~44 MB), the whole history kept (default retention).
 *
 * Honest editors (raw protocol clients): 2 on document "other" and 1 on "hist", each typing one
 * character every 100 ms at the head with one op in flight; an edit's round trip is the time
 * from its `submit` to its `ack`.
 *
 * Attackers (raw protocol clients that read nothing but frame sizes), the same run, after a
 * phase without them:
 * - 4 connections sending 150 submits/s each at base 1000 with an impossible seq,
 *   `{"type":"submit","doc":"hist","v":1000,"seq":999999,"op":[4000]}`;
 * - 2 connections sending 150 submits/s each at base 1000 with a stale seq (their own seq 1
 *   again, other content): possible in form, so the server must go through the history before
 *   it can refuse it;
 * - 2 connections re-opening "hist" 5 times a second with a valid claim, taking pieces as the
 *   client library does, alternately at version 1000 (a catch-up of ~40 MB: longer than the
 *   server sends, answered with the text) and at head − 2,500 (~10 MB: sent in pieces).
 * An attacker the server closes connects again at once (a fresh connection), so the attack
 * lasts the whole phase.
 *
 * Reported per phase: round trips of the editors of "other" and of "hist" (p50, p99, max),
 * the event loop's delay (perf_hooks monitorEventLoopDelay, 1 ms resolution: p99, max), RSS
 * before and at its peak (sampled every 100 ms), the largest frame any client received, and
 * the attackers' messages, answers and closes; ratios attack / no attack. Clients and server
 * share this process, so the event-loop figures include the clients' (small) work.
 *
 * Run: npx tsx bench/fairness.ts [--seconds N] [--only gap,stale,open]
 *   --seconds  each phase lasts N seconds (default 15)
 *   --only     runs only these kinds of attackers (default all three)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import type { Component } from '../src/ot/index.js';
import { OtterError } from '../src/protocol/errors.js';
import { SqliteStore } from '../src/server/sqlite-store.js';
import { type OtterServer, createServer } from '../src/server/ws-server.js';
import { count, isMain, machineLine, ms, printTable, ratio } from './common.js';

const OPS = 11_000;
const BLOCK = 4000;
const OLD_BASE = 1000;
const BUILD_CHUNK = 500;
const ATTACK_RATE = 150;
const OPEN_RATE = 5;
const TYPE_EVERY_MS = 100;

const secondsArg = process.argv.indexOf('--seconds');
const PHASE_MS = 1000 * (secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 15);
const onlyArg = process.argv.indexOf('--only');
/** The kinds of attackers run (all by default). */
const KINDS = new Set(onlyArg > 0 ? (process.argv[onlyArg + 1] ?? '').split(',') : ['gap', 'stale', 'open']);

/** Frames received by every client of this benchmark: the largest, in bytes. */
let largestFrame = 0;

type Msg = Record<string, unknown> & { type: string };

function messagesOf(data: Buffer): Msg[] {
  const value = JSON.parse(data.toString('utf8')) as unknown;
  return (Array.isArray(value) ? value : [value]) as Msg[];
}

function connect(server: OtterServer): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(server.url, ['otter.v1'], { maxPayload: 0 });
    ws.on('message', (data: Buffer) => {
      if (data.length > largestFrame) largestFrame = data.length;
    });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

// ─── honest editors ──────────────────────────────────────────────────────────────────────────

/** Types one character every TYPE_EVERY_MS at the head, one op in flight; keeps round trips. */
class Editor {
  readonly trips: number[] = [];
  private v = 0;
  private length = 0;
  private seq = 0;
  private sentAt = 0;
  private inflight = false;
  private timer: ReturnType<typeof setInterval> | undefined;

  private constructor(
    private readonly ws: WebSocket,
    private readonly doc: string,
  ) {}

  static async start(server: OtterServer, doc: string, id: string): Promise<Editor> {
    const ws = await connect(server);
    const editor = new Editor(ws, doc);
    const opened = new Promise<void>((resolve) => {
      ws.on('message', (data: Buffer) => {
        for (const m of messagesOf(data)) if (editor.onMessage(m)) resolve();
      });
    });
    ws.send(JSON.stringify({ type: 'hello', protocol: 1, clientId: id }));
    ws.send(JSON.stringify({ type: 'open', doc, rid: 1 }));
    await opened;
    editor.timer = setInterval(() => editor.type(), TYPE_EVERY_MS);
    return editor;
  }

  /** Takes one server message; true once the document is open. */
  private onMessage(m: Msg): boolean {
    if (m.doc !== this.doc) return false;
    if (m.type === 'opened') {
      this.v = m.v as number;
      this.length = (m.text as string).length;
      this.seq = m.seq as number;
      return true;
    }
    if (m.type === 'ops') {
      for (const e of m.ops as Array<{ v: number; op: Component[] }>) {
        if (e.v <= this.v) continue;
        this.v = e.v;
        for (const c of e.op) this.length += typeof c === 'string' ? c.length : c < 0 ? c : 0;
      }
    } else if (m.type === 'ack') {
      this.trips.push(performance.now() - this.sentAt);
      this.v = Math.max(this.v, m.v as number);
      this.length += 1;
      this.inflight = false;
    } else if (m.type === 'error') {
      throw new Error(`an honest editor was refused: ${JSON.stringify(m)}`);
    }
    return false;
  }

  private type(): void {
    if (this.inflight) return;
    this.inflight = true;
    this.seq++;
    this.sentAt = performance.now();
    const op = this.length === 0 ? ['.'] : [this.length, '.'];
    this.ws.send(JSON.stringify({ type: 'submit', doc: this.doc, v: this.v, seq: this.seq, op }));
  }

  stop(): void {
    clearInterval(this.timer);
    this.ws.terminate();
  }
}

// ─── attackers ───────────────────────────────────────────────────────────────────────────────

interface AttackStats {
  sent: number;
  errors: Map<string, number>;
  closes: Map<number, number>;
  /** `opened` answers and catch-up pieces received. */
  opened: number;
  pieces: number;
}

/**
 * One hostile connection, re-made whenever the server closes it: `step()` runs every
 * 1000/`rate` ms and sends one message.
 */
class Attacker {
  private ws: WebSocket | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private stopped = false;
  private rid = 1;

  constructor(
    private readonly server: OtterServer,
    readonly kind: 'gap' | 'stale' | 'open',
    private readonly id: string,
    private readonly claims: { epoch: string; old: { v: number; sum: number }; recent: { v: number; sum: number } },
    private readonly stats: AttackStats,
  ) {}

  async start(): Promise<void> {
    if (this.stopped) return;
    const ws = await connect(this.server);
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      const start = data.subarray(0, 40).toString('latin1');
      if (start.startsWith('{"type":"opened"')) this.stats.opened++;
      else if (start.startsWith('{"type":"ops","doc":"hist","rid"')) this.stats.pieces++;
      if (data.length > 100_000) return; // a catch-up: not parsed (an attacker does not read it)
      for (const m of messagesOf(data)) {
        if (m.type === 'error') this.stats.errors.set(m.code as string, (this.stats.errors.get(m.code as string) ?? 0) + 1);
      }
    });
    ws.on('close', (code) => {
      this.stats.closes.set(code, (this.stats.closes.get(code) ?? 0) + 1);
      clearInterval(this.timer);
      if (!this.stopped) void this.start().catch(() => {});
    });
    const send = (m: Record<string, unknown>): void => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify(m));
      this.stats.sent++;
    };
    send({ type: 'hello', protocol: 1, clientId: `${this.id}-${Math.random().toString(36).slice(2)}` });
    send({ type: 'open', doc: 'hist', rid: this.rid++ });
    if (this.kind === 'stale') send({ type: 'submit', doc: 'hist', v: OLD_BASE, seq: 1, op: [BLOCK, 'x'] });
    let alternate = false;
    const step = (): void => {
      if (this.kind === 'open') {
        const at = alternate ? this.claims.old : this.claims.recent;
        alternate = !alternate;
        send({ type: 'open', doc: 'hist', rid: this.rid++, v: at.v, epoch: this.claims.epoch, sum: at.sum, pieces: true });
      } else {
        const seq = this.kind === 'gap' ? 999_999 : 1;
        send({ type: 'submit', doc: 'hist', v: OLD_BASE, seq, op: this.kind === 'gap' ? [BLOCK] : [BLOCK, 'y'] });
      }
    };
    this.timer = setInterval(step, 1000 / (this.kind === 'open' ? OPEN_RATE : ATTACK_RATE));
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.ws?.terminate();
  }
}

// ─── the run ─────────────────────────────────────────────────────────────────────────────────

/** Builds "hist": OPS ops, each replacing the one BLOCK-character block with another. */
async function buildHistory(server: OtterServer): Promise<void> {
  const block = (i: number): string => String(i % 10).repeat(BLOCK);
  for (let start = 0; start < OPS; start += BUILD_CHUNK) {
    const requests = [];
    for (let i = start; i < Math.min(OPS, start + BUILD_CHUNK); i++) {
      requests.push({ docId: 'hist', clientId: 'builder', seq: i + 1, baseVersion: i, op: (i === 0 ? [block(0)] : [block(i), -BLOCK]) as Component[] });
    }
    for (const a of await server.sequencer.submitMany(requests)) if (a instanceof OtterError) throw a;
  }
}

interface Phase {
  other: number[];
  hist: number[];
  loopP99: number;
  loopMax: number;
  rssBefore: number;
  rssPeak: number;
  largestFrame: number;
}

async function phase(editors: { other: Editor[]; hist: Editor[] }, attack: () => Promise<() => void>): Promise<Phase> {
  for (const e of [...editors.other, ...editors.hist]) e.trips.length = 0;
  largestFrame = 0;
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }, 100);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const stop = await attack();
  await new Promise((r) => setTimeout(r, PHASE_MS));
  stop();
  loop.disable();
  clearInterval(sampler);
  const sorted = (es: Editor[]): number[] => es.flatMap((e) => e.trips).sort((a, b) => a - b);
  return {
    other: sorted(editors.other),
    hist: sorted(editors.hist),
    loopP99: loop.percentile(99) / 1e6,
    loopMax: loop.max / 1e6,
    rssBefore,
    rssPeak,
    largestFrame,
  };
}

function mb(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(0);
}

export async function run(): Promise<void> {
  console.log(`\n## Fairness under an amplification attack through old bases (bench/fairness.ts)\n\n${machineLine()}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'otter-fairness-'));
  const server = await createServer({ store: new SqliteStore(join(dir, 'otter.db')) });
  try {
    const t0 = performance.now();
    await buildHistory(server);
    const head = (await server.sequencer.getSnapshot('hist')).version;
    const epoch = (await server.sequencer.open('hist', 'bench')).epoch;
    const sumAt = async (v: number): Promise<number> => ((await server.sequencer.getOps('hist', v - 1, v))[0] as { checksum: number }).checksum;
    const claims = {
      epoch,
      old: { v: OLD_BASE, sum: await sumAt(OLD_BASE) },
      recent: { v: head - 2500, sum: await sumAt(head - 2500) },
    };
    console.log(`"hist" built: ${count(head)} ops of ${count(BLOCK)} characters in ${((performance.now() - t0) / 1000).toFixed(1)} s; each phase ${PHASE_MS / 1000} s\n`);
    const editors = {
      other: [await Editor.start(server, 'other', 'ann'), await Editor.start(server, 'other', 'bob')],
      hist: [await Editor.start(server, 'hist', 'cat')],
    };
    const stats: AttackStats = { sent: 0, errors: new Map(), closes: new Map(), opened: 0, pieces: 0 };
    const quiet = await phase(editors, async () => () => {});
    const attacked = await phase(editors, async () => {
      const attackers = [
        ...Array.from({ length: 4 }, (_, i) => new Attacker(server, 'gap', `gap${i}`, claims, stats)),
        ...Array.from({ length: 2 }, (_, i) => new Attacker(server, 'stale', `stale${i}`, claims, stats)),
        ...Array.from({ length: 2 }, (_, i) => new Attacker(server, 'open', `open${i}`, claims, stats)),
      ];
      await Promise.all(attackers.filter((a) => KINDS.has(a.kind)).map((a) => a.start()));
      return () => {
        for (const a of attackers) a.stop();
      };
    });
    for (const e of [...editors.other, ...editors.hist]) e.stop();
    const row = (name: string, f: (p: Phase) => number, unit: (n: number) => string): string[] => [
      name,
      unit(f(quiet)),
      unit(f(attacked)),
      ratio(f(attacked), f(quiet)),
    ];
    printTable(
      ['measure', 'no attack', 'attack', 'ratio'],
      [
        row('"other" edit round trip p50 (ms)', (p) => percentile(p.other, 50), ms),
        row('"other" edit round trip p99 (ms)', (p) => percentile(p.other, 99), ms),
        row('"other" edit round trip max (ms)', (p) => p.other[p.other.length - 1] ?? Number.NaN, ms),
        row('"hist" edit round trip p50 (ms)', (p) => percentile(p.hist, 50), ms),
        row('"hist" edit round trip p99 (ms)', (p) => percentile(p.hist, 99), ms),
        row('event-loop delay p99 (ms)', (p) => p.loopP99, ms),
        row('event-loop delay max (ms)', (p) => p.loopMax, ms),
        row('RSS at start (MB)', (p) => p.rssBefore, mb),
        row('RSS peak (MB)', (p) => p.rssPeak, mb),
        row('largest frame received (bytes)', (p) => p.largestFrame, count),
        row('edits measured ("other" + "hist")', (p) => p.other.length + p.hist.length, count),
      ],
    );
    const errors = [...stats.errors].map(([code, n]) => `${code} ${count(n)}`).join(', ');
    const closes = [...stats.closes].map(([code, n]) => `${code} ×${count(n)}`).join(', ');
    console.log(`attackers: ${count(stats.sent)} messages sent; errors: ${errors}; ${count(stats.opened)} opened answers and ${count(stats.pieces)} catch-up pieces; closes: ${closes}`);
    console.log(`RSS after the attack stopped: ${mb(process.memoryUsage().rss)} MB`);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) await run();
