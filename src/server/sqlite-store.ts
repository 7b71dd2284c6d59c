/**
 * The embedded durable {@link Store}: one SQLite file through better-sqlite3, in WAL mode.
 *
 * Group commit: appends that arrive in the same turn of the event loop, for any documents,
 * are written in one transaction, and one append's failure fails only that append; every
 * append's promise resolves only after that transaction has committed. Each append is checked
 * (head, consecutive versions) before it writes anything, so a conflict needs no rollback and
 * the transaction normally runs without savepoints. Should a statement itself fail, the whole
 * transaction is rolled back and the batch redone with each append in its own savepoint, which
 * isolates exactly the failing one. The (doc_id, version) primary key makes a second writer of
 * a version fail rather than overwrite it.
 *
 * Integrity: the file is checked when opened (`sqlite-schema.ts`: refused unless new or an
 * Otter database of a known layout that passes `PRAGMA quick_check`; one process at a time);
 * every snapshot read is checked against its stored hash, and SQLite's own reports of damage
 * become {@link StorageCorruptError}s naming the document. Only this file and
 * `sqlite-schema.ts` import better-sqlite3.
 */
import type Database from 'better-sqlite3';
import type { Component } from '../ot/index.js';
import { StorageCorruptError, snapshotHash } from './integrity.js';
import { BUSY_TIMEOUT_MS, openDatabase } from './sqlite-schema.js';
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

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /**
   * SQLite `synchronous` level. 'normal' (default) survives a killed process; 'full' also
   * survives power loss, at the cost of an fsync per commit.
   */
  synchronous?: 'normal' | 'full';
  /**
   * WAL size, in pages, at which a commit also checkpoints the WAL into the database file
   * (SQLite's wal_autocheckpoint). Default 10,000 (about 40 MiB at 4 KiB pages), not SQLite's
   * 1,000: one group commit across many documents dirties a page per document, so at 1,000 a
   * busy server checkpoints (two fsyncs) after nearly every commit. It does not change what a
   * commit guarantees: with 'full' every commit is synced anyway; with 'normal' a commit
   * survives a killed process either way, and only checkpoints sync, so more of the most recent
   * commits (up to this many pages) may be lost to a power failure.
   */
  checkpointPages?: number;
  /**
   * Open the file read only: no lock, nothing created or migrated, every write fails (for
   * reading a database another process serves, as `otter export` does). Default false.
   */
  readOnly?: boolean;
  /** Run `PRAGMA quick_check` when an existing file is opened (O(file size)). Default true. */
  verifyOnOpen?: boolean;
}


interface OpRow {
  version: number;
  op: string;
  client_id: string;
  seq: number;
  author: string | null;
  checksum: number;
}

interface SnapshotRow {
  version: number;
  text: string;
  checksum: number;
  taken_at: number | null;
  hash: number | null;
}

/** The snapshot a row holds, after checking it against its hash. */
function toSnapshot(docId: string, row: SnapshotRow): Snapshot {
  const { version, text, checksum } = row;
  if (row.hash !== snapshotHash(row)) {
    throw new StorageCorruptError(docId, `the snapshot at version ${version} does not match its hash`);
  }
  return row.taken_at === null ? { version, text, checksum } : { version, text, checksum, at: row.taken_at };
}

/** SQLite's reports of a damaged file as {@link StorageCorruptError} for `docId`; others unchanged. */
function corruption(docId: string, e: unknown): unknown {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB')) {
    return new StorageCorruptError(docId, `SQLite reports the file damaged (${code})`);
  }
  if (e instanceof SyntaxError) return new StorageCorruptError(docId, 'a stored op is not valid JSON');
  return e;
}

interface RecoveryRow {
  lost_epoch: string;
  version: number;
  checksum: number;
  text: string;
  guess: string;
  samples: string;
  at: number;
}

interface MarkRow {
  client_id: string;
  seq: number;
  version: number;
  base_version: number;
  fingerprint: string;
}

/** A statement of {@link SqliteStore}'s checked batch failed: redo the batch with savepoints. */
class StatementFailed extends Error {
  constructor(readonly reason: unknown) {
    super(`a statement failed: ${String(reason)}`);
  }
}

