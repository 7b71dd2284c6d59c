/**
 * The in-memory state of one open document and the synchronous heart of the sequencer:
 * deciding, for one submission, whether it is new, a resubmission or an error, rebasing it
 * over history one op at a time, and applying it to the rope.
 *
 * Everything here is synchronous and throws {@link OtterError}; a throw leaves the state as it
 * was (the op is fully validated against the rope before the rope is touched).
 */
import {
  type Component,
  type Operation,
  type OperationLengths,
  checkOperation,
} from '../ot/index.js';
import { invertWithDeleted } from '../ot/apply.js';
import { Rope, applyToRope, deletedFromRope } from '../ot/rope.js';
import { chainChecksum } from '../protocol/checksum.js';
import { ErrorCode, OtterError, invalidOpRefusal } from '../protocol/errors.js';
import { fingerprint } from './fingerprint.js';
import { StorageCorruptError, verifyLoaded } from './integrity.js';
import { Rebasing } from './rebasing.js';
import { type TrimCandidate, opBytes } from './retention.js';
import type { ClientMark, LoadedDocument, OpRecord, Recovery } from './store.js';

/** A validated submission. */
export interface Submission {
  readonly docId: string;
  readonly clientId: string;
  readonly seq: number;
  readonly baseVersion: number;
  readonly op: Component[];
  /** The op's lengths, from validation. */
  readonly lengths: OperationLengths;
  /** The op's size as limited by `maxOpLength`: components plus inserted code units. */
  readonly size: number;
  readonly author?: string | undefined;
  /**
   * The submission as its client sent it, when the sequencer rebased it before queueing it
   * (a catch-up): the client's mark records this, so a resend of it is recognised as such.
   */
  readonly sent?: { readonly baseVersion: number; readonly op: Component[] } | undefined;
}

/**
 * A client mark as held in memory: a mark made in this process keeps the submitted op until
 * the mark is stored, so the fingerprint is computed only then; a stored one has its
 * fingerprint.
 */
export interface LiveMark {
  readonly clientId: string;
  readonly seq: number;
  readonly version: number;
  readonly baseVersion: number;
  readonly op?: Component[];
  readonly fingerprint?: string;
}

/**
 * A mark made by this document state. The state owns it alone (everything outside sees
 * {@link toClientMark} copies), so a client's next op updates it in place instead of
 * allocating a new one; the state is discarded wholesale if a batch fails to commit.
 * Exactly one of `op` (changed, not stored yet) and `fingerprint` (stored: the op, perhaps
 * large, is let go) is set.
 */
class OwnMark implements LiveMark {
  /** Changed since the last {@link DocumentState.takeChangedMarks}. */
  changed = true;
  fingerprint: string | undefined = undefined;

  constructor(
    readonly clientId: string,
    public seq: number,
    public version: number,
    public baseVersion: number,
    public op: Component[] | undefined,
  ) {}
}

/** What {@link DocumentState.rollback} needs to take back one submitted op. */
interface UndoEntry {
  readonly version: number;
  readonly deleted: readonly string[];
  readonly markBefore: LiveMark | undefined;
}

/** A copy of `m` that later changes to `m` (an {@link OwnMark} is updated in place) leave alone. */
function frozenMark(m: LiveMark): LiveMark {
  if (!(m instanceof OwnMark)) return m;
  return m.op === undefined
    ? { clientId: m.clientId, seq: m.seq, version: m.version, baseVersion: m.baseVersion, fingerprint: m.fingerprint }
    : { clientId: m.clientId, seq: m.seq, version: m.version, baseVersion: m.baseVersion, op: m.op };
}

/** The storable form of a mark (computes the fingerprint if it is not known yet). */
export function toClientMark(m: LiveMark): ClientMark {
  return {
    clientId: m.clientId,
    seq: m.seq,
    version: m.version,
    baseVersion: m.baseVersion,
    fingerprint: m.fingerprint ?? fingerprint(m.baseVersion, m.op ?? []),
  };
}

function sameOp(a: Operation, b: Operation): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A resubmission of an applied op: the version it produced, and the op applied there and the
 * document checksum there, if still kept.
 */
