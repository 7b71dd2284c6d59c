/**
 * One client connection's side of the protocol (docs/protocol.md), independent of the socket:
 * it takes frames through {@link Session.receive} and writes through a {@link Transport}.
 *
 * Every frame is rate-checked, then parsed by the one validating parser; nothing reaches the
 * sequencer unchecked. Messages about a document being opened are held back until its
 * `opened` answer has gone out, and ops that answer already covered are dropped, so every op
 * reaches the client exactly once, in order. A client only ever names documents it opened,
 * and it can only open documents `authorize` lets it read.
 */
import { randomUUID } from 'node:crypto';
import type { Component, SelectionRange } from '../ot/index.js';
import { ErrorCode, OtterError } from '../protocol/errors.js';
import {
  CloseCode,
  type ErrorRef,
  type OpEntry,
  type OpenedMessage,
  PROTOCOL_VERSION,
  type RestoreMessage,
  type ServerMessage,
} from '../protocol/messages.js';
import { ProtocolError, parseClientMessage } from '../protocol/parse.js';
import type { Identity } from './auth.js';
import { Outbox } from './outbox.js';
import type { RoomMember, Rooms } from './rooms.js';
import type { OpenClaim, OpenResult, Sequencer } from './sequencer.js';
import type { OpRecord } from './store.js';
import type { Logger, Telemetry } from './telemetry.js';
import { TokenBucket } from './token-bucket.js';

/** The socket side of a session. */
export interface Transport {
  /** Writes one text frame. */
  send(frame: string): void;
  /** Closes the connection with a WebSocket close code. */
  close(code: number, reason: string): void;
}

/** What a user may do with a document. */
export type Access = 'none' | 'read' | 'write';

/** Decides what `user` (undefined without authentication) may do with `docId`. */
export type Authorize = (user: string | undefined, docId: string) => Access | Promise<Access>;

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
  /** Ms a new connection has to say hello and open a document; 0 = no deadline. */
  openDeadline: number;
  /** Largest frame accepted, in bytes (announced to clients; enforced by the socket layer). */
  maxPayload: number;
  /**
   * Largest catch-up sent in answer to an open (its JSON, in UTF-16 code units): a client
   * further behind gets the head's text instead and merges its unsent edits by a diff, so that
   * no answer outgrows what a connection may have buffered. Default 16 Mi: with the server's
   * default `maxBufferedAmount` (8 MiB, a connection dropped above 8 times that), even 3
   * UTF-8 bytes per code unit stay under that cap.
   */
  maxCatchUpBytes: number;
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
};

/** What every session of one server shares. */
export interface SessionContext {
  readonly sequencer: Sequencer;
  readonly rooms: Rooms;
  readonly telemetry: Telemetry;
  readonly logger: Logger;
  readonly options: SessionOptions;
  readonly authorize: Authorize;
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
  readonly access: Access;
  /** Undefined once open; the messages held back while opening. */
  held: Held[] | undefined;
  /** A restore whose pieces are arriving, if any. */
  upload: Upload | undefined;
  /** Presence throttle: time of the last broadcast and the update waiting for its turn. */
  lastPresence: number;
  waiting: { v: number; selection: SelectionRange[] | null } | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Longest timer Node accepts. */
const MAX_TIMER = 2 ** 31 - 1;

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
      return { ...head, lost: true, ...(r === undefined ? {} : { recovered: { v: r.version, sum: r.checksum } }) };
    }
    case 'ops':
      return {
        ...head,
        ops: result.ops.map(
          (r): OpEntry => ({
            v: r.version,
            op: r.op,
            ...(r.author === undefined ? {} : { author: r.author }),
            ...(r.clientId === key && r.seq > 0 ? { seq: r.seq } : {}),
          }),
        ),
      };
  }
}

