/**
 * Transformation: rebasing an operation over a concurrent one, and mapping positions and
 * selections through an operation.
 *
 *            a
 *      d ───────▶ d·a
 *      │           │
 *    b │           │ transform(b, a, 'right')
 *      ▼           ▼
 *     d·b ──────▶ d·a·b'  =  d·b·a'
 *        transform(a, b, 'left')
 */
import { InvalidOperationError, OperationErrorCode, describeValue } from './errors.js';
import {
  type Component,
  type Operation,
  checkOperation,
  normalize,
  pushDelete,
  pushInsert,
  pushRetain,
} from './operation.js';

/**
 * Which of two operations' inserts at the same position comes first. The operation
 * transformed with side 'left' keeps its insert before the other's; 'right' puts it after.
 * Two concurrent operations must be transformed with opposite sides.
 */
export type Side = 'left' | 'right';

function checkSide(side: unknown): asserts side is Side {
  if (side !== 'left' && side !== 'right') {
    throw new InvalidOperationError(
      OperationErrorCode.BadArgument,
      `side must be 'left' or 'right', got ${describeValue(side)}`,
    );
  }
}

/**
 * Rebases `op` so that it applies after `other`, both having been made on the same document.
 *
 * Contract: both valid with equal base lengths, else {@link InvalidOperationError}. The result
 * is canonical, its base length is `other`'s target length. Where both insert at one position,
 * `side` decides the order (see {@link Side}).
 * Law (TP1): apply(apply(d, a), transform(b, a, 'right')) === apply(apply(d, b), transform(a, b, 'left')).
 * Time: linear in the components of both. Against a history, transform one op at a time.
 */
export function transform(op: Operation, other: Operation, side: Side): Component[] {
  const la = checkOperation(op);
  const lb = checkOperation(other);
  checkSide(side);
  if (la.base !== lb.base) {
    throw new InvalidOperationError(
      OperationErrorCode.LengthMismatch,
      `cannot transform: the operations apply to lengths ${la.base} and ${lb.base}`,
    );
  }
  const left = side === 'left';
  // Tie-breaking depends on the order of inserts and deletes: read both in canonical form.
  if (!la.canonical) op = normalize(op);
  if (!lb.canonical) other = normalize(other);
  const out: Component[] = [];
  let ia = 0;
  let ib = 0;
  let ca: Component | undefined = op[0];
  let cb: Component | undefined = other[0];
  const lastA = op.length - 1;
  let passed = 0; // code units of other's target behind the current position
  for (;;) {
    if (typeof ca === 'string' && (left || typeof cb !== 'string')) {
      pushInsert(out, ca);
      ca = op[++ia];
      continue;
    }
    if (typeof cb === 'string') {
      pushRetain(out, cb.length);
      passed += cb.length;
      cb = other[++ib];
      continue;
    }
    // Inserts are all consumed above; equal base lengths make both operations end together.
    if (typeof ca !== 'number' || cb === undefined) break;
    if (ca > 0 && ia === lastA) {
      // op keeps everything that is left: the rest is one retain over the rest of other's target.
      if (lb.target > passed) pushRetain(out, lb.target - passed);
      break;
    }
    const na = ca > 0 ? ca : -ca;
    const nb = cb > 0 ? cb : -cb;
    const n = na < nb ? na : nb;
    if (ca > 0) {
      if (cb > 0) pushRetain(out, n); // both keep it
      // else: other deleted the text op kept; nothing to do
    } else if (cb > 0) {
      pushDelete(out, n); // op deletes text other kept
    } // else both deleted it
    if (cb > 0) passed += n;
    ca = na === n ? op[++ia] : ca > 0 ? ca - n : ca + n;
    cb = nb === n ? other[++ib] : cb > 0 ? cb - n : cb + n;
  }
  return out;
}

/**
 * Throws InvalidOperationError (`bad-argument`) unless `pos` is a safe integer in [0, max];
 * `what` names the position in the message (default "position").
 */
export function checkPosition(pos: unknown, max: number, what = 'position'): asserts pos is number {
  if (typeof pos !== 'number' || !Number.isSafeInteger(pos) || pos < 0 || pos > max) {
    throw new InvalidOperationError(
      OperationErrorCode.BadArgument,
      `${what} ${describeValue(pos)} is outside the document (length ${max})`,
    );
  }
}

/** Maps a position through a validated op (no checks). */
function mapPosition(pos: number, op: Operation, side: Side): number {
  let consumed = 0; // base-document code units walked so far
  let mapped = pos;
  for (const c of op) {
    if (typeof c === 'string') {
      if (consumed < pos || (consumed === pos && side === 'right')) mapped += c.length;
      continue;
    }
    if (consumed >= pos) break;
    if (c > 0) {
      consumed += c;
    } else {
      // A deletion before pos pulls it back; one spanning pos collapses it to its start.
      mapped -= Math.min(-c, pos - consumed);
      consumed -= c;
    }
  }
  return mapped;
}

/**
 * Maps a position (a caret, in code units) in `op`'s base document to the corresponding
 * position in its target document. When `op` inserts text exactly at the position, the caret
 * moves past that text with `side` 'right' (the default, as a typist's own caret moves) and
 * stays before it with 'left'.
 * A position inside deleted text moves to where the deletion was.
 * Law: it agrees with transform — inserting a marker at `pos` and transforming that insert
 * against `op` with the same `side` puts the marker at transformPosition(pos, op, side).
 */
export function transformPosition(pos: number, op: Operation, side: Side = 'right'): number {
  const { base, canonical } = checkOperation(op);
  checkSide(side);
  checkPosition(pos, base);
  return mapPosition(pos, canonical ? op : normalize(op), side);
}

/** One selection range as editors keep it: the anchor stays, the head moves with the caret. */
export interface SelectionRange {
  readonly anchor: number;
  readonly head: number;
}

/**
 * Maps every range of a selection through `op`, each end as {@link transformPosition} would.
 * Takes and returns one range or an array of ranges; never mutates its input.
 * Law: for each range r, result.anchor === transformPosition(r.anchor, op, side) and likewise
 * for head.
 */
export function transformSelection(
  selection: SelectionRange,
  op: Operation,
  side?: Side,
): SelectionRange;
export function transformSelection(
  selection: readonly SelectionRange[],
  op: Operation,
  side?: Side,
): SelectionRange[];
export function transformSelection(
  selection: SelectionRange | readonly SelectionRange[],
  op: Operation,
  side: Side = 'right',
): SelectionRange | SelectionRange[] {
  const lengths = checkOperation(op);
  checkSide(side);
  const canonical = lengths.canonical ? op : normalize(op);
  const base = lengths.base;
  const one = (r: SelectionRange): SelectionRange => {
    if (typeof r !== 'object' || r === null) {
      throw new InvalidOperationError(
        OperationErrorCode.BadArgument,
        `a selection range must be an object with anchor and head, got ${describeValue(r)}`,
      );
    }
    checkPosition(r.anchor, base);
    checkPosition(r.head, base);
    return { anchor: mapPosition(r.anchor, canonical, side), head: mapPosition(r.head, canonical, side) };
  };
  return Array.isArray(selection) ? selection.map(one) : one(selection as SelectionRange);
}
