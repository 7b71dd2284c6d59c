/**
 * A raw protocol client for tests: a bare `ws` socket speaking the wire protocol
 * (docs/protocol.md) by hand, so a test controls every frame, including malformed and hostile
 * ones. It keeps every frame and every server message (batched frames flattened) and lets a
 * test wait, always bounded, for the message it expects.
 *
 * Every socket made by {@link RawClient.connect} or {@link RawClient.attempt} is remembered until
 * {@link RawClient.terminateAll}; call it after each test.
 */
import type http from 'node:http';
import { type ClientOptions, type RawData, WebSocket } from 'ws';
import type { Component } from '../../src/ot/index.js';
import type { ServerMessage } from '../../src/protocol/messages.js';
import { within } from './wait.js';

/** A server message as received: untrusted, checked by the tests, not by a parser. */
export type Received = ServerMessage;

/** The server message of type `K`. */
export type ReceivedOf<K extends Received['type']> = Extract<Received, { type: K }>;

/** How to connect: the `ws` client's options, and the subprotocols to offer. */
export interface RawConnectOptions extends ClientOptions {
  /** Subprotocols offered; none by default. */
  protocols?: string | string[];
  /** Bound of the upgrade, in ms; default 10 s. */
  ms?: number;
}

/** The outcome of an upgrade attempt: a connected client, or the HTTP status and body that refused it. */
export type Attempt = { ok: true; client: RawClient } | { ok: false; status: number; body: string };

/** What to wait for with {@link RawClient.next}. */
export interface NextOptions {
  /** Names the awaited message in the error on timeout. */
  what?: string;
  /** Index in {@link RawClient.messages} of the first message to look at; default: the cursor. */
  from?: number;
  /** Bound of the wait, in ms; default 5 s. */
  ms?: number;
}

/** Every socket made and not yet terminated by {@link RawClient.terminateAll}. */
const sockets = new Set<WebSocket>();

/** The text of a message the `ws` package delivered, whatever form its data came in. */
export function textOf(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString();
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString();
  return data.toString();
}

