/**
 * History retention: how much of a document's op log the sequencer keeps for clients that come
 * back late (a laptop closed for a weekend rebases its edits over the real history, op by op,
 * instead of over a text diff).
 *
 * By default the whole log is kept. A policy sets caps — by count, by age, by size — and
 * history beyond any cap is removed (as Kafka's retention limits do: whichever is reached
 * first). Removal happens only at snapshot boundaries (the trim point must have a snapshot to
 * rebuild from), when a snapshot is taken, so each cap keeps at least what it names: the
 * newest `ops` ops, every op younger than `ageMs`, the newest `bytes` of ops, and up to one
 * snapshot interval more.
 */
import type { Operation } from '../ot/index.js';

/** Caps on a document's op history; history beyond any of them is removed. Default: none. */
export interface RetentionPolicy {
  /** Keep at least the newest this many ops; older ones may be removed. */
  readonly ops?: number;
  /** Keep every op younger than this many ms; older ones may be removed. */
  readonly ageMs?: number;
  /**
   * Keep at least the newest this many bytes of ops (their stored JSON, counted in UTF-16 code
   * units); older ones may be removed.
   */
  readonly bytes?: number;
}

/** A snapshot the sequencer may trim to: its version, when it was taken, the log size there. */
export interface TrimCandidate {
  readonly version: number;
  /** When it was taken (ms since the Unix epoch); undefined if unknown (never trimmed to by age). */
  readonly at: number | undefined;
  /** {@link LogSize} of the log up to `version` (on the same counter as the document's). */
  readonly bytes: number;
}

/** Returns `policy` if every cap it sets is a non-negative safe integer; throws RangeError. */
export function checkRetention(policy: RetentionPolicy): RetentionPolicy {
  for (const key of ['ops', 'ageMs', 'bytes'] as const) {
    const value = policy[key];
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
      throw new RangeError(`option retention.${key} must be an integer ≥ 0, got ${String(value)}`);
    }
  }
  return policy;
}

/**
 * The newest candidate version beyond `current` that `policy` lets history be trimmed to, or
 * `current` if none: a candidate qualifies if every op up to it is beyond some cap — more than
 * `ops` versions behind `head`, taken at least `ageMs` before `now`, or more than `bytes`
 * behind `logBytes` (the log's size at the head). `candidates` ascend by version.
 */
export function trimPoint(
  policy: RetentionPolicy,
  candidates: readonly TrimCandidate[],
  current: number,
  head: number,
  logBytes: number,
  now: number,
): number {
  let point = current;
  for (const c of candidates) {
    if (c.version <= point) continue;
    const byCount = policy.ops !== undefined && c.version <= head - policy.ops;
    const byAge = policy.ageMs !== undefined && c.at !== undefined && c.at <= now - policy.ageMs;
    const bySize = policy.bytes !== undefined && logBytes - c.bytes >= policy.bytes;
    if (byCount || byAge || bySize) point = c.version;
  }
  return point;
}

/** Whether `policy` caps history by size (then the sequencer counts {@link opBytes}). */
export function countsBytes(policy: RetentionPolicy): boolean {
  return policy.bytes !== undefined;
}

/** The length of `JSON.stringify(op)` in code units, escapes aside. Linear in the op's components. */
export function opBytes(op: Operation): number {
  let n = Math.max(2, op.length + 1); // brackets and commas
  for (const c of op) {
    if (typeof c === 'string') n += c.length + 2;
    else {
      let m = c < 0 ? -c : c;
      n += c < 0 ? 2 : 1;
      while (m >= 10) {
        m = Math.floor(m / 10);
        n += 1;
      }
    }
  }
  return n;
}
