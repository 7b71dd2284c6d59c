/**
 * The storage contract of the sequencer. Every implementation (memory, SQLite, Redis) passes
 * the same contract suite in `test/server/store-contract.ts`.
 *
 * Model, per document:
 * - an op log: records with consecutive versions 1, 2, 3, … (version v takes the document
 *   from version v-1 to v; version 0 is the empty document);
 * - snapshots: the full text at some versions;
 * - client marks: for each client, the last sequence number applied and where;
 * - a trim point T: ops with version ≤ T and snapshots older than T have been discarded, and a
 *   snapshot at T exists (or T = 0). Every version in [T, head] can be rebuilt.
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
}

/** The full text of a document at one version. */
export interface Snapshot {
  readonly version: number;
  readonly text: string;
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
  /** Latest snapshot (version 0, empty text, for a new document). */
  readonly snapshot: Snapshot;
  /** Every op after the snapshot, in version order. */
  readonly ops: OpRecord[];
  /** Trim point: the oldest version that can still be rebuilt. */
  readonly trimmedTo: number;
  /** Every client mark of the document. */
  readonly marks: ClientMark[];
}

/** Thrown by `append` when the document's head is not the expected one (another writer won). */
export class VersionConflictError extends Error {
  override readonly name = 'VersionConflictError';

  /** @param docId document; @param expected head the writer assumed; @param actual head found. */
  constructor(
    readonly docId: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`document ${JSON.stringify(docId)} is at version ${actual}, not ${expected}`);
  }
}

/** Durable (or not) home of documents; all methods are safe to call concurrently. */
export interface Store {
  /** Loads the latest snapshot, the ops after it, the trim point and the client marks. */
  load(docId: string): Promise<LoadedDocument>;

  /**
   * Appends `records` (consecutive versions from expectedHead + 1) and upserts `marks`, all
   * or nothing, in one transaction. Rejects with {@link VersionConflictError} if the head is
   * not `expectedHead`; an existing version is never overwritten. Resolves only once durable.
   */
  append(docId: string, expectedHead: number, records: OpRecord[], marks: ClientMark[]): Promise<void>;

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

  /** Checks that the store can be written (a cheap probe for readiness). */
  ping(): Promise<void>;

  /** Releases resources; pending appends finish first. */
  close(): Promise<void>;
}
