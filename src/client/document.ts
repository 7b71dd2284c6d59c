/**
 * One open document on the client: the local text, the server text it rests on, the sync
 * state machine (`sync.ts`) and the protocol rules that make every local edit reach the
 * server exactly once across acknowledgements, reconnections and resyncs.
 *
 * Exactly once: every op goes out as (clientId, seq), one at a time; later edits wait in the
 * buffer, composed while the composition stays under the server's size limits and cut into
 * several ops where an edit is larger (`split.ts`), so no edit gets the connection closed.
 * After a reconnect the document re-opens from its version; its own
 * op in the catch-up (the entry with its `seq`) is its acknowledgement, and an op still in
 * flight after the catch-up is resent with the same seq (the server recognises a resubmission
 * and acknowledges it without applying it twice). When the server can only send a snapshot,
 * `opened.seq` says whether the op in flight is in it; the pending edits are rebased onto the
 * snapshot (see `rebaseOnSnapshot`) and sent as a new op. Local edits are never dropped
 * silently: only an op the server refuses for good (`too-large`, `read-only`, `forbidden`) is
 * undone, with a `change` and an `error` event. (An edit cut into several ops is several
 * submissions: a refusal undoes only the refused one.)
 *
 * The document talks to the network through a {@link DocumentTransport}, normally its
 * {@link Connection}; it never touches a socket.
 */
import {
  type Component,
  InvalidOperationError,
  type Operation,
  type SelectionRange,
  apply,
  fromPatch,
  isNoop,
  normalize,
} from '../ot/index.js';
import { ErrorCode, OtterError } from '../protocol/errors.js';
import type {
  AckMessage,
  ClientMessage,
  ClosedMessage,
  ErrorMessage,
  LeftMessage,
  OpEntry,
  OpenedMessage,
  OpsMessage,
  PresenceMessage,
  ServerLimits,
} from '../protocol/messages.js';
import { Emitter } from './emitter.js';
import { type SelectionInput, localToServer, mapRemoteSelection, serverToLocal, toRanges } from './selection.js';
import { DEFAULT_LIMITS, type OpBudget, budgetFor, checkLimits } from './split.js';
import {
  type RebaseResult,
  type SyncState,
  SyncStateError,
  ack,
  applyLocal,
  applyRemote,
  fitOutstanding,
  rebaseOnSnapshot,
  rejectOutstanding,
  synchronized,
  transformLocalSelection,
} from './sync.js';

/** What a document needs from its connection. */
export interface DocumentTransport {
  /**
   * Sends `message` if the connection is open and past its handshake; returns false, and
   * drops the message, otherwise. Never throws.
   */
  send(message: ClientMessage): boolean;
  /** The document was closed by its user: forget it. */
  detach(doc: CollaborativeDocument): void;
}

/** Tunables of a document; every field has a default. */
export interface DocumentOptions {
  /** Least time between two presence messages, in ms (the latest selection wins). Default 50. */
  presenceInterval?: number;
  /**
   * First delay before repeating a request refused with `storage-failed` or `rate-limited`,
   * in ms; it doubles on each further refusal, up to 32 times this. Default 250.
   */
  retryDelay?: number;
  /**
   * The server's size limits assumed until a server announces its own in `welcome`: edits
   * are cut into ops that fit them. Default {@link DEFAULT_LIMITS} (256 KiB frames, ops of
   * 256 Ki components and code units).
   */
  limits?: ServerLimits;
}

/** Server messages about one document. */
export type DocumentMessage =
  | OpenedMessage
  | OpsMessage
  | AckMessage
  | PresenceMessage
  | LeftMessage
  | ClosedMessage
  | ErrorMessage;

/** A change to the local text. */
export interface ChangeEvent {
  /** The op that turned the previous local text into the current one. */
  readonly op: Component[];
  /**
   * True for the user's own edits (insert, delete, submit), which the caller has already
   * made; false for everything else (remote ops, resyncs, an undone refused op), which an
   * editor bound to the document must apply.
   */
  readonly local: boolean;
}

