/**
 * Document checksums: a chain over the op log, so that a replica can tell in O(1) whether its
 * copy of a document at version v is the server's.
 *
 *   checksum(0) = EMPTY_CHECKSUM
 *   checksum(v) = chainChecksum(checksum(v - 1), op_v)
 *
 * where op_v is the canonical op that produced version v. Two replicas that started from the
 * same version-0 text (empty, in every Otter document) and applied the same ops in the same
 * order hold the same text, so equal checksums at v mean equal texts at v; a replica that
 * applied a different op anywhere before v (an edit lost, doubled, mistaken for another, or a
 * server that lost history and wrote new ops under the same versions) has a different
 * checksum from then on, with probability 1 − 2⁻⁵³ at each version.
 *
 * The cost is O(components + inserted code units) per op — the same order as applying it —
 * so both the server and the client keep the checksum of every version they pass through,
 * and no O(document) work is ever needed.
 *
 * A checksum is a non-negative safe integer (53 bits: two 32-bit multiply–xorshift lanes,
 * 21 and 32 bits of which are kept). It is stored with every op and snapshot, so this
 * definition must never change (`test/protocol/checksum.test.ts` pins values).
 */
import type { Operation } from '../ot/index.js';

/** The checksum of version 0, the empty document. */
export const EMPTY_CHECKSUM = 0;

const TWO_32 = 0x1_0000_0000;
const TWO_31 = 0x8000_0000;
/** Mixed into an insert's lane before its text, so "ab" and ["a", "b"] (never canonical anyway) differ. */
const TAG_INSERT = 0x7fb5d329;

/** The 32-bit avalanche of murmur3's finaliser. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * The checksum of the version `op` produces from a version whose checksum is `previous`.
 * `op` must be canonical (as every committed op is): equal effects then hash equally.
 * Deterministic and pure; O(components + inserted code units), a few nanoseconds for a keystroke.
 * Lane a runs FNV-1a over every component and code unit; lane b mixes lane a after each
 * component; both go through murmur3's finaliser and 53 bits of them are kept.
 */
export function chainChecksum(previous: number, op: Operation): number {
  // Split without `%`, which is a slow floating-point remainder on numbers past 2^31.
  const high = Math.floor(previous / TWO_32);
  let a = (previous - high * TWO_32) | 0;
  let b = high | 0;
  for (let i = 0; i < op.length; i++) {
    const c = op[i];
    if (typeof c === 'string') {
      a = Math.imul(a ^ TAG_INSERT ^ c.length, 0x01000193);
      for (let j = 0; j < c.length; j++) a = Math.imul(a ^ c.charCodeAt(j), 0x01000193);
    } else {
      const n = c as number;
      // Retains and deletes differ by sign, which `n | 0` keeps; lengths past 2^31 add their high part.
      a = Math.imul(a ^ (n | 0), 0x01000193);
      if (n >= TWO_31 || n <= -TWO_31) a = Math.imul(a ^ Math.floor(n / TWO_32), 0x01000193);
    }
    b = Math.imul(b ^ a, 0x5bd1e995) ^ (b >>> 13);
  }
  a = fmix(a ^ op.length);
  b = fmix(b ^ a);
  return (b >>> 11) * TWO_32 + (a >>> 0);
}

/** True if `value` can be a checksum (a non-negative safe integer). */
export function isChecksum(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
