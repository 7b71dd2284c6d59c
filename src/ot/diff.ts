/**
 * Building operations from what editors report: a patch (position, deleted length, inserted
 * text) or a before/after pair of texts.
 */
import { InvalidOperationError, OperationErrorCode, describeValue } from './errors.js';
import { type Component, OperationBuilder, checkCount, isHighSurrogate, isLowSurrogate } from './operation.js';

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
 * Myers' greedy shortest edit script between two arrays of tokens (code points or lines), or undefined when it
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
 * How {@link fromTextDiff} aligns the texts: `none`, a shortest edit script over code points;
 * `semantic`, that script with short unchanged runs between changes folded into them;
 * `lines`, for changes that span lines, lines first — a shortest script over whole lines, then
 * each changed block of lines by a shortest script over code points; within one line, `none`.
 */
export type DiffCleanup = 'none' | 'semantic' | 'lines';

const CLEANUPS: readonly DiffCleanup[] = ['none', 'semantic', 'lines'];

/**
 * A smallest change turning `before` into `after`, hunk by hunk: the operation of a shortest
 * edit script over code points (Myers' diff, so surrogate pairs stay whole). Where the
 * texts differ by more than `maxEdits` inserted plus deleted code points it returns
 * {@link fromDiff}'s single-range change instead (bounded time and memory: O(n·maxEdits) and
 * O(maxEdits²)). Use it to rebase edits onto a text whose history is unknown: an edit outside
 * every hunk keeps its place.
 *
 * With `cleanup: 'semantic'`, an unchanged run no longer than the changes on both sides of
 * it is folded into them (as diff-match-patch's semantic cleanup does), repeatedly: a
 * shortest script often aligns scattered letters two unrelated texts share, and a rebase over
 * such hunks tears edits apart; the cleaned change replaces whole runs instead.
 * With `cleanup: 'lines'`, whole lines are aligned first (at most `maxEdits` inserted plus
 * deleted lines, else by code point alone), so an unchanged line is never matched letter by
 * letter against a changed one, and each changed block of lines is then aligned by code point
 * (at most `maxEdits` edits per block, else replaced whole): time and memory stay bounded on
 * long, far-apart texts, where one code-point script would give up. Canonical.
 * Laws: apply(before, fromTextDiff(before, after, m, c)) === after for every m and c; with
 * cleanup 'none' and within `maxEdits`, the op's inserted plus deleted code points are as few
 * as any op's can be.
 */
export function fromTextDiff(before: string, after: string, maxEdits = 1000, cleanup: DiffCleanup = 'none'): Component[] {
  const single = fromDiff(before, after);
  checkCount(maxEdits, 'maxEdits');
  if (!CLEANUPS.includes(cleanup)) {
    throw new InvalidOperationError(OperationErrorCode.BadArgument, `cleanup must be 'none', 'semantic' or 'lines', got ${describeValue(cleanup)}`);
  }
  // fromDiff already kept the longest common prefix and suffix; diff only the middle.
  let prefix = typeof single[0] === 'number' && single[0] > 0 ? single[0] : 0;
  const last = single[single.length - 1];
  let suffix = single.length > 1 && typeof last === 'number' && last > 0 ? last : 0;
  const multiline = (x: string, from: number, to: number): boolean => {
    const i = x.indexOf('\n', from);
    return i !== -1 && i < to;
  };
  const spansLines = cleanup === 'lines' && (multiline(before, prefix, before.length - suffix) || multiline(after, prefix, after.length - suffix));
  if (spansLines) {
    // The change spans lines: whole lines only, so that a line edited at its end does not
    // lend its last letters to the next.
    prefix = prefix === 0 ? 0 : before.lastIndexOf('\n', prefix - 1) + 1;
    const start = before.length - suffix;
    if (start > 0 && before[start - 1] !== '\n') {
      const end = before.indexOf('\n', start);
      suffix = end === -1 ? 0 : before.length - end - 1;
    }
  }
  const middleA = before.slice(prefix, before.length - suffix);
  const middleB = after.slice(prefix, after.length - suffix);
  const out = new OperationBuilder().retain(prefix);
  if (spansLines) diffLines(middleA, middleB, maxEdits, out);
  else if (!diffCodePoints(middleA, middleB, maxEdits, cleanup === 'semantic' ? 'semantic' : 'none', out)) return single;
  return slideToBoundaries(out.retain(suffix).build(), before);
}

/** How far {@link slideToBoundaries} slides a change each way, in code units. */
const MAX_SLIDE = 64;

