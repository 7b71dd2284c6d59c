import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import type { OpRecord } from '../../src/server/store.js';
import { makeTempDir, removeTempDir, replay } from './helpers.js';
import { storeContract } from './store-contract.js';

let contractDir: string | undefined;

storeContract(
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
      { version: 1, op: ['hello'], clientId: 'c1', seq: 1, author: 'alice' },
      { version: 2, op: [5, ' 😀'], clientId: 'c2', seq: 1 },
      { version: 3, op: [-1, 7], clientId: 'c1', seq: 2 },
    ];
    await a.append('d', 0, recs.slice(0, 2), [
      { clientId: 'c1', seq: 1, version: 1, baseVersion: 0, fingerprint: 'f1' },
      { clientId: 'c2', seq: 1, version: 2, baseVersion: 0, fingerprint: 'f2' },
    ]);
    await a.putSnapshot('d', { version: 2, text: 'hello 😀' });
    // Not awaited before close: close lets pending appends finish first.
    const pending = a.append('d', 2, recs.slice(2), [
      { clientId: 'c1', seq: 2, version: 3, baseVersion: 2, fingerprint: 'f3' },
    ]);
    await a.close();
    await pending;

    const b = new SqliteStore(file);
    open.push(b);
    const loaded = await b.load('d');
    expect(loaded.snapshot).toEqual({ version: 2, text: 'hello 😀' });
    expect(loaded.ops).toEqual(recs.slice(2));
    expect(loaded.marks.sort((x, y) => x.clientId.localeCompare(y.clientId))).toEqual([
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
    await expect(s.append('d', 0, [{ version: 1, op: ['x'], clientId: 'c', seq: 1 }], [])).rejects.toThrow();
  });

  it('runs in WAL mode', async () => {
    const file = fresh();
    const s = new SqliteStore(file);
    open.push(s);
    await s.append('d', 0, [{ version: 1, op: ['x'], clientId: 'c', seq: 1 }], []);
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
});
