/**
 * Shared helpers of the product tests: the built CLI (dist/cli.js) run as a child process,
 * HTTP fetches and Prometheus text parsing. Not a test file.
 *
 * The product tests exercise what `npm run build` produced. They never build it themselves
 * (other tests and engineers share dist/), and they fail with a clear message if it is missing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { within } from '../support/wait.js';

/** The repository's root folder. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The built command line (`npm run build`). */
export const CLI = join(ROOT, 'dist/cli.js');
/** The built demo page. */
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

// ─── the CLI as a child process ──────────────────────────────────────────────────────────────

/** How a child process ended: its exit code, or the signal that ended it. */
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

/** An HTTP response: status, headers and the whole body as text. */
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