export interface Duplicate {
  readonly duplicate: true;
  readonly version: number;
  readonly op: Component[] | undefined;
  readonly checksum: number | undefined;
}

/**
 * What one submission came to: the record of the new op it applied (its client's mark is
 * updated and listed by {@link DocumentState.takeChangedMarks}), or a {@link Duplicate}.
 */
export type Outcome = OpRecord | Duplicate;

/** Narrows an {@link Outcome}. */
export function isDuplicate(o: Outcome): o is Duplicate {
  return (o as Partial<Duplicate>).duplicate === true;
}

/**
 * Applies `op` to `rope` (`applyToRope` of src/ot: checked first, O(components × log n)),
 * refusing an op that does not fit the rope (another length, a boundary inside a surrogate
 * pair) with `invalid-op`; the rope is then untouched.
 */
function applyOrRefuse(rope: Rope, op: Operation): void {
  try {
    applyToRope(rope, op);
  } catch (e) {
    throw invalidOpRefusal(e, 'the op does not fit the document') ?? e;
  }
}

/** Limits the sequencer enforces on every submission. */
export interface DocumentLimits {
  /** Largest document, in UTF-16 code units. */
  readonly maxDocLength: number;
  /** Largest new op: components plus inserted code units. */
  readonly maxOpLength: number;
}

/** One open document. */
export class DocumentState {
  readonly rope: Rope;
  /** The document's incarnation id, as the store gives it (see `Store`). */
  readonly epoch: string;
  /** Version of the rope's content (includes a batch being committed). */
  head: number;
  /** The document checksum at `head`. */
  checksum: number;
  /** Last version known durable. */
  committed: number;
  /** Oldest version still rebuildable from the store. */
  trimmedTo: number;
  /** Recent ops, versions head - recent.length + 1 … head. */
  recent: OpRecord[];
  /** The document checksum at `recentStart`. */
  private recentStartChecksum: number;
  /** Snapshots known in the store that history may be trimmed to, ascending by version. */
  snapshots: TrimCandidate[];
  /** Size of the log up to `head` by {@link opBytes}, counted from the loaded snapshot (if counting). */
  logBytes = 0;
  /** See {@link recentBytes}. */
  private heldBytes = 0;
  /**
   * The client marks held in memory, least recently stored or read first: every mark changed
   * by ops not yet committed, and as many others as {@link forgetMarks} leaves. The store
   * holds every committed mark; one missing here is read with `Store.getMarks` and added with
   * {@link cacheMarks} before a submission of its client is decided.
   */
  private readonly marks = new Map<string, LiveMark>();
  /** Recoveries of lost incarnations, by lost epoch. */
  readonly recoveries: Map<string, Recovery>;
  /** Marks changed by ops not yet handed to the store, in the order first changed. */
  private changedMarks: OwnMark[] = [];
  /**
   * What each submitted op past {@link committed} changed, by version, oldest first (older
   * entries are dropped as new ones come): the texts it deleted, and its client's mark before
   * it (undefined: none was held). What {@link rollback} undoes them with.
   */
  private undoLog: UndoEntry[] = [];

  /**
   * Builds the state from what the store holds, after checking that it holds together
   * (`integrity.ts`): throws {@link StorageCorruptError} otherwise. `countBytes`: keep {@link logBytes} (for a
   * retention policy capping history by size).
   */
  constructor(
    readonly id: string,
    loaded: LoadedDocument,
    private readonly countBytes = false,
  ) {
    verifyLoaded(id, loaded);
    this.rope = new Rope(loaded.snapshot.text);
    for (const r of loaded.ops) {
      try {
        applyOrRefuse(this.rope, r.op);
      } catch (e) {
        if (!(e instanceof OtterError)) throw e;
        throw new StorageCorruptError(id, `the op of version ${r.version} does not fit the text before it: ${e.message}`);
      }
    }
    this.epoch = loaded.epoch;
    this.head = loaded.head;
    this.checksum = loaded.ops[loaded.ops.length - 1]?.checksum ?? loaded.snapshot.checksum;
    this.committed = this.head;
    this.trimmedTo = loaded.trimmedTo;
    this.recent = loaded.ops.slice();
    this.recentStartChecksum = loaded.snapshot.checksum;
    this.snapshots = [{ version: loaded.snapshot.version, at: loaded.snapshot.at, bytes: 0 }];
    for (const r of loaded.ops) this.heldBytes += opBytes(r.op);
    if (countBytes) this.logBytes = this.heldBytes;
    this.recoveries = new Map(loaded.recoveries.map((r) => [r.lostEpoch, r]));
  }

