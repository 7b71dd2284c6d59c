/**
 * Cross-server delivery over a shared {@link RedisStore}: a server learns of the ops other
 * servers commit to the documents it holds, and publishes them to its own connections in
 * version order, none missed and none twice.
 *
 * Every append of a RedisStore publishes a {@link ChangeHint} (document, new head, writer)
 * from its Lua script, on the document's hint channel. A {@link RedisFanout} listens, over a
 * connection of its own, on the channels of the documents its sequencer holds — subscribing as
 * the sequencer starts holding one, before it loads it, and unsubscribing as it unloads it — so
 * a server hears the appends of its own documents only, however many documents the store
 * holds. For each hint from another writer, it asks the sequencer to {@link Sequencer.refresh}
 * the document: the sequencer takes the ops past its
 * committed head, by version, and publishes them through its usual path. The
 * hint of a small append carries its ops, which the sequencer takes if they continue its head
 * (checked as any); otherwise it reads the log. Either way a lost hint loses nothing but time:
 * - Redis pub/sub drops messages while a subscriber is disconnected (a killed connection, a
 *   restarted Redis). Over plain Redis, each time the connection is ready again the fan-out
 *   subscribes anew; on a Cluster, ioredis subscribes the shard channels again itself and says
 *   so (`subscribersReady`). Either way the fan-out then refreshes every document the
 *   sequencer holds, which reads whatever it missed. A document subscribed while it is held is
 *   refreshed once the subscription is made (and {@link SUBSCRIBE_WAIT_MS} after it was asked
 *   for, if not made by then: a shard subscription sent to a node that no longer serves the
 *   slot is never answered), which reads what was committed between its load and then. A
 *   subscription that fails is tried again after {@link RETRY_MS}. ioredis announces
 *   `subscribersReady` having sent its shard subscriptions again, not having seen them made:
 *   so the fan-out then subscribes every held document once more itself (after unsubscribing
 *   it, so that ioredis's list of channels does not grow) and refreshes each once that is made.
 * - Hints for one document may arrive out of order or many at once: refreshes of a document
 *   are queued in its sequencer queue and coalesce, and each reads from the committed head.
 * - A refresh that fails (Redis unreachable) is retried after {@link RETRY_MS} while the
 *   fan-out runs.
 * - A hint carries the epoch it was committed with: a server holding the document under
 *   another epoch reloads it (the Redis lost the document and another server made it anew),
 *   and its sequencer handles the loss (`onStoreLost`).
 * - Every {@link CHECK_INTERVAL_MS} (configurable), the head and epoch Redis records for each
 *   held document are compared with the held ones: a loss nobody commits after, or a hint lost
 *   while the subscription stayed up, is found within that time.
 * Hints from this server's own store are skipped: its sequencer published those ops already.
 * The same connection may also carry the presences relayed between servers
 * (`redis-presence.ts`): each held document's presence channel, subscribed and given up with
 * its hint channel, and the store-wide channel of requests to send every presence again.
 */
import { isPresenceChannel } from './redis-keys.js';
import type { ChangeHint, RedisStore, SubscriberClient } from './redis-store.js';
import { decodeHint } from './redis-store.js';
import type { DocumentWatcher, RefreshNews, Sequencer } from './sequencer.js';
import { type Logger, silentLogger } from './telemetry.js';

/** Ms before a failed refresh or subscription is tried again. */
const RETRY_MS = 1000;

/** Most ms a new subscription of a held document is waited for before the document is read anyway. */
const SUBSCRIBE_WAIT_MS = 1000;

/** Most channels one SUBSCRIBE or UNSUBSCRIBE names. */
const CHANNELS_PER_COMMAND = 10_000;

/**
 * Calls `then` once `promise` resolves, and after `ms` if it has not settled by then (so twice
 * when it resolves late); never after it rejected.
 */
function whenOrAfter(promise: Promise<unknown>, ms: number, then: () => void): void {
  let settled = false;
  const timer = setTimeout(() => {
    if (!settled) then();
  }, ms);
  timer.unref?.();
  promise.then(
    () => {
      settled = true;
      clearTimeout(timer);
      then();
    },
    () => {
      settled = true;
      clearTimeout(timer);
    },
  );
}

/** The default {@link RedisFanoutOptions.checkInterval}. */
export const CHECK_INTERVAL_MS = 2000;

/** What a {@link RedisFanout} reports to metrics. Cheap and never throwing. */
export interface FanoutTelemetry {
  /**
   * `ops` ops that another server committed were published here; `lagMs`: from the writer's
   * append (by its clock) to now, when a hint started the refresh.
   */
  remoteOpsPublished(ops: number, lagMs: number | undefined): void;
  /** The hint subscription was (re)established, and every held document refreshed. */
  subscribed(): void;
}

