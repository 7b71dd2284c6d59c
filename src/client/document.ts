/**
 * One open document on the client: the local text, the server text it rests on (with that
 * text's epoch, version and checksum), the sync state machine (`sync.ts`), the document's
 * lifecycle (`lifecycle.ts`) and the protocol rules that make every local edit reach the
 * server exactly once across acknowledgements, reconnections, resyncs and server data loss.
 *
 * Exactly once: every op goes out as (clientId, seq), one at a time; later edits wait in the
 * buffer, composed while the composition stays under the server's size limits and cut into
 * several ops where an edit is larger (`split.ts`). After a reconnect the document re-opens
 * from its version, naming the epoch and checksum it holds there; its own op in the catch-up
 * (the entry with its `seq`) is its acknowledgement, and an op still in flight after the
 * catch-up is resent with the same seq (the server recognises a resubmission). When the
 * server can only send a snapshot, `opened.seq` says whether the op in flight is in it; the
 * pending edits are rebased onto the snapshot (`rebaseOnSnapshot`) and sent as a new op.
 *
 * Never believing it is in sync when it is not:
 * - every open and restore carries a new request id, and answers to any other are dropped;
 * - every `ops` message, catch-up and ack carries the server's checksum at its (last) version;
 *   the document chains its own (`protocol/checksum.ts`) and, on a mismatch, emits `diverged`,
 *   tells the server, and heals from a snapshot with its pending edits rebased onto it;
 * - an error about a seq it sent that is no longer in flight, which only a wrong premise can
 *   explain (`seq-reused`, `seq-gap`, `invalid-op`, `version-ahead`), heals the same way;
 * - when the server does not have the state the document holds (another epoch, a version
 *   past its head, another checksum: it lost data), the document never adopts the server's
 *   text silently: it restores its own text into the server's document (or takes the
 *   server's, when another client restored as much already or the `onLost` option says so),
 *   then emits `reset` with both texts.
 * Local edits are never dropped silently: only an op the server refuses for good
 * (`too-large`, `read-only`, `forbidden`) is undone, with a `change` and an `error` event.
 *
 * Revocation: when the server lowers this user's access while the document is open (a
 * `revoked` message), the document emits `revoked` and never re-opens on its own. Made
 * read-only, it stays open and keeps receiving; its edits not yet sent are undone (a
 * `change`), an op in flight is acknowledged or refused by the server (then undone, with
 * `change` and `error`), and new edits throw OtterError `read-only`. Revoked entirely, it is
 * closed: its text stays readable as it is, with whatever edits were not acknowledged.
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
  composeAll,
  fromPatch,
  isNoop,
  normalize,
} from '../ot/index.js';
import { checkApplies } from '../ot/apply.js';
import { Rope, applyToRope, deletedFromRope } from '../ot/rope.js';
import { EMPTY_CHECKSUM, chainChecksum } from '../protocol/checksum.js';
import { ErrorCode, OtterError, clientPolicy } from '../protocol/errors.js';
import { DEFAULT_LIMITS, checkLimits } from '../protocol/limits.js';
import { MAX_RESTORE_SAMPLES, readProfile } from '../protocol/parse.js';
import { Throttle } from '../protocol/throttle.js';
import type {
  AckMessage,
  ClientMessage,
  ClosedMessage,
  ErrorMessage,
  HeadMessage,
  LeftMessage,
  OpEntry,
  OpenedMessage,
  OpsMessage,
  PresenceMessage,
  PresenceProfile,
  RestoredMessage,
  RevokedMessage,
  ServerLimits,
} from '../protocol/messages.js';
import { Emitter } from './emitter.js';
import * as life from './lifecycle.js';
import { type SelectionInput, localToServer, mapRemoteSelection, serverToLocal, toRanges } from './selection.js';
import { DocumentPersistence } from './persist.js';
import { type OpBudget, budgetFor, splitText } from './split.js';
import { VersionSamples } from './version-samples.js';
import { type ClientStorage, STORED_FORMAT, type StoredDocument } from './storage.js';
import {
  PendingOp,
  type RebaseResult,
  type SyncState,
  SyncStateError,
  ack,
  applyLocal,
  applyRemote,
  discardUnsent,
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
   * Who this user is, sent with every presence message and shown to the others: a
   * {@link PresenceProfile} (name, colour, application fields; capped in size — the constructor
   * throws a TypeError on one the server would refuse). On an authenticated connection the
   * server puts the authenticated name and colour in place of the ones given here.
   */
  profile?: PresenceProfile;
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
  /**
   * What to do when the server turns out to have lost the state of the document this client
   * holds (a server restarted without its data, a database restored from an older backup):
   * `'restore'` (default) puts this client's text back into the server's document as an
   * ordinary edit, unless another client already restored as much; `'accept'` takes the
   * server's text as it is. Either way the unsent local edits are kept (rebased onto the
   * result) and a `reset` event says what happened.
   */
  onLost?: 'restore' | 'accept';
}

/** Server messages about one document. */
export type DocumentMessage =
  | OpenedMessage
  | RestoredMessage
  | HeadMessage
  | OpsMessage
  | AckMessage
  | PresenceMessage
  | LeftMessage
  | ClosedMessage
  | RevokedMessage
  | ErrorMessage;

/**
 * A change to the local text. Remote ops that arrive together (a catch-up after a reconnect)
 * come as one change: their composition.
 */
export interface ChangeEvent {
  /** The op that turned the previous local text into the current one. */
  readonly op: Component[];
  /**
   * True for the user's own edits (insert, delete, submit), which the caller has already
   * made; false for everything else (remote ops, resyncs, an undone refused op), which an
   * editor bound to the document must apply.
   */
  readonly local: boolean;
  /**
   * With a local edit made while a local selection was set: that selection as it was just
   * before the edit, on the previous text (it has since been mapped through `op`).
   */
  readonly selectionBefore?: readonly SelectionRange[];
  /**
   * With a local edit that deletes: the text each delete of `op` removed, in order (so the
   * edit can be inverted without the previous text).
   */
  readonly deleted?: readonly string[];
}

/** Another connection's selection changed, or it left (`selection: null`, then it is gone). */
export interface PresenceEvent {
  /** The other connection's id. */
  readonly id: string;
  /** Its selection on the local text, or null: hidden, or left if no longer in `presences`. */
  readonly selection: SelectionRange[] | null;
  /** The authenticated user behind it, if the server names one. */
  readonly user?: string;
  /** Its profile (name, colour, application fields), if it has one. */
  readonly profile?: PresenceProfile;
}

/** Another connection's presence on the document. */
export interface Presence {
  /** Its selection on the local text, or null if hidden. */
  readonly selection: SelectionRange[] | null;
  /** The authenticated user behind it, if the server names one. */
  readonly user?: string;
  /** Its profile (name, colour, application fields), if it has one. */
  readonly profile?: PresenceProfile;
}