/**
 * `op` (canonical, on `text`) with each pure insert and pure delete slid, over the kept text
 * around it (at most {@link MAX_SLIDE} code units each way), to where it is best cut: the same
 * text is inserted or deleted and the result is the same, but a run such as "«c1»" inserted
 * before "«c2»" becomes one insert at the marker's edge rather than "1»«c" after "«c". A place
 * scores by the code units on each side of each end (see {@link boundaryScore}); the leftmost
 * of the best is taken. Linear in the op's length plus MAX_SLIDE per change.
 */
function slideToBoundaries(op: Component[], text: string): Component[] {
  const out: Component[] = [];
  let pos = 0; // in `text`, at the start of op[i]
  const kept = (x: Component | undefined): x is number => typeof x === 'number' && x > 0;
  for (let i = 0; i < op.length; i++) {
    const c = op[i] as Component;
    const prev = out[out.length - 1];
    const next = op[i + 1];
    if (!kept(prev) || !kept(next) || kept(c)) {
      out.push(c);
      if (typeof c === 'number') pos += Math.abs(c);
      continue;
    }
    const insert = typeof c === 'string';
    const n = insert ? c.length : -c;
    // The k-th code unit of the run once slid by `shift` (left for shift < 0): an insert's run
    // rotates through the text it passes; a delete's run is a window of the text.
    const unit = (shift: number, k: number): number => {
      if (!insert) return text.charCodeAt(pos + shift + k);
      if (shift <= 0) {
        const j = k + shift; // into the run, or before it in the text
        return j >= 0 ? c.charCodeAt(j) : text.charCodeAt(pos + j);
      }
      return k + shift < n ? c.charCodeAt(k + shift) : text.charCodeAt(pos + k + shift - n);
    };
    const end = insert ? pos : pos + n; // where the kept text after the run begins
    let lo = 0;
    while (-lo < Math.min(prev, MAX_SLIDE) && text.charCodeAt(pos + lo - 1) === unit(lo, n - 1)) lo--;
    let hi = 0;
    while (hi < Math.min(next, MAX_SLIDE) && text.charCodeAt(end + hi) === unit(hi, 0)) hi++;
    let best = 0;
    let bestScore = -1;
    for (let k = lo; k <= hi; k++) {
      const before = text.charCodeAt(pos + k - 1);
      const beyond = text.charCodeAt(end + k);
      const first = unit(k, 0);
      const last = unit(k, n - 1);
      if (splitsPair(before, first) || splitsPair(last, beyond)) continue;
      const score = boundaryScore(before, first) + boundaryScore(last, beyond);
      if (score > bestScore) {
        bestScore = score;
        best = k;
      }
    }
    out[out.length - 1] = prev + best;
    out.push(insert ? String.fromCharCode(...Array.from({ length: n }, (_, k) => unit(best, k))) : c);
    op[i + 1] = next - best;
    pos += best + (insert ? 0 : n);
  }
  // Slid next to another change (their kept text between them gone), runs join.
  const joined = new OperationBuilder();
  for (const x of out) {
    if (typeof x === 'string') joined.insert(x);
    else if (x > 0) joined.retain(x);
    else joined.delete(-x);
  }
  return joined.build();
}

/** Whether a cut between code units `a` and `b` would split a surrogate pair. */
function splitsPair(a: number, b: number): boolean {
  return isHighSurrogate(a) && isLowSurrogate(b);
}

/**
 * How good a cut between code units `a` and `b` is (NaN: an end of the text), higher better.
 * Separators end what is before them and openers begin what is after them, so a cut after a
 * line break (5) beats one before it (4), after white space (3) one before it (2), and a cut
 * that parts an opening bracket or quote from what follows it, or a closing one from what
 * precedes it, scores 0; beside other punctuation or symbols 1; between letters or digits 0;
 * at an end of the text 6.
 */
function boundaryScore(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return 6;
  const x = String.fromCharCode(a);
  const y = String.fromCharCode(b);
  if (x === '\r' && y === '\n') return 0;
  if (x === '\n') return 5;
  if (y === '\n' || y === '\r') return 4;
  if (/\s/.test(x)) return 3;
  if (/\s/.test(y)) return 2;
  if (OPENER.test(x) || CLOSER.test(y)) return 0;
  return WORD.test(x) && WORD.test(y) ? 0 : 1;
}

/** Opening brackets and quotes. */
const OPENER = /[\p{Ps}\p{Pi}]/u;

/** Closing brackets and quotes. */
const CLOSER = /[\p{Pe}\p{Pf}]/u;

/** A letter, digit or mark (a surrogate half counts as one: it belongs to a code point). */
const WORD = /[\p{L}\p{N}\p{M}\uD800-\uDFFF]/u;

