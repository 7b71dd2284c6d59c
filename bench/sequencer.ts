/**
 * Benchmark: throughput of the authoritative sequencer (src/server/sequencer.ts) on a real
 * editing trace, over the in-memory and the SQLite store, and the same trace applied by plain
 * text structures for scale.
 *
 * 1. head: automerge-paper, one client, op i submitted as seq i+1 at baseVersion i (no rebase).
 * 2. late: 64 clients round-robin, op i submitted at baseVersion i - lag (lag 1, 10, 50, and
 *    uniform in [1, 50]); each op is built on the (length of the) text at that older version,
 *    so the sequencer rebases it over `lag` ops. The result differs from the trace's
 *    endContent; every run is checked by replaying the server's op log.
 * 3. many docs: the first 260 patches of automerge-paper on each of 1,000 documents, interleaved.
 * 4. scale: the trace applied by a plain string, Otter's Rope, @codemirror/state's Text and
 *    jumprope; and the sequencer's floor: its synchronous core alone (validation and
 *    DocumentState.submit, no promise, no store) and a promise-per-submit queue doing nothing.
 *
 * Requests are built before the clock starts (a client's work); the timed region is
 * submit → every promise settled, so for SQLite every op counted is committed (ack after commit).
 * Every run gets a fresh Sequencer and store (SQLite: a temp file, removed afterwards).
 *
 * Run alone: npx tsx bench/sequencer.ts [--quick]   (all benchmarks: npm run bench)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Text } from '@codemirror/state';
import { type Component, apply, fromPatch, transform } from '../src/ot/index.js';
import { DocumentState, type Submission } from '../src/server/document-state.js';
import { MemoryStore } from '../src/server/memory-store.js';
import { Rope } from '../src/ot/rope.js';
import { Sequencer, type SequencerOptions, type SubmitRequest } from '../src/server/sequencer.js';
import { SqliteStore, type SqliteStoreOptions } from '../src/server/sqlite-store.js';
import { EMPTY_SNAPSHOT, type Store } from '../src/server/store.js';
import {
  type Trace,
  collectGarbage,
  contentAfter,
  count,
  expectSameText,
  isMain,
  loadTrace,
  measureCases,
  printHeader,
  printTable,
} from './common.js';
import { seededRandom } from '../test/support/random.js';

/** jumprope 1.2 (CommonJS, untyped): only what this benchmark calls. */
interface JumpRope {
  readonly length: number;
  insert(pos: number, text: string): void;
  del(pos: number, length: number): void;
  toString(): string;
}
const require = createRequire(import.meta.url);
const JumpRopeClass = require('jumprope') as new (text?: string) => JumpRope;

const TRACE = 'automerge-paper';
const WINDOW = 1024;
const LATE_CLIENTS = 64;
const DOCS = 1000;
const OPS_PER_DOC = 260;

const quick = process.argv.includes('--quick');
const MEMORY_RUNS = quick ? 1 : 5;
const SQLITE_RUNS = quick ? 1 : 3;

// ---------------------------------------------------------------------------------------------
// Requests

function headRequests(trace: Trace, docId = 'doc', limit = trace.patches.length): SubmitRequest[] {
  const out: SubmitRequest[] = [];
  let len = trace.startContent.length;
  for (let i = 0; i < limit; i++) {
    const [pos, del, ins] = trace.patches[i] as readonly [number, number, string];
    out.push({ docId, clientId: 'client', seq: i + 1, baseVersion: i, op: fromPatch(len, pos, del, ins) });
    len += ins.length - del;
  }
  return out;
}

interface LateScenario {
  readonly requests: SubmitRequest[];
  /** The text the server must end at, from an independent replay of the same rebasing. */
  readonly expected: string;
  /** Mean lag actually used (the first ops cannot be further behind than version 0). */
  readonly meanLag: number;
}

/**
 * Op i is submitted by client i mod 64 (so each client's own previous op, 64 versions back, is
 * always inside its base) at baseVersion i - lag: the trace's patch, clamped into the text at
 * that version. The server's history is simulated with the same transform the sequencer uses.
 */
