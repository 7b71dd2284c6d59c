/**
 * fast-check generators for the OT laws, each carrying its own oracle.
 *
 * Documents are generated as arrays of code points (BMP and astral), so every edit is built
 * on code-point boundaries and converted to UTF-16 counts afterwards. The expected document of
 * an edit is computed here by slicing code points, never by calling `apply`; the canonical form
 * of an edit is computed by `canonicalize`, an implementation independent of `normalize`.
 */
import fc from 'fast-check';
import type { Component } from '../../src/ot/index.js';

/** A code point that is never generated, for marking positions. */
export const MARKER = '\u0001';

/**
 * A small alphabet that makes collisions likely: BMP letters, and astral characters that share
 * a high surrogate (😀 U+1F600 and 😁 U+1F601 are both D83D·DExx) or a low surrogate
 * (🈀 U+1F200 is D83C·DE00, like 😀's DE00), plus 👍 and the skin-tone modifier 🏽 of 👍🏽.
 */
export const SMALL_ALPHABET: readonly string[] = [
  'a',
  'b',
  'c',
  ' ',
  '\n',
  'é',
  '中',
  '😀',
  '😁',
  '🈀',
  '👍',
  '🏽',
];

/** Any BMP code point that is not a surrogate and not the marker. */
export const bmpCodePoint: fc.Arbitrary<string> = fc
  .oneof(fc.integer({ min: 0x20, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0xfffd }))
  .map((c) => String.fromCharCode(c));

/** Any astral code point (two UTF-16 code units). */
export const astralCodePoint: fc.Arbitrary<string> = fc
  .integer({ min: 0x10000, max: 0x10ffff })
  .map((c) => String.fromCodePoint(c));

/** One code point: mostly from the collision-prone alphabet, sometimes any BMP or astral one. */
export const codePoint: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...SMALL_ALPHABET) },
  { weight: 1, arbitrary: bmpCodePoint },
  { weight: 1, arbitrary: astralCodePoint },
);

/** One BMP code point (a single code unit), for comparisons with code-unit libraries. */
export const bmpOnlyCodePoint: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('a', 'b', 'c', ' ', '\n', 'é', '中') },
  { weight: 1, arbitrary: bmpCodePoint },
);

/** A document: a well-formed string of up to `maxLength` code points. */
export function docOf(cp: fc.Arbitrary<string> = codePoint, maxLength = 24): fc.Arbitrary<string> {
  return fc.array(cp, { maxLength, size: 'medium' }).map((cps) => cps.join(''));
}

/** A document with BMP and astral characters. */
export const doc: fc.Arbitrary<string> = docOf(codePoint);

/** A document with BMP characters only. */
export const bmpDoc: fc.Arbitrary<string> = docOf(bmpOnlyCodePoint);

/** Non-empty well-formed text of a few code points. */
export function textOf(cp: fc.Arbitrary<string> = codePoint, maxLength = 4): fc.Arbitrary<string> {
  return fc.array(cp, { minLength: 1, maxLength }).map((cps) => cps.join(''));
}

/** One run of an edit, in code points. */
export interface Step {
  readonly kind: 'retain' | 'delete' | 'insert';
  readonly cps: readonly string[];
}

/** A generated operation on `doc` with its independently computed outcome. */
export interface Edit {
  /** The base document. */
  readonly doc: string;
  /** The runs the edit was built from, in code points. */
  readonly steps: readonly Step[];
  /** The runs as components, exactly as generated: often not canonical. */
  readonly raw: Component[];
  /** The canonical form of `raw`, computed by {@link canonicalize}. */
  readonly op: Component[];
  /** The document the edit produces, computed by slicing code points. */
  readonly expected: string;
}

/** UTF-16 length of a run of code points. */
export function units(cps: readonly string[]): number {
  let n = 0;
  for (const cp of cps) n += cp.length;
  return n;
}

/** Every position of `doc` (in code units) that does not split a surrogate pair. */
export function boundaries(text: string): number[] {
  const out = [0];
  let pos = 0;
  for (const cp of text) {
    pos += cp.length;
    out.push(pos);
  }
  return out;
}

/**
 * The canonical form of a component list, by segments: between two retains, all inserted text
 * concatenated, then all deleted counts summed. Zero-length components are dropped.
 * Written independently of `normalize` and `OperationBuilder`, to serve as their oracle.
 */