/** What a {@link RedisFanout} also carries for presence (see `redis-presence.ts`). */
export interface PresenceReceiver {
  /** Takes one message of a presence channel (a document's, or the store-wide one). */
  receive(text: string): void;
  /** `docId` is held from now on: its channels are being subscribed, its messages are taken. */
  listen(docId: string): void;
  /**
   * Called with a document once its channels are subscribed, and without one each time the
   * subscription is (re)established: messages may have been missed.
   */
  resync(docId?: string): void;
  /**
   * Called when a document's channels are given up: what was heard of it is forgotten, and
   * what still arrives of it is ignored until {@link listen}.
   */
  forget(docId: string): void;
}

/** Options of {@link RedisFanout}. */
export interface RedisFanoutOptions {
  /** Also subscribes to the store's presence channel and hands its messages to this. Default: none. */
  presence?: PresenceReceiver;
  /** Where connection trouble and failed refreshes are logged. Default: silent. */
  logger?: Logger;
  /** Counts deliveries and subscriptions. Default: none. */
  telemetry?: FanoutTelemetry;
  /**
   * Every this many ms, the head and epoch Redis records for each held document are compared
   * with the held ones (one HMGET each): a document Redis lost (another epoch, none, or a head
   * behind the committed one) is reloaded, so the loss is found even where nobody commits, and
   * a head ahead of it (a hint lost) is read. 0 turns it off. Default {@link CHECK_INTERVAL_MS}.
   */
  checkInterval?: number;
}

/** See the file comment. */
export class RedisFanout {
  private readonly connection: SubscriberClient;
  private readonly logger: Logger;
  private readonly telemetry: FanoutTelemetry | undefined;
  private readonly presence: PresenceReceiver | undefined;
  private readonly retries = new Map<string, ReturnType<typeof setTimeout>>();
  /** Retries of a failed shard subscription of one document (Cluster). */
  private readonly subscribeRetries = new Map<string, ReturnType<typeof setTimeout>>();
  /** The retry of a failed subscription of every held document (plain Redis). */
  private resubscribeTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private everSubscribed = false;
  /** The documents the sequencer holds: those it held at the start, then as its watcher is told. */
  private readonly docs: Set<string>;
  /**
   * Plain Redis: whether the connection is up and subscribed (or subscribing). A document held
   * from now on subscribes to its channel at once; while false, the next subscription takes
   * every held one. (On a Cluster, ioredis keeps the shard subscriptions across reconnections.)
   */
  private listening = false;
  private readonly unwatch: () => void;
  private readonly checker: ReturnType<typeof setInterval> | undefined;
  private checking = false;

  /**
   * Starts listening at once: opens a connection of its own to `store`'s Redis
   * ({@link RedisStore.subscriber}) and refreshes documents of `sequencer` (whose store must
   * be `store`, or a view of it) as hints arrive. Stop it with {@link close}.
   */
  constructor(
    private readonly store: RedisStore,
    private readonly sequencer: Pick<Sequencer, 'refresh' | 'documents' | 'held' | 'watchDocuments'>,
    options: RedisFanoutOptions = {},
  ) {
    const every = options.checkInterval ?? CHECK_INTERVAL_MS;
    if (!Number.isSafeInteger(every) || every < 0) throw new RangeError(`checkInterval must be a non-negative integer of ms, got ${String(every)}`);
    this.logger = options.logger ?? silentLogger;
    this.telemetry = options.telemetry;
    this.presence = options.presence;
    this.docs = new Set(sequencer.documents());
    this.connection = store.subscriber();
    this.connection.on('message', (channel, message) => this.onMessage(channel, message));
    this.connection.on('smessage', (channel, message) => this.onMessage(channel, message));
    this.connection.on('ready', () => void this.subscribe());
    this.connection.on('subscribersReady', () => {
      if (this.closed) return;
      this.logger.info({}, 'hint shard subscribers (re)connected: subscribing and refreshing every held document');
      for (const docId of this.docs) {
        // On the same connection as ioredis's own, so made once this one is.
        this.channels('unsubscribe', [docId]).catch(() => {});
        this.listen(docId);
      }
      this.presence?.resync();
    });
    this.connection.on('error', (e) => this.logger.warn({ err: e.message }, 'hint subscription: Redis connection error'));
    this.connection.on('close', () => {
      this.listening = false;
      if (!this.closed && this.everSubscribed) this.logger.warn({}, 'hint subscription lost: reconnecting');
    });
    const watcher: DocumentWatcher = {
      held: (docId) => {
        this.docs.add(docId);
        this.presence?.listen(docId);
        this.listen(docId);
      },
      dropped: (docId) => {
        this.docs.delete(docId);
        this.unlisten(docId);
      },
    };
    this.unwatch = sequencer.watchDocuments(watcher);
    for (const docId of this.docs) this.presence?.listen(docId);
    // On a Cluster, each held document subscribes once; ioredis keeps it subscribed from then on.
    if (store.shardedChannels) for (const docId of this.docs) this.listen(docId);
    if (this.connection.status === 'ready') void this.subscribe();
    if (every > 0) {
      this.checker = setInterval(() => void this.check(), every);
      this.checker.unref?.();
    }
  }