/**
 * The server had lost the state of the document this client held, and the document has been
 * brought back in line with the server.
 */
export interface ResetEvent {
  /**
   * `restored`: this client's text was merged into the server's document (all of it, or what
   * it held beyond what another client had restored); `adopted`: another client had restored
   * as much already, and this client took the server's text; `accepted`: the `onLost` option
   * (or a server that refused the restore) made this client take the server's text as it was.
   */
  readonly action: 'restored' | 'adopted' | 'accepted';
  /** The state the server had lost: its epoch and this client's version there. */
  readonly lost: { readonly epoch: string; readonly version: number };
  /** The local text before the reset. */
  readonly local: string;
  /** The server's text the document now rests on (the local text adds the unsent edits). */
  readonly server: string;
}

/**
 * The document's copy of the server text was found wrong: its checksum at `version` differs
 * from the server's (`reason: 'checksum'`, with both), or the server refused with `code` a
 * request this client sent on a premise the server contradicts (`reason: 'refusal'`).
 */
export type DivergedEvent =
  | { readonly reason: 'checksum'; readonly version: number; readonly expected: number; readonly actual: number }
  | { readonly reason: 'refusal'; readonly version: number; readonly code: ErrorCode };

/**
 * Unsent local edits were rebased onto a server text whose history since the client's
 * version was not available (history removed, a heal, a reset): over a character diff of the
 * two texts, which keeps every edit but may place one differently than the history would have.
 */
export interface MergedEvent {
  /** The server version the edits now rest on. */
  readonly version: number;
  /** How many pending ops were rebased. */
  readonly edits: number;
}

/**
 * The server lowered this user's access to the document while it was open (see the protocol's
 * `revoked` message). Raised access is never announced: it takes a new `Connection.open` (after
 * `close`) to use it.
 */
export interface RevokedEvent {
  /**
   * `read`: the document stays open and keeps receiving, but local edits throw OtterError
   * `read-only`; `none`: the document is closed (as by `close`, with OtterError `forbidden`).
   */
  readonly access: 'none' | 'read';
  /**
   * The local text when the revocation arrived, with every local edit the server had not
   * acknowledged (compare it with `text` to see what did not reach the server).
   */
  readonly text: string;
  /**
   * Whether some local edits were not acknowledged then. With `read`, those never sent have
   * been undone (a `change` came first), and an op in flight is acknowledged or undone when
   * the server answers it; with `none`, nothing is undone and nothing more is sent.
   */
  readonly unconfirmed: boolean;
}

/**
 * Whether the document holds local edits the server has not acknowledged (see
 * {@link CollaborativeDocument.unsaved}).
 */
export interface UnsavedEvent {
  /** True once a local edit awaits the server; false once every one is acknowledged (or undone). */
  readonly unsaved: boolean;
}

/** Events of a {@link CollaborativeDocument}. */
export interface DocumentEvents {
  /** The local text changed. */
  change: ChangeEvent;
  /** Another connection's presence changed or it left. */
  presence: PresenceEvent;
  /** The server refused a request about this document (already acted on as far as possible). */
  error: ErrorMessage;
  /** The server had lost this client's state; it was restored or given up (see {@link ResetEvent}). */
  reset: ResetEvent;
  /** The local copy diverged from the server's; the document heals from a snapshot. */
  diverged: DivergedEvent;
  /** Unsent edits were rebased over a text diff instead of the server's history. */
  merged: MergedEvent;
  /** The server lowered this user's access to the document (see {@link RevokedEvent}). */
  revoked: RevokedEvent;
  /** {@link CollaborativeDocument.unsaved} changed: emitted once per change, never twice with one value. */
  unsaved: UnsavedEvent;
}

/** Server ops kept to map presences a few versions old. */
const PRESENCE_HISTORY = 32;
/** Bytes of a `restore` frame besides its text: keys, rid, lost state, 64 samples. */
const RESTORE_ENVELOPE_BYTES = 4096;

function closedError(id: string): OtterError {
  return new OtterError(ErrorCode.Closed, `document ${JSON.stringify(id)} is closed`);
}

function revokedError(id: string): OtterError {
  return new OtterError(ErrorCode.Forbidden, `access to document ${JSON.stringify(id)} was revoked`);
}

function readOnlyError(id: string): OtterError {
  return new OtterError(ErrorCode.ReadOnly, `document ${JSON.stringify(id)} is read-only: access was revoked to reading`);
}

/** Request ids, unique among all the documents of this runtime. */
let lastRequestId = 0;

/** A lost state being settled: what the document held, and what became of it. */
interface LostState {
  readonly epoch: string;
  readonly version: number;
  readonly checksum: number;
  /** The server text this client held at `version` (its confirmed text then). */
  readonly text: string;
  /**
   * The head the server had when it first said it lost this state: the newest version where
   * the lost line may part from what it holds (the samples sent are chosen around it).
   */
  readonly serverHead: number;
  /** The server's checksums spread below the claim, as its latest `lost` answer sent them (see `version-samples.ts`). */
  serverSums: ReadonlyArray<readonly [number, number]>;
  /** What this client did about it, once decided. */
  action: ResetEvent['action'] | undefined;
  /** The server took the op in flight with the restore: it is in the server's text now. */
  inflightTaken: boolean;
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

  /**
   * Resolves once the local text holds what the client storage kept of the document (its
   * confirmed text and pending edits), or at once when the connection has no storage or kept
   * nothing of it. With storage, edits throw OtterError `not-open` until then, and the
   * document is not opened with the server before it: offline, the stored text is readable
   * after `loaded` while `ready` waits for the server. Rejects if the document is closed first.
   */
  readonly loaded: Promise<void>;

  /** Paces `presence` messages: at most one per `presenceInterval`, the latest selection wins. */
  private readonly presence: Throttle;
  private readonly retryDelay: number;
  private readonly lostPolicy: 'restore' | 'accept';
  /** The largest op the server takes, from its last `welcome` ({@link DEFAULT_LIMITS} before one). */
  private budget: OpBudget;

