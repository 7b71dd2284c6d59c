/**
 * Readiness that tells the truth, against real storage faults of a SqliteStore behind a real
 * server: a full disk (a 3 MiB tmpfs, where this machine lets the test mount one), a database
 * that is read-only when the server starts, a write lock held by another connection. Each
 * checks `/readyz` (503 with the reason, then 200 again by the probe alone, with no traffic),
 * the log lines, and what a submit gets meanwhile.
 *
 * Where a fault cannot be made for real here (mounting or `chattr` not permitted), the same
 * test runs against a store that fails the same way, and says so in its name and on stderr.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, mkdtempSync, openSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import type { Store } from '../../src/server/store.js';
import type { Logger } from '../../src/server/telemetry.js';
import { type OtterServer, createServer } from '../../src/server/ws-server.js';
import { request } from './helpers.js';
import { RawClient } from '../support/raw-client.js';
import { fromPatch } from '../../src/ot/index.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { sleep, waitFor, within } from '../support/wait.js';

interface Line {
  level: string;
  fields: Record<string, unknown>;
  message: string;
}

function recordingLogger(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, message: string) => lines.push({ level, fields, message });
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

function firstLine(e: unknown): string {
  const err = e as { stderr?: Buffer | string; message?: string };
  const text = String(err.stderr ?? '').trim() || String(err.message ?? e);
  return text.split('\n')[0] ?? text;
}

/** A 3 MiB tmpfs mounted on a new temporary folder, or why it could not be. */
function mountSmallDisk(): { dir: string; mounted: boolean; why: string } {
  const dir = makeTempDir('otter-full-disk-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', dir], { stdio: 'pipe' });
    return { dir, mounted: true, why: '' };
  } catch (e) {
    return { dir, mounted: false, why: firstLine(e) };
  }
}

/** How this machine can make a database file read-only for its own user (root ignores modes). */
function readOnlyMethod(): { how: 'chattr' | 'chmod' | 'option'; why: string } {
  if (process.getuid?.() !== 0) return { how: 'chmod', why: '' };
  const dir = makeTempDir('otter-chattr-');
  const file = join(dir, 'probe');
  writeFileSync(file, '');
  try {
    execFileSync('chattr', ['+i', file], { stdio: 'pipe' });
    execFileSync('chattr', ['-i', file], { stdio: 'pipe' });
    return { how: 'chattr', why: '' };
  } catch (e) {
    return { how: 'option', why: firstLine(e) };
  } finally {
    removeTempDir(dir);
  }
}

const DISK = mountSmallDisk();
const READ_ONLY = readOnlyMethod();
if (!DISK.mounted) {
  console.warn(`readiness.test: cannot mount a tmpfs here (${DISK.why}); the disk-full case runs with a store that fails its writes`);
}
if (READ_ONLY.how === 'option') {
  console.warn(`readiness.test: chattr is not permitted here (${READ_ONLY.why}); the read-only case opens the file with SQLite's read-only flag`);
}

/** An error as better-sqlite3 throws it on a full disk. */
function diskFull(): Error {
  return Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
}

/** `store`, except that its writes (ping and append) fail as on a full disk while `failing()`. */
function failingWrites(store: SqliteStore, failing: () => boolean): SqliteStore {
  return new Proxy(store, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== 'function') return value;
      const method = (value as (...a: unknown[]) => unknown).bind(target);
      if (key !== 'ping' && key !== 'append') return method;
      return (...args: unknown[]) => (failing() ? Promise.reject(diskFull()) : method(...args));
    },
  });
}

