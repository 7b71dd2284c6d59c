/**
 * OpTree against the plain functions it replaces: every result must equal, op for op (canonical
 * form and tie-breaking included), what compose/transform/normalize return on the operation the
 * tree held, and every error must carry the same code and leave the tree unchanged.
 *
 * Large ops are random component lists (hundreds of components, often non-canonical, with astral
 * inserts). Small ops are drawn as abstract gaps resolved against the tree's current state: at a
 * random position or at one of the tree's component boundaries (where its inserts are, to force
 * ties), inserting BMP or astral text, deleting a few code units or a wide range covering many
 * components; then optionally split and reordered into non-canonical form. Positions strictly
 * inside a surrogate pair the tree inserts are avoided for compose (compose rejects those cuts;
 * a separate property cuts anywhere and compares the errors).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Component,
  InvalidOperationError,
  OpTree,
  type Operation,
  type Side,
  apply,
  checkOperation,
  compose,
  isCanonical,
  normalize,
  transform,
} from '../../src/ot/index.js';
import { codePoint, textOf } from './arbitraries.js';

/** `npm run test:long` (OTTER_LONG=1) explores ten times more cases. */
const LONG = process.env.OTTER_LONG === '1';
const runs = (n: number): { numRuns: number } => ({ numRuns: LONG ? n * 10 : n });

const SIDES: readonly Side[] = ['left', 'right'];
const opposite = (s: Side): Side => (s === 'left' ? 'right' : 'left');

// ---------------------------------------------------------------------------------------------
// Generators

/** One raw component: retains, deletes and inserts (BMP and astral), in any order. */
const component: fc.Arbitrary<Component> = fc.oneof(
  fc.integer({ min: 1, max: 12 }),
  fc.integer({ min: -12, max: -1 }),
  textOf(codePoint, 3),
);

/** A large raw operation: hundreds of components, usually not canonical. */
const largeOp: fc.Arbitrary<Component[]> = fc.array(component, { minLength: 100, maxLength: 320 });

/** Any size, from the empty operation (and inserts into an empty document) up. */
const anyOp: fc.Arbitrary<Component[]> = fc.oneof(
  fc.constant<Component[]>([]),
  fc.array<Component>(textOf(codePoint, 3), { minLength: 1, maxLength: 3 }),
  fc.array(component, { maxLength: 12 }),
  largeOp,
);

interface GapSpec {
  readonly at: number;
  /** Place the gap at one of the tree's component boundaries instead of at `at` mod length. */
  readonly anchored: boolean;
  readonly text: string | null;
  readonly del: number;
  /** Delete up to the whole document (covering many components) instead of a few units. */
  readonly wide: boolean;
}

interface SmallSpec {
  readonly gaps: readonly GapSpec[];
  /** Seeds for splitting components and swapping insert/delete pairs (non-canonical input). */
  readonly mangle: readonly number[];
}

const gapSpec = (wideWeight: number): fc.Arbitrary<GapSpec> =>
  fc.record({
    at: fc.nat(),
    anchored: fc.boolean(),
    text: fc.option(textOf(codePoint, 3), { freq: 4 }),
    del: fc.nat(),
    wide: fc.integer({ min: 0, max: 9 }).map((k) => k < wideWeight),
  });

/** A small op: up to five gaps, sometimes mangled. */
const smallSpec: fc.Arbitrary<SmallSpec> = fc.record({
  gaps: fc.array(gapSpec(2), { maxLength: 5 }),
  mangle: fc.oneof(fc.constant([]), fc.array(fc.nat(), { minLength: 1, maxLength: 4 })),
});

/** A keystroke: one gap inserting one character or deleting one or two units. */
const keystrokeSpec: fc.Arbitrary<SmallSpec> = fc
  .record({
    at: fc.nat(),
    anchored: fc.boolean(),
    ch: codePoint,
    typing: fc.integer({ min: 0, max: 9 }),
  })
  .map(({ at, anchored, ch, typing }) => ({
    gaps: [{ at, anchored, text: typing < 7 ? ch : null, del: typing < 7 ? 0 : typing - 6, wide: false }],
    mangle: [],
  }));

/** A session step: mostly keystrokes, sometimes a larger edit. */
const stepSpec: fc.Arbitrary<SmallSpec> = fc.oneof(
  { weight: 4, arbitrary: keystrokeSpec },
  { weight: 1, arbitrary: smallSpec },
);

// ---------------------------------------------------------------------------------------------
// Resolving specs against a tree

