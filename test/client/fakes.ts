/**
 * Test doubles for the client: a recording document transport, and a fake WebSocket class
 * that records what the client sends and lets a test play the server.
 */
import { CollaborativeDocument, type DocumentOptions, type DocumentTransport } from '../../src/client/document.js';
import type { WebSocketLike } from '../../src/client/connection.js';
import { opLength } from '../../src/client/split.js';
import { type Component, apply, transform } from '../../src/ot/index.js';
import type { ErrorCode } from '../../src/protocol/errors.js';
import type { ClientMessage, ServerLimits, ServerMessage, SubmitMessage } from '../../src/protocol/messages.js';

/** The limits a fake server announces unless told otherwise (the real server's defaults). */
export const FAKE_LIMITS: ServerLimits = { maxPayload: 1 << 20, maxOpLength: 1 << 20 };

/** A transport that records every message a document sends. */
export class FakeTransport implements DocumentTransport {
  sent: ClientMessage[] = [];
  up = true;
  detached = false;

  /** @inheritdoc */
  send(message: ClientMessage): boolean {
    if (!this.up) return false;
    this.sent.push(message);
    return true;
  }

  /** @inheritdoc */
  detach(): void {
    this.detached = true;
  }

  /** The messages sent since the last call. */
  take(): ClientMessage[] {
    return this.sent.splice(0);
  }
}

/** A document on a {@link FakeTransport}, opened with a snapshot of `text` at version `v`. */
export function openedDoc(
  text = '',
  v = 0,
  options: DocumentOptions = {},
): { doc: CollaborativeDocument; t: FakeTransport } {
  const t = new FakeTransport();
  const doc = new CollaborativeDocument('d', t, options);
  doc.connected();
  const open = t.take();
  if (JSON.stringify(open) !== JSON.stringify([{ type: 'open', doc: 'd' }])) {
    throw new Error(`unexpected first messages ${JSON.stringify(open)}`);
  }
  doc.receive({ type: 'opened', doc: 'd', v, seq: 0, text });
  t.take();
  return { doc, t };
}

type Handler = ((event: never) => unknown) | null;

/** A fake WebSocket: every instance is kept in `FakeWebSocket.instances`, newest last. */
export class FakeWebSocket implements WebSocketLike {
  static instances: FakeWebSocket[] = [];

  /** The newest instance. */
  static get last(): FakeWebSocket {
    const ws = FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    if (ws === undefined) throw new Error('no FakeWebSocket was created');
    return ws;
  }

  static reset(): void {
    FakeWebSocket.instances = [];
  }

  readyState = 0;
  onopen: Handler = null;
  onmessage: Handler = null;
  onclose: Handler = null;
  onerror: Handler = null;
  readonly sent: string[] = [];
  closedWith: { code?: number | undefined; reason?: string | undefined } | undefined;

  constructor(
    readonly url: string,
    readonly protocols?: string[],
  ) {
    FakeWebSocket.instances.push(this);
  }

  /** @inheritdoc */
  send(data: string): void {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(data);
  }

  /** @inheritdoc */
  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  /** The messages the client sent, parsed. */
  messages(): ClientMessage[] {
    return this.sent.map((s) => JSON.parse(s) as ClientMessage);
  }

  /** Server side: the connection opens. */
  open(): void {
    this.readyState = 1;
    (this.onopen as ((e: unknown) => void) | null)?.({});
  }

  /** Server side: sends one frame holding `message` (or a batch of messages). */
  receive(message: ServerMessage | ServerMessage[] | string): void {
    const data = typeof message === 'string' ? message : JSON.stringify(message);
    (this.onmessage as ((e: { data: unknown }) => void) | null)?.({ data });
  }

  /** Server side: opens and answers the hello, announcing `limits`. */
  welcome(connectionId = 'c1', limits: ServerLimits = FAKE_LIMITS): void {
    this.open();
    const hello = this.messages()[0];
    const clientId = hello?.type === 'hello' ? (hello.clientId ?? 'x') : 'x';
    this.receive({ type: 'welcome', protocol: 1, connectionId, clientId, limits });
  }

  /** Server side: the connection closes with `code`. */
  serverClose(code = 1006): void {
    this.readyState = 3;
    (this.onclose as ((e: { code: number; reason: string }) => void) | null)?.({ code, reason: '' });
  }
}

