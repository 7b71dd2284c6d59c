/**
 * The contract every {@link Store} implementation must pass (the pattern of ShareDB's
 * test/db.js), published as `otter/server/store-contract` so that a store written outside
 * Otter runs it too: call `storeContract(runner, name, makeStore, cleanup)` from the
 * implementation's test file, with the test functions of vitest or jest as `runner`.
 * `makeStore` is called before every test and must return an empty store; after every test
 * the store is closed and `cleanup` (if given) runs. A conflict must be refused with
 * {@link VersionConflictError} (the sequencer retries on that error alone).
 *
 * Beyond the interface's doc comments, the contract pins down what the sequencer relies on: a
 * document never written reads as the empty snapshot at version 0 (from load and getSnapshot),
 * and a rejected append changes nothing, marks included.
 *
 * Example (a Redis store, with vitest):
 *   import { afterEach, beforeEach, describe, expect, it } from 'vitest';
 *   import { storeContract } from 'otter/server/store-contract';
 *   storeContract({ describe, it, beforeEach, afterEach, expect }, 'RedisStore',
 *     async () => new RedisStore(await freshDb()), () => dropDb());
 */
import { type Component, apply } from '../ot/index.js';
import { EMPTY_CHECKSUM, chainChecksum } from '../protocol/checksum.js';
import {
  type AppendContext,
  type ClientMark,
  EMPTY_SNAPSHOT,
  type OpRecord,
  type Recovery,
  type Snapshot,
  type Store,
  VersionConflictError,
} from './store.js';

/** The matchers the contract uses (those of vitest and jest). */
export interface ContractMatchers {
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  toMatchObject(expected: object): void;
  toBeInstanceOf(expected: unknown): void;
  toHaveLength(length: number): void;
  toBeUndefined(): void;
  toBeGreaterThan(n: number): void;
  toThrow(expected?: RegExp | string): void;
}

/** The matchers of a promise's outcome (`expect(p).resolves`, `expect(p).rejects`). */
export interface ContractAsyncMatchers {
  toBeInstanceOf(expected: unknown): Promise<void>;
  toBeUndefined(): Promise<void>;
  toThrow(expected?: RegExp | string): Promise<void>;
}

/** The test functions the contract registers its suite with: vitest's or jest's. */
export interface ContractRunner {
  describe(name: string, body: () => void): void;
  it(name: string, body: () => Promise<void> | void): void;
  beforeEach(hook: () => Promise<void> | void): void;
  afterEach(hook: () => Promise<void> | void): void;
  expect(actual: unknown): ContractMatchers & { readonly resolves: ContractAsyncMatchers; readonly rejects: ContractAsyncMatchers };
}

/** The texts of the contract's reference document: version v holds TEXTS[v]. */
const WORDS = ['a', 'bc', 'def', '😀', 'gh', 'ij', 'k', 'lmn', 'o', 'pq', 'r', 'st'];

/** Records of versions from+1 … to of the reference document (each appends one word). */
function records(from: number, to: number, clientId = 'c1', seqOffset = 0): OpRecord[] {
  const out: OpRecord[] = [];
  for (let v = from + 1; v <= to; v++) out.push(recordAt(v, clientId, v + seqOffset));
  return out;
}

/** The text of the reference document at `version`. */
function textAt(version: number): string {
  return WORDS.slice(0, version).join('');
}

/** The op that produced `version` of the reference document. */
function opAt(version: number): Component[] {
  const before = textAt(version - 1).length;
  const word = WORDS[(version - 1) % WORDS.length] as string;
  return before > 0 ? [before, word] : [word];
}

/** The document checksum of the reference document at `version`. */
function checksumAt(version: number): number {
  let sum = EMPTY_CHECKSUM;
  for (let v = 1; v <= version; v++) sum = chainChecksum(sum, opAt(v));
  return sum;
}

function recordAt(version: number, clientId = 'c1', seq = version, author?: string): OpRecord {
  const op = opAt(version);
  const checksum = checksumAt(version);
  return author === undefined ? { version, op, clientId, seq, checksum } : { version, op, clientId, seq, author, checksum };
}

