/**
 * A {@link Store} in process memory: for tests, benchmarks and ephemeral servers.
 * Nothing survives the process, so every MemoryStore gives its new documents an epoch of its
 * own. Records are stored by reference: callers must not mutate them.
 */
import { randomUUID } from 'node:crypto';
import {
  type AppendContext,
  type ClientMark,
  EMPTY_SNAPSHOT,
  type LoadedDocument,
  type OpRecord,
  type Recovery,
  type Snapshot,
  type Store,
  appendConflict,
} from './store.js';

interface MemoryDocument {
  epoch: string | undefined;
  /** ops[i] has version trimmedTo + i + 1. */
  ops: OpRecord[];
  trimmedTo: number;
  snapshots: Snapshot[];
  marks: Map<string, ClientMark>;
  recoveries: Map<string, Recovery>;
}

/** See the file comment. */
export class MemoryStore implements Store {
  private readonly docs = new Map<string, MemoryDocument>();
  /** The epoch of documents this store has never written. */
  private readonly newEpoch = randomUUID();

  private doc(docId: string): MemoryDocument {
    let d = this.docs.get(docId);
    if (d === undefined) {
      d = { epoch: undefined, ops: [], trimmedTo: 0, snapshots: [EMPTY_SNAPSHOT], marks: new Map(), recoveries: new Map() };
      this.docs.set(docId, d);
    }
    return d;
  }

  private latestSnapshot(d: MemoryDocument, atOrBefore: number): Snapshot | undefined {
    for (let i = d.snapshots.length - 1; i >= 0; i--) {
      const s = d.snapshots[i] as Snapshot;
      if (s.version <= atOrBefore) return s;
    }
    return undefined;
  }

  /** @inheritdoc */
  async load(docId: string): Promise<LoadedDocument> {
    const d = this.doc(docId);
    const snapshot = this.latestSnapshot(d, Infinity) ?? EMPTY_SNAPSHOT;
    return {
      epoch: d.epoch ?? this.newEpoch,
      snapshot,
      ops: d.ops.slice(snapshot.version - d.trimmedTo),
      head: d.trimmedTo + d.ops.length,
      trimmedTo: d.trimmedTo,
      recoveries: [...d.recoveries.values()],
    };
  }

  /** @inheritdoc */
  async append(
    docId: string,
    expectedHead: number,
    records: OpRecord[],
    marks: ClientMark[],
    context: AppendContext,
  ): Promise<void> {
    const d = this.doc(docId);
    const conflict = appendConflict(docId, expectedHead, records, context.epoch, d.trimmedTo + d.ops.length, d.epoch);
    if (conflict !== undefined) throw conflict;
    d.epoch = context.epoch;
    for (const r of records) d.ops.push(r);
    for (const m of marks) d.marks.set(m.clientId, m);
    if (context.recovery !== undefined) d.recoveries.set(context.recovery.lostEpoch, context.recovery);
  }

  /** @inheritdoc */
  async getMarks(docId: string, clientIds: readonly string[]): Promise<ClientMark[]> {
    const marks = this.docs.get(docId)?.marks;
    const out: ClientMark[] = [];
    if (marks === undefined) return out;
    for (const id of new Set(clientIds)) {
      const m = marks.get(id);
      if (m !== undefined) out.push(m);
    }
    return out;
  }

  /** @inheritdoc */
  async getOps(docId: string, from: number, to: number): Promise<OpRecord[]> {
    const d = this.doc(docId);
    const start = Math.max(from, d.trimmedTo) - d.trimmedTo;
    const end = Math.max(start, to - d.trimmedTo);
    return d.ops.slice(start, end);
  }

  /** @inheritdoc */
  async getSnapshot(docId: string, atOrBefore = Infinity): Promise<Snapshot | undefined> {
    return this.latestSnapshot(this.doc(docId), atOrBefore);
  }

  /** @inheritdoc */
  async putSnapshot(docId: string, snapshot: Snapshot): Promise<void> {
    const d = this.doc(docId);
    if (d.snapshots.some((s) => s.version === snapshot.version)) return;
    d.snapshots.push(snapshot);
    d.snapshots.sort((a, b) => a.version - b.version);
  }

  /** @inheritdoc */
  async trim(docId: string, version: number): Promise<void> {
    const d = this.doc(docId);
    if (version <= d.trimmedTo) return;
    if (!d.snapshots.some((s) => s.version === version)) {
      throw new Error(`cannot trim ${JSON.stringify(docId)} to ${version}: no snapshot there`);
    }
    d.ops.splice(0, version - d.trimmedTo);
    d.snapshots = d.snapshots.filter((s) => s.version >= version);
    d.trimmedTo = version;
  }

  /** @inheritdoc */
  async ping(): Promise<void> {}

  /** @inheritdoc */
  async close(): Promise<void> {}
}
