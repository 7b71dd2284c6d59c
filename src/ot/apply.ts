/**
 * Applying operations to documents, and inverting them.
 */
import { InvalidOperationError, OperationErrorCode, describeValue } from './errors.js';
import {
  type Component,
  type Operation,
  OperationBuilder,
  checkComponent,
  checkOperation,
  splitsSurrogatePair,
} from './operation.js';

function lengthMismatch(doc: string, consumed: number, index: number): InvalidOperationError {
  return new InvalidOperationError(
    OperationErrorCode.LengthMismatch,
    `component ${index} reaches position ${consumed}, past the end of the document (length ${doc.length})`,
  );
}

function checkBoundary(doc: string, pos: number, index: number): void {
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
 * Walks `op` over `doc`, validating every component and every boundary against the document,
 * and calls `visit` for each component with the position it starts at.
 * Throws {@link InvalidOperationError} on the first broken rule, before `visit` sees that
 * component; the caller builds only immutable values, so nothing is left half-done.
 */
function walk(
  doc: string,
  op: unknown,
  visit: (c: Component, pos: number) => void,
): void {
  checkDocument(doc);
  if (!Array.isArray(op)) checkOperation(op);
  const ops = op as unknown[];
  let pos = 0;
  for (let i = 0; i < ops.length; i++) {
    const c = ops[i];
    checkComponent(c, i);
    if (typeof c === 'string') {
      visit(c, pos);
      continue;
    }
    const n = c > 0 ? c : -c;
    if (n > doc.length - pos) throw lengthMismatch(doc, pos + n, i);
    const next = ops[i + 1];
    const sameKind = typeof next === 'number' && next > 0 === c > 0;
    if (!sameKind) checkBoundary(doc, pos + n, i);
    if (typeof ops[i - 1] === 'string') checkBoundary(doc, pos, i);
    visit(c, pos);
    pos += n;
  }
  if (pos !== doc.length) {
    throw new InvalidOperationError(
      OperationErrorCode.LengthMismatch,
      `operation spans ${pos} code units but the document has ${doc.length}`,
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
  let out = '';
  walk(doc, op, (c, pos) => {
    if (typeof c === 'string') out += c;
    else if (c > 0) out += doc.slice(pos, pos + c);
  });
  return out;
}

/**
 * Returns the operation that undoes `op` on the document it produced from `doc`.
 * Deleted text is read from `doc`, the base document. Validates `op` against `doc`.
 * Law: apply(apply(d, op), invert(op, d)) === d. The result is canonical.
 */
export function invert(op: Operation, doc: string): Component[] {
  const b = new OperationBuilder();
  walk(doc, op, (c, pos) => {
    if (typeof c === 'string') b.pushDelete(c.length);
    else if (c > 0) b.pushRetain(c);
    else b.pushInsert(doc.slice(pos, pos - c));
  });
  return b.take();
}