/** Component boundaries of a canonical op, measured in its base or its target. */
function boundaries(op: Operation, measure: 'base' | 'target'): number[] {
  const out = [0];
  let pos = 0;
  for (const c of op) {
    if (typeof c === 'string') pos += measure === 'target' ? c.length : 0;
    else if (c > 0) pos += c;
    else pos += measure === 'base' ? -c : 0;
    if (out[out.length - 1] !== pos) out.push(pos);
  }
  return out;
}

/** Target positions strictly inside a surrogate pair the op inserts (compose rejects cuts there). */
function insertedPairInteriors(op: Operation): Set<number> {
  const out = new Set<number>();
  let pos = 0;
  for (const c of op) {
    if (typeof c === 'string') {
      for (let j = 0; j < c.length; j++) {
        const u = c.charCodeAt(j);
        if (u >= 0xd800 && u <= 0xdbff) out.add(pos + j + 1);
      }
      pos += c.length;
    } else if (c > 0) pos += c;
  }
  return out;
}

/** Splits numeric components and swaps insert/delete pairs as the seeds direct. */
function mangle(op: Component[], seeds: readonly number[]): Component[] {
  const out = op.slice();
  for (const seed of seeds) {
    if (out.length === 0) break;
    const i = seed % out.length;
    const c = out[i] as Component;
    const next = out[i + 1];
    if (typeof c === 'string' && typeof next === 'number' && next < 0) {
      out[i] = next;
      out[i + 1] = c;
    } else if (typeof c === 'number' && Math.abs(c) >= 2) {
      const sign = Math.sign(c);
      const k = 1 + (Math.floor(seed / 7) % (Math.abs(c) - 1));
      out.splice(i, 1, sign * k, c - sign * k);
    }
  }
  return out;
}

/**
 * A concrete op of base length `length` from a spec. `anchors` are the preferred positions;
 * positions in `avoid` are moved one unit right (never past `length`).
 */
function resolve(
  spec: SmallSpec,
  length: number,
  anchors: readonly number[],
  avoid: ReadonlySet<number> = new Set(),
): Component[] {
  const snap = (p: number): number => (avoid.has(p) ? p + 1 : p);
  const gaps = spec.gaps
    .map((g) => ({
      g,
      pos: snap(g.anchored ? (anchors[g.at % anchors.length] as number) : g.at % (length + 1)),
    }))
    .sort((a, b) => a.pos - b.pos);
  const out: Component[] = [];
  let cur = 0;
  for (const { g, pos } of gaps) {
    const p = Math.max(pos, cur);
    if (p > cur) out.push(p - cur);
    cur = p;
    if (g.text !== null) out.push(g.text);
    const del = Math.min(length - cur, g.wide ? g.del % (length + 1) : g.del % 5);
    if (del > 0) {
      const end = snap(cur + del);
      out.push(cur - end);
      cur = end;
    }
  }
  if (length > cur) out.push(length - cur);
  return mangle(out, spec.mangle);
}

/** A small op on the tree's target, for composeWith, avoiding cuts inside inserted pairs. */
function composable(tree: OpTree, spec: SmallSpec): Component[] {
  const op = tree.toOperation();
  return resolve(spec, tree.targetLength, boundaries(op, 'target'), insertedPairInteriors(op));
}

/** A small op on the tree's base, for transformAgainst; anchors are where the tree inserts. */
function concurrent(tree: OpTree, spec: SmallSpec): Component[] {
  return resolve(spec, tree.baseLength, boundaries(tree.toOperation(), 'base'));
}

type Outcome = { readonly value: unknown } | { readonly code: string };

/** The result of f, or the code of the InvalidOperationError it throws. */
function outcome(f: () => unknown): Outcome {
  try {
    return { value: f() };
  } catch (e) {
    if (e instanceof InvalidOperationError) return { code: e.code };
    throw e;
  }
}

/** Asserts the tree holds exactly `op`, canonical, with matching getters. */
function expectHolds(tree: OpTree, op: Operation): void {
  const held = tree.toOperation();
  expect(held).toEqual(op);
  expect(isCanonical(held)).toBe(true);
  const lengths = checkOperation(held);
  expect(tree.size).toBe(held.length);
  expect(tree.baseLength).toBe(lengths.base);
  expect(tree.targetLength).toBe(lengths.target);
}

