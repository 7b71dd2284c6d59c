/**
 * Shared helpers for the benchmark modules: machine header, trace loading, a small timing
 * harness for long-running cases, and table printing.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** The repository root (bench/ lives directly under it). */
export const REPO_ROOT = new URL('../', import.meta.url);

/** The editing traces kept in the repository (traces/README.md names their sources and licences). */
export const TRACE_DIR = new URL('traces/sequential/', REPO_ROOT);

/** One editor patch: delete `deleteCount` UTF-16 code units at `pos`, then insert `text` there. */
export type Patch = readonly [pos: number, deleteCount: number, text: string];

export interface Trace {
  readonly name: string;
  readonly startContent: string;
  readonly endContent: string;
  /** Every patch of every transaction, in order; each applies to the result of the previous. */
  readonly patches: readonly Patch[];
}

interface RawTrace {
  startContent: string;
  endContent: string;
  txns: { patches: [number, number, string][] }[];
}

/** Loads `<name>.json.gz` from traces/sequential and flattens its transactions. */
export function loadTrace(name: string): Trace {
  const url = new URL(`${name}.json.gz`, TRACE_DIR);
  if (!existsSync(url)) {
    throw new Error(`trace ${name} not found at ${fileURLToPath(url)}`);
  }
  const raw = JSON.parse(gunzipSync(readFileSync(url)).toString('utf8')) as RawTrace;
  const patches: Patch[] = [];
  for (const txn of raw.txns) for (const p of txn.patches) patches.push([p[0], p[1], p[2]]);
  return { name, startContent: raw.startContent, endContent: raw.endContent, patches };
}

/** The document after the first `count` patches of `trace`, by plain string slicing. */
export function contentAfter(trace: Trace, count: number): string {
  let doc = trace.startContent;
  for (let i = 0; i < count; i++) {
    const [pos, del, ins] = trace.patches[i] as Patch;
    doc = doc.slice(0, pos) + ins + doc.slice(pos + del);
  }
  return doc;
}

/** One line naming the machine and runtime, printed at the top of every benchmark. */
export function machineLine(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? 'unknown CPU';
  return `machine: ${model}, ${cpus.length} cores, ${os.platform()} ${os.arch()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM | Node ${process.version}`;
}

/** Prints a benchmark's title and the machine line. */
export function printHeader(title: string, details: readonly string[] = []): void {
  console.log(`\n## ${title}\n`);
  console.log(machineLine());
  for (const line of details) console.log(line);
  console.log('');
}

/** True when the module at `moduleUrl` is the script Node was started with. */
export function isMain(moduleUrl: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && pathToFileURL(resolve(entry)).href === moduleUrl;
}

/** Runs the garbage collector if Node exposes it (`--expose-gc`); otherwise does nothing. */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

export interface Timing {
  /** Timed runs in milliseconds, in the order they ran. */
  readonly samples: readonly number[];
  readonly median: number;
  readonly best: number;
  /** True if the case was too slow for a warmup and `samples` is one cold run. */
  readonly cold: boolean;
}

/** One contender in a measurement: a function to time and a check of its result. */
export interface Case<T> {
  readonly name: string;
  readonly fn: () => T;
  /** Called with every run's result, outside the timed region; throws if the result is wrong. */
  readonly check?: (result: T) => void;
}

export interface MeasureOptions {
  /** Upper bound on timed rounds after the warmup round (default 5). */
  readonly maxRounds?: number;
  /** Time budget for all timed rounds together (default 15 s); at least one round always runs. */
  readonly budgetMs?: number;
  /** A case whose warmup run takes longer than this is timed by that one cold run (default 4 s). */
  readonly slowMs?: number;
}

function timeOnce<T>(c: Case<T>): number {
  collectGarbage();
  const t0 = performance.now();
  const result = c.fn();
  const elapsed = performance.now() - t0;
  c.check?.(result);
  return elapsed;
}

function summarize(samples: number[], cold: boolean): Timing {
  return { samples, median: median(samples), best: Math.min(...samples), cold };
}

/** The median of `values` (not empty): the middle one, or the mean of the two middle ones. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * The harness for whole-trace replays and other runs of 100 ms to seconds (too long for benny).
 * One warmup round runs every case once; then the cases run round-robin (A B C, A B C, ...) for
 * as many rounds as fit in the budget, at most `maxRounds`, so that drifting background load on
 * a shared machine hits every contender alike. Reports the median and the best of the timed
 * runs. A case whose warmup alone exceeds `slowMs` is reported by that single cold run (JIT
 * warmup is negligible against such a run) and sits out the timed rounds.
 */
export function measureCases<T>(
  cases: readonly Case<T>[],
  options: MeasureOptions = {},
): Map<string, Timing> {
  const { maxRounds = 5, budgetMs = 15_000, slowMs = 4000 } = options;
  const warm = cases.map((c) => timeOnce(c));
  const out = new Map<string, Timing>();
  const timed: { c: Case<T>; samples: number[] }[] = [];
  let perRound = 0;
  cases.forEach((c, i) => {
    const w = warm[i] as number;
    if (w > slowMs) out.set(c.name, summarize([w], true));
    else {
      timed.push({ c, samples: [] });
      perRound += w;
    }
  });
  const rounds = Math.max(1, Math.min(maxRounds, Math.floor(budgetMs / Math.max(perRound, 1e-3))));
  for (let r = 0; r < rounds && timed.length > 0; r++) {
    for (const t of timed) t.samples.push(timeOnce(t.c));
  }
  for (const t of timed) out.set(t.c.name, summarize(t.samples, false));
  // Keep the caller's order.
  return new Map(cases.map((c) => [c.name, out.get(c.name) as Timing]));
}

/** Describes how a timing was obtained, for the "runs" column. */
export function runsLabel(t: Timing): string {
  return t.cold ? '1 (cold)' : String(t.samples.length);
}

/** Milliseconds with sensible precision. */
export function ms(value: number): string {
  if (value >= 1000) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** A ratio such as "2.31×". */
export function ratio(value: number, reference: number): string {
  const r = value / reference;
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

/** Thousands separators: 259778 → "259,778". */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** Prints a Markdown table with aligned columns; cells that look numeric are right-aligned. */
export function printTable(headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.every((r) => /^[\d—]/.test(r[i] ?? '')));
  const line = (cells: readonly string[]): string =>
    `| ${cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join(' | ')} |`;
  console.log(line(headers));
  console.log(
    `|${widths.map((w, i) => (numeric[i] ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`,
  );
  for (const r of rows) console.log(line(r));
  console.log('');
}

/** Throws with a short description if `actual` differs from `expected`. */
export function expectSameText(what: string, actual: string, expected: string): void {
  if (actual === expected) return;
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  throw new Error(
    `${what}: result differs from the expected document at code unit ${i} ` +
      `(lengths ${actual.length} vs ${expected.length})`,
  );
}