/** See the file comment. */
export class Session implements RoomMember {
  readonly connectionId = randomUUID();
  readonly user: string | undefined;
  /** The client id the client chose (or was given), once it said hello. */
  clientId: string | undefined;
  /** The sequencer's client key: the client id scoped to the user, so no one can reuse another's. */
  private key: string | undefined;
  private expiresAt: number | undefined;
  private readonly docs = new Map<string, OpenDoc>();
  private readonly outbox: Outbox;
  private readonly messages: TokenBucket;
  private readonly bytes: TokenBucket;
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
    this.outbox = new Outbox((frame) => transport.send(frame));
    const now = Date.now();
    this.messages = new TokenBucket(this.options.messagesPerSecond, this.options.messagesPerSecond * 2, now);
    this.bytes = new TokenBucket(this.options.bytesPerSecond, this.options.bytesBurst, now);
    this.setExpiry(identity?.expiresAt);
    if (this.options.openDeadline > 0) {
      this.deadlineTimer = setTimeout(() => {
        if (this.docs.size === 0) this.end(CloseCode.OpenDeadline, 'no document opened in time');
      }, this.options.openDeadline);
      this.deadlineTimer.unref?.();
    }
  }

  /** Number of documents this connection has open. */
  get openDocuments(): number {
    return this.docs.size;
  }

  /** Handles one incoming text frame of `bytes` bytes. Never throws. */
  receive(data: string, bytes = data.length): void {
    if (this.closed) return;
    const now = Date.now();
    if (!this.messages.take(1, now) || !this.bytes.take(bytes, now)) {
      this.context.telemetry.opRejected(ErrorCode.RateLimited);
      if (++this.rateStrikes > this.options.maxRateStrikes) {
        this.end(CloseCode.RateLimited, 'rate limit exceeded');
      } else {
        this.outbox.message({ type: 'error', code: ErrorCode.RateLimited, message: 'slow down: the message was dropped' });
      }
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
    switch (msg.type) {
      case 'hello':
        this.hello(msg.protocol, msg.clientId);
        return;
      case 'open': {
        const claim = msg.epoch !== undefined && msg.sum !== undefined ? { epoch: msg.epoch, checksum: msg.sum } : undefined;
        void this.open(msg.doc, msg.rid, msg.v, claim);
        return;
      }
      case 'restore':
        this.restore(msg);
        return;
      case 'diverged':
        this.context.telemetry.diverged();
        this.context.logger.warn({ connectionId: this.connectionId, doc: msg.doc, version: msg.v }, 'client diverged and resyncs');
        return;
      case 'submit':
        this.submit(msg.doc, msg.v, msg.seq, msg.op);
        return;
      case 'presence':
        this.presence(msg.doc, msg.v, msg.selection);
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

  /** The connection is gone: leave every room and stop every timer. Idempotent. */
  disconnected(): void {
    if (this.closed) return;
    this.closed = true;
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

  private async open(docId: string, rid: number | undefined, from: number | undefined, claim: OpenClaim | undefined): Promise<void> {
    const ref: ErrorRef = rid === undefined ? { type: 'open', doc: docId } : { type: 'open', doc: docId, rid };
    if (!this.docs.has(docId) && this.docs.size >= this.options.maxDocuments) {
      this.deny(ErrorCode.TooManyDocuments, `a connection may have at most ${this.options.maxDocuments} documents open`, ref);
      return;
    }
    if (!this.startRequest(ref)) return;
    try {
      const access = await this.context.authorize(this.user, docId);
      if (this.closed) return;
      if (access !== 'read' && access !== 'write') {
        this.closeDoc(docId);
        this.deny(ErrorCode.Forbidden, `no access to document ${JSON.stringify(docId)}`, ref);
        return;
      }
      // Checked again: opens sent together all passed the first check while authorize ran.
      // openAuthorized registers the document before its first await, so this is exact.
      if (!this.docs.has(docId) && this.docs.size >= this.options.maxDocuments) {
        this.deny(ErrorCode.TooManyDocuments, `a connection may have at most ${this.options.maxDocuments} documents open`, ref);
        return;
      }
      await this.openAuthorized(docId, rid, from, claim, access);
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
  ): Promise<void> {
    const key = this.key as string;
    const doc: OpenDoc = { access, held: [], upload: undefined, lastPresence: 0, waiting: undefined, timer: undefined };
    const previous = this.docs.get(docId);
    if (previous?.timer !== undefined) clearTimeout(previous.timer);
    this.docs.set(docId, doc);
    clearTimeout(this.deadlineTimer);
    this.context.rooms.join(docId, this);
    try {
      let result = await this.context.sequencer.open(docId, key, from, claim);
      if (this.docs.get(docId) !== doc) return; // closed or re-opened meanwhile
      let opened = JSON.stringify(openedMessage(docId, rid, result, key));
      if (result.kind === 'ops' && opened.length > this.context.options.maxCatchUpBytes) {
        this.context.logger.info({ connectionId: this.connectionId, doc: docId, from, bytes: opened.length }, 'catch-up too large: a snapshot instead');
        result = await this.context.sequencer.open(docId, key);
        if (this.docs.get(docId) !== doc) return;
        opened = JSON.stringify(openedMessage(docId, rid, result, key));
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
      this.outbox.messageJson(opened);
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

  private submit(docId: string, v: number, seq: number, op: Component[]): void {
    const ref: ErrorRef = { type: 'submit', doc: docId, seq };
    const doc = this.docs.get(docId);
    if (doc === undefined) {
      this.refuse(ErrorCode.NotOpen, `document ${JSON.stringify(docId)} is not open on this connection`, ref);
      return;
    }
    if (doc.access !== 'write') {
      this.deny(ErrorCode.ReadOnly, `document ${JSON.stringify(docId)} is read-only for this user`, ref);
      return;
    }
    if (!this.startRequest(ref)) return;
    const start = performance.now();
    this.context.sequencer
      .submit({ docId, clientId: this.key as string, seq, baseVersion: v, op, author: this.user })
      .then(
        (result) => {
          // A fresh op is acknowledged when its commit is delivered; a duplicate is not
          // delivered again, so it is acknowledged here.
          if (!result.duplicate) this.context.telemetry.opApplied(result.depth, (performance.now() - start) / 1000);
          else if (result.checksum === undefined) this.toDoc(docId, { type: 'ack', doc: docId, seq, v: result.version });
          else this.toDoc(docId, { type: 'ack', doc: docId, seq, v: result.version, sum: result.checksum });
        },
        (e: unknown) => this.sendError(e, ref),
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

  private presence(docId: string, v: number, selection: SelectionRange[] | null): void {
    const doc = this.docs.get(docId);
    if (doc === undefined) {
      this.refuse(ErrorCode.NotOpen, `document ${JSON.stringify(docId)} is not open on this connection`, {
        type: 'presence',
        doc: docId,
      });
      return;
    }
    doc.waiting = { v, selection };
    if (doc.timer !== undefined) return;
    const wait = doc.lastPresence + this.options.presenceInterval - Date.now();
    if (wait <= 0) this.sendPresence(docId, doc);
    else {
      doc.timer = setTimeout(() => {
        doc.timer = undefined;
        if (this.docs.get(docId) === doc) this.sendPresence(docId, doc);
      }, wait);
    }
  }

  private sendPresence(docId: string, doc: OpenDoc): void {
    const w = doc.waiting;
    if (w === undefined) return;
    doc.waiting = undefined;
    doc.lastPresence = Date.now();
    this.context.rooms.setPresence(docId, this, w.v, w.selection);
  }

  private closeDoc(docId: string): void {
    const doc = this.docs.get(docId);
    if (doc === undefined) return;
    if (doc.timer !== undefined) clearTimeout(doc.timer);
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
      this.outbox.message({ type: 'ack', doc: docId, seq: record.seq, v: record.version, sum: record.checksum });
    } else this.outbox.opEntry(docId, json, record.checksum);
  }

  /** @inheritdoc */
  deliverPresence(docId: string, id: string, user: string | undefined, v: number, selection: SelectionRange[] | null): void {
    this.toDoc(docId, { type: 'presence', doc: docId, id, v, selection, ...(user === undefined ? {} : { user }) });
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
