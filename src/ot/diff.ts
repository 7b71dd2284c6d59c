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

/**
 * Myers' greedy shortest edit script between two arrays of code points, or undefined when it
 * needs more than `maxEdits` single insertions and deletions. Returns the script as runs:
 * [kind, count] with kind 0 = keep, 1 = delete from `a`, 2 = insert from `b`, in order.
 * Time O((a.length + b.length) · D), memory O(D²) for D edits.
 */
function shortestEditScript(a: readonly string[], b: readonly string[], maxEdits: number): Array<[0 | 1 | 2, number]> | undefined {
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, maxEdits);
  const off = max + 1;
  const v = new Int32Array(2 * max + 3);
  // trace[d] holds v[-d .. d] as it was before step d, for walking back.
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice(off - d, off + d + 1));
    for (let k = -d; k <= d; k += 2) {
      const down = k === -d || (k !== d && (v[off + k - 1] as number) < (v[off + k + 1] as number));
      let x = down ? (v[off + k + 1] as number) : (v[off + k - 1] as number) + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= n && y >= m) return walkBack(trace, d, n, m);
    }
  }
  return undefined;
}

/** Recovers the edit script from Myers' trace, ending at (n, m) after `d` edits. */
function walkBack(trace: Int32Array[], d: number, n: number, m: number): Array<[0 | 1 | 2, number]> {
  const runs: Array<[0 | 1 | 2, number]> = [];
  const push = (kind: 0 | 1 | 2, count: number): void => {
    if (count > 0) runs.push([kind, count]);
  };
  let x = n;
  let y = m;
  for (; d > 0; d--) {
    const prev = trace[d] as Int32Array; // v[-d .. d] before step d, so v[j] sits at prev[j + d]
    const k = x - y;
    const down = k === -d || (k !== d && (prev[k - 1 + d] as number) < (prev[k + 1 + d] as number));
    const prevK = down ? k + 1 : k - 1;
    const prevX = prev[prevK + d] as number;
    const prevY = prevX - prevK;
    const startX = down ? prevX : prevX + 1;
    push(0, x - startX);
    push(down ? 2 : 1, 1);
    x = prevX;
    y = prevY;
  }
  push(0, x);
  return runs.reverse();
}

/**
 * A smallest change turning `before` into `after`, hunk by hunk: the operation of a shortest
 * edit script over code points (Myers' diff, so surrogate pairs stay whole). Where the
 * texts differ by more than `maxEdits` inserted plus deleted code points it returns
 * {@link fromDiff}'s single-range change instead (bounded time and memory: O(n·maxEdits) and
 * O(maxEdits²)). Use it to rebase edits onto a text whose history is unknown: an edit outside
 * every hunk keeps its place. Canonical.
 * Laws: apply(before, fromTextDiff(before, after)) === after; within `maxEdits`, the op's
 * inserted plus deleted code points are as few as any op's can be.
 */
export function fromTextDiff(before: string, after: string, maxEdits = 1000): Component[] {
  const single = fromDiff(before, after);
  checkCount(maxEdits, 'maxEdits');
  // fromDiff already kept the longest common prefix and suffix; diff only the middle.
  const prefix = typeof single[0] === 'number' && single[0] > 0 ? single[0] : 0;
  const last = single[single.length - 1];
  const suffix = single.length > 1 && typeof last === 'number' && last > 0 ? last : 0;
  const a = Array.from(before.slice(prefix, before.length - suffix));
  const b = Array.from(after.slice(prefix, after.length - suffix));
  const script = shortestEditScript(a, b, maxEdits);
  if (script === undefined) return single;
  const out = new OperationBuilder().retain(prefix);
  let ia = 0;
  let ib = 0;
  for (const [kind, count] of script) {
    if (kind === 2) {
      out.insert(b.slice(ib, ib + count).join(''));
      ib += count;
      continue;
    }
    const length = a.slice(ia, ia + count).join('').length;
    ia += count;
    if (kind === 0) {
      out.retain(length);
      ib += count;
    } else {
      out.delete(length);
    }
  }
  return out.retain(suffix).build();
}
