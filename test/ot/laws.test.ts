import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Component,
  InvalidOperationError,
  type Operation,
  type SelectionRange,
  type Side,
  apply,
  baseLength,
  compose,
  composeAll,
  fromDiff,
  fromPatch,
  invert,
  isNoop,
  normalize,
  targetLength,
  transform,
  transformPosition,
  transformSelection,
  type,
} from '../../src/ot/index.js';
import {
  MARKER,
  type Edit,
  boundaries,
  canonicalize,
  codePoint,
  concurrentPair,
  doc,
  docAndEdit,
  docOf,
  editSequence,
  mangledConcurrentPair,
  nonCanonicalEdit,
  positionIn,
  textOf,
  unitEditOn,
  units,
} from './arbitraries.js';

const CHEAP = { numRuns: 1000 };
const RUNS = { numRuns: 500 };
const SIDES: readonly Side[] = ['left', 'right'];
const side = fc.constantFrom<Side>(...SIDES);

type Kind = 'retain' | 'insert' | 'delete' | 'invalid';

function kindOf(c: unknown): Kind {
  if (typeof c === 'string') return c === '' ? 'invalid' : 'insert';
  if (typeof c !== 'number' || !Number.isSafeInteger(c) || c === 0) return 'invalid';
  return c > 0 ? 'retain' : 'delete';
}

/** No zero-length or invalid component, no two adjacent of one kind, no delete before an insert. */
function isCanonical(op: readonly unknown[]): boolean {
  let prev: Kind | undefined;
  for (const c of op) {
    const k = kindOf(c);
    if (k === 'invalid') return false;
    if (k === prev) return false;
    if (prev === 'delete' && k === 'insert') return false;
    prev = k;
  }
  return true;
}

/** A plain array copy, so no test shares an array with the code under test. */
function copy(op: readonly Component[]): Component[] {
  return op.slice();
}

/** Where `MARKER` sits in the target of a transformed marker insert, read off its components. */
function markerOffset(op: readonly Component[]): number {
  let pos = 0;
  for (const c of op) {
    if (typeof c === 'string') {
      const at = c.indexOf(MARKER);
      if (at >= 0) return pos + at;
      pos += c.length;
    } else if (c > 0) pos += c;
  }
  return -1;
}

/**
 * The smallest single-range change turning `before` into `after`, computed over code points:
 * longest common prefix first, then the longest common suffix of what is left.
 */
function minimalDiff(before: string, after: string): Component[] {
  const b = Array.from(before);
  const a = Array.from(after);
  let p = 0;
  while (p < b.length && p < a.length && b[p] === a[p]) p++;
  let s = 0;
  while (s < b.length - p && s < a.length - p && b[b.length - 1 - s] === a[a.length - 1 - s]) s++;
  return canonicalize([
    units(b.slice(0, p)),
    a.slice(p, a.length - s).join(''),
    -units(b.slice(p, b.length - s)),
    units(b.slice(b.length - s)),
  ]);
}

describe('isCanonical (the test oracle itself)', () => {
  it('accepts canonical forms and rejects each broken rule', () => {
    expect(isCanonical([])).toBe(true);
    expect(isCanonical([1, 'a', -1, 2])).toBe(true);
    expect(isCanonical(['a', -1])).toBe(true);
    expect(isCanonical([0])).toBe(false);
    expect(isCanonical([''])).toBe(false);
    expect(isCanonical([1, 2])).toBe(false);
    expect(isCanonical(['a', 'b'])).toBe(false);
    expect(isCanonical([-1, -2])).toBe(false);
    expect(isCanonical([-1, 'a'])).toBe(false);
  });
});

