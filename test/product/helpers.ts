/**
 * Shared helpers of the product tests: the built CLI (dist/cli.js) run as a child process, a
 * raw protocol client over `ws`, HTTP fetches and Prometheus text parsing. Not a test file.
 *
 * The product tests exercise what `npm run build` produced. They never build it themselves
 * (other tests and engineers share dist/), and they fail with a clear message if it is missing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import type { Component } from '../../src/ot/index.js';
import type { ClientMessage, ServerMessage } from '../../src/protocol/messages.js';
import { within } from '../support/within.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(ROOT, 'dist/cli.js');
export const DEMO_DIR = join(ROOT, 'dist/demo');

/** Throws (failing the suite, never skipping it) unless `npm run build` has produced dist/. */
export function requireBuild(): void {
  const missing = [CLI, join(DEMO_DIR, 'index.html'), join(DEMO_DIR, 'demo.js')].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new Error(
      `the product tests need the built package, but ${missing.map((f) => f.slice(ROOT.length)).join(', ')} ` +
        `${missing.length === 1 ? 'is' : 'are'} missing: run \`npm run build\` first`,
    );
  }
}

/** A fresh temporary directory; remove it with {@link removeTempDir}. */
export function makeTempDir(prefix = 'otter-product-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeTempDir(dir: string | undefined): void {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
}

export { within };

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every `stepMs` until it holds; throws after `ms`. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await sleep(20);
  }
}

// ─── the CLI as a child process ──────────────────────────────────────────────────────────────

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running `otter` child process with its output collected. */
export class CliProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;

  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => (this.stdout += chunk));
    child.stderr?.on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** stdout split into lines, without the trailing empty one. */
  get stdoutLines(): string[] {
    return this.stdout.split('\n').filter((l) => l !== '');
  }

  /** Sends `signal` and waits (bounded) for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', ms = 10_000): Promise<Exit> {
    if (this.running) this.child.kill(signal);
    return within(this.exited, ms, `otter exiting after ${signal}`);
  }

  /** Last resort in afterEach: SIGKILL if still running. */
  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}

/** Spawns `node dist/cli.js ...args` with OTTER_* variables of the test environment cleared. */
export function spawnCli(args: string[], env: Record<string, string> = {}, cwd?: string): CliProcess {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OTTER_')) base[k] = v;
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: cwd ?? ROOT,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new CliProcess(child);
}

const BANNER = /^Otter is running: open (http:\/\/(\S+):(\d+))\/\?doc=hello/m;

/** A `otter serve` child that printed its banner. */
export interface RunningServer {
  readonly cli: CliProcess;
  readonly port: number;
  /** http://host:port */
  readonly http: string;
  /** ws://host:port */
  readonly ws: string;
}

/** Starts `otter serve ...args` and waits (bounded) for the banner; parses the port from it. */
export async function startServe(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<RunningServer> {
  const cli = spawnCli(['serve', ...args], env, cwd);
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (BANNER.test(cli.stdout)) resolve();
        };
        cli.child.stdout?.on('data', check);
        void cli.exited.then((e) => reject(new Error(`otter serve exited (${e.code ?? e.signal}) before listening: ${cli.stderr}`)));
      }),
      15_000,
      'the "Otter is running" banner',
    );
  } catch (e) {
    cli.kill();
    throw e;
  }
  const m = BANNER.exec(cli.stdout) as RegExpExecArray;
  const port = Number(m[3]);
  return { cli, port, http: m[1] as string, ws: `ws://${m[2]}:${port}` };
}

/** Runs the CLI to completion (bounded) and returns its exit and output. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<Exit & { stdout: string; stderr: string }> {
  const cli = spawnCli(args, env, cwd);
  try {
    const exit = await within(cli.exited, 15_000, `otter ${args.join(' ')} exiting`);
    return { ...exit, stdout: cli.stdout, stderr: cli.stderr };
  } finally {
    cli.kill();
  }
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// ─── HTTP ────────────────────────────────────────────────────────────────────────────────────

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request (no keep-alive), bounded. */
export function request(url: string, method = 'GET'): Promise<HttpAnswer> {
  return within(
    new Promise<HttpAnswer>((resolve, reject) => {
      const req = http.request(url, { method, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    }),
    10_000,
    `${method} ${url}`,
  );
}

/** Samples of a Prometheus text exposition: `name{labels}` → value. */
export function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)/.exec(line);
    if (m === null) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    samples.set(m[1] as string, Number(m[2]));
  }
  return samples;
}

