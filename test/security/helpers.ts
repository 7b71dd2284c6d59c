/**
 * Helpers of the security suite: servers with a capturing logger, raw protocol clients over
 * real sockets (127.0.0.1, port 0) offering `otter.v1` with an unlimited payload, upgrade
 * attempts that report the HTTP status of a refusal, hand-crafted tokens and prototype
 * pollution probes. Not a test file itself.
 */
import { createHmac } from 'node:crypto';
import { apply } from '../../src/ot/index.js';
import { OTTER_SUBPROTOCOL } from '../../src/server/auth.js';
import type { Logger } from '../../src/server/telemetry.js';
import { type OtterServer, type ServerOptions, createServer } from '../../src/server/ws-server.js';
import { type Attempt, RawClient, type Received, type ReceivedOf } from '../support/raw-client.js';
import { within } from '../support/wait.js';

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

/** Starts a server on 127.0.0.1, port 0, with a capturing logger unless one is given. */
export async function startServer(
  options: ServerOptions = {},
): Promise<{ server: OtterServer; logger: CapturingLogger }> {
  const logger = new CapturingLogger();
  const server = await createServer({ host: '127.0.0.1', port: 0, logger, ...options });
  running.add(server);
  return { server, logger };
}

/** Terminates every raw client and closes every server of the test (an afterEach hook). */
export async function closeAll(): Promise<void> {
  RawClient.terminateAll();
  const servers = [...running];
  running.clear();
  await Promise.all(servers.map((s) => within(s.close(), 10_000, 'server.close')));
}

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

/** Tries to open a WebSocket; resolves with the client or with the HTTP status that refused it. */
export function attempt(server: OtterServer, options: ConnectOptions = {}): Promise<Attempt> {
  const url = `${server.url}${options.path ?? '/'}${options.query === undefined ? '' : `?${options.query}`}`;
  return RawClient.attempt(url, {
    protocols: options.protocols ?? [OTTER_SUBPROTOCOL],
    // The Origin header is set raw, so that an empty one is sent as such.
    headers: { ...(options.origin === undefined ? {} : { origin: options.origin }), ...options.headers },
    maxPayload: options.maxPayload ?? 0,
    ms: 5000,
  });
}

/** Opens a WebSocket that must be accepted. */
export async function connect(server: OtterServer, options: ConnectOptions = {}): Promise<RawClient> {
  const a = await attempt(server, options);
  if (!a.ok) throw new Error(`the upgrade was refused with HTTP ${a.status}`);
  return a.client;
}

/** A client that has said hello and opened `doc`; returns it and its `opened` message. */
export async function joined(
  server: OtterServer,
  doc: string,
  options: ConnectOptions & { clientId?: string } = {},
): Promise<{ client: RawClient; opened: ReceivedOf<'opened'> }> {
  const client = await connect(server, options);
  await client.hello(options.clientId);
  return { client, opened: await client.opened(doc) };
}

/** The messages of `client` from index `from` on that name `doc` (as their doc or their error's ref). */
export function aboutDoc(client: RawClient, doc: string, from = 0): Received[] {
  return client.messages.slice(from).filter((m) => ('doc' in m && m.doc === doc) || (m.type === 'error' && m.ref?.doc === doc));
}

/** The text of the document's whole log replayed from the empty document. */
export async function replayOf(server: OtterServer, doc: string): Promise<string> {
  let text = '';
  for (const r of await server.sequencer.getOps(doc, 0)) text = apply(text, r.op);
  return text;
}

// ─── JWT crafting by hand (for tokens jose refuses to make) ─────────────────────────────────

/** `data` in base64url, as a JWT segment. */
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
