/**
 * Benchmark 2: compose a whole editing trace (one operation per patch) into a single operation,
 * on growing prefixes of the trace to show how the cost grows with its length.
 * Contenders: Otter left fold with `compose`, Otter `composeAll` (balanced), ot.js left fold,
 * ot-text-unicode left fold. Every composed operation applied to "" must give the prefix's
 * document, or the benchmark throws. The per-patch operations are built before timing.
 *
 * Run alone: npx tsx bench/compose-trace.ts
 */
import { type Operation, apply, compose, composeAll, fromPatch } from '../src/ot/index.js';
import { type OtTextOperation, type UnicodeTextOp, ot, unicodeText } from './peers.js';
import {
  type Case,
  type Timing,
  contentAfter,
  count,
  expectSameText,
  isMain,
  loadTrace,
  measureCases,
  ms,
  printHeader,
  printTable,
  ratio,
  runsLabel,
} from './common.js';

const TRACE = 'automerge-paper';
const PREFIXES = [10_000, 50_000, 100_000, Number.POSITIVE_INFINITY];
/** A left fold still running after this long is stopped, and the peer skips longer prefixes. */
const TIME_LIMIT_MS = 60_000;
const CHECK_EVERY = 1024;

/** Thrown inside a fold that ran past TIME_LIMIT_MS. */
class TimeLimit extends Error {
  constructor(readonly reached: number) {
    super(`time limit reached after ${reached} patches`);
  }
}

interface Contender {
  readonly name: string;
  /** Composes ops[0..n) into one operation and returns the document it gives from "". */
  readonly compose: (n: number, deadline: number) => unknown;
  readonly result: (composed: never) => string;
}

function leftFold<T>(ops: readonly T[], n: number, deadline: number, step: (a: T, b: T) => T): T {
  let acc = ops[0] as T;
  for (let i = 1; i < n; i++) {
    acc = step(acc, ops[i] as T);
    if (i % CHECK_EVERY === 0 && performance.now() > deadline) throw new TimeLimit(i);
  }
  return acc;
}

