/**
 * Conversions between CodeMirror 6 changes and selections and Otter's operations and
 * selections, as pure functions.
 *
 * Both sides count UTF-16 code units, so a position means the same in both as long as the
 * editor splits lines on "\n" only (`EditorState.lineSeparator` set to "\n", which the binding
 * does): then a "\r", a "\r\n" or a U+2028 is ordinary text in a line, the editor's length is
 * the document's length, and every text round-trips unchanged. With CodeMirror's default
 * separators a "\r\n" would count as one position and come back as "\n".
 *
 * Laws (checked by test/codemirror/changes.test.ts):
 *   apply(text, opFromChanges(c))           === c.apply(Text(text)).toString()
 *   changesFromOp(op).apply(Text(text))     === apply(text, op)
 *   opFromChanges(changesFromOp(op))        === normalize(op)
 */
import { ChangeSet, EditorSelection, type SelectionRange as EditorRange } from '@codemirror/state';
import { type Component, type SelectionRange, normalize } from '../ot/index.js';

/** The line separator the binding gives the editor: "\n" only, so any text round-trips. */
export const LINE_SEPARATOR = '\n';

/**
 * The Otter operation doing what `changes` does, on a text of `changes.length` code units.
 * Every change becomes retain/insert/delete in document order, in canonical form. Inserted
 * text is joined with "\n" between lines, which is exact under {@link LINE_SEPARATOR}.
 */
export function opFromChanges(changes: ChangeSet): Component[] {
  const op: Component[] = [];
  let at = 0;
  changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
    if (fromA > at) op.push(fromA - at);
    if (inserted.length > 0) op.push(inserted.sliceString(0, inserted.length, LINE_SEPARATOR));
    if (toA > fromA) op.push(-(toA - fromA));
    at = toA;
  });
  if (changes.length > at) op.push(changes.length - at);
  return normalize(op);
}

/**
 * The CodeMirror change set doing what `op` does on a text of `length` code units (the op's
 * base length). Inserted text is split into lines on "\n" only. Throws CodeMirror's
 * RangeError if `op` does not fit `length`; validate the op first (`checkOperation`).
 */
export function changesFromOp(op: readonly Component[], length: number): ChangeSet {
  const specs: Array<{ from: number; to?: number; insert?: string }> = [];
  let at = 0;
  for (let i = 0; i < op.length; i++) {
    const c = op[i] as Component;
    if (typeof c === 'number' && c > 0) {
      at += c;
    } else if (typeof c === 'string') {
      // An insert followed by a delete replaces: one change, as CodeMirror would make it.
      const next = op[i + 1];
      if (typeof next === 'number' && next < 0) {
        specs.push({ from: at, to: at - next, insert: c });
        at -= next;
        i++;
      } else {
        specs.push({ from: at, insert: c });
      }
    } else if (typeof c === 'number' && c < 0) {
      specs.push({ from: at, to: at - c });
      at -= c;
    }
  }
  return ChangeSet.of(specs, length, LINE_SEPARATOR);
}

/** The editor's selection as Otter ranges, in the editor's order (`{anchor, head}` each). */
export function rangesFromSelection(selection: EditorSelection): SelectionRange[] {
  return selection.ranges.map((r: EditorRange) => ({ anchor: r.anchor, head: r.head }));
}

/**
 * Otter ranges as an editor selection on a text of `length` code units, positions clamped to
 * it; `main` is the index of the main range (clamped to the ranges there are). Null for no
 * ranges: the editor keeps its own selection then.
 */
export function selectionFromRanges(
  ranges: readonly SelectionRange[] | null,
  length: number,
  main = 0,
): EditorSelection | null {
  if (ranges === null || ranges.length === 0) return null;
  const clamp = (p: number): number => Math.max(0, Math.min(p, length));
  return EditorSelection.create(
    ranges.map((r) => EditorSelection.range(clamp(r.anchor), clamp(r.head))),
    Math.min(Math.max(main, 0), ranges.length - 1),
  );
}
