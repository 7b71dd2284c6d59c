/**
 * One client connection's side of the protocol (docs/protocol.md), independent of the socket:
 * it takes frames through {@link Session.receive} and writes through a {@link Transport}.
 *
 * Outgoing messages are queued and written once per event-loop turn as one frame (a single
 * message, or an array of them), so a burst of ops to a client costs one frame. Messages about
 * a document being opened are held back until its `opened` answer has gone out, and ops the
 * answer already covered are dropped, so every op reaches the client exactly once, in order.
 */
import { randomUUID } from 'node:crypto';
import type { Component, SelectionRange } from '../ot/index.js';
import { ErrorCode, OtterError } from '../protocol/errors.js';
import {
  CloseCode,
  type ClientMessage,
  type ErrorRef,
  PROTOCOL_VERSION,
  type ServerMessage,
} from '../protocol/messages.js';
import { ProtocolError, parseClientMessage } from '../protocol/parse.js';
import type { RoomMember, Rooms } from './rooms.js';
import type { Sequencer } from './sequencer.js';
import type { OpRecord } from './store.js';

/** The socket side of a session. */
export interface Transport {
  /** Writes one text frame. */
  send(frame: string): void;
  /** Closes the connection with a WebSocket close code. */
  close(code: number, reason: string): void;
}

/** Per-session limits; every field has a default in {@link SESSION_DEFAULTS}. */
export interface SessionOptions {
  /** Malformed messages tolerated before closing with 4400. */
  maxBadMessages: number;
  /** Minimum ms between two presence broadcasts of one connection on one document. */
  presenceInterval: number;
}

/** Defaults of {@link SessionOptions}. */
export const SESSION_DEFAULTS: SessionOptions = { maxBadMessages: 20, presenceInterval: 50 };

/** What the session held back for a document while its `opened` answer was being prepared. */
type Held = { kind: 'record'; record: OpRecord; json: string } | { kind: 'message'; message: ServerMessage };

interface OpenDoc {
  /** Undefined once open; the messages held back while opening. */
  held: Held[] | undefined;
  /** Presence throttle: time of the last broadcast and the update waiting for its turn. */
  lastPresence: number;
  waiting: { v: number; selection: SelectionRange[] | null } | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Pieces of the next frame: serialized messages. */
type Piece = { json: string } | { opsDoc: string; entries: string[] };

/** See the file comment. */
export class Session implements RoomMember {
  readonly connectionId = randomUUID();
  clientId: string | undefined;
  private readonly docs = new Map<string, OpenDoc>();
  private pieces: Piece[] = [];
  private flushScheduled = false;
  private badMessages = 0;
  private closed = false;

  /**
   * @param transport where frames go; @param sequencer the document authority; @param rooms
   * fan-out; @param user the authenticated user (undefined without auth); @param options limits.
   */
  constructor(
    private readonly transport: Transport,
    private readonly sequencer: Sequencer,
    private readonly rooms: Rooms,
    readonly user: string | undefined = undefined,
    private readonly options: SessionOptions = SESSION_DEFAULTS,
  ) {}

  /** Number of documents this connection has open. */
  get openDocuments(): number {
    return this.docs.size;
  }

  /** Handles one incoming text frame. Never throws. */
  receive(data: string): void {
    if (this.closed) return;
    let msg: ClientMessage;
    try {
      msg = parseClientMessage(data);
    } catch (e) {
      const err = e instanceof ProtocolError ? e : new ProtocolError(ErrorCode.BadMessage, 'unreadable message');
      this.refuse(err.code, err.message, err.ref);
      return;
    }
    if (msg.type !== 'hello' && this.clientId === undefined) {
      this.refuse(ErrorCode.BadRequest, 'send hello first', { type: msg.type });
      return;
    }
    switch (msg.type) {
      case 'hello':
        this.hello(msg.protocol, msg.clientId);
        return;
      case 'open':
        void this.open(msg.doc, msg.v);
        return;
      case 'submit':
        this.submit(msg.doc, msg.v, msg.seq, msg.op);
        return;
      case 'presence':
        this.presence(msg.doc, msg.v, msg.selection);
        return;
      case 'close':
        this.closeDoc(msg.doc);
        this.queue({ type: 'closed', doc: msg.doc });
        return;
      case 'ping':
        this.queue({ type: 'pong' });
        return;
    }
  }

  /** The connection is gone: leave every room. Idempotent. */
  disconnected(): void {
    if (this.closed) return;
    this.closed = true;
    for (const docId of [...this.docs.keys()]) this.closeDoc(docId);
  }

  /** Sends an error reply; too many of them close the connection with 4400. */
  private refuse(code: ErrorCode, message: string, ref?: ErrorRef): void {
    const hasRef = ref !== undefined && Object.keys(ref).length > 0;
    this.queue({ type: 'error', code, message, ...(hasRef ? { ref } : {}) });
    if (++this.badMessages > this.options.maxBadMessages) {
      this.flush();
      this.transport.close(CloseCode.TooManyBadMessages, 'too many malformed messages');
      this.disconnected();
    }
  }

  private hello(protocol: number, clientId: string | undefined): void {
    if (protocol !== PROTOCOL_VERSION) {
      this.queue({
        type: 'error',
        code: ErrorCode.UnsupportedProtocol,
        message: `this server speaks protocol ${PROTOCOL_VERSION}, not ${protocol}`,
        ref: { type: 'hello' },
      });
      this.flush();
      this.transport.close(CloseCode.ProtocolVersion, 'unsupported protocol version');
      this.disconnected();
      return;
    }
    if (this.clientId !== undefined) {
      this.refuse(ErrorCode.BadRequest, 'hello was already sent', { type: 'hello' });
      return;
    }
    this.clientId = clientId ?? randomUUID();
    this.queue({ type: 'welcome', protocol: PROTOCOL_VERSION, connectionId: this.connectionId, clientId: this.clientId });
  }

