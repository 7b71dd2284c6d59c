/**
 * A token bucket: `rate` tokens per second refill up to `burst`; a take that finds too few
 * tokens is refused and takes nothing. A charge always takes its tokens and may leave the
 * bucket in debt (below zero), which the refill pays back first. Time comes from the caller,
 * so it is deterministic.
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
    this.refill(now);
    if (n > this.tokens) return false;
    this.tokens -= n;
    return true;
  }

  /** Takes `n` tokens at time `now` (ms) whatever is left: the bucket may go into debt. */
  charge(n: number, now: number): void {
    this.refill(now);
    this.tokens -= n;
  }

  /** Ms from `now` until the bucket is out of debt (0 if it is not in debt). */
  debt(now: number): number {
    this.refill(now);
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
  }
}