interface PendingAppend {
  docId: string;
  expectedHead: number;
  records: OpRecord[];
  marks: ClientMark[];
  context: AppendContext;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function toRecord(row: OpRow): OpRecord {
  const op = JSON.parse(row.op) as Component[];
  const { version, checksum } = row;
  return row.author === null
    ? { version, op, clientId: row.client_id, seq: row.seq, checksum }
    : { version, op, clientId: row.client_id, seq: row.seq, author: row.author, checksum };
}

function toRecovery(row: RecoveryRow): Recovery {
  const { version, checksum, text, guess, at } = row;
  const samples = JSON.parse(row.samples) as Array<[number, number]>;
  return { lostEpoch: row.lost_epoch, version, checksum, text, guess, samples, at };
}


/** See the file comment. */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  /** The lock that keeps other processes from serving this file (see `sqlite-schema.ts`). */
  private readonly lock: Database.Database | undefined;
  private queue: PendingAppend[] = [];
  private scheduled = false;
  private closed = false;
  private readonly stmt;
  private readonly appendAll: (batch: PendingAppend[]) => Array<unknown | undefined>;
  private readonly appendChecked: (batch: PendingAppend[]) => Array<unknown | undefined>;
  /** The epoch of documents this database has never written: made once, with the database. */
  private readonly newEpoch: string;

  /**
   * Opens (creating if needed, with its folder) the database file at `path`. Throws
   * `StoreOpenError` (see `sqlite-schema.ts`) when the file may not be served: damaged, emptied,
   * foreign, of a newer layout, or served by another process; `MissingPackageError` when
   * better-sqlite3, an optional peer of `otter`, is not installed (it is loaded here, so a
   * server on `MemoryStore` never needs it).
   */
  constructor(
    readonly path: string,
    options: SqliteStoreOptions = {},
  ) {
    const checkpointPages = options.checkpointPages ?? 10_000;
    if (!Number.isSafeInteger(checkpointPages) || checkpointPages < 1) {
      throw new RangeError(`option checkpointPages must be a positive integer, got ${String(checkpointPages)}`);
    }
    const opened = openDatabase(path, {
      synchronous: options.synchronous ?? 'normal',
      checkpointPages,
      readOnly: options.readOnly ?? false,
      verify: options.verifyOnOpen ?? true,
    });
    this.db = opened.db;
    this.lock = opened.lock;
    this.newEpoch = opened.instance;
    const db = this.db;
    this.stmt = {
      head: db.prepare<[string], { head: number; trimmed_to: number; epoch: string | null }>(
        'SELECT head, trimmed_to, epoch FROM documents WHERE doc_id = ?',
      ),
      setHead: db.prepare<[string, number, string]>(
        `INSERT INTO documents (doc_id, head, epoch) VALUES (?, ?, ?)
         ON CONFLICT(doc_id) DO UPDATE SET head = excluded.head, epoch = coalesce(documents.epoch, excluded.epoch)`,
      ),
      insertOp: db.prepare<[string, number, string, string, number, string | null, number]>(
        'INSERT INTO ops (doc_id, version, op, client_id, seq, author, checksum) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      upsertMark: db.prepare<[string, string, number, number, number, string]>(
        `INSERT INTO clients (doc_id, client_id, seq, version, base_version, fingerprint) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(doc_id, client_id) DO UPDATE SET seq = excluded.seq, version = excluded.version,
         base_version = excluded.base_version, fingerprint = excluded.fingerprint`,
      ),
      ops: db.prepare<[string, number, number], OpRow>(
        'SELECT version, op, client_id, seq, author, checksum FROM ops WHERE doc_id = ? AND version > ? AND version <= ? ORDER BY version',
      ),
      snapshot: db.prepare<[string, number], SnapshotRow>(
        'SELECT version, text, checksum, taken_at, hash FROM snapshots WHERE doc_id = ? AND version <= ? ORDER BY version DESC LIMIT 1',
      ),
      hasSnapshot: db.prepare<[string, number], { one: number }>(
        'SELECT 1 AS one FROM snapshots WHERE doc_id = ? AND version = ?',
      ),
      putSnapshot: db.prepare<[string, number, string, number, number | null, number]>(
        'INSERT OR IGNORE INTO snapshots (doc_id, version, text, checksum, taken_at, hash) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      recoveries: db.prepare<[string], RecoveryRow>(
        'SELECT lost_epoch, version, checksum, text, guess, samples, at FROM recoveries WHERE doc_id = ?',
      ),
      putRecovery: db.prepare<[string, string, number, number, string, string, string, number]>(
        `INSERT INTO recoveries (doc_id, lost_epoch, version, checksum, text, guess, samples, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(doc_id, lost_epoch) DO UPDATE SET version = excluded.version, checksum = excluded.checksum,
         text = excluded.text, guess = excluded.guess, samples = excluded.samples, at = excluded.at`,
      ),
      // One lookup of the (doc_id, client_id) key per id, however many marks the document has.
      marks: db.prepare<[string, string], MarkRow>(
        `SELECT client_id, seq, version, base_version, fingerprint FROM clients
         WHERE doc_id = ? AND client_id IN (SELECT value FROM json_each(?))`,
      ),
      trimOps: db.prepare<[string, number]>('DELETE FROM ops WHERE doc_id = ? AND version <= ?'),
      trimSnapshots: db.prepare<[string, number]>('DELETE FROM snapshots WHERE doc_id = ? AND version < ?'),
      setTrim: db.prepare<[string, number]>(
        `INSERT INTO documents (doc_id, head, trimmed_to) VALUES (?, 0, ?)
         ON CONFLICT(doc_id) DO UPDATE SET trimmed_to = max(trimmed_to, excluded.trimmed_to)`,
      ),
    };
    // The savepoint path: each append in its own savepoint, so a failing statement fails only it.
    const writeInSavepoint = db.transaction((a: PendingAppend) => this.write(a)); // nested: a savepoint
    this.appendAll = db.transaction((batch: PendingAppend[]) =>
      batch.map((a) => {
        const conflict = this.conflictOf(a);
        if (conflict !== undefined) return conflict;
        try {
          writeInSavepoint(a);
          return undefined;
        } catch (e) {
          return e;
        }
      }),
    );
    // The fast path: every check is made before an append writes, so no savepoints are needed;
    // a statement that throws aborts the whole transaction, which flush then redoes as above.
    this.appendChecked = db.transaction((batch: PendingAppend[]) =>
      batch.map((a) => {
        const conflict = this.conflictOf(a);
        if (conflict !== undefined) return conflict;
        try {
          this.write(a);
        } catch (e) {
          throw new StatementFailed(e);
        }
        return undefined;
      }),
    );
  }