  /**
   * Compares each held document's epoch, committed head and its checksum with what Redis records (see
   * {@link RedisFanoutOptions.checkInterval}); one round at a time. Failures are left to the
   * next round (Redis down is reported by the readiness probe).
   */
  private async check(): Promise<void> {
    if (this.closed || this.checking) return;
    this.checking = true;
    try {
      await Promise.all(
        [...this.docs].map(async (docId) => {
          const held = this.sequencer.held(docId);
          if (held === undefined) return;
          const stored = await this.store.stamp(docId).catch(() => undefined);
          if (stored === undefined || this.closed) return;
          // Never written, its pinned epoch expired while held here: pinned again as held (or,
          // if another server pinned one meanwhile, that one is taken). Nothing was lost.
          if (stored.epoch === undefined && stored.head === 0 && held.committed === 0) {
            const pinned = await this.store.pin(docId, held.epoch).catch(() => undefined);
            if (pinned !== undefined && pinned !== held.epoch && !this.closed) this.refresh(docId, { epoch: pinned, storedHead: 0 });
            return;
          }
          // No epoch stored: the document is gone from Redis ('' is an epoch no document has).
          // A head below the one held (read first) means Redis went back in time: heads never fall.
          // The held head with another checksum: it went back, and another writer wrote up to it again.
          const rewritten = stored.head === held.committed && stored.checksum !== undefined && stored.checksum !== held.checksum;
          if (stored.epoch !== held.epoch || stored.head < held.committed || rewritten) {
            this.refresh(docId, { epoch: stored.epoch ?? '', storedHead: stored.head, storedChecksum: stored.checksum });
          }
          else if (stored.head > held.committed) this.refresh(docId, undefined);
        }),
      );
    } finally {
      this.checking = false;
    }
  }

