/**
 * The Otter text operation: format, canonical form, validation and the builder.
 *
 * FORMAT
 * An operation is a JSON array of components, walked left to right over its base document:
 *
 *   N > 0 (safe integer)   retain: keep the next N code units
 *   "text" (non-empty)     insert: insert this text at the current position
 *   -N < 0 (safe integer)  delete: remove the next N code units
 *
 * Example: on "hello world", [6, "there ", -5] gives "hello there ".
 * This is exactly ot.js's `TextOperation.toJSON()`, so ops cross between the two unchanged.
 *
 * UNIT
 * Lengths and positions count UTF-16 code units, as JavaScript strings and every JavaScript
 * editor do. A document is always well-formed Unicode: no component boundary may fall inside a
 * surrogate pair, and no inserted string may hold a lone surrogate.
 *
 * SPAN
 * An operation spans its whole base document: sum(retains) + sum(deletes) = base length.
 * Its target length is sum(retains) + sum(insert lengths). The empty array is the identity on
 * the empty document; [N] is the identity on a document of length N.
 *
 * CANONICAL FORM (kept by construction in every output of this module)
 *   1. No zero-length component (0 and "" are invalid anyway).
 *   2. Adjacent components of one kind are merged: never [2, 3], ["a", "b"] or [-1, -2].
 *   3. Between two retains, inserts come before deletes: ["a", -1], never [-1, "a"].
 * So the changes between two retains are at most one insert followed by at most one delete,
 * and two operations with the same effect have identical JSON, the same JSON ot.js produces.
 * Inputs need only valid components; non-canonical inputs are accepted and their outputs are
 * canonical. `normalize` returns the canonical form of any valid operation.
 */
import { InvalidOperationError, OperationErrorCode, describeValue } from './errors.js';

/** One component: retain (positive integer), insert (non-empty string), delete (negative). */
export type Component = number | string;

/** A text operation in the ot.js JSON format; see the header of this file. */
export type Operation = readonly Component[];

/** Lengths of a validated operation. */
export interface OperationLengths {
  /** Length of the document the operation applies to (retains + deletes). */
  readonly base: number;
  /** Length of the document it produces (retains + inserted text). */
  readonly target: number;
  /** Whether the operation is in canonical form (see the file header). */
  readonly canonical: boolean;
}

/** True if `code` is a UTF-16 high (leading) surrogate. */
export function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** True if `code` is a UTF-16 low (trailing) surrogate. */
export function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

type WellFormedString = string & { isWellFormed?: () => boolean };

/** True if `text` holds no lone surrogate. Linear in the text's length. */
export function isWellFormed(text: string): boolean {
  // One code unit (a typed character) is well-formed exactly when it is not a surrogate.
  if (text.length === 1) return (text.charCodeAt(0) & 0xf800) !== 0xd800;
  const native = (text as WellFormedString).isWellFormed;
  if (native !== undefined) return native.call(text);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (isHighSurrogate(c)) {
      if (!isLowSurrogate(text.charCodeAt(i + 1))) return false;
      i++;
    } else if (isLowSurrogate(c)) {
      return false;
    }
  }
  return true;
}

/**
 * A text read one UTF-16 code unit at a time: a string, or a rope (`rope.ts`), whose reads
 * never copy the text.
 */
export interface CodeUnits {
  readonly length: number;
  /** The code unit at `pos` (0 ≤ pos < length). */
  charCodeAt(pos: number): number;
}

/**
 * True if cutting `doc` at `pos` would separate the two halves of a surrogate pair. Reads at
 * most the two code units around `pos`.
 */
export function splitsSurrogatePair(doc: CodeUnits, pos: number): boolean {
  return (
    pos > 0 &&
    pos < doc.length &&
    isLowSurrogate(doc.charCodeAt(pos)) &&
    isHighSurrogate(doc.charCodeAt(pos - 1))
  );
}

/**
 * Checks one component and throws the precise error for it.
 * Constant time for numbers (never loops over their value); linear in an insert's length.
 */
export function checkComponent(c: unknown, index: number): asserts c is Component {
  if (typeof c === 'string') {
    if (c.length === 0) {
      throw new InvalidOperationError(
        OperationErrorCode.BadComponent,
        `component ${index} is an empty string; inserts must be non-empty`,
      );
    }
    if (!isWellFormed(c)) {
      throw new InvalidOperationError(
        OperationErrorCode.LoneSurrogate,
        `component ${index} inserts ${describeValue(c)}, which holds a lone UTF-16 surrogate`,
      );
    }
    return;
  }
  if (typeof c !== 'number' || !Number.isSafeInteger(c) || c === 0) {
    throw new InvalidOperationError(
      OperationErrorCode.BadComponent,
      `component ${index} is ${describeValue(c)}; expected a non-zero safe integer or a non-empty string`,
    );
  }
}

/**
 * Validates an operation's shape and returns its lengths and whether it is canonical.
 * Throws {@link InvalidOperationError} (`not-array`, `bad-component`, `lone-surrogate`,
 * `length-mismatch` if a length passes 2^53). Time is linear in the number of components and
 * inserted characters, never in the size of a number.
 */
