/**
 * A {@link Store} in Redis, through ioredis (an optional peer of `otter`), for servers that
 * share their documents: several Otter processes may write to one RedisStore's data at once,
 * and each append still lands only on the head its writer read.
 *
 * Layout: see `redis-keys.ts` — every key of a document under one `{…}` hash tag (so one
 * Redis Cluster slot), derived from the document id by an injective encoding, behind a
 * configurable prefix. Each operation that must see or change several keys at once is one Lua
 * script (`redis-scripts.ts`), run by EVALSHA: an append checks the head and the epoch and
 * writes its ops, marks, recovery and new head atomically, or writes nothing.
 *
 * Epochs: a document stores its epoch when it is first loaded, or with its first append if
 * that comes first. A document loaded before it has one gets the store's instance id, kept in
 * Redis (`Pinstance`) and made anew when it is missing (a new or emptied Redis), stored with
 * it at once: so every server that loads the document agrees on its epoch, even if the
 * instance id changes before the document is first written (another document's first append
 * retires it, see below), and ops one server appends are never taken by another for ops of
 * another epoch. Such a pinned epoch expires after {@link PINNED_EPOCH_MS} unless the document
 * is written by then, so that reading ids nobody writes does not fill Redis with keys. Before
 * a document first stores an epoch that is the current instance id, that
 * id is replaced by a new one: so the instance id is never an epoch some document stored, and
 * a document whose keys vanished (FLUSHALL, a deleted prefix, eviction) reloads with an epoch
 * other than its old one, which tells clients that it lost its data.
 *
 * Integrity: what SqliteStore holds, this holds too — every op's chained checksum and the
 * recorded head (checked by `integrity.ts` on load), and each snapshot's hash, checked here on
 * every read; stored data that does not parse, or ops stored past the head, are a
 * {@link StorageCorruptError}.
 *
 * Change hints: every append also publishes, from its script, a hint on the document's own
 * channel (`P{E}:hints`): the document, its new head, the writing store's
 * {@link RedisStore.origin}, the writer's clock, the document's epoch, and the appended ops when
 * they are small (at most {@link CARRIED_OPS_BYTES}). Servers sharing the data subscribe, through
 * `redis-fanout.ts`, to the channels of the documents they hold, and only to those: a server
 * receives the hints of its own documents, not every append of the whole store. On a Cluster
 * the channel is a shard channel (SPUBLISH, SSUBSCRIBE) in the document's slot, so a hint
 * travels only within the shard that holds the document. A hint is only a hint (pub/sub drops
 * messages while a subscriber is disconnected): the ops it carries are taken only where they
 * continue what a server holds, and the log is read otherwise.
 *
 * Durability is Redis's: an append resolves once Redis has run it, which survives a Redis
 * restart only as far as its persistence is configured (AOF with `appendfsync always` keeps
 * every acknowledged append).
 */
import { randomUUID } from 'node:crypto';
import type { Component } from '../ot/index.js';
import { StorageCorruptError, snapshotHash } from './integrity.js';
import { COMMAND_TIMEOUT_MS, type MadeClient, type RedisTarget, connect, isRedisTarget, withinDeadline } from './redis-connection.js';
import { type DocumentKeys, type StoreKeys, checkPrefix, documentKeys, storeKeys } from './redis-keys.js';
import {
  APPEND,
  CARRIED_OPS_BYTES,
  EXISTS,
  GET_SNAPSHOT,
  HEARTBEAT,
  INSTANCE,
  LOAD,
  MARKS,
  PIN,
  PUBLISH,
  PUT_SNAPSHOT,
  RETIRE,
  type ScriptClient,
  TRIM,
} from './redis-scripts.js';
import {
  type AppendContext,
  type ClientMark,
  EMPTY_SNAPSHOT,
  type LoadedDocument,
  type OpRecord,
  type Recovery,
  type Snapshot,
  type Store,
  VersionConflictError,
  appendConflict,
} from './store.js';

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /**
   * Put before every key, so that several stores share one Redis apart. May hold no `{` or
   * `}`. Default `otter:`.
   */
  prefix?: string;
}

/**
 * The commands a RedisStore sends: every ioredis client (`Redis` or `Cluster`) has them. Typed
 * here rather than as ioredis's classes, so that the declarations of `otter/server` need no
 * ioredis where it is not installed.
 */
