/**
 * Damaged, emptied, foreign and shared database files, with real SQLite files: what may not be
 * served is refused (the file at open with a StoreOpenError, a document at load with
 * `storage-corrupt`), never served as if it were right; everything else goes on being served.
 *
 * Laws:
 * - an existing file that is empty, not SQLite, not Otter's, of a newer layout, or fails
 *   `PRAGMA quick_check` is refused when opened, and nothing is written to it;
 * - one file is open in one store at a time; the lock goes with the store;
 * - a document whose snapshot, ops or recorded head do not agree is refused with
 *   `storage-corrupt` on every request (no `retry` in the message), counted and reported, and
 *   the other documents of the file are served unchanged.
 */
import { closeSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, OtterError } from '../../src/protocol/errors.js';
import { StorageCorruptError } from '../../src/server/integrity.js';
import { Sequencer } from '../../src/server/sequencer.js';
import { StoreOpenError } from '../../src/server/sqlite-schema.js';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { within } from '../support/wait.js';

let dir: string | undefined;
const stores: SqliteStore[] = [];
const sequencers: Sequencer[] = [];

afterEach(async () => {
  for (const s of sequencers.splice(0)) await within(s.close(), 5000, 'Sequencer.close');
  for (const s of stores.splice(0)) await s.close();
  if (dir !== undefined) removeTempDir(dir);
  dir = undefined;
});

function file(name = 'otter.db'): string {
  dir ??= makeTempDir('otter-integrity-');
  return join(dir, name);
}

function open(path: string): SqliteStore {
  const s = new SqliteStore(path);
  stores.push(s);
  return s;
}

function sequencer(store: SqliteStore, errors: unknown[] = []): Sequencer {
  const s = new Sequencer(store, { idleTimeout: 0, onError: (e) => errors.push(e) });
  sequencers.push(s);
  return s;
}

/** Writes `docs` documents of `edits` appends each through a sequencer, then closes everything. */
async function populate(path: string, docs: number, edits: number, text = (d: number, i: number) => `<${d}:${i}>`): Promise<void> {
  const store = new SqliteStore(path);
  const s = new Sequencer(store, { idleTimeout: 0 });
  for (let d = 0; d < docs; d++) {
    let length = 0;
    for (let i = 0; i < edits; i++) {
      const t = text(d, i);
      await s.submit({ docId: `doc${d}`, clientId: 'w', seq: i + 1, baseVersion: i, op: length === 0 ? [t] : [length, t] });
      length += t.length;
    }
  }
  await s.close();
  await store.close();
}

