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
 * definition must never change.
 */
import type { Operation } from '../ot/index.js';

/** The checksum of version 0, the empty document. */
export const EMPTY_CHECKSUM = 0;

const TWO_32 = 0x1_0000_0000;
const TAG_RETAIN = 0x1b873593;
const TAG_INSERT = 0x7fb5d329;
const TAG_DELETE = 0x6a09e667;

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
 * Deterministic and pure; O(components + inserted code units).
 */
export function chainChecksum(previous: number, op: Operation): number {
  let a = previous % TWO_32 | 0;
  let b = Math.floor(previous / TWO_32) | 0;
  for (let i = 0; i < op.length; i++) {
    const c = op[i];
    if (typeof c === 'string') {
      a = Math.imul(a ^ TAG_INSERT ^ c.length, 0x01000193);
      b = Math.imul(b ^ TAG_INSERT, 0x5bd1e995) ^ (a >>> 15);
      for (let j = 0; j < c.length; j++) {
        const u = c.charCodeAt(j);
        a = Math.imul(a ^ u, 0x01000193);
        b = Math.imul(b ^ u, 0x5bd1e995) ^ (a >>> 15);
      }
    } else {
      const n = c as number;
      const tag = n > 0 ? TAG_RETAIN : TAG_DELETE;
      const low = n % TWO_32 | 0;
      const high = Math.floor(Math.abs(n) / TWO_32) | 0;
      a = Math.imul(a ^ tag ^ low, 0x01000193) ^ high;
      b = Math.imul(b ^ tag ^ high, 0x5bd1e995) ^ (a >>> 15) ^ low;
    }
  }
  a = fmix(a ^ op.length);
  b = fmix(b ^ a);
  return (b >>> 11) * TWO_32 + (a >>> 0);
}

/** True if `value` can be a checksum (a non-negative safe integer). */
export function isChecksum(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