export interface RedisClient extends ScriptClient {
  hmget(key: string, ...fields: string[]): Promise<Array<string | null>>;
  zrangebyscore(key: string, min: string, max: string): Promise<string[]>;
  set(key: string, value: string): Promise<unknown>;
  quit(): Promise<unknown>;
  /**
   * A new connection with the same settings (ioredis has it): what {@link RedisStore.subscriber}
   * uses. A `Redis` takes `(options)`, a `Cluster` `(startupNodes, options)`.
   */
  duplicate?(...args: never[]): unknown;
  /** True for an ioredis `Cluster`. */
  readonly isCluster?: boolean;
}

/**
 * A connection that receives the change hints: the part of an ioredis `Redis` that
 * `redis-fanout.ts` uses. Typed here, like {@link RedisClient}, so that the declarations of
 * `otter/server` need no ioredis.
 */
export interface SubscriberClient {
  on(event: 'ready', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  /** A message of a channel (`message`), or of a shard channel (`smessage`, on a Cluster). */
  on(event: 'message' | 'smessage', listener: (channel: string, message: string) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  /** A Cluster's shard subscribers are (re)connected and every shard channel subscribed again. */
  on(event: 'subscribersReady', listener: () => void): unknown;
  subscribe(...channels: string[]): Promise<unknown>;
  unsubscribe(...channels: string[]): Promise<unknown>;
  ssubscribe(...channels: string[]): Promise<unknown>;
  sunsubscribe(...channels: string[]): Promise<unknown>;
  disconnect(): void;
  /** ioredis's connection status: `ready` once connected. */
  readonly status: string;
}

/**
 * What an append announces on its document's hint channel: `docId` is at `head` of its
 * `epoch` since a store with `origin` appended at `at` (ms since the Unix epoch, by the
 * writer's clock). The epoch is absent from hints of stores that did not send it.
 */
export interface ChangeHint {
  readonly docId: string;
  readonly head: number;
  readonly origin: string;
  readonly at: number;
  readonly epoch?: string | undefined;
  /**
   * The appended ops, when the hint carries them (an append of at most {@link CARRIED_OPS_BYTES}
   * of stored records): a receiver takes them without reading the log, after the same checks.
   */
  readonly ops?: readonly OpRecord[] | undefined;
}

/**
 * The text of a hint on a hint channel: its fields as a JSON array, then, when `records`
 * (the stored members of the append's ops) fit {@link CARRIED_OPS_BYTES}, a line feed and the
 * records as a JSON array (JSON text holds no raw line feed, so the first one parts them, and a
 * receiver can read the fields alone). JSON escapes lone surrogates, so any id survives.
 */
function encodeHint(hint: ChangeHint, records: readonly string[]): string {
  const head = JSON.stringify([hint.docId, hint.head, hint.origin, hint.at, hint.epoch]);
  let bytes = 0;
  for (const r of records) bytes += r.length;
  if (records.length === 0 || bytes > CARRIED_OPS_BYTES) return head;
  return `${head}\n[${records.join(',')}]`;
}

/**
 * A hint read from a hint channel, or undefined for a message that is not one. Takes
 * hints with an epoch (five fields) and without (four), with ops after a line feed or none.
 * The ops of a hint from `skipOpsOf` (the reader's own store, whose hints it skips) are not
 * decoded; ops that are not op records are left out (the receiver then reads the log).
 */
export function decodeHint(text: string, skipOpsOf?: string): ChangeHint | undefined {
  const cut = text.indexOf('\n');
  let row: unknown;
  try {
    row = JSON.parse(cut < 0 ? text : text.slice(0, cut));
  } catch {
    return undefined;
  }
  if (!Array.isArray(row) || (row.length !== 4 && row.length !== 5)) return undefined;
  const [docId, head, origin, at, epoch] = row as unknown[];
  if (typeof docId !== 'string' || !isInteger(head) || typeof origin !== 'string' || !isInteger(at)) return undefined;
  if (epoch !== undefined && typeof epoch !== 'string') return undefined;
  const hint: ChangeHint = epoch === undefined ? { docId, head, origin, at } : { docId, head, origin, at, epoch };
  if (cut < 0 || origin === skipOpsOf) return hint;
  try {
    const rows = JSON.parse(text.slice(cut + 1)) as unknown;
    if (!Array.isArray(rows)) return hint;
    return { ...hint, ops: rows.map((r: unknown) => recordOf(docId, r)) };
  } catch {
    return hint;
  }
}

/** Called with each Redis round trip of a store: what it did, how long it took, whether it failed. */
export type RoundTripListener = (command: string, ms: number, ok: boolean) => void;

/**
 * Ms after which the epoch pinned for a document that was loaded but never written expires
 * (see the file comment): a day. A server that holds such a document longer (kept open, never
 * written) finds it gone by its periodic check and pins the epoch it holds again
 * ({@link RedisStore.pin}).
 */
export const PINNED_EPOCH_MS = 24 * 60 * 60 * 1000;

/** What the LOAD script replies (see `redis-scripts.ts`). */
type LoadReply = [
  head: string | null,
  trim: string | null,
  epoch: string | null,
  snapshotVersion: string | null,
  snapshot: string | null,
  ops: string[],
  recoveries: string[],
];

/** A stored snapshot: all of it but its version (the field it is stored under). */
interface StoredSnapshot {
  text: string;
  checksum: number;
  at?: number;
  hash: number;
}

/** `text` parsed as JSON, or a {@link StorageCorruptError} naming `what` of `docId`. */
function parseJson(docId: string, text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new StorageCorruptError(docId, `${what} is not valid JSON`);
  }
}

/** A stored non-negative integer (absent: 0), or a {@link StorageCorruptError}. */
function storedInteger(docId: string, text: string | null, what: string): number {
  const n = Number(text ?? '0');
  if (!Number.isSafeInteger(n) || n < 0) throw new StorageCorruptError(docId, `${what} is not a version (${JSON.stringify(text)})`);
  return n;
}

function isInteger(x: unknown): x is number {
  return Number.isSafeInteger(x);
}

/** An op record as stored: [version, op, clientId, seq, checksum] and the author, if any. */
function encodeRecord(r: OpRecord): string {
  const row: unknown[] = [r.version, r.op, r.clientId, r.seq, r.checksum];
  if (r.author !== undefined) row.push(r.author);
  return JSON.stringify(row);
}

function decodeRecord(docId: string, text: string): OpRecord {
  return recordOf(docId, parseJson(docId, text, 'a stored op'));
}

/**
 * The records of the members a refused append's reply carried, or undefined if one cannot be
 * decoded: the reader then reads the log, which reports the damage where it belongs.
 */
function missedOps(docId: string, members: readonly string[]): OpRecord[] | undefined {
  try {
    return members.map((text) => decodeRecord(docId, text));
  } catch {
    return undefined;
  }
}

/** The op record a parsed stored member holds, or a {@link StorageCorruptError}. */
function recordOf(docId: string, row: unknown): OpRecord {
  if (
    !Array.isArray(row) ||
    (row.length !== 5 && row.length !== 6) ||
    !isInteger(row[0]) ||
    !Array.isArray(row[1]) ||
    typeof row[2] !== 'string' ||
    !isInteger(row[3]) ||
    !isInteger(row[4]) ||
    (row.length === 6 && typeof row[5] !== 'string')
  ) {
    throw new StorageCorruptError(docId, 'a stored op is not an op record');
  }
  const [version, op, clientId, seq, checksum, author] = row as [number, Component[], string, number, number, string?];
  return author === undefined ? { version, op, clientId, seq, checksum } : { version, op, clientId, seq, author, checksum };
}

function encodeSnapshot(s: Snapshot): string {
  const stored: StoredSnapshot = { text: s.text, checksum: s.checksum, hash: snapshotHash(s) };
  if (s.at !== undefined) stored.at = s.at;
  return JSON.stringify(stored);
}

/** The snapshot stored at `version`, after checking it against its hash. */
function decodeSnapshot(docId: string, version: string, text: string | null): Snapshot {
  const v = storedInteger(docId, version, 'a snapshot version');
  if (text === null) throw new StorageCorruptError(docId, `the snapshot at version ${v} is missing`);
  const s = parseJson(docId, text, `the snapshot at version ${v}`) as Partial<StoredSnapshot> | null;
  if (s === null || typeof s.text !== 'string' || !isInteger(s.checksum) || (s.at !== undefined && !isInteger(s.at))) {
    throw new StorageCorruptError(docId, `the snapshot at version ${v} is not a snapshot`);
  }
  const base = { version: v, text: s.text, checksum: s.checksum };
  const snapshot: Snapshot = s.at === undefined ? base : { ...base, at: s.at };
  if (s.hash !== snapshotHash(snapshot)) {
    throw new StorageCorruptError(docId, `the snapshot at version ${v} does not match its hash`);
  }
  return snapshot;
}

/** A mark as stored under its client id: [seq, version, baseVersion, fingerprint]. */
function encodeMark(m: ClientMark): string {
  return JSON.stringify([m.seq, m.version, m.baseVersion, m.fingerprint]);
}

function decodeMark(docId: string, clientId: string, text: string): ClientMark {
  const row = parseJson(docId, text, 'the mark of a client');
  const valid = Array.isArray(row) && row.length === 4 && row.slice(0, 3).every(isInteger) && typeof row[3] === 'string';
  if (!valid) {
    throw new StorageCorruptError(docId, 'the mark of a client is not a mark');
  }
  const [seq, version, baseVersion, fingerprint] = row as [number, number, number, string];
  return { clientId, seq, version, baseVersion, fingerprint };
}

function decodeRecovery(docId: string, text: string): Recovery {
  const r = parseJson(docId, text, 'a recovery') as Partial<Recovery> | null;
  if (r === null || typeof r.lostEpoch !== 'string' || typeof r.text !== 'string' || !Array.isArray(r.samples)) {
    throw new StorageCorruptError(docId, 'a recovery is not a recovery');
  }
  return r as Recovery;
}

/** A score bound of ZRANGEBYSCORE for `n`, exclusive when `open`. */
function bound(n: number, open: boolean): string {
  if (!Number.isFinite(n)) return n > 0 ? '+inf' : '-inf';
  return open ? `(${n}` : String(n);
}

/** See the file comment. */
export class RedisStore implements Store {
  private readonly client: RedisClient;
  /** The client made here from URLs (closed by {@link close}), if it was. */
  private readonly made: MadeClient | undefined;
  private readonly roundTrips = new Set<RoundTripListener>();
  /**
   * This store's id in the change hints it publishes (random, one per store object), so that
   * a server can tell its own appends from those of others.
   */
  readonly origin = randomUUID();
  private readonly prefix: string;
  private readonly keysOfStore: StoreKeys;
  /** Appends under way, settled either way: close waits for them. */
  private readonly pending = new Set<Promise<void>>();
  private closed = false;