function expectRefused(path: string, reason: RegExp): void {
  let error: unknown;
  try {
    stores.push(new SqliteStore(path));
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(StoreOpenError);
  expect((error as StoreOpenError).reason).toMatch(reason);
}

/** The code and message a request to `docId` is refused with. */
async function refusal(s: Sequencer, docId: string): Promise<OtterError> {
  const e = await s.getSnapshot(docId).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(OtterError);
  return e as OtterError;
}

describe('opening a database file', () => {
  it('a new path starts empty', async () => {
    const s = sequencer(open(file()));
    expect(await s.getSnapshot('d')).toMatchObject({ version: 0, text: '' });
  });

  it('an existing file of 0 bytes (a truncated database) is refused and left as it was', () => {
    const path = file();
    writeFileSync(path, '');
    expectRefused(path, /empty \(0 bytes\)/);
    expect(statSync(path).size).toBe(0);
  });

  it('a database truncated to 0 bytes after it held documents is refused', async () => {
    const path = file();
    await populate(path, 2, 5);
    writeFileSync(path, '');
    expectRefused(path, /empty/);
  });

  it('a file that is not SQLite is refused', () => {
    const path = file();
    writeFileSync(path, 'x'.repeat(5000));
    expectRefused(path, /not a SQLite database/);
  });

  it("another program's SQLite database is refused, and so is one without tables", () => {
    const foreign = file('foreign.db');
    const db = new Database(foreign);
    db.exec('CREATE TABLE customers (id INTEGER)');
    db.close();
    expectRefused(foreign, /not an Otter database/);
    const bare = file('bare.db');
    const empty = new Database(bare);
    empty.pragma('user_version = 1'); // a valid header, no tables
    empty.close();
    expectRefused(bare, /holds no Otter data/);
  });

  it('a database written by a newer layout is refused', async () => {
    const path = file();
    await populate(path, 1, 2);
    const db = new Database(path);
    db.prepare("UPDATE meta SET value = '99' WHERE key = 'schema'").run();
    db.close();
    expectRefused(path, /newer Otter \(layout 99/);
  });

  it('a database whose structure fails PRAGMA quick_check is refused', async () => {
    const path = file();
    await populate(path, 60, 30);
    const pageSize = 4096;
    const pages = statSync(path).size / pageSize;
    expect(pages).toBeGreaterThan(8);
    // Garbage over a page in the middle of the file: b-tree pages there no longer parse.
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, Math.floor(pages / 2) * pageSize);
    closeSync(fd);
    expectRefused(path, /quick_check|damaged/);
  });

  it('one store at a time: a second open of the same file is refused until the first closes', async () => {
    const path = file();
    const first = open(path);
    expectRefused(path, /another Otter process is serving it/);
    await first.close();
    stores.splice(stores.indexOf(first), 1);
    const second = open(path);
    expect(second.instance).toBe(first.instance);
  });
});

describe('a document whose stored data does not hold together', () => {
  /** Populates three documents, damages `doc1` with `sql`, and reopens the file. */
  async function damaged(sql: string): Promise<{ s: Sequencer; errors: unknown[]; before: Map<string, string> }> {
    const path = file();
    await populate(path, 3, 12);
    const reader = new SqliteStore(path);
    const rs = new Sequencer(reader, { idleTimeout: 0 });
    const before = new Map<string, string>();
    for (const d of ['doc0', 'doc2']) before.set(d, (await rs.getSnapshot(d)).text);
    await rs.close();
    await reader.close();
    const db = new Database(path);
    db.exec(sql);
    db.close();
    const errors: unknown[] = [];
    return { s: sequencer(open(path), errors), errors, before };
  }

  const cases: Array<{ name: string; sql: string; detail: RegExp }> = [
    {
      name: 'an op changed in place',
      sql: `UPDATE ops SET op = '[9, "<1:X>"]' WHERE doc_id = 'doc1' AND version = 4`,
      detail: /version 4 does not match its checksum/,
    },
    { name: 'an op lost', sql: `DELETE FROM ops WHERE doc_id = 'doc1' AND version = 7`, detail: /version 6 is followed by version 8/ },
    { name: 'the last op lost (the head no longer counted from rows)', sql: `DELETE FROM ops WHERE doc_id = 'doc1' AND version = 12`, detail: /recorded head is version 12/ },
    { name: 'a recorded head moved back', sql: `UPDATE documents SET head = 9 WHERE doc_id = 'doc1'`, detail: /recorded head is version 9/ },
    { name: 'an op that is not JSON', sql: `UPDATE ops SET op = '[9, "<1' WHERE doc_id = 'doc1' AND version = 5`, detail: /not valid JSON/ },
  ];
  for (const c of cases) {
    it(`${c.name}: refused with storage-corrupt and reported; the others are served unchanged`, async () => {
      const { s, errors, before } = await damaged(c.sql);
      for (let attempt = 0; attempt < 2; attempt++) {
        const e = await refusal(s, 'doc1');
        expect(e.code).toBe(ErrorCode.StorageCorrupt);
        expect(e.message).toMatch(c.detail);
        expect(e.message).not.toMatch(/retry/);
      }
      const submit = await s
        .submit({ docId: 'doc1', clientId: 'x', seq: 1, baseVersion: 0, op: ['new'] })
        .then(() => undefined, (err: unknown) => err);
      expect((submit as OtterError).code).toBe(ErrorCode.StorageCorrupt);
      expect(errors.length).toBeGreaterThanOrEqual(3);
      expect(errors.every((err) => err instanceof StorageCorruptError)).toBe(true);
      for (const [d, text] of before) expect((await s.getSnapshot(d)).text).toBe(text);
    });
  }

  it('a snapshot whose text was changed in place is refused', async () => {
    const path = file();
    const store = new SqliteStore(path);
    const s = new Sequencer(store, { idleTimeout: 0, snapshotEvery: 5 });
    for (let i = 0; i < 7; i++) {
      await s.submit({ docId: 'd', clientId: 'w', seq: i + 1, baseVersion: i, op: i === 0 ? ['abcd'] : [4 + (i - 1) * 2, 'xy'] });
    }
    await s.close();
    await store.close();
    const db = new Database(path);
    expect(db.prepare("UPDATE snapshots SET text = replace(text, 'abcd', 'abce') WHERE doc_id = 'd' AND version = 5").run().changes).toBe(1);
    db.close();
    const e = await refusal(sequencer(open(path)), 'd');
    expect(e.code).toBe(ErrorCode.StorageCorrupt);
    expect(e.message).toMatch(/snapshot at version 5 does not match its hash/);
  });

  it('random bytes over stored text in the last page: the document is refused, not served wrong', async () => {
    const path = file();
    // Distinctive text, so its bytes can be found in the file.
    await populate(path, 3, 40, (d, i) => `~${d}~${String(i).padStart(3, '0')}~lorem ipsum dolor sit amet~`);
    const raw = readFileSync(path);
    const at = raw.lastIndexOf(Buffer.from('~1~039~lorem'));
    expect(at).toBeGreaterThan(0);
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from('#7#Q#9'), 0, 6, at + 7);
    closeSync(fd);
    const s = sequencer(open(path));
    const e = await refusal(s, 'doc1');
    expect(e.code).toBe(ErrorCode.StorageCorrupt);
    expect((await s.getSnapshot('doc0')).version).toBe(40);
    expect((await s.getSnapshot('doc2')).version).toBe(40);
  });
});

