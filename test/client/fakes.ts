/**
 * Test doubles for the client's unit tests: a recording document transport, and a fake
 * WebSocket class that records what the client sends and lets a test play the server's side
 * of one socket. Tests of the client against a server use the loopback world
 * (`test/support/world.ts`), with the real server session.
 */
import {
  CollaborativeDocument,
  type DocumentMessage,
  type DocumentOptions,
  type DocumentTransport,
} from '../../src/client/document.js';
import { chainChecksum } from '../../src/protocol/checksum.js';
import type { OpEntry } from '../../src/protocol/messages.js';
import type { WebSocketLike } from '../../src/client/connection.js';
import type { ClientMessage, ServerLimits, ServerMessage } from '../../src/protocol/messages.js';

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

/** The epoch a {@link serve}d document is told its server has. */
export const EPOCH = 'epoch-1';

/** A message as a test writes it: the fields `serve` fills in may be left out. */
type Loose<M> = M extends { type: 'opened' }
  ? Omit<M, 'rid' | 'epoch' | 'sum'> & { rid?: number; epoch?: string; sum?: number }
  : M extends { type: 'ops' }
    ? Omit<M, 'sum'> & { sum?: number }
    : M;

interface Inspectable {
  checksum: number;
  serverVersion: number;
}

/**
 * Hands `message` to `doc` as its server would have written it: an `opened` names the
 * document's current request id and epoch {@link EPOCH}, and ops messages, acks and catch-ups
 * carry the checksums the document itself computes (so these unit tests exercise everything
 * but the checksum check, which the loopback-world tests cover against a real server).
 * Fields the test gives are kept.
 */
export function serve(doc: CollaborativeDocument, message: Loose<DocumentMessage>): void {
  const state = doc as unknown as Inspectable;
  const life = doc.lifecycle;
  const inflight = life.phase === 'closed' ? undefined : life.inflight;
  const outstanding = doc.syncState.kind === 'synchronized' ? undefined : doc.syncState.outstanding;
  /** The checksum the document will compute after `entries`, from its current one. */
  const chained = (entries: readonly OpEntry[]): number => {
    let sum = state.checksum;
    let v = state.serverVersion;
    for (const e of entries) {
      if (e.v <= v) continue;
      sum = chainChecksum(sum, e.op);
      v = e.v;
    }
    return sum;
  };
  switch (message.type) {
    case 'opened': {
      const rid = message.rid ?? (life.phase === 'opening' || life.phase === 'restoring' ? life.rid : undefined);
      const sum = message.sum ?? (message.ops === undefined ? 0 : chained(message.ops));
      doc.receive({ ...message, ...(rid === undefined ? {} : { rid }), epoch: message.epoch ?? EPOCH, sum });
      return;
    }
    case 'ops':
      doc.receive({ ...message, sum: message.sum ?? chained(message.ops) });
      return;
    case 'ack':
      doc.receive(
        message.sum !== undefined || outstanding === undefined || message.seq !== inflight
          ? message
          : { ...message, sum: chainChecksum(state.checksum, outstanding.op) },
      );
      return;
    case 'error': {
      // A refusal of an open or a restore names the current attempt, unless the test says.
      const ref = message.ref;
      const current = life.phase === 'opening' || life.phase === 'restoring' ? life.rid : undefined;
      const about = ref?.type === 'open' || ref?.type === 'restore';
      doc.receive(about && ref?.rid === undefined && current !== undefined ? { ...message, ref: { ...ref, rid: current } } : message);
      return;
    }
    default:
      doc.receive(message as DocumentMessage);
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
  if (open.length !== 1 || open[0]?.type !== 'open' || 'v' in (open[0] ?? {})) {
    throw new Error(`unexpected first messages ${JSON.stringify(open)}`);
  }
  serve(doc, { type: 'opened', doc: 'd', v, seq: 0, text });
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

  /**
   * Server side: answers the last `open` of `doc` the client sent (naming its request id,
   * incarnation {@link EPOCH} and checksum 0, which a document holding a snapshot from here
   * has too) with `text` or catch-up `ops`.
   */
  answerOpen(doc: string, answer: { v: number; seq?: number; text?: string; ops?: [] }): void {
    const open = this.messages()
      .filter((m): m is Extract<ClientMessage, { type: 'open' }> => m.type === 'open' && m.doc === doc)
      .at(-1);
    this.receive({ type: 'opened', doc, rid: open?.rid ?? 0, epoch: EPOCH, sum: 0, seq: 0, ...answer });
  }

  /** Server side: the connection closes with `code`. */
  serverClose(code = 1006): void {
    this.readyState = 3;
    (this.onclose as ((e: { code: number; reason: string }) => void) | null)?.({ code, reason: '' });
  }
}
