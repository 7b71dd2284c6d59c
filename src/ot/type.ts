/**
 * Otter's text type in the ottypes interface, for ShareDB and other ottypes hosts:
 * `ShareDB.types.register(type)`. Snapshots are strings; operations are Otter operations.
 * `invert` is left off on purpose: ottypes' `invert(op)` takes no document, and Otter's needs
 * one (see `invert(op, doc)` in `otter/ot`).
 */
import { apply } from './apply.js';
import { compose } from './compose.js';
import { InvalidOperationError, OperationErrorCode, describeValue } from './errors.js';
import { type Component, type Operation, isNoop, normalize } from './operation.js';
import { type Side, transform, transformPosition } from './transform.js';

/** The ottypes descriptor of Otter's plain-text type. */
export const type = {
  name: 'otter-text',
  uri: 'https://github.com/otter-ot/otter/types/text',

  /** The initial snapshot: `initial` if it is a string, else the empty document. */
  create(initial?: unknown): string {
    if (initial === undefined || initial === null) return '';
    if (typeof initial !== 'string') {
      throw new InvalidOperationError(
        OperationErrorCode.BadArgument,
        `a text snapshot must be a string, got ${describeValue(initial)}`,
      );
    }
    return initial;
  },

  /** See `apply` in `otter/ot`. */
  apply(snapshot: string, op: Operation): string {
    return apply(snapshot, op);
  },

  /** See `transform` in `otter/ot`: `op` rebased to apply after `other`. */
  transform(op: Operation, other: Operation, side: Side): Component[] {
    return transform(op, other, side);
  },

  /** See `compose` in `otter/ot`. */
  compose(a: Operation, b: Operation): Component[] {
    return compose(a, b);
  },

  /** See `normalize` in `otter/ot`. */
  normalize(op: Operation): Component[] {
    return normalize(op);
  },

  /** See `isNoop` in `otter/ot`. */
  isNoop(op: Operation): boolean {
    return isNoop(op);
  },

  /** See `transformPosition` in `otter/ot`; `side` defaults to 'right'. */
  transformPosition(pos: number, op: Operation, side?: Side): number {
    return transformPosition(pos, op, side);
  },
} as const;