/** One frame a {@link FakeServer} read: the message and its size in UTF-8 bytes. */
export interface ReadFrame {
  readonly message: ClientMessage;
  readonly bytes: number;
}

/**
 * Plays an Otter server for one client on {@link FakeWebSocket}s: answers `hello` with a
 * `welcome` announcing `limits`, `open` with a snapshot, `submit` like the sequencer
 * (idempotent by seq, rebased over later history with side 'right', a resubmitted seq acked
 * with its original version), `ping`, `auth` and `close`. It records every frame it reads
 * with its byte size and every broken limit in `violations` (answered with `too-large`).
 * `intercept` may answer a message itself (an array of replies; [] drops it).
 */
export class FakeServer {
  text = '';
  history: Component[][] = [];
  /** Version each applied seq produced. */
  readonly applied = new Map<number, number>();
  readonly frames: ReadFrame[] = [];
  readonly violations: string[] = [];
  intercept: ((message: ClientMessage, frame: ReadFrame) => ServerMessage[] | undefined) | undefined;
  private readonly read = new Map<FakeWebSocket, number>();

  constructor(readonly limits: ServerLimits = FAKE_LIMITS) {}

  /** The submits read so far. */
  get submits(): Array<ReadFrame & { message: SubmitMessage }> {
    return this.frames.filter((f): f is ReadFrame & { message: SubmitMessage } => f.message.type === 'submit');
  }

  /** Opens `ws` (the client says hello) and answers until the client is quiet. */
  accept(ws: FakeWebSocket = FakeWebSocket.last): void {
    ws.open();
    this.pump(ws);
  }

  /** Answers every frame `ws` sent since the last call, and what the client sends in reply, until it is quiet. */
  pump(ws: FakeWebSocket = FakeWebSocket.last): void {
    for (;;) {
      const next = this.read.get(ws) ?? 0;
      const data = ws.sent[next];
      if (data === undefined || ws.readyState !== 1) return;
      this.read.set(ws, next + 1);
      const frame: ReadFrame = { message: JSON.parse(data) as ClientMessage, bytes: new TextEncoder().encode(data).length };
      this.frames.push(frame);
      if (frame.bytes > this.limits.maxPayload) {
        this.violations.push(`a frame of ${frame.bytes} bytes`);
        ws.serverClose(1009);
        return;
      }
      const replies = this.intercept?.(frame.message, frame) ?? this.answer(frame.message);
      for (const reply of replies) ws.receive(reply);
    }
  }

  private answer(m: ClientMessage): ServerMessage[] {
    switch (m.type) {
      case 'hello':
        return [{ type: 'welcome', protocol: 1, connectionId: 'c1', clientId: m.clientId ?? 'x', limits: this.limits }];
      case 'open':
        return [{ type: 'opened', doc: m.doc, v: this.history.length, seq: this.applied.size, text: this.text }];
      case 'submit':
        return [this.submit(m)];
      case 'ping':
        return [{ type: 'pong' }];
      case 'auth':
        return [{ type: 'authed' }];
      case 'close':
        return [{ type: 'closed', doc: m.doc }];
      case 'presence':
        return [];
    }
  }

  private submit(m: SubmitMessage): ServerMessage {
    const refuse = (code: ErrorCode, message: string): ServerMessage => ({
      type: 'error',
      code,
      message,
      ref: { type: 'submit', doc: m.doc, seq: m.seq },
    });
    const size = opLength(m.op);
    if (size > this.limits.maxOpLength) {
      this.violations.push(`an op of length ${size}`);
      return refuse('too-large', `op of length ${size}`);
    }
    const done = this.applied.get(m.seq);
    if (done !== undefined) return { type: 'ack', doc: m.doc, seq: m.seq, v: done };
    if (m.seq !== this.applied.size + 1) return refuse('seq-gap', `seq ${m.seq}`);
    let op = m.op;
    for (const past of this.history.slice(m.v)) op = transform(op, past, 'right');
    this.text = apply(this.text, op);
    this.history.push(op);
    this.applied.set(m.seq, this.history.length);
    return { type: 'ack', doc: m.doc, seq: m.seq, v: this.history.length };
  }
}