  /** Size of the ops in `recent` by {@link opBytes}: what the sequencer's history budget counts. */
  get recentBytes(): number {
    return this.heldBytes;
  }

  /** First version held in `recent` minus one. */
  get recentStart(): number {
    return this.head - this.recent.length;
  }

  /** The document checksum at `version` if it is held in memory (recentStart ≤ version ≤ head). */
  checksumAt(version: number): number | undefined {
    const start = this.recentStart;
    if (version === start) return this.recentStartChecksum;
    return version > start && version <= this.head ? this.recent[version - start - 1]?.checksum : undefined;
  }

  /**
   * Appends a committed-to-be op that no submission made (a recovery's merge), as version
   * head + 1 attributed to `clientId` with seq 0. `op` must fit the rope (throws `invalid-op`).
   */
  applyMerge(op: Component[], clientId: string, author: string | undefined): OpRecord {
    applyOrRefuse(this.rope, op);
    const version = ++this.head;
    this.checksum = chainChecksum(this.checksum, op);
    const record: OpRecord =
      author === undefined
        ? { version, op, clientId, seq: 0, checksum: this.checksum }
        : { version, op, clientId, seq: 0, author, checksum: this.checksum };
    this.push(record);
    return record;
  }

  /**
   * Takes in ops another writer committed to the store after {@link committed}: `records`
   * must run on from committed + 1 with consecutive versions, and every op here must be
   * committed (head = committed). Each op is applied to the rope and its stored checksum
   * checked against the chain; the cached mark of each op's client is forgotten (the store
   * holds the newer one, read again before that client's next submission is decided).
   * Returns false when the versions do not run on from committed, or the ops do not match the
   * checksum chain (nothing changed), or an op does not fit the text (the rope may then hold
   * some of the ops: the state must be discarded); in each case the caller reloads the whole
   * document, which tells a damaged store from a replaced one. Throws if ops are not committed.
   */
  applyCommitted(records: readonly OpRecord[]): boolean {
    if (this.head !== this.committed) throw new Error('ops of another writer taken in over uncommitted ops');
    let checksum = this.checksum;
    for (let i = 0; i < records.length; i++) {
      const r = records[i] as OpRecord;
      if (r.version !== this.head + 1 + i) return false;
      checksum = chainChecksum(checksum, r.op);
      if (checksum !== r.checksum) return false;
    }
    try {
      for (const r of records) applyOrRefuse(this.rope, r.op);
    } catch (e) {
      if (!(e instanceof OtterError)) throw e;
      return false;
    }
    for (const r of records) {
      this.push(r);
      this.marks.delete(r.clientId);
    }
    this.head += records.length;
    this.committed = this.head;
    this.checksum = checksum;
    return true;
  }

  /** Appends `record` to `recent`, counting its size. */
  private push(record: OpRecord): void {
    const bytes = opBytes(record.op);
    this.recent.push(record);
    this.heldBytes += bytes;
    if (this.countBytes) this.logBytes += bytes;
  }

  /**
   * The cached mark of `clientId`. Undefined when the client has no mark, or when its mark is
   * not cached: so before a submission is decided ({@link submit}), what the store holds for
   * its client must have been given to {@link cacheMarks}.
   */
  markOf(clientId: string): LiveMark | undefined {
    return this.marks.get(clientId);
  }

  /** The client ids of `of` (submissions, say) whose mark is not cached, each once. */
  uncachedMarks(of: readonly { readonly clientId: string }[]): string[] {
    let out: Set<string> | undefined;
    for (const { clientId } of of) if (!this.marks.has(clientId)) (out ??= new Set()).add(clientId);
    return out === undefined ? [] : [...out];
  }

