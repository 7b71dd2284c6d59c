/**
 * The presence pace of the wire contract, one home for both sides: a client sends its
 * selection, and a server relays a connection's, at most once per interval, the latest one
 * winning. Browser-safe (timers and `Date.now` only).
 */

/**
 * "At most once per `interval` ms, the latest wins": {@link request} runs `flush` at once when
 * the last flush that sent something was at least `interval` ms ago, else once that much time
 * has passed; requests made meanwhile fold into that one run. `flush` reads the latest state
 * itself and says whether it sent anything (a flush that sent nothing does not start an
 * interval).
 */
export class Throttle {
  private last = Number.NEGATIVE_INFINITY;
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** @param interval ms between two flushes that send; @param flush sends the latest state, if any. */
  constructor(
    private readonly interval: number,
    private readonly flush: () => boolean,
  ) {}

  /** Asks for a flush: now, or at the end of the current interval (see the class comment). */
  request(): void {
    if (this.timer !== undefined) return;
    const wait = this.last + this.interval - Date.now();
    if (wait <= 0) {
      this.run();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.run();
    }, wait);
  }

  /** Drops a pending flush (the state it would send is gone). */
  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private run(): void {
    if (this.flush()) this.last = Date.now();
  }
}
