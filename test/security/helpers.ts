/**
 * Helpers of the security suite: servers with a capturing logger, raw protocol clients over
 * real sockets (127.0.0.1, port 0, the `ws` client), upgrade attempts that report the HTTP
 * status of a refusal, and bounded waits. Not a test file itself.
 *
 * Every wait here is bounded: a hang fails the test with a message naming what was awaited.
 */
import { createHmac } from 'node:crypto';
import type http from 'node:http';
import { WebSocket } from 'ws';
import { type Component, apply } from '../../src/ot/index.js';
import { OTTER_SUBPROTOCOL } from '../../src/server/auth.js';
import type { Logger } from '../../src/server/telemetry.js';
import { type OtterServer, type ServerOptions, createServer } from '../../src/server/ws-server.js';
import { within } from '../support/within.js';

/** Default bound of every wait, in ms. */
export const WAIT = 5000;

/** One captured log call. */
export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  message: string;
}

/** A {@link Logger} that keeps every call; `text()` is everything logged, as one string. */
export class CapturingLogger implements Logger {
  readonly lines: LogLine[] = [];
  debug = (fields: Record<string, unknown>, message: string): void => this.push('debug', fields, message);
  info = (fields: Record<string, unknown>, message: string): void => this.push('info', fields, message);
  warn = (fields: Record<string, unknown>, message: string): void => this.push('warn', fields, message);
  error = (fields: Record<string, unknown>, message: string): void => this.push('error', fields, message);

  private push(level: LogLine['level'], fields: Record<string, unknown>, message: string): void {
    this.lines.push({ level, fields, message });
  }

  /** Every log line serialized (fields and message), as a pino transport would see them. */
  text(): string {
    return this.lines.map((l) => `${l.level} ${safeJson(l.fields)} ${l.message}`).join('\n');
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (v instanceof Error ? { name: v.name, message: v.message, stack: v.stack } : v));
  } catch {
    return String(value);
  }
}

/** Servers started by {@link startServer}, closed by {@link closeAll}. */
const running = new Set<OtterServer>();
/** Clients opened by {@link connect}, terminated by {@link closeAll}. */
const clients = new Set<WebSocket>();

/** Starts a server on 127.0.0.1, port 0, with a capturing logger unless one is given. */
export async function startServer(
  options: ServerOptions = {},
): Promise<{ server: OtterServer; logger: CapturingLogger }> {
  const logger = new CapturingLogger();
  const server = await createServer({ host: '127.0.0.1', port: 0, logger, ...options });
  running.add(server);
  return { server, logger };
}

/** Terminates every client and closes every server of the test (an afterEach hook). */
export async function closeAll(): Promise<void> {
  for (const ws of clients) ws.terminate();
  clients.clear();
  const servers = [...running];
  running.clear();
  await Promise.all(servers.map((s) => within(s.close(), 10_000, 'server.close')));
}

export { within };

/** Polls `cond` every 5 ms until it holds; rejects after `ms`. */
export async function until(cond: () => boolean, what: string, ms = WAIT): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A server message, loosely typed (tests look at raw fields). */
export type Msg = Record<string, unknown> & { type: string };

/** How to reach the server in one upgrade attempt. */
export interface ConnectOptions {
  /** Extra request headers (Authorization…). */
  headers?: Record<string, string>;
  /** Subprotocols offered; default ['otter.v1']. */
  protocols?: string[];
  /** The `Origin` header; none by default. */
  origin?: string;
  /** Query string appended to the URL (without '?'). */
  query?: string;
  /** Path; default '/'. */
  path?: string;
  /** The client's own maxPayload (default: unlimited for big snapshots). */
  maxPayload?: number;
}

/** The outcome of an upgrade attempt: a connected client or the refusal's HTTP status. */
export type Attempt = { ok: true; client: RawClient } | { ok: false; status: number; body: string };

/** Tries to open a WebSocket; resolves with the client or with the HTTP status that refused it. */
export function attempt(server: OtterServer, options: ConnectOptions = {}): Promise<Attempt> {
  const url = `${server.url}${options.path ?? '/'}${options.query === undefined ? '' : `?${options.query}`}`;
  const ws = new WebSocket(url, options.protocols ?? [OTTER_SUBPROTOCOL], {
    // The Origin header is set raw, so that an empty one is sent as such.
    headers: { ...(options.origin === undefined ? {} : { origin: options.origin }), ...options.headers },
    maxPayload: options.maxPayload ?? 0,
  });
  clients.add(ws);
  return within(
    new Promise<Attempt>((resolve, reject) => {
      ws.once('open', () => resolve({ ok: true, client: new RawClient(ws) }));
      ws.once('unexpected-response', (_req: http.ClientRequest, res: http.IncomingMessage) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ ok: false, status: res.statusCode ?? 0, body }));
        res.on('error', () => resolve({ ok: false, status: res.statusCode ?? 0, body }));
      });
      ws.once('error', (e) => reject(e));
    }),
    WAIT,
    `upgrade to ${url}`,
  );
}

/** Opens a WebSocket that must be accepted. */
export async function connect(server: OtterServer, options: ConnectOptions = {}): Promise<RawClient> {
  const a = await attempt(server, options);
  if (!a.ok) throw new Error(`the upgrade was refused with HTTP ${a.status}`);
  return a.client;
}

