/**
 * The readiness monitor (src/server/readiness.ts) on fake timers: a store that fails and then
 * recovers, probed with no traffic; transitions, rate-limited logs with their counts, failed
 * appends seen through the watched store, a probe that hangs, stop.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../src/server/memory-store.js';
import { StoreReadiness, type WriteSource, describeStoreError, readinessAnswer } from '../../src/server/readiness.js';
import { type OpRecord, VersionConflictError } from '../../src/server/store.js';
import type { Logger } from '../../src/server/telemetry.js';

interface Line {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  message: string;
}

function recordingLogger(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: Line['level']) => (fields: Record<string, unknown>, message: string) => lines.push({ level, fields, message });
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

/** An error shaped like better-sqlite3's SqliteError. */
function sqliteError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const DISK_FULL = sqliteError('SQLITE_FULL', 'database or disk is full');

/** A store whose ping fails with `failure` while it is set, counting pings. */
class ProbedStore {
  failure: Error | undefined;
  pings = 0;
  async ping(): Promise<void> {
    this.pings++;
    if (this.failure !== undefined) throw this.failure;
  }
}

function setup(options: { interval?: number; logInterval?: number; probeTimeout?: number } = {}) {
  const store = new ProbedStore();
  const { logger, lines } = recordingLogger();
  const failures: WriteSource[] = [];
  const readiness = new StoreReadiness(store, { ...options, logger, telemetry: { storeWriteFailed: (s) => failures.push(s) } });
  return { store, readiness, lines, failures };
}

