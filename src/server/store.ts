/**
 * The storage contract of the sequencer. Every implementation (memory, SQLite, Redis) passes
 * the same contract suite, `store-contract.ts` (published as `otter/server/store-contract`,
 * so that a store written elsewhere runs it too).
 *
 * Model, per document:
 * - an op log: records with consecutive versions 1, 2, 3, … (version v takes the document
 *   from version v-1 to v; version 0 is the empty document);
 * - snapshots: the full text at some versions;
 * - client marks: for each client, the last sequence number applied and where, kept as long as
 *   the document (without its mark, a client's resent op would be applied twice);
 * - a trim point T: ops with version ≤ T and snapshots older than T have been discarded, and a
 *   snapshot at T exists (or T = 0). Every version in [T, head] can be rebuilt;
 * - an epoch: the document's incarnation id, stored by its first append and never changed, so
 *   that a store that lost the document (and made it anew) is told apart from the original.
 *   A document never written has the epoch the store gives new documents: an id the store
 *   makes once for its data (a new store, or an emptied one, has a new one);
 * - recoveries: what clients restored into the document after it lost data (see
 *   {@link Recovery}), one per lost epoch.
 * Every op and snapshot carries the document checksum at its version (`protocol/checksum.ts`).
 */
import type { Component } from '../ot/index.js';

/** One applied operation, as stored and as broadcast. */
export interface OpRecord {
  /** The document version this op produced (≥ 1). */
  readonly version: number;
  /** The op as applied to version - 1 (already transformed), canonical. */
  readonly op: Component[];
  /** Who submitted it: the client's id and its per-document sequence number. */
  readonly clientId: string;
  readonly seq: number;
  /** The authenticated user the server attributes the op to, if any. */
  readonly author?: string | undefined;
  /** The document checksum at `version`: chained from the previous version's with `op`. */
  readonly checksum: number;
}

/** The full text of a document at one version, with the document checksum there. */
export interface Snapshot {
  readonly version: number;
  readonly text: string;
  readonly checksum: number;
  /**
   * When it was taken (ms since the Unix epoch), if known: every op up to `version` is older.
   * Retention by age trims history only to snapshots whose time is known.
   */
  readonly at?: number | undefined;
}

/** The empty document: every document's version 0. */
export const EMPTY_SNAPSHOT: Snapshot = Object.freeze({ version: 0, text: '', checksum: 0 });

/**
 * A lost state some client restored into the document: the text that client held at
 * `version` of the incarnation `lostEpoch` (whose checksum there was `checksum`), merged into
 * this document as the op that produced version `at`. Later clients that held the same lost
 * incarnation compare their version with `version`: older ones take the document as it is,
 * newer ones bring in what they have beyond `text`. `guess` is `text` with the ops that
 * restoring clients had in flight when the data was lost (merged too): where a later
 * client's lost state is closer to it, those ops had landed there, and are not brought in
 * twice. `samples` are versions of the lost epoch with their checksums, as restoring clients
 * passed them (at most 64, newest first): an op in flight on version v landed as v + 1 if
 * its checksum there is the one it makes.
 */
export interface Recovery {
  readonly lostEpoch: string;
  readonly version: number;
  readonly checksum: number;
  readonly text: string;
  readonly guess: string;
  readonly samples: ReadonlyArray<readonly [number, number]>;
  readonly at: number;
}

/** What an append records besides ops and marks. */
export interface AppendContext {
  /**
   * The document's epoch. The first append stores it; later ones must name the stored one,
   * else the append fails with {@link VersionConflictError} (another writer made the document).
   */
  readonly epoch: string;
  /**
   * The document's checksum at the expected head, as the writer holds it. A store that several
   * writers share (`RedisStore`) refuses the append with a {@link VersionConflictError}
   * whose `actual` is the expected head when it records another checksum there: the store went
   * back and was written up to that head again by another writer, so its version of the head
   * is not the writer's. Stores with a single writer need not check it.
   */
  readonly checksum?: number | undefined;
  /** A recovery to record with the ops (replacing the one for the same lost epoch). */
  readonly recovery?: Recovery | undefined;
}

/**
 * The high-water mark of one client on one document: its last applied op. Kept even after
 * that op's history was trimmed, so a resubmission is recognised forever.
 */
export interface ClientMark {
  readonly clientId: string;
  /** Last applied sequence number. */
  readonly seq: number;
  /** Version the op with that seq produced. */
  readonly version: number;
  /** Base version and fingerprint of the op as the client submitted it. */
  readonly baseVersion: number;
  readonly fingerprint: string;
}

/** Everything the sequencer needs to open a document. */
export interface LoadedDocument {
  /** The epoch stored by the first append, or the store's epoch for new documents. */
  readonly epoch: string;
  /** Latest snapshot ({@link EMPTY_SNAPSHOT} for a new document). */
  readonly snapshot: Snapshot;
  /** Every op after the snapshot, in version order. */
  readonly ops: OpRecord[];
  /**
   * The head the store recorded with the last append (0 for a new document). Never derived
   * from the ops that were read: a loader checks that they end there (`integrity.ts`).
   */
  readonly head: number;
  /** Trim point: the oldest version that can still be rebuilt. */
  readonly trimmedTo: number;
  /** Every recovery recorded in the document. */
  readonly recoveries: Recovery[];
}

