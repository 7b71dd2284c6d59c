import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type OpBudget, budgetFor, fits, opBytes, splitOp } from '../../src/client/split.js';
import { opLength } from '../../src/protocol/limits.js';
import { type Component, apply, compose, fromPatch, isCanonical, isNoop } from '../../src/ot/index.js';

/** UTF-8 bytes of the JSON text of `value`, as a WebSocket frame carries it. */
function jsonBytes(value: unknown): number {
  return new TextEncoder().encode(JSON.stringify(value)).length;
}

/** Code points whose JSON text is 1 to 6 bytes, a surrogate pair among them. */
const unit = fc.constantFrom('a', '"', '\\', '\n', '\u0001', 'é', '中', '😀', '\u2028');

/** `pos` moved back off the middle of a surrogate pair. */
function snap(text: string, pos: number): number {
  const c = text.charCodeAt(pos);
  return pos > 0 && c >= 0xdc00 && c <= 0xdfff ? pos - 1 : pos;
}

const patch = fc.record({ at: fc.nat(100), del: fc.nat(6), ins: fc.string({ unit, maxLength: 40 }) });

/** A document and a canonical op on it: several patches at code point boundaries, composed. */
const opOnDoc = fc
  .record({ doc: fc.string({ unit, maxLength: 20 }), patches: fc.array(patch, { minLength: 1, maxLength: 4 }) })
  .map(({ doc, patches }) => {
    let text = doc;
    let op: Component[] | undefined;
    for (const p of patches) {
      const at = snap(text, p.at % (text.length + 1));
      const end = snap(text, Math.min(text.length, at + p.del));
      const next = fromPatch(text.length, at, end - at, p.ins);
      op = op === undefined ? next : compose(op, next);
      text = apply(text, next);
    }
    return { doc, op: op as Component[] };
  });

/** Budgets from tiny to roomy, all large enough for one code point or one delete per piece. */
const budget: fc.Arbitrary<OpBudget> = fc.record({
  maxLength: fc.integer({ min: 5, max: 60 }),
  maxBytes: fc.integer({ min: 56, max: 600 }),
});

describe('splitOp', () => {
  it('law: the pieces applied in order have the effect of the op, and each fits the budget, measured on its real JSON', () => {
    fc.assert(
      fc.property(opOnDoc, budget, ({ doc, op }, b) => {
        const pieces = splitOp(op, b);
        expect(pieces.reduce(apply, doc)).toBe(apply(doc, op)); // apply also refuses lone surrogates
        for (const piece of pieces) {
          expect(opLength(piece)).toBeLessThanOrEqual(b.maxLength);
          expect(jsonBytes(piece)).toBeLessThanOrEqual(b.maxBytes);
          expect(isCanonical(piece)).toBe(true);
          if (pieces.length > 1) expect(isNoop(piece)).toBe(false);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('returns the op itself (a copy) when it fits', () => {
    const op = [3, 'abc', -2, 1];
    const pieces = splitOp(op, { maxLength: 100, maxBytes: 1000 });
    expect(pieces).toEqual([op]);
    expect(pieces[0]).not.toBe(op);
  });

  it('cuts a long insert between code points, never inside a surrogate pair', () => {
    const text = '😀'.repeat(50);
    // Room for 3 code units a piece: an odd number, so a naive cut would split every second pair.
    const pieces = splitOp([1, text, 1], { maxLength: 2 + 1 + 3, maxBytes: 1000 });
    expect(pieces.length).toBe(50);
    for (const piece of pieces) {
      const inserted = piece.find((c) => typeof c === 'string') as string;
      expect(inserted).toBe('😀');
    }
    expect(pieces.reduce(apply, 'ab')).toBe(`a${text}b`);
  });

  it('counts JSON escapes: a text of control characters is cut six times finer than ASCII', () => {
    const b: OpBudget = { maxLength: 1_000_000, maxBytes: 1000 };
    const ascii = splitOp(['a'.repeat(10_000)], b);
    const control = splitOp(['\u0001'.repeat(10_000)], b);
    expect(control.length).toBeGreaterThan(5 * ascii.length);
    for (const piece of [...ascii, ...control]) expect(jsonBytes(piece)).toBeLessThanOrEqual(1000);
  });

  it('packs the changes of a many-component op into few pieces, never cutting a delete', () => {
    // Delete every other character of a long text: 2000 components.
    const op: Component[] = [];
    for (let i = 0; i < 1000; i++) op.push(1, -1);
    const doc = 'ab'.repeat(1000);
    const pieces = splitOp(op, { maxLength: 100, maxBytes: 100_000 });
    expect(pieces.length).toBeGreaterThan(15);
    expect(pieces.length).toBeLessThan(25);
    expect(pieces.reduce(apply, doc)).toBe('a'.repeat(1000));
  });

  it('still makes progress, one code point or delete a piece, when the budget is too small for any', () => {
    const pieces = splitOp([1, 'x😀y', -1], { maxLength: 1, maxBytes: 1 });
    expect(pieces.map((p) => p.filter((c) => typeof c === 'string' || c < 0))).toEqual([['x'], ['😀'], ['y'], [-1]]);
    expect(pieces.reduce(apply, 'ab')).toBe('ax😀y');
  });
});

describe('op measures and budgets', () => {
  it('opBytes is exact for inserted text and an upper bound for any op', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 50 }), (s) => {
        expect(opBytes([s])).toBe(jsonBytes([s]));
      }),
    );
    fc.assert(
      fc.property(opOnDoc, ({ op }) => {
        expect(opBytes(op)).toBeGreaterThanOrEqual(jsonBytes(op));
      }),
    );
    // Numbers count at their widest, a delete of 2^53 - 1.
    expect(opBytes(['é', -Number.MAX_SAFE_INTEGER])).toBe(jsonBytes(['é', -Number.MAX_SAFE_INTEGER]));
    expect(opLength([2, 'abc', -4, 'é'])).toBe(4 + 4);
  });

  it('budgetFor leaves room for the submit frame around the op, whatever its doc id, v and seq', () => {
    const limits = { maxPayload: 4096, maxOpLength: 800 };
    for (const doc of ['d', 'notes/"quoted"\n', '😀'.repeat(100)]) {
      const b = budgetFor(limits, doc);
      expect(b.maxLength).toBe(700);
      const op = splitOp(['\u0001'.repeat(5000)], b)[0] as Component[];
      expect(fits(op, b)).toBe(true);
      const frame = { type: 'submit', doc, v: Number.MAX_SAFE_INTEGER, seq: Number.MAX_SAFE_INTEGER, op };
      expect(jsonBytes(frame)).toBeLessThanOrEqual((limits.maxPayload * 7) / 8);
    }
    expect(budgetFor({ maxPayload: 10, maxOpLength: 1 }, 'd')).toEqual({ maxLength: 1, maxBytes: 1 });
  });
});
