/**
 * Three-way text merges, for restoring text a server lost: {@link mergeText} brings one
 * descendant's changes into another, {@link holdsInserts} tells whether a later copy of a text
 * already holds an edit whose fate is unknown. Both rest on {@link fromTextDiff}.
 */
import { InvalidOperationError, OperationErrorCode, describeValue } from './errors.js';
import { type Component, type Operation, OperationBuilder, baseLength, normalize } from './operation.js';
import { apply } from './apply.js';
import { type DiffCleanup, fromTextDiff } from './diff.js';
import { transform } from './transform.js';

/**
 * Three-way text merge as an operation: the op on `theirs` that brings in the changes `mine`
 * made to `base`, where `theirs` is another descendant of `base`. Both changes are
 * reconstructed as {@link fromTextDiff}s — shortest ones, which align a change made on both
 * sides alike, or, when `theirs` changed nothing, semantic ones (whole runs replaced, not
 * letters two texts share by chance) — and combined as `transform` would (text both deleted is
 * deleted once; text one side deleted is deleted; where both insert at one place, `theirs`'s
 * text comes first),
 * except that what a change of `theirs` touching the same run of `base` inserts is not
 * inserted again by `mine` (an insert of `mine` that `theirs`'s holds is dropped, one that
 * holds `theirs`'s keeps only the rest): a change made on both sides — the same text restored
 * from two copies — is not doubled.
 *
 * `made`, if given, is a descendant of `base` whose changes are known to be in `theirs`
 * already (edits merged earlier, whose fate in `mine` is unknown): the changes are then
 * taken from `made` instead of `base`, and what `made` inserted is never deleted for being
 * absent from `mine`. Nothing else either side inserted is lost; inserts are never interleaved.
 * Laws: apply(theirs, mergeText(base, mine, theirs)) === mine when theirs === base;
 * === theirs when mine === base or mine === theirs. Canonical.
 * Time: that of the diffs (see {@link fromTextDiff}), plus linear.
 */
export function mergeText(base: string, mine: string, theirs: string, made: string = base): Component[] {
  if (typeof base !== 'string' || typeof mine !== 'string' || typeof theirs !== 'string' || typeof made !== 'string') {
    throw new InvalidOperationError(
      OperationErrorCode.BadArgument,
      `mergeText takes strings, got ${describeValue(base)}, ${describeValue(mine)}, ${describeValue(theirs)} and ${describeValue(made)}`,
    );
  }
  const cleanup: DiffCleanup = theirs === made ? 'semantic' : 'none';
  const other = fromTextDiff(made, theirs, 1000, cleanup);
  let ours = fromTextDiff(made, mine, 1000, cleanup);
  if (made !== base) ours = keeping(ours, insertedRanges(fromTextDiff(base, made)), made);
  return transform(withoutInsertsHeldBy(ours, other), other, 'right');
}

/** The ranges of an op's target that its inserts made, in order. */
function insertedRanges(op: readonly Component[]): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let pos = 0;
  for (const c of op) {
    if (typeof c === 'string') {
      ranges.push([pos, pos + c.length]);
      pos += c.length;
    } else if (c > 0) pos += c;
  }
  return ranges;
}

/**
 * `op` (on `text`) with its deletes of the given ranges turned into retains; text so kept is
 * not inserted again by the same change (a change that replaced a run holding it re-inserts
 * only the rest).
 */
function keeping(op: readonly Component[], ranges: ReadonlyArray<readonly [number, number]>, text: string): Component[] {
  const out = new OperationBuilder();
  let pos = 0;
  let k = 0;
  for (let i = 0; i < op.length; i++) {
    const c = op[i] as Component;
    if (typeof c === 'string') {
      // The delete after this insert, if any: what of it is kept is not inserted again.
      const next = op[i + 1];
      let rest = c;
      if (typeof next === 'number' && next < 0) {
        for (const [from, to] of ranges) {
          const a = Math.max(from, pos);
          const b = Math.min(to, pos - next);
          if (a < b) rest = rest.replace(text.slice(a, b), '');
        }
      }
      out.insert(rest);
      continue;
    }
    const end = pos + Math.abs(c);
    if (c > 0) {
      out.retain(c);
      pos = end;
      continue;
    }
    // A delete of [pos, end): keep the parts inside protected ranges.
    while (pos < end) {
      while (k < ranges.length && (ranges[k] as [number, number])[1] <= pos) k++;
      const r = ranges[k];
      if (r === undefined || r[0] >= end) {
        out.delete(end - pos);
        pos = end;
      } else if (r[0] > pos) {
        out.delete(r[0] - pos);
        pos = r[0];
      } else {
        const stop = Math.min(end, r[1]);
        out.retain(stop - pos);
        pos = stop;
      }
    }
  }
  return out.build();
}

