/**
 * Prometheus metrics for an Otter server, on prom-client. The only file that imports it.
 * Each server gets its own registry, so several servers in one process do not collide.
 */
import type * as PromClient from 'prom-client';
import { requireOptional } from './optional-package.js';
import type { FanoutTelemetry } from './redis-fanout.js';
import type { Telemetry } from './telemetry.js';

// Loaded, not imported, so that a missing prom-client (an optional peer) is named clearly.
const { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } = requireOptional<typeof PromClient>(
  'prom-client',
  'otter/server (its Prometheus metrics)',
);
type Counter<T extends string = string> = PromClient.Counter<T>;
type Histogram<T extends string = string> = PromClient.Histogram<T>;

/** Live values the metrics read when scraped. */
export interface MetricsSources {
  /** Open WebSocket connections. */
  connections(): number;
  /** Documents open on at least one connection. */
  openDocuments(): number;
  /** Documents loaded in the sequencer's memory. */
  loadedDocuments(): number;
  /** Bytes of op history those documents hold in memory (bounded by `historyMemoryBytes`). */
  historyBytes(): number;
  /** Whether the store can be written, as `/readyz` says (the `otter_store_ready` gauge, if given). */
  storeReady?(): boolean;
}

/** A {@link Telemetry} that feeds Prometheus metrics, plus the text exposition. */
export class Metrics implements Telemetry, FanoutTelemetry {
  /** The registry holding every Otter metric (and Node's default process metrics). */
  readonly registry = new Registry();
  private readonly applied: Counter;
  private readonly rejected: Counter<'code'>;
  private readonly depth: Histogram;
  private readonly latency: Histogram;
  private readonly frames: Counter;
  private readonly bytes: Counter;
  private readonly resyncs: Counter;
  private readonly lost: Counter;
  private readonly documentsLost: Counter;
  private readonly divergences: Counter;
  private readonly drops: Counter;
  private readonly storeWriteFailures: Counter<'source'>;
  private readonly corrupt: Counter;
  private readonly accepted: Counter;
  private readonly revoked: Counter<'access'>;
  private readonly recheckFailures: Counter;
  private readonly conflicts: Counter;
  private readonly redisTrips: Histogram<'command'>;
  private readonly redisErrors: Counter<'command'>;
  private readonly remoteOps: Counter;
  private readonly fanoutLag: Histogram;
  private readonly subscriptions: Counter;

