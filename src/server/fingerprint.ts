/**
 * A 64-bit non-cryptographic fingerprint of a submission (base version and op), used to tell
 * a true resubmission from a reused sequence number. Two FNV-1a passes with different offset
 * bases over the op's JSON; collisions only matter against the same client's previous op.
 *
 * Fingerprints are stored (client marks), so the definition is fixed: the hash of the string
 * `${baseVersion}:${JSON.stringify(op)}`. It is computed without building that string when
 * every inserted text is plain (JSON.stringify copies it verbatim between quotes); otherwise
 * from the string itself.
 */
import type { Operation } from '../ot/index.js';

const OFFSET_1 = 0x811c9dc5;
const OFFSET_2 = 0x050c5d1f;
const PRIME = 0x01000193;

/** Two hex digits per byte value: Number#toString(16) costs several hundred ns a call. */
const HEX_BYTE = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/** The two hashes as 16 lowercase hex digits (each zero-padded to 8). */
function hex(h1: number, h2: number): string {
  const t = HEX_BYTE;
  return (
    (t[h1 >>> 24] as string) +
    t[(h1 >>> 16) & 0xff] +
    t[(h1 >>> 8) & 0xff] +
    t[h1 & 0xff] +
    t[h2 >>> 24] +
    t[(h2 >>> 16) & 0xff] +
    t[(h2 >>> 8) & 0xff] +
    t[h2 & 0xff]
  );
}

/** The definition: hashes the JSON text. */
function fingerprintOfText(baseVersion: number, op: Operation): string {
  const text = `${baseVersion}:${JSON.stringify(op)}`;
  let h1 = OFFSET_1;
  let h2 = OFFSET_2;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, PRIME);
    h2 = Math.imul(h2 ^ c, PRIME) ^ (h1 >>> 15);
  }
  return hex(h1, h2);
}

/** True if JSON.stringify(text) is `"` + text + `"`: no quote, backslash, control or surrogate. */
function isPlain(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return false;
  }
  return true;
}

/** Fingerprint of `op` submitted at `baseVersion`; equal inputs give equal strings. */
export function fingerprint(baseVersion: number, op: Operation): string {
  if (!Array.isArray(op)) return fingerprintOfText(baseVersion, op);
  for (let i = 0; i < op.length; i++) {
    const c: unknown = op[i];
    if (typeof c === 'string' ? !isPlain(c) : typeof c !== 'number' || !Number.isFinite(c)) {
      return fingerprintOfText(baseVersion, op);
    }
  }
  let h1 = OFFSET_1;
  let h2 = OFFSET_2;
  // The characters of `${baseVersion}:[c0,c1,…]`, strings quoted, fed as the text would be.
  const prefix = `${baseVersion}:[`;
  for (let i = 0; i < prefix.length; i++) {
    const c = prefix.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, PRIME);
    h2 = Math.imul(h2 ^ c, PRIME) ^ (h1 >>> 15);
  }
  for (let k = 0; k < op.length; k++) {
    if (k > 0) {
      h1 = Math.imul(h1 ^ 0x2c, PRIME); // ','
      h2 = Math.imul(h2 ^ 0x2c, PRIME) ^ (h1 >>> 15);
    }
    const component = op[k] as string | number;
    const quoted = typeof component === 'string';
    const text = quoted ? component : String(component);
    if (quoted) {
      h1 = Math.imul(h1 ^ 0x22, PRIME); // '"'
      h2 = Math.imul(h2 ^ 0x22, PRIME) ^ (h1 >>> 15);
    }
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, PRIME);
      h2 = Math.imul(h2 ^ c, PRIME) ^ (h1 >>> 15);
    }
    if (quoted) {
      h1 = Math.imul(h1 ^ 0x22, PRIME);
      h2 = Math.imul(h2 ^ 0x22, PRIME) ^ (h1 >>> 15);
    }
  }
  h1 = Math.imul(h1 ^ 0x5d, PRIME); // ']'
  h2 = Math.imul(h2 ^ 0x5d, PRIME) ^ (h1 >>> 15);
  return hex(h1, h2);
}
