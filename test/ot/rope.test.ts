/**
 * The rope against a plain string: random inserts and deletes, including inserts over 4 kB
 * (forcing leaf and branch splits) and deletes spanning many leaves, must keep toString(),
 * length and charCodeAt identical to the same edits on a string.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { apply, invert, invertWithDeleted } from '../../src/ot/apply.js';
import type { Component } from '../../src/ot/operation.js';
import { InvalidOperationError } from '../../src/ot/errors.js';
import { Rope, applyToRope, deletedFromRope } from '../../src/ot/rope.js';
import { docAndEdit } from './arbitraries.js';
import { below, seededRandom } from '../support/random.js';

/** `npm run test:long` (OTTER_LONG=1) explores far more cases. */
const LONG = process.env.OTTER_LONG === '1';

type Edit =
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'probe'; at: number };

const chunk = fc.constantFrom('a', 'bc', 'xyz', '😀', 'é中', '\n', '0123456789');

/** Short, medium and large (> 4 kB, up to ~40 kB) inserted texts. */
const insertText = fc.oneof(
  { weight: 5, arbitrary: fc.array(chunk, { minLength: 1, maxLength: 20 }).map((a) => a.join('')) },
  { weight: 2, arbitrary: fc.tuple(chunk, fc.integer({ min: 30, max: 400 })).map(([c, n]) => c.repeat(n)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 4097, max: 40_000 }), fc.integer({ min: 0, max: 25 }))
      .map(([n, k]) => {
        // Varied content so a wrong slice shows up in the comparison.
        let s = '';
        for (let i = 0; s.length < n; i++) s += String.fromCharCode(0x61 + ((i * 7 + k) % 26));
        return s.slice(0, n);
      }),
  },
);

/** Positions and counts are fractions of the current length, so they are always in range. */
const edit: fc.Arbitrary<{ kind: 'insert' | 'delete' | 'probe'; f: number; g: number; text: string }> = fc.record({
  kind: fc.constantFrom<'insert' | 'delete' | 'probe'>('insert', 'insert', 'delete', 'probe'),
  f: fc.double({ min: 0, max: 1, noNaN: true }),
  g: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constant(1), fc.constant(0.0001)),
  text: insertText,
});

function resolve(e: { kind: 'insert' | 'delete' | 'probe'; f: number; g: number; text: string }, len: number): Edit {
  const at = Math.min(len, Math.floor(e.f * (len + 1)));
  if (e.kind === 'insert') return { kind: 'insert', at, text: e.text };
  if (e.kind === 'probe') return { kind: 'probe', at };
  const count = Math.min(len - at, Math.ceil(e.g * (len - at)));
  return { kind: 'delete', at, count };
}

/** The rope's tree, seen white-box to check its documented invariants. */
interface TreeNode {
  leaf: boolean;
  length: number;
  text?: string;
  children?: TreeNode[];
}

/**
 * Checks the invariants of the file comment: leaves hold 1..512 code units (the root may be
 * empty), branches 1..32 children with the sum of their lengths cached, leaves all at one depth.
 * Returns the depth.
 */
function checkTree(rope: Rope): number {
  const root = (rope as unknown as { root: TreeNode }).root;
  const depths = new Set<number>();
  const broken: string[] = [];
  const walk = (node: TreeNode, depth: number, isRoot: boolean): number => {
    if (node.leaf) {
      const len = (node.text as string).length;
      if (node.length !== len) broken.push(`leaf caches ${node.length}, holds ${len}`);
      if ((!isRoot && len < 1) || len > 512) broken.push(`leaf of ${len} code units`);
      depths.add(depth);
      return len;
    }
    const children = node.children as TreeNode[];
    if (children.length < 1 || children.length > 32) broken.push(`branch of ${children.length} children`);
    let sum = 0;
    for (const c of children) sum += walk(c, depth + 1, false);
    if (node.length !== sum) broken.push(`branch caches ${node.length}, children sum ${sum}`);
    return sum;
  };
  walk(root, 0, true);
  if (depths.size !== 1) broken.push(`leaves at depths ${[...depths].join(', ')}`);
  expect(broken).toEqual([]);
  return [...depths][0] as number;
}

function check(rope: Rope, text: string, probes: readonly number[]): void {
  expect(rope.length).toBe(text.length);
  for (const p of probes) expect(rope.charCodeAt(p)).toBe(text.charCodeAt(p));
  // slice(from, to) between every two probes (and the whole text) is the string's.
  for (const a of probes) {
    for (const b of probes) {
      const [from, to] = a <= b ? [a, b] : [b, a];
      expect(rope.slice(from, Math.min(to, text.length))).toBe(text.slice(from, to));
    }
  }
  expect(rope.slice(0, text.length)).toBe(text);
  expect(rope.charCodeAt(-1)).toBeNaN();
  expect(rope.charCodeAt(text.length)).toBeNaN();
}

