import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { apply, fromDiff, fromTextDiff, isCanonical, transform } from '../../src/ot/index.js';
import { docOf } from './arbitraries.js';

/** Length of a longest common subsequence of code points: the oracle of a shortest edit script. */
function lcs(a: readonly string[], b: readonly string[]): number {
  const row = new Array<number>(b.length + 1).fill(0);
  for (const x of a) {
    let diagonal = 0;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = x === b[j - 1] ? diagonal + 1 : Math.max(above, row[j - 1] as number);
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

/** Code points an op inserts and deletes, counted on the document it applies to. */
function editSize(before: string, op: readonly (number | string)[]): number {
  let size = 0;
  let pos = 0;
  for (const c of op) {
    if (typeof c === 'string') size += Array.from(c).length;
    else if (c > 0) pos += c;
    else {
      size += Array.from(before.slice(pos, pos - c)).length;
      pos -= c;
    }
  }
  return size;
}

/** Small alphabets make many equal characters, where alignment matters. */
const text = docOf(fc.constantFrom('a', 'b', 'c', ' ', '😀', '😁', '中'), 16);

describe('fromTextDiff', () => {
  it('law: apply(before, fromTextDiff(before, after)) === after, canonically', () => {
    fc.assert(
      fc.property(text, text, (before, after) => {
        const op = fromTextDiff(before, after);
        expect(isCanonical(op)).toBe(true);
        expect(apply(before, op)).toBe(after);
      }),
      { numRuns: 1000 },
    );
  });

  it('law: within maxEdits, it inserts and deletes as few code points as any op can (n + m - 2·LCS)', () => {
    fc.assert(
      fc.property(text, text, (before, after) => {
        const a = Array.from(before);
        const b = Array.from(after);
        expect(editSize(before, fromTextDiff(before, after))).toBe(a.length + b.length - 2 * lcs(a, b));
      }),
      { numRuns: 1000 },
    );
  });

  it('falls back to the single-range change of fromDiff past maxEdits', () => {
    fc.assert(
      fc.property(text, text, (before, after) => {
        const a = Array.from(before);
        const b = Array.from(after);
        const needed = a.length + b.length - 2 * lcs(a, b);
        if (needed <= 2) return;
        expect(fromTextDiff(before, after, 1)).toEqual(fromDiff(before, after));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps an edit outside every hunk in place when rebased over the reconstructed change', () => {
    // Others inserted "1" and "2" around an X this client deleted while offline.
    const base = 'abcXdef';
    const pendingDelete = [3, -1, 3];
    const missed = fromTextDiff(base, 'a1bcXde2f');
    expect(apply('a1bcXde2f', transform(pendingDelete, missed, 'right'))).toBe('a1bcde2f');
    // A single-range diff would have swallowed the delete.
    expect(apply('a1bcXde2f', transform(pendingDelete, fromDiff(base, 'a1bcXde2f'), 'right'))).toBe('a1bcXde2f');
  });

  it('inserts a bracketed run whole where it could be cut through a letter it shares with the text', () => {
    // A shortest script may keep the "«c" of the old marker and insert "1»«c" after it.
    expect(fromTextDiff('«c2»', '«c1»«c2»')).toEqual(['«c1»', 4]);
    expect(fromTextDiff('«c2»c', '«c2»«c1»c')).toEqual([4, '«c1»', 1]);
    expect(fromTextDiff('zc«c3»', 'z«c1»c«c3»', 1000, 'lines')).toEqual([1, '«c1»', 5]);
    // A line inserted between lines starts after a line break; a word, after a space.
    expect(fromTextDiff('a\nb\n', 'a\nx\nb\n')).toEqual([2, 'x\n', 2]);
    expect(fromTextDiff('hello world', 'hello big world')).toEqual([6, 'big ', 5]);
  });

  it('a line both texts have by chance does not anchor the alignment: lines only inserted into are not deleted and inserted again', () => {
    // Aligning the empty lines first paired "ab" with the wrong line: a "\n" was deleted and inserted again.
    expect(fromTextDiff('\n\n\nab', 'ww\n\n\na«m»\nb', 1000, 'lines')).toEqual(['ww', 4, '«m»\n', 1]);
  });

  it('law: an insert of a whole «marker» between markers and letters is one run of the op, for every cleanup', () => {
    const piece = fc.oneof(
      fc.constantFrom('c', '1', 'z', ' ', '\n', '-'),
      fc.integer({ min: 0, max: 30 }).map((n) => `«c${n}»`),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), fc.nat(), fc.integer({ min: 0, max: 30 }), fc.constantFrom('none', 'semantic', 'lines' as const), (pieces, at, n, cleanup) => {
        const i = at % (pieces.length + 1);
        const marker = `«c${n}-x»`;
        const before = pieces.join('');
        const after = [...pieces.slice(0, i), marker, ...pieces.slice(i)].join('');
        const op = fromTextDiff(before, after, 1000, cleanup);
        expect(apply(before, op)).toBe(after);
        // No insert holds a piece of a marker: without its whole markers, no bracket is left.
        expect(op.filter((c) => typeof c === 'string' && /[«»]/.test(c.replace(/«[^«»]*»/g, '')))).toEqual([]);
      }),
    );
  });
});
