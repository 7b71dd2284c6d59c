/**
 * The Redis keys of a {@link RedisStore} (`redis-store.ts`).
 *
 * Redis keys are bytes, and ioredis sends strings as UTF-8, which maps every lone surrogate to
 * U+FFFD: two document ids that differ only there would share keys, and each other's text.
 * So a document id is never put in a key as it is: {@link encodeDocId} writes its UTF-16 code
 * units (two bytes each, big-endian) in unpadded base64url, behind the letter `d`. That is
 * injective over all JavaScript strings, never empty, and uses only `A-Z a-z 0-9 - _`, so it
 * holds no `{`, `}` or `:`.
 *
 * Layout, for a prefix P (default `otter:`) and a document whose encoded id is E:
 * - `P{E}:meta`       hash: `head` (recorded head), `trim` (trim point), `epoch`, `headsum`
 *                     (the head and its checksum, as the last append of ops recorded them);
 *                     for a document only read, never written, only `epoch`, expiring;
 * - `P{E}:ops`        sorted set: one member per op, scored by its version;
 * - `P{E}:snapshots`  sorted set of the versions that have a snapshot, scored by version;
 * - `P{E}:snaptexts`  hash: version → the snapshot (text, checksum, time, hash);
 * - `P{E}:marks`      hash: client id → that client's mark;
 * - `P{E}:recoveries` hash: lost epoch → the recovery;
 * - `P{E}:hints`      not a key: the document's pub/sub channel, on which every append announces
 *                     the document's new head and epoch (see `redis-fanout.ts`); a shard
 *                     channel on a Cluster, in the document's slot;
 * - `P{E}:presence`   not a key: the document's channel of presences relayed between servers
 *                     (see `redis-presence.ts`), a shard channel on a Cluster likewise;
 * - `Pinstance`       the epoch of documents never written (see `redis-store.ts`);
 * - `Pprobe`          the time of the last write probe (`ping`);
 * - `Ppresence`       not a key: the channel on which a server asks every other to send its
 *                     presences again (see `redis-presence.ts`);
 * - `Pnode:<origin>`  the heartbeat of the server whose store has that origin (expires).
 * Every key of a document carries the hash tag `{E}`, so that in Redis Cluster they all live in
 * one slot and one Lua script may touch them all. The prefix may hold no `{` or `}`, which would
 * move the hash tag into it.
 */

/** The keys of one document; see the file comment. */
export interface DocumentKeys {
  readonly meta: string;
  readonly ops: string;
  readonly snapshots: string;
  readonly snapshotTexts: string;
  readonly marks: string;
  readonly recoveries: string;
  /** The pub/sub channel of the document's change hints (a channel name, not a key). */
  readonly hints: string;
  /** The pub/sub channel of the document's relayed presences (a channel name, not a key). */
  readonly presence: string;
}

/** The store-wide keys of a prefix; see the file comment. */
export interface StoreKeys {
  readonly instance: string;
  readonly probe: string;
  /** The pub/sub channel of requests for every presence (a channel name, not a key). */
  readonly presence: string;
  /** What the heartbeat key of a server starts with: its store's origin follows. */
  readonly nodes: string;
}

/**
 * The hash-tag content for `docId`: `d` and the unpadded base64url of its UTF-16 code units
 * (big-endian). Injective over all strings (lone surrogates included), never empty, and free of
 * `{`, `}` and `:`.
 */
export function encodeDocId(docId: string): string {
  const bytes = Buffer.allocUnsafe(docId.length * 2);
  for (let i = 0; i < docId.length; i++) bytes.writeUInt16BE(docId.charCodeAt(i), i * 2);
  return `d${bytes.toString('base64url')}`;
}

/** Throws a RangeError unless `prefix` may prefix keys (no `{` or `}`). */
export function checkPrefix(prefix: string): void {
  if (/[{}]/.test(prefix)) throw new RangeError(`a key prefix may not contain { or }, got ${JSON.stringify(prefix)}`);
}

/** The keys of `docId` under `prefix` (which {@link checkPrefix} accepts); all share one hash tag. */
export function documentKeys(prefix: string, docId: string): DocumentKeys {
  const base = `${prefix}{${encodeDocId(docId)}}:`;
  return {
    meta: `${base}meta`,
    ops: `${base}ops`,
    snapshots: `${base}snapshots`,
    snapshotTexts: `${base}snaptexts`,
    marks: `${base}marks`,
    recoveries: `${base}recoveries`,
    hints: `${base}hints`,
    presence: `${base}presence`,
  };
}

/** Whether `channel` is a document's presence channel (of any prefix). */
export function isPresenceChannel(channel: string): boolean {
  return channel.endsWith('}:presence');
}

/** The store-wide keys under `prefix`. */
export function storeKeys(prefix: string): StoreKeys {
  return {
    instance: `${prefix}instance`,
    probe: `${prefix}probe`,
    presence: `${prefix}presence`,
    nodes: `${prefix}node:`,
  };
}