  /** Stops listening, cancels pending retries and closes the connection. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatch();
    if (this.checker !== undefined) clearInterval(this.checker);
    clearTimeout(this.resubscribeTimer);
    for (const t of [...this.retries.values(), ...this.subscribeRetries.values()]) clearTimeout(t);
    this.retries.clear();
    this.subscribeRetries.clear();
    this.connection.disconnect();
  }

  /**
   * On each (re)connection: subscribes to the presence channel and, over plain Redis, to the
   * hint channel of every held document (a Cluster's shard subscriptions are ioredis's to
   * restore, see `subscribersReady`), then refreshes every held document: whatever was
   * committed while no hint could arrive is read now, and from here on every commit sends one.
   * A failure is retried after {@link RETRY_MS} (or on the next `ready`, if the connection
   * dropped).
   */
  private async subscribe(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.resubscribeTimer);
    this.resubscribeTimer = undefined;
    // Documents held from now on subscribe by themselves, after these (commands keep their order).
    this.listening = true;
    try {
      if (this.presence !== undefined) await this.connection.subscribe(this.store.presence);
      if (!this.store.shardedChannels) await this.channels('subscribe', [...this.docs]);
    } catch (e) {
      this.logger.warn({ err: String(e) }, 'hint subscription failed: retrying');
      this.resubscribeLater();
      return;
    }
    if (this.everSubscribed) this.logger.info({}, 'hint subscription restored: refreshing every held document');
    this.everSubscribed = true;
    this.telemetry?.subscribed();
    this.refreshAll();
    this.presence?.resync();
  }

  /** Plain Redis: subscribes every held document again after {@link RETRY_MS}, if the connection is up then. */
  private resubscribeLater(): void {
    this.listening = false;
    if (this.closed || this.resubscribeTimer !== undefined) return;
    this.resubscribeTimer = setTimeout(() => {
      this.resubscribeTimer = undefined;
      // A connection that dropped subscribes again on its `ready`.
      if (this.connection.status === 'ready') void this.subscribe();
    }, RETRY_MS);
    this.resubscribeTimer.unref?.();
  }

  /** Reads every held document past its committed head. */
  private refreshAll(): void {
    for (const docId of this.docs) this.refresh(docId, undefined);
  }

  /**
   * Subscribes to, or unsubscribes from, the channels of `docIds` — hints, and presences when
   * this fan-out carries them: over plain Redis in commands of at most
   * {@link CHANNELS_PER_COMMAND} channels; on a Cluster one command per channel (shard channels
   * of different slots may not share one).
   */
  private async channels(action: 'subscribe' | 'unsubscribe', docIds: readonly string[]): Promise<void> {
    const channels = docIds.flatMap((d) =>
      this.presence === undefined ? [this.store.hintChannel(d)] : [this.store.hintChannel(d), this.store.presenceChannel(d)],
    );
    const c = this.connection;
    if (this.store.shardedChannels) {
      await Promise.all(channels.map((ch) => (action === 'subscribe' ? c.ssubscribe(ch) : c.sunsubscribe(ch))));
      return;
    }
    const commands: Promise<unknown>[] = [];
    for (let i = 0; i < channels.length; i += CHANNELS_PER_COMMAND) {
      const some = channels.slice(i, i + CHANNELS_PER_COMMAND);
      // In bounded pieces: spreading hundreds of thousands of arguments overflows the stack.
      commands.push(action === 'subscribe' ? c.subscribe(...some) : c.unsubscribe(...some));
    }
    await Promise.all(commands);
  }

  /**
   * `docId` is now held: subscribes to its channels, then refreshes it (reading what was
   * committed before the subscription took effect) and asks for its presences — once the
   * subscription is made, and {@link SUBSCRIBE_WAIT_MS} after it was asked for if it is not
   * made by then. Over plain Redis while the connection is not subscribed, the next
   * {@link subscribe} does both.
   */
  private listen(docId: string): void {
    if (this.closed) return;
    const sharded = this.store.shardedChannels;
    if (!sharded && !this.listening) return;
    const subscribed = this.channels('subscribe', [docId]);
    subscribed.catch((e: unknown) => {
      if (this.closed || !this.docs.has(docId)) return;
      this.logger.warn({ doc: docId, err: String(e) }, 'hint subscription of a document failed: retrying');
      if (!sharded) this.resubscribeLater();
      else if (!this.subscribeRetries.has(docId)) {
        const timer = setTimeout(() => {
          this.subscribeRetries.delete(docId);
          if (this.docs.has(docId)) this.listen(docId);
        }, RETRY_MS);
        timer.unref?.();
        this.subscribeRetries.set(docId, timer);
      }
    });
    whenOrAfter(subscribed, SUBSCRIBE_WAIT_MS, () => {
      if (this.closed || !this.docs.has(docId)) return;
      this.refresh(docId, undefined);
      this.presence?.resync(docId);
    });
  }

  /** `docId` was unloaded: no more hints, presences or retries for it. */
  private unlisten(docId: string): void {
    for (const timers of [this.retries, this.subscribeRetries]) {
      clearTimeout(timers.get(docId));
      timers.delete(docId);
    }
    if (this.closed) return;
    this.presence?.forget(docId);
    // Sent even while the connection is down: it waits in the offline queue, behind any
    // subscription ioredis sends again on reconnecting, so the document does not stay subscribed.
    this.channels('unsubscribe', [docId]).catch(() => {});
  }

  private onMessage(channel: string, message: string): void {
    if (this.closed) return;
    if (channel === this.store.presence || isPresenceChannel(channel)) {
      this.presence?.receive(message);
      return;
    }
    const hint = decodeHint(message, this.store.origin);
    // This server's own hints are skipped before anything else is computed for them.
    if (hint?.origin === this.store.origin) return;
    // Taken only on its own document's channel.
    if (hint === undefined || channel !== this.store.hintChannel(hint.docId)) {
      this.logger.warn({ channel }, 'a message on a hint channel is not a hint of its document: ignored');
      return;
    }
    this.refresh(hint.docId, hint);
  }

  /**
   * Refreshes `docId` (for `hint`, if one started it: its epoch, and its time and ops if it has
   * them; or for the check, the epoch, head and head checksum Redis records), retrying later if
   * that fails.
   */
  private refresh(
    docId: string,
    hint: (Pick<ChangeHint, 'epoch'> & Partial<Pick<ChangeHint, 'at' | 'ops'>> & Pick<RefreshNews, 'storedHead' | 'storedChecksum'>) | undefined,
  ): void {
    const retry = this.retries.get(docId);
    if (retry !== undefined) {
      clearTimeout(retry);
      this.retries.delete(docId);
    }
    this.sequencer.refresh(docId, hint ?? {}).then(
      (ops) => {
        if (ops > 0) this.telemetry?.remoteOpsPublished(ops, hint?.at === undefined ? undefined : Math.max(0, Date.now() - hint.at));
      },
      (e: unknown) => {
        if (this.closed) return;
        this.logger.warn({ doc: docId, err: String(e) }, 'reading ops committed elsewhere failed: retrying');
        if (this.retries.has(docId)) return;
        const timer = setTimeout(() => {
          this.retries.delete(docId);
          if (!this.closed) this.refresh(docId, undefined);
        }, RETRY_MS);
        timer.unref?.();
        this.retries.set(docId, timer);
      },
    );
  }
}
