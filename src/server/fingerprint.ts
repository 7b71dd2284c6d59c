/**
 * A 64-bit non-cryptographic fingerprint of a submission (base version and op), used to tell
 * a true resubmission from a reused sequence number once the original op is no longer in
 * memory. Two FNV-1a passes with different offset bases over `${baseVersion}:${JSON.stringify(op)}`;
 * collisions only matter against the same client's previous op. Fingerprints are stored with
 * client marks, so this definition must not change. It runs once per client per committed
 * batch (when marks are stored), not per op.
 */
import type { Operation } from '../ot/index.js';

/** Fingerprint of `op` submitted at `baseVersion`: 16 hex digits; equal inputs give equal strings. */
export function fingerprint(baseVersion: number, op: Operation): string {
  const text = `${baseVersion}:${JSON.stringify(op)}`;
  let h1 = 0x811c9dc5;
  let h2 = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x01000193) ^ (h1 >>> 15);
  }
  return (h1 >>> 0).toString(16).padStart(8, '0') + (h2 >>> 0).toString(16).padStart(8, '0');
}
