/**
 * One client connection's side of the protocol (docs/protocol.md), independent of the socket:
 * it takes frames through {@link Session.receive} and writes through a {@link Transport}.
 *
 * Every frame is rate-checked, then parsed by the one validating parser; nothing reaches the
 * sequencer unchecked. Requests are taken up in arrival order, paced by the history work they
 * cause (`request-gate.ts`). Messages about a document being opened are held back until its
 * `opened` answer has gone out, and ops that answer already covered are dropped, so every op
 * reaches the client exactly once, in order. A client only ever names documents it opened,
 * and it can only open documents `authorize` lets it read.
 */
import { randomUUID } from 'node:crypto';
import type { Component, SelectionRange } from '../ot/index.js';
import { ErrorCode, OtterError } from '../protocol/errors.js';
import {
  type ClientMessage,
  CloseCode,
  type ErrorRef,
  type OpenedMessage,
  PROTOCOL_VERSION,
  PROFILE_LIMITS,
  type PresenceProfile,
  type RestoreMessage,
  type ServerMessage,
} from '../protocol/messages.js';
import { ProtocolError, isProfileColor, parseClientMessage, readProfile } from '../protocol/parse.js';
import { Throttle } from '../protocol/throttle.js';
import type { Access, Authorize, Identity } from './auth.js';
import { opEntry } from './op-entry.js';
import { type OpenAnswer, openAnswer } from './open-answer.js';
import { Outbox } from './outbox.js';
import type { RoomMember, Rooms } from './rooms.js';
import type { OpenClaim, OpenResult, Sequencer } from './sequencer.js';
import type { OpRecord } from './store.js';
import { RequestGate } from './request-gate.js';
import type { Logger, Telemetry } from './telemetry.js';
import { TokenBucket } from './token-bucket.js';

/** The socket side of a session. */
export interface Transport {
  /** Writes one text frame. */
  send(frame: string): void;
  /** Closes the connection with a WebSocket close code. */
  close(code: number, reason: string): void;
  /** Bytes written but not yet sent to the peer (the socket's backlog); 0 if none. */
  buffered(): number;
}


/** Per-connection limits; defaults in {@link SESSION_DEFAULTS}. */
export interface SessionOptions {
  /** Malformed messages tolerated before closing with 4400. */
  maxBadMessages: number;
  /** Minimum ms between two presence broadcasts of one connection on one document. */
  presenceInterval: number;
  /** Messages per second a connection may send (token bucket, burst twice this). */
  messagesPerSecond: number;
  /** Bytes per second a connection may send (token bucket, burst twice this or maxPayload). */
  bytesPerSecond: number;
  /** Burst of the byte bucket: at least the largest frame the server accepts. */
  bytesBurst: number;
  /** Messages refused for rate in a row before closing with 4429. */
  maxRateStrikes: number;
  /** Requests (opens, submits) one connection may have waiting for an answer. */
  maxPendingRequests: number;
  /** Documents one connection may have open. */
  maxDocuments: number;
  /**
   * Ms a new connection has to say hello and open a document; 0 = no deadline. An open still
   * waiting for the history buckets counts as opened: the deadline then starts again.
   */
  openDeadline: number;
  /**
   * Largest frame accepted, in bytes (announced to clients; enforced by the socket layer). Also
   * the largest frame the server joins messages into, and the socket backlog above which the
   * next piece of a catch-up waits.
   */
  maxPayload: number;
  /**
   * Largest catch-up sent in answer to an open (its JSON, in UTF-16 code units): a client
   * further behind gets the head's text instead and merges its unsent edits by a diff, so that
   * no answer outgrows what a connection may have buffered. Default 16 Mi: with the server's
   * default `maxBufferedAmount` (8 MiB, a connection dropped above 8 times that), even 3
   * UTF-8 bytes per code unit stay under that cap.
   */
  maxCatchUpBytes: number;
  /**
   * Versions of history per second a connection may make the server go over (its history
   * bucket; see `request-gate.ts`). A submit is charged the versions between its base and the
   * head, an open the versions between the version it catches up from and the head (the head
   * as far as this server knows it when it takes the request up, topped up with what the
   * sequencer reports once it is answered), at most `historyBurst` per request. While the
   * bucket is in debt the connection's messages wait, in order, and are taken up as it refills
   * (at most twice `maxPendingRequests` wait, of at most {@link WAITING_PAYLOADS} times
   * `maxPayload` bytes together; one more is refused as a malformed message).
   * Default 5,000.
   */
  historyPerSecond: number;
  /**
   * Burst of a connection's history bucket, and the most one request is charged. Default
   * 25,000: a client rejoining 10,000 versions behind (its open's catch-up, then its op in
   * flight rebased over the same versions) is not slowed, and none waits more than 5 s for
   * its own bucket.
   */
  historyBurst: number;
  /**
   * Versions of history per second all connections of a server together may make it go over
   * (the shared bucket, charged with every connection's): a request that costs history work
   * waits while it is in debt, a cheap one does not. A request whose cost this server cannot
   * tell yet (an open at a version, or a submit, on a document whose head it does not know:
   * no connection has it open, or its first open is unanswered) counts as costly, and is
   * charged once the sequencer's answer says how far behind it was. Bounds the server's history
   * work however many connections ask for it, however often they reconnect. Default 10,000.
   */
  serverHistoryPerSecond: number;
  /** Burst of the shared history bucket. Default 50,000. */
  serverHistoryBurst: number;
}

