/**
 * Readiness that tells the truth: whether the store can be written right now, which is what
 * `/readyz` answers.
 *
 * A {@link StoreReadiness} judges the store by real writes only:
 * - a probe, {@link Store.ping} (a committed write of a scratch row, which never waits for a
 *   lock), runs at once when started and then `interval` ms after the previous one settled,
 *   on an unref'd timer, so readiness comes back once the store can write, with no traffic;
 *   a probe that has not settled after `probeTimeout` ms counts as failed (and is still
 *   awaited before the next one starts);
 * - every append made through the store {@link StoreReadiness.watch} returns (the sequencer's
 *   store): a failed one marks the store not ready at once, a successful one marks it ready.
 *   A {@link VersionConflictError} is another writer winning a race, not a store that cannot
 *   write: it counts as neither.
 *
 * States: `starting` (no write has been judged yet), `ready`, `failing` (the last write
 * failed: its reason and since when) and `stopped` (shutting down). Only `ready` is ready.
 *
 * Logs, rate-limited so that a store down for hours writes a line per `logInterval` and not
 * one per probe: a failure is logged at error with its reason at once, and then at most one
 * line per `logInterval` while failures go on (each with the failures not logged since the
 * previous line, `suppressed`); the return to ready is logged at warn with how long the store
 * was down (`downMs`) and how many writes failed meanwhile, whenever that failure was logged.
 */
import { type Store, VersionConflictError } from './store.js';
import { type Logger, silentLogger } from './telemetry.js';

/** Where a write that failed or succeeded came from. */
export type WriteSource = 'probe' | 'append';

/** What a {@link StoreReadiness} knows about the store; only `ready` is ready. */
export type ReadinessStatus =
  /** Nothing judged yet: the first probe has not finished. */
  | { readonly state: 'starting' }
  | { readonly state: 'ready' }
  /** The last write failed: `reason` (the store's error code and message), failing since `since` (ms epoch). */
  | { readonly state: 'failing'; readonly reason: string; readonly since: number }
  /** The server is shutting down. */
  | { readonly state: 'stopped' };

/** What a {@link StoreReadiness} reports to metrics. Cheap and never throwing. */
export interface ReadinessTelemetry {
  /** A write to the store failed (a probe, or one of the sequencer's appends). */
  storeWriteFailed(source: WriteSource): void;
  /** An append was refused because another writer moved the document's head first. */
  appendConflicted?(): void;
}

/** Options of {@link StoreReadiness}; every field has a documented default. */
export interface ReadinessOptions {
  /** Ms from the end of one write probe to the start of the next. Default 3,000. */
  interval?: number;
  /** Ms a probe may take before it counts as failed. Default 10,000. */
  probeTimeout?: number;
  /** Least ms between two log lines about failures that go on. Default 30,000. */
  logInterval?: number;
  /** Where failures and recoveries are logged. Default: silent. */
  logger?: Logger;
  /** Counts failed writes. Default: none. */
  telemetry?: ReadinessTelemetry;
}

const STARTING: ReadinessStatus = Object.freeze({ state: 'starting' });
const READY: ReadinessStatus = Object.freeze({ state: 'ready' });
const STOPPED: ReadinessStatus = Object.freeze({ state: 'stopped' });

/**
 * A store error in words for an operator and a client: `CODE: message` when the error carries
 * a string code (as SQLite's do: `SQLITE_FULL: database or disk is full`), else its message.
 * At most 300 characters.
 */
export function describeStoreError(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  const message = e instanceof Error ? e.message : String(e);
  const text = typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

/** The `/readyz` answer for `status`: 200 `ready`, else 503 with the reason. */
export function readinessAnswer(status: ReadinessStatus): { status: 200 | 503; body: string } {
  switch (status.state) {
    case 'ready':
      return { status: 200, body: 'ready\n' };
    case 'starting':
      return { status: 503, body: 'not ready: the first write probe of the store has not finished\n' };
    case 'failing':
      return { status: 503, body: `not ready: the store cannot be written: ${status.reason}\n` };
    case 'stopped':
      return { status: 503, body: 'not ready: shutting down\n' };
  }
}

function msOption(options: ReadinessOptions, name: 'interval' | 'probeTimeout' | 'logInterval', min: number, fallback: number): number {
  const value = options[name] ?? fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`option ${name} must be an integer of at least ${min} ms, got ${String(value)}`);
  }
  return value;
}

/** A run of failed writes: since when, how many, and whether it was logged. */
interface Outage {
  readonly since: number;
  failures: number;
  logged: boolean;
}

