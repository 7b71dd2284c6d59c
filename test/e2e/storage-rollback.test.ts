/**
 * A SQLite file replaced by an older backup under connected clients, with real files, servers
 * and clients: after the restart the clients reconnect, learn that the server lost what they
 * hold (their epoch, version and checksum do not match it) and restore it, with a `reset`
 * event. Law: no acknowledged edit vanishes without an event, and none is applied twice.
 */
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CollaborativeDocument, ResetEvent } from '../../src/client/index.js';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import { Cleanup, headOf, markerCounts, newClient, startServer, stopServer, tempDir } from './helpers.js';
import { waitFor } from '../support/wait.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Live with nothing unacknowledged. */
function settled(doc: CollaborativeDocument): boolean {
  return doc.lifecycle.phase === 'live' && doc.syncState.kind === 'synchronized';
}

/** Types `marker` at the end of `doc` and waits until the server acknowledged it. */
async function typeAcked(doc: CollaborativeDocument, marker: string): Promise<void> {
  doc.insert(doc.text.length, marker);
  await waitFor(`the ack of ${marker}`, () => settled(doc));
}

describe('e2e: a database replaced by an older backup', () => {
  it('clients restore the acknowledged edits the backup lacks, with a reset event, each exactly once', async () => {
    const dir = tempDir(cleanup);
    const file = join(dir, 'otter.db');
    const backup = join(dir, 'backup.db');
    let server = await startServer(cleanup, { store: new SqliteStore(file) });
    const port = server.port;
    const clients = ['a', 'b'].map((name) => newClient(cleanup, server.url, name));
    const docs = clients.map((c) => c.open('doc'));
    await Promise.all(docs.map((d) => d.ready));
    const resets: ResetEvent[] = [];
    for (const d of docs) d.on('reset', (e) => resets.push(e));

    for (let i = 0; i < 5; i++) await typeAcked(docs[i % 2] as CollaborativeDocument, `«old-${i}»`);
    await stopServer(server);
    copyFileSync(file, backup); // closed cleanly: the file holds everything, no WAL beside it
    expect(existsSync(`${file}-wal`)).toBe(false);

    server = await startServer(cleanup, { store: new SqliteStore(file), port });
    await waitFor('the clients back at version 5', () => docs.every((d) => settled(d) && d.version === 5), 10_000);
    const newer = Array.from({ length: 10 }, (_, i) => `«new-${i}»`);
    for (let i = 0; i < newer.length; i++) await typeAcked(docs[i % 2] as CollaborativeDocument, newer[i] as string);
    await waitFor('both clients at version 15', () => docs.every((d) => d.version === 15 && settled(d)), 10_000);
    await stopServer(server);

    // The operator restores the older backup.
    rmSync(file);
    copyFileSync(backup, file);
    server = await startServer(cleanup, { store: new SqliteStore(file), port });
    expect((await headOf(server, 'doc')).version).toBe(5);

    await waitFor(
      'the newer edits restored and the clients converged',
      async () => {
        const head = await headOf(server, 'doc');
        return newer.every((m) => head.text.includes(m)) && docs.every((d) => settled(d) && d.text === head.text);
      },
      15_000,
    );
    const head = await headOf(server, 'doc');
    const counts = markerCounts(head.text);
    for (const m of [...newer, ...Array.from({ length: 5 }, (_, i) => `«old-${i}»`)]) expect(counts.get(m), m).toBe(1);
    // The clients said what happened: someone restored, nobody silently adopted the backup.
    expect(resets.length).toBeGreaterThanOrEqual(1);
    expect(resets.some((e) => e.action === 'restored')).toBe(true);
    for (const e of resets) expect(e.lost.version).toBe(15);
  });
});