export function canonicalize(components: readonly Component[]): Component[] {
  const out: Component[] = [];
  let inserted = '';
  let deleted = 0;
  const flush = (): void => {
    if (inserted !== '') out.push(inserted);
    if (deleted !== 0) out.push(-deleted);
    inserted = '';
    deleted = 0;
  };
  for (const c of components) {
    if (typeof c === 'string') inserted += c;
    else if (c < 0) deleted -= c;
    else if (c > 0) {
      flush();
      const last = out[out.length - 1];
      if (typeof last === 'number' && last > 0) out[out.length - 1] = last + c;
      else out.push(c);
    }
  }
  flush();
  return out;
}

/** Components of a list of runs, in UTF-16 units. */
export function stepsToComponents(steps: readonly Step[]): Component[] {
  return steps.map((s) =>
    s.kind === 'insert' ? s.cps.join('') : s.kind === 'retain' ? units(s.cps) : -units(s.cps),
  );
}

/** The document a list of runs produces: kept and inserted code points, in order. */
export function stepsOutcome(steps: readonly Step[]): string {
  let out = '';
  for (const s of steps) if (s.kind !== 'delete') out += s.cps.join('');
  return out;
}

function makeEdit(docText: string, steps: Step[]): Edit {
  const raw = stepsToComponents(steps);
  return { doc: docText, steps, raw, op: canonicalize(raw), expected: stepsOutcome(steps) };
}

type Move =
  | { readonly kind: 'retain' | 'delete'; readonly n: number }
  | { readonly kind: 'insert'; readonly text: readonly string[] };

/**
 * A random edit of `docText`: random retain, delete and insert runs over its code points, the
 * rest of the document retained or deleted at the end.
 */
export function editOn(docText: string, cp: fc.Arbitrary<string> = codePoint): fc.Arbitrary<Edit> {
  const cps = Array.from(docText);
  const count = fc.integer({ min: 1, max: 8 });
  const move: fc.Arbitrary<Move> = fc.oneof(
    fc.record({ kind: fc.constant('retain' as const), n: count }),
    fc.record({ kind: fc.constant('delete' as const), n: count }),
    fc.record({
      kind: fc.constant('insert' as const),
      text: fc.array(cp, { minLength: 1, maxLength: 4 }),
    }),
  );
  return fc
    .record({
      moves: fc.array(move, { maxLength: 8, size: 'medium' }),
      tail: fc.constantFrom('retain' as const, 'delete' as const),
    })
    .map(({ moves, tail }) => {
      const steps: Step[] = [];
      let i = 0;
      for (const m of moves) {
        if (m.kind === 'insert') {
          steps.push({ kind: 'insert', cps: m.text });
          continue;
        }
        const k = Math.min(m.n, cps.length - i);
        if (k > 0) steps.push({ kind: m.kind, cps: cps.slice(i, i + k) });
        i += k;
      }
      if (i < cps.length) steps.push({ kind: tail, cps: cps.slice(i) });
      return makeEdit(docText, steps);
    });
}

/** A document and one edit of it. */
export const docAndEdit: fc.Arbitrary<Edit> = doc.chain((d) => editOn(d));

/** A BMP-only document and one BMP-only edit of it. */
export const bmpDocAndEdit: fc.Arbitrary<Edit> = bmpDoc.chain((d) => editOn(d, bmpOnlyCodePoint));

/** Two concurrent edits of one document. */
export interface ConcurrentPair {
  readonly doc: string;
  readonly a: Edit;
  readonly b: Edit;
}

/** Two independent edits of the same document. */
export function concurrentPairOf(
  docs: fc.Arbitrary<string> = doc,
  cp: fc.Arbitrary<string> = codePoint,
): fc.Arbitrary<ConcurrentPair> {
  return docs.chain((d) =>
    fc.tuple(editOn(d, cp), editOn(d, cp)).map(([a, b]) => ({ doc: d, a, b })),
  );
}

/** Two concurrent edits of one document, with astral characters. */
export const concurrentPair: fc.Arbitrary<ConcurrentPair> = concurrentPairOf();

/** Two concurrent edits of one BMP-only document. */
export const bmpConcurrentPair: fc.Arbitrary<ConcurrentPair> = concurrentPairOf(
  bmpDoc,
  bmpOnlyCodePoint,
);

