/**
 * The one error type of `otter/ot`, and the registry of its codes.
 *
 * Every function of the module that takes an operation validates it before doing anything else
 * and throws an {@link InvalidOperationError} on the first rule it breaks. Nothing is ever
 * half-applied: the functions are pure, so a throw leaves every input as it was.
 */

/** Stable machine-readable reasons an operation (or an argument beside it) was rejected. */
export const OperationErrorCode = {
  /** The operation is not an array. */
  NotArray: 'not-array',
  /** A component is not a non-zero safe integer or a non-empty string. */
  BadComponent: 'bad-component',
  /** The operation's base length does not match the document or the other operation. */
  LengthMismatch: 'length-mismatch',
  /** A retain or delete boundary falls between the two halves of a UTF-16 surrogate pair. */
  SplitSurrogate: 'split-surrogate',
  /** An inserted string holds a lone (unpaired) UTF-16 surrogate. */
  LoneSurrogate: 'lone-surrogate',
  /** A position, length or side argument is out of range or of the wrong type. */
  BadArgument: 'bad-argument',
} as const;

/** One of the values of {@link OperationErrorCode}. */
export type OperationErrorCode = (typeof OperationErrorCode)[keyof typeof OperationErrorCode];

/**
 * Thrown by every `otter/ot` function given an operation or argument it cannot accept.
 * `code` is stable across versions; `message` names the offending value and where it was.
 */
export class InvalidOperationError extends Error {
  override readonly name = 'InvalidOperationError';

  /** @param code stable reason; @param message human-readable detail naming the bad value. */
  constructor(
    readonly code: OperationErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Renders an untrusted value for an error message: short, never throwing. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  }
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (value === null || value === undefined || typeof value === 'boolean') return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  return `a value of type ${typeof value}`;
}
