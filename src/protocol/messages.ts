/**
 * Otter's wire protocol, version 1: JSON text frames over one WebSocket, several documents
 * multiplexed by `doc`. The full description, with a session transcript, is docs/protocol.md.
 *
 * A client frame holds exactly one message. A server frame holds one message or a JSON array
 * of messages (the server batches what it has for a connection within one event-loop turn).
 *
 * Versions: `v` is a document version (0 = empty document); an op entry's `v` is the version
 * that op produced. `seq` numbers a client's submissions on one document: 1, 2, 3, …
 */
import type { Component } from '../ot/index.js';
import type { SelectionRange } from '../ot/index.js';
import type { ErrorCode } from './errors.js';

/** The protocol version this build speaks. */
export const PROTOCOL_VERSION = 1;

/** The WebSocket subprotocol of protocol version 1: clients offer it, the server selects it. */
export const OTTER_SUBPROTOCOL = 'otter.v1';

/** Prefix of a subprotocol entry that carries a token (browsers cannot set headers). */
export const TOKEN_SUBPROTOCOL_PREFIX = 'otter.token.';

// ─── client → server ────────────────────────────────────────────────────────────────────────

/** First message of a connection. `clientId` is stable across the client's reconnections. */
export interface HelloMessage {
  readonly type: 'hello';
  readonly protocol: number;
  readonly clientId?: string;
}

/**
 * Open (subscribe to) a document. `rid` names this attempt: the answer (`opened` or an
 * error's `ref`) carries it, and a client drops answers to any other attempt. For a
 * catch-up, `v` is the version the client holds, `epoch` the document incarnation it holds it
 * of and `sum` its checksum at `v` (all three, or none: then the answer is a snapshot).
 */
export interface OpenMessage {
  readonly type: 'open';
  readonly doc: string;
  readonly rid?: number;
  readonly v?: number;
  readonly epoch?: string;
  readonly sum?: number;
  /**
   * The client takes a catch-up that does not fit one frame in pieces (`ops` messages naming
   * `rid`, then `opened`). Without it, a catch-up is one `opened` frame whatever its size.
   */
  readonly pieces?: true;
}

/** A lost state: the incarnation `epoch` a client held, its version `v` there and checksum. */
export interface LostState {
  readonly epoch: string;
  readonly v: number;
  readonly sum: number;
}

/**
 * Restore a state the server lost (after `opened` said `lost`): the client's text at the lost
 * version, in `parts` pieces numbered from 0 (each fits a frame), all with the same `rid`,
 * `lost` and `samples` (other versions of the lost epoch the client passed, newest first, as
 * [v, sum]); one piece may carry `op`, the op the client had in flight on that text. The
 * server answers `restored` once the last piece is in.
 */
export interface RestoreMessage {
  readonly type: 'restore';
  readonly doc: string;
  readonly rid: number;
  readonly lost: LostState;
  readonly samples: ReadonlyArray<readonly [number, number]>;
  readonly part: number;
  readonly parts: number;
  readonly text: string;
  readonly op?: Component[];
}

/** The client found its copy of the document at `v` differs from the server's (it resyncs). */
export interface DivergedMessage {
  readonly type: 'diverged';
  readonly doc: string;
  readonly v: number;
}

/** Submit an op made on version `v`, as this client's `seq`-th op on the document. */
export interface SubmitMessage {
  readonly type: 'submit';
  readonly doc: string;
  readonly v: number;
  readonly seq: number;
  readonly op: Component[];
}

/**
 * A small record about the person behind a presence, shown beside their cursor: a display
 * `name`, a `color` (`#rrggbb` or a CSS colour keyword of lowercase letters) and flat
 * application fields. Values are strings, finite numbers or booleans; at most
 * {@link PROFILE_LIMITS}`.fields` fields, keys of at most `.keyLength` code units, strings of at
 * most `.stringLength`, and `.jsonLength` code units as JSON in all.
 */
export interface PresenceProfile {
  /** The display name. */
  readonly name?: string;
  /** The cursor colour: `#rrggbb` or a lowercase CSS colour keyword such as `teal`. */
  readonly color?: string;
  /** Application fields. */
  readonly [field: string]: string | number | boolean | undefined;
}