  private async open(docId: string, from: number | undefined): Promise<void> {
    const clientId = this.clientId as string;
    const doc: OpenDoc = { held: [], lastPresence: 0, waiting: undefined, timer: undefined };
    const previous = this.docs.get(docId);
    if (previous?.timer !== undefined) clearTimeout(previous.timer);
    this.docs.set(docId, doc);
    this.rooms.join(docId, this);
    try {
      const result = await this.sequencer.open(docId, clientId, from);
      if (this.docs.get(docId) !== doc) return; // closed or re-opened meanwhile
      this.rooms.observe(docId, result.version);
      const opened: ServerMessage =
        'text' in result
          ? { type: 'opened', doc: docId, v: result.version, seq: result.seq, text: result.text }
          : {
              type: 'opened',
              doc: docId,
              v: result.version,
              seq: result.seq,
              ops: result.ops.map((r) => ({
                v: r.version,
                op: r.op,
                ...(r.author === undefined ? {} : { author: r.author }),
                ...(r.clientId === clientId ? { seq: r.seq } : {}),
              })),
            };
      this.queue(opened);
      const held = doc.held ?? [];
      doc.held = undefined;
      for (const h of held) {
        if (h.kind === 'message') this.queue(h.message);
        else if (h.record.version > result.version) this.deliver(docId, h.record, h.json);
      }
      this.rooms.sendPresences(docId, this);
    } catch (e) {
      if (this.docs.get(docId) === doc) this.closeDoc(docId);
      this.sendError(e, { type: 'open', doc: docId });
    }
  }

  private submit(docId: string, v: number, seq: number, op: Component[]): void {
    const doc = this.docs.get(docId);
    if (doc === undefined) {
      this.refuse(ErrorCode.NotOpen, `document ${JSON.stringify(docId)} is not open on this connection`, {
        type: 'submit',
        doc: docId,
        seq,
      });
      return;
    }
    this.sequencer
      .submit({ docId, clientId: this.clientId as string, seq, baseVersion: v, op, author: this.user })
      .then(
        (result) => {
          // A fresh op is acknowledged when its commit is delivered; a duplicate is not
          // delivered again, so it is acknowledged here.
          if (result.duplicate) this.toDoc(docId, { type: 'ack', doc: docId, seq, v: result.version });
        },
        (e: unknown) => this.sendError(e, { type: 'submit', doc: docId, seq }),
      );
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
    this.rooms.setPresence(docId, this, w.v, w.selection);
  }

  private closeDoc(docId: string): void {
    const doc = this.docs.get(docId);
    if (doc === undefined) return;
    if (doc.timer !== undefined) clearTimeout(doc.timer);
    this.docs.delete(docId);
    this.rooms.leave(docId, this);
  }

  private sendError(e: unknown, ref: ErrorRef): void {
    if (e instanceof OtterError) {
      this.queue({ type: 'error', code: e.code, message: e.message, ref });
    } else {
      this.queue({ type: 'error', code: ErrorCode.StorageFailed, message: 'internal error; retry', ref });
    }
  }

  /** @inheritdoc */
  deliver(docId: string, record: OpRecord, json: string): void {
    const doc = this.docs.get(docId);
    if (doc === undefined) return;
    if (doc.held !== undefined) {
      doc.held.push({ kind: 'record', record, json });
      return;
    }
    if (record.clientId === this.clientId) {
      this.queue({ type: 'ack', doc: docId, seq: record.seq, v: record.version });
      return;
    }
    const last = this.pieces[this.pieces.length - 1];
    if (last !== undefined && 'opsDoc' in last && last.opsDoc === docId) last.entries.push(json);
    else this.push({ opsDoc: docId, entries: [json] });
  }

  /** @inheritdoc */
  deliverPresence(docId: string, id: string, user: string | undefined, v: number, selection: SelectionRange[] | null): void {
    this.toDoc(docId, { type: 'presence', doc: docId, id, v, selection, ...(user === undefined ? {} : { user }) });
  }

  /** @inheritdoc */
  deliverLeft(docId: string, id: string): void {
    this.toDoc(docId, { type: 'left', doc: docId, id });
  }

  /** Queues a document-scoped message, held back while the document is being opened. */
  private toDoc(docId: string, message: ServerMessage): void {
    const doc = this.docs.get(docId);
    if (doc === undefined) return;
    if (doc.held !== undefined) doc.held.push({ kind: 'message', message });
    else this.queue(message);
  }

  private queue(message: ServerMessage): void {
    this.push({ json: JSON.stringify(message) });
  }

  private push(piece: Piece): void {
    if (this.closed) return;
    this.pieces.push(piece);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes everything queued as one frame. */
  flush(): void {
    this.flushScheduled = false;
    const pieces = this.pieces;
    if (pieces.length === 0) return;
    this.pieces = [];
    const parts = pieces.map((p) =>
      'json' in p ? p.json : `{"type":"ops","doc":${JSON.stringify(p.opsDoc)},"ops":[${p.entries.join(',')}]}`,
    );
    this.transport.send(parts.length === 1 ? (parts[0] as string) : `[${parts.join(',')}]`);
  }
}
