/**
 * Test doubles for the client: a recording document transport, and a fake WebSocket class
 * that records what the client sends and lets a test play the server.
 */
import { CollaborativeDocument, type DocumentOptions, type DocumentTransport } from '../../src/client/document.js';
import type { WebSocketLike } from '../../src/client/connection.js';
import type { ClientMessage, ServerMessage } from '../../src/protocol/messages.js';

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

  constructor(readonly url: string) {
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

  /** Server side: opens and answers the hello. */
  welcome(connectionId = 'c1'): void {
    this.open();
    const hello = this.messages()[0];
    const clientId = hello?.type === 'hello' ? (hello.clientId ?? 'x') : 'x';
    this.receive({ type: 'welcome', protocol: 1, connectionId, clientId });
  }

  /** Server side: the connection closes with `code`. */
  serverClose(code = 1006): void {
    this.readyState = 3;
    (this.onclose as ((e: { code: number; reason: string }) => void) | null)?.({ code, reason: '' });
  }
}
