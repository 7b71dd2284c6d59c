/**
 * Selections between the local text and the server text, as pure functions.
 *
 * The local text is the server text C (at the client's version) with the pending local ops
 * applied. Selections on the wire are on C; selections shown to the user are on the local
 * text. Where text is inserted exactly at a caret:
 *   - the local caret moves past it (side 'right'), whoever inserted it: one's own typing
 *     moves one's caret, and remote text goes before a local caret as the server orders a
 *     committed op before a later one typed at that caret;
 *   - remote carets move past remote text ('right') but stay before local text ('left'), so
 *     one's own typing never drags other people's cursors along.
 */
import {
  type Component,
  InvalidOperationError,
  OperationErrorCode,
  type Operation,
  type SelectionRange,
  checkPosition,
  transformSelection,
} from '../ot/index.js';
import { type SyncState, pendingOp } from './sync.js';

/** What `setSelection` accepts: ranges, one range, or null (no selection). */
export type SelectionInput = readonly SelectionRange[] | SelectionRange | null;

/** `value` if it is a position in a text of `length` (throws InvalidOperationError naming `what`). */
function position(value: unknown, what: string, length: number): number {
  checkPosition(value, length, `selection ${what}`);
  return value;
}

/**
 * Validates a selection against a text of `length` code units and returns it as fresh
 * ranges (or null). Throws InvalidOperationError (`bad-argument`) naming the bad value.
 */
export function toRanges(input: SelectionInput, length: number): SelectionRange[] | null {
  if (input === null) return null;
  const list: readonly unknown[] = Array.isArray(input) ? input : [input];
  return list.map((r, i) => {
    if (typeof r !== 'object' || r === null) {
      throw new InvalidOperationError(
        OperationErrorCode.BadArgument,
        `selection range ${i} must be an object {anchor, head}`,
      );
    }
    const range = r as Record<string, unknown>;
    return {
      anchor: position(range['anchor'], `range ${i} anchor`, length),
      head: position(range['head'], `range ${i} head`, length),
    };
  });
}

/**
 * An op that undoes `op` as far as positions can tell: its inserts become deletes and its
 * deletes become inserts of as many spaces. Mapping a selection through it is mapping it
 * through the true inverse, whose inserted text only counts by its length; building it never
 * reads the document. Linear in `op`'s components and the code units it deletes.
 */
function inverseShape(op: Operation): Component[] {
  return op.map((c) => (typeof c === 'string' ? -c.length : c < 0 ? ' '.repeat(-c) : c));
}

/**
 * Maps a selection on the local text to the server text C (what `presence` sends): through
 * the inverse of the pending ops. A caret inside pending inserted text moves to where the
 * insert is; a caret where pending ops deleted text stays before that text. `confirmedLength`
 * is C's length. Never reads C: linear in the pending ops, not in the document.
 * Throws InvalidOperationError if the selection does not fit the local text.
 */
export function localToServer(
  selection: readonly SelectionRange[],
  state: SyncState,
  confirmedLength: number,
): SelectionRange[] {
  const pending = pendingOp(state);
  if (pending === undefined) return toRanges(selection, confirmedLength) as SelectionRange[];
  return transformSelection(selection, inverseShape(pending), 'left');
}

/**
 * Maps a remote selection on the server text C (of `confirmedLength` code units) to the local
 * text: through the pending ops, which go after the remote carets (side 'left').
 * Throws InvalidOperationError if the selection does not fit C.
 */
export function serverToLocal(
  selection: readonly SelectionRange[],
  state: SyncState,
  confirmedLength: number,
): SelectionRange[] {
  const ranges = toRanges(selection, confirmedLength) as SelectionRange[];
  const pending = pendingOp(state);
  return pending === undefined ? ranges : transformSelection(ranges, pending, 'left');
}

/**
 * Maps a remote selection on the local text through a change to that text: `local` says the
 * change is the user's own edit (remote carets stay before text inserted at them) rather than
 * a remote op or a resync (remote carets move past it). See the rules in the header.
 * Throws InvalidOperationError if the selection does not fit the change's base text.
 */
export function mapRemoteSelection(
  selection: readonly SelectionRange[],
  change: Operation,
  local: boolean,
): SelectionRange[] {
  return transformSelection(selection, change, local ? 'left' : 'right');
}