  /**
   * The local text, in a rope: a keystroke, its acknowledgement and a remote op each cost
   * O(log n) here, never a copy of the document (a V8 string edited by slicing is a cons
   * string that the next read of a code unit flattens, copying it whole).
   */
  private localText = new Rope();
  /** `localText` as a string, once read through {@link text}; cleared by every change. */
  private localString: string | undefined = '';
  /** C: the server text at `serverVersion` of incarnation `serverEpoch`, in a rope. */
  private confirmed = new Rope();
  private serverVersion = 0;
  /** The document's incarnation id, from the last `opened`; undefined before the first. */
  private serverEpoch: string | undefined;
  /** The document checksum of C. */
  private checksum = EMPTY_CHECKSUM;
  /** Earlier versions of this epoch and their checksums (see `version-samples.ts`). */
  private readonly samples = new VersionSamples();
  private sync: SyncState = synchronized;
  private life: life.Lifecycle = life.initial;
  /** Set while a state the server lost is being settled (restore, then a reset open). */
  private lost: LostState | undefined;
  /** The document has been opened at least once (`ready` resolved). */
  private hasOpened = false;
  /** Pieces of the catch-up answering open attempt `rid`, received before its `opened`. */
  private pieces: { readonly rid: number; readonly entries: OpEntry[] } | undefined;
  /** The access the server lowered this document to, if it did (see {@link RevokedEvent}). */
  private revokedTo: 'none' | 'read' | undefined;

  /** Recent server ops (on C), for presences a few versions old. */
  private history: Array<{ readonly v: number; readonly op: Component[] }> = [];

  private localSelection: SelectionRange[] | null = null;
  private readonly remote = new Map<string, Presence>();
  /** This user's profile, sent with every presence message. */
  private readonly profile: PresenceProfile | undefined;
  private presenceDirty = false;
  /** The last presence sent was approximate (pending ops): send it again once synchronized. */
  private presenceApproximate = false;

  private retries = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  /** The value of {@link unsaved} the last `unsaved` event announced (false before any). */
  private announcedUnsaved = false;