/** A raw protocol client: sends JSON, keeps every message received (batches flattened). */
export class RawClient {
  /** Every message received, in order. */
  readonly messages: Msg[] = [];
  /** Every frame received, as text (to search for bytes that must never arrive). */
  readonly frames: string[] = [];
  /** The close code, once closed. */
  closeCode: number | undefined;
  readonly closed: Promise<number>;
  private waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => {
      ws.on('close', (code) => {
        this.closeCode = code;
        resolve(code);
        this.wake();
      });
    });
    ws.on('error', () => {}); // a refused or reset connection shows as its close code
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? '' : (data as Buffer).toString();
      this.frames.push(text);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        return;
      }
      for (const m of Array.isArray(value) ? value : [value]) this.messages.push(m as Msg);
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends one message as JSON. */
  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  /** Sends a raw text frame. */
  sendRaw(text: string): void {
    this.ws.send(text);
  }

  /**
   * Waits for a message matching `pred` received at index ≥ `from` (default: any so far);
   * resolves with it. Rejects after `ms`, or when the connection closes first.
   */
  async next(pred: (m: Msg) => boolean, what: string, from = 0, ms = WAIT): Promise<Msg> {
    const deadline = Date.now() + ms;
    for (;;) {
      for (let i = from; i < this.messages.length; i++) {
        const m = this.messages[i] as Msg;
        if (pred(m)) return m;
      }
      if (this.closeCode !== undefined) throw new Error(`connection closed (${this.closeCode}) before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what} did not arrive within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for a message of `type` (and matching `extra` fields) after index `from`. */
  nextOf(type: string, extra: Record<string, unknown> = {}, from = 0, ms = WAIT): Promise<Msg> {
    return this.next(
      (m) => m.type === type && Object.entries(extra).every(([k, v]) => m[k] === v),
      `${type} ${JSON.stringify(extra)}`,
      from,
      ms,
    );
  }

  /** Sends `ping` and waits for its `pong`: a round trip proving the server still answers. */
  async roundTrip(ms = WAIT): Promise<void> {
    const from = this.messages.length;
    this.send({ type: 'ping' });
    await this.nextOf('pong', {}, from, ms);
  }

  /** Says hello (optionally with a clientId) and waits for `welcome`. */
  async hello(clientId?: string): Promise<Msg> {
    const from = this.messages.length;
    this.send(clientId === undefined ? { type: 'hello', protocol: 1 } : { type: 'hello', protocol: 1, clientId });
    return this.nextOf('welcome', {}, from);
  }

  /** Opens `doc` (from version `v` if given) and waits for `opened` or an error about it. */
  async open(doc: string, v?: number): Promise<Msg> {
    const from = this.messages.length;
    this.send(v === undefined ? { type: 'open', doc } : { type: 'open', doc, v });
    return this.next(
      (m) => (m.type === 'opened' && m.doc === doc) || (m.type === 'error' && (m.ref as Msg | undefined)?.doc === doc),
      `opened ${doc}`,
      from,
    );
  }

  /** Submits `op` and waits for its ack or an error about its seq. */
  async submit(doc: string, v: number, seq: number, op: Component[]): Promise<Msg> {
    const from = this.messages.length;
    this.send({ type: 'submit', doc, v, seq, op });
    return this.next(
      (m) =>
        (m.type === 'ack' && m.doc === doc && m.seq === seq) ||
        (m.type === 'error' && (m.ref as Msg | undefined)?.doc === doc && (m.ref as Msg | undefined)?.seq === seq),
      `answer to submit ${doc}#${seq}`,
      from,
    );
  }

  /** Errors received so far. */
  errors(): Msg[] {
    return this.messages.filter((m) => m.type === 'error');
  }

  /** Op entries received so far for `doc` (from `ops` messages). */
  opsOf(doc: string): Array<{ v: number; op: Component[]; author?: string }> {
    const out: Array<{ v: number; op: Component[]; author?: string }> = [];
    for (const m of this.messages) {
      if (m.type === 'ops' && m.doc === doc) out.push(...(m.ops as Array<{ v: number; op: Component[]; author?: string }>));
    }
    return out;
  }

  /** Waits for this connection to close; resolves with the code. */
  waitClosed(ms = WAIT): Promise<number> {
    return within(this.closed, ms, 'the connection closing');
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/** A client that has said hello and opened `doc`; returns it and its `opened` message. */
export async function joined(
  server: OtterServer,
  doc: string,
  options: ConnectOptions & { clientId?: string } = {},
): Promise<{ client: RawClient; opened: Msg }> {
  const client = await connect(server, options);
  await client.hello(options.clientId);
  const opened = await client.open(doc);
  if (opened.type !== 'opened') throw new Error(`open ${doc} was refused: ${JSON.stringify(opened)}`);
  return { client, opened };
}

/** An op inserting `text` at `pos` of a document of length `len`. */
export function ins(len: number, pos: number, text: string): Component[] {
  const op: Component[] = [];
  if (pos > 0) op.push(pos);
  op.push(text);
  if (len - pos > 0) op.push(len - pos);
  return op;
}

/** The text of the document's whole log replayed from the empty document. */
export async function replayOf(server: OtterServer, doc: string): Promise<string> {
  let text = '';
  for (const r of await server.sequencer.getOps(doc, 0)) text = apply(text, r.op);
  return text;
}

// ─── JWT crafting by hand (for tokens jose refuses to make) ─────────────────────────────────

export function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

/** An unsigned token: `alg: none`, empty signature. */
export function algNoneToken(payload: Record<string, unknown>): string {
  return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}.`;
}

/** An HS256 token signed with `secret` as raw bytes (e.g. an RSA public key PEM). */
export function hs256Token(payload: Record<string, unknown>, secret: string | Buffer): string {
  const body = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** Seconds since the epoch. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Object.prototype's own keys now, to compare before/after hostile input. */
export function prototypeKeys(): string[] {
  return Object.getOwnPropertyNames(Object.prototype).sort();
}

/** True if some plain object sees an inherited property no built-in has. */
export function prototypePolluted(): boolean {
  const probe: Record<string, unknown> = {};
  return ['polluted', 'isAdmin', 'x', 'evil'].some((k) => probe[k] !== undefined);
}