/** See the file comment. */
export class RawClient {
  /** Every message received, in order; an unparseable frame appears as `{ type: '<unparseable>', text }`. */
  readonly messages: Received[] = [];
  /** Every frame received, as text (a binary frame as '<binary>'). */
  readonly frames: string[] = [];
  /** The close code and reason, once closed. */
  closed: { code: number; reason: string } | undefined;
  /** Index of the first message after the last one {@link next} returned. */
  private cursor = 0;
  private readonly waiters = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const text = isBinary ? '<binary>' : textOf(data);
      this.frames.push(text);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        value = { type: '<unparseable>', text };
      }
      for (const m of Array.isArray(value) ? value : [value]) this.messages.push(m as Received);
      this.wake();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    ws.on('error', () => {}); // a close event follows
  }

  /**
   * Tries to open a WebSocket to `url`; resolves with the client once open, or with the HTTP
   * status and body of a refused upgrade. Rejects on any other failure or after `options.ms`.
   */
  static attempt(url: string, options: RawConnectOptions = {}): Promise<Attempt> {
    const { protocols, ms = 10_000, ...rest } = options;
    const ws = new WebSocket(url, protocols ?? [], rest);
    sockets.add(ws);
    return within(
      new Promise<Attempt>((resolve, reject) => {
        const client = new RawClient(ws);
        ws.once('open', () => resolve({ ok: true, client }));
        ws.once('unexpected-response', (_req: http.ClientRequest, res: http.IncomingMessage) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ ok: false, status: res.statusCode ?? 0, body }));
          res.on('error', () => resolve({ ok: false, status: res.statusCode ?? 0, body }));
        });
        ws.once('error', reject);
      }),
      ms,
      `connecting to ${url}`,
    );
  }

  /** Connects to `url`; resolves once the socket is open, rejects if the upgrade is refused. */
  static async connect(url: string, options: RawConnectOptions = {}): Promise<RawClient> {
    const a = await RawClient.attempt(url, options);
    if (!a.ok) throw new Error(`the upgrade to ${url} was refused with HTTP ${a.status}: ${a.body}`);
    return a.client;
  }

  /** Terminates every socket made so far (no close frame). */
  static terminateAll(): void {
    for (const ws of sockets) ws.terminate();
    sockets.clear();
  }

  private wake(): void {
    for (const w of this.waiters) w();
  }

  /** True while the socket is open. */
  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** The messages after the last one {@link next} returned. */
  get unread(): Received[] {
    return this.messages.slice(this.cursor);
  }

  /** Sends `message` as JSON in one text frame. */
  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  /** Sends `text` as it is, in one text frame. */
  sendText(text: string): void {
    this.ws.send(text);
  }

  /** Sends `data` in one binary frame. */
  sendBinary(data: Buffer): void {
    this.ws.send(data, { binary: true });
  }

  /**
   * Waits for the first message at index ≥ `from` (default: the cursor, just after the last
   * message `next` returned) that satisfies `match`; moves the cursor past it and returns it.
   * Rejects after `ms`, or as soon as the socket is closed without such a message.
   */
  next<T extends Received = Received>(match: (m: Received) => boolean, options: NextOptions = {}): Promise<T> {
    const { what = 'a matching message', from = this.cursor, ms = 5000 } = options;
    const find = (): T | undefined => {
      for (let i = from; i < this.messages.length; i++) {
        const m = this.messages[i] as Received;
        if (match(m)) {
          this.cursor = Math.max(this.cursor, i + 1);
          return m as T;
        }
      }
      return undefined;
    };
    const seen = (): string => JSON.stringify(this.messages.slice(from)).slice(0, 2000);
    return new Promise<T>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      const check = (): void => {
        const m = find();
        if (m !== undefined) {
          done();
          resolve(m);
        } else if (this.closed !== undefined) {
          done();
          reject(new Error(`the socket closed (${this.closed.code}) before ${what}; received: ${seen()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; received: ${seen()}`));
      }, ms);
      this.waiters.add(check);
      check();
    });
  }

  /** {@link next} for a message of `type` whose fields include `fields`. */
  nextOf<K extends Received['type']>(type: K, fields: Record<string, unknown> = {}, options: NextOptions = {}): Promise<ReceivedOf<K>> {
    const record = (m: Received): Record<string, unknown> => m as unknown as Record<string, unknown>;
    return this.next((m) => m.type === type && Object.entries(fields).every(([k, v]) => record(m)[k] === v), {
      what: `${type}${Object.keys(fields).length === 0 ? '' : ` with ${JSON.stringify(fields)}`}`,
      ...options,
    });
  }

  /** Says hello (with `clientId` if given); resolves with the welcome. */
  hello(clientId?: string): Promise<ReceivedOf<'welcome'>> {
    const from = this.messages.length;
    this.send(clientId === undefined ? { type: 'hello', protocol: 1 } : { type: 'hello', protocol: 1, clientId });
    return this.nextOf('welcome', {}, { from });
  }

  /** Opens `doc` (from version `v` if given); resolves with the answer: `opened`, or an error about `doc`. */
  open(doc: string, v?: number): Promise<ReceivedOf<'opened'> | ReceivedOf<'error'>> {
    const from = this.messages.length;
    this.send(v === undefined ? { type: 'open', doc } : { type: 'open', doc, v });
    return this.next((m) => (m.type === 'opened' && m.doc === doc) || (m.type === 'error' && m.ref?.doc === doc), {
      what: `the answer to opening ${doc}`,
      from,
    });
  }

  /** Opens `doc` (from version `v` if given); resolves with `opened`, rejects with a refusal. */
  async opened(doc: string, v?: number): Promise<ReceivedOf<'opened'>> {
    const answer = await this.open(doc, v);
    if (answer.type !== 'opened') throw new Error(`opening ${doc} was refused: ${JSON.stringify(answer)}`);
    return answer;
  }

  /**
   * Submits `op` as `seq` on version `v` of `doc`; resolves with the answer: its ack, or an
   * error about that seq of `doc` (or about no request in particular).
   */
  submit(doc: string, v: number, seq: number, op: Component[]): Promise<ReceivedOf<'ack'> | ReceivedOf<'error'>> {
    const from = this.messages.length;
    this.send({ type: 'submit', doc, v, seq, op });
    return this.next(
      (m) =>
        (m.type === 'ack' && m.doc === doc && m.seq === seq) ||
        (m.type === 'error' && (m.ref === undefined || (m.ref.seq === seq && (m.ref.doc ?? doc) === doc))),
      { what: `the answer to submit ${doc}#${seq}`, from },
    );
  }

  /** Submits as {@link submit}; resolves with the acknowledged version, rejects with a refusal. */
  async submitAcked(doc: string, v: number, seq: number, op: Component[]): Promise<number> {
    const answer = await this.submit(doc, v, seq, op);
    if (answer.type !== 'ack') throw new Error(`submit ${doc}#${seq} was refused: ${JSON.stringify(answer)}`);
    return answer.v;
  }

  /** Sends a ping and waits for the pong: proves the connection is open and answering. */
  async ping(ms = 5000): Promise<void> {
    const from = this.messages.length;
    this.send({ type: 'ping' });
    await this.nextOf('pong', {}, { from, ms });
  }

  /** The errors received so far. */
  errors(): Array<ReceivedOf<'error'>> {
    return this.messages.filter((m): m is ReceivedOf<'error'> => m.type === 'error');
  }

  /** The op entries received so far for `doc`, from `ops` messages. */
  opsOf(doc: string): ReceivedOf<'ops'>['ops'][number][] {
    return this.messages.flatMap((m) => (m.type === 'ops' && m.doc === doc ? m.ops : []));
  }

  /** Waits until the socket is closed; resolves with its close code and reason. */
  waitClosed(ms = 5000): Promise<{ code: number; reason: string }> {
    return within(
      new Promise<{ code: number; reason: string }>((resolve) => {
        const check = (): void => {
          if (this.closed === undefined) return;
          this.waiters.delete(check);
          resolve(this.closed);
        };
        this.waiters.add(check);
        check();
      }),
      ms,
      'the socket closing',
    );
  }

  /** Closes the socket with `code` (a close frame, a clean close). */
  close(code = 1000): void {
    this.ws.close(code);
  }

  /** Destroys the connection at once, without a close frame. */
  terminate(): void {
    this.ws.terminate();
  }
}