function lateRequests(trace: Trace, lagOf: (i: number) => number): LateScenario {
  const n = trace.patches.length;
  const lengths = new Float64Array(n + 1);
  lengths[0] = trace.startContent.length;
  const applied: Component[][] = [];
  const requests: SubmitRequest[] = [];
  let text = trace.startContent;
  let lagSum = 0;
  for (let i = 0; i < n; i++) {
    const lag = Math.min(lagOf(i), i);
    lagSum += lag;
    const base = i - lag;
    const len = lengths[base] as number;
    const [pos, del, ins] = trace.patches[i] as readonly [number, number, string];
    const p = Math.min(pos, len);
    const d = Math.min(del, len - p);
    const submitted = fromPatch(len, p, d, ins);
    requests.push({
      docId: 'doc',
      clientId: `client-${i % LATE_CLIENTS}`,
      seq: Math.floor(i / LATE_CLIENTS) + 1,
      baseVersion: base,
      op: submitted,
    });
    let op = submitted;
    for (let v = base; v < i; v++) op = transform(op, applied[v] as Component[], 'right');
    applied.push(op);
    text = apply(text, op);
    lengths[i + 1] = text.length;
  }
  return { requests, expected: text, meanLag: lagSum / n };
}

/** Patch j of every document before patch j + 1 of any: round-robin over the documents. */
function manyDocRequests(trace: Trace): SubmitRequest[] {
  const perDoc = Array.from({ length: DOCS }, (_, d) => headRequests(trace, `doc-${d}`, OPS_PER_DOC));
  const out: SubmitRequest[] = [];
  for (let j = 0; j < OPS_PER_DOC; j++) for (const reqs of perDoc) out.push(reqs[j] as SubmitRequest);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Stores and timed runs

interface StoreKind {
  readonly name: string;
  readonly runs: number;
  open(): { store: Store; dispose: () => Promise<void> };
}

const memoryKind: StoreKind = {
  name: 'MemoryStore',
  runs: MEMORY_RUNS,
  open: () => {
    const store = new MemoryStore();
    return { store, dispose: () => store.close() };
  },
};

function sqliteKind(options: SqliteStoreOptions = {}): StoreKind {
  const notes = Object.entries(options).map(([k, v]) => `${k}=${String(v)}`);
  return {
    name: notes.length === 0 ? 'SqliteStore' : `SqliteStore (${notes.join(', ')})`,
    runs: SQLITE_RUNS,
    open: () => {
      const dir = mkdtempSync(join(tmpdir(), 'otter-bench-'));
      const store = new SqliteStore(join(dir, 'bench.db'), options);
      return {
        store,
        dispose: async () => {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

/**
 * Submits `requests` in windows of `window` outstanding promises (awaiting each window with
 * Promise.all before the next), checks every answer is a fresh op, and returns the elapsed ms.
 */
async function submitAll(
  seq: Sequencer,
  requests: readonly SubmitRequest[],
  window: number,
  many = false,
): Promise<number> {
  const t0 = performance.now();
  for (let start = 0; start < requests.length; start += window) {
    const end = Math.min(requests.length, start + window);
    if (many) {
      // One submitMany call per window: one promise for the window instead of one per op.
      const answers = await seq.submitMany(requests.slice(start, end));
      for (const a of answers) if (a instanceof Error || a.duplicate) throw new Error(`unexpected answer ${String(a)}`);
      continue;
    }
    const promises = new Array<Promise<unknown>>(end - start);
    for (let i = start; i < end; i++) promises[i - start] = seq.submit(requests[i] as SubmitRequest);
    const results = (await Promise.all(promises)) as { duplicate: boolean }[];
    for (const r of results) if (r.duplicate) throw new Error('unexpected duplicate');
  }
  return performance.now() - t0;
}

interface Rate {
  readonly median: number;
  readonly best: number;
  readonly runs: number;
}

function summarizeRates(ops: number, samples: number[]): Rate {
  const rates = samples.map((ms) => (ops * 1000) / ms).sort((a, b) => a - b);
  const mid = rates.length >> 1;
  const median = rates.length % 2 === 1 ? (rates[mid] as number) : ((rates[mid - 1] as number) + (rates[mid] as number)) / 2;
  return { median, best: rates[rates.length - 1] as number, runs: samples.length };
}

/**
 * One warmup run, then `kind.runs` timed runs, each on a fresh sequencer and store; `check`
 * runs after the clock stops, before the sequencer is closed.
 */
async function measureSequencer(
  kind: StoreKind,
  requests: readonly SubmitRequest[],
  window: number,
  check: (seq: Sequencer, store: Store) => Promise<void>,
  options: SequencerOptions = {},
  many = false,
): Promise<Rate> {
  const samples: number[] = [];
  for (let r = 0; r <= kind.runs; r++) {
    const { store, dispose } = kind.open();
    try {
      const seq = new Sequencer(store, { idleTimeout: 0, ...options });
      collectGarbage();
      const elapsed = await submitAll(seq, requests, window, many);
      await check(seq, store);
      await seq.close();
      if (r > 0) samples.push(elapsed);
    } finally {
      await dispose(); // removes the SQLite temp file even if a check failed
    }
  }
  return summarizeRates(requests.length, samples);
}

async function expectText(seq: Sequencer, docId: string, expected: string, what: string): Promise<void> {
  expectSameText(what, (await seq.getSnapshot(docId)).text, expected);
}

/** Replays the store's op log from version 0 and compares it with the sequencer's head text. */
async function expectLogReplays(seq: Sequencer, store: Store, expected: string, what: string): Promise<void> {
  const head = await seq.getSnapshot('doc');
  const log = await store.getOps('doc', 0, head.version);
  if (log.length !== head.version) throw new Error(`${what}: the log holds ${log.length} of ${head.version} ops`);
  let text = '';
  for (const r of log) text = apply(text, r.op);
  expectSameText(`${what} (log replay)`, text, head.text);
  expectSameText(`${what} (independent replay)`, head.text, expected);
}

/**
 * The least a promise-per-submit API can cost with this harness: submit() queues an item and
 * returns a new Promise; one microtask later the queue is answered in a batch (as the
 * sequencer's drain does); the client awaits each window with Promise.all. No other work.
 */
async function measurePromiseFloor(n: number): Promise<Rate> {
  interface Item {
    readonly i: number;
    resolve: (r: { duplicate: boolean; version: number }) => void;
  }
  let queue: Item[] = [];
  let draining = false;
  const drain = async (): Promise<void> => {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      await undefined;
      for (const item of batch) item.resolve({ duplicate: false, version: item.i + 1 });
    }
    draining = false;
  };
  const submit = (i: number): Promise<{ duplicate: boolean; version: number }> =>
    new Promise((resolve) => {
      queue.push({ i, resolve });
      if (!draining) {
        draining = true;
        void drain();
      }
    });
  const samples: number[] = [];
  for (let r = 0; r <= MEMORY_RUNS; r++) {
    collectGarbage();
    const t0 = performance.now();
    for (let start = 0; start < n; start += WINDOW) {
      const end = Math.min(n, start + WINDOW);
      const promises = new Array<Promise<{ duplicate: boolean }>>(end - start);
      for (let i = start; i < end; i++) promises[i - start] = submit(i);
      const results = await Promise.all(promises);
      for (const x of results) if (x.duplicate) throw new Error('unexpected duplicate');
    }
    if (r > 0) samples.push(performance.now() - t0);
  }
  return summarizeRates(n, samples);
}

// ---------------------------------------------------------------------------------------------
// Output helpers

function rate(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} k`;
  return n.toFixed(0);
}

function rateRow(label: string, store: string, r: Rate, extra: string[] = []): string[] {
  return [label, store, rate(r.median), rate(r.best), String(r.runs), (1e9 / r.median).toFixed(0), ...extra];
}

const RATE_HEADERS = ['scenario', 'store', 'median ops/s', 'best ops/s', 'runs', 'ns / op'];

// ---------------------------------------------------------------------------------------------

export interface SequencerBenchResult {
  readonly head: ReadonlyMap<string, Rate>;
  readonly late: ReadonlyMap<string, Rate>;
  readonly manyDocs: ReadonlyMap<string, Rate>;
  readonly scale: ReadonlyMap<string, number>;
}

export async function run(): Promise<SequencerBenchResult> {
  const trace = loadTrace(TRACE);
  const n = trace.patches.length;
  printHeader('sequencer: submit → ack throughput of the authoritative sequencer', [
    `trace ${TRACE}: ${count(n)} patches (single-character inserts and deletes), final length ${count(trace.endContent.length)}.`,
    `Requests are built before timing. Timed: submit every request and await every answer. "window ${count(WINDOW)}"`,
    `= ${count(WINDOW)} submits outstanding, then await them all (Promise.all), then the next ${count(WINDOW)}; "all at once"`,
    '= every submit issued before the first await. Each run: fresh Sequencer (default options, idle sweeper off)',
    `and store; SQLite: WAL, synchronous=normal unless noted, temp file removed after. 1 warmup + ${MEMORY_RUNS} timed runs`,
    `(MemoryStore) / ${SQLITE_RUNS} (SQLite); ops/s = ops / wall time; median and best. Ack after commit holds in every case.`,
    (globalThis as { gc?: unknown }).gc === undefined
      ? 'No forced GC between runs (run with `npx tsx --expose-gc bench/sequencer.ts` for steadier numbers).'
      : 'A full GC (--expose-gc) runs before every timed run.',
    quick ? 'QUICK MODE (--quick): one timed run each; numbers are noisier.' : '',
  ].filter((l) => l !== ''));

  const head = headRequests(trace);

  // 4. Scale: the same trace without a sequencer, and the sequencer's own floor. Measured
  // first, on a small heap: after the sequencer runs below, a large old generation (and the
  // marking it triggers) slows these short loops by up to 2×. Printed last, as table 4.
  const patches = trace.patches;
  const cmInserts = patches.map(([, , ins]) => Text.of(ins.split('\n')));
  const limits = { maxDocLength: 1 << 24, maxOpLength: 1 << 20 };
  // The sequencer's own validation (private): the submissions it builds are what
  // DocumentState.submit sees in production, so the core is measured on the same shapes.
  const validator = new Sequencer(new MemoryStore(), { idleTimeout: 0 }) as unknown as {
    validate(r: SubmitRequest): Submission;
  };
  const timings = measureCases<string>(
    [
      {
        name: 'plain JS string (slice + concat)',
        fn: () => {
          let doc = trace.startContent;
          for (const [pos, del, ins] of patches) doc = doc.slice(0, pos) + ins + doc.slice(pos + del);
          return doc;
        },
      },
      {
        name: 'Otter Rope alone (src/ot/rope.ts)',
        fn: () => {
          const rope = new Rope(trace.startContent);
          for (const [pos, del, ins] of patches) {
            if (del > 0) rope.delete(pos, del);
            if (ins.length > 0) rope.insert(pos, ins);
          }
          return rope.toString();
        },
      },
      {
        name: '@codemirror/state Text (replace)',
        fn: () => {
          let doc = Text.of(trace.startContent.split('\n'));
          for (let i = 0; i < patches.length; i++) {
            const [pos, del] = patches[i] as readonly [number, number, string];
            doc = doc.replace(pos, pos + del, cmInserts[i] as Text);
          }
          return doc.toString();
        },
      },
      {
        name: 'jumprope 1.2 (insert / del)',
        fn: () => {
          const rope = new JumpRopeClass(trace.startContent);
          for (const [pos, del, ins] of patches) {
            if (del > 0) rope.del(pos, del);
            if (ins.length > 0) rope.insert(pos, ins);
          }
          return rope.toString();
        },
      },
      {
        name: 'sequencer sync core: validate + DocumentState.submit (no promise, no store)',
        fn: () => {
          const loaded = { epoch: 'e', snapshot: EMPTY_SNAPSHOT, ops: [], head: 0, trimmedTo: 0, recoveries: [] };
          const state = new DocumentState('doc', loaded);
          for (let i = 0; i < head.length; i++) {
            state.submit(validator.validate(head[i] as SubmitRequest), limits, []);
            if ((i & 1023) === 1023) state.trimRecent(1000);
          }
          return state.rope.toString();
        },
      },
    ].map((c) => ({ ...c, check: (doc: string) => expectSameText(c.name, doc, trace.endContent) })),
  );
  const scale = new Map<string, number>();
  for (const [name, t] of timings) scale.set(name, (n * 1000) / t.median);
  const floor = await measurePromiseFloor(n);
  scale.set(`promise floor: submit → Promise → batch resolve, no work (window ${count(WINDOW)})`, floor.median);

  // 1. Head version, one document.
  const checkHead = (seq: Sequencer) => expectText(seq, 'doc', trace.endContent, 'head scenario');
  const headRates = new Map<string, Rate>();
  const headRows: string[][] = [];
  for (const [kind, window, many] of [
    [memoryKind, WINDOW, false],
    [memoryKind, WINDOW, true],
    [memoryKind, n, false],
    [sqliteKind(), WINDOW, false],
    [sqliteKind(), WINDOW, true],
    [sqliteKind(), n, false],
    [sqliteKind({ synchronous: 'full' }), WINDOW, false],
  ] as const) {
    const label = many
      ? `head, submitMany of ${count(window)}`
      : window === n
        ? 'head, all at once'
        : `head, window ${count(window)}`;
    const r = await measureSequencer(kind, head, window, checkHead, {}, many);
    headRates.set(`${kind.name} | ${label}`, r);
    headRows.push(rateRow(label, kind.name, r));
  }
  console.log(`### 1. One document at head version (1 client, seq i+1, baseVersion i), ${count(n)} ops\n`);
  printTable(RATE_HEADERS, headRows);

  // 2. Late clients.
  const lateRates = new Map<string, Rate>();
  const lateRows: string[][] = [];
  const random = seededRandom(0x07734);
  const lags: readonly [string, (i: number) => number][] = [
    ['lag 1', () => 1],
    ['lag 10', () => 10],
    ['lag 50', () => 50],
    ['lag uniform 1–50', () => 1 + Math.floor(random() * 50)],
  ];
  // The whole log is kept (the default) so it can be replayed from version 0.
  const keepLog: SequencerOptions = {};
  for (const [label, lagOf] of lags) {
    const scenario = lateRequests(trace, lagOf);
    const check = (seq: Sequencer, store: Store) => expectLogReplays(seq, store, scenario.expected, label);
    const kinds = label.startsWith('lag uniform') ? [memoryKind, sqliteKind()] : [memoryKind];
    for (const kind of kinds) {
      const r = await measureSequencer(kind, scenario.requests, WINDOW, check, keepLog);
      lateRates.set(`${kind.name} | ${label}`, r);
      lateRows.push(rateRow(`${label}, window ${count(WINDOW)}`, kind.name, r, [scenario.meanLag.toFixed(2)]));
    }
  }
  console.log(
    `### 2. Late clients: ${LATE_CLIENTS} clients round-robin, op i at baseVersion i − lag (rebased over lag ops), ${count(n)} ops\n`,
  );
  printTable([...RATE_HEADERS, 'mean lag'], lateRows);

  // 3. Many documents.
  const many = manyDocRequests(trace);
  const manyExpected = contentAfter(trace, OPS_PER_DOC);
  const checkMany = async (seq: Sequencer) => {
    for (let d = 0; d < DOCS; d++) await expectText(seq, `doc-${d}`, manyExpected, `doc-${d}`);
  };
  const manyRates = new Map<string, Rate>();
  const manyRows: string[][] = [];
  for (const [kind, window] of [
    [memoryKind, WINDOW],
    [memoryKind, many.length],
    [sqliteKind(), WINDOW],
    [sqliteKind({ checkpointPages: 1000 }), WINDOW],
    [sqliteKind(), many.length],
  ] as const) {
    const label = window === many.length ? 'all at once' : `window ${count(window)}`;
    const r = await measureSequencer(kind, many, window, checkMany);
    manyRates.set(`${kind.name} | ${label}`, r);
    manyRows.push(rateRow(`${count(DOCS)} docs, ${label}`, kind.name, r));
  }
  console.log(
    `### 3. ${count(DOCS)} documents × first ${OPS_PER_DOC} patches, interleaved round-robin (${count(many.length)} ops; loads included)\n`,
  );
  printTable(RATE_HEADERS, manyRows);

  const memHead = (headRates.get(`MemoryStore | head, window ${count(WINDOW)}`) as Rate).median;
  const sqlHead = (headRates.get(`SqliteStore | head, window ${count(WINDOW)}`) as Rate).median;
  console.log(`### 4. Scale: the same ${count(n)} patches without a sequencer, and the sequencer's floor\n`);
  printTable(
    ['what', 'median ops/s', 'ns / op', '÷ sequencer (memory)', '÷ sequencer (SQLite)'],
    [...scale].map(([name, r]) => [
      name,
      rate(r),
      (1e9 / r).toFixed(0),
      `${(r / memHead).toFixed(2)}×`,
      `${(r / sqlHead).toFixed(2)}×`,
    ]),
  );
  console.log(
    `Ratios: each row's rate divided by the windowed head-version sequencer of table 1 (MemoryStore ${rate(memHead)} ops/s, ` +
      `SqliteStore ${rate(sqlHead)} ops/s); above 1× the row is faster than the sequencer. The string, rope and Text rows ` +
      'include building nothing but the edit itself; the sequencer rows validate, decide, apply, record, commit and answer.',
  );
  return { head: headRates, late: lateRates, manyDocs: manyRates, scale };
}

if (isMain(import.meta.url)) await run();
