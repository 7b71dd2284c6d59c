/**
 * Composition: one operation with the effect of two (or many) in sequence.
 */
import { InvalidOperationError, OperationErrorCode } from './errors.js';
import {
  type Component,
  type Operation,
  checkOperation,
  isHighSurrogate,
  normalize,
  pushDelete,
  pushInsert,
  pushRetain,
} from './operation.js';

/**
 * Throws `split-surrogate` unless the component of `b` that ends at `pos`, inside a surrogate
 * pair inserted by the first operation, is followed by one of the same kind (the rule `apply`
 * enforces): otherwise the result would insert a lone surrogate.
 */
function checkCut(b: Operation, ib: number, keeps: boolean, pos: number): void {
  const next = b[ib + 1];
  if (typeof next === 'number' && next > 0 === keeps) return;
  throw new InvalidOperationError(
    OperationErrorCode.SplitSurrogate,
    `cannot compose: component ${ib} of the second operation ends at position ${pos}, inside a surrogate pair the first operation inserts`,
  );
}

/**
 * Returns the operation with the effect of `a` followed by `b`.
 *
 * Contract: both are valid and `b`'s base length equals `a`'s target length, else throws
 * {@link InvalidOperationError} (`length-mismatch`; `split-surrogate` if `b` cuts a surrogate
 * pair that `a` inserts, as `apply` would). The result is canonical and valid; its base length
 * is `a`'s and its target length is `b`'s. Time: linear in the components of both.
 * Laws: apply(apply(d, a), b) === apply(d, compose(a, b)); compose is associative in effect.
 */
export function compose(a: Operation, b: Operation): Component[] {
  const la = checkOperation(a);
  const lb = checkOperation(b);
  if (la.target !== lb.base) {
    throw new InvalidOperationError(
      OperationErrorCode.LengthMismatch,
      `cannot compose: the first operation produces length ${la.target} but the second applies to length ${lb.base}`,
    );
  }
  const out: Component[] = [];
  let ia = 0;
  let ib = 0;
  // ca and cb hold what is left of the current component of a and of b.
  let ca: Component | undefined = a[0];
  let cb: Component | undefined = b[0];
  let pos = 0; // position in a's target (b's base) document
  for (;;) {
    if (typeof ca === 'number' && ca < 0) {
      // a deletes text b never sees.
      pushDelete(out, -ca);
      ca = a[++ia];
      continue;
    }
    if (typeof cb === 'string') {
      // b inserts text a never saw.
      pushInsert(out, cb);
      cb = b[++ib];
      continue;
    }
    if (ca === undefined || cb === undefined) break; // equal lengths: both end together
    if (typeof ca === 'number') {
      // a retains; b retains (cb > 0) or deletes (cb < 0) the same text.
      if (cb > 0) {
        const n = ca < cb ? ca : cb;
        pushRetain(out, n);
        ca -= n;
        cb -= n;
        pos += n;
      } else {
        const n = ca < -cb ? ca : -cb;
        pushDelete(out, n);
        ca -= n;
        cb += n;
        pos += n;
      }
      if (ca === 0) ca = a[++ia];
    } else {
      // a inserts; b keeps a prefix of it (cb > 0) or deletes it (cb < 0).
      const len = ca.length;
      const n = cb > 0 ? (len < cb ? len : cb) : len < -cb ? len : -cb;
      if (n < len && isHighSurrogate(ca.charCodeAt(n - 1))) checkCut(b, ib, cb > 0, pos + n);
      pos += n;
      if (cb > 0) {
        pushInsert(out, n === len ? ca : ca.slice(0, n));
        cb -= n;
      } else {
        cb += n;
      }
      ca = n === len ? a[++ia] : ca.slice(n);
    }
    if (cb === 0) cb = b[++ib];
  }
  return out;
}

/**
 * Composes a sequence of operations into one: compose(ops[0], compose(ops[1], ...)).
 * Pairs neighbours in a balanced tree, so a long trace of small edits composes in
 * O(total · log n) rather than the O(n²) of a left fold. `ops` must be non-empty and each
 * operation's base length must equal its predecessor's target length.
 * Law: apply(d, composeAll(ops)) === ops.reduce(apply, d).
 */
export function composeAll(ops: readonly Operation[]): Component[] {
  if (!Array.isArray(ops) || ops.length === 0) {
    throw new InvalidOperationError(
      OperationErrorCode.BadArgument,
      'composeAll needs an array of at least one operation',
    );
  }
  let level: Operation[] = ops.slice();
  while (level.length > 1) {
    const next: Operation[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) {
      next.push(compose(level[i] as Operation, level[i + 1] as Operation));
    }
    if (level.length % 2 === 1) next.push(level[level.length - 1] as Operation);
    level = next;
  }
  // Composed results are canonical already; a lone input still comes back validated and canonical.
  return normalize(level[0] as Operation);
}
