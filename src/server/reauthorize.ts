/**
 * Revocation: `authorize` asked again for documents that are already open, so that a user who
 * lost access stops receiving (or stops editing) without having to re-open.
 *
 * - **Periodically**: every (connection, document) pair open at the start of a round is
 *   re-checked once during that round, which lasts `interval` ms. The pairs are spread evenly
 *   over up to {@link SLICES} steps of the round, so that thousands of sessions do not call
 *   `authorize` in the same tick. A pair opened during a round waits for the next one: a
 *   revocation reaches a connection within two intervals at most, usually within one.
 * - **On demand**: {@link Reauthorizer.revoke} re-checks a user's connections at once (every
 *   document, or one) and resolves once every answer is in (or timed out).
 *
 * What a re-check does with the answer, and how a throwing or hung `authorize` is handled, is
 * {@link Session.recheck}.
 */
import type { Revoked, Session } from './session.js';

/** Most steps a round is spread over. */
export const SLICES = 100;
/** Shortest step between two batches of re-checks, in ms. */
const MIN_STEP = 10;
/** Longest timer Node accepts. */
const MAX_TIMER = 2 ** 31 - 1;

/** Options of a {@link Reauthorizer}. */
export interface ReauthorizeOptions {
  /** Ms per round of periodic re-checks; 0 never re-checks periodically. */
  readonly interval: number;
  /** Ms a re-check waits for `authorize` before it keeps the current access. */
  readonly timeout: number;
}

/** See the file comment. */
export class Reauthorizer {
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  /** Re-checks taken per step in this round. */
  private perStep = 0;
  private queue: Array<readonly [Session, string]> = [];
  private next = 0;
  private roundStart = Number.NEGATIVE_INFINITY;

  /** @param sessions every open session, read at the start of each round. */
  constructor(
    private readonly sessions: () => Iterable<Session>,
    private readonly options: ReauthorizeOptions,
  ) {
    const { interval, timeout } = options;
    if (typeof interval !== 'number' || !(interval >= 0) || interval > MAX_TIMER) {
      throw new RangeError(`reauthorizeInterval must be 0 (never) or a number of ms up to ${MAX_TIMER}, got ${String(interval)}`);
    }
    if (typeof timeout !== 'number' || !(timeout > 0) || timeout > MAX_TIMER) {
      throw new RangeError(`reauthorizeTimeout must be a positive number of ms up to ${MAX_TIMER}, got ${String(timeout)}`);
    }
    if (interval > 0) {
      this.timer = setInterval(() => this.step(Date.now()), this.stepMs);
      this.timer.unref?.();
    }
  }

  /** Ms between two steps of a round. */
  get stepMs(): number {
    return Math.max(MIN_STEP, this.options.interval / SLICES);
  }

  /**
   * One step: starts a new round when the last one is done and its interval has passed, then
   * re-checks this step's share of the round's pairs (without waiting for the answers).
   */
  step(now: number): void {
    if (this.next >= this.queue.length) {
      this.queue = [];
      this.next = 0;
      if (now < this.roundStart + this.options.interval) return;
      this.roundStart = now;
      for (const session of this.sessions()) {
        for (const docId of session.documentIds) this.queue.push([session, docId]);
      }
      const steps = Math.max(1, Math.floor(this.options.interval / this.stepMs));
      this.perStep = Math.ceil(this.queue.length / steps);
    }
    const end = Math.min(this.queue.length, this.next + this.perStep);
    for (; this.next < end; this.next++) {
      const [session, docId] = this.queue[this.next] as readonly [Session, string];
      void session.recheck(docId, this.options.timeout, false);
    }
  }

  /**
   * Re-checks now every document `user` has open (or only `docId`) on every connection, and
   * resolves with how many were closed or made read-only once every answer is in. A user of
   * undefined means the anonymous connections.
   */
  async revoke(user: string | undefined, docId?: string): Promise<number> {
    if (user !== undefined && typeof user !== 'string') throw new TypeError('revoke: user must be a string or undefined');
    if (docId !== undefined && typeof docId !== 'string') throw new TypeError('revoke: docId must be a string or undefined');
    const checks: Array<Promise<Revoked | undefined>> = [];
    for (const session of this.sessions()) {
      if (session.user !== user) continue;
      session.revoking();
      for (const id of session.documentIds) {
        if (docId === undefined || id === docId) checks.push(session.recheck(id, this.options.timeout, true));
      }
    }
    const outcomes = await Promise.all(checks);
    return outcomes.filter((o) => o !== undefined).length;
  }

  /** Stops the periodic re-checks. */
  stop(): void {
    clearInterval(this.timer);
    this.queue = [];
    this.next = 0;
  }
}