/** Another connection's selection changed, or it left (`selection: null`, then it is gone). */
export interface PresenceEvent {
  /** The other connection's id. */
  readonly id: string;
  /** Its selection on the local text, or null: hidden, or left if no longer in `presences`. */
  readonly selection: SelectionRange[] | null;
  /** The authenticated user behind it, if the server names one. */
  readonly user?: string;
}

/** Another connection's presence on the document. */
export interface Presence {
  /** Its selection on the local text, or null if hidden. */
  readonly selection: SelectionRange[] | null;
  /** The authenticated user behind it, if the server names one. */
  readonly user?: string;
}

/** Events of a {@link CollaborativeDocument}. */
export interface DocumentEvents {
  /** The local text changed. */
  change: ChangeEvent;
  /** Another connection's presence changed or it left. */
  presence: PresenceEvent;
  /** The server refused a request about this document (already acted on as far as possible). */
  error: ErrorMessage;
}

/** Server ops kept to map presences a few versions old. */
const PRESENCE_HISTORY = 32;

/** Codes of a refused in-flight op that call for a resync from a snapshot. */
const RESYNC_CODES: ReadonlySet<string> = new Set<string>([
  ErrorCode.HistoryGone,
  ErrorCode.InvalidOp,
  ErrorCode.SeqGap,
  ErrorCode.SeqReused,
  ErrorCode.SeqStale,
  ErrorCode.VersionAhead,
]);

/** Codes of a refused in-flight op that the server will never accept: undo it locally. */
const REFUSED_CODES: ReadonlySet<string> = new Set<string>([
  ErrorCode.TooLarge,
  ErrorCode.ReadOnly,
  ErrorCode.Forbidden,
]);

/** Codes of a refused request worth repeating unchanged, later. */
const RETRY_CODES: ReadonlySet<string> = new Set<string>([ErrorCode.StorageFailed, ErrorCode.RateLimited]);

/** Codes of a refused `open` that a later attempt cannot fix. */
const FATAL_OPEN_CODES: ReadonlySet<string> = new Set<string>([
  ErrorCode.BadRequest,
  ErrorCode.BadMessage,
  ErrorCode.TooLarge,
  ErrorCode.Forbidden,
  ErrorCode.TooManyDocuments,
]);

function closedError(id: string): OtterError {
  return new OtterError(ErrorCode.Closed, `document ${JSON.stringify(id)} is closed`);
}

/**
 * A collaboratively edited plain-text document. Get one from `Connection.open(id)`.
 *
 * Local edits apply to {@link text} at once and reach the server in the background; remote
 * edits arrive as `change` events with `local: false`. Edits made while disconnected are
 * kept and sent after the document is re-opened.
 */
export class CollaborativeDocument extends Emitter<DocumentEvents> {
  /**
   * Resolves when the document first arrives from the server; rejects if it is closed first
   * or the server refuses to open it for good (`forbidden`, `too-many-documents`, …).
   */
  readonly ready: Promise<void>;

  private readonly presenceInterval: number;
  private readonly retryDelay: number;
  /** The largest op the server takes, from its last `welcome` ({@link DEFAULT_LIMITS} before one). */
  private budget: OpBudget;

  private localText = '';
  /** C: the server text at `serverVersion`. */
  private confirmed = '';
  private serverVersion = 0;
  private sync: SyncState = synchronized;
  /** Last seq given to an op (or, after a snapshot, the server's last applied one). */
  private seq = 0;
  /** The seq of the outstanding op, once it has been sent; undefined before that. */
  private inflightSeq: number | undefined;

  /** The server has sent the document at least once: re-opens can ask for a catch-up. */
  private hasOpened = false;
  /** The next open must ask for a snapshot. */
  private wantSnapshot = false;
  /** The transport is connected (between `connected()` and `disconnected()`). */
  private isConnected = false;
  /** Opens sent and not answered yet; nothing is submitted while any is pending. */
  private opensPending = 0;
  /** Whether the last open sent asked for a snapshot. */
  private snapshotPending = false;
  private isClosed = false;

