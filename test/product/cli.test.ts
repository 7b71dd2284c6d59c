/**
 * The `otter` command line as users run it: `node dist/cli.js` in a child process (build first
 * with `npm run build`). Covers serving from memory and from a SQLite file, configuration by
 * flags and OTTER_* variables, refusing bad command lines (exit 2, nothing started), graceful
 * shutdown on SIGTERM/SIGINT (clients closed with 1001, exit 0), durability of acknowledged ops
 * across a restart (checked with `otter export`), and the JSON logs (one line per connection
 * opened and closed; never document text or tokens).
 */
import { createHmac } from 'node:crypto';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type Component, apply, fromPatch } from '../../src/ot/index.js';
import { type CliProcess, freePort, isListening, request, requireBuild, runCli, startServe } from './helpers.js';
import { RawClient } from '../support/raw-client.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { waitFor, within } from '../support/wait.js';

beforeAll(() => {
  requireBuild();
});

let dir: string | undefined;
const children: CliProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) c.kill();
  removeTempDir(dir);
  dir = undefined;
});

async function serve(args: string[], env: Record<string, string> = {}, cwd?: string) {
  const server = await startServe(args, env, cwd);
  children.push(server.cli);
  return server;
}

/** Every stdout line but the human banner, parsed as JSON (failing on any other line). */
function jsonLogs(cli: CliProcess): Array<Record<string, unknown>> {
  return cli.stdoutLines
    .filter((l) => !l.startsWith('Otter is running: '))
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`a log line is not JSON: ${JSON.stringify(line)}`);
      }
    });
}

