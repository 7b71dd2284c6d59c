/**
 * Building operations from what editors report: a patch (position, deleted length, inserted
 * text) or a before/after pair of texts.
 */
import { InvalidOperationError, OperationErrorCode, describeValue } from './errors.js';
import {
  type Component,
  OperationBuilder,
  checkCount,
  isHighSurrogate,
  isLowSurrogate,
} from './operation.js';

/**
 * The operation that, on a document of length `docLength`, deletes `deleteCount` code units at
 * `pos` and inserts `insertText` there. Canonical; throws `bad-argument` if the range leaves the
 * document and `lone-surrogate` for ill-formed text. Surrogate boundaries are checked by
 * `apply`, which has the document.
 * Law: apply(d, fromPatch(d.length, p, n, s)) === d.slice(0, p) + s + d.slice(p + n).
 */
export function fromPatch(
  docLength: number,
  pos: number,
  deleteCount: number,
  insertText: string,
): Component[] {
  checkCount(docLength, 'document length');
  checkCount(pos, 'patch position');
  checkCount(deleteCount, 'delete count');
  if (pos + deleteCount > docLength) {
    throw new InvalidOperationError(
      OperationErrorCode.BadArgument,
      `patch ${pos}..${pos + deleteCount} lies outside the document (length ${docLength})`,
    );
  }
  return new OperationBuilder()
    .retain(pos)
    .insert(insertText)
    .delete(deleteCount)
    .retain(docLength - pos - deleteCount)
    .build();
}

/**
 * The smallest single-range change that turns `before` into `after`: the longest common
 * prefix and then the longest common suffix are kept, the middle is replaced. Never cuts a
 * surrogate pair. Canonical.
 * Law: apply(before, fromDiff(before, after)) === after.
 */
export function fromDiff(before: string, after: string): Component[] {
  if (typeof before !== 'string' || typeof after !== 'string') {
    throw new InvalidOperationError(
      OperationErrorCode.BadArgument,
      `fromDiff takes two strings, got ${describeValue(before)} and ${describeValue(after)}`,
    );
  }
  const max = Math.min(before.length, after.length);
  let prefix = 0;
  while (prefix < max && before.charCodeAt(prefix) === after.charCodeAt(prefix)) prefix++;
  // Keep a surrogate pair whole: never end the prefix between its halves.
  if (prefix > 0 && isHighSurrogate(before.charCodeAt(prefix - 1))) prefix--;
  let suffix = 0;
  const room = max - prefix;
  while (
    suffix < room &&
    before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)
  ) {
    suffix++;
  }
  if (suffix > 0 && isLowSurrogate(before.charCodeAt(before.length - suffix))) suffix--;
  return new OperationBuilder()
    .retain(prefix)
    .insert(after.slice(prefix, after.length - suffix))
    .delete(before.length - prefix - suffix)
    .retain(suffix)
    .build();
}
