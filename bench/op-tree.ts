/**
 * Benchmark: OpTree against the plain compose/transform for a large pending operation.
 *
 * For n = 1,000 / 10,000 / 100,000 components of a pending op (retains with inserts and deletes
 * between them, generated with a seeded PRNG), three phases of K = 10,000 small ops each:
 *   compose     a typing session on the pending op's target: bursts of 5–40 keystrokes (85%
 *               insert a letter at the caret, 15% backspace) at random places.
 *               OpTree: tree.composeWith(k)        plain: pending = compose(pending, k)
 *   transform   a remote user's keystrokes (same burst model) on the pending op's base, each
 *               transformed both ways, as a client (or a server rebasing a large late op) does.
 *               OpTree: r' = tree.transformAgainst(r, 'left')
 *               plain:  r' = transform(r, pending, 'right'); pending = transform(pending, r, 'left')
 *   server      K independent small ops, all on the large op's base, rebased over it read-only.
 *               OpTree: tree.transformOther(r, 'right')   plain: transform(r, large, 'right')
 * The plain functions are linear in the pending op, so a phase is quadratic: each plain phase
 * runs until PLAIN_BUDGET_MS is spent or K ops are done, and its total for K ops is extrapolated
 * from the ops it ran (marked "~"). OpTree always runs all K ops (median of 3 runs). Every
 * plain run is checked against OpTree for the same prefix of ops, op for op at the end.
 *
 * Run alone: npx tsx bench/op-tree.ts
 */
import { type Component, OpTree, type Operation, compose, transform } from '../src/ot/index.js';
import { count, isMain, median, ms, printHeader, printTable, ratio } from './common.js';
import { seededRandom } from '../test/support/random.js';

const SIZES = [1_000, 10_000, 100_000] as const;
const K = 10_000;
const PLAIN_BUDGET_MS = 8_000;
const TREE_RUNS = 3;

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz';

/** A canonical pending op of exactly n components: retain, then an insert and/or a delete. */
function makePending(n: number, seed: number): Component[] {
  const rand = seededRandom(seed);
  const letters = (k: number): string => {
    let s = '';
    for (let i = 0; i < k; i++) s += ALPHABET[Math.floor(rand() * 26)] ?? 'a';
    return s;
  };
  const op: Component[] = [];
  while (op.length < n) {
    op.push(1 + Math.floor(rand() * 40));
    const r = rand();
    if (r < 0.75) op.push(letters(1 + Math.floor(rand() * 8)));
    if (r > 0.5) op.push(-(1 + Math.floor(rand() * 8)));
  }
  op.length = n;
  return op;
}

/** One keystroke on a document of length `length`: insert a letter or delete one unit at `pos`. */
function keystroke(length: number, pos: number, insert: string | null): Component[] {
  const op: Component[] = [];
  if (pos > 0) op.push(pos);
  if (insert !== null) op.push(insert);
  else op.push(-1);
  const after = length - pos - (insert === null ? 1 : 0);
  if (after > 0) op.push(after);
  return op;
}

/**
 * K keystrokes in bursts of 5–40 at random places, each on the document the previous ones left
 * (starting from `length`): 85% insert a letter at the caret, 15% backspace.
 */
function makeTyping(length: number, k: number, seed: number): Component[][] {
  const rand = seededRandom(seed);
  const ops: Component[][] = [];
  let caret = 0;
  let burst = 0;
  while (ops.length < k) {
    if (burst === 0) {
      caret = Math.floor(rand() * (length + 1));
      burst = 5 + Math.floor(rand() * 36);
    }
    burst--;
    if (rand() < 0.85 || caret === 0) {
      ops.push(keystroke(length, caret, ALPHABET[Math.floor(rand() * 26)] ?? 'a'));
      caret++;
      length++;
    } else {
      ops.push(keystroke(length, caret - 1, null));
      caret--;
      length--;
    }
  }
  return ops;
}

/** K independent keystrokes, all on a document of length `length`. */
function makeConcurrent(length: number, k: number, seed: number): Component[][] {
  const rand = seededRandom(seed);
  const ops: Component[][] = [];
  for (let i = 0; i < k; i++) {
    const pos = Math.floor(rand() * (length + 1));
    ops.push(rand() < 0.85 || pos === length ? keystroke(length, pos, 'x') : keystroke(length, pos, null));
  }
  return ops;
}

function targetLength(op: Operation): number {
  let n = 0;
  for (const c of op) n += typeof c === 'string' ? c.length : c > 0 ? c : 0;
  return n;
}

function baseLength(op: Operation): number {
  let n = 0;
  for (const c of op) n += typeof c === 'string' ? 0 : c > 0 ? c : -c;
  return n;
}