/** Thrown by `append` when the document's head is not the expected one (another writer won). */
export class VersionConflictError extends Error {
  override readonly name = 'VersionConflictError';

  /**
   * @param docId document; @param expected head the writer assumed; @param actual head found;
   * @param detail what was found instead, when it is not another head (another epoch);
   * @param committed see {@link committed}.
   */
  constructor(
    readonly docId: string,
    readonly expected: number,
    readonly actual: number,
    detail?: string,
    /**
     * Stored ops from version `expected` + 1 on, in version order (possibly only the first
     * few), when the store read them with the refusal, in the same view as `actual`: what the
     * writer that lost would read next, spared a round trip. Undefined when it did not.
     */
    readonly committed?: readonly OpRecord[],
  ) {
    super(`document ${JSON.stringify(docId)} ${detail ?? `is at version ${actual}, not ${expected}`}`);
  }
}

/**
 * Why an append may not be written, if so: the document's head (`head`, with the epoch
 * `storedEpoch` it stored, if any) is not the `expectedHead` the writer assumed, the document
 * has another epoch than the writer's, or the records' versions do not run on consecutively
 * from `expectedHead` + 1. Every store checks its appends with this before writing anything.
 */
export function appendConflict(
  docId: string,
  expectedHead: number,
  records: readonly OpRecord[],
  epoch: string,
  head: number,
  storedEpoch: string | undefined,
): VersionConflictError | undefined {
  if (head !== expectedHead || (storedEpoch !== undefined && storedEpoch !== epoch)) {
    return new VersionConflictError(docId, expectedHead, head);
  }
  for (let i = 0; i < records.length; i++) {
    const version = (records[i] as OpRecord).version;
    if (version !== expectedHead + i + 1) return new VersionConflictError(docId, version - 1, expectedHead + i);
  }
  return undefined;
}

/** Durable (or not) home of documents; all methods are safe to call concurrently. */
export interface Store {
  /**
   * Loads the epoch, latest snapshot, ops after it, recorded head, trim point and recoveries
   * (client marks are read on demand: {@link getMarks}). May reject with `StorageCorruptError`
   * (`integrity.ts`) when what it read cannot be right.
   */
  load(docId: string): Promise<LoadedDocument>;

  /**
   * The stored marks of those of `clientIds` that have one on `docId`, in any order (clients
   * without a mark are left out): one indexed lookup, however many marks the document has.
   * {@link load} returns no marks, so that a document edited by many clients opens in time
   * and memory independent of their number; the sequencer reads a client's mark on demand.
   * `epoch`, when given, is the epoch the caller holds the document under: a store whose data
   * other processes share (and can lose, as a Redis can) rejects with
   * {@link VersionConflictError} when it no longer has the document under that epoch, rather
   * than answer with marks of another incarnation (or none); a store only this process writes
   * may ignore it.
   */
  getMarks(docId: string, clientIds: readonly string[], epoch?: string): Promise<ClientMark[]>;

  /**
   * Appends `records` (consecutive versions from expectedHead + 1), upserts `marks` and the
   * recovery in `context`, all or nothing, in one transaction; the first append of a document
   * stores its epoch. Rejects with {@link VersionConflictError} if the head is not
   * `expectedHead` or the document has another epoch; an existing version is never
   * overwritten. Resolves only once durable.
   */
  append(
    docId: string,
    expectedHead: number,
    records: OpRecord[],
    marks: ClientMark[],
    context: AppendContext,
  ): Promise<void>;

  /** Ops with from < version ≤ to, in order; fewer (a suffix) if some were trimmed. */
  getOps(docId: string, from: number, to: number): Promise<OpRecord[]>;

  /** The latest snapshot with version ≤ `atOrBefore` (any version if omitted). */
  getSnapshot(docId: string, atOrBefore?: number): Promise<Snapshot | undefined>;

  /** Stores a snapshot; storing the same version twice keeps one. */
  putSnapshot(docId: string, snapshot: Snapshot): Promise<void>;

  /**
   * Moves the trim point to `version` (which must have a snapshot): deletes ops with
   * version ≤ `version` and snapshots older than it. Never moves the trim point back.
   */
  trim(docId: string, version: number): Promise<void>;

  /**
   * Checks that the store can be written now, by a real write that commits (a scratch row, in
   * its own transaction), so that it fails whenever an append would fail for want of a
   * writable store: disk full, read-only file, a lock held by another process, connection
   * lost, closed. Cheap and never waits for a lock: readiness (`readiness.ts`) calls it every
   * few seconds. Rejects with the store's error (its code, for SQLite).
   */
  ping(): Promise<void>;

  /** Releases resources; pending appends finish first. */
  close(): Promise<void>;
}