/** The caps of a {@link PresenceProfile}, checked by the parser on both sides. */
export const PROFILE_LIMITS = { fields: 16, keyLength: 32, stringLength: 128, jsonLength: 1024 } as const;

/**
 * This client's selection on a document at version `v`; `null` hides it. `profile` describes
 * the user; the server replaces its `name` (and `color`) with the authenticated ones, if any.
 */
export interface PresenceUpdateMessage {
  readonly type: 'presence';
  readonly doc: string;
  readonly v: number;
  readonly selection: SelectionRange[] | null;
  readonly profile?: PresenceProfile;
}

/** Close (unsubscribe from) a document. */
export interface CloseMessage {
  readonly type: 'close';
  readonly doc: string;
}

/** Application-level heartbeat; the server answers `pong`. */
export interface PingMessage {
  readonly type: 'ping';
}

/** A fresh token for this connection, before the current credentials expire. */
export interface AuthMessage {
  readonly type: 'auth';
  readonly token: string;
}

/** Every message a client may send. */
export type ClientMessage =
  | HelloMessage
  | OpenMessage
  | SubmitMessage
  | PresenceUpdateMessage
  | CloseMessage
  | PingMessage
  | AuthMessage
  | RestoreMessage
  | DivergedMessage;

// ─── server → client ────────────────────────────────────────────────────────────────────────

/** Answer to `hello`. */
export interface WelcomeMessage {
  readonly type: 'welcome';
  readonly protocol: number;
  /** The server's id for this connection: the key of this client's presence. */
  readonly connectionId: string;
  /** The client id the server uses for this connection's submissions. */
  readonly clientId: string;
  /** Limits a well-behaved client stays under (larger edits should be split). */
  readonly limits: ServerLimits;
}

/** The server's size limits, announced in `welcome`. */
export interface ServerLimits {
  /** Largest frame the server accepts, in bytes (larger ones close the connection with 1009). */
  readonly maxPayload: number;
  /** Largest op: its components plus its inserted UTF-16 code units. */
  readonly maxOpLength: number;
}

/** One committed op as the server sends it. `seq` is present only on the recipient's own ops. */
export interface OpEntry {
  readonly v: number;
  readonly op: Component[];
  readonly author?: string;
  readonly seq?: number;
}

/**
 * Answer to `open` attempt `rid`: the document (incarnation `epoch`) at version `v`, whose
 * checksum is `sum`, either as `text` (a snapshot) or as `ops` taking the client from the
 * version it sent to `v`; or, with `lost: true` and neither, the news that the state the
 * client claimed is not this document's (the server lost data the client holds) —
 * `recovered` then says what some client already restored of that lost epoch. `seq` is this
 * client's last applied seq on the document (0 if none), counting every submit the server
 * received before the open. Live `ops` messages for versions after `v` follow.
 */
export interface OpenedMessage {
  readonly type: 'opened';
  readonly doc: string;
  readonly rid?: number;
  readonly epoch: string;
  readonly v: number;
  readonly sum: number;
  readonly seq: number;
  readonly text?: string;
  readonly ops?: OpEntry[];
  readonly lost?: true;
  readonly recovered?: { readonly v: number; readonly sum: number };
  /**
   * With `lost`, when the server holds the claimed epoch (it went back in time): its checksums
   * at up to 64 versions spread below the claimed one, newest first, as [version, checksum]
   * pairs; the client sends every version between the newest it shares and the next with its
   * `restore`, so that the merge starts exactly where the two lines part.
   */
  readonly sums?: Array<[number, number]>;
}

/** Answer to `restore` `rid`: the head `v` after it, and whether the text was merged in. */
export interface RestoredMessage {
  readonly type: 'restored';
  readonly doc: string;
  readonly rid: number;
  readonly v: number;
  readonly applied: boolean;
}

/**
 * The document's head: version `v` and its checksum `sum`, sent to every client of the
 * document once its ops pause (about a second after the last one), so that a client that
 * missed an op or holds another text at `v` finds out without waiting for the next op.
 */
export interface HeadMessage {
  readonly type: 'head';
  readonly doc: string;
  readonly v: number;
  readonly sum: number;
}

