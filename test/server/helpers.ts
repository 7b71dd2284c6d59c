/**
 * Shared helpers of the server tests: store wrappers that fail or block on demand, log
 * replay, hand-settled promises and error assertions. Not a test file itself.
 */
import { expect } from 'vitest';
import { apply } from '../../src/ot/index.js';
import { OtterError } from '../../src/protocol/errors.js';
import type { ErrorCode } from '../../src/protocol/errors.js';
import type { Sequencer } from '../../src/server/sequencer.js';
import type { AppendContext, ClientMark, LoadedDocument, OpRecord, Snapshot, Store } from '../../src/server/store.js';

/** The text of a log replayed from the empty document. */
export function replay(records: readonly OpRecord[], from = ''): string {
  let text = from;
  for (const r of records) text = apply(text, r.op);
  return text;
}

/** A promise settled by hand. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

/** A promise and the functions that settle it. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A {@link Store} that delegates to another and can be told to fail or block calls, and that
 * records every append and snapshot it forwards.
 */
export class ControlledStore implements Store {
  /**
   * Appends to fail, once each: the first entry matching an append (by `docId` and `when`,
   * both optional) is removed and its error thrown instead of appending.
   */
  appendFailures: Array<{
    docId?: string;
    when?: (docId: string, records: readonly OpRecord[]) => boolean;
    error: unknown;
    /** Write first, then throw: the append landed but its answer was lost. */
    afterWriting?: boolean;
  }> = [];
  /** If set, appends to this document wait for the gate before going through (or failing). */
  appendGate: { docId: string; gate: Promise<void> } | undefined;
  /** Fail every getOps with this error while set. */
  getOpsError: unknown;
  /** If set, every getOps waits for the gate before reading. */
  getOpsGate: Promise<void> | undefined;
  /** Fail every load with this error while set. */
  loadError: unknown;
  readonly appends: Array<{
    docId: string;
    expectedHead: number;
    records: OpRecord[];
    marks: ClientMark[];
    context: AppendContext;
  }> = [];
  readonly snapshotsPut: Array<{ docId: string; version: number }> = [];
  /** Every getMarks it forwarded: the ids asked for and how many marks came back. */
  readonly markReads: Array<{ docId: string; clientIds: string[]; found: number }> = [];

  constructor(readonly inner: Store) {}

  load(docId: string): Promise<LoadedDocument> {
    if (this.loadError !== undefined) return Promise.reject(this.loadError);
    return this.inner.load(docId);
  }

  async append(
    docId: string,
    expectedHead: number,
    records: OpRecord[],
    marks: ClientMark[],
    context: AppendContext,
  ): Promise<void> {
    const gate = this.appendGate;
    if (gate !== undefined && gate.docId === docId) await gate.gate;
    const i = this.appendFailures.findIndex(
      (f) => (f.docId === undefined || f.docId === docId) && (f.when === undefined || f.when(docId, records)),
    );
    const [failure] = i >= 0 ? this.appendFailures.splice(i, 1) : [];
    if (failure !== undefined && failure.afterWriting !== true) throw failure.error;
    await this.inner.append(docId, expectedHead, records, marks, context);
    this.appends.push({ docId, expectedHead, records, marks, context });
    if (failure !== undefined) throw failure.error;
  }

  async getMarks(docId: string, clientIds: readonly string[]): Promise<ClientMark[]> {
    const marks = await this.inner.getMarks(docId, clientIds);
    this.markReads.push({ docId, clientIds: [...clientIds], found: marks.length });
    return marks;
  }

  async getOps(docId: string, from: number, to: number): Promise<OpRecord[]> {
    if (this.getOpsGate !== undefined) await this.getOpsGate;
    if (this.getOpsError !== undefined) throw this.getOpsError;
    return this.inner.getOps(docId, from, to);
  }

  getSnapshot(docId: string, atOrBefore?: number): Promise<Snapshot | undefined> {
    return this.inner.getSnapshot(docId, atOrBefore);
  }

  putSnapshot(docId: string, snapshot: Snapshot): Promise<void> {
    this.snapshotsPut.push({ docId, version: snapshot.version });
    return this.inner.putSnapshot(docId, snapshot);
  }

  trim(docId: string, version: number): Promise<void> {
    return this.inner.trim(docId, version);
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Asserts that `p` rejects with an {@link OtterError} of `code`; returns the error. */
export async function expectOtterError(p: Promise<unknown>, code: ErrorCode): Promise<OtterError> {
  let error: unknown;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  expect(error, `expected a rejection with ${code}`).toBeInstanceOf(OtterError);
  expect((error as OtterError).code).toBe(code);
  return error as OtterError;
}

/** Records every onApplied event of a sequencer. */
export function recordApplied(sequencer: Sequencer): Array<{ docId: string; record: OpRecord }> {
  const events: Array<{ docId: string; record: OpRecord }> = [];
  sequencer.onApplied((docId, record) => events.push({ docId, record }));
  return events;
}
