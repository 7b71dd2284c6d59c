/**
 * The plain-HTTP side of the product: health, readiness, Prometheus metrics, the demo page and
 * its bundle, 404s; in-process (`createServer`) and through the built CLI; and embedding in an
 * application's own `http.Server`.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRoutes } from '../../src/server/http.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Metrics } from '../../src/server/metrics.js';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import type { LoadedDocument, OpRecord, Snapshot, Store } from '../../src/server/store.js';
import { type OtterServer, type ServerOptions, createServer } from '../../src/server/ws-server.js';
import { type CliProcess, DEMO_DIR, parseMetrics, request, requireBuild, startServe } from './helpers.js';
import { RawClient } from '../support/raw-client.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { waitFor, within } from '../support/wait.js';

beforeAll(() => {
  requireBuild();
});

/** A store whose `ping` fails while `down` is set; everything else goes to a MemoryStore. */
class FlakyStore implements Store {
  down = false;
  private readonly inner = new MemoryStore();
  load(docId: string): Promise<LoadedDocument> {
    return this.inner.load(docId);
  }
  append(...args: Parameters<Store['append']>): Promise<void> {
    return this.inner.append(...args);
  }
  getMarks(docId: string, clientIds: readonly string[]): ReturnType<Store['getMarks']> {
    return this.inner.getMarks(docId, clientIds);
  }
  getOps(docId: string, from: number, to: number): Promise<OpRecord[]> {
    return this.inner.getOps(docId, from, to);
  }
  getSnapshot(docId: string, atOrBefore?: number): Promise<Snapshot | undefined> {
    return this.inner.getSnapshot(docId, atOrBefore);
  }
  putSnapshot(docId: string, snapshot: Snapshot): Promise<void> {
    return this.inner.putSnapshot(docId, snapshot);
  }
  trim(docId: string, version: number): Promise<void> {
    return this.inner.trim(docId, version);
  }
  ping(): Promise<void> {
    return this.down ? Promise.reject(new Error('disk on fire')) : this.inner.ping();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const METRICS: Array<[name: string, type: string]> = [
  ['otter_connections', 'gauge'],
  ['otter_open_documents', 'gauge'],
  ['otter_ops_applied_total', 'counter'],
  ['otter_ops_rejected_total', 'counter'],
  ['otter_transform_depth', 'histogram'],
  ['otter_submit_ack_seconds', 'histogram'],
  ['otter_frames_sent_total', 'counter'],
  ['otter_bytes_sent_total', 'counter'],
  ['otter_slow_consumer_drops_total', 'counter'],
  ['otter_resyncs_total', 'counter'],
];

let servers: OtterServer[] = [];
let clients: RawClient[] = [];
let dir: string | undefined;
let cli: CliProcess | undefined;
let closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of clients) c.terminate();
  clients = [];
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  for (const close of closers.reverse()) await close();
  closers = [];
  cli?.kill();
  cli = undefined;
  removeTempDir(dir);
  dir = undefined;
});

async function start(options: ServerOptions = {}): Promise<{ otter: OtterServer; base: string }> {
  const otter = await createServer(options);
  servers.push(otter);
  return { otter, base: `http://127.0.0.1:${otter.port}` };
}

async function connect(url: string): Promise<RawClient> {
  const c = await RawClient.connect(url);
  clients.push(c);
  await c.hello();
  return c;
}

async function scrape(base: string): Promise<Map<string, number>> {
  const r = await request(`${base}/metrics`);
  expect(r.status).toBe(200);
  return parseMetrics(r.body);
}