/** See the file comment. */
export class StoreReadiness {
  private current: ReadinessStatus = STARTING;
  private readonly interval: number;
  private readonly probeTimeout: number;
  private readonly logInterval: number;
  private readonly logger: Logger;
  private readonly telemetry: ReadinessTelemetry | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> | undefined;
  private started = false;
  private outage: Outage | undefined;
  /** When the last failure line was written. */
  private lastLogged = -Infinity;
  /** Failures not logged since the last failure line. */
  private suppressed = 0;

  /** Judges `store` (probes start with {@link start}); throws RangeError on a bad option. */
  constructor(
    private readonly store: Pick<Store, 'ping'>,
    options: ReadinessOptions = {},
  ) {
    this.interval = msOption(options, 'interval', 1, 3000);
    this.probeTimeout = msOption(options, 'probeTimeout', 1, 10_000);
    this.logInterval = msOption(options, 'logInterval', 0, 30_000);
    this.logger = options.logger ?? silentLogger;
    this.telemetry = options.telemetry;
  }

  /** What is known about the store now. */
  get status(): ReadinessStatus {
    return this.current;
  }

  /** Whether the last judged write succeeded (and the monitor is not stopped). */
  get ready(): boolean {
    return this.current.state === 'ready';
  }

  /** Runs the first probe now and keeps probing every `interval` ms until {@link stop}. */
  start(): void {
    if (this.started || this.current === STOPPED) return;
    this.started = true;
    void this.probe();
  }

  /**
   * Probes the store now (or joins the probe running); resolves once it has settled. Once
   * started, the next probe follows `interval` ms after it.
   */
  probe(): Promise<void> {
    if (this.current === STOPPED) return Promise.resolve();
    if (this.running !== undefined) return this.running;
    clearTimeout(this.timer);
    this.timer = undefined;
    const run = this.runProbe().finally(() => {
      this.running = undefined;
      this.schedule();
    });
    this.running = run;
    return run;
  }

  /** Stops probing for good: the status becomes `stopped`; later results are ignored. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.current = STOPPED;
  }

  /**
   * `store` as seen through this monitor: the same object in every respect, except that the
   * outcome of each `append` is judged as a write (see the file comment). Give it to the
   * sequencer.
   */
  watch<S extends Store>(store: S): S {
    const append: Store['append'] = (...args) =>
      store.append(...args).then(
        () => this.succeeded(),
        (e: unknown) => {
          if (e instanceof VersionConflictError) this.telemetry?.appendConflicted?.();
          else this.failed(e, 'append');
          throw e;
        },
      );
    const bound = new Map<PropertyKey, unknown>();
    return new Proxy(store, {
      get(target, key) {
        if (key === 'append') return append;
        const value: unknown = Reflect.get(target, key, target);
        if (typeof value !== 'function') return value;
        // Methods run on the store itself (its private state), bound once each.
        let fn = bound.get(key);
        if (fn === undefined) bound.set(key, (fn = (value as (...a: unknown[]) => unknown).bind(target)));
        return fn;
      },
    });
  }

  /** Records a write that succeeded: the store is ready (a recovery is logged). */
  succeeded(): void {
    if (this.current === STOPPED) return;
    const outage = this.outage;
    this.outage = undefined;
    this.current = READY;
    if (outage?.logged === true) {
      this.logger.warn({ downMs: Date.now() - outage.since, failures: outage.failures }, 'store writable again: ready');
    }
  }

  /** Records a write that failed with `error`: the store is not ready (logged, rate-limited). */
  failed(error: unknown, source: WriteSource): void {
    if (this.current === STOPPED) return;
    this.telemetry?.storeWriteFailed(source);
    const now = Date.now();
    const reason = describeStoreError(error);
    const outage = (this.outage ??= { since: now, failures: 0, logged: false });
    outage.failures++;
    this.current = { state: 'failing', reason, since: outage.since };
    if (now - this.lastLogged < this.logInterval) {
      this.suppressed++;
      return;
    }
    const fields = { reason, source, failures: outage.failures, downMs: now - outage.since, suppressed: this.suppressed };
    this.logger.error(fields, outage.logged ? 'store still cannot be written: not ready' : 'store cannot be written: not ready');
    outage.logged = true;
    this.lastLogged = now;
    this.suppressed = 0;
  }

  private async runProbe(): Promise<void> {
    let timedOut = false;
    const timeout = setTimeout(() => {
      timedOut = true;
      this.failed(new Error(`the store did not answer a write probe within ${this.probeTimeout} ms`), 'probe');
    }, this.probeTimeout);
    timeout.unref?.();
    try {
      await this.store.ping();
      this.succeeded();
    } catch (e) {
      // A late failure after the timeout was already counted as one.
      if (!timedOut) this.failed(e, 'probe');
    } finally {
      clearTimeout(timeout);
    }
  }

  private schedule(): void {
    if (!this.started || this.current === STOPPED || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.probe();
    }, this.interval);
    this.timer.unref?.();
  }
}
