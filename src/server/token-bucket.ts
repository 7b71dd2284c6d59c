/**
 * A token bucket: `rate` tokens per second refill up to `burst`; a take that finds too few
 * tokens is refused and takes nothing. Time comes from the caller, so it is deterministic.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  /** A full bucket at time `now` (ms). */
  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes `n` tokens at time `now` (ms) if there are enough; returns whether it did. */
  take(n: number, now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    if (n > this.tokens) return false;
    this.tokens -= n;
    return true;
  }
}