/**
 * Ops committed by others, in version order; `sum` is the checksum at the last one's version.
 * With `rid`: a piece of the catch-up answering open attempt `rid`, sent before its `opened`
 * when the catch-up does not fit one frame (the client applies it with that answer).
 */
export interface OpsMessage {
  readonly type: 'ops';
  readonly doc: string;
  readonly rid?: number;
  readonly ops: OpEntry[];
  readonly sum: number;
}

/**
 * The client's op `seq` was committed as version `v`, where the document checksum is `sum`
 * (absent only when a resubmission is acknowledged after that version left the history).
 */
export interface AckMessage {
  readonly type: 'ack';
  readonly doc: string;
  readonly seq: number;
  readonly v: number;
  readonly sum?: number;
}

/** Another connection's selection at version `v` (`null`: hidden), its user id and profile. */
export interface PresenceMessage {
  readonly type: 'presence';
  readonly doc: string;
  readonly id: string;
  readonly user?: string;
  readonly v: number;
  readonly selection: SelectionRange[] | null;
  readonly profile?: PresenceProfile;
}

/** Another connection left the document (closed it, disconnected or timed out). */
export interface LeftMessage {
  readonly type: 'left';
  readonly doc: string;
  readonly id: string;
}

/** Answer to `close`. */
export interface ClosedMessage {
  readonly type: 'closed';
  readonly doc: string;
}

/**
 * The server re-checked this connection's access to a document it has open (on its periodic
 * re-check, or when the application called `revoke`) and found it lowered:
 * - `access: 'none'`: the document is closed on this connection — nothing more of it is sent,
 *   and a submit still on its way or queued is refused with `forbidden`;
 * - `access: 'read'`: it stays open and keeps receiving ops and presence, but a submit still
 *   queued, and every later one, is refused with `read-only`.
 * Raised access is never applied live: it takes a re-open.
 */
export interface RevokedMessage {
  readonly type: 'revoked';
  readonly doc: string;
  readonly access: 'none' | 'read';
}

/** Answer to `ping`. */
export interface PongMessage {
  readonly type: 'pong';
}

/** Answer to `auth`: the new credentials are in force until `expiresAt` (ms since the epoch). */
export interface AuthedMessage {
  readonly type: 'authed';
  readonly expiresAt?: number;
}

/** What an error refers to: the message type and, where known, its document, seq and rid. */
export interface ErrorRef {
  readonly type?: string;
  readonly doc?: string;
  readonly seq?: number;
  readonly rid?: number;
}

/** A request was refused; nothing of it was applied. */
export interface ErrorMessage {
  readonly type: 'error';
  readonly code: ErrorCode;
  readonly message: string;
  readonly ref?: ErrorRef;
}

/** Every message a server may send. */
export type ServerMessage =
  | WelcomeMessage
  | OpenedMessage
  | RestoredMessage
  | HeadMessage
  | OpsMessage
  | AckMessage
  | PresenceMessage
  | LeftMessage
  | ClosedMessage
  | RevokedMessage
  | PongMessage
  | AuthedMessage
  | ErrorMessage;

// ─── close codes ────────────────────────────────────────────────────────────────────────────

/** WebSocket close codes Otter uses; 4xxx are Otter's own. */
export const CloseCode = {
  /** The server is shutting down or restarting: reconnect (elsewhere). */
  GoingAway: 1001,
  /** A frame over the payload limit. */
  TooBig: 1009,
  /** The client speaks a protocol version this server does not. */
  ProtocolVersion: 4000,
  /** Used by a client that closes a connection whose heartbeat went unanswered. */
  HeartbeatTimeout: 4002,
  /** Too many malformed messages. */
  TooManyBadMessages: 4400,
  /** The credentials expired and were not refreshed in time. */
  AuthExpired: 4401,
  /** The connection did not say hello and open a document before the deadline. */
  OpenDeadline: 4408,
  /** The connection kept sending past its rate limit. */
  RateLimited: 4429,
  /** The client read too slowly: its unsent backlog passed the server's cap. */
  SlowConsumer: 4503,
} as const;

/** One of the values of {@link CloseCode}. */
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