  /** Recent server ops (on C), for presences a few versions old. */
  private history: OpEntry[] = [];

  private localSelection: SelectionRange[] | null = null;
  private readonly remote = new Map<string, Presence>();
  private presenceDirty = false;
  /** The last presence sent was approximate (pending ops): send it again once synchronized. */
  private presenceApproximate = false;
  private lastPresenceAt = Number.NEGATIVE_INFINITY;
  private presenceTimer: ReturnType<typeof setTimeout> | undefined;

  private retries = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  private settleReady: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  private syncedWaiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];

  /**
   * Made by `Connection.open`; tests may pass any {@link DocumentTransport}. The document
   * stays idle until {@link connected} is called.
   * @param id the document id
   * @param transport how to reach the server
   * @param options tunables, see {@link DocumentOptions}
   */
  constructor(
    readonly id: string,
    private readonly transport: DocumentTransport,
    options: DocumentOptions = {},
  ) {
    super();
    this.presenceInterval = options.presenceInterval ?? 50;
    this.retryDelay = options.retryDelay ?? 250;
    if (!(this.presenceInterval >= 0) || !(this.retryDelay > 0)) {
      throw new RangeError(
        `presenceInterval must be ≥ 0 and retryDelay > 0, got ${this.presenceInterval} and ${this.retryDelay}`,
      );
    }
    this.budget = budgetFor(checkLimits(options.limits ?? DEFAULT_LIMITS), id);
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = { resolve, reject };
    });
    // Nobody has to await `ready`; a rejection nobody awaits is not an error.
    this.ready.catch(() => {});
  }

  // ─── reading ──────────────────────────────────────────────────────────────────────────────

  /** The local text: the server's text with every local edit applied. */
  get text(): string {
    return this.localText;
  }

  /** The last server version known: the version of the server text the local edits rest on. */
  get version(): number {
    return this.serverVersion;
  }

  /** The sync state (for inspection): whether an op is in flight and what waits behind it. */
  get syncState(): SyncState {
    return this.sync;
  }

  /** The local selection, kept on the local text through every change; null if none. */
  get selection(): readonly SelectionRange[] | null {
    return this.localSelection;
  }

  /** Other connections' presences, by connection id, on the local text. */
  get presences(): ReadonlyMap<string, Presence> {
    return this.remote;
  }

  /** True once {@link close} was called (or its connection closed for good). */
  get closed(): boolean {
    return this.isClosed;
  }

  // ─── editing ──────────────────────────────────────────────────────────────────────────────

  /**
   * Inserts `text` at code unit `pos` of the local text.
   * Throws InvalidOperationError (nothing changes) if `pos` is outside the text or splits a
   * surrogate pair, or `text` holds a lone surrogate; OtterError `closed` after close().
   */
  insert(pos: number, text: string): void {
    this.submit(fromPatch(this.localText.length, pos, 0, text));
  }

  /**
   * Deletes `length` code units at `pos` of the local text.
   * Throws InvalidOperationError (nothing changes) if the range leaves the text or splits a
   * surrogate pair; OtterError `closed` after close().
   */
  delete(pos: number, length: number): void {
    this.submit(fromPatch(this.localText.length, pos, length, ''));
  }

  /**
   * Applies `op`, an operation on the current local text, and sends it in the background.
   * It is validated first: an invalid op throws InvalidOperationError and changes nothing.
   * An op that changes nothing is accepted and ignored. Emits `change` with `local: true`.
   * Throws OtterError `closed` after close().
   */
  submit(op: Operation): void {
    if (this.isClosed) throw closedError(this.id);
    const text = apply(this.localText, op);
    if (isNoop(op)) return;
    const canonical = normalize(op);
    const { state } = applyLocal(this.sync, canonical, this.budget);
    this.sync = state;
    this.localText = text;
    this.mapSelections(canonical, true);
    this.flush();
    this.emit('change', { op: canonical, local: true });
  }

  /**
   * Resolves when nothing local awaits the server's acknowledgement: at once if nothing
   * does. Rejects with OtterError `closed` if the document is closed first.
   */
  synced(): Promise<void> {
    if (this.isClosed) return Promise.reject(closedError(this.id));
    if (this.sync.kind === 'synchronized') return Promise.resolve();
    return new Promise((resolve, reject) => this.syncedWaiters.push({ resolve, reject }));
  }

  /**
   * Sets the local selection (ranges on the local text, one range, or null for none) and
   * shares it with the other connections, at most once per `presenceInterval` (the latest
   * wins). Throws InvalidOperationError (nothing changes) if a position is outside the text.
   */
  setSelection(selection: SelectionInput): void {
    if (this.isClosed) throw closedError(this.id);
    this.localSelection = toRanges(selection, this.localText.length);
    this.presenceDirty = true;
    this.schedulePresence();
  }

  /**
   * Closes the document: tells the server, stops all traffic, rejects a pending `ready` and
   * `synced()` with OtterError `closed`. Edits not yet acknowledged are not waited for (await
   * `synced()` first). The text stays readable; edits throw. Closing twice does nothing.
   */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.isConnected) this.transport.send({ type: 'close', doc: this.id });
    this.isConnected = false;
    this.clearTimers();
    this.transport.detach(this);
    const error = closedError(this.id);
    this.settleReady?.reject(error);
    this.settleReady = undefined;
    for (const w of this.syncedWaiters.splice(0)) w.reject(error);
  }

  // ─── called by the connection ─────────────────────────────────────────────────────────────

  /**
   * The transport is connected and past its handshake: (re-)open the document, from its
   * version if it has one, else for a snapshot. `limits` are the server's (from `welcome`);
   * without them the last ones known stay in force. Called by the connection.
   */
  connected(limits?: ServerLimits): void {
    if (this.isClosed) return;
    if (limits !== undefined) this.budget = budgetFor(limits, this.id);
    this.isConnected = true;
    this.opensPending = 0;
    this.sendOpen();
  }

  /**
   * The transport lost its connection: stop sending until {@link connected}, keep every
   * local edit, and forget other connections' presences (the server resends the current
   * ones on the next open). Called by the connection.
   */
  disconnected(): void {
    if (this.isClosed) return;
    this.isConnected = false;
    this.opensPending = 0;
    this.clearTimers();
    if (this.localSelection !== null) this.presenceDirty = true;
    for (const [id] of [...this.remote]) {
      this.remote.delete(id);
      this.emit('presence', { id, selection: null });
    }
  }

  /**
   * Sends again what still awaits the server's answer: an unanswered open (it replaces the
   * first) or else the op in flight (same seq). Called by the connection after the server
   * dropped a message without saying which (`rate-limited` without `ref`); a request that did
   * arrive is answered twice, harmlessly (a resubmission is acknowledged as a duplicate).
   */
  retryUnanswered(): void {
    if (!this.isConnected || this.isClosed) return;
    if (this.opensPending > 0) this.retryOpen();
    else this.resend();
  }

  /**
   * Handles one server message about this document. Called by the connection. If the
   * server's messages ever disagree with the local state (an op that does not fit), the
   * document resyncs from a snapshot rather than fail.
   */
  receive(message: DocumentMessage): void {
    if (this.isClosed) return;
    // Before the first `opened` there is no base to apply anything to.
    if (!this.hasOpened && message.type !== 'opened' && message.type !== 'error') return;
    try {
      switch (message.type) {
        case 'opened':
          this.onOpened(message);
          break;
        case 'ops':
          if (this.applyEntries(message.ops)) this.flush();
          break;
        case 'ack':
          this.onAck(message);
          break;
        case 'presence':
          this.onPresence(message);
          break;
        case 'left':
          if (this.remote.delete(message.id)) this.emit('presence', { id: message.id, selection: null });
          break;
        case 'closed':
          break; // the answer to a close; a re-open after it gets its own `opened`
        case 'error':
          this.onError(message);
          break;
        default:
          exhaustive(message);
      }
    } catch (e) {
      if (!(e instanceof InvalidOperationError || e instanceof SyncStateError)) throw e;
      this.resync('snapshot');
    }
  }

  // ─── server messages ──────────────────────────────────────────────────────────────────────

  private onOpened(message: OpenedMessage): void {
    this.opensPending = Math.max(0, this.opensPending - 1);
    if (message.text !== undefined) {
      this.onSnapshot(message, message.text);
    } else {
      if (!this.hasOpened) return this.resync('snapshot'); // asked for a snapshot, got ops
      if (!this.applyEntries(message.ops ?? [])) return;
      if (this.serverVersion !== message.v) return this.resync('snapshot');
      this.seq = Math.max(this.seq, message.seq);
      if (this.inflightSeq !== undefined && message.seq >= this.inflightSeq) {
        // The server has applied our op but the catch-up did not carry it: start over.
        return this.resync('snapshot');
      }
      if (this.opensPending === 0 && this.inflightSeq !== undefined) this.sendSubmit();
    }
    this.hasOpened = true;
    this.settleReady?.resolve();
    this.settleReady = undefined;
    if (this.opensPending === 0) {
      this.flush();
      if (this.localSelection !== null) this.presenceDirty = true;
      this.schedulePresence();
    }
  }

  private onSnapshot(message: OpenedMessage, snapshot: string): void {
    const landed = this.inflightSeq !== undefined && message.seq >= this.inflightSeq;
    const result: RebaseResult = rebaseOnSnapshot(this.sync, this.confirmed, landed, snapshot, this.budget);
    const text = apply(this.localText, result.apply);
    this.localText = text;
    this.confirmed = snapshot;
    this.serverVersion = message.v;
    this.sync = result.state;
    this.history = [];
    this.wantSnapshot = false;
    // The server's last applied seq is authoritative: the next op must be exactly one more.
    this.seq = message.seq;
    this.inflightSeq = undefined;
    this.mapSelections(result.apply, false);
    if (!isNoop(result.apply)) this.emit('change', { op: result.apply, local: false });
    this.settleSynced();
  }

  /**
   * Applies catch-up or live entries in order: skips those already applied, takes our
   * in-flight op's entry as its ack, applies the others as remote ops. On a gap, asks for a
   * catch-up and returns false.
   */
  private applyEntries(entries: readonly OpEntry[]): boolean {
    for (const entry of entries) {
      if (entry.v <= this.serverVersion) continue; // already applied: tolerate duplicates
      if (entry.v !== this.serverVersion + 1) {
        this.resync('catch-up');
        return false;
      }
      if (entry.seq !== undefined && entry.seq === this.inflightSeq) this.confirm(entry.v);
      else this.applyRemoteEntry(entry);
    }
    return true;
  }

  private applyRemoteEntry(entry: OpEntry): void {
    const confirmed = apply(this.confirmed, entry.op);
    const result = applyRemote(this.sync, entry.op);
    const text = apply(this.localText, result.apply);
    this.confirmed = confirmed;
    this.sync = result.state;
    this.localText = text;
    this.serverVersion = entry.v;
    this.remember({ v: entry.v, op: entry.op });
    this.mapSelections(result.apply, false);
    this.emit('change', { op: result.apply, local: false });
  }

  private onAck(message: AckMessage): void {
    if (message.seq !== this.inflightSeq) return; // a repeated ack of an op already confirmed
    if (message.v !== this.serverVersion + 1) {
      // Ops are missing before it: the catch-up carries our op as its ack.
      return this.resync('catch-up');
    }
    this.confirm(message.v);
    this.flush();
  }

  /** The outstanding op was committed as version `v`. */
  private confirm(v: number): void {
    if (this.sync.kind === 'synchronized') throw new SyncStateError('ack', this.sync.kind);
    const op = this.sync.outstanding;
    const confirmed = apply(this.confirmed, op);
    this.sync = ack(this.sync, this.budget).state;
    this.confirmed = confirmed;
    this.serverVersion = v;
    this.inflightSeq = undefined;
    this.retries = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.remember({ v, op });
    this.settleSynced();
  }

  private onPresence(message: PresenceMessage): void {
    let selection: SelectionRange[] | null = null;
    if (message.selection !== null) {
      selection = this.placeRemoteSelection(message.selection, message.v);
      if (selection === null) return; // cannot be placed: ignore it, the next one will do
    }
    const presence: Presence = message.user === undefined ? { selection } : { selection, user: message.user };
    this.remote.set(message.id, presence);
    this.emit('presence', { id: message.id, ...presence });
  }

  /**
   * Maps a remote selection made on the server text at version `v` to the local text:
   * through the server ops after `v` (kept for a few versions), then through the pending ops.
   * Null if it cannot be placed: from the future, too old, or not fitting the text.
   */
  private placeRemoteSelection(selection: SelectionRange[], v: number): SelectionRange[] | null {
    if (v > this.serverVersion) return null;
    const first = this.history[0];
    if (v < this.serverVersion && (first === undefined || first.v > v + 1)) return null;
    try {
      let ranges = selection;
      for (const entry of this.history) {
        if (entry.v > v) ranges = mapRemoteSelection(ranges, entry.op, false);
      }
      return serverToLocal(ranges, this.sync, this.confirmed);
    } catch (e) {
      if (e instanceof InvalidOperationError) return null;
      throw e;
    }
  }

  private onError(message: ErrorMessage): void {
    const ref = message.ref ?? {};
    if (ref.type === 'submit' && ref.seq !== undefined && ref.seq === this.inflightSeq) {
      if (RETRY_CODES.has(message.code)) this.scheduleRetry(() => this.resend());
      else if (REFUSED_CODES.has(message.code)) this.reject();
      else if (message.code === ErrorCode.NotOpen) this.resync('catch-up');
      else if (RESYNC_CODES.has(message.code)) this.resync('snapshot');
    } else if (ref.type === 'open') {
      // The open was answered. One retried later still counts as pending, so nothing is
      // submitted meanwhile (the server no longer has the document open for us).
      if (RETRY_CODES.has(message.code)) this.scheduleRetry(() => this.retryOpen());
      else this.opensPending = Math.max(0, this.opensPending - 1);
      if (message.code === ErrorCode.HistoryGone) this.resync('snapshot');
      else if (FATAL_OPEN_CODES.has(message.code) && !this.hasOpened) {
        this.settleReady?.reject(new OtterError(message.code, message.message));
        this.settleReady = undefined;
      }
    }
    this.emit('error', message);
  }

  // ─── sending ──────────────────────────────────────────────────────────────────────────────

  /** Sending is allowed: connected and no open awaiting its answer. */
  private get live(): boolean {
    return this.isConnected && this.opensPending === 0 && this.hasOpened;
  }

  /** Sends the outstanding op if it has not been sent yet, under the next seq, cut to the budget. */
  private flush(): void {
    if (!this.live || this.sync.kind === 'synchronized' || this.inflightSeq !== undefined) return;
    this.sync = fitOutstanding(this.sync, this.budget);
    this.seq += 1;
    this.inflightSeq = this.seq;
    this.sendSubmit();
  }

  /** Sends the op in flight again (same seq, current version), if live. */
  private resend(): void {
    if (this.live && this.inflightSeq !== undefined) this.sendSubmit();
  }

  private sendSubmit(): void {
    if (this.sync.kind === 'synchronized' || this.inflightSeq === undefined) return;
    this.transport.send({
      type: 'submit',
      doc: this.id,
      v: this.serverVersion,
      seq: this.inflightSeq,
      op: this.sync.outstanding,
    });
  }

  private sendOpen(): void {
    const snapshot = !this.hasOpened || this.wantSnapshot;
    const sent = this.transport.send(
      snapshot ? { type: 'open', doc: this.id } : { type: 'open', doc: this.id, v: this.serverVersion },
    );
    if (sent) {
      this.opensPending += 1;
      this.snapshotPending = snapshot;
    }
  }

  /**
   * Re-opens the document: `catch-up` from the current version, or from a `snapshot`. Does
   * nothing more than note the wish while disconnected or while an equivalent open is
   * pending.
   */
  private resync(kind: 'catch-up' | 'snapshot'): void {
    if (kind === 'snapshot') this.wantSnapshot = true;
    if (!this.isConnected || this.isClosed) return;
    if (this.opensPending > 0 && (this.snapshotPending || kind === 'catch-up')) return;
    this.sendOpen();
  }

  /** Sends again an open the server could not serve; it replaces the refused one. */
  private retryOpen(): void {
    if (!this.isConnected || this.isClosed) return;
    this.opensPending = Math.max(0, this.opensPending - 1);
    this.sendOpen();
  }

  /** The server refused the op in flight for good: undo it locally, send the buffer. */
  private reject(): void {
    const result = rejectOutstanding(this.sync, this.confirmed, this.budget);
    const text = apply(this.localText, result.apply);
    // The refused seq was not applied: the next op must reuse it.
    this.seq = (this.inflightSeq ?? this.seq + 1) - 1;
    this.inflightSeq = undefined;
    this.sync = result.state;
    this.localText = text;
    this.mapSelections(result.apply, false);
    this.flush();
    this.emit('change', { op: result.apply, local: false });
    this.settleSynced();
  }

  private scheduleRetry(run: () => void): void {
    clearTimeout(this.retryTimer);
    const delay = this.retryDelay * 2 ** Math.min(this.retries, 5);
    this.retries += 1;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      run();
    }, delay);
  }

  // ─── presence ─────────────────────────────────────────────────────────────────────────────

  private schedulePresence(): void {
    if (!this.presenceDirty || !this.live || this.presenceTimer !== undefined) return;
    const wait = this.lastPresenceAt + this.presenceInterval - Date.now();
    if (wait <= 0) {
      this.sendPresence();
      return;
    }
    this.presenceTimer = setTimeout(() => {
      this.presenceTimer = undefined;
      this.sendPresence();
    }, wait);
  }

  private sendPresence(): void {
    if (!this.presenceDirty || !this.live) return;
    const local = this.localSelection;
    const selection = local === null ? null : localToServer(local, this.sync, this.confirmed);
    this.transport.send({ type: 'presence', doc: this.id, v: this.serverVersion, selection });
    this.lastPresenceAt = Date.now();
    this.presenceDirty = false;
    this.presenceApproximate = local !== null && this.sync.kind !== 'synchronized';
  }

  // ─── bookkeeping ──────────────────────────────────────────────────────────────────────────

  /** Maps the local selection and remote presences through a change of the local text. */
  private mapSelections(change: Component[], local: boolean): void {
    if (this.localSelection !== null) {
      this.localSelection = transformLocalSelection(this.localSelection, change);
    }
    for (const [id, presence] of this.remote) {
      if (presence.selection === null) continue;
      this.remote.set(id, { ...presence, selection: mapRemoteSelection(presence.selection, change, local) });
    }
  }

  private remember(entry: OpEntry): void {
    this.history.push(entry);
    if (this.history.length > PRESENCE_HISTORY) this.history.shift();
  }

  /** Resolves `synced()` waiters if synchronized; re-sends an approximate presence. */
  private settleSynced(): void {
    if (this.sync.kind !== 'synchronized') return;
    for (const w of this.syncedWaiters.splice(0)) w.resolve();
    if (this.presenceApproximate) {
      this.presenceDirty = true;
      this.schedulePresence();
    }
  }

  private clearTimers(): void {
    clearTimeout(this.presenceTimer);
    this.presenceTimer = undefined;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}

function exhaustive(message: never): never {
  throw new Error(`unhandled message ${JSON.stringify(message)}`);
}
