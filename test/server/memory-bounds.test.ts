/**
 * What the sequencer holds in memory stays bounded however long it runs: client marks (every
 * connection of the client library is a new client id) and op history across documents.
 * Measured as heap after a full collection, on a SQLite store (whose data is not on the heap).
 */
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Metrics } from '../../src/server/metrics.js';
import { Sequencer } from '../../src/server/sequencer.js';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import { ControlledStore } from './helpers.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { fromPatch } from '../../src/ot/index.js';
import { sleep, tick } from '../support/wait.js';

// A collector this file can call without a flag on the whole test run.
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

/** Heap in use after full collections. */
async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    collect();
    await tick();
  }
  return process.memoryUsage().heapUsed;
}

const MB = 1024 * 1024;

let dir: string | undefined;
let store: SqliteStore | undefined;
let sequencer: Sequencer | undefined;
afterEach(async () => {
  await sequencer?.close();
  await store?.close();
  if (dir !== undefined) removeTempDir(dir);
  sequencer = undefined;
  store = undefined;
  dir = undefined;
});

function open(options: ConstructorParameters<typeof Sequencer>[1]): Sequencer {
  dir = makeTempDir('otter-bounds-');
  store = new SqliteStore(join(dir, 'otter.db'));
  sequencer = new Sequencer(store, { idleTimeout: 0, ...options });
  return sequencer;
}

describe('memory bounds', () => {
  it('a new client id per edit: heap after GC flat within 1 MB over 20,000 edits', async () => {
    const s = open({});
    let version = 0;
    let next = 0;
    /** `count` edits, each by a client never seen before: insert a character, then delete it. */
    const churn = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const op = version % 2 === 0 ? ['x'] : [-1];
        const r = await s.submit({ docId: 'doc', clientId: `client-${next++}`, seq: 1, baseVersion: version, op });
        version = r.version;
      }
    };
    // Warm up past every per-document bound (marks cache, memory history, snapshot interval).
    await churn(6000);
    const before = await heapAfterGc();
    await churn(20_000);
    const after = await heapAfterGc();
    expect(version).toBe(26_000);
    expect(after - before).toBeLessThan(1 * MB);
  });

  it('big inserts and deletes on 6 documents: history held stays under the budget', async () => {
    const budget = 4 * MB;
    const s = open({ historyMemoryBytes: budget });
    const docs = Array.from({ length: 6 }, (_, i) => `doc-${i}`);
    const versions = new Map(docs.map((d) => [d, 0]));
    const before = await heapAfterGc();
    let peak = 0;
    // Each writer inserts 300,000 code units and deletes them again, 20 times, all at once.
    for (let round = 0; round < 40; round++) {
      await Promise.all(
        docs.map(async (doc) => {
          const v = versions.get(doc) as number;
          const op = round % 2 === 0 ? [`${doc}:${round}:`.padEnd(300_000, String.fromCharCode(97 + (round % 26)))] : [-300_000];
          const r = await s.submit({ docId: doc, clientId: `writer-${doc}`, seq: round + 1, baseVersion: v, op });
          versions.set(doc, r.version);
        }),
      );
      peak = Math.max(peak, s.historyBytes);
    }
    const after = await heapAfterGc();
    expect(peak).toBeLessThanOrEqual(budget);
    expect(s.historyBytes).toBeLessThanOrEqual(budget);
    // Every document still has its history: the oldest ops come from the store.
    for (const doc of docs) expect((await s.getOps(doc, 0)).length).toBe(40);
    expect(after - before).toBeLessThan(budget + 2 * MB);
  });
});

describe('history budget', () => {
  it('sheds the least recently used document first, and its late ops are rebased over the stored history', async () => {
    const store = new ControlledStore(new MemoryStore());
    let reads = 0;
    const getOps = store.getOps.bind(store);
    store.getOps = (...args) => {
      reads++;
      return getOps(...args);
    };
    // About four ops of 200 code units.
    const s = new Sequencer(store, { idleTimeout: 0, historyMemoryBytes: 1000 });
    sequencer = s;
    const write = async (doc: string, count: number): Promise<void> => {
      for (let v = 0; v < count; v++) {
        await s.submit({ docId: doc, clientId: 'w', seq: v + 1, baseVersion: v, op: fromPatch(200 * v, 200 * v, 0, doc.repeat(200)) });
      }
    };
    await write('a', 4);
    expect(s.historyBytes).toBeGreaterThan(800);
    await sleep(5);
    await write('b', 3);
    expect(s.historyBytes).toBeLessThanOrEqual(1000);
    // b, written last, kept its history: a late op there reads nothing from the store ...
    await s.submit({ docId: 'b', clientId: 'late', seq: 1, baseVersion: 1, op: fromPatch(200, 0, 0, '<') });
    expect(reads).toBe(0);
    // ... while a gave its oldest ops up: they are read back to rebase a late op.
    await s.submit({ docId: 'a', clientId: 'late', seq: 1, baseVersion: 1, op: fromPatch(200, 100, 0, '|') });
    expect(reads).toBe(1);
    expect((await s.getSnapshot('a')).text).toBe(`${'a'.repeat(100)}|${'a'.repeat(700)}`);
    expect((await s.getSnapshot('b')).text).toBe(`<${'b'.repeat(600)}`);
    // What is held is exported as a gauge.
    const metrics = new Metrics({
      connections: () => 0,
      openDocuments: () => 0,
      loadedDocuments: () => s.openDocuments,
      historyBytes: () => s.historyBytes,
    });
    expect(s.historyBytes).toBeGreaterThan(0);
    expect(await metrics.text()).toContain(`\notter_history_bytes ${s.historyBytes}\n`);
  });
});