  /**
   * A store over `redis`: an ioredis client (`Redis` or `Cluster`), which stays the caller's
   * to close; or a Redis URL (`redis://host:6379/0`), a Redis Cluster's seeds
   * (`{ cluster: ['redis://host:7000', …] }`) or a master Sentinels watch (`{ sentinels: [...],
   * master: 'redis://mymaster' }`), for which a client is made here and closed by
   * {@link close} (see `redis-connection.ts`): a command of it fails after 3 reconnection
   * attempts, or {@link COMMAND_TIMEOUT_MS} after it was sent, whichever comes first (an append
   * that timed out may still land: the sequencer then finds it on its reload). Throws a
   * RangeError for a prefix holding `{` or `}` or for URLs `RedisTarget` does not allow;
   * `MissingPackageError` when given URLs and ioredis, an optional peer of `otter`, is not
   * installed.
   */
  constructor(redis: RedisClient | RedisTarget, options: RedisStoreOptions = {}) {
    this.prefix = options.prefix ?? 'otter:';
    checkPrefix(this.prefix);
    this.keysOfStore = storeKeys(this.prefix);
    if (isRedisTarget(redis)) {
      this.made = connect(redis);
      this.client = this.made.client;
    } else {
      this.made = undefined;
      this.client = redis;
    }
  }

