/**
 * The pace at which one connection's messages are taken up, so that the history work they
 * cause stays within the connection's history bucket and the server's.
 *
 * A request that names an old version (a submit's base, an open's catch-up version) makes the
 * server go over the history between that version and the head: read it from the store,
 * rebase over it. The session charges that work ({@link RequestGate.charge}) to the
 * connection's bucket and to the bucket all connections of the server share; either may go
 * into debt. A message is held back:
 * - while the connection's bucket is in debt (every message of the connection);
 * - if it costs history work ({@link GateRules.costly}): while the shared bucket is in debt, or
 *   while another costly request of the connection is being answered (one connection holds at
 *   most one long history read in memory). A cheap edit at the head never waits for other
 *   connections' history work.
 * What is held back waits here, in arrival order (a message never overtakes an earlier one of
 * its connection), and is taken up once the debt is paid back or the request answered. So an
 * expensive request is never refused for its cost (an honest client that rejoins after a long
 * offline spell is slowed, not closed), and the history work of one connection, and of all of
 * them, is bounded over time by the rates, whatever they send and however often they reconnect
(as long as the session counts a request whose cost it cannot tell yet as costly).
 */
import type { TokenBucket } from './token-bucket.js';

/** How a gate tells its messages apart (see {@link RequestGate}). */
export interface GateRules<T> {
  /**
   * Takes one message up (it may {@link RequestGate.charge} the buckets); a request's promise,
   * settled once it is answered, or nothing.
   */
  readonly run: (item: T) => void | Promise<unknown>;
  /** Whether taking `item` up now would cost history work (it then waits for the shared bucket). */
  readonly costly: (item: T) => boolean;
  /**
   * A key under which a waiting message is replaced by a later one (the latest presence of a
   * document wins), or undefined to keep every message.
   */
  readonly coalesce: (item: T) => string | undefined;
}

/** See the file comment. */
export class RequestGate<T> {
  private readonly waiting: T[] = [];
  /** The size of each waiting message, in the same order, and their total. */
  private readonly sizes: number[] = [];
  private waitingBytes = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** A costly request is being answered. */
  private busy = false;

  /**
   * @param own the connection's history bucket (its tokens are versions of history); its
   *   burst is also the most one request is charged;
   * @param shared the bucket of all connections of the server, if any;
   * @param limit most messages waiting at once;
   * @param rules how messages are told apart;
   * @param now the clock, in ms;
   * @param maxBytes most bytes of messages waiting at once (as {@link offer} is told their sizes).
   */
  constructor(
    private readonly own: TokenBucket,
    private readonly shared: TokenBucket | undefined,
    private readonly limit: number,
    private readonly rules: GateRules<T>,
    private readonly now: () => number = Date.now,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * Takes `item` (of `bytes` bytes) up now if nothing waits and the buckets allow it; otherwise
   * queues it behind the others (replacing a waiting one with the same coalescing key, in its
   * place). False, with nothing queued, when `limit` messages wait already or the waiting ones
   * and `item` together would be over `maxBytes`.
   */
  offer(item: T, bytes = 0): boolean {
    if (this.closed) return true;
    if (this.waiting.length === 0 && this.wait(item) === 0) {
      this.take(item);
      return true;
    }
    const key = this.rules.coalesce(item);
    const i = key === undefined ? -1 : this.waiting.findIndex((w) => this.rules.coalesce(w) === key);
    const replaced = i >= 0 ? (this.sizes[i] as number) : 0;
    if (this.waitingBytes - replaced + bytes > this.maxBytes) return false;
    if (i >= 0) {
      this.waiting[i] = item;
      this.sizes[i] = bytes;
      this.waitingBytes += bytes - replaced;
      return true;
    }
    if (this.waiting.length >= this.limit) return false;
    this.waiting.push(item);
    this.sizes.push(bytes);
    this.waitingBytes += bytes;
    this.schedule();
    return true;
  }

  /** Whether a message that passes `test` is waiting. */
  holds(test: (item: T) => boolean): boolean {
    return this.waiting.some(test);
  }

  /**
   * Charges `versions` of history work to both buckets, at most the connection's burst (one
   * request never costs more than a full bucket, so that one long rejoin delays what follows
   * by at most burst / rate seconds).
   */
  charge(versions: number): void {
    if (!(versions > 0)) return;
    const n = Math.min(versions, this.own.burst);
    const now = this.now();
    this.own.charge(n, now);
    this.shared?.charge(n, now);
  }

  /**
   * Charges what a request cost beyond the `charged` versions it was charged when taken up,
   * once its `actual` cost is known (within the same per-request cap).
   */
  topUp(charged: number, actual: number): void {
    const cap = this.own.burst;
    this.charge(Math.min(actual, cap) - Math.min(charged, cap));
  }

  /** Drops what waits and stops the timer (the connection is gone). */
  close(): void {
    this.closed = true;
    this.waiting.length = 0;
    this.sizes.length = 0;
    this.waitingBytes = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Takes `item` up; a costly request keeps the gate busy until its promise settles. */
  private take(item: T): void {
    const costly = this.rules.costly(item);
    const answered = this.rules.run(item);
    if (!costly || answered === undefined) return;
    this.busy = true;
    const done = (): void => {
      this.busy = false;
      this.drain();
    };
    answered.then(done, done);
  }

  /** Ms before `item` may be taken up (0: now; Infinity: once the costly request in flight is answered). */
  private wait(item: T): number {
    const now = this.now();
    const own = this.own.debt(now);
    if (own > 0 || !this.rules.costly(item)) return own;
    if (this.busy) return Number.POSITIVE_INFINITY;
    return this.shared?.debt(now) ?? 0;
  }

  private schedule(): void {
    if (this.timer !== undefined || this.closed || this.waiting.length === 0) return;
    const wait = this.wait(this.waiting[0] as T);
    if (wait === Number.POSITIVE_INFINITY) return; // drained when the request in flight is answered
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.drain();
      },
      Math.max(1, wait),
    );
    this.timer.unref?.();
  }

  private drain(): void {
    while (!this.closed && this.waiting.length > 0 && this.wait(this.waiting[0] as T) === 0) {
      this.waitingBytes -= this.sizes.shift() as number;
      this.take(this.waiting.shift() as T);
    }
    this.schedule();
  }
}