/** One composeWith step checked against compose, errors included; returns the new reference. */
function composeStep(tree: OpTree, ref: Component[], b: Operation): Component[] {
  const want = outcome(() => compose(ref, b));
  const got = outcome(() => tree.composeWith(b));
  if ('code' in want) {
    expect(got).toEqual(want);
    expectHolds(tree, ref);
    return ref;
  }
  expect('code' in got ? got : null).toBeNull();
  const next = want.value as Component[];
  expectHolds(tree, next);
  return next;
}

/** One transformAgainst step checked against both plain transforms; returns the new reference. */
function transformStep(tree: OpTree, ref: Component[], o: Operation, side: Side): Component[] {
  const mine = transform(ref, o, side);
  const theirs = transform(o, ref, opposite(side));
  expect(tree.transformOther(o, opposite(side))).toEqual(theirs);
  expectHolds(tree, ref);
  expect(tree.transformAgainst(o, side)).toEqual(theirs);
  expectHolds(tree, mine);
  return mine;
}

// ---------------------------------------------------------------------------------------------

describe('OpTree: building and reading', () => {
  it('from(op).toOperation() equals normalize(op); size, baseLength, targetLength agree', () => {
    fc.assert(
      fc.property(anyOp, (op) => {
        expectHolds(OpTree.from(op), normalize(op));
      }),
      runs(300),
    );
  });

  it('from(op) rejects what checkOperation rejects, with the same code', () => {
    const bad: unknown[] = [
      'abc',
      null,
      { length: 1 },
      [0],
      [1.5],
      [''],
      [Number.NaN],
      [null],
      ['\uD83D'],
      [2 ** 53],
      [2 ** 52, 2 ** 52],
    ];
    for (const op of bad) {
      const want = outcome(() => checkOperation(op));
      expect('code' in want).toBe(true);
      expect(outcome(() => OpTree.from(op as Operation))).toEqual(want);
    }
  });

  it('the empty operation and inserts into an empty document', () => {
    const empty = OpTree.from([]);
    expectHolds(empty, []);
    empty.composeWith(['ab😀']);
    expectHolds(empty, ['ab😀']);
    empty.composeWith([1, -3]);
    expectHolds(empty, ['a']);
    empty.composeWith([-1]);
    expectHolds(empty, []);
    expect(empty.transformAgainst(['xy'], 'left')).toEqual(['xy']);
    expectHolds(empty, [2]);
  });
});

describe('OpTree.composeWith', () => {
  it('composeWith(b) leaves compose(op, b) in the tree, for a large op and a small op', () => {
    fc.assert(
      fc.property(largeOp, smallSpec, (raw, spec) => {
        const tree = OpTree.from(raw);
        composeStep(tree, normalize(raw), composable(tree, spec));
      }),
      runs(300),
    );
  });

  it('a typing session: after every composeWith the tree equals the left fold of compose', () => {
    fc.assert(
      fc.property(anyOp, fc.array(stepSpec, { minLength: 20, maxLength: 60 }), (raw, steps) => {
        const tree = OpTree.from(raw);
        let ref = normalize(raw);
        for (const spec of steps) ref = composeStep(tree, ref, composable(tree, spec));
      }),
      runs(60),
    );
  });

  it('deletes covering the whole target leave one delete (or nothing) however many components', () => {
    fc.assert(
      fc.property(largeOp, fc.option(textOf(codePoint, 3)), (raw, text) => {
        const tree = OpTree.from(raw);
        const ref = normalize(raw);
        const t = tree.targetLength;
        const b: Component[] = [];
        if (text !== null) b.push(text);
        if (t > 0) b.push(-t);
        composeStep(tree, ref, b);
        expect(tree.size).toBeLessThanOrEqual(2);
      }),
      runs(100),
    );
  });

  it('mirrors compose on cuts inside inserted surrogate pairs (split-surrogate, tree unchanged)', () => {
    const cases: [Operation, Operation][] = [
      [['😀'], [1, 1]],
      [['😀'], [-1, -1]],
      [['😀'], [1, 'x', 1]],
      [['😀'], [1, -1]],
      [['😀'], [-1, 1]],
      [['😀'], [-1, 'x', -1]],
      [['😀'], ['x', -2]],
      [[1, 'a😀b', -2, 1], [2, -1, 3]],
      [[1, 'a😀b', -2, 1], [3, 'z', 3]],
      [[1, 'a😀b', -2, 1], [4, 'z', 2]],
    ];
    let thrown = 0;
    for (const [a, b] of cases) {
      const tree = OpTree.from(a);
      const want = outcome(() => compose(a, b));
      if ('code' in want) thrown++;
      const got = outcome(() => tree.composeWith(b));
      expect(got).toEqual('code' in want ? want : { value: undefined });
      expectHolds(tree, 'code' in want ? normalize(a) : (want.value as Component[]));
    }
    expect(thrown).toBe(6);
  });

  it('with cuts at any code unit, composeWith throws exactly when compose does, with its code', () => {
    fc.assert(
      fc.property(largeOp, smallSpec, (raw, spec) => {
        const tree = OpTree.from(raw);
        const ref = normalize(raw);
        // No snapping: boundaries may fall inside inserted surrogate pairs.
        composeStep(tree, ref, resolve(spec, tree.targetLength, boundaries(ref, 'target')));
      }),
      runs(300),
    );
  });
});

