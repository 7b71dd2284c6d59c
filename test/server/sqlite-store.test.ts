import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EMPTY_CHECKSUM, chainChecksum } from '../../src/protocol/checksum.js';
import { StorageCorruptError } from '../../src/server/integrity.js';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import { storeContract } from '../../src/server/store-contract.js';
import type { OpRecord } from '../../src/server/store.js';
import { replay } from './helpers.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';

let contractDir: string | undefined;

storeContract(
  { describe, it, beforeEach, afterEach, expect },
  'SqliteStore',
  async () => {
    contractDir = makeTempDir('otter-sqlite-contract-');
    return new SqliteStore(join(contractDir, 'otter.db'));
  },
  () => {
    if (contractDir !== undefined) removeTempDir(contractDir);
    contractDir = undefined;
  },
);

describe('SqliteStore specifics', () => {
  let dir: string | undefined;
  const open: SqliteStore[] = [];

  function fresh(): string {
    dir = makeTempDir('otter-sqlite-');
    return join(dir, 'nested', 'folder', 'otter.db');
  }

  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    if (dir !== undefined) removeTempDir(dir);
    dir = undefined;
  });

  it('keeps everything across close and reopen', async () => {
    const file = fresh();
    const a = new SqliteStore(file);
    const recs: OpRecord[] = [
      { version: 1, op: ['hello'], clientId: 'c1', seq: 1, author: 'alice', checksum: 11 },
      { version: 2, op: [5, ' 😀'], clientId: 'c2', seq: 1, checksum: 12 },
      { version: 3, op: [-1, 7], clientId: 'c1', seq: 2, checksum: 2 ** 53 - 1 },
    ];
    await a.append(
      'd',
      0,
      recs.slice(0, 2),
      [
        { clientId: 'c1', seq: 1, version: 1, baseVersion: 0, fingerprint: 'f1' },
        { clientId: 'c2', seq: 1, version: 2, baseVersion: 0, fingerprint: 'f2' },
      ],
      { epoch: 'e1' },
    );
    await a.putSnapshot('d', { version: 2, text: 'hello 😀', checksum: 12 });
    // Not awaited before close: close lets pending appends finish first.
    const pending = a.append('d', 2, recs.slice(2), [{ clientId: 'c1', seq: 2, version: 3, baseVersion: 2, fingerprint: 'f3' }], {
      epoch: 'e1',
      recovery: { lostEpoch: 'e0', version: 9, checksum: 99, text: 'lost 😀', guess: 'lost 😀!', samples: [[9, 99], [3, 7]], at: 3 },
    });
    await a.close();
    await pending;

    const b = new SqliteStore(file);
    open.push(b);
    const loaded = await b.load('d');
    expect(loaded.epoch).toBe('e1');
    expect(loaded.snapshot).toEqual({ version: 2, text: 'hello 😀', checksum: 12 });
    expect(loaded.ops).toEqual(recs.slice(2));
    expect(loaded.recoveries).toEqual([{ lostEpoch: 'e0', version: 9, checksum: 99, text: 'lost 😀', guess: 'lost 😀!', samples: [[9, 99], [3, 7]], at: 3 }]);
    const marks = await b.getMarks('d', ['c1', 'c2']);
    expect(marks.sort((x, y) => x.clientId.localeCompare(y.clientId))).toEqual([
      { clientId: 'c1', seq: 2, version: 3, baseVersion: 2, fingerprint: 'f3' },
      { clientId: 'c2', seq: 1, version: 2, baseVersion: 0, fingerprint: 'f2' },
    ]);
    expect(await b.getOps('d', 0, 3)).toEqual(recs);
    expect(replay(await b.getOps('d', 0, 3))).toBe('ello 😀');
    await b.trim('d', 2);
    await b.close();
    open.pop();

    const c = new SqliteStore(file);
    open.push(c);
    expect((await c.load('d')).trimmedTo).toBe(2);
    expect(await c.getOps('d', 0, 3)).toEqual(recs.slice(2));
  });

  it('rejects appends after close', async () => {
    const s = new SqliteStore(fresh());
    await s.close();
    await expect(s.append('d', 0, [{ version: 1, op: ['x'], clientId: 'c', seq: 1, checksum: 1 }], [], { epoch: 'e' })).rejects.toThrow();
  });

  it('runs in WAL mode', async () => {
    const file = fresh();
    const s = new SqliteStore(file);
    open.push(s);
    await s.append('d', 0, [{ version: 1, op: ['x'], clientId: 'c', seq: 1, checksum: 1 }], [], { epoch: 'e' });
    const raw = new Database(file, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      const row = raw.prepare('SELECT op FROM ops WHERE doc_id = ? AND version = 1').get('d') as { op: string };
      expect(JSON.parse(row.op)).toEqual(['x']);
    } finally {
      raw.close();
    }
  });

  it('ping fails at once, without waiting for the lock, while another process holds the write lock', async () => {
    const file = fresh();
    const s = new SqliteStore(file);
    open.push(s);
    await s.ping();
    const other = new Database(file);
    try {
      other.prepare('BEGIN IMMEDIATE').run();
      await expect(s.ping()).rejects.toThrow(/locked|busy/i);
      other.prepare('ROLLBACK').run();
    } finally {
      other.close();
    }
    await s.ping();
  });

  it('migrates a database of the first layout: epochs for its documents, checksums chained from the empty text, or from the oldest snapshot once trimmed', async () => {
    const file = fresh();
    const s0 = new SqliteStore(file);
    await s0.close();
    // The first layout, as Otter 0.1 wrote it: no meta table, no epochs, no checksums.
    const raw = new Database(file);
    raw.exec(`DROP TABLE meta; DROP TABLE recoveries; DROP TABLE documents; DROP TABLE ops; DROP TABLE snapshots;
      CREATE TABLE documents (doc_id TEXT PRIMARY KEY, head INTEGER NOT NULL, trimmed_to INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
      CREATE TABLE ops (doc_id TEXT NOT NULL, version INTEGER NOT NULL, op TEXT NOT NULL, client_id TEXT NOT NULL,
        seq INTEGER NOT NULL, author TEXT, PRIMARY KEY (doc_id, version)) WITHOUT ROWID;
      CREATE TABLE snapshots (doc_id TEXT NOT NULL, version INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY (doc_id, version));
      INSERT INTO documents VALUES ('fresh', 2, 0), ('trimmed', 3, 2), ('whole', 3, 0);
      INSERT INTO ops VALUES ('fresh', 1, '["ab"]', 'c', 1, NULL), ('fresh', 2, '[2,"c"]', 'c', 2, NULL),
        ('trimmed', 3, '[2,"!"]', 'c', 3, NULL),
        ('whole', 1, '["x"]', 'c', 1, NULL), ('whole', 2, '[1,"y"]', 'c', 2, NULL), ('whole', 3, '[2,"z"]', 'c', 3, NULL);
      INSERT INTO snapshots VALUES ('trimmed', 2, 'hi'), ('whole', 2, 'xy');`);
    raw.close();
    const s = new SqliteStore(file);
    open.push(s);
    const fresh1 = chainChecksum(EMPTY_CHECKSUM, ['ab']);
    const freshDoc = await s.load('fresh');
    expect(freshDoc.epoch).toMatch(/^[0-9a-f-]{36}$/);
    expect(freshDoc.ops.map((r) => r.checksum)).toEqual([fresh1, chainChecksum(fresh1, [2, 'c'])]);
    const trimmed = await s.load('trimmed');
    const base = chainChecksum(EMPTY_CHECKSUM, ['hi']);
    expect(trimmed.snapshot).toEqual({ version: 2, text: 'hi', checksum: base });
    expect(trimmed.ops.map((r) => r.checksum)).toEqual([chainChecksum(base, [2, '!'])]);
    expect(trimmed.epoch).not.toBe(freshDoc.epoch);
    // A snapshot in the middle of a whole history: every op chained from the empty text.
    const sums = [['x'], [1, 'y'], [2, 'z']].reduce<number[]>((acc, op) => [...acc, chainChecksum(acc[acc.length - 1] ?? EMPTY_CHECKSUM, op)], []);
    expect((await s.getOps('whole', 0, 3)).map((r) => r.checksum)).toEqual(sums);
    expect(await s.getSnapshot('whole')).toEqual({ version: 2, text: 'xy', checksum: sums[1] });
    // The migrated store takes appends under the epoch it gave.
    await s.append('fresh', 2, [{ version: 3, op: [3, 'd'], clientId: 'c', seq: 3, checksum: 5 }], [], { epoch: freshDoc.epoch as string });
    expect((await s.load('fresh')).ops).toHaveLength(3);
  });

  /** A new database file holding document 'd': one op ('ab') and a snapshot at version 1, taken at 5. */
  async function oneSnapshot(): Promise<string> {
    const file = fresh();
    const s0 = new SqliteStore(file);
    await s0.append('d', 0, [{ version: 1, op: ['ab'], clientId: 'c', seq: 1, checksum: 7 }], [], { epoch: 'e' });
    await s0.putSnapshot('d', { version: 1, text: 'ab', checksum: 7, at: 5 });
    await s0.close();
    return file;
  }

  it('migrates a database of the second layout: snapshots get a time column, unknown for the old ones', async () => {
    const file = await oneSnapshot();
    // The second layout: no taken_at column.
    const raw = new Database(file);
    raw.exec(`CREATE TABLE old_snapshots AS SELECT doc_id, version, text, checksum FROM snapshots; DROP TABLE snapshots;
      CREATE TABLE snapshots (doc_id TEXT NOT NULL, version INTEGER NOT NULL, text TEXT NOT NULL,
        checksum INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (doc_id, version));
      INSERT INTO snapshots SELECT * FROM old_snapshots; DROP TABLE old_snapshots;
      UPDATE meta SET value = '2' WHERE key = 'schema';`);
    raw.close();
    const s = new SqliteStore(file);
    open.push(s);
    expect((await s.load('d')).snapshot).toEqual({ version: 1, text: 'ab', checksum: 7 });
    await s.putSnapshot('d', { version: 1, text: 'ab', checksum: 7, at: 9 }); // kept: one per version
    expect(await s.getSnapshot('d')).toEqual({ version: 1, text: 'ab', checksum: 7 });
    await s.append('d', 1, [{ version: 2, op: [2, 'c'], clientId: 'c', seq: 2, checksum: 8 }], [], { epoch: 'e' });
    await s.putSnapshot('d', { version: 2, text: 'abc', checksum: 8, at: 11 });
    expect(await s.getSnapshot('d')).toEqual({ version: 2, text: 'abc', checksum: 8, at: 11 });
    const check = new Database(file, { readonly: true });
    expect((check.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as { value: string }).value).toBe('4');
    check.close();
  });

  it('migrates a database of the third layout: every snapshot gets its hash, checked from then on', async () => {
    const file = await oneSnapshot();
    const raw = new Database(file);
    raw.exec("ALTER TABLE snapshots DROP COLUMN hash; UPDATE meta SET value = '3' WHERE key = 'schema';");
    raw.close();
    const s1 = new SqliteStore(file);
    expect((await s1.load('d')).snapshot).toEqual({ version: 1, text: 'ab', checksum: 7, at: 5 });
    await s1.close();
    const damage = new Database(file);
    damage.exec("UPDATE snapshots SET text = 'aB'");
    damage.close();
    const s = new SqliteStore(file);
    open.push(s);
    await expect(s.load('d')).rejects.toBeInstanceOf(StorageCorruptError);
    await expect(s.getSnapshot('d')).rejects.toThrow(/snapshot at version 1 does not match its hash/);
  });
});