// ─── a raw protocol client ───────────────────────────────────────────────────────────────────

/**
 * A client speaking the wire protocol (docs/protocol.md) by hand over `ws`: it records every
 * server message (batched frames flattened) and lets a test wait for one.
 */
export class RawClient {
  readonly messages: ServerMessage[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly waiters = new Set<() => void>();

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const parsed = JSON.parse(String(data)) as ServerMessage | ServerMessage[];
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) this.messages.push(m);
      for (const w of this.waiters) w();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.on('close', (code, reason) => {
        resolve({ code, reason: String(reason) });
        for (const w of this.waiters) w();
      }),
    );
  }

  /** Connects to `url` (ws://host:port/path?query) and waits for the upgrade. */
  static async connect(url: string, protocols: string[] = []): Promise<RawClient> {
    const socket = new WebSocket(url, protocols);
    const client = new RawClient(socket);
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      }),
      10_000,
      `connecting to ${url}`,
    );
    return client;
  }

  send(message: ClientMessage | Record<string, unknown>): void {
    this.socket.send(JSON.stringify(message));
  }

  /** Waits (bounded) for the first message at index ≥ `from` matching `match`. */
  async next<T extends ServerMessage>(match: (m: ServerMessage) => boolean, what: string, from = 0, ms = 10_000): Promise<T> {
    const find = (): T | undefined => this.messages.slice(from).find(match) as T | undefined;
    const found = find();
    if (found !== undefined) return found;
    return within(
      new Promise<T>((resolve, reject) => {
        const check = (): void => {
          const m = find();
          if (m !== undefined) {
            this.waiters.delete(check);
            resolve(m);
          } else if (this.socket.readyState === WebSocket.CLOSED) {
            this.waiters.delete(check);
            reject(new Error(`the connection closed while waiting for ${what}; got ${JSON.stringify(this.messages)}`));
          }
        };
        this.waiters.add(check);
      }),
      ms,
      what,
    );
  }

  /** `hello` and wait for `welcome`. */
  async hello(clientId?: string): Promise<void> {
    this.send(clientId === undefined ? { type: 'hello', protocol: 1 } : { type: 'hello', protocol: 1, clientId });
    await this.next((m) => m.type === 'welcome', 'welcome');
  }

  /** Opens `doc` (snapshot) and returns the `opened` answer. */
  async open(doc: string, v?: number): Promise<Extract<ServerMessage, { type: 'opened' }>> {
    const from = this.messages.length;
    this.send(v === undefined ? { type: 'open', doc } : { type: 'open', doc, v });
    return this.next((m) => m.type === 'opened' && m.doc === doc, `opened ${doc}`, from);
  }

  /** Submits and waits for the ack (or throws with the error); returns the acked version. */
  async submit(doc: string, v: number, seq: number, op: Component[]): Promise<number> {
    const from = this.messages.length;
    this.send({ type: 'submit', doc, v, seq, op });
    const answer = await this.next(
      (m) => (m.type === 'ack' && m.doc === doc && m.seq === seq) ||
        (m.type === 'error' && (m.ref === undefined || m.ref.seq === seq)),
      `ack of seq ${seq}`,
      from,
    );
    if (answer.type !== 'ack') throw new Error(`submit seq ${seq} refused: ${JSON.stringify(answer)}`);
    return answer.v;
  }

  close(): void {
    this.socket.close(1000);
  }

  terminate(): void {
    this.socket.terminate();
  }
}

/** An op inserting `text` at `pos` of a document of length `len`. */
export function ins(len: number, pos: number, text: string): Component[] {
  const op: Component[] = [];
  if (pos > 0) op.push(pos);
  op.push(text);
  if (len - pos > 0) op.push(len - pos);
  return op;
}