  /** The pub/sub channel on which appends to `docId` publish their {@link ChangeHint}s. */
  hintChannel(docId: string): string {
    return this.keys(docId).hints;
  }

  /**
   * Whether the documents' channels (hints, presences) are shard channels (the store is over a
   * Cluster): a subscriber then takes them with SSUBSCRIBE and hears them as `smessage`, one
   * channel per command.
   */
  get shardedChannels(): boolean {
    return this.client.isCluster === true;
  }

  /** The command publishing on a document's channels: SPUBLISH where they are shard channels. */
  private get publishCommand(): 'PUBLISH' | 'SPUBLISH' {
    return this.shardedChannels ? 'SPUBLISH' : 'PUBLISH';
  }

  /**
   * A new connection to the same Redis, for receiving change hints (a subscribed connection
   * can send nothing else), which the caller closes. Over a `Redis`, it does not subscribe
   * again by itself after a reconnection: the caller does, on `ready`. Over a `Cluster`, it
   * subscribes to shard channels on the node of each channel's slot, and ioredis subscribes
   * again by itself when a subscriber connection drops or the cluster's layout changes, then
   * emits `subscribersReady` (hints published meanwhile are lost: the fan-out then reads what
   * they announced). Throws when the store was given a client without `duplicate`.
   */
  subscriber(): SubscriberClient {
    if (this.made !== undefined) return this.made.subscriber();
    const duplicate = this.client.duplicate as ((...args: unknown[]) => unknown) | undefined;
    if (duplicate === undefined) throw new Error('the Redis client of this store cannot make another connection (no duplicate())');
    const copy = this.shardedChannels
      ? duplicate.call(this.client, [], { shardedSubscribers: true })
      : duplicate.call(this.client, { autoResubscribe: false });
    return copy as SubscriberClient;
  }

