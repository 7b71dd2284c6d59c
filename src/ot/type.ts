/**
 * Otter's text type in the ottypes interface, for ShareDB and other ottypes hosts:
 * `ShareDB.types.register(type)`. Snapshots are strings; operations are Otter operations.
 *
 * Presence (ShareDB `doc presence`): a presence value is one {@link SelectionRange}
 * (`{anchor, head}` in UTF-16 code units of the snapshot), an array of them, or `null` for
 * none. `transformPresence` keeps it in step with the document; other properties of a range
 * are not kept. ShareDB needs `transformPresence` for presence on a document of this type:
 * without it the server refuses presence with `ERR_TYPE_DOES_NOT_SUPPORT_PRESENCE`. ShareDB
 * does not tell the type which of two concurrent ops the server ordered first, so when both
 * insert exactly at a presence end, its owner and the other clients can place that end on
 * either side of the two inserts until the owner next submits its presence.
 *
 * Rollback: `invert` is left off on purpose. ottypes' `invert(op)` takes no document, and
 * Otter's needs one (see `invert(op, doc)` in `otter/ot`); ShareDB 7 inverts a rejected op
 * only through `type.invert(op)` and has no document-aware hook. So when the server rejects
 * an op, ShareDB's `Doc._rollback` takes its hard rollback: it drops the in-flight and
 * pending ops (their callbacks get the error, or, for `ERR_OP_SUBMIT_REJECTED`, the rejected
 * op's callback succeeds and the pending ones get `ERR_PENDING_OP_REMOVED_BY_OP_SUBMIT_REJECTED`),
 * fetches the server's snapshot, and emits `load`; acknowledged ops are in that snapshot.
 * That client's presences on the document, its own and those it sees, are reset to `null`.
 */
import { apply } from './apply.js';
import { compose } from './compose.js';
import { InvalidOperationError, OperationErrorCode, describeValue } from './errors.js';
import { type Component, type Operation, isNoop, normalize } from './operation.js';
import { type SelectionRange, type Side, transform, transformPosition, transformSelection } from './transform.js';

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

  /**
   * ShareDB's presence hook: maps `presence` (a range, an array of ranges, or `null`) from
   * `op`'s base document to its target, each end as `transformPosition` maps it. Where `op`
   * inserts exactly at an end, the end moves past the inserted text when the op is the
   * presence owner's own (`isOwnOp` truthy: ShareDB passes the op's `source` for local
   * presences), and stays before it when the op is someone else's, so a caret is never
   * pushed along by another user's typing. `null` stays `null`; the input is not mutated.
   * Throws InvalidOperationError: `bad-argument` for any other value or for a position
   * outside `op`'s base document, the op's own code for an invalid `op`. ShareDB catches what
   * this throws and reports it as an `error` event or callback (`ERR_PRESENCE_TRANSFORM_FAILED`
   * on the server); like any `error` event, one nobody listens for is rethrown by the emitter.
   */
  transformPresence(
    presence: SelectionRange | readonly SelectionRange[] | null,
    op: Operation,
    isOwnOp: unknown,
  ): SelectionRange | SelectionRange[] | null {
    if (presence === null) return null;
    const side: Side = isOwnOp ? 'right' : 'left';
    return Array.isArray(presence)
      ? transformSelection(presence as readonly SelectionRange[], op, side)
      : transformSelection(presence as SelectionRange, op, side);
  },
} as const;
