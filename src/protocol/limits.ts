/**
 * The size limits of the wire contract, shared by the server that enforces them and the client
 * that stays under them: how an op is measured against `maxOpLength`, the limits a client
 * assumes before a server announced its own, and their validation.
 */
import type { Operation } from '../ot/index.js';
import type { ServerLimits } from './messages.js';

/**
 * The limits assumed before a server has announced its own (in `welcome`): 256 KiB frames and
 * ops of 256 Ki. Conservative: servers accept 1 MiB of each by default.
 */
export const DEFAULT_LIMITS: ServerLimits = Object.freeze({ maxPayload: 256 * 1024, maxOpLength: 256 * 1024 });

/** Returns `limits` if it holds two positive safe integers; throws RangeError naming the bad one. */
export function checkLimits(limits: ServerLimits): ServerLimits {
  for (const key of ['maxPayload', 'maxOpLength'] as const) {
    const value = limits[key];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`Otter: limits.${key} must be a positive safe integer, got ${String(value)}`);
    }
  }
  return limits;
}

/**
 * The measure `maxOpLength` limits: an op's components plus its inserted UTF-16 code units.
 * O(components).
 */
export function opLength(op: Operation): number {
  let n = op.length;
  for (const c of op) if (typeof c === 'string') n += c.length;
  return n;
}