describe('OpTree.transformAgainst', () => {
  it('transformAgainst(o, side) leaves transform(op, o, side) and returns transform(o, op, opposite)', () => {
    fc.assert(
      fc.property(largeOp, smallSpec, fc.constantFrom(...SIDES), (raw, spec, side) => {
        const tree = OpTree.from(raw);
        transformStep(tree, normalize(raw), concurrent(tree, spec), side);
      }),
      runs(300),
    );
  });

  it('TP1: op · returned and o · tree reach the same document', () => {
    fc.assert(
      fc.property(largeOp, smallSpec, fc.constantFrom(...SIDES), (raw, spec, side) => {
        const tree = OpTree.from(raw);
        const op = tree.toOperation();
        const o = concurrent(tree, spec);
        const doc = 'abcdefghij'.repeat(Math.ceil(tree.baseLength / 10)).slice(0, tree.baseLength);
        const oPrime = tree.transformAgainst(o, side);
        expect(apply(apply(doc, op), oPrime)).toBe(apply(apply(doc, o), tree.toOperation()));
      }),
      runs(100),
    );
  });

  it('a remote stream: at every step the tree and the returned op equal the two plain transforms', () => {
    fc.assert(
      fc.property(
        anyOp,
        fc.array(fc.tuple(stepSpec, fc.constantFrom(...SIDES)), { minLength: 20, maxLength: 60 }),
        (raw, steps) => {
          const tree = OpTree.from(raw);
          let ref = normalize(raw);
          for (const [spec, side] of steps) ref = transformStep(tree, ref, concurrent(tree, spec), side);
        },
      ),
      runs(60),
    );
  });

  it('a client session: local keystrokes composed and remote ops transformed, interleaved, equal the plain functions at every step', () => {
    fc.assert(
      fc.property(
        anyOp,
        fc.array(fc.tuple(fc.boolean(), stepSpec, fc.constantFrom(...SIDES)), { minLength: 20, maxLength: 60 }),
        (raw, steps) => {
          const tree = OpTree.from(raw);
          let ref = normalize(raw);
          for (const [local, spec, side] of steps) {
            ref = local
              ? composeStep(tree, ref, composable(tree, spec))
              : transformStep(tree, ref, concurrent(tree, spec), side);
          }
        },
      ),
      runs(60),
    );
  });

  it('ties: inserts at the same position are ordered by side exactly as transform orders them', () => {
    const cases: [Operation, Operation][] = [
      [['x'], ['y']],
      [[2, 'x', 1], [2, 'y', 1]],
      [[2, 'x', -1], [2, 'y', -1]],
      [[2, 'x', -1], [2, 'y', 1]],
      [[2, 'x', 1], [2, 'y', -1]],
      [[2, 'x', 1], [2, -1, 'y']], // non-canonical other: normalized to [2, 'y', -1]
      [[1, -1, 'x', 1], [2, 'y', 1]], // non-canonical tree: held as [1, 'x', -1, 1]
      [[3, '😀'], [3, '😁']],
      [['a', 3, 'b'], ['c', 3, 'd']],
      [[1, 'x', 1, 'z', 1], [1, 'y', -2]],
      [[1, 'x', 1, 'z', 1], [1, -2]],
      [[1, 'x', 1, 'z', 1], ['y', -3]],
      [[1, 'x', 1, 'z', 1], [1, 'y', -1, 1]],
    ];
    for (const [a, b] of cases) {
      for (const side of SIDES) {
        const tree = OpTree.from(a);
        transformStep(tree, normalize(a), b, side);
        // And the other way round, the small op held in the tree.
        const tree2 = OpTree.from(b);
        transformStep(tree2, normalize(b), a, side);
      }
    }
  });

  it('deletes overlapping inserts and covering many components', () => {
    fc.assert(
      fc.property(
        largeOp,
        fc.nat(),
        fc.nat(),
        fc.option(textOf(codePoint, 3)),
        fc.constantFrom(...SIDES),
        (raw, x, y, text, side) => {
          const tree = OpTree.from(raw);
          const ref = normalize(raw);
          const n = tree.baseLength;
          const from = x % (n + 1);
          const to = from + (y % (n - from + 1));
          const o: Component[] = [];
          if (from > 0) o.push(from);
          if (text !== null) o.push(text);
          if (to > from) o.push(from - to);
          if (n > to) o.push(n - to);
          transformStep(tree, ref, o, side);
        },
      ),
      runs(200),
    );
  });
});