describe('generators carry a correct oracle', () => {
  it('apply(doc, op) equals the document computed by slicing code points', () => {
    fc.assert(
      fc.property(docAndEdit, (e) => {
        expect(apply(e.doc, e.op)).toBe(e.expected);
        expect(apply(e.doc, e.raw)).toBe(e.expected);
      }),
      CHEAP,
    );
  });

  it('baseLength is the document length and targetLength the outcome length', () => {
    fc.assert(
      fc.property(docAndEdit, (e) => {
        expect(baseLength(e.raw)).toBe(e.doc.length);
        expect(targetLength(e.raw)).toBe(e.expected.length);
      }),
      CHEAP,
    );
  });

  it('isNoop(op) holds exactly when the op has no insert and no delete', () => {
    fc.assert(
      fc.property(docAndEdit, (e) => {
        const changes = e.steps.some((s) => s.kind !== 'retain');
        expect(isNoop(e.raw)).toBe(!changes);
        if (!changes) expect(apply(e.doc, e.raw)).toBe(e.doc);
      }),
      CHEAP,
    );
  });
});

describe('compose', () => {
  it('apply∘compose: apply(apply(d, a), b) === apply(d, compose(a, b))', () => {
    fc.assert(
      fc.property(editSequence(2, 2), ({ doc: d, edits }) => {
        const [a, b] = edits as [Edit, Edit];
        const composed = compose(a.raw, b.raw);
        expect(apply(d, composed)).toBe(apply(apply(d, a.raw), b.raw));
        expect(apply(d, composed)).toBe(b.expected);
      }),
      CHEAP,
    );
  });

  it('compose result spans a’s base length and b’s target length', () => {
    fc.assert(
      fc.property(editSequence(2, 2), ({ doc: d, edits }) => {
        const [a, b] = edits as [Edit, Edit];
        const composed = compose(a.op, b.op);
        expect(baseLength(composed)).toBe(d.length);
        expect(targetLength(composed)).toBe(b.expected.length);
      }),
      RUNS,
    );
  });

  it('compose is associative in effect (and, being canonical, in JSON)', () => {
    fc.assert(
      fc.property(editSequence(3, 3), ({ doc: d, edits }) => {
        const [a, b, c] = edits as [Edit, Edit, Edit];
        const leftFirst = compose(compose(a.raw, b.raw), c.raw);
        const rightFirst = compose(a.raw, compose(b.raw, c.raw));
        expect(apply(d, leftFirst)).toBe(c.expected);
        expect(apply(d, rightFirst)).toBe(c.expected);
        expect(leftFirst).toEqual(rightFirst);
      }),
      RUNS,
    );
  });

  it('compose with the identity on either side is the canonical op', () => {
    fc.assert(
      fc.property(docAndEdit, (e) => {
        const before = e.doc.length === 0 ? [] : [e.doc.length];
        const after = e.expected.length === 0 ? [] : [e.expected.length];
        expect(compose(before, e.raw)).toEqual(e.op);
        expect(compose(e.raw, after)).toEqual(e.op);
      }),
      RUNS,
    );
  });

  it('compose rejects a cut inside a surrogate pair that a inserts exactly when apply rejects it', () => {
    const cut = doc.chain((text) => fc.tuple(fc.constant(text), unitEditOn(text)));
    fc.assert(
      fc.property(cut, ([text, b]) => {
        const a = text === '' ? [] : [text];
        const outcome = (f: () => unknown): unknown => {
          try {
            return { ok: f() };
          } catch (err) {
            return { code: err instanceof InvalidOperationError ? err.code : String(err) };
          }
        };
        const viaApply = outcome(() => apply(apply('', a), b));
        const viaCompose = outcome(() => apply('', compose(a, b)));
        expect(viaCompose).toEqual(viaApply);
      }),
      CHEAP,
    );
  });

  it('composeAll equals a left fold of apply and of compose', () => {
    fc.assert(
      fc.property(editSequence(1, 7), ({ doc: d, edits }) => {
        const ops = edits.map((e) => e.raw);
        const all = composeAll(ops);
        const last = edits[edits.length - 1] as Edit;
        expect(apply(d, all)).toBe(ops.reduce<string>((text, op) => apply(text, op), d));
        expect(apply(d, all)).toBe(last.expected);
        const folded = ops.slice(1).reduce<Component[]>((acc, op) => compose(acc, op), canonicalize(ops[0] as Component[]));
        expect(all).toEqual(folded);
      }),
      RUNS,
    );
  });
});

