/**
 * A document whose stored data is damaged, behind a real server on a real SQLite file: it is
 * refused with `storage-corrupt` (an open, and the client's `ready`), logged at error and
 * counted in `/metrics`; the other documents of the file are served as before.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { OtterError } from '../../src/protocol/errors.js';
import { Sequencer } from '../../src/server/sequencer.js';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import type { Logger } from '../../src/server/telemetry.js';
import { Cleanup, newClient, startServer, tempDir } from './helpers.js';
import { RawClient } from '../support/raw-client.js';

const cleanup = new Cleanup();
afterEach(async () => {
  RawClient.terminateAll();
  await cleanup.run();
});

/** A logger keeping every error line. */
function capture(): { logger: Logger; errors: Array<{ fields: Record<string, unknown>; message: string }> } {
  const errors: Array<{ fields: Record<string, unknown>; message: string }> = [];
  const none = (): void => {};
  return { logger: { debug: none, info: none, warn: none, error: (fields, message) => errors.push({ fields, message }) }, errors };
}

describe('e2e: a damaged document', () => {
  it('is refused with storage-corrupt, logged and counted; the others are served', async () => {
    const file = join(tempDir(cleanup), 'otter.db');
    const store = new SqliteStore(file);
    const writer = new Sequencer(store, { idleTimeout: 0 });
    for (const doc of ['good', 'bad']) {
      for (let i = 0; i < 6; i++) {
        await writer.submit({ docId: doc, clientId: 'w', seq: i + 1, baseVersion: i, op: i === 0 ? [`${doc}:`] : [doc.length + i, String(i)] });
      }
    }
    await writer.close();
    await store.close();
    const db = new Database(file);
    db.prepare("UPDATE ops SET op = '[5, \"X\"]' WHERE doc_id = 'bad' AND version = 3").run();
    db.close();

    const { logger, errors } = capture();
    const server = await startServer(cleanup, { store: new SqliteStore(file), logger });
    const raw = await RawClient.connect(server.url);
    await raw.hello('raw');
    raw.send({ type: 'open', doc: 'bad', rid: 1 });
    const refusal = await raw.nextOf('error');
    expect(refusal).toMatchObject({ code: 'storage-corrupt', ref: { type: 'open', doc: 'bad' } });
    expect(refusal.message).not.toMatch(/retry/);
    expect((await raw.opened('good')).text).toBe('good:12345');

    const client = newClient(cleanup, server.url, 'editor');
    const doc = client.open('bad');
    const e = await doc.ready.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(OtterError);
    expect((e as OtterError).code).toBe('storage-corrupt');

    expect(errors.filter((l) => l.message === 'document storage is damaged: the document is not served').length).toBeGreaterThanOrEqual(2);
    expect(errors.every((l) => l.fields.doc === 'bad')).toBe(true);
    const metrics = await server.metrics.text();
    const counted = /^otter_storage_corrupt_total (\d+)$/m.exec(metrics);
    expect(Number(counted?.[1])).toBeGreaterThanOrEqual(2);
  });
});