/** The snapshot of the reference document at `version`. */
function snap(version: number): Snapshot {
  return { version, text: textAt(version), checksum: checksumAt(version) };
}

/** The context of every append of the contract's documents. */
const CTX: AppendContext = { epoch: 'epoch-1' };

function mark(clientId: string, seq: number, version: number, baseVersion = version - 1): ClientMark {
  return { clientId, seq, version, baseVersion, fingerprint: `fp-${clientId}-${seq}-${baseVersion}` };
}

function versions(rs: readonly OpRecord[]): number[] {
  return rs.map((r) => r.version);
}

/**
 * Registers the contract suite for one Store implementation.
 * @param runner the test framework's functions (vitest's or jest's)
 * @param name shown in the test names
 * @param makeStore returns a fresh, empty store (called before each test)
 * @param cleanup called after each test, after the store was closed
 */
export function storeContract(
  runner: ContractRunner,
  name: string,
  makeStore: () => Promise<Store>,
  cleanup?: () => Promise<void> | void,
): void {
  const { describe, it, beforeEach, afterEach, expect } = runner;
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let closed = false;

    beforeEach(async () => {
      store = await makeStore();
      closed = false;
    });

    afterEach(async () => {
      if (!closed) await store.close();
      await cleanup?.();
    });

    /** The text rebuilt from what load returns, with the checksum the last record (or snapshot) carries. */
    async function rebuild(docId: string): Promise<Snapshot> {
      const loaded = await store.load(docId);
      let text = loaded.snapshot.text;
      let version = loaded.snapshot.version;
      let checksum = loaded.snapshot.checksum;
      for (const r of loaded.ops) {
        expect(r.version).toBe(version + 1);
        text = apply(text, r.op);
        version = r.version;
        checksum = r.checksum;
      }
      return { version, text, checksum };
    }

    describe('load', () => {
      it('loads a new document as version 0, empty, with the store epoch and no ops, trim or recoveries', async () => {
        const loaded = await store.load('new-doc');
        expect(typeof loaded.epoch).toBe('string');
        expect(loaded.epoch.length).toBeGreaterThan(0);
        expect((await store.load('new-doc')).epoch).toBe(loaded.epoch);
        expect(loaded.snapshot).toEqual(EMPTY_SNAPSHOT);
        expect(loaded.ops).toEqual([]);
        expect(loaded.trimmedTo).toBe(0);
        expect(loaded.recoveries).toEqual([]);
        expect(await store.getMarks('new-doc', ['c1'])).toEqual([]);
      });

      it('returns the appended ops, and getMarks the marks', async () => {
        const recs = records(0, 3);
        const marks = [mark('c1', 3, 3)];
        await store.append('d', 0, recs, marks, CTX);
        const loaded = await store.load('d');
        expect(loaded.snapshot).toEqual(EMPTY_SNAPSHOT);
        expect(loaded.ops).toEqual(recs);
        expect(loaded.trimmedTo).toBe(0);
        expect(await store.getMarks('d', ['c1'])).toEqual(marks);
        expect(await rebuild('d')).toEqual(snap(3));
      });

      it('keeps the author of a record, and its absence', async () => {
        const recs = [recordAt(1, 'c1', 1, 'alice'), recordAt(2, 'c2', 1)];
        await store.append('d', 0, recs, [], CTX);
        const loaded = await store.load('d');
        expect(loaded.ops[0]?.author).toBe('alice');
        expect(loaded.ops[1]?.author).toBeUndefined();
        expect(loaded.ops.map((r) => [r.clientId, r.seq])).toEqual([
          ['c1', 1],
          ['c2', 1],
        ]);
      });

      it('appends in several steps continue from the head', async () => {
        await store.append('d', 0, records(0, 2), [mark('c1', 2, 2)], CTX);
        await store.append('d', 2, records(2, 5), [mark('c1', 5, 5)], CTX);
        await store.append('d', 5, records(5, 6), [mark('c1', 6, 6)], CTX);
        const loaded = await store.load('d');
        expect(versions(loaded.ops)).toEqual([1, 2, 3, 4, 5, 6]);
        expect(await rebuild('d')).toEqual(snap(6));
      });

      it('keeps documents apart', async () => {
        await store.append('a', 0, records(0, 2), [mark('x', 2, 2)], CTX);
        await store.append('b', 0, records(0, 1), [mark('y', 1, 1)], CTX);
        const a = await store.load('a');
        const b = await store.load('b');
        expect(versions(a.ops)).toEqual([1, 2]);
        expect(versions(b.ops)).toEqual([1]);
        expect(await store.getMarks('a', ['x', 'y'])).toEqual([mark('x', 2, 2)]);
        expect(await store.getMarks('b', ['x', 'y'])).toEqual([mark('y', 1, 1)]);
      });
    });

    describe('append', () => {
      it('rejects a wrong expectedHead with VersionConflictError and writes nothing', async () => {
        await store.append('d', 0, records(0, 2), [mark('c1', 2, 2)], CTX);
        const before = await store.load('d');
        // Behind the head.
        const behind = await store.append('d', 1, [recordAt(2, 'c9', 1)], [mark('c9', 1, 2)], CTX).catch((e: unknown) => e);
        expect(behind).toBeInstanceOf(VersionConflictError);
        expect((behind as VersionConflictError).docId).toBe('d');
        expect((behind as VersionConflictError).expected).toBe(1);
        expect((behind as VersionConflictError).actual).toBe(2);
        // Ahead of the head.
        const ahead = await store.append('d', 5, [recordAt(6, 'c9', 1)], [mark('c9', 1, 6)], CTX).catch((e: unknown) => e);
        expect(ahead).toBeInstanceOf(VersionConflictError);
        // On a new document.
        const fresh = await store.append('other', 1, [recordAt(2)], [], CTX).catch((e: unknown) => e);
        expect(fresh).toBeInstanceOf(VersionConflictError);
        expect(await store.load('d')).toEqual(before);
        expect(await store.load('other')).toEqual({
          epoch: (await store.load('never-written')).epoch,
          snapshot: EMPTY_SNAPSHOT,
          ops: [],
          head: 0,
          trimmedTo: 0,
          recoveries: [],
        });
      });

      it('never overwrites an existing version', async () => {
        await store.append('d', 0, records(0, 2), [mark('c1', 2, 2)], CTX);
        const before = await store.load('d');
        const intruder: OpRecord = { version: 2, op: [1, 'ZZZ', 1], clientId: 'intruder', seq: 1, checksum: 7 };
        // Claiming the old head, and claiming the current head with a record for an old version.
        await expect(store.append('d', 1, [intruder], [mark('intruder', 1, 2)], CTX)).rejects.toBeInstanceOf(VersionConflictError);
        await expect(store.append('d', 2, [intruder], [mark('intruder', 1, 2)], CTX)).rejects.toBeInstanceOf(VersionConflictError);
        expect(await store.load('d')).toEqual(before);
        expect(await store.getOps('d', 0, 10)).toEqual(before.ops);
      });

      it('requires records with consecutive versions from expectedHead + 1, all or nothing', async () => {
        await store.append('d', 0, records(0, 1), [mark('c1', 1, 1)], CTX);
        const before = await store.load('d');
        // A gap inside the batch: version 2 is valid, 4 is not; neither may be written.
        await expect(store.append('d', 1, [recordAt(2), recordAt(4)], [mark('c1', 4, 4)], CTX)).rejects.toBeInstanceOf(VersionConflictError);
        // A batch starting past expectedHead + 1.
        await expect(store.append('d', 1, [recordAt(3)], [mark('c1', 3, 3)], CTX)).rejects.toBeInstanceOf(VersionConflictError);
        // A repeated version inside the batch.
        await expect(store.append('d', 1, [recordAt(2), recordAt(2)], [], CTX)).rejects.toBeInstanceOf(VersionConflictError);
        expect(await store.load('d')).toEqual(before);
        // The document still takes the right continuation.
        await store.append('d', 1, records(1, 3), [mark('c1', 3, 3)], CTX);
        expect(await rebuild('d')).toEqual(snap(3));
      });

      it('upserts marks: one per client, the latest wins', async () => {
        await store.append('d', 0, records(0, 1), [mark('c1', 1, 1)], CTX);
        await store.append('d', 1, [recordAt(2, 'c2', 1)], [mark('c2', 1, 2)], CTX);
        await store.append('d', 2, [recordAt(3, 'c1', 2)], [mark('c1', 2, 3, 1)], CTX);
        await store.append('d', 3, [recordAt(4, 'c1', 3), recordAt(5, 'c3', 1)], [mark('c1', 3, 4), mark('c3', 1, 5)], CTX);
        const marks = await store.getMarks('d', ['c1', 'c2', 'c3']);
        const byClient = new Map(marks.map((m) => [m.clientId, m]));
        expect(marks).toHaveLength(3);
        expect(byClient.get('c1')).toEqual(mark('c1', 3, 4));
        expect(byClient.get('c2')).toEqual(mark('c2', 1, 2));
        expect(byClient.get('c3')).toEqual(mark('c3', 1, 5));
      });

      it('does not upsert the marks of a rejected append', async () => {
        await store.append('d', 0, records(0, 1), [mark('c1', 1, 1)], CTX);
        await expect(store.append('d', 0, [recordAt(1, 'c1', 2)], [mark('c1', 2, 1)], CTX)).rejects.toBeInstanceOf(
          VersionConflictError,
        );
        expect(await store.getMarks('d', ['c1'])).toEqual([mark('c1', 1, 1)]);
      });

      it('accepts concurrent appends to different documents in the same tick', async () => {
        const ids = Array.from({ length: 12 }, (_, i) => `doc-${i}`);
        const results = await Promise.allSettled(
          ids.map((id, i) => store.append(id, 0, records(0, 1 + (i % 3), `c-${i}`), [mark(`c-${i}`, 1 + (i % 3), 1 + (i % 3))], CTX)),
        );
        expect(results.map((r) => r.status)).toEqual(ids.map(() => 'fulfilled'));
        for (const [i, id] of ids.entries()) {
          const loaded = await store.load(id);
          expect(versions(loaded.ops)).toEqual(records(0, 1 + (i % 3)).map((r) => r.version));
          expect(await store.getMarks(id, ids.map((_, j) => `c-${j}`))).toEqual([mark(`c-${i}`, 1 + (i % 3), 1 + (i % 3))]);
        }
      });

      it('lets exactly one of concurrent appends with the same expectedHead win', async () => {
        await store.append('d', 0, records(0, 1), [mark('c1', 1, 1)], CTX);
        const contenders = Array.from({ length: 6 }, (_, i) => `w${i}`);
        const results = await Promise.allSettled(
          contenders.map((w) =>
            store.append('d', 1, [{ version: 2, op: [1, w], clientId: w, seq: 1, checksum: 2 }], [mark(w, 1, 2)], CTX),
          ),
        );
        const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [contenders[i] as string] : []));
        expect(won).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(VersionConflictError);
        }
        const loaded = await store.load('d');
        expect(versions(loaded.ops)).toEqual([1, 2]);
        expect(loaded.ops[1]?.clientId).toBe(won[0]);
        const marks = await store.getMarks('d', ['c1', ...contenders]);
        expect(marks.map((m) => m.clientId).sort()).toEqual(['c1', won[0]].sort());
      });

      it('lets exactly one of concurrent appends win even across ticks of a chain', async () => {
        // Two writers each append twice in a row, both starting from head 0.
        const run = async (w: string): Promise<number> => {
          let ok = 0;
          try {
            await store.append('d', 0, [{ version: 1, op: [w], clientId: w, seq: 1, checksum: 1 }], [mark(w, 1, 1)], CTX);
            ok++;
            await store.append('d', 1, [{ version: 2, op: [w.length, w], clientId: w, seq: 2, checksum: 2 }], [mark(w, 2, 2)], CTX);
            ok++;
          } catch (e) {
            expect(e).toBeInstanceOf(VersionConflictError);
          }
          return ok;
        };
        const [a, b] = await Promise.all([run('A'), run('B')]);
        expect([a, b].sort()).toEqual([0, 2]);
        const loaded = await store.load('d');
        expect(versions(loaded.ops)).toEqual([1, 2]);
        expect(new Set(loaded.ops.map((r) => r.clientId)).size).toBe(1);
      });
    });

    describe('getMarks', () => {
      it('returns the marks of the clients asked for that have one, each once, whatever the order', async () => {
        await store.append('d', 0, records(0, 3), [mark('c1', 2, 2), mark('c2', 1, 3)], CTX);
        await store.append('other', 0, records(0, 1, 'c3'), [mark('c3', 1, 1)], CTX);
        const got = await store.getMarks('d', ['c2', 'nobody', 'c1', 'c2', 'c3']);
        expect(got.sort((a, b) => a.clientId.localeCompare(b.clientId))).toEqual([mark('c1', 2, 2), mark('c2', 1, 3)]);
        expect(await store.getMarks('d', [])).toEqual([]);
        expect(await store.getMarks('never-written', ['c1'])).toEqual([]);
      });

      it('finds a few among many marks, and ids that need quoting', async () => {
        const many = Array.from({ length: 2000 }, (_, i) => mark(`client "${i}" 😀`, 1, 1));
        await store.append('d', 0, records(0, 1), many, CTX);
        const got = await store.getMarks('d', [`client "1999" 😀`, `client "7" 😀`]);
        expect(got.map((m) => m.clientId).sort()).toEqual([`client "1999" 😀`, `client "7" 😀`]);
      });
    });

    describe('getOps', () => {
      beforeEach(async () => {
        await store.append('d', 0, records(0, 6), [mark('c1', 6, 6)], CTX);
      });

      it('returns from < version ≤ to, in order', async () => {
        expect(versions(await store.getOps('d', 0, 6))).toEqual([1, 2, 3, 4, 5, 6]);
        expect(versions(await store.getOps('d', 2, 4))).toEqual([3, 4]);
        expect(versions(await store.getOps('d', 3, 4))).toEqual([4]);
        expect(versions(await store.getOps('d', 5, 100))).toEqual([6]);
        expect(await store.getOps('d', 0, 6)).toEqual(records(0, 6));
      });

      it('returns nothing for empty or out-of-range ranges and unknown documents', async () => {
        expect(await store.getOps('d', 4, 4)).toEqual([]);
        expect(await store.getOps('d', 6, 10)).toEqual([]);
        expect(await store.getOps('d', 9, 12)).toEqual([]);
        expect(await store.getOps('d', 4, 2)).toEqual([]);
        expect(await store.getOps('nobody', 0, 10)).toEqual([]);
      });
    });

    describe('snapshots', () => {
      beforeEach(async () => {
        await store.append('d', 0, records(0, 6), [mark('c1', 6, 6)], CTX);
      });

      it('returns the latest snapshot at or before a version', async () => {
        await store.putSnapshot('d', snap(2));
        await store.putSnapshot('d', snap(5));
        expect(await store.getSnapshot('d', 1)).toEqual(EMPTY_SNAPSHOT);
        expect(await store.getSnapshot('d', 2)).toEqual(snap(2));
        expect(await store.getSnapshot('d', 4)).toEqual(snap(2));
        expect(await store.getSnapshot('d', 5)).toEqual(snap(5));
        expect(await store.getSnapshot('d', 6)).toEqual(snap(5));
        expect(await store.getSnapshot('d')).toEqual(snap(5));
      });

      it('keeps the time a snapshot was taken, and none when none was given', async () => {
        const timed = { ...snap(4), at: 1_700_000_000_123 };
        await store.putSnapshot('d', snap(2));
        await store.putSnapshot('d', timed);
        expect(await store.getSnapshot('d', 4)).toEqual(timed);
        expect((await store.load('d')).snapshot).toEqual(timed);
        expect(await store.getSnapshot('d', 3)).toEqual(snap(2));
        expect((await store.getSnapshot('d', 3))?.at).toBeUndefined();
      });

      it('treats a new document as having the empty snapshot at version 0', async () => {
        expect(await store.getSnapshot('nobody')).toEqual(EMPTY_SNAPSHOT);
        expect(await store.getSnapshot('nobody', 0)).toEqual(EMPTY_SNAPSHOT);
      });

      it('stores a snapshot put out of order', async () => {
        await store.putSnapshot('d', snap(5));
        await store.putSnapshot('d', snap(3));
        expect(await store.getSnapshot('d', 4)).toEqual(snap(3));
        expect(await store.getSnapshot('d')).toEqual(snap(5));
      });

      it('keeps one snapshot when the same version is stored twice', async () => {
        await store.putSnapshot('d', snap(3));
        await store.putSnapshot('d', snap(3));
        expect(await store.getSnapshot('d', 3)).toEqual(snap(3));
        await store.trim('d', 3);
        expect(await store.getSnapshot('d', 3)).toEqual(snap(3));
        expect(await rebuild('d')).toEqual(snap(6));
      });

      it('loads from the latest snapshot and the ops after it', async () => {
        await store.putSnapshot('d', snap(4));
        const loaded = await store.load('d');
        expect(loaded.snapshot).toEqual(snap(4));
        expect(versions(loaded.ops)).toEqual([5, 6]);
        expect(loaded.head).toBe(6);
        expect(loaded.trimmedTo).toBe(0);
        expect(await rebuild('d')).toEqual(snap(6));
        // Older ops are still there until trimmed.
        expect(versions(await store.getOps('d', 0, 6))).toEqual([1, 2, 3, 4, 5, 6]);
      });
    });

    describe('trim', () => {
      beforeEach(async () => {
        await store.append('d', 0, records(0, 8), [mark('c1', 8, 8), mark('c2', 1, 3, 0)], CTX);
        await store.putSnapshot('d', snap(2));
        await store.putSnapshot('d', snap(4));
        await store.putSnapshot('d', snap(6));
      });

      it('deletes ops up to the version and older snapshots, and moves the trim point', async () => {
        await store.trim('d', 4);
        expect(versions(await store.getOps('d', 0, 8))).toEqual([5, 6, 7, 8]);
        expect(versions(await store.getOps('d', 4, 8))).toEqual([5, 6, 7, 8]);
        expect(await store.getSnapshot('d', 3)).toBeUndefined();
        expect(await store.getSnapshot('d', 0)).toBeUndefined();
        expect(await store.getSnapshot('d', 4)).toEqual(snap(4));
        expect(await store.getSnapshot('d', 5)).toEqual(snap(4));
        expect(await store.getSnapshot('d')).toEqual(snap(6));
        const loaded = await store.load('d');
        expect(loaded.trimmedTo).toBe(4);
        // Marks outlive the history they were made in.
        expect(await store.getMarks('d', ['c1', 'c2'])).toHaveLength(2);
      });

      it('requires a snapshot at the version, and changes nothing otherwise', async () => {
        const before = await store.load('d');
        await expect(store.trim('d', 5)).rejects.toThrow(/snapshot/);
        expect(await store.load('d')).toEqual(before);
        expect(versions(await store.getOps('d', 0, 8))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      });

      it('never moves the trim point back', async () => {
        await store.trim('d', 6);
        await store.trim('d', 4);
        await store.trim('d', 2);
        expect((await store.load('d')).trimmedTo).toBe(6);
        expect(versions(await store.getOps('d', 0, 8))).toEqual([7, 8]);
        await store.trim('d', 6);
        expect((await store.load('d')).trimmedTo).toBe(6);
      });

      it('still rebuilds the head after trimming, and appends continue', async () => {
        await store.trim('d', 4);
        expect(await rebuild('d')).toEqual(snap(8));
        await store.trim('d', 6);
        expect(await rebuild('d')).toEqual(snap(8));
        expect((await store.load('d')).head).toBe(8);
        await expect(store.append('d', 6, [recordAt(7, 'late', 1)], [], CTX)).rejects.toBeInstanceOf(VersionConflictError);
        await store.append('d', 8, records(8, 10), [mark('c1', 10, 10)], CTX);
        expect(await rebuild('d')).toEqual(snap(10));
        expect(versions(await store.getOps('d', 6, 10))).toEqual([7, 8, 9, 10]);
      });

      it('trims to a snapshot at the head', async () => {
        await store.putSnapshot('d', snap(8));
        await store.trim('d', 8);
        const loaded = await store.load('d');
        expect(loaded).toMatchObject({ snapshot: snap(8), ops: [], trimmedTo: 8 });
        expect(await store.getOps('d', 0, 8)).toEqual([]);
        await store.append('d', 8, records(8, 9), [], CTX);
        expect(await rebuild('d')).toEqual(snap(9));
      });
    });

    describe('epochs', () => {
      it('the first append stores the epoch, and load returns it', async () => {
        await store.append('d', 0, records(0, 2), [], { epoch: 'first' });
        expect((await store.load('d')).epoch).toBe('first');
        await store.append('d', 2, records(2, 3), [], { epoch: 'first' });
        expect((await store.load('d')).epoch).toBe('first');
      });

      it('an append naming another epoch is a VersionConflictError and writes nothing', async () => {
        await store.append('d', 0, records(0, 2), [mark('c1', 2, 2)], { epoch: 'first' });
        const before = await store.load('d');
        await expect(store.append('d', 2, records(2, 3), [mark('c1', 3, 3)], { epoch: 'second' })).rejects.toBeInstanceOf(
          VersionConflictError,
        );
        expect(await store.load('d')).toEqual(before);
      });

      it('documents have epochs of their own', async () => {
        await store.append('a', 0, records(0, 1), [], { epoch: 'ea' });
        await store.append('b', 0, records(0, 1), [], { epoch: 'eb' });
        expect((await store.load('a')).epoch).toBe('ea');
        expect((await store.load('b')).epoch).toBe('eb');
      });
    });

    describe('checksums', () => {
      it('keeps the checksum of every record and snapshot', async () => {
        await store.append('d', 0, records(0, 6), [], CTX);
        await store.putSnapshot('d', snap(3));
        expect((await store.getOps('d', 0, 6)).map((r) => r.checksum)).toEqual([1, 2, 3, 4, 5, 6].map(checksumAt));
        expect(await store.getSnapshot('d', 4)).toEqual(snap(3));
        expect(await rebuild('d')).toEqual(snap(6));
      });
    });

    describe('recoveries', () => {
      const recovery = (lostEpoch: string, version: number, at: number): Recovery => ({
        lostEpoch,
        version,
        checksum: checksumAt(version),
        text: textAt(version),
        guess: `${textAt(version)}?`,
        samples: [
          [version, checksumAt(version)],
          [0, 0],
        ],
        at,
      });

      it('are stored with an append, one per lost epoch, the latest replacing the earlier', async () => {
        await store.append('d', 0, records(0, 1), [], { ...CTX, recovery: recovery('lost-1', 3, 1) });
        await store.append('d', 1, records(1, 2), [], { ...CTX, recovery: recovery('lost-2', 2, 2) });
        await store.append('d', 2, records(2, 3), [], { ...CTX, recovery: recovery('lost-1', 5, 3) });
        const loaded = await store.load('d');
        const byEpoch = Object.fromEntries(loaded.recoveries.map((r) => [r.lostEpoch, r]));
        expect(byEpoch).toEqual({ 'lost-1': recovery('lost-1', 5, 3), 'lost-2': recovery('lost-2', 2, 2) });
      });

      it('may come with no op, and a rejected append stores none', async () => {
        await store.append('d', 0, [], [], { ...CTX, recovery: recovery('lost', 4, 0) });
        await expect(store.append('d', 5, records(5, 6), [], { ...CTX, recovery: recovery('other', 1, 6) })).rejects.toBeInstanceOf(
          VersionConflictError,
        );
        const loaded = await store.load('d');
        expect(loaded.recoveries).toEqual([recovery('lost', 4, 0)]);
        expect(loaded.epoch).toBe(CTX.epoch);
      });
    });

    it('close lets a pending append finish first', async () => {
      const pending = store.append('d', 0, records(0, 2), [mark('c1', 2, 2)], CTX);
      closed = true;
      await store.close();
      await expect(pending).resolves.toBeUndefined();
    });

    it('ping resolves', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
      await store.append('d', 0, records(0, 1), [], CTX);
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