describe('otter --help and usage errors', () => {
  it('--help (and -h) prints every command, flag and variable and exits 0', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await runCli([flag]);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      for (const word of [
        'otter serve',
        'otter export',
        '--port',
        '--host',
        '--data',
        '--memory',
        '--log-level',
        '--version',
        '--help',
        'OTTER_PORT',
        'OTTER_HOST',
        'OTTER_DATA',
        'OTTER_MEMORY',
        'OTTER_LOG_LEVEL',
      ]) {
        expect(r.stdout, `help mentions ${word}`).toContain(word);
      }
      // Every log level the parser accepts is listed.
      for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) expect(r.stdout).toContain(level);
    }
  });

  it('with no command prints the usage and exits 2', async () => {
    const r = await runCli([]);
    expect(r.code).toBe(2);
    expect(r.stdout + r.stderr).toContain('otter serve');
  });

  const BAD: Array<{ name: string; args: (data: string) => string[]; env?: Record<string, string>; message: RegExp }> = [
    { name: '--port abc', args: (d) => ['serve', '--port', 'abc', '--data', d], message: /--port must be an integer from 0 to 65535, got "abc"/ },
    { name: '--port 70000', args: (d) => ['serve', '--port', '70000', '--data', d], message: /--port must be an integer from 0 to 65535, got "70000"/ },
    { name: '--port 1.5', args: (d) => ['serve', '--port', '1.5', '--data', d], message: /--port must be an integer/ },
    { name: '--port with no value', args: (d) => ['serve', '--data', d, '--port'], message: /--port/ },
    { name: '--log-level loud', args: (d) => ['serve', '--log-level', 'loud', '--data', d], message: /--log-level must be one of fatal, error, warn, info, debug, trace, silent, got "loud"/ },
    { name: '--data x --memory', args: (d) => ['serve', '--data', d, '--memory'], message: /--data and --memory exclude each other/ },
    { name: 'an unknown command', args: (d) => ['frobnicate', '--data', d], message: /unknown command "frobnicate"/ },
    { name: 'an unknown flag', args: (d) => ['serve', '--bogus', '--data', d], message: /Unknown option '--bogus'/ },
    { name: 'an argument to serve', args: (d) => ['serve', 'extra', '--data', d], message: /serve takes no arguments/ },
    { name: 'OTTER_PORT=abc', args: (d) => ['serve', '--data', d], env: { OTTER_PORT: 'abc' }, message: /--port must be an integer/ },
    { name: 'OTTER_LOG_LEVEL=loud', args: (d) => ['serve', '--data', d], env: { OTTER_LOG_LEVEL: 'loud' }, message: /--log-level must be one of/ },
    { name: 'export without a document', args: (d) => ['export', '--data', d], message: /export takes exactly one document id/ },
    { name: 'export --memory', args: () => ['export', 'doc', '--memory'], message: /export .*cannot use --memory/ },
    { name: 'export --version x1', args: (d) => ['export', 'doc', '--data', d, '--version', 'x1'], message: /--version must be an integer/ },
    { name: '--jwt-secret too short', args: (d) => ['serve', '--data', d, '--jwt-secret', 'short'], message: /--jwt-secret must be at least 16 characters/ },
    { name: 'two JWT keys', args: (d) => ['serve', '--data', d, '--jwt-secret', 'a'.repeat(20), '--jwks-url', 'https://id.example/jwks'], message: /only one of --jwt-secret, --jwt-public-key and --jwks-url/ },
    { name: '--jwt-public-key unreadable', args: (d) => ['serve', '--data', d, '--jwt-public-key', join(d, 'missing.pem')], message: /cannot read/ },
    { name: '--jwks-url not a URL', args: (d) => ['serve', '--data', d, '--jwks-url', 'nope'], message: /--jwks-url must be an http\(s\) URL/ },
    { name: '--jwt-audience without a key', args: (d) => ['serve', '--data', d, '--jwt-audience', 'editor'], message: /need --jwt-secret/ },
    { name: '--allow-origin with a path', args: (d) => ['serve', '--data', d, '--allow-origin', 'https://app.example/x'], message: /--allow-origin takes origins/ },
    { name: '--retain-ops=-1', args: (d) => ['serve', '--data', d, '--retain-ops=-1'], message: /--retain-ops must be an integer from 0/ },
    { name: '--retain-days 1.5', args: (d) => ['serve', '--data', d, '--retain-days', '1.5'], message: /--retain-days must be an integer from 0 to 36500/ },
    { name: 'OTTER_RETAIN_MB=lots', args: (d) => ['serve', '--data', d], env: { OTTER_RETAIN_MB: 'lots' }, message: /--retain-mb must be an integer/ },
    { name: 'OTTER_JWT_SECRET too short', args: (d) => ['serve', '--data', d], env: { OTTER_JWT_SECRET: 'short' }, message: /--jwt-secret must be at least 16/ },
  ];

  it.each(BAD)('$name: a clear message on stderr, exit 2, nothing started', async ({ args, env, message }) => {
    dir = makeTempDir();
    const data = join(dir, 'never.db');
    // Where the server would listen if it started anyway (flags given override this).
    const port = await freePort();
    const r = await runCli(args(data), { OTTER_PORT: String(port), ...env }, dir);
    expect(r.code, `exit code; stderr: ${r.stderr}`).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/^otter: /);
    expect(r.stderr).toContain('otter --help');
    expect(r.stdout).not.toContain('Otter is running');
    expect(r.stdout).not.toContain('listening');
    expect(existsSync(data), 'no database file was created').toBe(false);
    expect(readdirSync(dir), 'nothing was written to the working directory').toEqual([]);
    expect(await isListening(port)).toBe(false);
  });
});