export function checkOperation(op: unknown): OperationLengths {
  if (!Array.isArray(op)) {
    throw new InvalidOperationError(
      OperationErrorCode.NotArray,
      `an operation must be an array, got ${describeValue(op)}`,
    );
  }
  let base = 0;
  let target = 0;
  let canonical = true;
  let prev: Component | undefined;
  for (let i = 0; i < op.length; i++) {
    const c: unknown = op[i];
    checkComponent(c, i);
    if (typeof c === 'string') {
      target += c.length;
      if (typeof prev === 'string' || (prev !== undefined && prev < 0)) canonical = false;
    } else {
      if (c > 0) {
        base += c;
        target += c;
      } else base -= c;
      if (typeof prev === 'number' && prev > 0 === c > 0) canonical = false;
    }
    prev = c;
  }
  if (!Number.isSafeInteger(base) || !Number.isSafeInteger(target)) {
    throw new InvalidOperationError(
      OperationErrorCode.LengthMismatch,
      `operation lengths exceed 2^53 (base ${base}, target ${target})`,
    );
  }
  return { base, target, canonical };
}

/** Base length of a valid operation: the length of the document it applies to. Validates. */
export function baseLength(op: Operation): number {
  return checkOperation(op).base;
}

/** Target length of a valid operation: the length of the document it produces. Validates. */
export function targetLength(op: Operation): number {
  return checkOperation(op).target;
}

/**
 * True if the operation changes nothing: it holds no insert and no delete. Validates.
 * Law: isNoop(op) ⇔ apply(d, op) === d for every document d of its base length.
 */
export function isNoop(op: Operation): boolean {
  checkOperation(op);
  for (const c of op) if (typeof c === 'string' || c < 0) return false;
  return true;
}

/** Throws `bad-argument` unless `n` is a non-negative safe integer. */
export function checkCount(n: unknown, what: string): asserts n is number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new InvalidOperationError(
      OperationErrorCode.BadArgument,
      `${what} must be a non-negative safe integer, got ${describeValue(n)}`,
    );
  }
}

/**
 * Appends a retain of `n` code units to `out`, an operation under construction, keeping it
 * canonical (merged into a retain it ends with). Unchecked: `n` must be a positive safe
 * integer. The fast path of the algorithms of this folder, whose arguments are valid by
 * construction; not exported from `otter/ot`, where {@link OperationBuilder} checks them.
 */
export function pushRetain(out: Component[], n: number): void {
  const last = out[out.length - 1];
  if (typeof last === 'number' && last > 0) out[out.length - 1] = last + n;
  else out.push(n);
}

/**
 * Appends an insert of `text` (non-empty, well-formed) to `out`, keeping it canonical: merged
 * into an insert it ends with, and placed before a delete it ends with. Unchecked, as
 * {@link pushRetain}.
 */
export function pushInsert(out: Component[], text: string): void {
  const n = out.length;
  const last = out[n - 1];
  if (typeof last === 'string') {
    out[n - 1] = last + text;
  } else if (typeof last === 'number' && last < 0) {
    const before = out[n - 2];
    if (typeof before === 'string') {
      out[n - 2] = before + text;
    } else {
      out[n - 1] = text;
      out.push(last);
    }
  } else {
    out.push(text);
  }
}

/**
 * Appends a delete of `n` code units (a positive safe integer) to `out`, keeping it canonical
 * (merged into a delete it ends with). Unchecked, as {@link pushRetain}.
 */
export function pushDelete(out: Component[], n: number): void {
  const last = out[out.length - 1];
  if (typeof last === 'number' && last < 0) out[out.length - 1] = last - n;
  else out.push(-n);
}

/**
 * Builds canonical operations component by component, checking every argument.
 *
 * Invariant: `build()` always returns an operation in canonical form (see the file header),
 * whatever order of calls produced it, because each call merges with or reorders around the
 * last component. Zero-length calls are ignored.
 */
export class OperationBuilder {
  private readonly ops: Component[] = [];

  /** Keeps the next `n` code units (`n` ≥ 0; 0 does nothing). Throws `bad-argument` otherwise. */
  retain(n: number): this {
    checkCount(n, 'retain count');
    if (n > 0) pushRetain(this.ops, n);
    return this;
  }

  /**
   * Inserts `text` at the current position (`""` does nothing). Throws `bad-argument` for a
   * non-string, `lone-surrogate` for text holding a lone surrogate.
   */
  insert(text: string): this {
    if (typeof text !== 'string') {
      throw new InvalidOperationError(
        OperationErrorCode.BadArgument,
        `insert text must be a string, got ${describeValue(text)}`,
      );
    }
    if (text.length === 0) return this;
    if (!isWellFormed(text)) {
      throw new InvalidOperationError(
        OperationErrorCode.LoneSurrogate,
        `insert text ${describeValue(text)} holds a lone UTF-16 surrogate`,
      );
    }
    pushInsert(this.ops, text);
    return this;
  }

  /** Deletes the next `n` code units (`n` ≥ 0; 0 does nothing). Throws `bad-argument` otherwise. */
  delete(n: number): this {
    checkCount(n, 'delete count');
    if (n > 0) pushDelete(this.ops, n);
    return this;
  }

  /** The operation built so far, in canonical form (a copy). The builder may be reused afterwards. */
  build(): Component[] {
    return this.ops.slice();
  }
}

/**
 * True if `op` is in canonical form (see the file header): no two adjacent components of one
 * kind and no delete directly before an insert. Validates. Linear in the number of components.
 */
export function isCanonical(op: Operation): boolean {
  return checkOperation(op).canonical;
}

/**
 * Returns the canonical form of a valid operation (see the file header). Validates.
 * Laws: normalize(op) has op's effect on every document; normalize(normalize(op)) equals
 * normalize(op); an operation already canonical comes back equal (as JSON).
 */
export function normalize(op: Operation): Component[] {
  checkOperation(op);
  const out: Component[] = [];
  for (const c of op) {
    if (typeof c === 'string') pushInsert(out, c);
    else if (c > 0) pushRetain(out, c);
    else pushDelete(out, -c);
  }
  return out;
}