/** Writes to a file in `dir` until the filesystem is full; returns the file. */
function fillDisk(dir: string): string {
  const file = join(dir, 'filler');
  const fd = openSync(file, 'w');
  try {
    for (const chunk of [Buffer.alloc(256 * 1024, 1), Buffer.alloc(4096, 1), Buffer.alloc(1, 1)]) {
      for (;;) {
        try {
          if (writeSync(fd, chunk) === 0) break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw e;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return file;
}

let servers: OtterServer[] = [];
let clients: RawClient[] = [];
let cleanups: Array<() => void> = [];

afterEach(async () => {
  for (const c of clients) c.terminate();
  clients = [];
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  for (const cleanup of cleanups.reverse()) cleanup();
  cleanups = [];
});

afterAll(() => {
  if (DISK.mounted) {
    try {
      execFileSync('umount', [DISK.dir], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', DISK.dir], { stdio: 'pipe' });
    }
  }
  removeTempDir(DISK.dir);
});

async function start(store: Store): Promise<{ otter: OtterServer; readyz: () => ReturnType<typeof request>; lines: Line[] }> {
  const { logger, lines } = recordingLogger();
  const otter = await createServer({ store, logger, readinessInterval: 50 });
  servers.push(otter);
  return { otter, readyz: () => request(`http://127.0.0.1:${otter.port}/readyz`), lines };
}

async function connect(otter: OtterServer): Promise<RawClient> {
  const c = await RawClient.connect(`${otter.url}/`);
  clients.push(c);
  await c.hello();
  return c;
}


describe('/readyz against real storage faults', () => {
  const diskName = DISK.mounted
    ? 'on a real 3 MiB tmpfs'
    : `with a store that fails its writes as on a full disk (mounting a tmpfs is not permitted here: ${DISK.why})`;

  it(`disk full ${diskName}: 503 with SQLITE_FULL, logged, submits refused as storage-failed; space back: 200 by the probe alone, recovery logged`, async () => {
    const folder = mkdtempSync(join(DISK.dir, 'db-'));
    let full = false;
    const sqlite = new SqliteStore(join(folder, 'otter.db'));
    const store = DISK.mounted ? sqlite : failingWrites(sqlite, () => full);
    const { otter, readyz, lines } = await start(store);
    expect(await readyz()).toMatchObject({ status: 200, body: 'ready\n' });
    const c = await connect(otter);
    await c.opened('doc');
    expect(await c.submit('doc', 0, 1, ['hello'])).toMatchObject({ type: 'ack', v: 1 });

    let filler: string | undefined;
    if (DISK.mounted) filler = fillDisk(DISK.dir);
    else full = true;
    await waitFor('/readyz 503 on a full disk', async () => (await readyz()).status === 503, 10_000);
    expect((await readyz()).body).toBe('not ready: the store cannot be written: SQLITE_FULL: database or disk is full\n');
    const down = lines.filter((l) => l.level === 'error');
    expect(down).toHaveLength(1);
    expect(down[0]).toMatchObject({
      message: 'store cannot be written: not ready',
      fields: { reason: 'SQLITE_FULL: database or disk is full', source: 'probe' },
    });
    const refusal = await c.submit('doc', 1, 2, fromPatch(5, 5, 0, ' world'));
    expect(refusal).toMatchObject({ type: 'error', code: 'storage-failed' });
    expect((refusal as { message: string }).message).toMatch(/SQLITE_FULL: database or disk is full; retry later$/);
    expect((await readyz()).status).toBe(503);

    // Space comes back; nothing is sent: only the probe can find out.
    const sent = c.messages.length;
    if (filler !== undefined) unlinkSync(filler);
    else full = false;
    await waitFor('/readyz 200 once space is back', async () => (await readyz()).status === 200, 10_000);
    expect(c.messages.length).toBe(sent);
    const up = lines.filter((l) => l.message === 'store writable again: ready');
    expect(up).toHaveLength(1);
    expect(up[0]?.level).toBe('warn');
    expect(up[0]?.fields.downMs).toBeGreaterThan(0);
    expect(up[0]?.fields.failures).toBeGreaterThanOrEqual(2); // the probe and the append, at least
    // The refused op was not applied; sent again, it is.
    expect(await c.submit('doc', 1, 2, fromPatch(5, 5, 0, ' world'))).toMatchObject({ type: 'ack', v: 2 });
  });

  const readOnlyName = {
    chattr: 'made immutable (chattr +i: root ignores file modes)',
    chmod: 'made read-only (chmod 0444)',
    option: `opened with SQLite's read-only flag (chattr is not permitted here: ${READ_ONLY.why})`,
  }[READ_ONLY.how];

  it(`a database ${readOnlyName} before the server starts: /readyz 503 from the start with SQLITE_READONLY, logged; submits refused`, async () => {
    const dir = makeTempDir('otter-readonly-');
    cleanups.push(() => removeTempDir(dir));
    const path = join(dir, 'otter.db');
    await new SqliteStore(path).close();
    if (READ_ONLY.how === 'chattr') {
      execFileSync('chattr', ['+i', path]);
      cleanups.push(() => execFileSync('chattr', ['-i', path]));
    } else if (READ_ONLY.how === 'chmod') {
      chmodSync(path, 0o444);
    }
    const { otter, readyz, lines } = await start(new SqliteStore(path, { readOnly: READ_ONLY.how === 'option' }));
    // The first probe ran at start: not ready before any request or traffic.
    expect(otter.readiness.status).toMatchObject({ state: 'failing' });
    expect(await readyz()).toEqual(
      expect.objectContaining({
        status: 503,
        body: 'not ready: the store cannot be written: SQLITE_READONLY: attempt to write a readonly database\n',
      }),
    );
    expect(lines.filter((l) => l.level === 'error').map((l) => l.fields.reason)).toEqual([
      'SQLITE_READONLY: attempt to write a readonly database',
    ]);
    const c = await connect(otter);
    await c.opened('doc');
    const refusal = await c.submit('doc', 0, 1, ['hello']);
    expect(refusal).toMatchObject({ type: 'error', code: 'storage-failed' });
    expect((refusal as { message: string }).message).toMatch(/SQLITE_READONLY: attempt to write a readonly database; retry later$/);
    await sleep(200); // several more probes
    expect((await readyz()).status).toBe(503);
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1); // rate-limited
  });

  it('a write lock held by another connection: 503 with SQLITE_BUSY at once (the probe never waits for the lock), 200 once it is released', async () => {
    const dir = makeTempDir('otter-locked-');
    cleanups.push(() => removeTempDir(dir));
    const path = join(dir, 'otter.db');
    const { otter, readyz, lines } = await start(new SqliteStore(path));
    expect((await readyz()).status).toBe(200);
    const other = new Database(path);
    cleanups.push(() => other.close());
    other.prepare('BEGIN IMMEDIATE').run();
    // The lock stays held until the probe has answered: a probe waiting for it (as appends do,
    // up to 5 s) would not answer within the bound.
    await within(otter.readiness.probe(), 4000, 'the probe answering while the lock is held');
    expect(await readyz()).toMatchObject({ status: 503, body: 'not ready: the store cannot be written: SQLITE_BUSY: database is locked\n' });
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1);
    other.prepare('ROLLBACK').run();
    await waitFor('/readyz 200 once the lock is released', async () => (await readyz()).status === 200, 10_000);
  });
});

describe('SqliteStore.ping', () => {
  it('commits a scratch row (meta.probe), visible to another connection; rejects once the store is closed', async () => {
    const dir = makeTempDir('otter-ping-');
    cleanups.push(() => removeTempDir(dir));
    const path = join(dir, 'otter.db');
    const store = new SqliteStore(path);
    const before = Date.now();
    await store.ping();
    const other = new Database(path, { readonly: true });
    try {
      const row = other.prepare("SELECT value FROM meta WHERE key = 'probe'").get() as { value: string };
      expect(Number(row.value)).toBeGreaterThanOrEqual(before);
    } finally {
      other.close();
    }
    await store.close();
    await expect(store.ping()).rejects.toThrow('the store is closed');
  });
});
