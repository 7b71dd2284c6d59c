/**
 * Applying operations to documents, and inverting them.
 */
import { InvalidOperationError, OperationErrorCode, describeValue } from './errors.js';
import {
  type CodeUnits,
  type Component,
  type Operation,
  checkComponent,
  checkOperation,
  isWellFormed,
  normalize,
  pushDelete,
  pushInsert,
  pushRetain,
  splitsSurrogatePair,
} from './operation.js';

function lengthMismatch(doc: CodeUnits, consumed: number, index: number): InvalidOperationError {
  return new InvalidOperationError(
    OperationErrorCode.LengthMismatch,
    `component ${index} reaches position ${consumed}, past the end of the document (length ${doc.length})`,
  );
}

function checkBoundary(doc: CodeUnits, pos: number, index: number): void {
  if (splitsSurrogatePair(doc, pos)) {
    throw new InvalidOperationError(
      OperationErrorCode.SplitSurrogate,
      `component ${index} ends at position ${pos}, inside a surrogate pair`,
    );
  }
}

/** Throws unless `doc` is a string. */
function checkDocument(doc: unknown): asserts doc is string {
  if (typeof doc !== 'string') {
    throw new InvalidOperationError(
      OperationErrorCode.BadArgument,
      `the document must be a string, got ${describeValue(doc)}`,
    );
  }
}

/**
 * Validates `op` against `doc` in one left-to-right walk: every component and every boundary.
 * Throws {@link InvalidOperationError} on the first broken rule, in walk order; returns nothing.
 * Callers validate first and then build from the (now known valid) operation in a second,
 * check-free loop, so no per-component callback is needed and nothing is left half-done.
 */
function validate(doc: string, op: unknown): asserts op is Operation {
  checkDocument(doc);
  checkApplies(doc, op);
}

/**
 * Validates `op` against the text `doc` (a string or a rope) as {@link apply} does, reading
 * only the code units around the op's boundaries: linear in the op's components and inserted
 * code units, never in the text's length. Throws {@link InvalidOperationError} on the first
 * broken rule; returns nothing.
 */
export function checkApplies(doc: CodeUnits, op: unknown): asserts op is Operation {
  if (!Array.isArray(op)) checkOperation(op);
  const ops = op as unknown[];
  const len = doc.length;
  const count = ops.length;
  let pos = 0;
  let prevInsert = false; // typeof ops[i - 1] === 'string'
  for (let i = 0; i < count; i++) {
    const c = ops[i];
    if (typeof c === 'string') {
      // checkComponent, inlined for the valid case; it throws the precise error otherwise.
      if (c.length === 0 || !isWellFormed(c)) checkComponent(c, i);
      prevInsert = true;
      continue;
    }
    if (typeof c !== 'number' || !Number.isSafeInteger(c) || c === 0) checkComponent(c, i);
    const n = (c as number) > 0 ? (c as number) : -(c as number);
    if (n > len - pos) throw lengthMismatch(doc, pos + n, i);
    const next = ops[i + 1];
    const sameKind = typeof next === 'number' && next > 0 === (c as number) > 0;
    if (!sameKind) checkBoundary(doc, pos + n, i);
    if (prevInsert) checkBoundary(doc, pos, i);
    prevInsert = false;
    pos += n;
  }
  if (pos !== len) {
    throw new InvalidOperationError(
      OperationErrorCode.LengthMismatch,
      `operation spans ${pos} code units but the document has ${len}`,
    );
  }
}

/**
 * Applies `op` to `doc` and returns the new document.
 *
 * Contract: `op` is valid and its base length equals `doc.length`; no boundary splits a
 * surrogate pair. Otherwise throws {@link InvalidOperationError} and `doc` is unchanged (it is
 * a string: nothing is mutated). Time: linear in the number of components plus the output.
 * Law: apply(apply(d, a), b) === apply(d, compose(a, b)).
 */
export function apply(doc: string, op: Operation): string {
  validate(doc, op);
  let out = '';
  let pos = 0;
  for (let i = 0; i < op.length; i++) {
    const c = op[i] as Component;
    if (typeof c === 'string') out += c;
    else if (c > 0) {
      out += doc.slice(pos, pos + c);
      pos += c;
    } else pos -= c;
  }
  return out;
}

/**
 * The operation undoing `op`, given the texts its deletes removed, in order (see
 * `deletedFromRope`): inserts become deletes, deletes become inserts of `deleted`. Law: for
 * `deleted` read from d, apply(apply(d, op), invertWithDeleted(op, deleted)) === d. Linear in
 * `op` and the deleted text, never in the document. The result is canonical.
 */
export function invertWithDeleted(op: Operation, deleted: readonly string[]): Component[] {
  let next = 0;
  return normalize(op.map((c) => (typeof c === 'string' ? -c.length : c > 0 ? c : (deleted[next++] as string))));
}

/**
 * Returns the operation that undoes `op` on the document it produced from `doc`.
 * Deleted text is read from `doc`, the base document. Validates `op` against `doc`.
 * Law: apply(apply(d, op), invert(op, d)) === d. The result is canonical.
 */
export function invert(op: Operation, doc: string): Component[] {
  validate(doc, op);
  const b: Component[] = [];
  let pos = 0;
  for (let i = 0; i < op.length; i++) {
    const c = op[i] as Component;
    if (typeof c === 'string') pushDelete(b, c.length);
    else if (c > 0) {
      pushRetain(b, c);
      pos += c;
    } else {
      pushInsert(b, doc.slice(pos, pos - c));
      pos -= c;
    }
  }
  return b;
}