/**
 * Appends to `out` a change of `before` into `after` aligned by lines, each changed block
 * aligned by code point (replaced whole if that needs over `maxEdits` edits). Over `maxEdits`
 * changed lines, the texts are aligned by code point alone, or replaced whole.
 */
function diffLines(before: string, after: string, maxEdits: number, out: OperationBuilder): void {
  const a = splitLines(before);
  const b = splitLines(after);
  const script = shortestEditScript(a, b, maxEdits);
  if (script === undefined) {
    if (!diffCodePoints(before, after, maxEdits, 'none', out)) out.insert(after).delete(before.length);
    return;
  }
  const hunks = toHunks(script);
  foldShortKeptLines(hunks, a, b);
  let ia = 0;
  let ib = 0;
  for (const h of hunks) {
    if (h.keep > 0) {
      out.retain(a.slice(ia, ia + h.keep).join('').length);
      ia += h.keep;
      ib += h.keep;
      continue;
    }
    const removed = a.slice(ia, ia + h.remove).join('');
    const inserted = b.slice(ib, ib + h.insert).join('');
    if (!diffCodePoints(removed, inserted, maxEdits, 'none', out)) out.insert(inserted).delete(removed.length);
    ia += h.remove;
    ib += h.insert;
  }
}

/**
 * Folds each run of kept lines between two changed blocks into them when it has no more code
 * units than the larger side of either block: a line both texts have by chance (an empty line,
 * a brace) must not anchor the alignment, or a changed line is paired with the wrong one and
 * its letters are deleted and inserted again instead of aligned. The blocks are then aligned
 * by code point as one.
 */
function foldShortKeptLines(hunks: Hunk[], a: readonly string[], b: readonly string[]): void {
  // Code units of each hunk's kept, removed and inserted lines.
  const sizes: Array<{ keep: number; remove: number; insert: number }> = [];
  let ia = 0;
  let ib = 0;
  const units = (lines: readonly string[], from: number, n: number): number => {
    let total = 0;
    for (let i = from; i < from + n; i++) total += (lines[i] as string).length;
    return total;
  };
  for (const h of hunks) {
    sizes.push({ keep: units(a, ia, h.keep), remove: units(a, ia + h.keep, h.remove), insert: units(b, ib + h.keep, h.insert) });
    ia += h.keep + h.remove;
    ib += h.keep + h.insert;
  }
  for (let i = 1; i + 1 < hunks.length; i++) {
    const mid = hunks[i] as Hunk;
    const left = sizes[i - 1] as { keep: number; remove: number; insert: number };
    const right = sizes[i + 1] as { keep: number; remove: number; insert: number };
    const kept = (sizes[i] as { keep: number }).keep;
    if (mid.keep === 0 || (hunks[i - 1] as Hunk).keep > 0 || (hunks[i + 1] as Hunk).keep > 0) continue;
    if (kept > Math.max(left.remove, left.insert) || kept > Math.max(right.remove, right.insert)) continue;
    const l = hunks[i - 1] as Hunk;
    const r = hunks[i + 1] as Hunk;
    l.remove += mid.keep + r.remove;
    l.insert += mid.keep + r.insert;
    left.remove += kept + right.remove;
    left.insert += kept + right.insert;
    hunks.splice(i, 2);
    sizes.splice(i, 2);
    i -= 1;
  }
}

/** `text` cut after each line feed (the last piece may have none; '' gives no pieces). */
function splitLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', start)) {
    lines.push(text.slice(start, i + 1));
    start = i + 1;
  }
  if (start < text.length) lines.push(text.slice(start));
  return lines;
}

/**
 * Appends to `out` a shortest change of `before` into `after` over code points, tidied by
 * `cleanup`; false (nothing appended) if it needs more than `maxEdits` edits.
 */
function diffCodePoints(before: string, after: string, maxEdits: number, cleanup: DiffCleanup, out: OperationBuilder): boolean {
  const a = Array.from(before);
  const b = Array.from(after);
  const script = shortestEditScript(a, b, maxEdits);
  if (script === undefined) return false;
  const hunks = toHunks(script);
  joinSlidableChanges(hunks, a, b);
  if (cleanup !== 'none') foldShortEqualities(hunks);
  let ia = 0;
  let ib = 0;
  for (const h of hunks) {
    if (h.keep > 0) {
      out.retain(a.slice(ia, ia + h.keep).join('').length);
      ia += h.keep;
      ib += h.keep;
      continue;
    }
    out.insert(b.slice(ib, ib + h.insert).join(''));
    out.delete(a.slice(ia, ia + h.remove).join('').length);
    ia += h.remove;
    ib += h.insert;
  }
  return true;
}

/** A run of an edit script: `keep` code points kept, or `remove` deleted and `insert` inserted. */
interface Hunk {
  keep: number;
  remove: number;
  insert: number;
}

