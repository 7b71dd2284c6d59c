/**
 * What the server checks of stored data before it serves it: a document whose stored state
 * does not hold together is refused (`storage-corrupt`), never served as if it were right.
 *
 * Laws checked when a document loads ({@link verifyLoaded}):
 * - the ops after the snapshot have consecutive versions from the snapshot's version + 1, and
 *   the last one is the head the store recorded (the head is never taken from counting rows);
 * - every op's checksum is the chain of the previous version's checksum with that op
 *   (`protocol/checksum.ts`), starting from the snapshot's: an op changed, lost or doubled in
 *   the store breaks the chain from there on.
 * Ops read later (older history) are checked the same way among themselves and against the
 * checksum the server already holds for the version after them ({@link verifyHistory}).
 * Each store checks what only it can see besides (SQLite: each snapshot's text against its
 * stored hash, `PRAGMA quick_check` at start).
 */
import { EMPTY_CHECKSUM, chainChecksum } from '../protocol/checksum.js';
import type { LoadedDocument, OpRecord } from './store.js';

/**
 * A document's stored data failed an integrity check: it is not served. Retrying cannot help;
 * the store must be repaired or restored by an operator.
 */
export class StorageCorruptError extends Error {
  override readonly name = 'StorageCorruptError';

  /** @param docId the document; @param detail what failed, naming versions (never text). */
  constructor(
    readonly docId: string,
    readonly detail: string,
  ) {
    super(`the stored data of document ${JSON.stringify(docId)} is damaged: ${detail}`);
  }
}

/** The checksum stored for an op whose checksum was never recorded (see {@link verifyChain}). */
const NOT_RECORDED = EMPTY_CHECKSUM;

/**
 * Checks that `records` form a chain: consecutive versions, each checksum the chain of the
 * one before with its op. `before` is the checksum at the version before the first record, if
 * known. Throws {@link StorageCorruptError}.
 */
export function verifyChain(docId: string, records: readonly OpRecord[], before: number | undefined): void {
  let previous = before;
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as OpRecord;
    if (i > 0 && r.version !== (records[i - 1] as OpRecord).version + 1) {
      throw new StorageCorruptError(docId, `version ${(records[i - 1] as OpRecord).version} is followed by version ${r.version}`);
    }
    // Not recorded (0): ops before the oldest snapshot of a first-layout database migrated by
    // an earlier version of Otter. The chain is checked again from the next recorded one.
    if (r.checksum === NOT_RECORDED) {
      previous = undefined;
      continue;
    }
    if (previous !== undefined && chainChecksum(previous, r.op) !== r.checksum) {
      throw new StorageCorruptError(docId, `the op of version ${r.version} does not match its checksum`);
    }
    previous = r.checksum;
  }
}

/**
 * Checks a loaded document before it is served (see the file comment): consecutive versions
 * from the snapshot to the recorded head, checksums chained from the snapshot's. Throws
 * {@link StorageCorruptError} naming the first fault; O(ops' sizes), like applying them.
 */
export function verifyLoaded(docId: string, loaded: LoadedDocument): void {
  const { snapshot, ops, head } = loaded;
  if (snapshot.version < loaded.trimmedTo) {
    throw new StorageCorruptError(docId, `the latest snapshot (version ${snapshot.version}) is older than the trim point ${loaded.trimmedTo}`);
  }
  const first = ops[0];
  if (first !== undefined && first.version !== snapshot.version + 1) {
    throw new StorageCorruptError(docId, `the snapshot is at version ${snapshot.version} but the next op is version ${first.version}`);
  }
  const last = ops.length === 0 ? snapshot.version : (ops[ops.length - 1] as OpRecord).version;
  if (last !== head) {
    throw new StorageCorruptError(docId, `the recorded head is version ${head} but the stored ops end at version ${last}`);
  }
  verifyChain(docId, ops, snapshot.checksum);
}

/**
 * Checks ops read from the store as older history: consecutive, chained among themselves,
 * and, when `next` (the version right after the last record, with its op's checksum as the
 * server holds it) is given, chained into it. Throws {@link StorageCorruptError}.
 */
export function verifyHistory(
  docId: string,
  records: readonly OpRecord[],
  next?: { readonly version: number; readonly op: OpRecord['op']; readonly checksum: number },
): void {
  verifyChain(docId, records, undefined);
  const last = records[records.length - 1];
  if (last === undefined || last.checksum === NOT_RECORDED || next === undefined || next.version !== last.version + 1) return;
  if (chainChecksum(last.checksum, next.op) !== next.checksum) {
    throw new StorageCorruptError(docId, `the op of version ${last.version} read from the store does not lead to version ${next.version}`);
  }
}

/**
 * Checks a catch-up read from the store: a chain ({@link verifyChain}) that ends at `head`,
 * the version and checksum the server holds. Throws {@link StorageCorruptError}.
 */
export function verifyCatchUp(
  docId: string,
  records: readonly OpRecord[],
  head: { readonly version: number; readonly checksum: number },
): void {
  verifyChain(docId, records, undefined);
  const last = records[records.length - 1];
  if (last !== undefined && last.checksum !== NOT_RECORDED && (last.version !== head.version || last.checksum !== head.checksum)) {
    throw new StorageCorruptError(docId, `the stored history does not lead to the head (version ${head.version})`);
  }
}

/**
 * The hash a store keeps with a snapshot to find it again unchanged: of its text, version and
 * checksum (the checksum chains ops, not text, so it cannot vouch for the text itself).
 * Pure and stable: stored values depend on it. O(text).
 */
export function snapshotHash(snapshot: { readonly version: number; readonly text: string; readonly checksum: number }): number {
  const ofText = chainChecksum(EMPTY_CHECKSUM, snapshot.text === '' ? [] : [snapshot.text]);
  return chainChecksum(ofText, [snapshot.version, snapshot.checksum]);
}
