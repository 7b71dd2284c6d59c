/**
 * Benchmark 3: rebasing a client's pending edits over concurrent remote edits, as ot.js's
 * client does. On a ~100 kB document a client holds N pending single-character edits while the
 * server sends N concurrent single-character edits (both generated with a seeded PRNG).
 *   Otter:  buffer = composeAll(pending); then per remote op r:
 *           r' = transform(r, buffer, 'right'); buffer = transform(buffer, r, 'left')
 *   ot.js:  buffer = left fold of pending with compose; then per remote op r:
 *           [buffer, r'] = TextOperation.transform(buffer, r)
 * Both phases are timed separately. Every result is checked once for convergence:
 * doc·pending·r'₁…r'ₙ must equal doc·r₁…rₙ·buffer, and both libraries must reach the same text.
 *
 * Run alone: npx tsx bench/rebase.ts
 */
import b from 'benny';
import { type OtTextOperation, ot } from './peers.js';
import {
  type Component,
  type Operation,
  apply,
  composeAll,
  fromPatch,
  transform,
} from '../src/ot/index.js';
import {
  type Timing,
  count,
  expectSameText,
  isMain,
  measureCases,
  ms,
  printHeader,
  printTable,
  ratio,
  runsLabel,
} from './common.js';
import { seededRandom } from '../test/support/random.js';

const SIZES = [100, 1_000, 10_000] as const;
const DOC_LENGTH = 100_000;
const BENNY_N = 1_000;

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz';

/** A deterministic ~100 kB document of random words and lines (ASCII, so 1 code unit = 1 byte). */
function makeDocument(length: number, seed: number): string {
  const rand = seededRandom(seed);
  const parts: string[] = [];
  let size = 0;
  while (size < length) {
    const r = rand();
    const ch = r < 0.15 ? ' ' : r < 0.17 ? '\n' : ALPHABET[Math.floor(rand() * 26)] ?? 'a';
    parts.push(ch);
    size++;
  }
  return parts.join('');
}

/**
 * `n` sequential single-character edits on `doc` (60% insert a letter, 40% delete one), each at a
 * uniformly random position of the document as the previous edits left it. Otter ops.
 */
function makeEdits(doc: string, n: number, seed: number): Operation[] {
  const rand = seededRandom(seed);
  const ops: Operation[] = [];
  let length = doc.length;
  for (let i = 0; i < n; i++) {
    if (rand() < 0.6 || length === 0) {
      const pos = Math.floor(rand() * (length + 1));
      ops.push(fromPatch(length, pos, 0, ALPHABET[Math.floor(rand() * 26)] ?? 'a'));
      length++;
    } else {
      const pos = Math.floor(rand() * length);
      ops.push(fromPatch(length, pos, 1, ''));
      length--;
    }
  }
  return ops;
}

interface Scenario {
  readonly n: number;
  readonly doc: string;
  readonly local: readonly Operation[];
  readonly remote: readonly Operation[];
  readonly otLocal: readonly OtTextOperation[];
  readonly otRemote: readonly OtTextOperation[];
}

function makeScenario(doc: string, n: number): Scenario {
  const local = makeEdits(doc, n, 1000 + n);
  const remote = makeEdits(doc, n, 2000 + n);
  return {
    n,
    doc,
    local,
    remote,
    otLocal: local.map((op) => ot.TextOperation.fromJSON(op)),
    otRemote: remote.map((op) => ot.TextOperation.fromJSON(op)),
  };
}

// The rebase loops, exactly as timed.
function otterCompose(s: Scenario): Component[] {
  return composeAll(s.local);
}

function otterTransform(s: Scenario, pending: Operation): { buffer: Operation; rebased: Operation[] } {
  let buffer = pending;
  const rebased: Operation[] = [];
  for (const r of s.remote) {
    rebased.push(transform(r, buffer, 'right'));
    buffer = transform(buffer, r, 'left');
  }
  return { buffer, rebased };
}

function otCompose(s: Scenario): OtTextOperation {
  let buffer = s.otLocal[0] as OtTextOperation;
  for (let i = 1; i < s.otLocal.length; i++) buffer = buffer.compose(s.otLocal[i] as OtTextOperation);
  return buffer;
}

function otTransform(
  s: Scenario,
  pending: OtTextOperation,
): { buffer: OtTextOperation; rebased: OtTextOperation[] } {
  let buffer = pending;
  const rebased: OtTextOperation[] = [];
  for (const r of s.otRemote) {
    const [bufferPrime, remotePrime] = ot.TextOperation.transform(buffer, r);
    buffer = bufferPrime;
    rebased.push(remotePrime);
  }
  return { buffer, rebased };
}

/** The converged document, checked both ways round with Otter's apply. */
function converged(
  what: string,
  s: Scenario,
  pending: Operation,
  buffer: Operation,
  rebased: readonly Operation[],
): string {
  let client = apply(s.doc, pending);
  for (const r of rebased) client = apply(client, r);
  let server = s.doc;
  for (const r of s.remote) server = apply(server, r);
  server = apply(server, buffer);
  expectSameText(`${what}: client vs server`, client, server);
  return client;
}

interface Row {
  readonly n: number;
  readonly t: ReadonlyMap<string, Timing>;
}