describe('transform', () => {
  it('TP1: apply(apply(d, a), transform(b, a, right)) === apply(apply(d, b), transform(a, b, left))', () => {
    fc.assert(
      fc.property(concurrentPair, ({ a, b }) => {
        const b2 = transform(b.op, a.op, 'right');
        const a2 = transform(a.op, b.op, 'left');
        expect(apply(a.expected, b2)).toBe(apply(b.expected, a2));
      }),
      CHEAP,
    );
  });

  it('TP1 holds for non-canonical inputs too', () => {
    fc.assert(
      fc.property(mangledConcurrentPair, ({ a, b }) => {
        const b2 = transform(b.raw, a.raw, 'right');
        const a2 = transform(a.raw, b.raw, 'left');
        expect(apply(a.expected, b2)).toBe(apply(b.expected, a2));
      }),
      RUNS,
    );
  });

  it('TP1 in operation form: compose(a, transform(b, a, right)) equals compose(b, transform(a, b, left))', () => {
    fc.assert(
      fc.property(concurrentPair, ({ a, b }) => {
        expect(compose(a.op, transform(b.op, a.op, 'right'))).toEqual(
          compose(b.op, transform(a.op, b.op, 'left')),
        );
      }),
      RUNS,
    );
  });

  it('transform(op, other) applies to other’s target length and keeps op’s changes', () => {
    fc.assert(
      fc.property(concurrentPair, side, ({ a, b }, s) => {
        const a2 = transform(a.op, b.op, s);
        expect(baseLength(a2)).toBe(b.expected.length);
        const insertedBy = (op: readonly Component[]): string =>
          op.filter((c): c is string => typeof c === 'string').join('');
        expect(insertedBy(a2)).toBe(insertedBy(a.op));
      }),
      RUNS,
    );
  });

  it('transform against the identity returns the canonical op', () => {
    fc.assert(
      fc.property(docAndEdit, side, (e, s) => {
        const identity = e.doc.length === 0 ? [] : [e.doc.length];
        expect(transform(e.raw, identity, s)).toEqual(e.op);
      }),
      RUNS,
    );
  });

  it('the side decides the order of two inserts at one position', () => {
    fc.assert(
      fc.property(
        doc.chain((d) => fc.tuple(fc.constant(d), positionIn(d), textOf(), textOf())),
        ([d, pos, x, y]) => {
          const a = canonicalize([pos, x, d.length - pos]);
          const b = canonicalize([pos, y, d.length - pos]);
          const expected = d.slice(0, pos) + x + y + d.slice(pos);
          expect(apply(apply(d, b), transform(a, b, 'left'))).toBe(expected);
          expect(apply(apply(d, a), transform(b, a, 'right'))).toBe(expected);
        },
      ),
      RUNS,
    );
  });
});

describe('invert', () => {
  it('invert round-trip: apply(apply(d, op), invert(op, d)) === d', () => {
    fc.assert(
      fc.property(docAndEdit, (e) => {
        expect(apply(apply(e.doc, e.raw), invert(e.raw, e.doc))).toBe(e.doc);
      }),
      CHEAP,
    );
  });

  it('invert is an involution on canonical ops: invert(invert(op, d), apply(d, op)) equals op', () => {
    fc.assert(
      fc.property(docAndEdit, (e) => {
        expect(invert(invert(e.op, e.doc), e.expected)).toEqual(e.op);
      }),
      RUNS,
    );
  });
});