/** Defaults of {@link SessionOptions}. */
export const SESSION_DEFAULTS: SessionOptions = {
  maxBadMessages: 20,
  presenceInterval: 50,
  messagesPerSecond: 200,
  bytesPerSecond: 1 << 20,
  bytesBurst: 2 << 20,
  maxRateStrikes: 50,
  maxPendingRequests: 64,
  maxDocuments: 64,
  openDeadline: 10_000,
  maxPayload: 1 << 20,
  maxCatchUpBytes: 16 << 20,
  historyPerSecond: 5000,
  historyBurst: 25_000,
  serverHistoryPerSecond: 10_000,
  serverHistoryBurst: 50_000,
};

/** What every session of one server shares. */
export interface SessionContext {
  readonly sequencer: Sequencer;
  readonly rooms: Rooms;
  readonly telemetry: Telemetry;
  readonly logger: Logger;
  readonly options: SessionOptions;
  readonly authorize: Authorize;
  /**
   * The history bucket all sessions of the server share (see `serverHistoryPerSecond`);
   * undefined: none, each connection is held to its own.
   */
  readonly history?: TokenBucket | undefined;
  /** Verifies a refreshed token; undefined when authentication is off. */
  readonly reauthenticate: ((token: string) => Promise<Identity | undefined>) | undefined;
}

/** What the session held back for a document while its `opened` answer was being prepared. */
type Held = { kind: 'record'; record: OpRecord; json: string } | { kind: 'message'; message: ServerMessage };

/** A `restore` being received piece by piece. */
interface Upload {
  readonly first: RestoreMessage;
  readonly pieces: string[];
  size: number;
  op: Component[] | undefined;
}

interface OpenDoc {
  /** Lowered (never raised) by a re-check; 'none' once revoked, when it is no longer in `docs`. */
  access: Access;
  /** Re-checks of its access started (the latest one's answer is the one that counts). */
  checks: number;
  /** Calls of `authorize` for a re-check that have not answered yet. */
  checking: number;
  /** Undefined once open; the messages held back while opening. */
  held: Held[] | undefined;
  /** A restore whose pieces are arriving, if any. */
  upload: Upload | undefined;
  /** The presence update waiting for its turn, and the pace of broadcasts (`presenceInterval`). */
  waiting: { v: number; selection: SelectionRange[] | null; profile: PresenceProfile | undefined } | undefined;
  presence: Throttle;
  /**
   * What this connection told the client of the document since its `opened` went out (undefined
   * before): the client's last applied seq there and the newest version sent. See {@link impossible}.
   */
  told: Told | undefined;
  /**
   * The epoch of the document as opened (undefined before, and after an open answered that
   * the store lost the client's state): the client's ops rest on its versions.
   */
  epoch: string | undefined;
}

/** What a connection told its client of one document: its last applied seq, the newest version. */
interface Told {
  seq: number;
  version: number;
}

/**
 * Whether a submit refused with `code` contradicts what the connection had told the client
 * when it was taken up (`told`), so that only a broken or hostile client sends it: an honest
 * client submits seq `told.seq + 1` next or resends its op in flight, which is at most that
 * (an open's `seq` counts every submit taken up before it; a client never resends a seq the
 * server reported applied), and bases its ops on versions it was sent. A client that was told
 * nothing yet (its open is unanswered) is given the benefit of the doubt, and so is a client
 * whose seq or base only a server that lost data contradicts.
 */
function impossible(code: string, seq: number, v: number, told: Told | undefined): boolean {
  if (told === undefined) return false;
  switch (code) {
    case ErrorCode.SeqGap:
      return seq > told.seq + 1;
    case ErrorCode.SeqStale:
      return seq < told.seq;
    case ErrorCode.VersionAhead:
      return v > told.version;
    default:
      return false;
  }
}

/**
 * A request at most this many versions behind the head never waits for the history work of
 * other connections (see `request-gate.ts`): an editor a few ops behind on a busy document is
 * not held up by an attack elsewhere. It is still charged to its own connection.
 */
const CHEAP_VERSIONS = 100;

/**
 * The messages waiting at one connection for the history buckets may be this many times
 * `maxPayload` bytes together (besides at most twice `maxPendingRequests` of them); one more
 * is refused like a full queue. Bounds what a connection holds in memory while it waits.
 */
export const WAITING_PAYLOADS = 4;

/** Ms between two looks at the socket's backlog while the pieces of a catch-up wait for it. */
const DRAIN_POLL = 10;

/** Longest timer Node accepts. */
const MAX_TIMER = 2 ** 31 - 1;

/** The access a re-check lowered a document to. */
export type Revoked = 'none' | 'read';

/** The refusal of a submission made where the connection's access is `access` (not 'write'). */
function accessError(docId: string, access: Access): OtterError {
  return access === 'read'
    ? new OtterError(ErrorCode.ReadOnly, `document ${JSON.stringify(docId)} is read-only for this user`)
    : new OtterError(ErrorCode.Forbidden, `access to document ${JSON.stringify(docId)} was revoked`);
}

/**
 * The name and colour an identity fixes in its presences (undefined without one): its
 * profile's name, else the user id, cut to the profile's string cap; its colour if valid.
 */
function authProfileOf(identity: Identity | undefined): PresenceProfile | undefined {
  if (identity === undefined) return undefined;
  const name = (identity.profile?.name || identity.user).slice(0, PROFILE_LIMITS.stringLength);
  const color = identity.profile?.color;
  return isProfileColor(color) ? { name, color } : { name };
}

