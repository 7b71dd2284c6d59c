/**
 * History retention: the whole log by default; caps by count, age and size, each keeping at
 * least what it names, trimming only at snapshots, any cap sufficing (see retention.ts).
 */
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '../../src/protocol/errors.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { type RetentionPolicy, type TrimCandidate, opBytes, trimPoint } from '../../src/server/retention.js';
import { Sequencer, type SequencerOptions } from '../../src/server/sequencer.js';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import type { Store } from '../../src/server/store.js';
import { expectOtterError } from './helpers.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';

const DOC = 'doc';
const open: Array<{ close(): Promise<void> }> = [];
const dirs: string[] = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const o of open.splice(0).reverse()) await o.close();
  for (const d of dirs.splice(0)) removeTempDir(d);
});

function sequencer(store: Store, options: SequencerOptions): Sequencer {
  const s = new Sequencer(store, { idleTimeout: 0, ...options });
  open.push(store, s);
  return s;
}

/** Submits `n` one-letter inserts of client "a" at the head, from version `from`. */
async function type(s: Sequencer, from: number, n: number): Promise<void> {
  for (let v = from; v < from + n; v++) {
    await s.submit({ docId: DOC, clientId: 'a', seq: v + 1, baseVersion: v, op: v === 0 ? ['x'] : [v, 'x'] });
  }
}

describe('trimPoint', () => {
  const at = (version: number, time: number | undefined, bytes: number): TrimCandidate => ({ version, at: time, bytes });
  const candidates = [at(10, 1000, 100), at(20, 2000, 200), at(30, undefined, 300)];

  it('keeps everything without a cap, and never moves back', () => {
    expect(trimPoint({}, candidates, 0, 40, 400, 1e9)).toBe(0);
    expect(trimPoint({ ops: 0 }, candidates, 35, 40, 400, 1e9)).toBe(35);
  });

  it('by count: the newest snapshot at least `ops` versions behind the head', () => {
    expect(trimPoint({ ops: 20 }, candidates, 0, 40, 400, 0)).toBe(20);
    expect(trimPoint({ ops: 21 }, candidates, 0, 40, 400, 0)).toBe(10);
    expect(trimPoint({ ops: 31 }, candidates, 0, 40, 400, 0)).toBe(0);
  });

  it('by age: the newest snapshot taken at least `ageMs` ago; one of unknown time is never chosen by age', () => {
    expect(trimPoint({ ageMs: 500 }, candidates, 0, 40, 400, 2500)).toBe(20);
    expect(trimPoint({ ageMs: 501 }, candidates, 0, 40, 400, 2500)).toBe(10);
    expect(trimPoint({ ageMs: 0 }, candidates, 0, 40, 400, 1e9)).toBe(20);
  });

  it('by size: the newest snapshot with at least `bytes` of log after it', () => {
    expect(trimPoint({ bytes: 100 }, candidates, 0, 40, 400, 0)).toBe(30);
    expect(trimPoint({ bytes: 101 }, candidates, 0, 40, 400, 0)).toBe(20);
    expect(trimPoint({ bytes: 1000 }, candidates, 0, 40, 400, 0)).toBe(0);
  });

  it('any cap suffices: the most any one allows', () => {
    const policy: RetentionPolicy = { ops: 31, ageMs: 1500, bytes: 250 };
    expect(trimPoint(policy, candidates, 0, 40, 400, 2500)).toBe(10);
    expect(trimPoint({ ...policy, bytes: 150 }, candidates, 0, 40, 400, 2500)).toBe(20);
  });
});

describe('opBytes', () => {
  it('law: equals the length of JSON.stringify(op) for ops without escaped characters', () => {
    const component = fc.oneof(fc.integer({ min: -1e12, max: 1e12 }).filter((n) => n !== 0), fc.string({ unit: 'grapheme-ascii' }).filter((t) => !/["\\]/.test(t)));
    fc.assert(fc.property(fc.array(component), (op) => opBytes(op) === JSON.stringify(op).length), { numRuns: 500 });
  });
});

describe('the sequencer under a retention policy', () => {
  for (const kind of ['memory', 'sqlite'] as const) {
    const store = (): Store => {
      if (kind === 'memory') return new MemoryStore();
      const dir = makeTempDir('otter-retention-');
      dirs.push(dir);
      return new SqliteStore(join(dir, 'otter.db'));
    };

    it(`keeps the whole log by default, past many snapshots (${kind})`, async () => {
      const s = sequencer(store(), { snapshotEvery: 5, memoryHistory: 2 });
      await type(s, 0, 60);
      expect((await s.getOps(DOC, 0)).map((r) => r.version)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
      expect((await s.getSnapshot(DOC, 1)).text).toBe('x');
    });

    it(`by count keeps at least the newest ops, trimmed at snapshots (${kind})`, async () => {
      const s = sequencer(store(), { snapshotEvery: 5, retention: { ops: 12 } });
      await type(s, 0, 60);
      const kept = await s.getOps(DOC, 60 - 12);
      expect(kept).toHaveLength(12);
      await expectOtterError(s.getOps(DOC, 40), ErrorCode.HistoryGone);
      expect((await s.getOps(DOC, 45)).length).toBe(15);
    });

    it(`by age keeps every op younger than the cap (${kind})`, async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(1_000_000);
      const s = sequencer(store(), { snapshotEvery: 5, retention: { ageMs: 60_000 } });
      await type(s, 0, 20); // snapshots at 5, 10, 15, 20, all at t = 1,000,000
      vi.setSystemTime(1_030_000);
      await type(s, 20, 5); // snapshot at 25, 30 s later: nothing is old enough yet
      expect((await s.getOps(DOC, 0)).length).toBe(25);
      vi.setSystemTime(1_070_000);
      await type(s, 25, 5); // 70 s after the first snapshots: trimmed to 20
      await expectOtterError(s.getOps(DOC, 19), ErrorCode.HistoryGone);
      expect((await s.getOps(DOC, 20)).length).toBe(10);
    });

    it(`by size keeps at least the newest bytes of ops (${kind})`, async () => {
      // Every op after the first is [v, "x"]: 8 to 10 bytes.
      const s = sequencer(store(), { snapshotEvery: 5, retention: { bytes: 100 } });
      await type(s, 0, 60);
      const kept = await s.getOps(DOC, 0).catch(() => undefined);
      expect(kept).toBeUndefined();
      const log = await s.getOps(DOC, 45);
      const bytes = log.reduce((n, r) => n + JSON.stringify(r.op).length, 0);
      expect(bytes).toBeGreaterThanOrEqual(100);
      await expectOtterError(s.getOps(DOC, 40), ErrorCode.HistoryGone);
    });
  }

  it('keeps the whole log across a restart of a SQLite store, and trims by age with times read back', async () => {
    const dir = makeTempDir('otter-retention-');
    dirs.push(dir);
    const file = join(dir, 'otter.db');
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(5_000_000);
    const first = new SqliteStore(file);
    const s1 = new Sequencer(first, { idleTimeout: 0, snapshotEvery: 5 });
    await type(s1, 0, 20);
    await s1.close();
    await first.close();
    vi.setSystemTime(5_000_000 + 3_600_000);
    const s2 = sequencer(new SqliteStore(file), { snapshotEvery: 5, retention: { ageMs: 60_000 } });
    expect((await s2.getOps(DOC, 0)).length).toBe(20);
    await type(s2, 20, 5); // the snapshot at 20 (loaded, an hour old) may go: trimmed to it
    await expectOtterError(s2.getOps(DOC, 19), ErrorCode.HistoryGone);
    expect((await s2.getOps(DOC, 20)).length).toBe(5);
  });
});
