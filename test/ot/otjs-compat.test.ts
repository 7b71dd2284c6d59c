import fc from 'fast-check';
import ot from 'ot';
import { describe, expect, it } from 'vitest';
import {
  type Component,
  OperationBuilder,
  apply,
  compose,
  invert,
  normalize,
  transform,
} from '../../src/ot/index.js';
import {
  type Edit,
  bmpConcurrentPair,
  bmpDocAndEdit,
  bmpOnlyCodePoint,
  editSequence,
  textOf,
} from './arbitraries.js';

const { TextOperation } = ot;
const RUNS = { numRuns: 500 };

/** ot.js's JSON for an operation, through its own parser (which also canonicalises). */
function viaOt(op: readonly Component[]): ReturnType<typeof TextOperation.fromJSON> {
  return TextOperation.fromJSON(op);
}

/** A plain copy of ot.js's JSON, so comparisons never share ot.js's internal array. */
function json(o: { toJSON(): Component[] }): Component[] {
  return JSON.parse(JSON.stringify(o)) as Component[];
}

describe('Otter and ot.js agree', () => {
  it('apply gives the same string as ot.js apply', () => {
    fc.assert(
      fc.property(bmpDocAndEdit, (e) => {
        expect(apply(e.doc, e.op)).toBe(viaOt(e.op).apply(e.doc));
        expect(apply(e.doc, e.raw)).toBe(viaOt(e.raw).apply(e.doc));
      }),
      RUNS,
    );
  });

  it('compose gives the same JSON as ot.js compose', () => {
    fc.assert(
      fc.property(editSequence(2, 2, bmpOnlyCodePoint), ({ edits }) => {
        const [a, b] = edits as [Edit, Edit];
        expect(compose(a.op, b.op)).toEqual(json(viaOt(a.op).compose(viaOt(b.op))));
        expect(compose(a.raw, b.raw)).toEqual(json(viaOt(a.raw).compose(viaOt(b.raw))));
      }),
      RUNS,
    );
  });

  it("transform(a, b, 'left') equals ot.js transform(a, b)[0] and transform(b, a, 'right') its [1]", () => {
    fc.assert(
      fc.property(bmpConcurrentPair, ({ a, b }) => {
        const [a2, b2] = TextOperation.transform(viaOt(a.op), viaOt(b.op));
        expect(transform(a.op, b.op, 'left')).toEqual(json(a2));
        expect(transform(b.op, a.op, 'right')).toEqual(json(b2));
      }),
      RUNS,
    );
  });

  it('transformed ops converge to the same document as ot.js', () => {
    fc.assert(
      fc.property(bmpConcurrentPair, ({ a, b }) => {
        const [a2, b2] = TextOperation.transform(viaOt(a.op), viaOt(b.op));
        const otter = apply(b.expected, transform(a.op, b.op, 'left'));
        expect(otter).toBe(a2.apply(b.expected));
        expect(otter).toBe(b2.apply(a.expected));
      }),
      RUNS,
    );
  });

  it('invert gives the same JSON as ot.js invert', () => {
    fc.assert(
      fc.property(bmpDocAndEdit, (e) => {
        expect(invert(e.op, e.doc)).toEqual(json(viaOt(e.op).invert(e.doc)));
      }),
      RUNS,
    );
  });

  it('normalize gives the JSON ot.js fromJSON builds from the same components', () => {
    fc.assert(
      fc.property(bmpDocAndEdit, (e) => {
        expect(normalize(e.raw)).toEqual(json(viaOt(e.raw)));
      }),
      RUNS,
    );
  });

  type Call =
    | { readonly kind: 'retain' | 'delete'; readonly n: number }
    | { readonly kind: 'insert'; readonly text: string };

  const call: fc.Arbitrary<Call> = fc.oneof(
    fc.record({ kind: fc.constant('retain' as const), n: fc.nat({ max: 6 }) }),
    fc.record({ kind: fc.constant('delete' as const), n: fc.nat({ max: 6 }) }),
    fc.record({
      kind: fc.constant('insert' as const),
      text: fc.oneof(fc.constant(''), textOf(bmpOnlyCodePoint)),
    }),
  );

  it("ot.js's builder and Otter's normalize and OperationBuilder give identical JSON for one call sequence", () => {
    fc.assert(
      fc.property(fc.array(call, { maxLength: 12 }), (calls) => {
        const theirs = new TextOperation();
        const ours = new OperationBuilder();
        const components: Component[] = [];
        for (const c of calls) {
          if (c.kind === 'insert') {
            theirs.insert(c.text);
            ours.insert(c.text);
            if (c.text !== '') components.push(c.text);
          } else if (c.kind === 'retain') {
            theirs.retain(c.n);
            ours.retain(c.n);
            if (c.n !== 0) components.push(c.n);
          } else {
            theirs.delete(c.n);
            ours.delete(c.n);
            if (c.n !== 0) components.push(-c.n);
          }
        }
        const expected = json(theirs);
        expect(normalize(components)).toEqual(expected);
        expect(ours.build()).toEqual(expected);
      }),
      { numRuns: 1000 },
    );
  });
});