export async function run(): Promise<void> {
  printHeader('rebase: N pending local edits against N concurrent remote edits', [
    `document: ${count(DOC_LENGTH)} code units (seeded PRNG); edits: single characters, 60% inserts / 40% deletes.`,
    'harness (bench/common.ts measureCases): 1 warmup round, then up to 5 round-robin timed rounds',
    '(within ~15 s per N); median wall time. A case slower than 4 s is timed by its single cold run.',
    'Each result is checked once: doc·pending·rebased remotes === doc·remotes·rebased buffer, Otter === ot.js.',
  ]);
  const doc = makeDocument(DOC_LENGTH, 42);
  const rows: Row[] = [];
  for (const n of SIZES) {
    const s = makeScenario(doc, n);
    // Inputs of the transform phase, computed once outside the timed region.
    const otterPending = otterCompose(s);
    const otPending = otCompose(s);
    if (JSON.stringify(otterPending) !== JSON.stringify(otPending.toJSON())) {
      throw new Error(`N=${n}: Otter composeAll and ot.js compose disagree on the pending buffer`);
    }
    let expected: string | undefined;
    const checked = new Set<string>();
    const once = (name: string, verify: () => void): void => {
      if (checked.has(name)) return;
      checked.add(name);
      verify();
    };
    const t = measureCases<unknown>([
      {
        name: 'Otter compose',
        fn: () => otterCompose(s),
        check: (r) =>
          once('Otter compose', () => {
            if (JSON.stringify(r) !== JSON.stringify(otterPending)) throw new Error('compose differs');
          }),
      },
      {
        name: 'Otter transform',
        fn: () => otterTransform(s, otterPending),
        check: (r) =>
          once('Otter transform', () => {
            const { buffer, rebased } = r as ReturnType<typeof otterTransform>;
            expected = converged(`Otter N=${n}`, s, otterPending, buffer, rebased);
          }),
      },
      {
        name: 'ot.js compose',
        fn: () => otCompose(s),
        check: (r) =>
          once('ot.js compose', () => {
            if (JSON.stringify((r as OtTextOperation).toJSON()) !== JSON.stringify(otterPending)) {
              throw new Error('ot.js compose differs');
            }
          }),
      },
      {
        name: 'ot.js transform',
        fn: () => otTransform(s, otPending),
        check: (r) =>
          once('ot.js transform', () => {
            const { buffer, rebased } = r as ReturnType<typeof otTransform>;
            const got = converged(
              `ot.js N=${n}`,
              s,
              otterPending,
              buffer.toJSON(),
              rebased.map((op) => op.toJSON()),
            );
            if (expected !== undefined) expectSameText(`N=${n}: ot.js vs Otter`, got, expected);
          }),
      },
    ]);
    rows.push({ n, t });
    console.log(`N = ${count(n)} done`);
  }

  const med = (row: Row, name: string): number => (row.t.get(name) as Timing).median;
  const otterTotal = (row: Row): number => med(row, 'Otter compose') + med(row, 'Otter transform');
  const otTotal = (row: Row): number => med(row, 'ot.js compose') + med(row, 'ot.js transform');
  console.log('\nmedian ms per phase; total = compose + transform:\n');
  printTable(
    [
      'N',
      'Otter composeAll',
      'Otter transforms',
      'Otter total',
      'ot.js compose fold',
      'ot.js transforms',
      'ot.js total',
      'ot.js total × Otter',
      'runs (Otter/ot.js transform)',
    ],
    rows.map((row) => [
      count(row.n),
      ms(med(row, 'Otter compose')),
      ms(med(row, 'Otter transform')),
      ms(otterTotal(row)),
      ms(med(row, 'ot.js compose')),
      ms(med(row, 'ot.js transform')),
      ms(otTotal(row)),
      ratio(otTotal(row), otterTotal(row)),
      `${runsLabel(row.t.get('Otter transform') as Timing)} / ${runsLabel(row.t.get('ot.js transform') as Timing)}`,
    ]),
  );
  console.log('growth of the total time between successive N (×10 each; quadratic = ×100):\n');
  printTable(
    ['N step', 'Otter total growth', 'ot.js total growth', 'Otter transform growth', 'ot.js transform growth'],
    rows.slice(1).map((row, i) => {
      const prev = rows[i] as Row;
      return [
        `${count(prev.n)}→${count(row.n)}`,
        `${(otterTotal(row) / otterTotal(prev)).toFixed(1)}×`,
        `${(otTotal(row) / otTotal(prev)).toFixed(1)}×`,
        `${(med(row, 'Otter transform') / med(prev, 'Otter transform')).toFixed(1)}×`,
        `${(med(row, 'ot.js transform') / med(prev, 'ot.js transform')).toFixed(1)}×`,
      ];
    }),
  );

  // One rebase step in isolation (benny, ops/s): a single remote edit against a pending buffer of
  // BENNY_N edits, transformed both ways.
  const s = makeScenario(doc, BENNY_N);
  const otterPending = otterCompose(s);
  const otPending = otCompose(s);
  const r0 = s.remote[0] as Operation;
  const otR0 = s.otRemote[0] as OtTextOperation;
  let sink = 0;
  const summary = await b.suite(
    `one rebase step against ${count(BENNY_N)} pending edits`,
    b.add('Otter', () => {
      sink += transform(r0, otterPending, 'right').length + transform(otterPending, r0, 'left').length;
    }),
    b.add('ot.js', () => {
      const [x, y] = ot.TextOperation.transform(otPending, otR0);
      sink += x.ops.length + y.ops.length;
    }),
    b.configure({ cases: { minSamples: 10, maxTime: 2 } }),
  );
  if (sink === 0) throw new Error('unreachable');
  const otterHz = summary.results.find((r) => r.name === 'Otter')?.ops ?? Number.NaN;
  console.log(`\none rebase step (remote edit ⇄ buffer of ${count(BENNY_N)} pending edits), benny:\n`);
  printTable(
    ['library', 'ops/s', '± %', 'samples', 'time × Otter'],
    summary.results.map((r) => [
      r.name,
      count(r.ops),
      r.margin.toFixed(2),
      String(r.samples),
      ratio(otterHz, r.ops),
    ]),
  );
}

if (isMain(import.meta.url)) await run();
