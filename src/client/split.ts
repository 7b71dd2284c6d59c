/**
 * Cutting operations to the server's size limits, as pure functions.
 *
 * A server announces in `welcome` the largest frame it reads (`maxPayload`, bytes) and the
 * largest op it applies (`maxOpLength`: components plus inserted UTF-16 code units). A frame
 * over the first closes the connection (1009); an op over the second is refused (`too-large`).
 * So the client never sends one: an op over its {@link OpBudget} is cut into several ops that,
 * applied in order, have its effect (see {@link splitOp}).
 *
 * Sizes are measured, not guessed: the JSON text of an insert is counted code unit by code
 * unit as `JSON.stringify` writes it in UTF-8 (1 byte for ASCII, 2 for `"`, `\` and the short
 * escapes, 6 for other control characters, 2 or 3 for the rest of the BMP, 4 for a surrogate
 * pair). Numbers are counted at their widest (17 characters), since a retain's value changes
 * when an op is transformed. A budget keeps 1/8 of each limit as headroom for the growth of an
 * op in flight that is transformed over remote ops and resent.
 */
import { type Component, type Operation, OperationBuilder, baseLength } from '../ot/index.js';
import { opLength } from '../protocol/limits.js';
import type { ServerLimits } from '../protocol/messages.js';

/** How large one submitted op may be. */
export interface OpBudget {
  /** Most components plus inserted code units. */
  readonly maxLength: number;
  /** Most bytes of the op's JSON text (UTF-8), numbers counted at their widest. */
  readonly maxBytes: number;
}

/** No limit: every op fits. */
export const UNLIMITED: OpBudget = Object.freeze({ maxLength: Infinity, maxBytes: Infinity });

/** Bytes of the widest JSON number a component can be (`-9007199254740991`). */
const NUMBER_BYTES = 17;
/** Bytes of a submit frame around its doc id and op: keys, punctuation, v and seq (16 digits each). */
const ENVELOPE_BYTES = 80;

/** The part of a limit kept free for growth under transformation: 1/8. */
function headroom(limit: number): number {
  return Math.ceil(limit / 8);
}

/**
 * The budget for the ops of document `docId` on a server with `limits`: 7/8 of `maxOpLength`,
 * and 7/8 of `maxPayload` less the submit frame around the op (its size depends on the doc id).
 * Never below 1: a budget too small for any real op still lets {@link splitOp} make progress.
 */
export function budgetFor(limits: ServerLimits, docId: string): OpBudget {
  const envelope = ENVELOPE_BYTES + jsonStringBytes(docId, 0, docId.length);
  return {
    maxLength: Math.max(1, limits.maxOpLength - headroom(limits.maxOpLength)),
    maxBytes: Math.max(1, limits.maxPayload - headroom(limits.maxPayload) - envelope),
  };
}

/** Bytes `JSON.stringify` writes in UTF-8 for code unit `c` of a well-formed string. */
function unitBytes(c: number): number {
  if (c < 0x80) {
    if (c >= 0x20) return c === 0x22 || c === 0x5c ? 2 : 1; // `"` and `\` are escaped
    return c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d ? 2 : 6;
  }
  if (c < 0x800) return 2;
  // Each half of a surrogate pair counts 2 (4 bytes for the pair in UTF-8).
  return c >= 0xd800 && c <= 0xdfff ? 2 : 3;
}

/** Bytes of the JSON text of `text.slice(from, to)`, without the quotes. */
function jsonStringBytes(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n += unitBytes(text.charCodeAt(i));
  return n;
}

/**
 * An upper bound of the bytes of `JSON.stringify(op)` in UTF-8: exact for the inserted text,
 * numbers counted at their widest.
 */
export function opBytes(op: Operation): number {
  let n = op.length === 0 ? 2 : 1; // the brackets, less the comma the first component does not need
  for (const c of op) n += 1 + (typeof c === 'string' ? 2 + jsonStringBytes(c, 0, c.length) : NUMBER_BYTES);
  return n;
}

/** True if `op` is within `budget` by both measures. */
export function fits(op: Operation, budget: OpBudget): boolean {
  if (budget.maxLength === Infinity && budget.maxBytes === Infinity) return true;
  return opLength(op) <= budget.maxLength && opBytes(op) <= budget.maxBytes;
}

/** Bytes of a number component with its comma, at its widest. */
export const NUMBER_COST = NUMBER_BYTES + 1;
/** Length and bytes every piece spends on its leading and trailing retains and brackets. */
const PIECE_LENGTH = 2;
const PIECE_BYTES = 2 + 2 * NUMBER_COST;