function same(what: string, a: unknown, b: unknown): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${what}: OpTree and plain results differ`);
}

interface PlainRun {
  /** Ops run within the budget. */
  readonly done: number;
  readonly ms: number;
}

/** Runs step(i) for i = 0, 1, ... until K steps or the budget is spent. */
function runPlain(step: (i: number) => void): PlainRun {
  const t0 = performance.now();
  let i = 0;
  while (i < K) {
    step(i++);
    if ((i & 7) === 0 && performance.now() - t0 > PLAIN_BUDGET_MS) break;
  }
  return { done: i, ms: performance.now() - t0 };
}

/** Times OpTree over all K ops, TREE_RUNS times on fresh trees; returns the median and the last tree. */
function runTree(pending: Operation, step: (tree: OpTree, i: number) => void): { ms: number; tree: OpTree } {
  const times: number[] = [];
  let tree = OpTree.from(pending);
  for (let r = 0; r < TREE_RUNS; r++) {
    tree = OpTree.from(pending);
    const t0 = performance.now();
    for (let i = 0; i < K; i++) step(tree, i);
    times.push(performance.now() - t0);
  }
  return { ms: median(times), tree };
}

function us(msValue: number, ops: number): string {
  const v = (msValue * 1000) / ops;
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

export async function run(): Promise<void> {
  printHeader(`op-tree: ${count(K)} small ops into / against one large pending op, OpTree vs plain`, [
    `plain compose/transform are linear in the pending op: each plain phase runs until ${PLAIN_BUDGET_MS / 1000} s`,
    `are spent, and its total for ${count(K)} ops is extrapolated from the ops it ran (marked ~).`,
    `OpTree runs all ${count(K)} ops (median of ${TREE_RUNS} runs on fresh trees). Results checked equal.`,
  ]);

  // JIT warmup on a small case.
  {
    const p = makePending(2_000, 99);
    const t = OpTree.from(p);
    for (const k of makeTyping(targetLength(p), 3_000, 98)) t.composeWith(k);
    for (const r of makeTyping(t.baseLength, 3_000, 97)) t.transformAgainst(r, 'left');
    for (const r of makeConcurrent(t.baseLength, 3_000, 96)) t.transformOther(r, 'right');
    let q: Operation = p;
    for (const k of makeTyping(targetLength(p), 300, 95)) q = compose(q, k);
  }

  const rows: string[][] = [];
  const builds: string[][] = [];
  for (const n of SIZES) {
    const pending = makePending(n, n);
    // Build and read-back cost.
    {
      const t0 = performance.now();
      const tree = OpTree.from(pending);
      const t1 = performance.now();
      const back = tree.toOperation();
      const t2 = performance.now();
      same('from/toOperation', back, pending);
      builds.push([count(n), ms(t1 - t0), ms(t2 - t1)]);
    }

    // compose: a typing session into the pending op.
    const typing = makeTyping(targetLength(pending), K, n + 1);
    const treeCompose = runTree(pending, (tree, i) => tree.composeWith(typing[i] as Operation));
    let plain: Operation = pending;
    const plainCompose = runPlain((i) => {
      plain = compose(plain, typing[i] as Operation);
    });
    {
      const check = OpTree.from(pending);
      for (let i = 0; i < plainCompose.done; i++) check.composeWith(typing[i] as Operation);
      same('compose', check.toOperation(), plain);
    }
    rows.push(row(n, 'compose', treeCompose.tree.size, treeCompose.ms, plainCompose));

    // transform: a remote stream against the pending op, both directions.
    const remote = makeTyping(baseLength(pending), K, n + 2);
    const treeTransform = runTree(pending, (tree, i) => {
      tree.transformAgainst(remote[i] as Operation, 'left');
    });
    let pend: Operation = pending;
    let lastPlain: Operation = [];
    const plainTransform = runPlain((i) => {
      const r = remote[i] as Operation;
      lastPlain = transform(r, pend, 'right');
      pend = transform(pend, r, 'left');
    });
    {
      const check = OpTree.from(pending);
      let last: Operation = [];
      for (let i = 0; i < plainTransform.done; i++) last = check.transformAgainst(remote[i] as Operation, 'left');
      same('transform (pending)', check.toOperation(), pend);
      same('transform (remote)', last, lastPlain);
    }
    rows.push(row(n, 'transform ⇄', treeTransform.tree.size, treeTransform.ms, plainTransform));

    // server: independent small ops rebased over one large op, read-only.
    const incoming = makeConcurrent(baseLength(pending), K, n + 3);
    const results: Operation[] = new Array<Operation>(K);
    const treeServer = runTree(pending, (tree, i) => {
      results[i] = tree.transformOther(incoming[i] as Operation, 'right');
    });
    const plainResults: Operation[] = [];
    const plainServer = runPlain((i) => {
      plainResults.push(transform(incoming[i] as Operation, pending, 'right'));
    });
    same('server', plainResults, results.slice(0, plainServer.done));
    rows.push(row(n, 'server (read-only)', treeServer.tree.size, treeServer.ms, plainServer));
  }

  console.log('build and read back (ms):\n');
  printTable(['n', 'OpTree.from', 'toOperation'], builds);
  console.log(`${count(K)} small ops per phase:\n`);
  printTable(
    ['n', 'phase', 'final size', 'OpTree ms', 'OpTree µs/op', 'plain ops run', 'plain µs/op', `plain ms (${count(K)} ops)`, 'plain / OpTree'],
    rows,
  );
}

function row(n: number, phase: string, size: number, treeMs: number, plain: PlainRun): string[] {
  const total = (plain.ms * K) / plain.done;
  const extrapolated = plain.done < K;
  return [
    count(n),
    phase,
    count(size),
    ms(treeMs),
    us(treeMs, K),
    count(plain.done),
    us(plain.ms, plain.done),
    `${extrapolated ? '~' : ''}${ms(total)}`,
    ratio(total, treeMs),
  ];
}

if (isMain(import.meta.url)) await run();