  /**
   * Why `a` may not be appended (its head moved, the document has another epoch, or its
   * versions are not consecutive), if so.
   */
  private conflictOf(a: PendingAppend): VersionConflictError | undefined {
    const row = this.stmt.head.get(a.docId);
    return appendConflict(a.docId, a.expectedHead, a.records, a.context.epoch, row?.head ?? 0, row?.epoch ?? undefined);
  }

  /** Writes a checked append's ops, marks, recovery and new head (inside the caller's transaction). */
  private write(a: PendingAppend): void {
    for (const r of a.records) {
      this.stmt.insertOp.run(a.docId, r.version, JSON.stringify(r.op), r.clientId, r.seq, r.author ?? null, r.checksum);
    }
    for (const m of a.marks) {
      this.stmt.upsertMark.run(a.docId, m.clientId, m.seq, m.version, m.baseVersion, m.fingerprint);
    }
    const recovery = a.context.recovery;
    if (recovery !== undefined) {
      const { lostEpoch, version, checksum, text, guess, samples, at } = recovery;
      this.stmt.putRecovery.run(a.docId, lostEpoch, version, checksum, text, guess, JSON.stringify(samples), at);
    }
    this.stmt.setHead.run(a.docId, a.expectedHead + a.records.length, a.context.epoch);
  }