function editsFrom(
  start: string,
  n: number,
  cp: fc.Arbitrary<string>,
): fc.Arbitrary<Edit[]> {
  if (n === 0) return fc.constant([]);
  return editOn(start, cp).chain((e) => editsFrom(e.expected, n - 1, cp).map((rest) => [e, ...rest]));
}

/** A document and `min`..`max` edits applied one after another, each on the last's outcome. */
export function editSequence(
  min: number,
  max: number,
  cp: fc.Arbitrary<string> = codePoint,
): fc.Arbitrary<{ readonly doc: string; readonly edits: Edit[] }> {
  return docOf(cp).chain((d) =>
    fc
      .integer({ min, max })
      .chain((n) => editsFrom(d, n, cp))
      .map((edits) => ({ doc: d, edits })),
  );
}

/**
 * Rewrites the runs of an edit without changing its effect: splits runs at code-point
 * boundaries and swaps adjacent insert/delete runs, as `seeds` direct.
 */
export function mangleSteps(steps: readonly Step[], seeds: readonly number[]): Step[] {
  const out = steps.slice();
  for (const seed of seeds) {
    if (out.length === 0) break;
    const idx = seed % out.length;
    const s = out[idx] as Step;
    const next = out[idx + 1];
    const swappable =
      next !== undefined &&
      ((s.kind === 'insert' && next.kind === 'delete') ||
        (s.kind === 'delete' && next.kind === 'insert'));
    if (swappable && (s.cps.length < 2 || Math.floor(seed / 3) % 2 === 0)) {
      out.splice(idx, 2, next, s);
    } else if (s.cps.length >= 2) {
      const cut = 1 + (Math.floor(seed / 7) % (s.cps.length - 1));
      out.splice(idx, 1, { kind: s.kind, cps: s.cps.slice(0, cut) }, { kind: s.kind, cps: s.cps.slice(cut) });
    }
  }
  return out;
}

/**
 * An edit whose `raw` components are valid but not canonical: split runs, and deletes before
 * inserts. `op` is still its canonical form and `expected` its outcome.
 */
export const nonCanonicalEdit: fc.Arbitrary<Edit> = docAndEdit
  .chain((e) =>
    fc
      .array(fc.nat(), { minLength: 1, maxLength: 6 })
      .map((seeds) => makeEdit(e.doc, mangleSteps(e.steps, seeds))),
  )
  .filter((e) => JSON.stringify(e.raw) !== JSON.stringify(e.op));

/** A code-point-aligned position in `text` (in code units). */
export function positionIn(text: string): fc.Arbitrary<number> {
  return fc.constantFrom(...boundaries(text));
}

/** Two concurrent edits of one document whose `raw` forms are split and reordered at random. */
export const mangledConcurrentPair: fc.Arbitrary<ConcurrentPair> = concurrentPair.chain((p) =>
  fc
    .tuple(
      fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
    )
    .map(([sa, sb]) => ({
      doc: p.doc,
      a: makeEdit(p.doc, mangleSteps(p.a.steps, sa)),
      b: makeEdit(p.doc, mangleSteps(p.b.steps, sb)),
    })),
);

/**
 * A random operation on `text` counted in raw code units, so its boundaries may fall inside
 * surrogate pairs. Carries no oracle: it is for checking that such cuts are rejected alike.
 */
export function unitEditOn(text: string): fc.Arbitrary<Component[]> {
  const count = fc.integer({ min: 1, max: 5 });
  const move = fc.oneof(
    count.map((n) => ({ kind: 'retain' as const, n })),
    count.map((n) => ({ kind: 'delete' as const, n })),
    textOf(codePoint, 2).map((t) => ({ kind: 'insert' as const, t })),
  );
  return fc
    .tuple(fc.array(move, { maxLength: 8, size: 'medium' }), fc.boolean())
    .map(([moves, keepTail]) => {
      const out: Component[] = [];
      let pos = 0;
      for (const m of moves) {
        if (m.kind === 'insert') {
          out.push(m.t);
          continue;
        }
        const k = Math.min(m.n, text.length - pos);
        if (k > 0) out.push(m.kind === 'retain' ? k : -k);
        pos += k;
      }
      if (pos < text.length) out.push(keepTail ? text.length - pos : pos - text.length);
      return out;
    });
}