  /**
   * Caches `marks` as read from the store, as the most recently used. A cached mark is kept
   * instead of a read one (it is the same, or newer: made by an op not committed yet).
   */
  cacheMarks(marks: readonly ClientMark[]): void {
    for (const m of marks) if (!this.marks.has(m.clientId)) this.marks.set(m.clientId, m);
  }

  /**
   * Forgets the least recently used marks beyond `keep`. Only when every op is committed (head
   * = committed, so the store holds every mark): otherwise forgets nothing, so a mark is
   * never forgotten before the store has it.
   */
  forgetMarks(keep: number): void {
    if (this.head !== this.committed || this.changedMarks.length > 0) return;
    let excess = this.marks.size - keep;
    for (const id of this.marks.keys()) {
      if (excess-- <= 0) break;
      this.marks.delete(id);
    }
  }

  /**
   * The op that produced `version`, from `recent` or from `older` (ops fetched from the store,
   * consecutive, ending at recentStart). Undefined when neither holds it.
   */
  opAt(version: number, older: readonly OpRecord[]): OpRecord | undefined {
    const start = this.recentStart;
    if (version > start) return this.recent[version - start - 1];
    const i = version - (start - older.length) - 1;
    return i >= 0 ? older[i] : undefined;
  }

  /**
   * Rebases `op` from `from` to `to` over history, one op at a time ({@link Rebasing}: history
   * first at ties, a large op in a tree); throws `invalid-op`, or `history-gone` if a version
   * is missing.
   */
  private rebase(op: Component[], from: number, to: number, older: readonly OpRecord[]): Component[] {
    const rebasing = new Rebasing(op, to - from);
    for (let v = from + 1; v <= to; v++) {
      const past = this.opAt(v, older);
      if (past === undefined) {
        throw new OtterError(ErrorCode.HistoryGone, `version ${v} is no longer in history`);
      }
      try {
        rebasing.over(past.op);
      } catch (e) {
        throw invalidOpRefusal(e, `the op does not fit version ${v - 1}`) ?? e;
      }
    }
    return rebasing.result();
  }

  /** Does `s`, rebased to just before `record`'s version, equal the op stored there? */
  private matches(s: Submission, record: OpRecord, older: readonly OpRecord[]): boolean {
    if (s.baseVersion >= record.version) return false;
    try {
      return sameOp(this.rebase(s.op, s.baseVersion, record.version - 1, older), record.op);
    } catch {
      return false;
    }
  }

  /**
   * Is `s` the same submission as the one `mark` records? Yes if it repeats the original
   * (same base, same op), or if, rebased to just before the original's version, it equals the
   * op stored there (a client that transformed its in-flight op before resending it). Throws
   * `history-gone` when that needs history already trimmed: the client must resync.
   */
  private isResubmission(s: Submission, mark: LiveMark, older: readonly OpRecord[]): boolean {
    if (
      s.baseVersion === mark.baseVersion &&
      (mark.op !== undefined ? sameOp(mark.op, s.op) : fingerprint(s.baseVersion, s.op) === mark.fingerprint)
    ) {
      return true;
    }
    const original = this.opAt(mark.version, older);
    if (original === undefined || s.baseVersion < this.trimmedTo) {
      throw new OtterError(
        ErrorCode.HistoryGone,
        `seq ${s.seq} was applied at version ${mark.version}, whose history is gone; resync`,
      );
    }
    return this.matches(s, original, older);
  }

  /**
   * An older op of the same client (a pipelined resubmission): found in the history after the
   * submission's base version, it is a duplicate if its content matches. Throws `seq-stale`
   * if it is not there, `seq-reused` if the content differs.
   */
  private olderDuplicate(s: Submission, older: readonly OpRecord[]): Duplicate {
    for (let v = Math.max(s.baseVersion, this.trimmedTo) + 1; v <= this.head; v++) {
      const record = this.opAt(v, older);
      if (record === undefined || record.clientId !== s.clientId || record.seq !== s.seq) continue;
      if (!this.matches(s, record, older)) {
        throw new OtterError(
          ErrorCode.SeqReused,
          `seq ${s.seq} of client ${JSON.stringify(s.clientId)} was applied with different content`,
        );
      }
      return { duplicate: true, version: v, op: record.op, checksum: record.checksum };
    }
    throw new OtterError(
      ErrorCode.SeqStale,
      `seq ${s.seq} is older than client ${JSON.stringify(s.clientId)}'s last applied seq and not in the history after its base version`,
    );
  }