  /**
   * The store-wide channel on which a server asks the others for every presence they relay
   * (see `redis-presence.ts`): an ordinary channel, even on a Cluster.
   */
  get presence(): string {
    return this.keysOfStore.presence;
  }

  /** The channel of `docId`'s relayed presences: a shard channel, like its hints, on a Cluster. */
  presenceChannel(docId: string): string {
    return this.keys(docId).presence;
  }

  /**
   * Publishes `message` on `docId`'s {@link presenceChannel} (with SPUBLISH, on the node of its
   * slot, on a Cluster), or, without a document, on the store-wide {@link presence} channel.
   */
  async publishPresence(docId: string | undefined, message: string): Promise<void> {
    if (docId === undefined) {
      await this.timed('publish', () => PUBLISH.run(this.client, [], ['PUBLISH', this.keysOfStore.presence, message]));
      return;
    }
    const k = this.keys(docId);
    await this.timed('publish', () => PUBLISH.run(this.client, [k.meta], [this.publishCommand, k.presence, message]));
  }

  /**
   * Sets this store's heartbeat key (named by its {@link origin}) to expire in `ttl` ms.
   * Resolves whether the key was still there: false at the first heartbeat, and after one that
   * came too late (the other servers took this one for dead meanwhile).
   */
  async heartbeat(ttl: number): Promise<boolean> {
    const reply = await this.timed('heartbeat', () =>
      HEARTBEAT.run(this.client, [this.keysOfStore.nodes + this.origin], [String(Date.now()), String(ttl)]),
    );
    return reply === 1;
  }

  /** Whether the heartbeat key of the store with `origin` has not expired. */
  async isAlive(origin: string): Promise<boolean> {
    return (await this.timed('exists', () => EXISTS.run(this.client, [this.keysOfStore.nodes + origin], []))) === 1;
  }

  /** Calls `listener` after each Redis round trip of this store; returns a function that stops it. */
  onRoundTrip(listener: RoundTripListener): () => void {
    this.roundTrips.add(listener);
    return () => this.roundTrips.delete(listener);
  }

  /**
   * Runs one round trip, `command`, telling the listeners how it went; failed if it outlasts
   * the deadline of a client made here that needs one.
   */
  private async timed<T>(command: string, call: () => Promise<T>): Promise<T> {
    const deadline = this.made?.deadlineMs;
    const bounded = deadline === undefined ? call : () => withinDeadline(call(), deadline, command);
    if (this.roundTrips.size === 0) return bounded();
    const start = performance.now();
    let ok = false;
    try {
      const result = await bounded();
      ok = true;
      return result;
    } finally {
      const ms = performance.now() - start;
      for (const l of this.roundTrips) l(command, ms, ok);
    }
  }

  private keys(docId: string): DocumentKeys {
    return documentKeys(this.prefix, docId);
  }

  /** The epoch of documents never written (made and stored if Redis has none). */
  private async instance(): Promise<string> {
    return (await this.timed('instance', () => INSTANCE.run(this.client, [this.keysOfStore.instance], [randomUUID()]))) as string;
  }