describe('OpTree.transformOther (read-only, the server direction)', () => {
  it('transformOther(o, side) equals transform(o, op, side) and leaves the tree unchanged', () => {
    fc.assert(
      fc.property(largeOp, fc.array(fc.tuple(smallSpec, fc.constantFrom(...SIDES)), { maxLength: 10 }), (raw, steps) => {
        const tree = OpTree.from(raw);
        const ref = normalize(raw);
        for (const [spec, side] of steps) {
          const o = concurrent(tree, spec);
          expect(tree.transformOther(o, side)).toEqual(transform(o, ref, side));
          expectHolds(tree, ref);
        }
      }),
      runs(150),
    );
  });
});

describe('OpTree errors', () => {
  const badOps: unknown[] = ['abc', null, undefined, 5, [0], [1.5], [''], [Number.NaN], [null], ['\uD83D'], [-(2 ** 53)]];

  it('composeWith throws compose\'s code for invalid ops and length mismatches, and leaves the tree unchanged', () => {
    fc.assert(
      fc.property(anyOp, fc.integer({ min: -3, max: 3 }), (raw, shift) => {
        const tree = OpTree.from(raw);
        const ref = normalize(raw);
        const t = tree.targetLength;
        const candidates: unknown[] = [...badOps, [t + 1], t > 0 ? [t - 1] : ['x', 1], ['x', t + 1]];
        if (shift !== 0 && t + shift > 0) candidates.push([t + shift]);
        for (const b of candidates) {
          const want = outcome(() => compose(ref, b as Operation));
          expect('code' in want).toBe(true);
          expect(outcome(() => tree.composeWith(b as Operation))).toEqual(want);
          expectHolds(tree, ref);
        }
      }),
      runs(50),
    );
  });

  it('transformAgainst and transformOther throw transform\'s code for invalid ops, sides and length mismatches, and leave the tree unchanged', () => {
    fc.assert(
      fc.property(anyOp, (raw) => {
        const tree = OpTree.from(raw);
        const ref = normalize(raw);
        const n = tree.baseLength;
        const cases: [unknown, unknown][] = [
          ...badOps.map((o): [unknown, unknown] => [o, 'left']),
          [[n + 1], 'right'],
          [n > 0 ? [n - 1] : ['x', 1], 'left'],
          [n > 0 ? [n] : [], 'up'],
          [n > 0 ? [n] : [], undefined],
          ['bad', 'up'],
          [[n + 1], 'up'],
        ];
        for (const [o, side] of cases) {
          const want = outcome(() => transform(ref, o as Operation, side as Side));
          expect('code' in want).toBe(true);
          expect(outcome(() => tree.transformAgainst(o as Operation, side as Side))).toEqual(want);
          expectHolds(tree, ref);
          const wantOther = outcome(() => transform(o as Operation, ref, side as Side));
          expect(outcome(() => tree.transformOther(o as Operation, side as Side))).toEqual(wantOther);
          expectHolds(tree, ref);
        }
      }),
      runs(50),
    );
  });

  it('a failed call leaves a tree that still composes and transforms correctly', () => {
    const tree = OpTree.from([1, 'a😀b', -2, 1]);
    expect(() => tree.composeWith([3, 'z', 3])).toThrow(InvalidOperationError);
    expect(() => tree.transformAgainst([5], 'left')).toThrow(InvalidOperationError);
    let ref = normalize([1, 'a😀b', -2, 1]);
    ref = composeStep(tree, ref, [4, 'z', 2]);
    transformStep(tree, ref, [1, 'q', 3], 'left');
  });
});