  /**
   * Decides and, for a new op, applies one submission. On success the rope, head, recent ops
   * and marks reflect it (not yet committed). Throws {@link OtterError} with nothing changed.
   */
  submit(s: Submission, limits: DocumentLimits, older: readonly OpRecord[]): Outcome {
    const mark = this.marks.get(s.clientId);
    const last = mark?.seq ?? 0;
    if (mark !== undefined && s.seq <= last) {
      if (s.seq < last) return this.olderDuplicate(s, older);
      if (!this.isResubmission(s, mark, older)) {
        throw new OtterError(
          ErrorCode.SeqReused,
          `seq ${s.seq} of client ${JSON.stringify(s.clientId)} was applied with different content`,
        );
      }
      const original = this.opAt(mark.version, older);
      return { duplicate: true, version: mark.version, op: original?.op, checksum: original?.checksum };
    }
    if (s.seq !== last + 1) {
      throw new OtterError(ErrorCode.SeqGap, `seq ${s.seq} skips ahead: the next expected is ${last + 1}`);
    }
    // Checked after duplicate detection: a resent op that grew in the client's transforms is
    // still recognised as the op already applied.
    if (s.size > limits.maxOpLength) {
      throw new OtterError(
        ErrorCode.TooLarge,
        `the op has size ${s.size} (components + inserted code units), over the limit of ${limits.maxOpLength}`,
      );
    }
    if (s.baseVersion > this.head) {
      throw new OtterError(
        ErrorCode.VersionAhead,
        `base version ${s.baseVersion} is ahead of the document (version ${this.head})`,
      );
    }
    if (s.baseVersion < this.trimmedTo) {
      throw new OtterError(
        ErrorCode.HistoryGone,
        `base version ${s.baseVersion} is older than the retained history (from ${this.trimmedTo}); resync`,
      );
    }
    const late = s.baseVersion < this.head;
    const op = late ? this.rebase(s.op, s.baseVersion, this.head, older) : s.op;
    const { target } = late ? checkOperation(op) : s.lengths;
    if (target > limits.maxDocLength) {
      throw new OtterError(
        ErrorCode.TooLarge,
        `the document would grow to ${target} code units, over the limit of ${limits.maxDocLength}`,
      );
    }
    const deleted = deletedFromRope(this.rope, op);
    applyOrRefuse(this.rope, op);
    const version = ++this.head;
    const checksum = (this.checksum = chainChecksum(this.checksum, op));
    this.logUndo({ version, deleted, markBefore: mark === undefined ? undefined : frozenMark(mark) });
    const record: OpRecord =
      s.author === undefined
        ? { version, op, clientId: s.clientId, seq: s.seq, checksum }
        : { version, op, clientId: s.clientId, seq: s.seq, author: s.author, checksum };
    this.push(record);
    const sent = s.sent ?? s;
    if (mark instanceof OwnMark) {
      mark.seq = s.seq;
      mark.version = version;
      mark.baseVersion = sent.baseVersion;
      mark.op = sent.op;
      mark.fingerprint = undefined;
      if (!mark.changed) {
        mark.changed = true;
        this.changedMarks.push(mark);
      }
    } else {
      const own = new OwnMark(s.clientId, s.seq, version, sent.baseVersion, sent.op);
      this.marks.set(s.clientId, own);
      this.changedMarks.push(own);
    }
    return record;
  }

  /** Records what a submitted op changed, forgetting the entries of committed versions. */
  private logUndo(entry: UndoEntry): void {
    let drop = 0;
    while (drop < this.undoLog.length && (this.undoLog[drop] as UndoEntry).version <= this.committed) drop++;
    if (drop > 0) this.undoLog.splice(0, drop);
    this.undoLog.push(entry);
  }