  /** @inheritdoc */
  async load(docId: string): Promise<LoadedDocument> {
    const k = this.keys(docId);
    const [head, trim, epoch, snapshotVersion, snapshot, ops, recoveries] = (await this.timed('load', () =>
      LOAD.run(this.client, [k.meta, k.ops, k.snapshots, k.snapshotTexts, k.recoveries], []),
    )) as LoadReply;
    return {
      epoch: epoch ?? (await this.pin(docId, await this.instance())),
      snapshot: snapshotVersion === null ? EMPTY_SNAPSHOT : decodeSnapshot(docId, snapshotVersion, snapshot),
      ops: ops.map((text) => decodeRecord(docId, text)),
      head: storedInteger(docId, head, 'the recorded head'),
      trimmedTo: storedInteger(docId, trim, 'the trim point'),
      recoveries: recoveries.map((text) => decodeRecovery(docId, text)),
    };
  }

  /** @inheritdoc */
  append(
    docId: string,
    expectedHead: number,
    records: OpRecord[],
    marks: ClientMark[],
    context: AppendContext,
  ): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    const task = this.write(docId, expectedHead, records, marks, context);
    const settled = task.then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(settled);
    void settled.then(() => this.pending.delete(settled));
    return task;
  }

  /** One append: checked versions, the instance id retired if it is the epoch, then the script. */
  private async write(
    docId: string,
    expectedHead: number,
    records: OpRecord[],
    marks: ClientMark[],
    context: AppendContext,
  ): Promise<void> {
    const unordered = appendConflict(docId, expectedHead, records, context.epoch, expectedHead, undefined);
    if (unordered !== undefined) throw unordered;
    if (expectedHead === 0) {
      await this.timed('retire', () => RETIRE.run(this.client, [this.keysOfStore.instance], [context.epoch, randomUUID()]));
    }
    const head = expectedHead + records.length;
    const members = records.map(encodeRecord);
    const hint = encodeHint({ docId, head, origin: this.origin, at: Date.now(), epoch: context.epoch }, members);
    const k = this.keys(docId);
    const headChecksum = records.length === 0 ? '' : String((records[records.length - 1] as OpRecord).checksum);
    const args = [
      String(expectedHead),
      String(head),
      context.epoch,
      this.publishCommand,
      k.hints,
      hint,
      context.checksum === undefined ? '' : String(context.checksum),
      headChecksum,
      String(records.length),
    ];
    records.forEach((r, i) => args.push(String(r.version), members[i] as string));
    args.push(String(marks.length));
    for (const m of marks) args.push(m.clientId, encodeMark(m));
    const recovery = context.recovery;
    if (recovery === undefined) args.push('0');
    else args.push('1', recovery.lostEpoch, JSON.stringify(recovery));
    const reply = (await this.timed('append', () => APPEND.run(this.client, [k.meta, k.ops, k.marks, k.recoveries], args))) as [
      number,
      (string | number)?,
      (string | null)?,
      string[]?,
    ];
    if (reply[0] === 1) {
      // Appended, but its hint not published: the other servers learn of it by their periodic
      // check alone. Counted as a failed `publish` round trip (otter_redis_errors_total).
      if (reply[1] !== undefined) for (const l of this.roundTrips) l('publish', 0, false);
      return;
    }
    if (reply[0] === 2) throw new StorageCorruptError(docId, `${String(reply[1])} stored ops lie past the recorded head`);
    if (reply[0] === 3) {
      throw new VersionConflictError(
        docId,
        expectedHead,
        expectedHead,
        `holds another version ${expectedHead} than the writer's: checksum ${String(reply[1])}, not ${String(context.checksum)}`,
      );
    }
    const stored = storedInteger(docId, String(reply[1]), 'the recorded head');
    const storedEpoch = reply[2] ?? undefined;
    // A lost race between nodes is the expected outcome of optimistic appends, not a fault:
    // its error carries what the winner wrote and no stack (capturing one costs more than the
    // rest of the refusal).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      if (stored > expectedHead && storedEpoch === context.epoch) {
        throw new VersionConflictError(docId, expectedHead, stored, undefined, missedOps(docId, reply[3] ?? []));
      }
      throw (
        appendConflict(docId, expectedHead, records, context.epoch, stored, storedEpoch) ??
        new VersionConflictError(docId, expectedHead, stored)
      );
    } finally {
      Error.stackTraceLimit = limit;
    }
  }

  /**
   * Gives `docId` the epoch `epoch` unless Redis records one, as a load does for a document
   * never written (expiring after {@link PINNED_EPOCH_MS} unless it is written by then);
   * resolves with the epoch Redis records after it. What a server that holds such a document
   * does when the pinned epoch expired under it: the document goes on under the epoch its
   * clients hold.
   */
  async pin(docId: string, epoch: string): Promise<string> {
    return (await this.timed('pin', () => PIN.run(this.client, [this.keys(docId).meta], [epoch, String(PINNED_EPOCH_MS)]))) as string;
  }

  /**
   * The recorded head and epoch of `docId` as Redis holds them now (head 0 and no epoch for a
   * document it does not have: never written, or lost), and the checksum at that head when the
   * last append that added ops recorded it there. One HMGET; what a server compares with the
   * document it holds to find a loss that no commit or hint told it of.
   */
  async stamp(docId: string): Promise<{ head: number; epoch: string | undefined; checksum: number | undefined }> {
    const [head, epoch, headsum] = await this.timed('stamp', () => this.client.hmget(this.keys(docId).meta, 'head', 'epoch', 'headsum'));
    const recorded = storedInteger(docId, head ?? null, 'the recorded head');
    const [at, sum] = (headsum ?? '').split(' ');
    const checksum = at === String(recorded) && sum !== undefined && /^\d+$/.test(sum) ? Number(sum) : undefined;
    return { head: recorded, epoch: epoch ?? undefined, checksum };
  }

  /** @inheritdoc */
  async getMarks(docId: string, clientIds: readonly string[], epoch?: string): Promise<ClientMark[]> {
    const ids = [...new Set(clientIds)];
    if (ids.length === 0) return [];
    const k = this.keys(docId);
    let values: Array<string | null>;
    if (epoch === undefined) {
      values = await this.timed('getMarks', () => this.client.hmget(k.marks, ...ids));
    } else {
      const reply = (await this.timed('getMarks', () => MARKS.run(this.client, [k.meta, k.marks], ids))) as Array<string | null>;
      const stored = reply[0] ?? undefined;
      // Gone (emptied, evicted) or made anew: the marks of this incarnation are not the caller's.
      if (stored !== epoch) throw new VersionConflictError(docId, 0, 0, `has epoch ${stored ?? '(none)'} in Redis, not ${epoch}`);
      values = reply.slice(1);
    }
    const out: ClientMark[] = [];
    values.forEach((text, i) => {
      if (text !== null) out.push(decodeMark(docId, ids[i] as string, text));
    });
    return out;
  }

  /** @inheritdoc */
  async getOps(docId: string, from: number, to: number): Promise<OpRecord[]> {
    if (to <= from) return [];
    const members = await this.timed('getOps', () => this.client.zrangebyscore(this.keys(docId).ops, bound(from, true), bound(to, false)));
    return members.map((text) => decodeRecord(docId, text));
  }

  /** @inheritdoc */
  async getSnapshot(docId: string, atOrBefore = Infinity): Promise<Snapshot | undefined> {
    const k = this.keys(docId);
    const [version, value] = (await this.timed('getSnapshot', () =>
      GET_SNAPSHOT.run(this.client, [k.meta, k.snapshots, k.snapshotTexts], [bound(atOrBefore, false)]),
    )) as [string | null, string | null];
    if (version !== null) return decodeSnapshot(docId, version, value);
    return storedInteger(docId, value, 'the trim point') === 0 ? EMPTY_SNAPSHOT : undefined;
  }

  /** @inheritdoc */
  async putSnapshot(docId: string, snapshot: Snapshot): Promise<void> {
    const k = this.keys(docId);
    await this.timed('putSnapshot', () =>
      PUT_SNAPSHOT.run(this.client, [k.snapshots, k.snapshotTexts], [String(snapshot.version), encodeSnapshot(snapshot)]),
    );
  }

  /** @inheritdoc */
  async trim(docId: string, version: number): Promise<void> {
    const k = this.keys(docId);
    const done = await this.timed('trim', () => TRIM.run(this.client, [k.meta, k.ops, k.snapshots, k.snapshotTexts], [String(version)]));
    if (done === 0) throw new Error(`cannot trim ${JSON.stringify(docId)} to ${version}: no snapshot there`);
  }

  /**
   * Writes the time to the store's probe key, a write Redis answers like an append: it fails
   * when Redis refuses writes (out of memory, a read-only replica, a failed persistence) or
   * cannot be reached (after ioredis's retries).
   */
  async ping(): Promise<void> {
    if (this.closed) throw new Error('the store is closed');
    await this.timed('ping', () => this.client.set(this.keysOfStore.probe, String(Date.now())));
  }

  /** Lets pending appends finish, then closes the client if it was made from a URL. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.pending);
    await this.made?.close();
  }
}