describe('Rope', () => {
  it('agrees with a plain string under random inserts and deletes', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(''), insertText),
        fc.array(edit, { minLength: 1, maxLength: 60 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 4, maxLength: 8 }),
        (initial, edits, probeFractions) => {
          const rope = new Rope(initial);
          let text = initial;
          for (const raw of edits) {
            const e = resolve(raw, text.length);
            if (e.kind === 'insert') {
              rope.insert(e.at, e.text);
              text = text.slice(0, e.at) + e.text + text.slice(e.at);
            } else if (e.kind === 'delete') {
              rope.delete(e.at, e.count);
              text = text.slice(0, e.at) + text.slice(e.at + e.count);
            } else {
              expect(rope.charCodeAt(e.at)).toBe(text.charCodeAt(e.at));
            }
            const probes = probeFractions.map((f) => Math.floor(f * text.length));
            check(rope, text, [0, text.length - 1, ...probes]);
          }
          expect(rope.toString()).toBe(text);
          checkTree(rope);
        },
      ),
      { numRuns: LONG ? 2000 : 150 },
    );
  });

  it('survives many small edits growing a deep tree and deleting it again', () => {
    // Enough inserts at scattered positions to make branches split more than once.
    const rope = new Rope();
    let text = '';
    const random = seededRandom(12345);
    const rand = (n: number): number => below(random, n);
    for (let i = 0; i < 2500; i++) {
      const at = rand(text.length + 1);
      const s = `<${i}>`.repeat(1 + rand(30));
      rope.insert(at, s);
      text = text.slice(0, at) + s + text.slice(at);
    }
    expect(rope.length).toBe(text.length);
    expect(rope.toString()).toBe(text);
    // Root, branches of branches, branches of leaves, leaves: at least two levels of splits.
    expect(checkTree(rope)).toBeGreaterThanOrEqual(3);
    for (let i = 0; i < 200; i++) {
      const p = rand(text.length);
      expect(rope.charCodeAt(p)).toBe(text.charCodeAt(p));
    }
    // Deletes spanning many leaves, then everything.
    while (text.length > 0) {
      const at = rand(text.length);
      const count = Math.min(text.length - at, 1 + rand(20_000));
      rope.delete(at, count);
      text = text.slice(0, at) + text.slice(at + count);
      expect(rope.length).toBe(text.length);
      checkTree(rope);
      if (text.length > 0) {
        const p = rand(text.length);
        expect(rope.charCodeAt(p)).toBe(text.charCodeAt(p));
      }
    }
    expect(rope.toString()).toBe('');
    rope.insert(0, 'again');
    expect(rope.toString()).toBe('again');
  });

  it('handles the edges: empty rope, insert at both ends, delete of nothing', () => {
    const rope = new Rope('');
    expect(rope.length).toBe(0);
    expect(rope.toString()).toBe('');
    rope.delete(0, 0);
    rope.insert(0, '');
    expect(rope.toString()).toBe('');
    rope.insert(0, 'b');
    rope.insert(0, 'a');
    rope.insert(2, 'c');
    expect(rope.toString()).toBe('abc');
    const big = 'x'.repeat(10_000);
    const r2 = new Rope(big);
    checkTree(r2);
    r2.insert(10_000, 'END');
    r2.insert(0, 'START');
    expect(r2.toString()).toBe(`START${big}END`);
    r2.delete(0, r2.length);
    expect(r2.length).toBe(0);
    expect(r2.toString()).toBe('');
  });
});

describe('applyToRope', () => {
  it('leaves the rope holding apply(text, op), raw or canonical ops, long or short texts', () => {
    fc.assert(
      fc.property(docAndEdit, fc.nat(2000), fc.boolean(), (e, pad, raw) => {
        // A long prefix puts the edit across many leaves.
        const prefix = 'p'.repeat(pad);
        const op = pad > 0 ? [pad, ...(raw ? e.raw : e.op)] : raw ? e.raw : e.op;
        const rope = new Rope(prefix + e.doc);
        applyToRope(rope, op);
        expect(rope.toString()).toBe(apply(prefix + e.doc, op));
        expect(rope.toString()).toBe(prefix + e.expected);
      }),
      { numRuns: LONG ? 20_000 : 500 },
    );
  });

  it('throws InvalidOperationError and leaves the rope unchanged for an op that does not fit', () => {
    const text = 'ab😀c'; // the surrogate pair at 2..4
    const misfits: Component[][] = [[4, 'x'], [5, 'x', 1], [3, 'x', 2], [3, -1, 1], ['\uD800', 5], [0, 'x', 5]];
    for (const op of misfits) {
      const rope = new Rope(text);
      expect(() => applyToRope(rope, op), JSON.stringify(op)).toThrow(InvalidOperationError);
      expect(rope.toString()).toBe(text);
    }
  });
});

describe('undoing an op from the texts it deleted', () => {
  it('law: apply(apply(d, op), invertWithDeleted(op, deletedFromRope(rope of d, op))) === d, and it is invert(op, d)', () => {
    fc.assert(
      fc.property(docAndEdit, ({ doc, op, expected }) => {
        const rope = new Rope(doc);
        const undo = invertWithDeleted(op, deletedFromRope(rope, op));
        applyToRope(rope, op);
        expect(rope.toString()).toBe(expected);
        applyToRope(rope, undo);
        expect(rope.toString()).toBe(doc);
        expect(undo).toEqual(invert(op, doc));
      }),
      { numRuns: 500 },
    );
  });
});
