/**
 * The registry of Otter's error codes above the OT layer: one stable string per reason,
 * shared by the sequencer, the wire protocol, the server and the client. Codes never change
 * meaning; new reasons get new codes.
 */
import { InvalidOperationError } from '../ot/index.js';

/** Stable reasons a request was refused. */
export const ErrorCode = {
  /** A frame is not JSON, not an object, nested too deeply or holds a forbidden key. */
  BadMessage: 'bad-message',
  /** A message `type` this protocol version does not know. */
  UnknownType: 'unknown-type',
  /** A request field is missing, of the wrong type or out of range. */
  BadRequest: 'bad-request',
  /** The handshake named a protocol version this server does not speak. */
  UnsupportedProtocol: 'unsupported-protocol',
  /** A message about a document this connection has not opened. */
  NotOpen: 'not-open',
  /**
   * The user may not read this document (nothing of it is sent), or no longer may: a submit
   * queued or sent after the server revoked the access (see the `revoked` message).
   */
  Forbidden: 'forbidden',
  /** The user may read but not edit this document (from the open on, or since a `revoked`). */
  ReadOnly: 'read-only',
  /** The connection sends faster than its configured rate, or has too many requests pending. */
  RateLimited: 'rate-limited',
  /** The connection has the configured maximum of documents open. */
  TooManyDocuments: 'too-many-documents',
  /** The connection's credentials expired, or a refreshed token was refused. */
  AuthExpired: 'auth-expired',
  /** The operation is malformed or does not fit the document it claims to be based on. */
  InvalidOp: 'invalid-op',
  /** The base version is newer than the document's head. */
  VersionAhead: 'version-ahead',
  /** The base version is older than the retained history: the client must resync. */
  HistoryGone: 'history-gone',
  /**
   * The server refuses the client's token (HTTP 401 at the upgrade). Never sent in a message:
   * the client learns it from the token check (see docs/protocol.md) and reports it itself.
   */
  Unauthorized: 'unauthorized',
  /** An operation or the resulting document is over the configured size limit. */
  TooLarge: 'too-large',
  /** A sequence number skips past the next expected one for this client. */
  SeqGap: 'seq-gap',
  /** A resubmission reuses an applied sequence number with different content. */
  SeqReused: 'seq-reused',
  /** A sequence number older than the client's last applied one. */
  SeqStale: 'seq-stale',
  /** The store failed or lost a race; nothing of the request was acknowledged; retry. */
  StorageFailed: 'storage-failed',
  /**
   * The document's stored data failed an integrity check, so it is not served; nothing of the
   * request was applied. Retrying cannot help until an operator repairs or restores the store.
   */
  StorageCorrupt: 'storage-corrupt',
  /** The component is shutting down and takes no new work. */
  Closed: 'closed',
} as const;

/** One of the values of {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * What a client does when the server refuses one of its requests with a code: part of the wire
 * contract, so that every code has a decided meaning for clients (adding a code forces a
 * decision here: the table is exhaustive).
 */
export interface ClientPolicy {
  /**
   * The op in flight refused: `retry` it unchanged later; `undo` it (the server will never take
   * it); re-open with the client's claim (`catch-up`: the server may be behind, or lost what
   * the client holds) or for a `snapshot` (the client's premise was wrong); or only `report` it.
   */
  readonly submit: 'retry' | 'undo' | 'catch-up' | 'snapshot' | 'report';
  /**
   * An `open` refused: `retry` it later; `snapshot`: open again without a version; `fatal`: a
   * later attempt cannot succeed (the first open's `ready` rejects); or only `report` it.
   */
  readonly open: 'retry' | 'snapshot' | 'fatal' | 'report';
  /**
   * About a seq the client sent and no longer holds in flight, this code can only mean a wrong
   * premise of the client (the server applied that seq with other content, expects an older
   * seq, or does not know the base): its copy must be healed.
   */
  readonly contradicts: boolean;
}

const REPORT: ClientPolicy = { submit: 'report', open: 'report', contradicts: false };

/** The {@link ClientPolicy} of every code. */
export const CLIENT_POLICY: { readonly [C in ErrorCode]: ClientPolicy } = {
  [ErrorCode.BadMessage]: { ...REPORT, open: 'fatal' },
  [ErrorCode.UnknownType]: REPORT,
  [ErrorCode.BadRequest]: { ...REPORT, open: 'fatal' },
  [ErrorCode.UnsupportedProtocol]: REPORT,
  [ErrorCode.NotOpen]: { ...REPORT, submit: 'catch-up' },
  [ErrorCode.Forbidden]: { submit: 'undo', open: 'fatal', contradicts: false },
  [ErrorCode.ReadOnly]: { ...REPORT, submit: 'undo' },
  [ErrorCode.RateLimited]: { submit: 'retry', open: 'retry', contradicts: false },
  [ErrorCode.TooManyDocuments]: { ...REPORT, open: 'fatal' },
  [ErrorCode.AuthExpired]: REPORT,
  [ErrorCode.Unauthorized]: { ...REPORT, open: 'fatal' },
  [ErrorCode.InvalidOp]: { submit: 'snapshot', open: 'report', contradicts: true },
  [ErrorCode.VersionAhead]: { submit: 'catch-up', open: 'report', contradicts: true },
  [ErrorCode.HistoryGone]: { submit: 'snapshot', open: 'snapshot', contradicts: false },
  [ErrorCode.TooLarge]: { submit: 'undo', open: 'fatal', contradicts: false },
  [ErrorCode.SeqGap]: { submit: 'snapshot', open: 'report', contradicts: true },
  [ErrorCode.SeqReused]: { submit: 'snapshot', open: 'report', contradicts: true },
  [ErrorCode.SeqStale]: { ...REPORT, submit: 'snapshot' },
  [ErrorCode.StorageFailed]: { submit: 'retry', open: 'retry', contradicts: false },
  [ErrorCode.StorageCorrupt]: { ...REPORT, open: 'fatal' },
  [ErrorCode.Closed]: REPORT,
};

/** The {@link ClientPolicy} of `code`; a code this version does not know is only reported. */
export function clientPolicy(code: string): ClientPolicy {
  return Object.hasOwn(CLIENT_POLICY, code) ? CLIENT_POLICY[code as ErrorCode] : REPORT;
}

/** An error with a stable {@link ErrorCode}; safe to send to a client as `{ code, message }`. */
export class OtterError extends Error {
  override readonly name = 'OtterError';

  /** @param code stable reason; @param message detail naming the offending value. */
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The `invalid-op` refusal for `e` when it is the OT layer's InvalidOperationError (an op
 * malformed or not fitting its text), its message after `context` if given; undefined for any
 * other error, which the caller rethrows.
 */
export function invalidOpRefusal(e: unknown, context?: string): OtterError | undefined {
  if (!(e instanceof InvalidOperationError)) return undefined;
  return new OtterError(ErrorCode.InvalidOp, context === undefined ? e.message : `${context}: ${e.message}`);
}