/** Calls `authorize`, turning a synchronous throw into a rejection. */
function ask(authorize: Authorize, user: string | undefined, docId: string): Promise<Access> {
  try {
    return Promise.resolve(authorize(user, docId));
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * The `opened` answer to open attempt `rid` of the client `key`: its own ops in a catch-up
 * carry their seq (an op a restore merged has none).
 */
function openedMessage(docId: string, rid: number | undefined, result: OpenResult, key: string): OpenedMessage {
  const head = {
    type: 'opened' as const,
    doc: docId,
    ...(rid === undefined ? {} : { rid }),
    epoch: result.epoch,
    v: result.version,
    sum: result.checksum,
    seq: result.seq,
  };
  switch (result.kind) {
    case 'snapshot':
      return { ...head, text: result.text };
    case 'lost': {
      const r = result.recovered;
      return {
        ...head,
        lost: true,
        ...(r === undefined ? {} : { recovered: { v: r.version, sum: r.checksum } }),
        ...(result.sums === undefined ? {} : { sums: result.sums.map(([v, sum]): [number, number] => [v, sum]) }),
      };
    }
    case 'ops':
      return {
        ...head,
        ops: result.ops.map((r) => opEntry(r, key)),
      };
  }
}

/** See the file comment. */
export class Session implements RoomMember {
  readonly connectionId = randomUUID();
  readonly user: string | undefined;
  /** The authenticated name and colour, which replace the client's in its presence profile. */
  private authProfile: PresenceProfile | undefined;
  /** The client id the client chose (or was given), once it said hello. */
  clientId: string | undefined;
  /** The sequencer's client key: the client id scoped to the user, so no one can reuse another's. */
  private key: string | undefined;
  private expiresAt: number | undefined;
  private readonly docs = new Map<string, OpenDoc>();
  /**
   * Documents a re-check closed here, oldest first (at most `maxDocuments`): a submit or
   * restore for one of them that was on its way gets `forbidden`, not `not-open`, and
   * counts as no malformed message; presence for it is dropped.
   */
  private readonly revoked = new Set<string>();
  /** Bumped by every `revoke` re-check: an open whose authorize ran meanwhile asks again. */
  private revocations = 0;
  private readonly outbox: Outbox;
  private readonly messages: TokenBucket;
  private readonly bytes: TokenBucket;
  /** Paces the history work this connection causes (see {@link SessionOptions.historyPerSecond}). */
  private readonly gate: RequestGate<ClientMessage>;
  private badMessages = 0;
  private rateStrikes = 0;
  private pending = 0;
  private refreshes = 0;
  private closed = false;
  private expiryTimer: ReturnType<typeof setTimeout> | undefined;
  private deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly options: SessionOptions;

  /**
   * @param transport where frames go; @param context what all sessions share;
   * @param identity who authenticated (undefined without authentication).
   */
  constructor(
    private readonly transport: Transport,
    private readonly context: SessionContext,
    identity: Identity | undefined = undefined,
  ) {
    this.options = context.options;
    this.user = identity?.user;
    this.authProfile = authProfileOf(identity);
    this.outbox = new Outbox((frame) => transport.send(frame), this.options.maxPayload);
    const now = Date.now();
    this.messages = new TokenBucket(this.options.messagesPerSecond, this.options.messagesPerSecond * 2, now);
    this.bytes = new TokenBucket(this.options.bytesPerSecond, this.options.bytesBurst, now);
    const history = new TokenBucket(this.options.historyPerSecond, this.options.historyBurst, now);
    this.gate = new RequestGate(
      history,
      context.history,
      2 * this.options.maxPendingRequests,
      {
        run: (m) => this.takeUp(m),
        costly: (m) => (m.type === 'submit' || (m.type === 'open' && m.v !== undefined)) && this.costsHistory(m.doc, m.v ?? 0),
        // Presence waiting for its turn is replaced by a later one of the same document.
        coalesce: (m) => (m.type === 'presence' ? m.doc : undefined),
      },
      Date.now,
      WAITING_PAYLOADS * this.options.maxPayload,
    );
    this.setExpiry(identity?.expiresAt);
    this.armDeadline();
  }

  /**
   * Closes the connection with 4408 if it has opened no document `openDeadline` ms from now.
   * An open waiting for the history buckets counts as opened: the deadline is then armed again.
   */
  private armDeadline(): void {
    if (!(this.options.openDeadline > 0)) return;
    this.deadlineTimer = setTimeout(() => {
      if (this.docs.size > 0) return;
      if (this.gate.holds((m) => m.type === 'open')) this.armDeadline();
      else this.end(CloseCode.OpenDeadline, 'no document opened in time');
    }, this.options.openDeadline);
    this.deadlineTimer.unref?.();
  }

  /**
   * A `revoke` for this connection's user is under way: an open whose `authorize` is running
   * now asks again once it answers (its answer may predate the change being revoked).
   */
  revoking(): void {
    this.revocations++;
  }

  /** The documents this connection has open (or is opening). */
  get documentIds(): string[] {
    return [...this.docs.keys()];
  }

  /**
   * Asks `authorize` again about `docId`, open on this connection, and applies a lowered
   * access at once, telling the client with a `revoked` message:
   * - 'none' (or any value but 'read' and 'write', as at open): the document is closed here —
   *   no more ops, presence or head; its submits still queued in the sequencer are refused
   *   with `forbidden`, and so are those still on their way;
   * - 'read' where it had 'write': it stays open and keeps receiving; its queued submits and
   *   every later one are refused with `read-only`.
   * Raised access is not applied (it takes a re-open). An authorize that throws, or has not
   * answered within `timeout` ms, keeps the current access (logged at warn and counted).
   *
   * `fresh` (a `revoke` call, after {@link revoking}): the check runs even while an earlier one
   * is unanswered. Otherwise (the periodic re-check) a
   * document whose previous re-check is still unanswered is skipped, so that a hung authorize
   * does not pile up calls. Only the answer of the latest check started counts.
   *
   * Resolves with the access the document was lowered to, or undefined if nothing changed.
   * Never rejects.
   */
  async recheck(docId: string, timeout: number, fresh: boolean): Promise<Revoked | undefined> {
    const doc = this.docs.get(docId);
    if (this.closed || doc === undefined || (!fresh && doc.checking > 0)) return undefined;
    const check = ++doc.checks;
    doc.checking++;
    const call = ask(this.context.authorize, this.user, docId);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settled = (): void => {
      doc.checking--;
      clearTimeout(timer);
    };
    call.then(settled, settled);
    let access: Access;
    try {
      access = await Promise.race([
        call,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`authorize did not answer within ${timeout} ms`)), timeout);
          timer.unref?.();
        }),
      ]);
    } catch (e) {
      if (this.closed || this.docs.get(docId) !== doc) return undefined;
      this.context.telemetry.recheckFailed();
      this.context.logger.warn(
        { connectionId: this.connectionId, user: this.user, doc: docId, err: String(e) },
        'access re-check failed; the current access stays',
      );
      return undefined;
    }
    if (this.closed || this.docs.get(docId) !== doc || doc.checks !== check) return undefined;
    if (access === 'write' || (access === 'read' && doc.access === 'read')) return undefined;
    const lowered: Revoked = access === 'read' ? 'read' : 'none';
    this.context.telemetry.accessRevoked(lowered);
    this.context.logger.info({ connectionId: this.connectionId, user: this.user, doc: docId, access: lowered }, 'access revoked');
    if (lowered === 'read') {
      doc.access = 'read';
      this.toDoc(docId, { type: 'revoked', doc: docId, access: 'read' });
    } else {
      this.revoke(docId);
      this.outbox.message({ type: 'revoked', doc: docId, access: 'none' });
    }
    return lowered;
  }

  /** Handles one incoming text frame of `bytes` bytes. Never throws. */
  receive(data: string, bytes = data.length): void {
    if (this.closed) return;
    const now = Date.now();
    if (!this.messages.take(1, now) || !this.bytes.take(bytes, now)) {
      this.rateDrop('slow down: the message was dropped');
      return;
    }
    this.rateStrikes = 0;
    if (this.expiresAt !== undefined && now >= this.expiresAt) {
      this.end(CloseCode.AuthExpired, 'credentials expired');
      return;
    }
    let msg;
    try {
      msg = parseClientMessage(data);
    } catch (e) {
      const err = e instanceof ProtocolError ? e : new ProtocolError(ErrorCode.BadMessage, 'unreadable message');
      this.refuse(err.code, err.message, err.ref);
      return;
    }
    if (msg.type !== 'hello' && this.key === undefined) {
      this.refuse(ErrorCode.BadRequest, 'send hello first', { type: msg.type });
      return;
    }
    // Neither touches a document: never held back (a token refresh must not wait past expiry).
    if (msg.type === 'ping' || msg.type === 'hello' || msg.type === 'auth') void this.takeUp(msg);
    // A full queue is more than an honest client ever has waiting: it counts as malformed.
    else if (!this.gate.offer(msg, bytes)) this.refuse(ErrorCode.RateLimited, 'too many messages waiting: the message was dropped');
  }

  /** Takes one message up (in arrival order, when the history bucket allows; see `request-gate.ts`). */
  private takeUp(msg: ClientMessage): void | Promise<void> {
    if (this.closed) return;
    switch (msg.type) {
      case 'hello':
        this.hello(msg.protocol, msg.clientId);
        return;
      case 'open': {
        const claim = msg.epoch !== undefined && msg.sum !== undefined ? { epoch: msg.epoch, checksum: msg.sum } : undefined;
        return this.open(msg.doc, msg.rid, msg.v, claim, msg.pieces === true);
      }
      case 'restore':
        this.restore(msg);
        return;
      case 'diverged':
        this.context.telemetry.diverged();
        this.context.logger.warn({ connectionId: this.connectionId, doc: msg.doc, version: msg.v }, 'client diverged and resyncs');
        return;
      case 'submit':
        return this.submit(msg.doc, msg.v, msg.seq, msg.op);
      case 'presence':
        this.presence(msg.doc, msg.v, msg.selection, msg.profile);
        return;
      case 'close':
        this.closeDoc(msg.doc);
        this.outbox.message({ type: 'closed', doc: msg.doc });
        return;
      case 'ping':
        this.outbox.message({ type: 'pong' });
        return;
      case 'auth':
        void this.refresh(msg.token);
        return;
    }
  }

  /** A message dropped unread for rate: an error without ref; too many in a row close with 4429. */
  private rateDrop(message: string): void {
    this.context.telemetry.opRejected(ErrorCode.RateLimited);
    if (++this.rateStrikes > this.options.maxRateStrikes) {
      this.end(CloseCode.RateLimited, 'rate limit exceeded');
    } else {
      this.outbox.message({ type: 'error', code: ErrorCode.RateLimited, message });
    }
  }

  /** The connection is gone: leave every room and stop every timer. Idempotent. */
  disconnected(): void {
    if (this.closed) return;
    this.closed = true;
    this.gate.close();
    clearTimeout(this.expiryTimer);
    clearTimeout(this.deadlineTimer);
    for (const docId of [...this.docs.keys()]) this.closeDoc(docId);
    this.outbox.close();
  }

  /** Writes what is queued now (before a close). */
  flush(): void {
    this.outbox.flush();
  }

  /** Flushes, closes the connection with `code` and forgets it. */
  private end(code: number, reason: string): void {
    this.outbox.flush();
    this.transport.close(code, reason);
    this.disconnected();
  }

  /** Sends an error reply; too many of them close the connection with 4400. */
  private refuse(code: ErrorCode, message: string, ref?: ErrorRef): void {
    this.context.telemetry.opRejected(code);
    const hasRef = ref !== undefined && Object.keys(ref).length > 0;
    this.outbox.message({ type: 'error', code, message, ...(hasRef ? { ref } : {}) });
    if (++this.badMessages > this.options.maxBadMessages) this.end(CloseCode.TooManyBadMessages, 'too many malformed messages');
  }

  /** Sends an error reply for a well-formed request that cannot be granted. */
  private deny(code: ErrorCode, message: string, ref: ErrorRef): void {
    this.context.telemetry.opRejected(code);
    this.outbox.message({ type: 'error', code, message, ref });
  }

  private setExpiry(expiresAt: number | undefined): void {
    clearTimeout(this.expiryTimer);
    this.expiresAt = expiresAt;
    if (expiresAt === undefined) return;
    this.expiryTimer = setTimeout(
      () => this.end(CloseCode.AuthExpired, 'credentials expired'),
      Math.min(MAX_TIMER, Math.max(0, expiresAt - Date.now())),
    );
    this.expiryTimer.unref?.();
  }

  private hello(protocol: number, clientId: string | undefined): void {
    if (protocol !== PROTOCOL_VERSION) {
      this.outbox.message({
        type: 'error',
        code: ErrorCode.UnsupportedProtocol,
        message: `this server speaks protocol ${PROTOCOL_VERSION}, not ${protocol}`,
        ref: { type: 'hello' },
      });
      this.end(CloseCode.ProtocolVersion, 'unsupported protocol version');
      return;
    }
    if (this.key !== undefined) {
      this.refuse(ErrorCode.BadRequest, 'hello was already sent', { type: 'hello' });
      return;
    }
    // The key below joins user and client id with a line break; a client id holding one could
    // equal another user's key (user 'a', client 'b\nc' against user 'a\nb', client 'c').
    if (clientId?.includes('\n')) {
      this.refuse(ErrorCode.BadRequest, 'field clientId must not contain a line break', { type: 'hello' });
      return;
    }
    this.clientId = clientId ?? randomUUID();
    this.key = this.user === undefined ? this.clientId : `${this.user}\n${this.clientId}`;
    this.outbox.message({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      connectionId: this.connectionId,
      clientId: this.clientId,
      limits: { maxPayload: this.options.maxPayload, maxOpLength: this.context.sequencer.maxOpLength },
    });
  }

  private async refresh(token: string): Promise<void> {
    const verify = this.context.reauthenticate;
    if (verify === undefined) {
      this.refuse(ErrorCode.BadRequest, 'authentication is not enabled on this server', { type: 'auth' });
      return;
    }
    const attempt = ++this.refreshes;
    const identity = await verify(token).catch(() => undefined);
    // Only the latest refresh counts: an older token verified late must not shorten the expiry.
    if (this.closed || attempt !== this.refreshes) return;
    if (identity === undefined || identity.user !== this.user) {
      this.deny(ErrorCode.AuthExpired, 'the new token was refused; the current credentials stay in force', { type: 'auth' });
      return;
    }
    this.setExpiry(identity.expiresAt);
    this.authProfile = authProfileOf(identity);
    this.outbox.message(identity.expiresAt === undefined ? { type: 'authed' } : { type: 'authed', expiresAt: identity.expiresAt });
  }

  /** Counts a request as pending; false (and a refusal sent) if the connection has too many. */
  private startRequest(ref: ErrorRef): boolean {
    if (this.pending >= this.options.maxPendingRequests) {
      this.deny(ErrorCode.RateLimited, `more than ${this.options.maxPendingRequests} requests waiting`, ref);
      return false;
    }
    this.pending++;
    return true;
  }

  /** Opens `docId` for the client; `pieces`: it takes a long catch-up in pieces (see `open-answer.ts`). */
  private async open(
    docId: string,
    rid: number | undefined,
    from: number | undefined,
    claim: OpenClaim | undefined,
    pieces: boolean,
  ): Promise<void> {
    const ref: ErrorRef = rid === undefined ? { type: 'open', doc: docId } : { type: 'open', doc: docId, rid };
    if (!this.docs.has(docId) && this.docs.size >= this.options.maxDocuments) {
      this.deny(ErrorCode.TooManyDocuments, `a connection may have at most ${this.options.maxDocuments} documents open`, ref);
      return;
    }
    if (!this.startRequest(ref)) return;
    // Charged when taken up (before any await), so that the requests after it wait; what the
    // known head did not show (all of it, if unknown) is charged once the sequencer answers.
    const charged = from === undefined ? 0 : this.versionsBehind(docId, from);
    this.gate.charge(charged);
    this.revoked.delete(docId);
    try {
      // A revoke() while authorize ran may have changed the answer: ask again.
      let revocations = this.revocations;
      let access = await this.context.authorize(this.user, docId);
      while (revocations !== this.revocations && !this.closed) {
        revocations = this.revocations;
        access = await this.context.authorize(this.user, docId);
      }
      if (this.closed) return;
      if (access !== 'read' && access !== 'write') {
        if (this.docs.has(docId)) this.revoke(docId); // a re-open now refused
        this.deny(ErrorCode.Forbidden, `no access to document ${JSON.stringify(docId)}`, ref);
        return;
      }
      // Checked again: opens sent together all passed the first check while authorize ran.
      // openAuthorized registers the document before its first await, so this is exact.
      if (!this.docs.has(docId) && this.docs.size >= this.options.maxDocuments) {
        this.deny(ErrorCode.TooManyDocuments, `a connection may have at most ${this.options.maxDocuments} documents open`, ref);
        return;
      }
      await this.openAuthorized(docId, rid, from, claim, access, charged, pieces);
    } catch (e) {
      this.sendError(e, ref);
    } finally {
      this.pending--;
    }
  }

  private async openAuthorized(
    docId: string,
    rid: number | undefined,
    from: number | undefined,
    claim: OpenClaim | undefined,
    access: Access,
    charged: number,
    pieces: boolean,
  ): Promise<void> {
    const key = this.key as string;
    const doc: OpenDoc = {
      access,
      checks: 0,
      checking: 0,
      held: [],
      upload: undefined,
      waiting: undefined,
      presence: new Throttle(this.options.presenceInterval, () => this.sendPresence(docId, doc)),
      told: undefined,
      epoch: undefined,
    };
    const previous = this.docs.get(docId);
    previous?.presence.cancel();
    // Submits of the earlier open still queued are decided under the access found now.
    if (previous !== undefined && access === 'read') previous.access = 'read';
    this.docs.set(docId, doc);
    clearTimeout(this.deadlineTimer);
    this.context.rooms.join(docId, this);
    try {
      let result = await this.context.sequencer.open(docId, key, from, claim, this.options.maxCatchUpBytes);
      if (from !== undefined && result.kind !== 'lost') this.gate.topUp(charged, result.version - from);
      if (this.docs.get(docId) !== doc) return; // closed or re-opened meanwhile
      let answer = await this.answerTo(docId, rid, result, key, pieces);
      if (this.docs.get(docId) !== doc) return;
      if (result.kind === 'ops' && answer.length > this.context.options.maxCatchUpBytes) {
        this.context.logger.info({ connectionId: this.connectionId, doc: docId, from, bytes: answer.length }, 'catch-up too large: a snapshot instead');
        result = await this.context.sequencer.open(docId, key);
        if (this.docs.get(docId) !== doc) return;
        answer = await this.answerTo(docId, rid, result, key, pieces);
        if (this.docs.get(docId) !== doc) return;
      }
      this.context.rooms.observe(docId, result.version);
      if (from !== undefined && result.kind === 'snapshot') this.context.telemetry.resync();
      if (result.kind === 'lost') {
        this.context.telemetry.lostState();
        this.context.logger.warn(
          { connectionId: this.connectionId, doc: docId, version: result.version, from, claimedEpoch: claim?.epoch, epoch: result.epoch },
          'a client holds a state of the document that the store lost',
        );
      }
      this.context.logger.info({ connectionId: this.connectionId, doc: docId, version: result.version, from }, 'document opened');
      // A catch-up larger than a frame goes out in pieces, each a frame of its own, one per
      // turn of the event loop and only while the socket has at most `maxPayload` unsent (what
      // arrives for the document meanwhile stays held until `opened` is out; the outbox joins
      // `opened` and what was held into frames of at most `maxPayload`).
      for (const piece of answer.pieces) {
        await this.drained();
        if (this.docs.get(docId) !== doc) return;
        this.outbox.frame(piece);
        await new Promise((resolve) => setImmediate(resolve));
        if (this.docs.get(docId) !== doc) return;
      }
      this.outbox.messageJson(answer.opened);
      if (result.kind !== 'lost') {
        doc.told = { seq: result.seq, version: result.version };
        doc.epoch = result.epoch;
      }
      const held = doc.held ?? [];
      doc.held = undefined;
      for (const h of held) {
        if (h.kind === 'message') this.outbox.message(h.message);
        else if (h.record.version > result.version) this.deliver(docId, h.record, h.json);
      }
      this.context.rooms.sendPresences(docId, this);
    } catch (e) {
      if (this.docs.get(docId) === doc) this.closeDoc(docId);
      throw e;
    }
  }

  /** Submits an op; once taken to the sequencer, a promise settled when it is answered. */
  private submit(docId: string, v: number, seq: number, op: Component[]): void | Promise<void> {
    const ref: ErrorRef = { type: 'submit', doc: docId, seq };
    const doc = this.docs.get(docId);
    if (doc === undefined) {
      if (this.revoked.has(docId)) this.deny(ErrorCode.Forbidden, `access to document ${JSON.stringify(docId)} was revoked`, ref);
      else this.refuse(ErrorCode.NotOpen, `document ${JSON.stringify(docId)} is not open on this connection`, ref);
      return;
    }
    if (doc.access !== 'write') {
      this.deny(ErrorCode.ReadOnly, `document ${JSON.stringify(docId)} is read-only for this user`, ref);
      return;
    }
    if (!this.startRequest(ref)) return;
    const start = performance.now();
    const told = doc.told === undefined ? undefined : { ...doc.told };
    // Charged when taken up, so that the requests after it wait (see SessionOptions.historyPerSecond).
    const charged = this.versionsBehind(docId, v);
    this.gate.charge(charged);
    // Decided under the access at that moment: a re-check may lower it while the op is queued.
    const admit = (): OtterError | undefined => (doc.access === 'write' ? undefined : accessError(docId, doc.access));
    return this.context.sequencer
      .submit({ docId, clientId: this.key as string, seq, baseVersion: v, op, author: this.user, admit, epoch: doc.epoch })
      .then(
        (result) => {
          // A fresh op is acknowledged when its commit is delivered; a duplicate is not
          // delivered again, so it is acknowledged here.
          if (!result.duplicate) {
            this.context.telemetry.opApplied(result.depth, (performance.now() - start) / 1000);
            this.gate.topUp(charged, result.depth);
            return;
          }
          this.noteTold(doc, seq, result.version);
          if (result.checksum === undefined) this.toDoc(docId, { type: 'ack', doc: docId, seq, v: result.version });
          else this.toDoc(docId, { type: 'ack', doc: docId, seq, v: result.version, sum: result.checksum });
        },
        (e: unknown) => {
          // Only a broken or hostile client sends what it was told is impossible: a malformed message.
          if (!this.closed && e instanceof OtterError && impossible(e.code, seq, v, told)) this.refuse(e.code, e.message, ref);
          else this.sendError(e, ref);
        },
      )
      .finally(() => this.pending--);
  }

  /**
   * Takes one piece of a `restore`; once all are in (in order, one rid at a time, within the
   * document size limit), asks the sequencer to restore the text and answers `restored`.
   */
  private restore(msg: RestoreMessage): void {
    const ref: ErrorRef = { type: 'restore', doc: msg.doc, rid: msg.rid };
    const doc = this.docs.get(msg.doc);
    if (doc === undefined && this.revoked.has(msg.doc)) {
      this.deny(ErrorCode.Forbidden, `access to document ${JSON.stringify(msg.doc)} was revoked`, ref);
      return;
    }
    if (doc === undefined || doc.held !== undefined) {
      this.refuse(ErrorCode.NotOpen, `document ${JSON.stringify(msg.doc)} is not open on this connection`, ref);
      return;
    }
    if (doc.access !== 'write') {
      this.deny(ErrorCode.ReadOnly, `document ${JSON.stringify(msg.doc)} is read-only for this user`, ref);
      return;
    }
    if (msg.part === 0) doc.upload = { first: msg, pieces: [], size: 0, op: undefined };
    const upload = doc.upload;
    if (upload === undefined || upload.first.rid !== msg.rid || upload.first.parts !== msg.parts || upload.pieces.length !== msg.part) {
      doc.upload = undefined;
      this.refuse(ErrorCode.BadRequest, `restore piece ${msg.part} of ${msg.parts} arrived out of order`, ref);
      return;
    }
    upload.pieces.push(msg.text);
    upload.size += msg.text.length;
    if (msg.op !== undefined) upload.op = msg.op;
    if (upload.size > this.context.sequencer.maxDocLength) {
      doc.upload = undefined;
      this.deny(ErrorCode.TooLarge, `the restored text is over the document limit of ${this.context.sequencer.maxDocLength}`, ref);
      return;
    }
    if (upload.pieces.length < msg.parts) return;
    doc.upload = undefined;
    if (!this.startRequest(ref)) return;
    const { lost, samples } = upload.first;
    this.context.sequencer
      .restore({
        docId: msg.doc,
        clientId: this.key as string,
        lost: { epoch: lost.epoch, version: lost.v, checksum: lost.sum },
        samples,
        text: upload.pieces.join(''),
        op: upload.op,
        author: this.user,
        admit: () => (doc.access === 'write' ? undefined : accessError(msg.doc, doc.access)),
      })
      .then(
        (result) => {
          this.context.logger.warn({ connectionId: this.connectionId, doc: msg.doc, version: result.version, applied: result.applied }, 'lost state restored');
          this.toDoc(msg.doc, { type: 'restored', doc: msg.doc, rid: msg.rid, v: result.version, applied: result.applied });
        },
        (e: unknown) => this.sendError(e, ref),
      )
      .finally(() => this.pending--);
  }

  private presence(docId: string, v: number, selection: SelectionRange[] | null, profile: PresenceProfile | undefined): void {
    const doc = this.docs.get(docId);
    if (doc === undefined) {
      if (this.revoked.has(docId)) return; // sent before the client learned of the revocation
      this.refuse(ErrorCode.NotOpen, `document ${JSON.stringify(docId)} is not open on this connection`, {
        type: 'presence',
        doc: docId,
      });
      return;
    }
    doc.waiting = { v, selection, profile: this.profileOf(profile) };
    doc.presence.request();
  }

  /** Broadcasts the presence update waiting in `doc`, if any and still open; says whether it did. */
  private sendPresence(docId: string, doc: OpenDoc): boolean {
    const w = doc.waiting;
    if (w === undefined || this.docs.get(docId) !== doc) return false;
    doc.waiting = undefined;
    this.context.rooms.setPresence(docId, this, w.v, w.selection, w.profile);
    return true;
  }

  /**
   * The profile shown with this connection's presence: the client's, with the authenticated
   * name and colour in place of its own. Should the two together exceed the caps, only the
   * authenticated fields are kept.
   */
  private profileOf(profile: PresenceProfile | undefined): PresenceProfile | undefined {
    if (this.authProfile === undefined) return profile;
    const merged = readProfile({ ...profile, ...this.authProfile });
    return typeof merged === 'string' ? this.authProfile : merged;
  }

  /**
   * Closes `docId` here because the user lost access to it: its submits still queued are
   * refused, and those on their way get `forbidden` (see {@link revoked}).
   */
  private revoke(docId: string): void {
    const doc = this.docs.get(docId);
    if (doc === undefined) return;
    doc.access = 'none';
    this.closeDoc(docId);
    this.revoked.add(docId);
    if (this.revoked.size > this.options.maxDocuments) this.revoked.delete(this.revoked.values().next().value as string);
  }

  private closeDoc(docId: string): void {
    const doc = this.docs.get(docId);
    if (doc === undefined) return;
    doc.presence.cancel();
    this.docs.delete(docId);
    this.context.rooms.leave(docId, this);
    this.context.logger.info({ connectionId: this.connectionId, doc: docId }, 'document closed');
  }

  private sendError(e: unknown, ref: ErrorRef): void {
    const known = e instanceof OtterError;
    const code = known ? e.code : ErrorCode.StorageFailed;
    if (!known) this.context.logger.error({ connectionId: this.connectionId, err: String(e), ref }, 'request failed');
    this.deny(code, known ? e.message : 'internal error; retry', ref);
  }

  /** @inheritdoc */
  deliver(docId: string, record: OpRecord, json: string): void {
    const doc = this.docs.get(docId);
    if (doc === undefined) return;
    if (doc.held !== undefined) doc.held.push({ kind: 'record', record, json });
    else if (record.clientId === this.key && record.seq > 0) {
      this.noteTold(doc, record.seq, record.version);
      this.outbox.message({ type: 'ack', doc: docId, seq: record.seq, v: record.version, sum: record.checksum });
    } else {
      this.noteTold(doc, 0, record.version);
      this.outbox.opEntry(docId, json, record.checksum);
    }
  }

  /**
   * The head of `docId` as far as this server knows it (the newest version sent here,
   * published to its room or seen by an open there); undefined while it knows none (no
   * connection has the document open, or the first open of it is unanswered).
   */
  private knownHead(docId: string): number | undefined {
    const head = Math.max(this.docs.get(docId)?.told?.version ?? 0, this.context.rooms.head(docId) ?? 0);
    return head > 0 ? head : undefined;
  }

  /**
   * How many versions the known head of `docId` is past `v` (0 while the head is unknown): the
   * history a request at `v` is charged when taken up.
   */
  private versionsBehind(docId: string, v: number): number {
    return Math.max(0, (this.knownHead(docId) ?? 0) - v);
  }

  /**
   * Whether a request at `v` on `docId` costs history work (it then waits for the shared
   * bucket): more than {@link CHEAP_VERSIONS} behind the known head, or the head is unknown.
   */
  private costsHistory(docId: string, v: number): boolean {
    const head = this.knownHead(docId);
    return head === undefined || head - v > CHEAP_VERSIONS;
  }

  /** Resolves once the socket has at most `maxPayload` bytes unsent, or the connection closed. */
  private async drained(): Promise<void> {
    while (!this.closed && this.transport.buffered() > this.options.maxPayload) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL));
    }
  }

  /** Notes that the client was told of its seq `seq` applied (0: none) and of version `version`. */
  private noteTold(doc: OpenDoc, seq: number, version: number): void {
    const told = doc.told;
    if (told === undefined) return;
    if (seq > told.seq) told.seq = seq;
    if (version > told.version) told.version = version;
  }

  /**
   * The frames answering open attempt `rid` of `docId` with `result` (see `open-answer.ts`):
   * pieces of at most `maxPayload` bytes if the client takes them, else one `opened`.
   */
  private answerTo(docId: string, rid: number | undefined, result: OpenResult, key: string, pieces: boolean): Promise<OpenAnswer> {
    const sums = result.kind === 'ops' ? result.ops.map((r) => r.checksum) : [];
    return openAnswer(openedMessage(docId, rid, result, key), sums, pieces ? this.options.maxPayload : Number.POSITIVE_INFINITY);
  }

  /** @inheritdoc */
  deliverPresence(
    docId: string,
    id: string,
    user: string | undefined,
    v: number,
    selection: SelectionRange[] | null,
    profile: PresenceProfile | undefined,
  ): void {
    this.toDoc(docId, {
      type: 'presence',
      doc: docId,
      id,
      v,
      selection,
      ...(user === undefined ? {} : { user }),
      ...(profile === undefined ? {} : { profile }),
    });
  }

  /** @inheritdoc */
  deliverLeft(docId: string, id: string): void {
    this.toDoc(docId, { type: 'left', doc: docId, id });
  }

  /** @inheritdoc */
  deliverHead(docId: string, v: number, sum: number): void {
    this.toDoc(docId, { type: 'head', doc: docId, v, sum });
  }

  /** Queues a document-scoped message, held back while the document is being opened. */
  private toDoc(docId: string, message: ServerMessage): void {
    const doc = this.docs.get(docId);
    if (doc === undefined) return;
    if (doc.held !== undefined) doc.held.push({ kind: 'message', message });
    else this.outbox.message(message);
  }
}