/** Checks the routes every Otter HTTP endpoint answers, with the demo on. */
async function checkRoutes(base: string): Promise<void> {
  const health = await request(`${base}/healthz`);
  expect(health).toMatchObject({ status: 200, body: 'ok\n' });
  expect(health.headers['content-type']).toMatch(/^text\/plain/);
  expect(health.headers['cache-control']).toBe('no-store');
  expect(await request(`${base}/healthz`, 'HEAD')).toMatchObject({ status: 200, body: '' });
  expect(await request(`${base}/healthz?probe=1`)).toMatchObject({ status: 200 });
  expect(await request(`${base}/readyz`)).toMatchObject({ status: 200, body: 'ready\n' });

  const metrics = await request(`${base}/metrics`);
  expect(metrics.status).toBe(200);
  expect(metrics.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  for (const [name, type] of METRICS) expect(metrics.body).toContain(`# TYPE ${name} ${type}\n`);
  expect(metrics.body).toContain('# TYPE process_cpu_user_seconds_total counter'); // Node defaults too
  parseMetrics(metrics.body); // every sample line is well-formed

  const page = await request(`${base}/`);
  expect(page.status).toBe(200);
  expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
  expect(page.body).toBe(readFileSync(join(DEMO_DIR, 'index.html'), 'utf8'));
  expect(page.body).toContain('<div id="editor"');
  expect(page.body).toContain('src="/demo.js"');
  expect((await request(`${base}/?doc=some-doc`)).status).toBe(200);
  const bundle = await request(`${base}/demo.js`);
  expect(bundle.status).toBe(200);
  expect(bundle.headers['content-type']).toBe('text/javascript; charset=utf-8');
  expect(bundle.body).toBe(readFileSync(join(DEMO_DIR, 'demo.js'), 'utf8'));

  for (const path of ['/nope', '/healthz/extra', '/index.html', '/demo.js/x', '/../package.json', '/%2e%2e/package.json']) {
    expect((await request(`${base}${path}`)).status, `GET ${path}`).toBe(404);
  }
  expect((await request(`${base}/healthz`, 'POST')).status).toBe(404);
  expect((await request(`${base}/`, 'DELETE')).status).toBe(404);
}

describe('HTTP routes of createServer', () => {
  it('health, readiness, metrics, the demo page and bundle, and 404 for anything else', async () => {
    const { base } = await start({ demo: true });
    await checkRoutes(base);
  });

  it('without demo: no page and no bundle, the probes still answer', async () => {
    const { base } = await start();
    expect((await request(`${base}/`)).status).toBe(404);
    expect((await request(`${base}/demo.js`)).status).toBe(404);
    expect((await request(`${base}/healthz`)).status).toBe(200);
    expect((await request(`${base}/readyz`)).status).toBe(200);
    expect((await request(`${base}/metrics`)).status).toBe(200);
  });

  it('the demo page unbuilt: 503 with what to do', async () => {
    dir = makeTempDir();
    const routes = createRoutes({
      readiness: { status: { state: 'ready' } },
      metrics: new Metrics({ connections: () => 0, openDocuments: () => 0, loadedDocuments: () => 0, historyBytes: () => 0 }),
      demo: true,
      demoDir: dir,
    });
    const server = http.createServer((req, res) => {
      if (!routes(req, res)) res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => server.close(() => r())));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const page = await request(`${base}/`);
    expect(page.status).toBe(503);
    expect(page.body).toContain('npm run build');
    expect((await request(`${base}/demo.js`)).status).toBe(404);
  });

  it('/readyz: 503 with the reason once a probe fails, 200 again after one succeeds, with no traffic; /healthz stays 200', async () => {
    const store = new FlakyStore();
    const { base } = await start({ store, readinessInterval: 20 });
    expect((await request(`${base}/readyz`)).status).toBe(200);
    expect((await scrape(base)).get('otter_store_ready')).toBe(1);
    store.down = true;
    await waitFor('readiness down', async () => (await request(`${base}/readyz`)).status === 503);
    expect(await request(`${base}/readyz`)).toMatchObject({ body: 'not ready: the store cannot be written: disk on fire\n' });
    expect((await request(`${base}/healthz`)).status).toBe(200);
    const down = await scrape(base);
    expect(down.get('otter_store_ready')).toBe(0);
    expect(down.get('otter_store_write_failures_total{source="probe"}')).toBeGreaterThanOrEqual(1);
    store.down = false;
    await waitFor('readiness back', async () => (await request(`${base}/readyz`)).status === 200);
    expect((await scrape(base)).get('otter_store_ready')).toBe(1);
  });

  it('/readyz: 503 while shutting down', async () => {
    const { otter, base } = await start();
    const routes = otter.handleRequest;
    expect((await request(`${base}/readyz`)).status).toBe(200);
    await otter.close();
    let answer: { status: number; body: string } | undefined;
    const res = {
      writeHead: (status: number) => ({ end: (body: string) => (answer = { status, body }) }),
    } as unknown as http.ServerResponse;
    expect(routes({ method: 'GET', url: '/readyz' } as http.IncomingMessage, res)).toBe(true);
    expect(answer).toEqual({ status: 503, body: 'not ready: shutting down\n' });
  });

  it('/readyz with a SqliteStore: 200', async () => {
    dir = makeTempDir();
    const { base } = await start({ store: new SqliteStore(join(dir, 'ready.db')) });
    expect(await request(`${base}/readyz`)).toMatchObject({ status: 200, body: 'ready\n' });
  });

  it('metrics move with connections, documents, submissions, refusals and resyncs', async () => {
    const { otter, base } = await start();
    let m = await scrape(base);
    for (const [name] of METRICS.filter(([, t]) => t !== 'histogram')) {
      if (name !== 'otter_ops_rejected_total') expect(m.get(name), name).toBe(0);
    }
    expect(m.get('otter_transform_depth_count')).toBe(0);
    expect(m.get('otter_submit_ack_seconds_count')).toBe(0);

    const a = await connect(`${otter.url}/`);
    const b = await connect(`${otter.url}/`);
    m = await scrape(base);
    expect(m.get('otter_connections')).toBe(2);
    expect(m.get('otter_connections_total')).toBe(2);
    expect(m.get('otter_open_documents')).toBe(0);
    expect(m.get('otter_frames_sent_total')).toBe(2); // two welcomes
    const welcomeBytes = m.get('otter_bytes_sent_total') as number;
    expect(welcomeBytes).toBeGreaterThan(2 * '{"type":"welcome"}'.length);

    await a.opened('m');
    await b.opened('m');
    m = await scrape(base);
    expect(m.get('otter_open_documents')).toBe(1);
    expect(m.get('otter_frames_sent_total')).toBeGreaterThanOrEqual(4);
    expect(m.get('otter_bytes_sent_total')).toBeGreaterThan(welcomeBytes);

    // Two concurrent submits on version 0: one is transformed against the other.
    const fromA = a.messages.length;
    const fromB = b.messages.length;
    a.send({ type: 'submit', doc: 'm', v: 0, seq: 1, op: ['aaa'] });
    b.send({ type: 'submit', doc: 'm', v: 0, seq: 1, op: ['bbb'] });
    await a.next((x) => x.type === 'ack', { what: 'ack a', from: fromA });
    await b.next((x) => x.type === 'ack', { what: 'ack b', from: fromB });
    m = await scrape(base);
    expect(m.get('otter_ops_applied_total')).toBe(2);
    expect(m.get('otter_submit_ack_seconds_count')).toBe(2);
    expect(m.get('otter_submit_ack_seconds_sum')).toBeGreaterThan(0);
    expect(m.get('otter_submit_ack_seconds_bucket{le="+Inf"}')).toBe(2);
    expect(m.get('otter_transform_depth_count')).toBe(2);
    expect(m.get('otter_transform_depth_sum')).toBe(1);
    expect(m.get('otter_transform_depth_bucket{le="0"}')).toBe(1);
    expect(m.get('otter_transform_depth_bucket{le="1"}')).toBe(2);

    // Refusals, counted by code.
    const refuse = async (message: Record<string, unknown>, code: string): Promise<void> => {
      const from = a.messages.length;
      a.send(message);
      const e = await a.next((x) => x.type === 'error', { what: `error ${code}`, from, ms: 2000 }).catch((err: unknown) => {
        throw new Error(`${String(err)}; got ${JSON.stringify(a.messages.slice(from))}`);
      });
      expect(e).toMatchObject({ code });
    };
    await refuse({ type: 'submit', doc: 'm', v: 99, seq: 2, op: ['x'] }, 'version-ahead');
    await refuse({ type: 'submit', doc: 'm', v: 2, seq: 2, op: [100, 'x'] }, 'invalid-op');
    await refuse({ type: 'submit', doc: 'm', v: 2, seq: 2, op: [3, -10] }, 'invalid-op');
    await refuse({ type: 'submit', doc: 'other', v: 0, seq: 1, op: ['x'] }, 'not-open');
    await refuse({ type: 'submit', doc: 'm', v: 2, seq: 5, op: [6, 'x'] }, 'seq-gap');
    m = await scrape(base);
    expect(m.get('otter_ops_rejected_total{code="version-ahead"}')).toBe(1);
    expect(m.get('otter_ops_rejected_total{code="invalid-op"}')).toBe(2);
    expect(m.get('otter_ops_rejected_total{code="not-open"}')).toBe(1);
    expect(m.get('otter_ops_rejected_total{code="seq-gap"}')).toBe(1);
    expect(m.get('otter_ops_applied_total')).toBe(2);

    // Catch-up from a version the server never had: answered with a snapshot, counted.
    expect(m.get('otter_resyncs_total')).toBe(0);
    const again = await a.opened('m', 50);
    expect(again.text).toHaveLength(6);
    expect((await scrape(base)).get('otter_resyncs_total')).toBe(1);
    // A catch-up it can serve with ops is not a resync.
    expect((await a.opened('m', 1)).ops).toHaveLength(1);
    expect((await scrape(base)).get('otter_resyncs_total')).toBe(1);

    a.close();
    b.close();
    await Promise.all([a.waitClosed(), b.waitClosed()]);
    await waitFor('connections back to 0', async () => (await scrape(base)).get('otter_connections') === 0);
    m = await scrape(base);
    expect(m.get('otter_open_documents')).toBe(0);
    expect(m.get('otter_connections_total')).toBe(2);
  });

  it('metrics count a slow consumer dropped', async () => {
    const { otter, base } = await start({
      maxBufferedAmount: 64 * 1024,
      slowConsumerGrace: 200,
      limits: { bytesPerSecond: 1 << 30, bytesBurst: 1 << 30 },
    });
    const writer = await connect(`${otter.url}/`);
    await writer.opened('big');
    const reader = await connect(`${otter.url}/`);
    await reader.opened('big');
    // The reader stops reading; the writer keeps inserting and deleting 800 KB until the
    // kernel's socket buffers are full and the server's backlog for the reader passes the cap.
    (reader.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const chunk = 'x'.repeat(800_000);
    let v = 0;
    let seq = 0;
    let drops = 0;
    for (let i = 0; i < 40 && drops === 0; i++) {
      v = await writer.submitAcked('big', v, ++seq, [chunk]);
      v = await writer.submitAcked('big', v, ++seq, [-chunk.length]);
      drops = (await scrape(base)).get('otter_slow_consumer_drops_total') as number;
    }
    expect(drops).toBe(1);
    // Terminated after the grace period; the writer is unaffected.
    await waitFor('the slow reader being terminated', () => otter.connections === 1);
    expect(await writer.submitAcked('big', v, ++seq, ['still here'])).toBe(v + 1);
    const m = await scrape(base);
    expect(m.get('otter_connections')).toBe(1);
    expect(m.get('otter_slow_consumer_drops_total')).toBe(1);
  });
});

describe('HTTP routes of the CLI', () => {
  it('serves the same routes, and its metrics move', async () => {
    const server = await startServe(['--port', '0', '--memory']);
    cli = server.cli;
    await checkRoutes(server.http);
    const c = await connect(`${server.ws}/`);
    await c.opened('cli-doc');
    await c.submitAcked('cli-doc', 0, 1, ['x']);
    const m = await scrape(server.http);
    expect(m.get('otter_connections')).toBe(1);
    expect(m.get('otter_open_documents')).toBe(1);
    expect(m.get('otter_ops_applied_total')).toBe(1);
    expect(await server.cli.stop()).toEqual({ code: 0, signal: null });
  });
});

describe('embedding in an existing http.Server', () => {
  it("keeps the application's routes, mounts handleRequest where it wants, and close() leaves its server up", async () => {
    let otter: OtterServer | undefined;
    const app = http.createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/app') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('the application\n');
      } else if (path === '/healthz' && otter !== undefined && otter.handleRequest(req, res)) {
        // answered by Otter
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('application 404\n');
      }
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    closers.push(
      () =>
        new Promise((r) => {
          app.closeAllConnections();
          app.close(() => r());
        }),
    );
    const port = (app.address() as AddressInfo).port;
    const base = `http://127.0.0.1:${port}`;
    otter = await createServer({ server: app, port: 1, host: '0.0.0.0' }); // port and host are ignored
    expect(otter.port).toBe(port);
    expect(otter.httpServer).toBe(app);

    expect(await request(`${base}/app`)).toMatchObject({ status: 200, body: 'the application\n' });
    expect(await request(`${base}/healthz`)).toMatchObject({ status: 200, body: 'ok\n' });
    // Not mounted by the application: its own 404, not Otter's.
    expect(await request(`${base}/metrics`)).toMatchObject({ status: 404, body: 'application 404\n' });

    // The WebSocket protocol runs on the application's port.
    const c = await connect(`ws://127.0.0.1:${port}/`);
    await c.opened('embedded');
    expect(await c.submitAcked('embedded', 0, 1, ['hi'])).toBe(1);

    await otter.close();
    expect((await c.waitClosed()).code).toBe(1001);
    expect(app.listening).toBe(true);
    expect(await request(`${base}/app`)).toMatchObject({ status: 200, body: 'the application\n' });
  });

  it("with path: Otter takes upgrades on its path only and leaves the others to the application", async () => {
    const app = http.createServer((_req, res) => res.writeHead(404).end());
    const echo = new WebSocketServer({ noServer: true });
    echo.on('connection', (ws) => ws.on('message', (data) => ws.send(`echo:${String(data)}`)));
    app.on('upgrade', (req, socket, head) => {
      if (new URL(req.url ?? '/', 'http://x').pathname === '/echo') {
        echo.handleUpgrade(req, socket, head, (ws) => echo.emit('connection', ws, req));
      }
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    closers.push(
      () =>
        new Promise((r) => {
          echo.close();
          app.closeAllConnections();
          app.close(() => r());
        }),
    );
    const port = (app.address() as AddressInfo).port;
    const otter = await createServer({ server: app, path: '/collab' });
    servers.push(otter);

    const c = await connect(`ws://127.0.0.1:${port}/collab?doc=x`);
    await c.opened('p');
    expect(await c.submitAcked('p', 0, 1, ['ok'])).toBe(1);

    const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`);
    const reply = await within(
      new Promise<string>((resolve, reject) => {
        ws.on('open', () => ws.send('ping'));
        ws.on('message', (d) => resolve(String(d)));
        ws.on('error', reject);
      }),
      5000,
      'the application echo',
    );
    expect(reply).toBe('echo:ping');
    ws.terminate();
  });
});