describe('every output is canonical', () => {
  it('compose output is canonical, even from non-canonical inputs', () => {
    fc.assert(
      fc.property(editSequence(2, 2), ({ edits }) => {
        const [a, b] = edits as [Edit, Edit];
        expect(isCanonical(compose(a.raw, b.raw))).toBe(true);
      }),
      CHEAP,
    );
  });

  it('transform output is canonical on both sides, even from non-canonical inputs', () => {
    fc.assert(
      fc.property(concurrentPair, side, ({ a, b }, s) => {
        expect(isCanonical(transform(a.raw, b.raw, s))).toBe(true);
        expect(isCanonical(transform(a.op, b.op, s))).toBe(true);
      }),
      CHEAP,
    );
  });

  it('invert output is canonical', () => {
    fc.assert(
      fc.property(docAndEdit, (e) => {
        expect(isCanonical(invert(e.raw, e.doc))).toBe(true);
      }),
      CHEAP,
    );
  });

  it('normalize output is canonical and equals the independent canonical form', () => {
    fc.assert(
      fc.property(nonCanonicalEdit, (e) => {
        expect(isCanonical(e.raw)).toBe(false);
        const n = normalize(e.raw);
        expect(isCanonical(n)).toBe(true);
        expect(n).toEqual(e.op);
      }),
      CHEAP,
    );
  });

  it('composeAll output is canonical, including for a single non-canonical op', () => {
    fc.assert(
      fc.property(editSequence(1, 5), ({ edits }) => {
        expect(isCanonical(composeAll(edits.map((e) => e.raw)))).toBe(true);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(nonCanonicalEdit, (e) => {
        expect(composeAll([e.raw])).toEqual(e.op);
      }),
      RUNS,
    );
  });

  it('fromDiff output is canonical', () => {
    fc.assert(
      fc.property(doc, doc, (before, after) => {
        expect(isCanonical(fromDiff(before, after))).toBe(true);
      }),
      CHEAP,
    );
  });

  it('fromPatch output is canonical', () => {
    fc.assert(
      fc.property(
        fc
          .tuple(fc.nat({ max: 40 }), fc.nat({ max: 40 }), fc.nat({ max: 40 }))
          .map(([x, y, z]) => [x + y + z, x, y] as const),
        fc.oneof(fc.constant(''), textOf()),
        ([len, pos, del], text) => {
          expect(isCanonical(fromPatch(len, pos, del, text))).toBe(true);
        },
      ),
      CHEAP,
    );
  });
});

describe('JSON', () => {
  it('JSON round trip: JSON.parse(JSON.stringify(op)) is equal and applies identically', () => {
    fc.assert(
      fc.property(docAndEdit, (e) => {
        for (const op of [e.op, e.raw]) {
          const back = JSON.parse(JSON.stringify(op)) as Component[];
          expect(back).toEqual(op);
          expect(apply(e.doc, back)).toBe(apply(e.doc, op));
        }
      }),
      CHEAP,
    );
  });
});

describe('normalize', () => {
  it('normalize is effect-preserving on non-canonical inputs', () => {
    fc.assert(
      fc.property(nonCanonicalEdit, (e) => {
        expect(apply(e.doc, normalize(e.raw))).toBe(apply(e.doc, e.raw));
        expect(apply(e.doc, e.raw)).toBe(e.expected);
      }),
      CHEAP,
    );
  });

  it('normalize is idempotent', () => {
    fc.assert(
      fc.property(nonCanonicalEdit, (e) => {
        const once = normalize(e.raw);
        expect(normalize(once)).toEqual(once);
      }),
      CHEAP,
    );
  });

  it('normalize returns a canonical op unchanged and never mutates its input', () => {
    fc.assert(
      fc.property(docAndEdit, (e) => {
        const input = Object.freeze(copy(e.op));
        expect(normalize(input)).toEqual(e.op);
        const raw = Object.freeze(copy(e.raw));
        normalize(raw);
        expect(raw).toEqual(e.raw);
      }),
      RUNS,
    );
  });
});

describe('transformPosition', () => {
  const marked = docAndEdit.chain((e) => fc.tuple(fc.constant(e), positionIn(e.doc), side));

  it('transformPosition agrees with transforming a marker insert at the position', () => {
    fc.assert(
      fc.property(marked, ([e, pos, s]) => {
        const marker = canonicalize([pos, MARKER, e.doc.length - pos]);
        const moved = transform(marker, e.op, s);
        const expected = transformPosition(pos, e.op, s);
        expect(markerOffset(moved)).toBe(expected);
        expect(apply(e.expected, moved).indexOf(MARKER)).toBe(expected);
      }),
      CHEAP,
    );
  });

  it('transformPosition agrees with the marker on non-canonical ops too', () => {
    fc.assert(
      fc.property(
        nonCanonicalEdit.chain((e) => fc.tuple(fc.constant(e), positionIn(e.doc), side)),
        ([e, pos, s]) => {
          const marker = canonicalize([pos, MARKER, e.doc.length - pos]);
          expect(markerOffset(transform(marker, e.raw, s))).toBe(transformPosition(pos, e.raw, s));
        },
      ),
      RUNS,
    );
  });

  it('transformPosition defaults to the right side', () => {
    fc.assert(
      fc.property(marked, ([e, pos]) => {
        expect(transformPosition(pos, e.op)).toBe(transformPosition(pos, e.op, 'right'));
      }),
      RUNS,
    );
  });

  it('transformPosition maps a code-point boundary to a code-point boundary of the target', () => {
    fc.assert(
      fc.property(marked, ([e, pos, s]) => {
        const out = transformPosition(pos, e.op, s);
        expect(out).toBeGreaterThanOrEqual(0);
        expect(out).toBeLessThanOrEqual(e.expected.length);
        expect(boundaries(e.expected)).toContain(out);
      }),
      RUNS,
    );
  });
});

describe('transformSelection', () => {
  const withRanges = docAndEdit.chain((e) => {
    const pos = fc.integer({ min: 0, max: e.doc.length });
    const range = fc.record({ anchor: pos, head: pos });
    return fc.tuple(fc.constant(e), fc.array(range, { maxLength: 4 }), side);
  });

  it('transformSelection maps each end as transformPosition does (array form)', () => {
    fc.assert(
      fc.property(withRanges, ([e, ranges, s]) => {
        const frozen = Object.freeze(ranges.map((r) => Object.freeze({ ...r })));
        const out = transformSelection(frozen, e.op, s);
        expect(out).toEqual(
          ranges.map((r) => ({
            anchor: transformPosition(r.anchor, e.op, s),
            head: transformPosition(r.head, e.op, s),
          })),
        );
        expect(frozen).toEqual(ranges);
      }),
      RUNS,
    );
  });

  it('transformSelection maps each end as transformPosition does (single range, default side)', () => {
    fc.assert(
      fc.property(withRanges, ([e, ranges]) => {
        for (const r of ranges) {
          const out: SelectionRange = transformSelection(Object.freeze({ ...r }), e.op);
          expect(out).toEqual({
            anchor: transformPosition(r.anchor, e.op, 'right'),
            head: transformPosition(r.head, e.op, 'right'),
          });
        }
      }),
      RUNS,
    );
  });
});

describe('fromDiff', () => {
  const shared = docOf(codePoint, 6);
  const pairs = fc.oneof(
    fc.tuple(doc, doc),
    docAndEdit.map((e) => [e.doc, e.expected] as [string, string]),
    fc
      .tuple(shared, shared, shared, shared)
      .map(([p, m1, m2, s]) => [p + m1 + s, p + m2 + s] as [string, string]),
  );

  it('fromDiff correctness: apply(before, fromDiff(before, after)) === after', () => {
    fc.assert(
      fc.property(pairs, ([before, after]) => {
        expect(apply(before, fromDiff(before, after))).toBe(after);
      }),
      CHEAP,
    );
  });

  it('fromDiff is minimal: longest common prefix, then suffix, never splitting a surrogate pair', () => {
    fc.assert(
      fc.property(pairs, ([before, after]) => {
        expect(fromDiff(before, after)).toEqual(minimalDiff(before, after));
      }),
      CHEAP,
    );
  });

  it('fromDiff of equal texts is the identity', () => {
    fc.assert(
      fc.property(doc, (d) => {
        expect(fromDiff(d, d)).toEqual(d.length === 0 ? [] : [d.length]);
      }),
      RUNS,
    );
  });
});

describe('fromPatch', () => {
  const patch = doc.chain((d) => {
    const cuts = boundaries(d);
    return fc
      .tuple(fc.nat({ max: cuts.length - 1 }), fc.nat({ max: cuts.length - 1 }), fc.oneof(fc.constant(''), textOf()))
      .map(([i, j, text]) => {
        const from = cuts[Math.min(i, j)] as number;
        const to = cuts[Math.max(i, j)] as number;
        return { d, pos: from, del: to - from, text };
      });
  });

  it('fromPatch correctness: apply(d, fromPatch(d.length, p, n, s)) === d.slice(0, p) + s + d.slice(p + n)', () => {
    fc.assert(
      fc.property(patch, ({ d, pos, del, text }) => {
        const op = fromPatch(d.length, pos, del, text);
        expect(apply(d, op)).toBe(d.slice(0, pos) + text + d.slice(pos + del));
        expect(op).toEqual(canonicalize([pos, text, -del, d.length - pos - del]));
      }),
      CHEAP,
    );
  });
});

describe('the ottypes descriptor', () => {
  it('type delegates to apply, compose, transform, normalize, isNoop and transformPosition', () => {
    fc.assert(
      fc.property(concurrentPair, side, ({ doc: d, a, b }, s) => {
        expect(type.create(d)).toBe(d);
        expect(type.apply(d, a.raw)).toBe(a.expected);
        expect(type.transform(a.raw, b.raw, s)).toEqual(transform(a.raw, b.raw, s));
        expect(type.compose(a.raw, invert(a.raw, d))).toEqual(compose(a.raw, invert(a.raw, d)));
        expect(type.normalize(a.raw)).toEqual(a.op);
        expect(type.isNoop(a.raw)).toBe(isNoop(a.raw));
        expect(type.transformPosition(0, a.raw, s)).toBe(transformPosition(0, a.raw, s));
      }),
      RUNS,
    );
    expect(type.create()).toBe('');
    expect(type.create(null)).toBe('');
  });
});

describe('operations as plain data', () => {
  it('no function mutates its operation arguments', () => {
    fc.assert(
      fc.property(mangledConcurrentPair, ({ doc: d, a, b }) => {
        const ra = Object.freeze(copy(a.raw));
        const rb = Object.freeze(copy(b.raw));
        transform(ra, rb, 'left');
        transform(rb, ra, 'right');
        transformPosition(0, ra);
        apply(d, ra);
        const inverse = invert(ra, d);
        const ri = Object.freeze(copy(inverse));
        compose(ri, ra);
        compose(ra, ri);
        composeAll([ra, ri, ra]);
        normalize(ra);
        expect(ra).toEqual(a.raw);
        expect(rb).toEqual(b.raw);
        expect(ri).toEqual(inverse);
      }),
      RUNS,
    );
  });

  it('outputs are fresh arrays the caller may mutate', () => {
    fc.assert(
      fc.property(docAndEdit, (e) => {
        const input: Operation = copy(e.op);
        const outs = [normalize(input), composeAll([input])];
        for (const out of outs) {
          expect(out).not.toBe(input);
          out.push(0);
        }
        expect(input).toEqual(e.op);
      }),
      RUNS,
    );
  });
});