describe('damaged older history', () => {
  it('refuses only the submissions that reach back into it; an edit at the head in the same batch is applied', async () => {
    const path = file();
    const writer = new SqliteStore(path);
    const w = new Sequencer(writer, { idleTimeout: 0, snapshotEvery: 20 });
    for (let i = 0; i < 30; i++) {
      await w.submit({ docId: 'd', clientId: 'w', seq: i + 1, baseVersion: i, op: i === 0 ? ['<0>'] : [i * 3, `<${i % 10}>`] });
    }
    await w.close();
    await writer.close();
    const db = new Database(path);
    expect(db.prepare(`UPDATE ops SET op = '[33, "<X>"]' WHERE doc_id = 'd' AND version = 12`).run().changes).toBe(1);
    db.close();
    const errors: unknown[] = [];
    const s = new Sequencer(open(path), { idleTimeout: 0, memoryHistory: 10, onError: (e) => errors.push(e) });
    sequencers.push(s);
    expect((await s.getSnapshot('d')).version).toBe(30); // the snapshot at 20 and the ops after it are sound
    // Both wait behind an open that reads its client's mark from the store: one batch.
    const opening = s.open('d', 'reader');
    const [late, head] = await s.submitMany([
      { docId: 'd', clientId: 'late', seq: 1, baseVersion: 5, op: ['L', 15] },
      { docId: 'd', clientId: 'head', seq: 1, baseVersion: 30, op: ['H', 90] },
    ]);
    expect((late as OtterError).code).toBe(ErrorCode.StorageCorrupt);
    expect(head).toMatchObject({ version: 31 });
    expect((await opening).version).toBe(30);
    expect(errors.some((e) => e instanceof StorageCorruptError)).toBe(true);
  });
});

describe('a store that goes back in time under a running server', () => {
  it('rolled back in place: the next commit finds it, the document is refused and reported, no version is published twice', async () => {
    const path = file();
    const store = open(path);
    const errors: unknown[] = [];
    const s = sequencer(store, errors);
    const published: number[] = [];
    s.onApplied((_doc, record) => published.push(record.version));
    for (let i = 0; i < 6; i++) {
      await s.submit({ docId: 'd', clientId: 'a', seq: i + 1, baseVersion: i, op: i === 0 ? ['«0»'] : [i * 3, `«${i}»`] });
    }
    // The operator restores an older copy into the open file: versions 4 to 6 are gone.
    const db = new Database(path);
    db.exec("DELETE FROM ops WHERE doc_id = 'd' AND version > 3; UPDATE documents SET head = 3 WHERE doc_id = 'd';");
    db.close();
    const late = await s
      .submit({ docId: 'd', clientId: 'b', seq: 1, baseVersion: 6, op: ['B', 18] })
      .then(() => undefined, (e: unknown) => e);
    expect((late as OtterError).code).toBe(ErrorCode.StorageCorrupt);
    expect((late as OtterError).message).toMatch(/went back in time under this server: it holds version 3/);
    expect(errors.some((e) => e instanceof StorageCorruptError)).toBe(true);
    expect((await refusal(s, 'd')).code).toBe(ErrorCode.StorageCorrupt);
    expect(published).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