  /** Registers every metric; `sources` are read at scrape time. */
  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'otter_connections',
      help: 'Open WebSocket connections',
      registers,
      collect() {
        this.set(sources.connections());
      },
    });
    new Gauge({
      name: 'otter_open_documents',
      help: 'Documents open on at least one connection',
      registers,
      collect() {
        this.set(sources.openDocuments());
      },
    });
    new Gauge({
      name: 'otter_loaded_documents',
      help: 'Documents held in the sequencer memory',
      registers,
      collect() {
        this.set(sources.loadedDocuments());
      },
    });
    new Gauge({
      name: 'otter_history_bytes',
      help: 'Bytes of op history (JSON code units) the loaded documents hold in memory',
      registers,
      collect() {
        this.set(sources.historyBytes());
      },
    });
    if (sources.storeReady !== undefined) {
      const ready = sources.storeReady.bind(sources);
      new Gauge({
        name: 'otter_store_ready',
        help: 'Whether the store can be written (1) or not (0), as /readyz answers',
        registers,
        collect() {
          this.set(ready() ? 1 : 0);
        },
      });
    }
    this.storeWriteFailures = new Counter({
      name: 'otter_store_write_failures_total',
      help: 'Writes to the store that failed, by source (probe: the readiness write probe; append: a commit of ops)',
      labelNames: ['source'],
      registers,
    });
    this.accepted = new Counter({ name: 'otter_connections_total', help: 'WebSocket connections accepted', registers });
    this.corrupt = new Counter({
      name: 'otter_storage_corrupt_total',
      help: 'Times a document was refused because its stored data failed an integrity check',
      registers,
    });
    this.applied = new Counter({ name: 'otter_ops_applied_total', help: 'Operations committed', registers });
    this.rejected = new Counter({
      name: 'otter_ops_rejected_total',
      help: 'Requests refused, by error code',
      labelNames: ['code'],
      registers,
    });
    this.depth = new Histogram({
      name: 'otter_transform_depth',
      help: 'History ops a submitted op was transformed against',
      buckets: [0, 1, 2, 5, 10, 20, 50, 100, 500, 1000],
      registers,
    });
    this.latency = new Histogram({
      name: 'otter_submit_ack_seconds',
      help: 'Time from receiving a submit to acknowledging it',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.frames = new Counter({ name: 'otter_frames_sent_total', help: 'WebSocket frames sent', registers });
    this.bytes = new Counter({ name: 'otter_bytes_sent_total', help: 'Bytes of WebSocket frames sent', registers });
    this.resyncs = new Counter({
      name: 'otter_resyncs_total',
      help: 'Catch-up requests answered with a snapshot',
      registers,
    });
    this.lost = new Counter({
      name: 'otter_lost_states_total',
      help: 'Opens whose client held a state of the document the store lost (different epoch, version past the head, or checksum)',
      registers,
    });
    this.documentsLost = new Counter({
      name: 'otter_documents_lost_total',
      help: 'Times the shared store was found to have lost data of a document this server committed (its clients restore it)',
      registers,
    });
    this.divergences = new Counter({
      name: 'otter_divergences_total',
      help: 'Clients that reported their copy of a document diverged from the server checksum (they resync)',
      registers,
    });
    this.drops = new Counter({
      name: 'otter_slow_consumer_drops_total',
      help: 'Connections closed for reading too slowly',
      registers,
    });
    this.revoked = new Counter({
      name: 'otter_access_revoked_total',
      help: 'Open documents whose access a re-check lowered, by the access left (none: closed, read: read-only)',
      labelNames: ['access'],
      registers,
    });
    this.recheckFailures = new Counter({
      name: 'otter_access_recheck_failures_total',
      help: 'Re-checks of an open document access that failed (authorize threw or timed out); the access was kept',
      registers,
    });
    this.conflicts = new Counter({
      name: 'otter_append_conflicts_total',
      help: 'Appends refused because another writer moved the head first (the batch is retried after a reload)',
      registers,
    });
    this.redisTrips = new Histogram({
      name: 'otter_redis_round_trip_seconds',
      help: 'Redis round trips of the store, by store command',
      labelNames: ['command'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
      registers,
    });
    this.redisErrors = new Counter({
      name: 'otter_redis_errors_total',
      help: 'Redis round trips of the store that failed, by store command',
      labelNames: ['command'],
      registers,
    });
    this.remoteOps = new Counter({
      name: 'otter_fanout_ops_total',
      help: 'Ops committed by other servers and published to this server connections',
      registers,
    });
    this.fanoutLag = new Histogram({
      name: 'otter_fanout_lag_seconds',
      help: 'Time from another server append (by its clock) to publishing its ops here',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.subscriptions = new Counter({
      name: 'otter_fanout_subscriptions_total',
      help: 'Times the change-hint subscription was established (the first time, and after each lost connection)',
      registers,
    });
  }

  /** An append lost a race to another writer (see `SequencerOptions.conflictRetries`). */
  appendConflicted(): void {
    this.conflicts.inc();
  }

  /** One Redis round trip of the store: its command, how long it took, whether it failed. */
  redisRoundTrip(command: string, ms: number, ok: boolean): void {
    this.redisTrips.observe({ command }, ms / 1000);
    if (!ok) this.redisErrors.inc({ command });
  }

  /** @inheritdoc */
  remoteOpsPublished(ops: number, lagMs: number | undefined): void {
    this.remoteOps.inc(ops);
    if (lagMs !== undefined) this.fanoutLag.observe(lagMs / 1000);
  }

  /** @inheritdoc */
  subscribed(): void {
    this.subscriptions.inc();
  }

  /** @inheritdoc */
  connectionOpened(): void {
    this.accepted.inc();
  }

  /** @inheritdoc */
  opApplied(depth: number, seconds: number): void {
    this.applied.inc();
    this.depth.observe(depth);
    this.latency.observe(seconds);
  }

  /** @inheritdoc */
  opRejected(code: string): void {
    this.rejected.inc({ code });
  }

  /** @inheritdoc */
  frameSent(bytes: number): void {
    this.frames.inc();
    this.bytes.inc(bytes);
  }

  /** @inheritdoc */
  resync(): void {
    this.resyncs.inc();
  }

  /** @inheritdoc */
  lostState(): void {
    this.lost.inc();
  }

  /** @inheritdoc */
  documentLost(): void {
    this.documentsLost.inc();
  }

  /** @inheritdoc */
  diverged(): void {
    this.divergences.inc();
  }

  /** @inheritdoc */
  slowConsumerDropped(): void {
    this.drops.inc();
  }

  /** @inheritdoc */
  storageCorrupt(): void {
    this.corrupt.inc();
  }

  /** @inheritdoc */
  accessRevoked(access: 'none' | 'read'): void {
    this.revoked.inc({ access });
  }

  /** @inheritdoc */
  recheckFailed(): void {
    this.recheckFailures.inc();
  }

  /** A write to the store failed (see `readiness.ts`). */
  storeWriteFailed(source: 'probe' | 'append'): void {
    this.storeWriteFailures.inc({ source });
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The Content-Type of {@link text}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