function record(version: number): OpRecord {
  return { version, op: ['x'], clientId: 'c', seq: version, checksum: 0 };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('StoreReadiness', () => {
  it('is starting (503) until the first probe, which runs at once on start, settles; then ready (200)', async () => {
    let answer!: () => void;
    const store = { ping: () => new Promise<void>((r) => (answer = r)) };
    const readiness = new StoreReadiness(store);
    expect(readiness.status).toEqual({ state: 'starting' });
    expect(readinessAnswer(readiness.status)).toEqual({
      status: 503,
      body: 'not ready: the first write probe of the store has not finished\n',
    });
    readiness.start();
    expect(answer).toBeTypeOf('function'); // probed synchronously, with no timer first
    expect(readiness.ready).toBe(false);
    answer();
    await vi.advanceTimersByTimeAsync(0);
    expect(readiness.ready).toBe(true);
    expect(readinessAnswer(readiness.status)).toEqual({ status: 200, body: 'ready\n' });
    readiness.stop();
  });

  it('a store that fails and then recovers: not ready with the reason, then ready again with no traffic, by the probe alone', async () => {
    const { store, readiness, lines, failures } = setup({ interval: 1000 });
    store.failure = DISK_FULL;
    readiness.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(readiness.status).toEqual({ state: 'failing', reason: 'SQLITE_FULL: database or disk is full', since: 1_000_000 });
    expect(readinessAnswer(readiness.status)).toEqual({
      status: 503,
      body: 'not ready: the store cannot be written: SQLITE_FULL: database or disk is full\n',
    });
    expect(store.pings).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(store.pings).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(store.pings).toBe(2); // every interval after the previous probe
    store.failure = undefined;
    await vi.advanceTimersByTimeAsync(1000);
    expect(store.pings).toBe(3);
    expect(readiness.status).toEqual({ state: 'ready' });
    expect(failures).toEqual(['probe', 'probe']);
    expect(lines.map((l) => [l.level, l.message])).toEqual([
      ['error', 'store cannot be written: not ready'],
      ['warn', 'store writable again: ready'],
    ]);
    expect(lines[0]?.fields).toEqual({
      reason: 'SQLITE_FULL: database or disk is full',
      source: 'probe',
      failures: 1,
      downMs: 0,
      suppressed: 0,
    });
    expect(lines[1]?.fields).toEqual({ downMs: 2000, failures: 2 });
    readiness.stop();
  });

  it('failures are logged at once, then at most one line per logInterval with the count of those not logged', async () => {
    const { store, readiness, lines, failures } = setup({ interval: 1000, logInterval: 30_000 });
    store.failure = sqliteError('SQLITE_READONLY', 'attempt to write a readonly database');
    readiness.start();
    await vi.advanceTimersByTimeAsync(65_000); // probes at 0, 1 s, …, 65 s: 66 failures
    expect(store.pings).toBe(66);
    expect(failures).toHaveLength(66);
    const errors = lines.filter((l) => l.level === 'error');
    expect(errors.map((l) => l.message)).toEqual([
      'store cannot be written: not ready',
      'store still cannot be written: not ready',
      'store still cannot be written: not ready',
    ]);
    expect(errors.map((l) => [l.fields.failures, l.fields.suppressed, l.fields.downMs])).toEqual([
      [1, 0, 0],
      [31, 29, 30_000],
      [61, 29, 60_000],
    ]);
    for (const l of errors) expect(l.fields.reason).toBe('SQLITE_READONLY: attempt to write a readonly database');
    store.failure = undefined;
    await vi.advanceTimersByTimeAsync(1000);
    expect(readiness.ready).toBe(true);
    expect(lines.at(-1)).toEqual({ level: 'warn', fields: { downMs: 66_000, failures: 66 }, message: 'store writable again: ready' });
    readiness.stop();
  });

  it('a store that flaps logs at most one failure line per logInterval, and a recovery only after a logged failure', async () => {
    const { store, readiness, lines } = setup({ interval: 1000, logInterval: 30_000 });
    readiness.start();
    await vi.advanceTimersByTimeAsync(0);
    for (let i = 0; i < 20; i++) {
      store.failure = i % 2 === 0 ? DISK_FULL : undefined;
      await vi.advanceTimersByTimeAsync(1000);
    }
    // 10 outages in 20 s: the first logged with its recovery, the other 9 only counted.
    expect(lines.map((l) => l.level)).toEqual(['error', 'warn']);
    store.failure = DISK_FULL;
    await vi.advanceTimersByTimeAsync(12_000);
    expect(lines.map((l) => l.level)).toEqual(['error', 'warn', 'error']);
    expect(lines[2]?.fields.suppressed).toBe(9 + 10);
    readiness.stop();
  });

  it('appends through the watched store: a failure makes it not ready at once, a success ready again; a version conflict is neither', async () => {
    const { readiness, lines, failures } = setup({ interval: 60_000 });
    const inner = new MemoryStore();
    let fail: Error | undefined;
    const append = inner.append.bind(inner);
    inner.append = (...args) => (fail === undefined ? append(...args) : Promise.reject(fail));
    const store = readiness.watch(inner);
    expect(store).toBeInstanceOf(MemoryStore);
    readiness.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(readiness.ready).toBe(true);

    fail = sqliteError('SQLITE_IOERR_WRITE', 'disk I/O error');
    await expect(store.append('d', 0, [record(1)], [], { epoch: 'e' })).rejects.toBe(fail);
    expect(readiness.status).toMatchObject({ state: 'failing', reason: 'SQLITE_IOERR_WRITE: disk I/O error' });
    expect(failures).toEqual(['append']);
    expect(lines.at(-1)?.fields.source).toBe('append');

    fail = undefined;
    await store.append('d', 0, [record(1)], [], { epoch: 'e' });
    expect(readiness.ready).toBe(true);
    expect(lines.at(-1)?.message).toBe('store writable again: ready');
    // Everything else is the store itself, its own state included.
    expect((await store.load('d')).ops.map((r) => r.version)).toEqual([1]);

    // Another writer won a race: the store can be written.
    await expect(store.append('d', 0, [record(1)], [], { epoch: 'e' })).rejects.toBeInstanceOf(VersionConflictError);
    expect(readiness.ready).toBe(true);
    expect(failures).toEqual(['append']);
    readiness.stop();
  });

  it('a probe that does not answer within probeTimeout counts as failed; no second probe starts until it settles', async () => {
    let answer: (() => void) | undefined;
    let pings = 0;
    const store = {
      ping: () => {
        pings++;
        return new Promise<void>((r) => (answer = r));
      },
    };
    const { logger, lines } = recordingLogger();
    const readiness = new StoreReadiness(store, { interval: 1000, probeTimeout: 5000, logger });
    readiness.start();
    await vi.advanceTimersByTimeAsync(4999);
    expect(readiness.status).toEqual({ state: 'starting' });
    await vi.advanceTimersByTimeAsync(1);
    expect(readiness.status).toMatchObject({
      state: 'failing',
      reason: 'the store did not answer a write probe within 5000 ms',
    });
    expect(lines).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(pings).toBe(1);
    answer?.();
    await vi.advanceTimersByTimeAsync(0);
    expect(readiness.ready).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    expect(pings).toBe(2);
    readiness.stop();
  });

  it('stop: the status is stopped (503), no timer is left, later results and appends are ignored', async () => {
    const { store, readiness, lines } = setup({ interval: 1000 });
    readiness.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(1);
    readiness.stop();
    expect(vi.getTimerCount()).toBe(0);
    expect(readinessAnswer(readiness.status)).toEqual({ status: 503, body: 'not ready: shutting down\n' });
    store.failure = DISK_FULL;
    readiness.failed(DISK_FULL, 'append');
    readiness.succeeded();
    await readiness.probe();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(readiness.status).toEqual({ state: 'stopped' });
    expect(store.pings).toBe(1);
    expect(lines).toEqual([]);
  });

  it('checks its options', () => {
    const store = new ProbedStore();
    expect(() => new StoreReadiness(store, { interval: 0 })).toThrow(RangeError);
    expect(() => new StoreReadiness(store, { interval: 1.5 })).toThrow(/interval/);
    expect(() => new StoreReadiness(store, { probeTimeout: -1 })).toThrow(/probeTimeout/);
    expect(() => new StoreReadiness(store, { logInterval: Number.NaN })).toThrow(/logInterval/);
    expect(() => new StoreReadiness(store, { logInterval: 0 })).not.toThrow();
  });
});

describe('describeStoreError', () => {
  it("names SQLite's code with its message, once; other errors by their message; at most 300 characters", () => {
    expect(describeStoreError(DISK_FULL)).toBe('SQLITE_FULL: database or disk is full');
    expect(describeStoreError(sqliteError('SQLITE_BUSY', 'SQLITE_BUSY: locked'))).toBe('SQLITE_BUSY: locked');
    expect(describeStoreError(new Error('disk on fire'))).toBe('disk on fire');
    expect(describeStoreError('plain')).toBe('plain');
    expect(describeStoreError(new Error('x'.repeat(1000)))).toHaveLength(300);
  });
});