/** Groups an edit script into alternating kept runs and changes. */
function toHunks(script: ReadonlyArray<readonly [0 | 1 | 2, number]>): Hunk[] {
  const hunks: Hunk[] = [];
  for (const [kind, count] of script) {
    const lastHunk = hunks[hunks.length - 1];
    if (kind === 0) {
      hunks.push({ keep: count, remove: 0, insert: 0 });
    } else {
      const h = lastHunk !== undefined && lastHunk.keep === 0 ? lastHunk : { keep: 0, remove: 0, insert: 0 };
      if (h !== lastHunk) hunks.push(h);
      if (kind === 1) h.remove += count;
      else h.insert += count;
    }
  }
  return hunks;
}

/**
 * Joins changes that a pure insert or pure delete can be slid into, without changing what is
 * inserted or deleted (diff-match-patch's lossless shift): a pure change whose text ends with
 * the whole kept run before it slides left over that run, and one whose text starts with the
 * whole kept run after it slides right over it; the kept run is then gone and the change joins
 * its neighbour. A shortest script may align a letter of an inserted run with a like letter
 * of the text (inserting "«c1»" before "c" as "«", kept "c", "1»c"): this keeps the run whole,
 * so that an edit rebased over the change cannot land inside it. The script stays as short.
 */
function joinSlidableChanges(hunks: Hunk[], a: readonly string[], b: readonly string[]): void {
  // Each slide removes a kept run (the one it slides over joins the one on the other side),
  // so this ends.
  for (let changed = true; changed; ) {
    changed = false;
    let ia = 0;
    let ib = 0;
    for (let i = 1; i + 1 < hunks.length; i++) {
      const h = hunks[i] as Hunk;
      const before = hunks[i - 1] as Hunk;
      const after = hunks[i + 1] as Hunk;
      if (i === 1) {
        ia += before.keep + before.remove;
        ib += before.keep + before.insert;
      }
      const pure = h.keep === 0 && (h.remove === 0 || h.insert === 0);
      if (pure && before.keep > 0 && after.keep > 0) {
        // Its text: in `b` for an insert, in `a` for a delete, from `at`.
        const text = h.insert > 0 ? b : a;
        const at = h.insert > 0 ? ib : ia;
        const n = h.insert + h.remove;
        if (before.keep <= n && endsWithRun(text, at, n, before.keep)) {
          after.keep += before.keep;
          hunks.splice(i - 1, 1);
          changed = true;
          break;
        }
        if (after.keep <= n && startsWithRun(text, at, n, after.keep)) {
          before.keep += after.keep;
          hunks.splice(i + 1, 1);
          changed = true;
          break;
        }
      }
      ia += h.keep + h.remove;
      ib += h.keep + h.insert;
    }
    if (changed) joinAdjacentChanges(hunks);
  }
}

/** Whether the run text[at, at + n) ends with the `k` code points just before it. */
function endsWithRun(text: readonly string[], at: number, n: number, k: number): boolean {
  for (let j = 1; j <= k; j++) if (text[at - j] !== text[at + n - j]) return false;
  return true;
}

/** Whether the run text[at, at + n) starts with the `k` code points just after it. */
function startsWithRun(text: readonly string[], at: number, n: number, k: number): boolean {
  for (let j = 0; j < k; j++) if (text[at + n + j] !== text[at + j]) return false;
  return true;
}

/** Merges each change with a change right after it (no kept run between them) into one. */
function joinAdjacentChanges(hunks: Hunk[]): void {
  for (let i = hunks.length - 1; i > 0; i--) {
    const h = hunks[i] as Hunk;
    const prev = hunks[i - 1] as Hunk;
    if (h.keep > 0 || prev.keep > 0) continue;
    prev.remove += h.remove;
    prev.insert += h.insert;
    hunks.splice(i, 1);
  }
}

/**
 * Folds each kept run with changes on both sides that is no longer than the larger side of
 * either change into one change, until none is left (diff-match-patch's semantic cleanup).
 */
function foldShortEqualities(hunks: Hunk[]): void {
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = 1; i + 1 < hunks.length; i++) {
      const left = hunks[i - 1] as Hunk;
      const mid = hunks[i] as Hunk;
      const right = hunks[i + 1] as Hunk;
      if (mid.keep === 0 || left.keep > 0 || right.keep > 0) continue;
      if (mid.keep > Math.max(left.remove, left.insert) || mid.keep > Math.max(right.remove, right.insert)) continue;
      left.remove += mid.keep + right.remove;
      left.insert += mid.keep + right.insert;
      hunks.splice(i, 2);
      changed = true;
      i -= 1;
    }
  }
}
