/**
 * The CodeMirror binding's conversions (src/codemirror/changes.ts), against CodeMirror's own
 * ChangeSet and Text on texts full of line separators ("\r\n", lone "\r", U+2028, U+2029):
 *   - an editor change set and the op made from it produce the same text;
 *   - an op and the change set made from it produce the same text, and converting back gives
 *     the op's canonical form;
 *   - an editor state with the binding keeps any text unchanged, position for position.
 */
import { ChangeSet, EditorSelection, EditorState, Text } from '@codemirror/state';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { otterCollab } from '../../src/codemirror/collab.js';
import {
  LINE_SEPARATOR,
  changesFromOp,
  opFromChanges,
  rangesFromSelection,
  selectionFromRanges,
} from '../../src/codemirror/changes.js';
import { apply, normalize } from '../../src/ot/index.js';
import { codePoint, docOf, editOn } from '../ot/arbitraries.js';
import type { CollaborativeDocument } from '../../src/client/index.js';

/** Code points that stress line handling, mixed with the usual collision-prone ones. */
const lineish = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom('\r', '\n', '\u2028', '\u2029', 'x') },
  { weight: 3, arbitrary: codePoint },
);
const text = docOf(lineish, 30);

/** `text` as CodeMirror holds it when lines split on "\n" only. */
function editorText(s: string): Text {
  return Text.of(s.split(LINE_SEPARATOR));
}

/** What CodeMirror's text reads as, lines joined with "\n". */
function read(t: Text): string {
  return t.sliceString(0, t.length, LINE_SEPARATOR);
}

/**
 * A random multi-range editor change on a text of `length`: sorted, non-overlapping ranges
 * (possibly empty: pure inserts), each replaced by a random text; also its expected outcome,
 * computed by splicing strings.
 */
function changeOn(base: string): fc.Arbitrary<{ changes: ChangeSet; expected: string }> {
  const cps = Array.from(base);
  // Boundaries between code points, so no change splits a surrogate pair.
  const bounds = [0];
  for (const c of cps) bounds.push((bounds[bounds.length - 1] as number) + c.length);
  return fc
    .array(fc.tuple(fc.nat(cps.length), fc.nat(3), docOf(lineish, 4)), { maxLength: 5 })
    .map((picks) => {
      const specs: Array<{ from: number; to: number; insert: string }> = [];
      let floor = 0;
      for (const [at, len, insert] of [...picks].sort((a, b) => a[0] - b[0])) {
        const fromIndex = Math.max(at, floor);
        if (fromIndex > cps.length) break;
        const toIndex = Math.min(fromIndex + len, cps.length);
        specs.push({ from: bounds[fromIndex] as number, to: bounds[toIndex] as number, insert });
        // The next change starts after this one (two inserts at one place would be ambiguous).
        floor = toIndex + 1;
      }
      let expected = '';
      let at = 0;
      for (const s of specs) {
        expected += base.slice(at, s.from) + s.insert;
        at = s.to;
      }
      expected += base.slice(at);
      return { changes: ChangeSet.of(specs, base.length, LINE_SEPARATOR), expected };
    });
}

describe('editor changes ↔ ops', () => {
  it('law: an editor change set and the op made from it produce the same text', () => {
    fc.assert(
      fc.property(
        text.chain((base) => changeOn(base).map((c) => ({ base, ...c }))),
        ({ base, changes, expected }) => {
          expect(read(changes.apply(editorText(base)))).toBe(expected);
          expect(apply(base, opFromChanges(changes))).toBe(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('law: an op and the change set made from it produce the same text; back again is its canonical form', () => {
    fc.assert(
      fc.property(
        text.chain((base) => editOn(base, lineish)),
        (edit) => {
          const changes = changesFromOp(edit.raw, edit.doc.length);
          expect(read(changes.apply(editorText(edit.doc)))).toBe(edit.expected);
          expect(opFromChanges(changes)).toEqual(normalize(edit.raw));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('a multi-range change with CRLF becomes one op in document order', () => {
    const base = 'a\r\nb\rc\u2028d';
    const changes = ChangeSet.of(
      [
        { from: 1, to: 3, insert: '\n' }, // "\r\n" → "\n"
        { from: 4, insert: '\r\n' }, // after "b"
        { from: 7, to: 8 }, // "d"
      ],
      base.length,
      LINE_SEPARATOR,
    );
    expect(opFromChanges(changes)).toEqual([1, '\n', -2, 1, '\r\n', 3, -1]);
    expect(apply(base, opFromChanges(changes))).toBe('a\nb\r\n\rc\u2028');
  });

  it('a replacement (insert then delete) is one editor change', () => {
    const changes = changesFromOp([2, 'XY', -3, 1], 6);
    const seen: Array<[number, number, string]> = [];
    changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => seen.push([fromA, toA, inserted.toString()]));
    expect(seen).toEqual([[2, 5, 'XY']]);
  });
});

describe('selections', () => {
  it('round-trip with their direction and the main range', () => {
    const selection = EditorSelection.create([EditorSelection.range(5, 2), EditorSelection.cursor(8)], 1);
    const ranges = rangesFromSelection(selection);
    expect(ranges).toEqual([
      { anchor: 5, head: 2 },
      { anchor: 8, head: 8 },
    ]);
    const back = selectionFromRanges(ranges, 10, 1);
    expect(back?.eq(selection)).toBe(true);
  });

  it('are clamped to the text, and no ranges mean no selection', () => {
    expect(selectionFromRanges([{ anchor: 3, head: 40 }], 7)?.main.head).toBe(7);
    expect(selectionFromRanges([], 7)).toBeNull();
    expect(selectionFromRanges(null, 7)).toBeNull();
  });
});

describe('line separators in an editor state with the binding', () => {
  /** Just enough of a document for building the extension (its view plugin never runs without a view). */
  const doc = {} as CollaborativeDocument;

  it('law: any text round-trips unchanged and positions are code units', () => {
    fc.assert(
      fc.property(text, (s) => {
        const state = EditorState.create({ doc: s, extensions: [otterCollab(doc)] });
        expect(state.doc.length).toBe(s.length);
        expect(state.doc.toString()).toBe(s);
        expect(state.lineBreak).toBe('\n');
      }),
      { numRuns: 300 },
    );
  });

  it('wins over a separator the application set', () => {
    const s = 'one\r\ntwo\rthree\u2028four';
    const state = EditorState.create({ doc: s, extensions: [EditorState.lineSeparator.of('\r\n'), otterCollab(doc)] });
    expect(state.doc.toString()).toBe(s);
    expect(state.doc.lines).toBe(2); // "one\r" and "two\rthree\u2028four": only "\n" splits
  });

  it('without it, CodeMirror would turn "\\r\\n" into one position (why the binding sets it)', () => {
    const state = EditorState.create({ doc: 'a\r\nb' });
    expect(state.doc.length).toBe(3);
    expect(state.doc.toString()).toBe('a\nb');
  });

  it('an edit typed in the editor maps to the op on the exact text', () => {
    const s = 'x\r\ny';
    const state = EditorState.create({ doc: s, extensions: [otterCollab(doc)] });
    const tr = state.update({ changes: { from: 2, insert: state.lineBreak } }); // Enter between "\r" and "\n"
    expect(opFromChanges(tr.changes)).toEqual([2, '\n', 2]);
    expect(tr.state.doc.toString()).toBe('x\r\n\ny');
  });
});
