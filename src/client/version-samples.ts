/**
 * The versions a document passed through and its checksum at each, kept to show a server that
 * lost data where the lost line and what it still holds part: the `samples` of a `restore`. The
 * server merges the lost text from the newest sample it still holds with the same checksum; a
 * sample older than where the lines really parted makes the merge see the changes between the
 * two as made on both sides, which it may not tell apart from text typed twice.
 *
 * So every version of the last {@link EXACT} is kept exactly, and the samples sent are chosen
 * for the loss at hand ({@link VersionSamples.pick}): when the server sent its own checksums at
 * versions spread below the claim, every version between the newest of them this line shares
 * and the next (the lines part there, exactly); the versions at and just below the head the
 * server still has (where a store that went back in time parts from the lost line, unless
 * another writer wrote on past it); the newest ones (which tell another restoring client that
 * its op in flight landed); and a spread over the rest. Older versions are kept at a spacing
 * that doubles whenever they grow too many.
 */
import { MAX_FORK_STEP } from '../protocol/parse.js';

/** Versions kept exactly, newest first. */
const EXACT = 4096;
/** Most older versions kept (at a common spacing), as many as a stored record brings back. */
const SPARSE = 64;
/** Samples sent from just below the head the server has. */
const AT_FORK = 24;
/** Samples sent from the newest versions. */
const NEWEST = 16;

/** A version and the document's checksum there. */
export type Sample = readonly [version: number, checksum: number];

/** See the file comment. */
export class VersionSamples {
  /** First version of {@link sums}. */
  private from = 0;
  /** The checksums of versions `from`, `from + 1`, … without a gap. */
  private sums: number[] = [];
  /** Versions older than {@link sums} (or kept from a stored record), oldest first. */
  private sparse: Sample[] = [];
  /** Of the versions leaving {@link sums}, every `stride`-th is kept in {@link sparse}. */
  private stride = 1;
  /** Versions that left {@link sums} since the last one kept. */
  private passed = 0;

  /** Forgets everything: the document is at `version` with `checksum` (an open, a resync). */
  reset(version: number, checksum: number): void {
    this.sparse = [];
    this.stride = 1;
    this.passed = 0;
    this.from = version;
    this.sums = [checksum];
  }

  /**
   * Starts from stored samples (any versions, in any order), the document now at the newest:
   * they are kept as older ones.
   */
  load(samples: readonly Sample[]): void {
    this.sums = [];
    this.sparse = [...samples].sort((a, b) => a[0] - b[0]).map(([v, sum]) => [v, sum] as const);
    this.stride = 1;
    this.passed = 0;
    while (this.sparse.length > SPARSE) this.halve();
  }

  /** The document moved to `version` (`checksum`): the next version after the last noted, or a fresh start. */
  note(version: number, checksum: number): void {
    if (this.sums.length > 0 && version !== this.from + this.sums.length) {
      for (const [i, sum] of this.sums.entries()) this.keepOlder([this.from + i, sum]);
      this.sums = [];
    }
    if (this.sums.length === 0) this.from = version;
    this.sums.push(checksum);
    if (this.sums.length >= 2 * EXACT) {
      const out = this.sums.splice(0, this.sums.length - EXACT);
      for (const [i, sum] of out.entries()) this.keepOlder([this.from + i, sum]);
      this.from += out.length;
    }
  }

  /**
   * At most `max` samples for a restore, newest first, without duplicates: with `serverSums`
   * (the server's checksums at versions spread below the claim), every version this line holds
   * from the newest of them it shares up to the next of them; then those at and below
   * `serverHead` (the head the server still has, if known), the newest, and a spread over the
   * rest; every version it holds when they are no more than `max`.
   */
  pick(max: number, serverHead?: number, serverSums: readonly Sample[] = []): Sample[] {
    const n = this.sparse.length + this.sums.length;
    if (n <= max) return Array.from({ length: n }, (_, i) => this.at(n - 1 - i));
    const chosen = new Map<number, number>();
    const take = (i: number): void => {
      if (i < 0 || i >= n || chosen.size >= max) return;
      const [v, sum] = this.at(i);
      chosen.set(v, sum);
    };
    // The newest server sample this line shares, and the next newer one it holds (with another
    // checksum, being newer): the lines part between them, where every version held goes out,
    // oldest first, at most MAX_FORK_STEP (a server's spread leaves no more between two).
    const theirs = [...serverSums].sort((a, b) => b[0] - a[0]);
    const shared = theirs.findIndex(([v, sum]) => this.sumAt(v) === sum);
    if (shared >= 0) {
      const from = (theirs[shared] as Sample)[0];
      // Without a newer one held: up to the newest of theirs (or, that being shared, `from` alone).
      let to = (theirs[0] as Sample)[0] + 1;
      for (let j = shared - 1; j >= 0; j--) {
        const v = (theirs[j] as Sample)[0];
        if (this.sumAt(v) === undefined) continue;
        to = v;
        break;
      }
      let taken = 0;
      for (let i = 0; i < n && taken < MAX_FORK_STEP && chosen.size < max; i++) {
        const v = this.at(i)[0];
        if (v < from || v >= to) continue;
        take(i);
        taken++;
      }
    }
    for (let k = 0; k < NEWEST; k++) take(n - 1 - k);
    if (serverHead !== undefined) {
      // The newest versions at or below the server's head (held oldest first).
      let i = n - 1;
      while (i >= 0 && this.at(i)[0] > serverHead) i--;
      for (let k = 0; k < AT_FORK; k++) take(i - k);
    }
    // The rest spread over what is left, each step back about as far again as the last.
    const left = max - chosen.size;
    for (let k = 1; k <= left && chosen.size < max; k++) take(n - Math.round(Math.pow(n, k / left)));
    for (let i = 0; chosen.size < max && i < n; i++) take(i);
    return [...chosen].sort((a, b) => b[0] - a[0]);
  }

  /**
   * What to store with the document: at most `max` samples, oldest first — chosen as for a
   * loss just below the newest version (the likeliest, when a stored record is used at all).
   */
  stored(max: number): Sample[] {
    const n = this.sparse.length + this.sums.length;
    return this.pick(max, n === 0 ? undefined : this.at(n - 1)[0]).reverse();
  }

  /** The checksum held for `version`, if it is held. */
  private sumAt(version: number): number | undefined {
    if (version >= this.from && version < this.from + this.sums.length) return this.sums[version - this.from];
    return this.sparse.find(([v]) => v === version)?.[1];
  }

  /** The i-th sample held, oldest first. */
  private at(i: number): Sample {
    const older = this.sparse.length;
    return i < older ? (this.sparse[i] as Sample) : [this.from + i - older, this.sums[i - older] as number];
  }

  /** Keeps `sample` among the older ones if it falls on their spacing. */
  private keepOlder(sample: Sample): void {
    if (this.passed++ % this.stride !== 0) return;
    this.sparse.push(sample);
    if (this.sparse.length > SPARSE) this.halve();
  }

  /** Keeps every other older sample (the newest among them) and doubles their spacing. */
  private halve(): void {
    const n = this.sparse.length;
    this.sparse = this.sparse.filter((_, i) => (n - 1 - i) % 2 === 0);
    this.stride *= 2;
  }
}