/**
 * Whether `target`, a text descended from `base`, already holds what `op` (an op on `base`)
 * inserts, each insert at its place. Either, as for {@link mergeText}, a shortest change of
 * `base` into `target` inserts, on the run of `base` the insert touches, a text containing it;
 * or a shortest change of apply(base, op) into `target` leaves every inserted run and the code
 * unit on each side of it untouched (so a run of equal characters that lets `base` and
 * `target` be aligned differently does not hide the insert, and a chance match of a few
 * characters next to changes does not fake it). True for an op that inserts nothing. Use it
 * to tell whether an edit whose fate is unknown (sent, never acknowledged) is in a later copy
 * of the text; where in doubt it says no (the caller then keeps the edit, at worst twice).
 */
export function holdsInserts(base: string, op: Operation, target: string): boolean {
  const normal = normalize(op);
  if (baseLength(normal) !== base.length) {
    throw new InvalidOperationError(
      OperationErrorCode.LengthMismatch,
      `holdsInserts: the op spans ${baseLength(normal)} code units but the base has ${base.length}`,
    );
  }
  if (withoutInsertsHeldBy(normal, fromTextDiff(base, target)).every((c) => typeof c !== 'string')) return true;
  return untouched(fromTextDiff(apply(base, normal), target), insertedRanges(normal));
}

/**
 * Whether `op` leaves each of the given ranges of its base, and the code unit on each side
 * of it, as they are: no delete meets [from − 1, to + 1), no insert lands in [from, to].
 */
function untouched(op: readonly Component[], ranges: ReadonlyArray<readonly [number, number]>): boolean {
  const hits = (a: number, b: number): boolean => ranges.some(([from, to]) => a < to + 1 && b > from - 1);
  let pos = 0;
  for (const c of op) {
    if (typeof c === 'string') {
      if (ranges.some(([from, to]) => from <= pos && pos <= to)) return false;
    } else if (c < 0) {
      if (hits(pos, pos - c)) return false;
      pos -= c;
    } else pos += c;
  }
  return true;
}

/**
 * `op` without the inserts that `other` (a change of the same base) already holds at their
 * place. A change is an insert at base position a followed by a delete of [a, b) (a = b for a
 * pure insert); an insert of `op` is dropped when its change and a change of `other` touch
 * (their base runs [a, b] meet) and `other`'s inserted text contains it.
 */
function withoutInsertsHeldBy(op: readonly Component[], other: readonly Component[]): Component[] {
  const hunks = changesOf(other);
  const out = new OperationBuilder();
  let pos = 0;
  let k = 0;
  for (let i = 0; i < op.length; i++) {
    const c = op[i] as Component;
    if (typeof c === 'string') {
      const next = op[i + 1];
      const end = typeof next === 'number' && next < 0 ? pos - next : pos;
      while (k < hunks.length && (hunks[k] as { to: number }).to < pos) k++;
      // The text of `other`'s changes touching this one: what of this insert they hold is not
      // inserted again (all of it, or the part that is theirs when this one holds theirs).
      let rest = c;
      for (let j = k; j < hunks.length && rest.length > 0; j++) {
        const h = hunks[j] as { from: number; to: number; text: string };
        if (h.from > end) break;
        if (h.text.includes(rest)) rest = '';
        else if (h.text.length > 0 && rest.includes(h.text)) rest = rest.replace(h.text, '');
      }
      out.insert(rest);
    } else if (c > 0) {
      out.retain(c);
      pos += c;
    } else {
      out.delete(-c);
      pos -= c;
    }
  }
  return out.build();
}

/** The changes of a canonical op: insert `text` at base position `from`, delete [from, to). */
function changesOf(op: readonly Component[]): Array<{ from: number; to: number; text: string }> {
  const hunks: Array<{ from: number; to: number; text: string }> = [];
  let pos = 0;
  for (const c of op) {
    if (typeof c === 'string') hunks.push({ from: pos, to: pos, text: c });
    else if (c < 0) {
      const h = hunks[hunks.length - 1];
      if (h !== undefined && h.to === pos) h.to = pos - c;
      pos -= c;
    } else pos += c;
  }
  return hunks;
}