describe('otter serve', () => {
  it('--memory: serves the protocol and HTTP, writes no file, prints the URL', async () => {
    dir = makeTempDir();
    const server = await serve(['--port', '0', '--memory'], {}, dir);
    expect(server.port).toBeGreaterThan(0);
    expect(server.http).toBe(`http://127.0.0.1:${server.port}`);
    expect((await request(`${server.http}/healthz`)).status).toBe(200);
    const client = await RawClient.connect(`${server.ws}/`);
    await client.hello();
    const opened = await client.opened('hello');
    expect(opened).toMatchObject({ v: 0, text: '' });
    expect(await client.submitAcked('hello', 0, 1, ['hi'])).toBe(1);
    client.close();
    expect(await server.cli.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(readdirSync(dir), '--memory writes nothing (not even ./data/otter.db)').toEqual([]);
    expect(jsonLogs(server.cli).some((l) => l.msg === 'otter listening' && l.store === 'memory')).toBe(true);
  });

  it('--data FILE: creates the file (and its folder) and keeps documents in it', async () => {
    dir = makeTempDir();
    const file = join(dir, 'nested', 'folder', 'otter.db');
    const server = await serve(['--port', '0', '--data', file]);
    expect(existsSync(file)).toBe(true);
    const client = await RawClient.connect(`${server.ws}/`);
    await client.hello();
    await client.opened('notes');
    await client.submitAcked('notes', 0, 1, ['kept on disk']);
    client.close();
    expect(await server.cli.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const r = await runCli(['export', 'notes', '--data', file]);
    expect(r).toMatchObject({ code: 0, stdout: 'kept on disk', stderr: '' });
  });

  it('reads its configuration from OTTER_* variables', async () => {
    dir = makeTempDir();
    const server = await serve([], { OTTER_PORT: '0', OTTER_HOST: '127.0.0.1', OTTER_MEMORY: '1', OTTER_LOG_LEVEL: 'warn' }, dir);
    expect((await request(`${server.http}/healthz`)).status).toBe(200);
    const client = await RawClient.connect(`${server.ws}/`);
    await client.hello();
    client.close();
    await client.waitClosed();
    expect(await server.cli.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    // warn: the info lines (listening, connections, shutdown) are not written.
    expect(jsonLogs(server.cli)).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('flags win over OTTER_* variables', async () => {
    dir = makeTempDir();
    const file = join(dir, 'flag.db');
    const server = await serve(['--port', '0', '--data', file], { OTTER_PORT: 'abc', OTTER_DATA: join(dir, 'env.db') });
    expect(existsSync(file)).toBe(true);
    expect(existsSync(join(dir, 'env.db'))).toBe(false);
    await server.cli.stop();
  });

  it('a port already in use: a message and a non-zero exit, promptly', async () => {
    dir = makeTempDir();
    const first = await serve(['--port', '0', '--memory']);
    const r = await runCli(['serve', '--port', String(first.port), '--memory']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/EADDRINUSE/);
    expect((await request(`${first.http}/healthz`)).status).toBe(200);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal}: closes every client with 1001, exits 0 and stops listening`, async () => {
      const server = await serve(['--port', '0', '--memory']);
      const a = await RawClient.connect(`${server.ws}/`);
      const b = await RawClient.connect(`${server.ws}/`);
      await a.hello();
      await b.hello();
      await a.opened('doc');
      await b.opened('doc');
      server.cli.child.kill(signal);
      const [closeA, closeB] = await Promise.all([a.waitClosed(), b.waitClosed()]);
      expect(closeA.code).toBe(1001);
      expect(closeB.code).toBe(1001);
      expect(await within(server.cli.exited, 5000, 'the exit')).toEqual({ code: 0, signal: null });
      expect(await isListening(server.port)).toBe(false);
      const logs = jsonLogs(server.cli);
      expect(logs.some((l) => l.msg === 'shutting down' && l.signal === signal)).toBe(true);
      // The connections closed by the shutdown are logged before the process exits.
      expect(logs.filter((l) => l.msg === 'connection opened')).toHaveLength(2);
      expect(logs.filter((l) => l.msg === 'connection closed').map((l) => l.code)).toEqual([1001, 1001]);
      expect(server.cli.stderr).toBe('');
    });
  }
});

describe('otter serve with authentication and an origin allow-list', () => {
  /** An HS256 JWT for `sub`, signed with `secret`, valid for an hour. */
  function hs256(secret: string, sub: string): string {
    const b64 = (value: object | Buffer): string =>
      (Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value))).toString('base64url');
    const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
    return `${body}.${b64(createHmac('sha256', secret).update(body).digest())}`;
  }

  /** The HTTP status of an upgrade attempt, or 101 when it became a WebSocket. */
  function upgrade(url: string, headers: Record<string, string>): Promise<number> {
    return within(
      new Promise<number>((resolve) => {
        const ws = new WebSocket(url, { headers });
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('error', () => {});
      }),
      10_000,
      'the upgrade answer',
    );
  }

  it('--jwt-secret: no token gets 401, a valid token connects; --allow-origin: other origins get 403', async () => {
    dir = makeTempDir();
    const secret = 'a-long-enough-test-secret';
    const server = await serve(['--port', '0', '--memory', '--jwt-secret', secret, '--allow-origin', 'https://app.example']);
    expect(await upgrade(server.ws, {})).toBe(401);
    expect(await upgrade(server.ws, { authorization: `Bearer ${hs256('another-secret-of-length', 'ann')}` })).toBe(401);
    expect(await upgrade(server.ws, { authorization: `Bearer ${hs256(secret, 'ann')}` })).toBe(101);
    expect(await upgrade(server.ws, { authorization: `Bearer ${hs256(secret, 'ann')}`, origin: 'https://evil.example' })).toBe(403);
    expect(await upgrade(server.ws, { authorization: `Bearer ${hs256(secret, 'ann')}`, origin: 'https://app.example' })).toBe(101);
    expect(server.cli.stdout).not.toContain(secret);
  });
});

describe('durability across a SIGTERM restart (--data)', () => {
  it('loses no acknowledged op; export prints the text at the head and at any --version', async () => {
    dir = makeTempDir();
    const file = join(dir, 'otter.db');
    const DOC = 'durable';
    const texts = [''];
    let text = '';
    let seq = 0;

    let server = await serve(['--port', '0', '--data', file]);
    let client = await RawClient.connect(`${server.ws}/`);
    await client.hello('durable-client');
    await client.opened(DOC);
    // 60 acknowledged edits: inserts anywhere, some deletes, some non-ASCII.
    /** `at`, moved back off the middle of a surrogate pair. */
    const boundary = (at: number): number => (/[\uDC00-\uDFFF]/.test(text[at] ?? '') ? at - 1 : at);
    for (let i = 0; i < 60; i++) {
      let op: Component[];
      if (i % 7 === 6 && text.length > 8) {
        const at = boundary((i * 13) % (text.length - 4));
        const end = boundary(at + 3);
        op = [...(at > 0 ? [at] : []), at - end, ...(text.length - end > 0 ? [text.length - end] : [])];
      } else {
        const at = boundary((i * 31) % (text.length + 1));
        op = fromPatch(text.length, at, 0, i % 5 === 0 ? `é${i}🦦` : `w${i} `);
      }
      const v = await client.submitAcked(DOC, texts.length - 1, ++seq, op);
      text = apply(text, op);
      texts.push(text);
      expect(v).toBe(texts.length - 1);
    }
    // Three clients each submit one more op right as the server is told to stop. A graceful
    // shutdown commits and acknowledges each, or refuses it; never acknowledges one and loses it.
    const base = texts.length - 1;
    const writers = [{ client, seq: ++seq, id: 'durable-client' }];
    for (const id of ['late-b', 'late-c']) {
      const c = await RawClient.connect(`${server.ws}/`);
      await c.hello(id);
      await c.opened(DOC);
      writers.push({ client: c, seq: 1, id });
    }
    const marks = writers.map((w) => w.client.messages.length);
    for (const w of writers) w.client.send({ type: 'submit', doc: DOC, v: base, seq: w.seq, op: fromPatch(text.length, text.length, 0, `<${w.id}>`) });
    server.cli.child.kill('SIGTERM');
    for (const w of writers) expect((await w.client.waitClosed()).code).toBe(1001);
    expect(await within(server.cli.exited, 5000, 'exit on SIGTERM')).toEqual({ code: 0, signal: null });
    const acked = writers.map((w, i) => {
      const answers = w.client.messages.slice(marks[i]);
      const ack = answers.some((m) => m.type === 'ack' && m.seq === w.seq);
      if (!ack) {
        // Not acknowledged: it must have been refused ('closed'), not silently dropped.
        expect(answers.some((m) => m.type === 'error' && m.ref?.seq === w.seq), JSON.stringify(answers)).toBe(true);
      }
      return ack;
    });

    // Restart on the same file: every acknowledged op is there, each client's seq is known.
    server = await serve(['--port', '0', '--data', file]);
    for (const [i, w] of writers.entries()) {
      if (i === 0) continue;
      const c = await RawClient.connect(`${server.ws}/`);
      await c.hello(w.id);
      expect((await c.opened(DOC)).seq, `${w.id}'s last applied seq`).toBe(acked[i] ? 1 : 0);
      c.close();
    }
    client = await RawClient.connect(`${server.ws}/`);
    await client.hello('durable-client');
    const opened = await client.opened(DOC);
    expect(opened.v).toBe(base + acked.filter(Boolean).length);
    expect(opened.seq).toBe(acked[0] ? seq : seq - 1);
    const tail = (opened.text ?? '').slice(text.length);
    expect(opened.text?.slice(0, text.length)).toBe(text);
    expect([...tail.matchAll(/<[^>]+>/g)].map((m) => m[0]).sort()).toEqual(
      writers.filter((_, i) => acked[i]).map((w) => `<${w.id}>`).sort(),
    );
    text = opened.text ?? '';
    while (texts.length - 1 < opened.v) texts.push(text); // the exact text is known at the head only
    // Editing goes on from there.
    const more = fromPatch(text.length, 0, 0, '» ');
    expect(await client.submitAcked(DOC, opened.v, opened.seq + 1, more)).toBe(opened.v + 1);
    text = apply(text, more);
    texts.push(text);
    client.close();
    expect(await server.cli.stop('SIGTERM')).toEqual({ code: 0, signal: null });

    const head = await runCli(['export', DOC, '--data', file]);
    expect(head.stderr).toBe('');
    expect(head.code).toBe(0);
    expect(head.stdout).toBe(text);
    for (const v of [0, 1, 2, 17, 30, base, texts.length - 2, texts.length - 1]) {
      const r = await runCli(['export', DOC, '--data', file, '--version', String(v)]);
      expect(r.code, `export --version ${v}: ${r.stderr}`).toBe(0);
      expect(r.stdout, `the text at version ${v}`).toBe(texts[v]);
    }
    const ahead = await runCli(['export', DOC, '--data', file, '--version', String(texts.length + 5)]);
    expect(ahead.code).toBe(1);
    expect(ahead.stderr).toMatch(/^otter: .*ahead/);
    expect(ahead.stdout).toBe('');
  });

  it('export of a document nobody wrote prints nothing', async () => {
    dir = makeTempDir();
    const file = join(dir, 'otter.db');
    const server = await serve(['--port', '0', '--data', file]);
    await server.cli.stop();
    expect(await runCli(['export', 'never-written', '--data', file])).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });

  it('export from a database file that does not exist fails and creates nothing', async () => {
    dir = makeTempDir();
    const file = join(dir, 'typo', 'otter.db');
    const r = await runCli(['export', 'notes', '--data', file], {}, dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^otter: .*no database/);
    expect(r.stdout).toBe('');
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('a database file that may not be served (exit code 3, nothing listens)', () => {
  it('an existing file of 0 bytes (a truncated database) is refused with the reason and left as it was', async () => {
    dir = makeTempDir();
    const file = join(dir, 'otter.db');
    writeFileSync(file, '');
    const r = await runCli(['serve', '--port', '0', '--data', file]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^otter: cannot open the database .*otter\.db: the file is empty \(0 bytes\)/);
    expect(r.stdout).not.toMatch(/Otter is running/);
    expect(statSync(file).size).toBe(0);
  });

  it('a file that is not a database is refused', async () => {
    dir = makeTempDir();
    const file = join(dir, 'otter.db');
    writeFileSync(file, 'not a database '.repeat(400));
    const r = await runCli(['serve', '--port', '0', '--data', file]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/not a SQLite database/);
  });

  it('a second process on the same file is refused while the first serves on; export still reads it', async () => {
    dir = makeTempDir();
    const file = join(dir, 'otter.db');
    const first = await serve(['--port', '0', '--data', file]);
    const client = await RawClient.connect(`${first.ws}/`);
    await client.hello();
    await client.opened('shared');
    await client.submitAcked('shared', 0, 1, ['only one writer']);
    const second = await runCli(['serve', '--port', '0', '--data', file]);
    expect(second.code).toBe(3);
    expect(second.stderr).toMatch(/another Otter process is serving it/);
    await client.submitAcked('shared', 1, 2, [15, ', still served']);
    expect(await runCli(['export', 'shared', '--data', file])).toMatchObject({ code: 0, stdout: 'only one writer, still served' });
    client.close();
    expect(await first.cli.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    // The lock went with the process: the file can be served again.
    const again = await serve(['--port', '0', '--data', file]);
    expect((await request(`${again.http}/readyz`)).status).toBe(200);
  });
});

describe('logs', () => {
  it('are JSON lines, one per connection opened and closed, with no document text or token', async () => {
    dir = makeTempDir();
    const SECRET_TEXT = 'SECRET-TEXT-8f3a1c';
    const SECRET_TOKEN = 'tok-5ec7e7-bearer-value';
    const server = await serve(['--port', '0', '--data', join(dir, 'otter.db'), '--log-level', 'trace']);
    const a = await RawClient.connect(`${server.ws}/?doc=x&token=${SECRET_TOKEN}`, { protocols: ['otter.v1', `otter.token.${SECRET_TOKEN}`] });
    await a.hello();
    await a.opened('logged-doc');
    await a.submitAcked('logged-doc', 0, 1, [`first ${SECRET_TEXT} line`]);
    a.send({ type: 'presence', doc: 'logged-doc', v: 1, selection: [{ anchor: 2, head: 8 }] });
    // A refused submit whose op carries the secret as well.
    const refusedAt = a.messages.length;
    a.send({ type: 'submit', doc: 'logged-doc', v: 99, seq: 2, op: [`${SECRET_TEXT}`] });
    await a.next((m) => m.type === 'error', { what: 'the refusal', from: refusedAt });
    const b = await RawClient.connect(`${server.ws}/`);
    await b.hello();
    expect((await b.opened('logged-doc')).text).toContain(SECRET_TEXT);
    a.close();
    b.terminate();
    await waitFor('two "connection closed" lines', () => jsonLogs(server.cli).filter((l) => l.msg === 'connection closed').length === 2);
    expect(await server.cli.stop('SIGTERM')).toEqual({ code: 0, signal: null });

    const logs = jsonLogs(server.cli);
    for (const l of logs) {
      expect(typeof l.level).toBe('number');
      expect(typeof l.time).toBe('number');
      expect(typeof l.msg).toBe('string');
    }
    const opened = logs.filter((l) => l.msg === 'connection opened');
    const closed = logs.filter((l) => l.msg === 'connection closed');
    expect(opened).toHaveLength(2);
    expect(closed).toHaveLength(2);
    expect(new Set(opened.map((l) => l.connectionId)).size).toBe(2);
    expect(new Set(closed.map((l) => l.connectionId))).toEqual(new Set(opened.map((l) => l.connectionId)));
    expect(closed.map((l) => l.code).sort()).toEqual([1000, 1006]);
    const all = server.cli.stdout + server.cli.stderr;
    expect(all).not.toContain(SECRET_TEXT);
    expect(all).not.toContain(SECRET_TOKEN);
    expect(all).not.toContain('5ec7e7');
    expect(server.cli.stderr).toBe('');
  });
});
