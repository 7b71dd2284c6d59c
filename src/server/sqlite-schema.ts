/**
 * The SQLite layout of {@link SqliteStore} and how its file is opened: refused, with a
 * {@link StoreOpenError} naming the reason, unless it is a new file or an Otter database this
 * version can read whose structure passes `PRAGMA quick_check`; older layouts are migrated;
 * one process at a time (a lock held for as long as the store is open).
 *
 * What the file records to be checked again: its layout (`meta.schema`), its instance id
 * (`meta.epoch`: made once with the database, the epoch of documents it never wrote), each
 * document's epoch and head, every op's chained checksum and every snapshot's hash
 * (`integrity.ts`).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import type { Component } from '../ot/index.js';
import { EMPTY_CHECKSUM, chainChecksum } from '../protocol/checksum.js';
import { snapshotHash } from './integrity.js';
import { requireOptional } from './optional-package.js';

/** The database file cannot be served: why, in words an operator can act on. */
export class StoreOpenError extends Error {
  override readonly name = 'StoreOpenError';

  /** @param path the database file; @param reason what is wrong and what to do. */
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`cannot open the database ${path}: ${reason}`);
  }
}

/** The layout written by this version; older layouts are migrated when opened. */
export const SCHEMA_VERSION = 4;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS documents (
  doc_id TEXT PRIMARY KEY,
  head INTEGER NOT NULL,
  trimmed_to INTEGER NOT NULL DEFAULT 0,
  epoch TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ops (
  doc_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  op TEXT NOT NULL,
  client_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  author TEXT,
  checksum INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (doc_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
  doc_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  text TEXT NOT NULL,
  checksum INTEGER NOT NULL DEFAULT 0,
  taken_at INTEGER,
  hash INTEGER,
  PRIMARY KEY (doc_id, version)
);
CREATE TABLE IF NOT EXISTS recoveries (
  doc_id TEXT NOT NULL,
  lost_epoch TEXT NOT NULL,
  version INTEGER NOT NULL,
  checksum INTEGER NOT NULL,
  text TEXT NOT NULL,
  guess TEXT NOT NULL,
  samples TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (doc_id, lost_epoch)
);
CREATE TABLE IF NOT EXISTS clients (
  doc_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  version INTEGER NOT NULL,
  base_version INTEGER NOT NULL,
  fingerprint TEXT NOT NULL,
  PRIMARY KEY (doc_id, client_id)
) WITHOUT ROWID;
`;

/**
 * Brings a database of an older layout to {@link SCHEMA_VERSION} in one transaction.
 * Layout 1 (no `meta` table) had no epochs, checksums or recoveries: each document gets a new
 * epoch, and checksums are chained through its ops from the empty text when its whole history
 * is kept, else from its oldest snapshot, whose checksum is taken as that of one insert of its
 * whole text (the history before it is gone).
 * Layouts 1 and 2 had no snapshot times: their snapshots keep an unknown time (retention by
 * age never trims to them). Layouts 1 to 3 had no snapshot hashes: each snapshot's is computed
 * from what it holds (a damage that happened before is not detected in those).
 */
function migrate(db: Database.Database): void {
  const columns = (table: string): string[] =>
    (db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>).map((c) => c.name);
  db.transaction(() => {
    if (!columns('documents').includes('epoch')) db.exec('ALTER TABLE documents ADD COLUMN epoch TEXT');
    if (!columns('snapshots').includes('taken_at')) db.exec('ALTER TABLE snapshots ADD COLUMN taken_at INTEGER');
    if (!columns('ops').includes('checksum')) {
      db.exec('ALTER TABLE ops ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0');
      db.exec('ALTER TABLE snapshots ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0');
      const docs = db.prepare('SELECT doc_id, trimmed_to FROM documents').all() as Array<{ doc_id: string; trimmed_to: number }>;
      const snapshots = db.prepare<[string], { version: number; text: string }>(
        'SELECT version, text FROM snapshots WHERE doc_id = ? ORDER BY version',
      );
      const ops = db.prepare<[string], { version: number; op: string }>(
        'SELECT version, op FROM ops WHERE doc_id = ? ORDER BY version',
      );
      const setOp = db.prepare('UPDATE ops SET checksum = ? WHERE doc_id = ? AND version = ?');
      const setSnapshot = db.prepare('UPDATE snapshots SET checksum = ? WHERE doc_id = ? AND version = ?');
      for (const { doc_id: doc, trimmed_to: trimmedTo } of docs) {
        const snaps = snapshots.all(doc);
        // With its whole history kept, a document is chained from the empty text like a new one.
        const first = trimmedTo === 0 ? undefined : snaps[0];
        let sum = first === undefined || first.text === '' ? EMPTY_CHECKSUM : chainChecksum(EMPTY_CHECKSUM, [first.text]);
        const at = new Map<number, number>([[first?.version ?? 0, sum]]);
        for (const row of ops.all(doc)) {
          if (row.version <= (first?.version ?? 0)) continue;
          sum = chainChecksum(sum, JSON.parse(row.op) as Component[]);
          setOp.run(sum, doc, row.version);
          at.set(row.version, sum);
        }
        for (const snap of snaps) setSnapshot.run(at.get(snap.version) ?? EMPTY_CHECKSUM, doc, snap.version);
      }
    }
    if (!columns('snapshots').includes('hash')) {
      db.exec('ALTER TABLE snapshots ADD COLUMN hash INTEGER');
      const keys = db.prepare<[], { doc_id: string; version: number }>('SELECT doc_id, version FROM snapshots').all();
      const row = db.prepare<[string, number], { version: number; text: string; checksum: number }>(
        'SELECT version, text, checksum FROM snapshots WHERE doc_id = ? AND version = ?',
      );
      const setHash = db.prepare('UPDATE snapshots SET hash = ? WHERE doc_id = ? AND version = ?');
      for (const k of keys) setHash.run(snapshotHash(row.get(k.doc_id, k.version) as { version: number; text: string; checksum: number }), k.doc_id, k.version);
    }
    const unset = db.prepare('SELECT doc_id FROM documents WHERE epoch IS NULL').all() as Array<{ doc_id: string }>;
    const setEpoch = db.prepare('UPDATE documents SET epoch = ? WHERE doc_id = ?');
    for (const { doc_id: doc } of unset) setEpoch.run(randomUUID(), doc);
    db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(
      String(SCHEMA_VERSION),
    );
  })();
}

/** How a database file is opened. */
export interface OpenOptions {
  /** SQLite `synchronous` level ('normal' or 'full'). */
  readonly synchronous: 'normal' | 'full';
  /** WAL pages at which a commit checkpoints. */
  readonly checkpointPages: number;
  /** Read only, without the lock and without creating or migrating anything (for `otter export`). */
  readonly readOnly: boolean;
  /** Run `PRAGMA quick_check` on an existing file first. */
  readonly verify: boolean;
}

/** An opened database: its connection, the lock held for it, and its instance id. */
export interface OpenedDatabase {
  readonly db: Database.Database;
  /** Held until closed; undefined for ':memory:' and read-only opens. */
  readonly lock: Database.Database | undefined;
  /** `meta.epoch`: the epoch of documents this database never wrote. */
  readonly instance: string;
}

/** How long a write waits for another process's lock before failing (appends only; pings never wait). */
export const BUSY_TIMEOUT_MS = 5000;

function sqliteCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A failure of SQLite while opening `path`, as an {@link StoreOpenError} where it has a known cause. */
function openFailure(path: string, e: unknown): unknown {
  if (e instanceof StoreOpenError) return e;
  const code = sqliteCode(e) ?? '';
  const message = e instanceof Error ? e.message : String(e);
  if (code === 'SQLITE_NOTADB') return new StoreOpenError(path, 'the file is not a SQLite database');
  if (code.startsWith('SQLITE_CORRUPT')) return new StoreOpenError(path, `the database is damaged (${message}); restore it from a backup`);
  if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_')) {
    return new StoreOpenError(path, `another process holds it locked (${message})`);
  }
  if (code.startsWith('SQLITE_')) return new StoreOpenError(path, `${message} (${code})`);
  return e;
}

/**
 * Takes the lock that makes `path` served by one process at a time: a small SQLite file
 * beside it (`path.lock`) held with an exclusive lock in exclusive locking mode, which the
 * operating system releases when the process ends, however it ends. Throws
 * {@link StoreOpenError} when another process (or another open store of this one) holds it.
 * `Sqlite` is better-sqlite3's constructor.
 */
function holdLock(path: string, Sqlite: typeof Database): Database.Database {
  const file = `${path}.lock`;
  let lock: Database.Database;
  try {
    lock = new Sqlite(file);
  } catch (e) {
    throw new StoreOpenError(path, `cannot create its lock file ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    lock.pragma('busy_timeout = 0');
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('BEGIN EXCLUSIVE');
    lock.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL); DELETE FROM holder;');
    lock.prepare('INSERT INTO holder (pid) VALUES (?)').run(process.pid);
    lock.exec('COMMIT');
    return lock;
  } catch (e) {
    lock.close();
    const code = sqliteCode(e) ?? '';
    if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED') {
      throw new StoreOpenError(path, `another Otter process is serving it (its lock ${file} is held); stop that one first`);
    }
    throw new StoreOpenError(path, `cannot lock it through ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The tables in `db`. */
function tablesOf(db: Database.Database): Set<string> {
  return new Set(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]);
}

function metaValue(db: Database.Database, key: string): string | undefined {
  return (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
}

/**
 * The layout of an existing database, refusing what this version cannot serve: no Otter
 * tables (emptied, or another program's), no recorded layout or instance id, or a layout
 * newer than {@link SCHEMA_VERSION}.
 */
function existingLayout(path: string, db: Database.Database): number {
  const tables = tablesOf(db);
  if (tables.has('meta')) {
    const schema = metaValue(db, 'schema');
    const layout = Number(schema);
    if (schema === undefined || !Number.isSafeInteger(layout) || layout < 2) {
      throw new StoreOpenError(path, `its layout record is missing or damaged (${JSON.stringify(schema ?? null)}); restore it from a backup`);
    }
    if (layout > SCHEMA_VERSION) {
      throw new StoreOpenError(path, `it was written by a newer Otter (layout ${layout}; this version reads up to ${SCHEMA_VERSION})`);
    }
    if (metaValue(db, 'epoch') === undefined) {
      throw new StoreOpenError(path, 'its instance id is missing; restore it from a backup');
    }
    return layout;
  }
  if (tables.has('documents') && tables.has('ops')) return 1;
  if (tables.size === 0) {
    throw new StoreOpenError(path, 'the file holds no Otter data (an emptied or foreign database); move it away to start a new one');
  }
  throw new StoreOpenError(path, `it is not an Otter database (tables: ${[...tables].slice(0, 5).join(', ')})`);
}

/**
 * Opens the database at `path` for a {@link SqliteStore} (see the file comment): checks the
 * file, takes the lock, creates or migrates the layout (in one transaction each) and returns
 * the connection. Throws {@link StoreOpenError} with the reason when the file may not be
 * served; nothing is written to a refused file. Throws `MissingPackageError` when
 * better-sqlite3 is not installed.
 */
export function openDatabase(path: string, options: OpenOptions): OpenedDatabase {
  // Loaded here, not imported: a server on MemoryStore needs no native module.
  const Sqlite = requireOptional<typeof Database>('better-sqlite3', 'SqliteStore (the store of otter serve without --memory)');
  const memory = path === ':memory:';
  const existed = !memory && existsSync(path);
  if (options.readOnly && !existed) throw new StoreOpenError(path, 'there is no database file there');
  if (!memory && !options.readOnly) mkdirSync(dirname(path), { recursive: true });
  const lock = memory || options.readOnly ? undefined : holdLock(path, Sqlite);
  let db: Database.Database | undefined;
  try {
    if (existed && statSync(path).size === 0) {
      throw new StoreOpenError(path, 'the file is empty (0 bytes) but a database was expected; move it away to start a new one');
    }
    db = new Sqlite(path, options.readOnly ? { readonly: true, fileMustExist: true } : {});
    if (!options.readOnly) {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma(`wal_autocheckpoint = ${options.checkpointPages}`);
    }
    const layout = existed ? existingLayout(path, db) : SCHEMA_VERSION;
    if (existed && options.verify) {
      const problems = db.pragma('quick_check(5)', { simple: false }) as Array<{ quick_check: string }>;
      if (problems.length !== 1 || problems[0]?.quick_check !== 'ok') {
        const list = problems.map((p) => p.quick_check).join('; ');
        throw new StoreOpenError(path, `it failed PRAGMA quick_check (${list}); restore it from a backup`);
      }
    }
    if (options.readOnly) {
      if (layout !== SCHEMA_VERSION) {
        throw new StoreOpenError(path, `its layout ${layout} is older than this version's ${SCHEMA_VERSION}; serve it once to upgrade it`);
      }
    } else if (!existed) {
      const fresh = db;
      fresh.transaction(() => {
        fresh.exec(SCHEMA);
        fresh.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(String(SCHEMA_VERSION));
        fresh.prepare("INSERT INTO meta (key, value) VALUES ('epoch', ?)").run(randomUUID());
      })();
    } else if (layout < SCHEMA_VERSION) {
      db.exec(SCHEMA);
      migrate(db);
      db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)").run(randomUUID());
    }
    return { db, lock, instance: metaValue(db, 'epoch') as string };
  } catch (e) {
    db?.close();
    lock?.close();
    throw openFailure(path, e);
  }
}