  /** The writes to the client storage, once its record is loaded; undefined without storage. */
  private persistence: DocumentPersistence | undefined;
  /** Waiting for its stored record (see {@link loaded}): edits throw, the document stays offline. */
  private loading = false;
  /** How many ops went out under a new seq: an op waits until a record counting it is saved. */
  private sends = 0;
  /** The op in flight waits for a save before it is sent (see {@link sendSubmit}). */
  private sendHeld = false;
  private settleLoaded: { resolve: () => void; reject: (e: unknown) => void } | undefined;

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
    const presenceInterval = options.presenceInterval ?? 50;
    this.retryDelay = options.retryDelay ?? 250;
    this.lostPolicy = options.onLost ?? 'restore';
    if (!(presenceInterval >= 0) || !(this.retryDelay > 0)) {
      throw new RangeError(`presenceInterval must be ≥ 0 and retryDelay > 0, got ${presenceInterval} and ${this.retryDelay}`);
    }
    this.presence = new Throttle(presenceInterval, () => this.sendPresence());
    if (options.profile !== undefined) {
      const profile = readProfile(options.profile);
      if (typeof profile === 'string') throw new TypeError(`Otter: profile must be ${profile}`);
      this.profile = profile;
    }
    if (this.lostPolicy !== 'restore' && this.lostPolicy !== 'accept') {
      throw new RangeError(`onLost must be 'restore' or 'accept', got ${String(this.lostPolicy)}`);
    }
    this.budget = budgetFor(checkLimits(options.limits ?? DEFAULT_LIMITS), id);
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = { resolve, reject };
    });
    // Nobody has to await `ready`; a rejection nobody awaits is not an error.
    this.ready.catch(() => {});
    this.loaded = new Promise<void>((resolve, reject) => {
      this.settleLoaded = { resolve, reject };
    });
    this.loaded.catch(() => {});
  }

  // ─── reading ──────────────────────────────────────────────────────────────────────────────

  /**
   * The local text: the server's text with every local edit applied. Joined from the
   * document's rope on the first read after a change (linear in the text), then cached until
   * the next change; the document itself never reads it.
   */
  get text(): string {
    this.localString ??= this.localText.toString();
    return this.localString;
  }

  /** The last server version known: the version of the server text the local edits rest on. */
  get version(): number {
    return this.serverVersion;
  }

  /** The incarnation id of the document the local edits rest on; undefined before it opened. */
  get epoch(): string | undefined {
    return this.serverEpoch;
  }

  /**
   * The sync state (for inspection): whether an op is in flight and what waits behind it.
   * @internal for tests and benchmarks; applications await {@link synced}.
   */
  get syncState(): SyncState {
    return this.sync;
  }

  /**
   * Where the document is in its life (for inspection): `offline`, `opening`, `restoring`,
   * `live` or `closed`, with its seq counters (see `lifecycle.ts`).
   * @internal for tests and benchmarks; applications read {@link closed} and await {@link ready}.
   */
  get lifecycle(): life.Lifecycle {
    return this.life;
  }

  /** The local selection, kept on the local text through every change; null if none. */
  get selection(): readonly SelectionRange[] | null {
    return this.localSelection;
  }

  /** Other connections' presences, by connection id, on the local text. */
  get presences(): ReadonlyMap<string, Presence> {
    return this.remote;
  }

  /** True once {@link close} was called (or its connection closed for good, or access was revoked). */
  get closed(): boolean {
    return this.life.phase === 'closed';
  }

  /**
   * The access the server lowered this document to while it was open: `read` (read-only,
   * still open) or `none` (closed); undefined if it never did. See {@link RevokedEvent}.
   */
  get revoked(): 'none' | 'read' | undefined {
    return this.revokedTo;
  }

  /**
   * True while some local edit has not been acknowledged by the server: one in flight, edits
   * waiting behind it, edits made offline or before the document opened. False once each has
   * been acknowledged, or undone (refused for good, or unsent when access was lowered to
   * `read`). Rebasing onto a snapshot keeps it true. After {@link close} it keeps its last
   * value: edits not acknowledged then never will be. `unsaved` events announce changes; an
   * application may warn before leaving while it is true.
   */
  get unsaved(): boolean {
    return this.sync.kind !== 'synchronized';
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
   * Throws OtterError `closed` after close(), `forbidden` after access was revoked, and
   * `read-only` (nothing changes) once the server made the document read-only.
   */
  submit(op: Operation): void {
    if (this.closed) throw this.closedReason();
    if (this.revokedTo === 'read') throw readOnlyError(this.id);
    if (this.loading) {
      throw new OtterError(ErrorCode.NotOpen, `document ${JSON.stringify(this.id)} is loading from the client storage: edit it once \`loaded\` resolves`);
    }
    checkApplies(this.localText, op);
    if (isNoop(op)) return;
    const canonical = normalize(op);
    const { state } = applyLocal(this.sync, canonical, this.budget);
    const selectionBefore = this.localSelection;
    const deleted = deletedFromRope(this.localText, canonical);
    this.sync = state;
    this.changeLocal(canonical);
    this.mapSelections(canonical, true);
    this.flush();
    this.emit('change', {
      op: canonical,
      local: true,
      ...(selectionBefore === null ? {} : { selectionBefore }),
      ...(deleted.length === 0 ? {} : { deleted }),
    });
    this.announceUnsaved();
    this.persistence?.schedule();
  }

  /**
   * Resolves once the client storage holds the document as it is now (at once without
   * storage, or once storage was given up after a failed save); rejects with the error of a
   * save that failed meanwhile. After {@link close}: once the last state is written.
   */
  flushStorage(): Promise<void> {
    return this.persistence?.idle() ?? Promise.resolve();
  }

  /**
   * Resolves when nothing local awaits the server's acknowledgement: at once if nothing
   * does. Rejects with OtterError `closed` if the document is closed first.
   */
  synced(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedReason());
    if (this.sync.kind === 'synchronized') return Promise.resolve();
    return new Promise((resolve, reject) => this.syncedWaiters.push({ resolve, reject }));
  }

  /**
   * Sets the local selection (ranges on the local text, one range, or null for none) and
   * shares it with the other connections, at most once per `presenceInterval` (the latest
   * wins). Throws InvalidOperationError (nothing changes) if a position is outside the text.
   */
  setSelection(selection: SelectionInput): void {
    if (this.closed) throw this.closedReason();
    this.localSelection = toRanges(selection, this.localText.length);
    this.presenceDirty = true;
    this.schedulePresence();
  }

  /**
   * Closes the document: tells the server, stops all traffic, rejects a pending `ready` and
   * `synced()` with OtterError `closed`. Edits not yet acknowledged are not waited for (await
   * `synced()` first); with a client storage they stay in its record and go out when the
   * document is next opened under the same client id. The text stays readable; edits throw.
   * Closing twice does nothing.
   */
  close(): void {
    if (this.closed) return;
    if (this.life.phase !== 'offline') this.transport.send({ type: 'close', doc: this.id });
    this.shut(closedError(this.id));
  }

  /** Closed for good: no more traffic, forgotten by the connection, waiters rejected with `error`. */
  private shut(error: OtterError): void {
    void this.persistence?.close(this.capture()).catch(() => {}); // failures were reported as `error`
    this.life = life.closed;
    this.settleLoaded?.reject(error);
    this.settleLoaded = undefined;
    this.clearTimers();
    this.transport.detach(this);
    this.settleReady?.reject(error);
    this.settleReady = undefined;
    for (const w of this.syncedWaiters.splice(0)) w.reject(error);
  }

  /** What an edit, a selection or `synced()` fails with once closed. */
  private closedReason(): OtterError {
    return this.revokedTo === 'none' ? revokedError(this.id) : closedError(this.id);
  }

  // ─── client storage ───────────────────────────────────────────────────────────────────────

  /**
   * The connection has a client storage and reads this document's record: until
   * {@link finishLoading}, edits throw and the connection does not open the document.
   * Called by the connection right after making the document.
   * @internal
   */
  startLoading(): void {
    this.loading = true;
  }

  /**
   * The record is read: take `record` (the stored confirmed text, version, epoch, checksum,
   * seq counters and pending ops; the local text becomes the confirmed text with the pending
   * ops applied, announced by a `change`), keep every later state in `storage` under
   * `clientId`, and resolve {@link loaded}. The next open claims the stored state as after a
   * reconnect (or asks for a snapshot if the record has no epoch). Without `storage` (it
   * could not be used), the document goes on without it. Throws (InvalidOperationError or
   * TypeError), changing nothing, if the record's ops do not fit its text. Called by the connection
   * before the document first connects.
   * @internal
   */
  finishLoading(storage?: { readonly storage: ClientStorage; readonly clientId: string; readonly record?: StoredDocument }): void {
    if (this.closed) return;
    if (storage?.record !== undefined) this.restore(storage.record);
    this.loading = false;
    if (storage !== undefined) {
      this.persistence = new DocumentPersistence(storage.storage, storage.clientId, this.id, {
        capture: () => this.capture(),
        durable: () => this.onSaved(),
        failed: (e) => this.onSaveFailed(e),
      }, this.retryDelay);
    }
    this.settleLoaded?.resolve();
    this.settleLoaded = undefined;
  }

  /** Takes the stored state `record` (see {@link finishLoading}); validated before anything changes. */
  private restore(record: StoredDocument): void {
    const local = new Rope(record.text);
    const pending: PendingOp[] = [];
    for (const stored of record.ops) {
      const op = stored.slice();
      checkApplies(local, op);
      if (isNoop(op)) throw new TypeError('Otter: a stored pending op changes nothing');
      applyToRope(local, op);
      pending.push(new PendingOp(op));
    }
    const [outstanding, ...buffer] = pending;
    if (record.inflight !== undefined && outstanding === undefined) {
      throw new TypeError('Otter: the stored record has an op in flight but no pending op');
    }
    this.confirmed = new Rope(record.text);
    this.serverVersion = record.version;
    this.serverEpoch = record.epoch;
    this.checksum = record.checksum;
    this.samples.load(record.samples);
    this.sync =
      outstanding === undefined
        ? synchronized
        : buffer.length === 0
          ? { kind: 'awaiting-confirm', outstanding }
          : { kind: 'awaiting-with-buffer', outstanding, buffer };
    this.life = { phase: 'offline', next: record.epoch === undefined ? 'snapshot' : 'catch-up', seq: record.seq, inflight: record.inflight };
    // Nothing was editable before: the local text was empty.
    const change: Component[] = local.length > 0 ? [local.toString()] : [];
    this.changeLocal(change);
    this.mapSelections(change, false);
    if (change.length > 0) this.emit('change', { op: change, local: false });
    this.announceUnsaved();
  }

  /** The state to store: the confirmed text and its version, the counters, the pending ops. */
  private capture(): { readonly record: StoredDocument; readonly sends: number } {
    const sync = this.sync;
    const pending = sync.kind === 'synchronized' ? [] : [sync.outstanding, ...(sync.kind === 'awaiting-with-buffer' ? sync.buffer : [])];
    const counters = this.life.phase === 'closed' ? { seq: 0, inflight: undefined } : this.life;
    const record: StoredDocument = {
      format: STORED_FORMAT,
      ...(this.serverEpoch === undefined ? {} : { epoch: this.serverEpoch }),
      version: this.serverVersion,
      checksum: this.checksum,
      text: this.confirmed.toString(),
      samples: this.samples.stored(MAX_RESTORE_SAMPLES),
      seq: counters.seq,
      ...(counters.inflight === undefined ? {} : { inflight: counters.inflight }),
      ops: pending.map((p) => p.op.slice()),
    };
    return { record, sends: this.sends };
  }

  /** A save completed: an op in flight that waited for it goes out now. */
  private onSaved(): void {
    if (!this.sendHeld) return;
    this.sendHeld = false;
    this.sendSubmit();
  }

  /** A save failed: say so (editing goes on; see `persist.ts` for what follows). */
  private onSaveFailed(error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    this.emit('error', {
      type: 'error',
      code: ErrorCode.StorageFailed,
      message: `Otter: saving document ${JSON.stringify(this.id)} to the client storage failed: ${reason}`,
      ref: { type: 'client-storage', doc: this.id },
    });
  }

  // ─── called by the connection ─────────────────────────────────────────────────────────────

  /**
   * The transport is connected and past its handshake: (re-)open the document, from its
   * version if it has one, else for a snapshot. `limits` are the server's (from `welcome`);
   * without them the last ones known stay in force. Called by the connection.
   * @internal
   */
  connected(limits?: ServerLimits): void {
    if (this.closed) return;
    if (limits !== undefined) this.budget = budgetFor(limits, this.id);
    // A connection that was replaced without a disconnect first: start over all the same.
    this.life = life.disconnect(this.life);
    this.transition(life.connect(this.life, ++lastRequestId));
  }

  /**
   * The transport lost its connection: stop sending until {@link connected}, keep every
   * local edit, and forget other connections' presences (the server resends the current
   * ones on the next open). Called by the connection.
   * @internal
   */
  disconnected(): void {
    if (this.closed) return;
    this.life = life.disconnect(this.life);
    this.clearTimers();
    if (this.localSelection !== null) this.presenceDirty = true;
    for (const [id] of [...this.remote]) {
      this.remote.delete(id);
      this.emit('presence', { id, selection: null });
    }
  }

  /**
   * Sends again what still awaits the server's answer: an unanswered open or restore, under
   * a new request id (an answer to the earlier attempt is then ignored), or else the op in
   * flight (same seq). Called by the connection after the server dropped a message without
   * saying which (`rate-limited` without `ref`); a resubmission that did arrive twice is
   * acknowledged as a duplicate.
   * @internal
   */
  retryUnanswered(): void {
    switch (this.life.phase) {
      case 'opening':
        this.transition(life.retryOpen(this.life, ++lastRequestId));
        return;
      case 'restoring':
        this.life = life.retryRestore(this.life, ++lastRequestId);
        this.sendRestore();
        return;
      case 'live':
        this.resend();
        return;
      default:
        return;
    }
  }

  /**
   * Handles one server message about this document. Called by the connection. If the
   * server's messages ever disagree with the local state (an op that does not fit), the
   * document resyncs from a snapshot rather than fail.
   * @internal
   */
  receive(message: DocumentMessage): void {
    if (this.closed) return;
    try {
      switch (message.type) {
        case 'opened':
          if (life.isCurrent(this.life, message.rid) && this.life.phase === 'opening') this.onOpened(message);
          break;
        case 'restored':
          if (life.isCurrent(this.life, message.rid) && this.life.phase === 'restoring') this.onRestored(message);
          break;
        case 'ops':
          if (message.rid !== undefined) this.onPiece(message.rid, message.ops);
          // Before its answer, an open's catch-up or snapshot covers every op sent meanwhile.
          else if (this.life.phase === 'live' && this.applyEntries(message.ops, message.sum)) this.flush();
          break;
        case 'ack':
          if (this.life.phase === 'live') this.onAck(message);
          break;
        case 'head':
          if (this.life.phase === 'live') this.onHead(message);
          break;
        case 'presence':
          if (this.life.phase === 'live') this.onPresence(message);
          break;
        case 'left':
          if (this.remote.delete(message.id)) this.emit('presence', { id: message.id, selection: null });
          break;
        case 'closed':
          break; // the answer to a close; a re-open after it gets its own `opened`
        case 'revoked':
          this.onRevoked(message.access);
          break;
        case 'error':
          this.onError(message);
          break;
        default:
          exhaustive(message);
      }
    } catch (e) {
      if (!(e instanceof InvalidOperationError || e instanceof SyncStateError)) throw e;
      // The answer to the pending open did not fit: ask again, for a snapshot at least (no
      // other answer to that open will come).
      const answered = message.type === 'opened' && this.life.phase === 'opening' && life.isCurrent(this.life, message.rid);
      if (answered && this.life.phase === 'opening' && this.life.kind !== 'catch-up') {
        this.transition(life.retryOpen(this.life, ++lastRequestId));
      } else this.resync('snapshot');
    }
    this.persistence?.schedule();
  }

  // ─── opening ──────────────────────────────────────────────────────────────────────────────

  /** Applies a lifecycle transition and sends the open it asks for. */
  private transition(t: life.Transition): void {
    this.life = t.state;
    if (t.open !== undefined) this.sendOpen(t.open);
  }

  private sendOpen({ kind, rid }: life.OpenRequest): void {
    const epoch = this.serverEpoch;
    // An epoch comes from an earlier open or from the client storage.
    const claim = kind === 'catch-up' && epoch !== undefined;
    this.transport.send(
      claim
        ? { type: 'open', doc: this.id, rid, v: this.serverVersion, epoch, sum: this.checksum, pieces: true }
        : { type: 'open', doc: this.id, rid },
    );
  }

  /**
   * Re-opens the document with at least `kind`: a catch-up from the current version, or a
   * snapshot. While disconnected only the wish is noted.
   */
  private resync(kind: 'catch-up' | 'snapshot'): void {
    this.transition(life.resync(this.life, kind, ++lastRequestId));
  }

  /** Keeps a piece of the catch-up answering the current open attempt `rid` (others are stale). */
  private onPiece(rid: number, entries: readonly OpEntry[]): void {
    if (!life.isCurrent(this.life, rid) || this.life.phase !== 'opening') return;
    if (this.pieces?.rid !== rid) this.pieces = { rid, entries: [] };
    for (const e of entries) this.pieces.entries.push(e);
  }

  private onOpened(message: OpenedMessage): void {
    const opening = this.life as life.Opening;
    const pieces = this.pieces?.rid === message.rid ? this.pieces?.entries : undefined;
    this.pieces = undefined;
    if (message.lost === true) return this.onLostState(message);
    if (message.text !== undefined) {
      // A lost state this client was restoring ends with any snapshot it takes (also one that
      // answers a plain open sent after a reconnect cut the restore short).
      if (opening.kind === 'reset' || this.lost !== undefined) this.finishReset(message, message.text);
      // A snapshot of another epoch than the one this client holds (asked for without a claim,
      // after a refusal or a heal): the server lost that state too, and it is restored, never
      // silently replaced.
      else if (this.serverEpoch !== undefined && message.epoch !== this.serverEpoch) return this.onLostState(message);
      else this.onSnapshot(message, message.text);
    } else {
      // A catch-up answers only an open that named this epoch and version.
      if (opening.kind !== 'catch-up' || message.epoch !== this.serverEpoch) return this.resync('snapshot');
      const entries = pieces === undefined ? (message.ops ?? []) : pieces.concat(message.ops ?? []);
      if (!this.applyEntries(entries, message.sum)) return;
      if (this.serverVersion !== message.v) return this.resync('snapshot');
      this.life = life.opened(this.life, message.seq, false);
      // The server holds the state this client held: nothing of it was lost after all.
      this.lost = undefined;
      const inflight = this.life.inflight;
      if (inflight !== undefined && message.seq >= inflight) {
        // The server applied our op but the catch-up did not carry it: start over.
        return this.resync('snapshot');
      }
      if (inflight !== undefined) this.sendSubmit();
    }
    this.becameLive();
  }

  /** Now live: resolve `ready`, send what waits, share the selection again. */
  private becameLive(): void {
    this.hasOpened = true;
    this.settleReady?.resolve();
    this.settleReady = undefined;
    this.flush();
    if (this.localSelection !== null) this.presenceDirty = true;
    this.schedulePresence();
  }

  private onSnapshot(message: OpenedMessage, snapshot: string): void {
    const inflight = this.life.phase === 'closed' ? undefined : this.life.inflight;
    const landed = inflight !== undefined && message.seq >= inflight;
    this.rebaseOnto(message, snapshot, landed);
  }

  /**
   * Takes the snapshot of `message` as the server text, with the pending edits (on the
   * confirmed text, whose in-flight op is in the snapshot if `landed`) rebased onto it.
   */
  private rebaseOnto(message: OpenedMessage, snapshot: string, landed: boolean): void {
    const sync = this.sync;
    const base = this.confirmed.toString();
    const unsent = sync.kind === 'synchronized' ? 0 : (landed ? 0 : 1) + (sync.kind === 'awaiting-with-buffer' ? sync.buffer.length : 0);
    const merged = unsent > 0 && (landed && sync.kind !== 'synchronized' ? apply(base, sync.outstanding.op) : base) !== snapshot;
    const result: RebaseResult = rebaseOnSnapshot(sync, base, landed, snapshot, this.budget);
    this.changeLocal(result.apply);
    this.confirmed = new Rope(snapshot);
    this.serverVersion = message.v;
    this.serverEpoch = message.epoch;
    this.checksum = message.sum;
    this.samples.reset(message.v, message.sum);
    this.sync = result.state;
    this.history = [];
    // The server's last applied seq is authoritative: the next op must be exactly one more.
    this.life = life.opened(this.life, message.seq, true);
    this.mapSelections(result.apply, false);
    if (!isNoop(result.apply)) this.emit('change', { op: result.apply, local: false });
    if (merged) this.emit('merged', { version: message.v, edits: unsent });
    this.settleSynced();
  }

  // ─── a state the server lost ──────────────────────────────────────────────────────────────

  /**
   * The server does not have the state this document holds. Unless told to accept the
   * server's text, or another client restored as much of the lost epoch already, restore it.
   */
  private onLostState(message: OpenedMessage): void {
    const epoch = this.serverEpoch as string;
    this.lost ??= {
      epoch,
      version: this.serverVersion,
      checksum: this.checksum,
      text: this.confirmed.toString(),
      serverHead: message.v,
      serverSums: [],
      action: undefined,
      inflightTaken: false,
    };
    // The latest answer's: the store may have moved since the first (and an older server sends none).
    if (message.sums !== undefined) this.lost.serverSums = message.sums;
    const recovered = message.recovered;
    const covered =
      recovered !== undefined &&
      (recovered.v > this.serverVersion || (recovered.v === this.serverVersion && recovered.sum === this.checksum));
    // An op in flight may have landed in the lost state: it goes with the restore, where the
    // server keeps it once, even when another client restored the lost state already.
    const inflight = this.life.phase === 'opening' && this.life.inflight !== undefined;
    if (this.lostPolicy === 'accept' || (covered && !inflight) || (this.serverVersion === 0 && !inflight)) {
      this.lost.action = this.lostPolicy === 'accept' ? 'accepted' : 'adopted';
      this.transition(life.reset(this.life, ++lastRequestId));
      return;
    }
    this.life = life.restoring(this.life, ++lastRequestId);
    this.sendRestore();
  }

  /**
   * Sends the lost text in pieces that fit the server's frames, and the op in flight (on that
   * text) in a last piece of its own, under the current rid.
   */
  private sendRestore(): void {
    const lost = this.lost;
    if (this.life.phase !== 'restoring' || lost === undefined) return;
    const rid = this.life.rid;
    const pieces = splitText(lost.text, Math.max(1, this.budget.maxBytes - RESTORE_ENVELOPE_BYTES));
    const op = this.life.inflight !== undefined && this.sync.kind !== 'synchronized' ? this.sync.outstanding.op : undefined;
    const parts = pieces.length + (op === undefined ? 0 : 1);
    const samples = this.samples.pick(MAX_RESTORE_SAMPLES, lost.serverHead, lost.serverSums);
    const state = { epoch: lost.epoch, v: lost.version, sum: lost.checksum };
    pieces.forEach((text, part) => {
      this.transport.send({ type: 'restore', doc: this.id, rid, lost: state, samples, part, parts, text });
    });
    if (op !== undefined) {
      this.transport.send({ type: 'restore', doc: this.id, rid, lost: state, samples, part: parts - 1, parts, text: '', op });
    }
  }

  private onRestored(message: RestoredMessage): void {
    const lost = this.lost;
    if (lost !== undefined) {
      lost.action = message.applied ? 'restored' : 'adopted';
      lost.inflightTaken = this.life.phase === 'restoring' && this.life.inflight !== undefined;
    }
    this.transition(life.reset(this.life, ++lastRequestId));
  }

  /**
   * The snapshot after a lost state was settled: rebase the pending edits (made on the lost
   * text) onto it, and say what happened.
   */
  private finishReset(message: OpenedMessage, snapshot: string): void {
    const lost = this.lost;
    const before = this.text;
    const inflight = this.life.phase === 'closed' ? undefined : this.life.inflight;
    // The op in flight is in the server's text if the restore took it, or, in the epoch that
    // kept this client's marks, if the server counts its seq.
    const landed =
      inflight !== undefined && (lost?.inflightTaken === true || (message.epoch === lost?.epoch && message.seq >= inflight));
    // The pending edits rest on the lost text, which is still the confirmed text: no remote op
    // is applied from the loss to here.
    this.rebaseOnto(message, snapshot, landed);
    this.lost = undefined;
    // Version 0 holds nothing: a document that had only opened an empty incarnation lost nothing.
    if (lost !== undefined && (lost.version > 0 || lost.inflightTaken)) {
      this.emit('reset', {
        action: lost.action ?? 'accepted',
        lost: { epoch: lost.epoch, version: lost.version },
        local: before,
        server: snapshot,
      });
    }
  }

  // ─── live messages ────────────────────────────────────────────────────────────────────────

  /**
   * Applies catch-up or live entries in order: skips those already applied, takes our
   * in-flight op's entry as its ack, applies the others as remote ops (each run of them at
   * once, see {@link applyRemoteEntries}); then checks the checksum the server gives for the
   * last entry's version. On a gap, asks for a catch-up; on a checksum mismatch, heals.
   * Returns false in both cases.
   */
  private applyEntries(entries: readonly OpEntry[], sum: number): boolean {
    let run: OpEntry[] = [];
    for (const entry of entries) {
      if (entry.v <= this.serverVersion + run.length) continue; // already applied: tolerate duplicates
      if (entry.v !== this.serverVersion + run.length + 1) {
        this.applyRemoteEntries(run);
        this.resync('catch-up');
        return false;
      }
      const inflight = this.life.phase === 'closed' ? undefined : this.life.inflight;
      if (entry.seq !== undefined && entry.seq === inflight) {
        this.applyRemoteEntries(run);
        run = [];
        this.confirm(entry.v, undefined);
      } else run.push(entry);
    }
    this.applyRemoteEntries(run);
    const last = entries[entries.length - 1];
    if (last !== undefined && last.v === this.serverVersion && sum !== this.checksum) {
      this.heal({ reason: 'checksum', version: last.v, expected: sum, actual: this.checksum });
      return false;
    }
    return true;
  }

  /**
   * Applies consecutive remote ops. A run of several (a catch-up) changes each text once, by
   * the ops' composition, and emits one `change` with it: applying ops one by one to a long
   * text copies the whole text per op. The server text is changed first, so an op that does
   * not fit it throws (InvalidOperationError) with nothing changed.
   */
  private applyRemoteEntries(entries: readonly OpEntry[]): void {
    if (entries.length === 0) return;
    const ops = entries.map((e) => e.op);
    applyToRope(this.confirmed, ops.length === 1 ? (ops[0] as Component[]) : composeAll(ops));
    const applied: Component[][] = [];
    let checksum = this.checksum;
    for (const entry of entries) {
      checksum = chainChecksum(checksum, entry.op);
      const result = applyRemote(this.sync, entry.op);
      this.sync = result.state;
      applied.push(result.apply);
      this.advance(entry.v, checksum, entry.op);
      this.mapSelections(result.apply, false);
    }
    const change = applied.length === 1 ? (applied[0] as Component[]) : composeAll(applied);
    this.changeLocal(change);
    this.emit('change', { op: change, local: false });
  }

  private onAck(message: AckMessage): void {
    if (this.life.phase !== 'live' || message.seq !== this.life.inflight) return; // a repeated ack
    if (message.v !== this.serverVersion + 1) {
      // Ops are missing before it: the catch-up carries our op as its ack.
      return this.resync('catch-up');
    }
    if (this.confirm(message.v, message.sum)) this.flush();
  }

  /**
   * The outstanding op was committed as version `v`, where the server's checksum is `sum`
   * (if it says). False (and a heal) if the checksums disagree: the server applied other
   * content under our seq.
   */
  private confirm(v: number, sum: number | undefined): boolean {
    if (this.sync.kind === 'synchronized') throw new SyncStateError('ack', this.sync.kind);
    const op = this.sync.outstanding.op;
    const checksum = chainChecksum(this.checksum, op);
    if (sum !== undefined && checksum !== sum) {
      this.heal({ reason: 'checksum', version: v, expected: sum, actual: checksum });
      return false;
    }
    applyToRope(this.confirmed, op);
    this.sync = ack(this.sync, this.budget).state;
    this.life = life.acknowledged(this.life);
    this.retries = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.advance(v, checksum, op);
    this.settleSynced();
    return true;
  }

  /** C moved to version `v` (checksum `checksum`) by `op`. */
  private advance(v: number, checksum: number, op: Component[]): void {
    this.serverVersion = v;
    this.checksum = checksum;
    this.history.push({ v, op });
    if (this.history.length > PRESENCE_HISTORY) this.history.shift();
    this.samples.note(v, checksum);
  }

  /**
   * The local copy of the server text disagrees with the server's: report it, and heal from
   * a snapshot with the pending edits rebased onto it.
   */
  private heal(event: DivergedEvent): void {
    this.emit('diverged', event);
    this.transport.send({ type: 'diverged', doc: this.id, v: event.version });
    this.resync('snapshot');
  }

  /**
   * The server's head, announced once its ops pause: at our version, its checksum must be
   * ours (else heal); past it, we missed ops (catch up); before it, it is old news.
   */
  private onHead(message: HeadMessage): void {
    if (message.v === this.serverVersion && message.sum !== this.checksum) {
      this.heal({ reason: 'checksum', version: message.v, expected: message.sum, actual: this.checksum });
    } else if (message.v > this.serverVersion) {
      this.resync('catch-up');
    }
  }

  private onPresence(message: PresenceMessage): void {
    let selection: SelectionRange[] | null = null;
    if (message.selection !== null) {
      selection = this.placeRemoteSelection(message.selection, message.v);
      if (selection === null) return; // cannot be placed: ignore it, the next one will do
    }
    const presence: Presence = {
      selection,
      ...(message.user === undefined ? {} : { user: message.user }),
      ...(message.profile === undefined ? {} : { profile: message.profile }),
    };
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
      return serverToLocal(ranges, this.sync, this.confirmed.length);
    } catch (e) {
      if (e instanceof InvalidOperationError) return null;
      throw e;
    }
  }

  private onError(message: ErrorMessage): void {
    const ref = message.ref ?? {};
    const state = this.life;
    if (state.phase === 'closed') return;
    if (ref.type === 'submit' && ref.seq !== undefined) {
      if (ref.seq === state.inflight) {
        const action = clientPolicy(message.code).submit;
        if (action === 'retry') this.scheduleRetry(() => this.resend());
        else if (action === 'undo') this.reject();
        // A re-open with the claim (epoch, version, checksum): a server behind the version the op
        // rests on lost what this client holds, and answers `lost` so that it is restored.
        else if (action === 'catch-up') this.resync('catch-up');
        else if (action === 'snapshot') this.resync('snapshot');
      } else if (ref.seq <= state.seq && clientPolicy(message.code).contradicts) {
        // About a seq we sent and no longer hold in flight: a premise of ours was wrong.
        this.heal({ reason: 'refusal', version: this.serverVersion, code: message.code });
      }
    } else if (ref.type === 'open' || ref.type === 'restore') {
      if (!life.isCurrent(state, ref.rid)) return; // about an attempt already superseded
      if (ref.type === 'open') this.onOpenRefused(message);
      else this.onRestoreRefused(message);
    }
    this.emit('error', message);
  }

  private onOpenRefused(message: ErrorMessage): void {
    const action = clientPolicy(message.code).open;
    if (action === 'retry') {
      this.scheduleRetry(() => this.transition(life.retryOpen(this.life, ++lastRequestId)));
    } else if (action === 'snapshot') {
      this.resync('snapshot');
    } else if (message.code === ErrorCode.Forbidden && this.hasOpened) {
      // A re-open (after a reconnect, a resync) refused: the access was revoked meanwhile.
      this.onRevoked('none');
    } else if (action === 'fatal' && !this.hasOpened) {
      this.settleReady?.reject(new OtterError(message.code, message.message));
      this.settleReady = undefined;
    }
  }

  /**
   * The server lowered this user's access: to `none`, the document is closed (nothing more is
   * sent; the text stays as it is); to `read`, the edits not yet sent are undone and new ones
   * refused. Then `revoked` is emitted (see {@link RevokedEvent}).
   */
  private onRevoked(access: 'none' | 'read'): void {
    if (access === 'read' && this.revokedTo === 'read') return; // told already
    const text = this.text;
    const unconfirmed = this.sync.kind !== 'synchronized';
    this.revokedTo = access;
    if (access === 'none') this.shut(revokedError(this.id));
    else this.undoUnsent();
    this.emit('revoked', { access, text, unconfirmed });
  }

  /**
   * Read-only: undoes the pending edits that are not in flight (the server will never take
   * them), with a `change`; true if there were any.
   */
  private undoUnsent(): boolean {
    if (this.sync.kind === 'synchronized' || this.life.phase === 'closed') return false;
    const inFlight = this.life.inflight !== undefined;
    if (inFlight && this.sync.kind === 'awaiting-confirm') return false;
    const result = discardUnsent(this.sync, this.confirmed.toString(), inFlight);
    this.sync = result.state;
    this.changeLocal(result.apply);
    this.mapSelections(result.apply, false);
    this.emit('change', { op: result.apply, local: false });
    this.settleSynced();
    return true;
  }

  /** A restore the server refused: retry it, or (refused for good) take the server's text. */
  private onRestoreRefused(message: ErrorMessage): void {
    if (clientPolicy(message.code).open === 'retry') {
      this.scheduleRetry(() => {
        this.life = life.retryRestore(this.life, ++lastRequestId);
        this.sendRestore();
      });
      return;
    }
    if (this.lost !== undefined) this.lost.action = 'accepted';
    this.transition(life.reset(this.life, ++lastRequestId));
  }

  // ─── sending ──────────────────────────────────────────────────────────────────────────────

  /**
   * Sends the outstanding op if it has not been sent yet, under the next seq, cut to the
   * budget. Read-only (revoked to `read`), it undoes it instead, with `change` and a
   * `read-only` `error` (an op that went back to pending, e.g. after a resync).
   */
  private flush(): void {
    if (this.life.phase !== 'live' || this.sync.kind === 'synchronized' || this.life.inflight !== undefined) return;
    if (this.revokedTo === 'read') {
      if (this.undoUnsent()) {
        const { message } = readOnlyError(this.id);
        this.emit('error', { type: 'error', code: ErrorCode.ReadOnly, message, ref: { type: 'submit', doc: this.id } });
      }
      return;
    }
    this.sync = fitOutstanding(this.sync, this.budget);
    this.life = life.send(this.life);
    this.sends += 1;
    this.sendSubmit();
  }

  /** Sends the op in flight again (same seq, current version), if live. */
  private resend(): void {
    if (this.life.phase === 'live' && this.life.inflight !== undefined) this.sendSubmit();
  }

  private sendSubmit(): void {
    if (this.sync.kind === 'synchronized' || this.life.phase === 'closed' || this.life.inflight === undefined) return;
    // With storage, an op goes out only once a record holding it in flight is saved.
    this.sendHeld = this.persistence?.holds(this.sends) === true;
    if (this.sendHeld) return;
    this.transport.send({
      type: 'submit',
      doc: this.id,
      v: this.serverVersion,
      seq: this.life.inflight,
      op: this.sync.outstanding.op,
    });
  }

  /** The server refused the op in flight for good: undo it locally, send the buffer. */
  private reject(): void {
    const result = rejectOutstanding(this.sync, this.confirmed.toString(), this.budget);
    checkApplies(this.localText, result.apply);
    // The refused seq was not applied: the next op reuses it.
    this.life = life.refused(this.life);
    this.sync = result.state;
    this.changeLocal(result.apply);
    this.mapSelections(result.apply, false);
    this.emit('change', { op: result.apply, local: false });
    // After the change: read-only, flush undoes the rest with a change of its own.
    this.flush();
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
    if (this.presenceDirty && this.life.phase === 'live') this.presence.request();
  }

  /** Sends the selection if it changed and the document is live; says whether it did. */
  private sendPresence(): boolean {
    if (!this.presenceDirty || this.life.phase !== 'live') return false;
    const local = this.localSelection;
    const selection = local === null ? null : localToServer(local, this.sync, this.confirmed.length);
    const profile = this.profile === undefined ? {} : { profile: this.profile };
    this.transport.send({ type: 'presence', doc: this.id, v: this.serverVersion, selection, ...profile });
    this.presenceDirty = false;
    this.presenceApproximate = local !== null && this.sync.kind !== 'synchronized';
    return true;
  }

  // ─── bookkeeping ──────────────────────────────────────────────────────────────────────────

  /** Applies `change` to the local text (InvalidOperationError, nothing changed, if it does not fit). */
  private changeLocal(change: Operation): void {
    applyToRope(this.localText, change);
    this.localString = undefined;
  }

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

  /** Resolves `synced()` waiters if synchronized; re-sends an approximate presence. */
  private settleSynced(): void {
    this.announceUnsaved();
    if (this.sync.kind !== 'synchronized') return;
    for (const w of this.syncedWaiters.splice(0)) w.resolve();
    if (this.presenceApproximate) {
      this.presenceDirty = true;
      this.schedulePresence();
    }
  }

  /** Emits `unsaved` if {@link unsaved} differs from what the last one said. */
  private announceUnsaved(): void {
    const unsaved = this.unsaved;
    if (unsaved === this.announcedUnsaved) return;
    this.announcedUnsaved = unsaved;
    this.emit('unsaved', { unsaved });
  }

  private clearTimers(): void {
    this.presence.cancel();
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}

function exhaustive(message: never): never {
  throw new Error(`unhandled message ${JSON.stringify(message)}`);
}