/**
 * Cuts a valid, canonical op into ops that each fit `budget` and, applied one after the other,
 * have the effect of `op`:
 *
 *   apply(d, op) === splitOp(op, budget).reduce(apply, d)
 *
 * Returns `[op]` (a copy) when it fits. Otherwise the op is walked left to right and its
 * changes are packed greedily into pieces; piece k retains what pieces 1…k-1 produced, makes
 * the next changes, and retains the rest of the original text. A long insert is cut between
 * code points, never inside a surrogate pair; a delete is never cut (it costs the same at any
 * length). Every piece is canonical and changes something. A budget too small for even one
 * code point of an insert or one delete (with the two retains around it) still gets one per
 * piece, so the result is then over the budget: the server will refuse it.
 * Linear in the op's components and inserted code units.
 */
export function splitOp(op: Operation, budget: OpBudget): Component[][] {
  if (fits(op, budget)) return [op.slice()];
  const { maxLength, maxBytes } = budget;
  const pieces: Component[][] = [];
  /** Target length of the part of `op` already walked: what the next piece's first retain keeps. */
  let done = 0;
  /** Base length of the part of `op` not walked yet: what a piece's last retain keeps. */
  let rest = baseLength(op);
  let piece: OperationBuilder | undefined;
  let length = 0;
  let bytes = 0;
  let changes = false;
  const open = (): OperationBuilder => {
    piece = new OperationBuilder().retain(done);
    length = PIECE_LENGTH;
    bytes = PIECE_BYTES;
    changes = false;
    return piece;
  };
  const close = (): void => {
    if (piece !== undefined && changes) pieces.push(piece.retain(rest).build());
    piece = undefined;
  };
  for (const c of op) {
    if (typeof c === 'number' && c > 0) {
      // A retain costs one component inside a piece; between two pieces it costs nothing.
      if (piece !== undefined) {
        if (length + 1 <= maxLength && bytes + NUMBER_COST <= maxBytes) {
          piece.retain(c);
          length += 1;
          bytes += NUMBER_COST;
        } else close();
      }
      done += c;
      rest -= c;
    } else if (typeof c === 'number') {
      if (piece !== undefined && changes && (length + 1 > maxLength || bytes + NUMBER_COST > maxBytes)) close();
      (piece ?? open()).delete(-c);
      length += 1;
      bytes += NUMBER_COST;
      changes = true;
      rest += c;
    } else {
      let from = 0;
      while (from < c.length) {
        const target = piece ?? open();
        // What the piece has room for: the component itself, then its units; quotes and comma.
        const units = maxLength - length - 1;
        const room = maxBytes - bytes - 3;
        let to = from;
        let used = 0;
        while (to < c.length && to - from < units) {
          const b = unitBytes(c.charCodeAt(to));
          if (used + b > room) break;
          used += b;
          to += 1;
        }
        // Never end inside a surrogate pair.
        if (to < c.length && to > from && isHigh(c.charCodeAt(to - 1))) {
          to -= 1;
          used -= 2;
        }
        if (to === from) {
          if (changes) {
            close();
            continue;
          }
          // Not even one code point fits an empty piece: take one anyway, to make progress.
          to = from + (isHigh(c.charCodeAt(from)) ? 2 : 1);
          used = jsonStringBytes(c, from, to);
        }
        target.insert(from === 0 && to === c.length ? c : c.slice(from, to));
        length += 1 + (to - from);
        bytes += 3 + used;
        changes = true;
        done += to - from;
        from = to;
        if (from < c.length) close(); // full: the rest of the insert goes into the next piece
      }
    }
  }
  close();
  return pieces;
}

function isHigh(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/**
 * Cuts `text` into pieces whose JSON string bytes (without quotes, UTF-8) are at most
 * `maxBytes` each, never inside a surrogate pair; at least one code point per piece. The
 * pieces joined are `text`; an empty text is one empty piece. Linear in the text.
 */
export function splitText(text: string, maxBytes: number): string[] {
  const pieces: string[] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const pair = c >= 0xd800 && c <= 0xdbff && i + 1 < text.length;
    const cost = unitBytes(c) + (pair ? unitBytes(text.charCodeAt(i + 1)) : 0);
    if (bytes + cost > maxBytes && i > start) {
      pieces.push(text.slice(start, i));
      start = i;
      bytes = 0;
    }
    bytes += cost;
    if (pair) i++;
  }
  pieces.push(text.slice(start));
  return pieces;
}