  /**
   * Takes back every op past {@link committed} (a batch the store refused, say because another
   * writer's append came first): the rope, head, checksum, recent ops and the marks of those
   * ops' clients return to `committed` (the marks as the store still holds them: a client
   * without one before is forgotten, and read again before its next submission is decided).
   * Linear in the ops taken back, never
   * in the document. Returns false, changing nothing, when it cannot: a restore's merge is
   * among them (it also changed the recoveries), or they are not all in memory; the caller
   * then discards the state and loads it again.
   */
  rollback(): boolean {
    const count = this.head - this.committed;
    if (count === 0) return true;
    const undo = this.undoLog.filter((u) => u.version > this.committed);
    if (undo.length !== count || count > this.recent.length) return false;
    const undone = this.recent.slice(this.recent.length - count);
    if (undone.some((r, i) => r.seq === 0 || r.version !== (undo[i] as UndoEntry).version)) return false;
    const clients = new Set<string>();
    // Newest first: a client with several ops among them ends with its mark before the first.
    for (let i = count - 1; i >= 0; i--) {
      const r = undone[i] as OpRecord;
      const entry = undo[i] as UndoEntry;
      applyToRope(this.rope, invertWithDeleted(r.op, entry.deleted));
      const bytes = opBytes(r.op);
      this.heldBytes -= bytes;
      if (this.countBytes) this.logBytes -= bytes;
      clients.add(r.clientId);
      if (entry.markBefore === undefined) this.marks.delete(r.clientId);
      else this.marks.set(r.clientId, entry.markBefore);
    }
    this.recent.length -= count;
    this.head = this.committed;
    this.checksum = this.recent[this.recent.length - 1]?.checksum ?? this.recentStartChecksum;
    this.changedMarks = this.changedMarks.filter((m) => !clients.has(m.clientId));
    this.undoLog = [];
    return true;
  }

  /**
   * The storable marks of every client whose mark changed since the last call (for the batch
   * being committed), in the order they first changed. Each becomes the most recently used,
   * and keeps its fingerprint instead of its op from now on.
   */
  takeChangedMarks(): ClientMark[] {
    const changed = this.changedMarks;
    this.changedMarks = [];
    const out = new Array<ClientMark>(changed.length);
    for (let i = 0; i < changed.length; i++) {
      const m = changed[i] as OwnMark;
      m.changed = false;
      const stored = toClientMark(m);
      m.fingerprint = stored.fingerprint;
      m.op = undefined;
      this.marks.delete(m.clientId);
      this.marks.set(m.clientId, m);
      out[i] = stored;
    }
    return out;
  }

  /**
   * Drops cached ops beyond `keep`, oldest first, once they exceed it by more than a sixteenth
   * of `keep`: then down to `keep`. So at most keep + keep/16 ops stay, and a document that
   * commits an op at a time shifts its window once every keep/16 ops, not on every commit
   * (exact for `keep` under 16).
   */
  trimRecent(keep: number): void {
    const excess = this.recent.length - keep;
    if (excess > keep >> 4) this.dropRecent(excess);
  }

  /**
   * Drops the oldest committed ops of `recent` until at least `bytes` of them (by
   * {@link opBytes}) are gone or none committed is left; ops not yet committed are kept.
   */
  shedRecent(bytes: number): void {
    const committed = this.recent.length - (this.head - this.committed);
    let drop = 0;
    let dropped = 0;
    while (drop < committed && dropped < bytes) dropped += opBytes((this.recent[drop++] as OpRecord).op);
    this.dropRecent(drop);
  }

  /** Drops the oldest `count` ops of `recent` (none if count ≤ 0). */
  private dropRecent(count: number): void {
    if (count <= 0) return;
    for (let i = 0; i < count; i++) this.heldBytes -= opBytes((this.recent[i] as OpRecord).op);
    this.recentStartChecksum = (this.recent[count - 1] as OpRecord).checksum;
    this.recent.splice(0, count);
  }
}