export async function run(): Promise<void> {
  const trace = loadTrace(TRACE);
  const total = trace.patches.length;
  const prefixes = PREFIXES.map((p) => Math.min(p, total));
  printHeader('compose-trace: compose a whole trace into one operation', [
    `trace ${TRACE}: ${count(total)} patches; prefixes ${prefixes.map(count).join(', ')}.`,
    'harness (bench/common.ts measureCases): 1 warmup round, then up to 5 round-robin timed rounds',
    '(within ~15 s per prefix); median wall time. A case slower than 4 s is timed by its single cold run.',
    `A left fold still running after ${TIME_LIMIT_MS / 1000} s is stopped and that library skips longer prefixes.`,
    'Each composed op is applied to "" and checked against the prefix document.',
    "Caution: ot.js's left fold is bimodal under V8. When allocation-site pretenuring kicks in (it depends",
    'on the process history) its full-trace fold takes 15-23 s instead of <1 s, almost all in old-space GC;',
    'node --no-allocation-site-pretenuring restores the fast mode. Compare runs with that in mind.',
  ]);

  // Per-patch operations, built once and outside the timed region.
  const otterOps: Operation[] = [];
  const otOps: OtTextOperation[] = [];
  const unicodeOps: UnicodeTextOp[] = [];
  let length = trace.startContent.length;
  for (const [pos, del, ins] of trace.patches) {
    const op = fromPatch(length, pos, del, ins);
    otterOps.push(op);
    otOps.push(ot.TextOperation.fromJSON(op));
    const u: UnicodeTextOp = [];
    if (pos > 0) u.push(pos);
    if (ins.length > 0) u.push(ins);
    if (del > 0) u.push({ d: del });
    unicodeOps.push(u);
    length += ins.length - del;
  }

  const contenders: readonly Contender[] = [
    {
      name: 'Otter compose (left fold)',
      compose: (n, deadline) => leftFold(otterOps, n, deadline, compose),
      result: (op: Operation) => apply(trace.startContent, op),
    },
    {
      name: 'Otter composeAll (balanced)',
      compose: (n) => composeAll(n === total ? otterOps : otterOps.slice(0, n)),
      result: (op: Operation) => apply(trace.startContent, op),
    },
    {
      name: 'ot.js compose (left fold)',
      compose: (n, deadline) => leftFold(otOps, n, deadline, (a, b) => a.compose(b)),
      result: (op: OtTextOperation) => op.apply(trace.startContent),
    },
    {
      name: 'ot-text-unicode compose (left fold)',
      compose: (n, deadline) => leftFold(unicodeOps, n, deadline, unicodeText.compose),
      result: (op: UnicodeTextOp) => unicodeText.apply(trace.startContent, op),
    },
  ];

  /** timings[contender][prefix index]; a string cell explains a skipped or stopped case. */
  const cells = new Map<string, (Timing | string)[]>(contenders.map((c) => [c.name, []]));
  const stopped = new Set<string>();
  for (const [pi, n] of prefixes.entries()) {
    const expected = contentAfter(trace, n);
    const cases: Case<unknown>[] = [];
    const limitHit = new Map<string, number>();
    for (const c of contenders) {
      if (stopped.has(c.name)) {
        (cells.get(c.name) as (Timing | string)[])[pi] = 'skipped';
        continue;
      }
      cases.push({
        name: c.name,
        fn: () => {
          try {
            return c.compose(n, performance.now() + TIME_LIMIT_MS);
          } catch (e) {
            if (!(e instanceof TimeLimit)) throw e;
            limitHit.set(c.name, e.reached);
            return undefined;
          }
        },
        check: (composed) => {
          if (limitHit.has(c.name)) return;
          expectSameText(`${c.name}, ${n} patches`, c.result(composed as never), expected);
        },
      });
    }
    const timings = measureCases(cases);
    for (const [name, t] of timings) {
      const reached = limitHit.get(name);
      if (reached !== undefined) {
        stopped.add(name);
        (cells.get(name) as (Timing | string)[])[pi] =
          `> ${TIME_LIMIT_MS / 1000} s (stopped at ${count(reached)})`;
        console.log(
          `note: ${name} passed the ${TIME_LIMIT_MS / 1000} s limit on ${count(n)} patches ` +
            `(stopped after ${count(reached)}); skipping it from here, see the shorter prefixes.`,
        );
      } else (cells.get(name) as (Timing | string)[])[pi] = t;
    }
    console.log(
      `${count(n)} patches: ${[...timings]
        .filter(([name]) => !limitHit.has(name))
        .map(([name, t]) => `${name} ${ms(t.median)} ms`)
        .join(', ')}`,
    );
  }

  const ref = cells.get('Otter compose (left fold)') as (Timing | string)[];
  const cell = (v: Timing | string | undefined, pi: number): string => {
    if (v === undefined || typeof v === 'string') return v ?? '—';
    const r = ref[pi];
    return `${ms(v.median)} (${typeof r === 'string' || r === undefined ? '?' : ratio(v.median, r.median)})`;
  };
  console.log('\nmedian ms (× Otter left fold) by prefix length:\n');
  printTable(
    ['library', ...prefixes.map((n) => `${count(n)}${n === total ? ' (full)' : ''}`), 'runs at longest'],
    contenders.map((c) => {
      const row = cells.get(c.name) as (Timing | string)[];
      const last = [...row].reverse().find((v): v is Timing => typeof v !== 'string');
      return [c.name, ...prefixes.map((_, pi) => cell(row[pi], pi)), last ? runsLabel(last) : '—'];
    }),
  );

  console.log('growth of the median time between prefixes (linear = the length factor):\n');
  printTable(
    [
      'library',
      ...prefixes.slice(1).map((n, i) => `${count(prefixes[i] as number)}→${count(n)} (×${(n / (prefixes[i] as number)).toFixed(1)})`),
      'ns / patch at longest',
    ],
    contenders.map((c) => {
      const row = cells.get(c.name) as (Timing | string)[];
      const growth = prefixes.slice(1).map((_, i) => {
        const a = row[i];
        const b = row[i + 1];
        return typeof a === 'object' && typeof b === 'object' ? `${(b.median / a.median).toFixed(1)}×` : '—';
      });
      let perPatch = '—';
      for (let pi = prefixes.length - 1; pi >= 0; pi--) {
        const v = row[pi];
        if (typeof v === 'object') {
          perPatch = `${((v.median * 1e6) / (prefixes[pi] as number)).toFixed(0)} (${count(prefixes[pi] as number)})`;
          break;
        }
      }
      return [c.name, ...growth, perPatch];
    }),
  );
}

if (isMain(import.meta.url)) await run();