  /** @inheritdoc */
  async load(docId: string): Promise<LoadedDocument> {
    try {
      const row = this.stmt.snapshot.get(docId, Number.MAX_SAFE_INTEGER);
      const snapshot = row === undefined ? EMPTY_SNAPSHOT : toSnapshot(docId, row);
      const ops = this.stmt.ops.all(docId, snapshot.version, Number.MAX_SAFE_INTEGER).map(toRecord);
      const head = this.stmt.head.get(docId);
      return {
        epoch: head?.epoch ?? this.newEpoch,
        snapshot,
        ops,
        head: head?.head ?? 0,
        trimmedTo: head?.trimmed_to ?? 0,
        recoveries: this.stmt.recoveries.all(docId).map(toRecovery),
      };
    } catch (e) {
      throw corruption(docId, e);
    }
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
    return new Promise((resolve, reject) => {
      this.queue.push({ docId, expectedHead, records, marks, context, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Writes every queued append in one transaction, then answers each. */
  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    let errors: Array<unknown | undefined>;
    try {
      try {
        errors = this.appendChecked(batch);
      } catch (e) {
        // Rolled back as a whole. Only a failure inside an append (not BEGIN or COMMIT) is
        // redone, append by append, to fail just that one as appendAll always did.
        if (!(e instanceof StatementFailed)) throw e;
        errors = this.appendAll(batch);
      }
    } catch (e) {
      for (const a of batch) a.reject(e);
      return;
    }
    batch.forEach((a, i) => {
      const e = errors[i];
      if (e === undefined) a.resolve();
      else a.reject(e);
    });
  }

  /** @inheritdoc */
  async getMarks(docId: string, clientIds: readonly string[]): Promise<ClientMark[]> {
    if (clientIds.length === 0) return [];
    try {
      return this.stmt.marks.all(docId, JSON.stringify(clientIds)).map((m) => ({
        clientId: m.client_id,
        seq: m.seq,
        version: m.version,
        baseVersion: m.base_version,
        fingerprint: m.fingerprint,
      }));
    } catch (e) {
      throw corruption(docId, e);
    }
  }

  /** @inheritdoc */
  async getOps(docId: string, from: number, to: number): Promise<OpRecord[]> {
    try {
      return this.stmt.ops.all(docId, from, to).map(toRecord);
    } catch (e) {
      throw corruption(docId, e);
    }
  }

  /** @inheritdoc */
  async getSnapshot(docId: string, atOrBefore = Number.MAX_SAFE_INTEGER): Promise<Snapshot | undefined> {
    let s: SnapshotRow | undefined;
    try {
      s = this.stmt.snapshot.get(docId, atOrBefore);
    } catch (e) {
      throw corruption(docId, e);
    }
    if (s !== undefined) return toSnapshot(docId, s);
    const trimmed = this.stmt.head.get(docId)?.trimmed_to ?? 0;
    return trimmed === 0 ? EMPTY_SNAPSHOT : undefined;
  }

  /** @inheritdoc */
  async putSnapshot(docId: string, snapshot: Snapshot): Promise<void> {
    this.stmt.putSnapshot.run(docId, snapshot.version, snapshot.text, snapshot.checksum, snapshot.at ?? null, snapshotHash(snapshot));
  }

  /** @inheritdoc */
  async trim(docId: string, version: number): Promise<void> {
    const trimmed = this.stmt.head.get(docId)?.trimmed_to ?? 0;
    if (version <= trimmed) return;
    if (this.stmt.hasSnapshot.get(docId, version) === undefined) {
      throw new Error(`cannot trim ${JSON.stringify(docId)} to ${version}: no snapshot there`);
    }
    this.db.transaction(() => {
      this.stmt.trimOps.run(docId, version);
      this.stmt.trimSnapshots.run(docId, version);
      this.stmt.setTrim.run(docId, version);
    })();
  }

  /** @inheritdoc */
  async ping(): Promise<void> {
    if (this.closed) throw new Error('the store is closed');
    // A real write that commits, in its own transaction: the `probe` row of meta (the time of
    // the last probe). It fails as an append would on a full disk, a read-only file or a lock
    // held by another process; taking the lock and rolling back did not (on a full disk it
    // succeeded). It never waits for the lock: better-sqlite3 is synchronous, so a wait here
    // would stall the whole server while another process holds it.
    this.db.pragma('busy_timeout = 0');
    try {
      this.db
        .prepare("INSERT INTO meta (key, value) VALUES ('probe', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .run(String(Date.now()));
    } finally {
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    this.db.close();
    this.lock?.close();
  }

  /** The database's instance id: made once with it, the epoch of documents it never wrote. */
  get instance(): string {
    return this.newEpoch;
  }
}
