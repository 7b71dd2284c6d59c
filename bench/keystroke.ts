/**
 * Keystroke cost by document size: one client types into a document of 0 kB, 100 kB, 1 MB and
 * 10 MB, one character at a time, each keystroke waiting for the server's acknowledgement
 * before the next (a single user typing at a steady pace).
 *
 * Measured per keystroke (medians over the timed keystrokes, after a warmup):
 * - round trip: from the edit call until the client holds the server's ack for it, over a
 *   real WebSocket on 127.0.0.1 (server and client in this process);
 * - local apply: the synchronous edit call alone — what a browser's main thread pays before
 *   the editor can paint (Otter `doc.insert`; ot.js: building the TextOperation, applying it
 *   to the editor's string and `client.applyClient`; ShareDB `doc.submitOp`).
 *
 * Systems:
 * - Otter: the real server (`createServer`, MemoryStore, rate limits raised as
 *   bench/load-peers/otter.ts does) and a real `Connection` over the `ws` package.
 * - ot.js (npm `ot` 0.0.15): an `ot.Client` subclass and an `ot.Server` behind a `ws` server,
 *   JSON messages `{ revision, op }` answered by an ack (ot.js ships no transport of its own).
 * - ShareDB 7: an in-process Backend (memory db) behind a `ws` server as in
 *   bench/load-peers/sharedb.ts, type ot-text-unicode, a sharedb/lib/client Connection;
 *   `submitOp`'s callback is the ack.
 *
 * The document is seeded ASCII (letters, spaces, newlines); the caret sits in its middle and
 * moves one place right per keystroke. Each system first types into an empty document untimed
 * (JIT warmup); then every size is measured, smallest first. Ratios: each size against the
 * smallest, and each peer's figure divided by Otter's (above 1: the peer is slower).
 *
 * Run: npx tsx bench/keystroke.ts [--keys <n>] [--sizes 0,100000,1000000,10000000] [--systems otter,otjs,sharedb]
 *   (also part of `npm run bench`: `npm run bench -- keystroke`)
 *   --keys     timed keystrokes per case (default 300; 30 more are typed first as a warmup)
 *   --sizes    document sizes in code units (default 0, 100,000, 1,000,000 and 10,000,000)
 *   --systems  only these systems (default: all three)
 */
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { type as textUnicode } from 'ot-text-unicode';
import { WebSocket, WebSocketServer } from 'ws';
import { Connection, type WebSocketConstructor } from '../src/client/index.js';
import { MemoryStore, createServer } from '../src/server/index.js';
import { seededRandom } from '../test/support/random.js';
import { collectGarbage, count, isMain, machineLine, median, ms, printTable, ratio } from './common.js';
import { OTTER_LIMITS } from './load-peers/otter.js';
import type {
  ShareDbBackendClass,
  ShareDbClientModule,
  ShareDbDoc,
  WebSocketJsonStreamClass,
} from './load-peers/types.js';
import type { OtTextOperation } from './peers.js';

const require = createRequire(import.meta.url);

const DEFAULT_SIZES = [0, 100_000, 1_000_000, 10_000_000];
const DEFAULT_KEYS = 300;
const WARMUP_KEYS = 30;
const SEED = 20_261_207;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz';

type System = 'otter' | 'otjs' | 'sharedb';
const NAMES: Record<System, string> = { otter: 'Otter', otjs: 'ot.js 0.0.15', sharedb: 'ShareDB 7' };

/** A deterministic ASCII document of `length` code units. */
function makeDocument(length: number): string {
  const rand = seededRandom(SEED);
  const parts: string[] = [];
  for (let i = 0; i < length; i++) {
    const r = rand();
    parts.push(r < 0.15 ? ' ' : r < 0.17 ? '\n' : (ALPHABET[Math.floor(rand() * 26)] ?? 'a'));
  }
  return parts.join('');
}

/** One system typing into one document: `key(pos)` makes a keystroke and returns its ack. */
interface Typist {
  /** Inserts one character at `pos`; resolves on the server's ack. Returns the sync call's duration. */
  key(pos: number): { localMs: number; acked: Promise<void> };
  /** The length of the client's text, read once at the end to check the keystrokes landed. */
  finalLength(): number;
  close(): Promise<void>;
}

interface Figures {
  /** Median round trip per keystroke, ms. */
  readonly roundTripMs: number;
  /** Median local apply per keystroke, ms. */
  readonly localMs: number;
}

async function otterTypist(doc: string): Promise<Typist> {
  const server = await createServer({ port: 0, host: '127.0.0.1', store: new MemoryStore(), limits: { ...OTTER_LIMITS } });
  const conn = new Connection(server.url, { WebSocket: WebSocket as unknown as WebSocketConstructor, clientId: 'typist' });
  const d = conn.open('keystroke');
  await d.ready;
  if (doc.length > 0) {
    d.insert(0, doc);
    await d.synced();
  }
  return {
    key(pos) {
      const t0 = performance.now();
      d.insert(pos, 'x');
      const localMs = performance.now() - t0;
      return { localMs, acked: d.synced() };
    },
    finalLength: () => d.text.length,
    async close() {
      conn.close();
      await server.close();
    },
  };
}

/** ot.js (npm `ot` 0.0.15, untyped): only what this benchmark calls. */
interface OtModule {
  readonly TextOperation: { new (): OtTextOperation; fromJSON(json: unknown): OtTextOperation };
  readonly Client: new (revision: number) => { applyClient(op: OtTextOperation): void; serverAck(): void };
  readonly Server: new (document: string) => {
    document: string;
    receiveOperation(revision: number, op: OtTextOperation): OtTextOperation;
  };
}

/** Starts a `ws` server on 127.0.0.1 that hands every connection to `onConnection`. */
async function wsServer(onConnection: (ws: WebSocket, req: http.IncomingMessage) => void): Promise<{ url: string; close(): void }> {
  const httpServer = http.createServer();
  const wss = new WebSocketServer({ server: httpServer, maxPayload: 2 ** 30 });
  wss.on('connection', onConnection);
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(httpServer.address() as AddressInfo).port}`,
    close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      httpServer.close();
    },
  };
}

async function otjsTypist(doc: string): Promise<Typist> {
  const ot = require('ot') as OtModule;
  const server = new ot.Server(doc);
  const net = await wsServer((ws) => {
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { revision: number; op: unknown };
      server.receiveOperation(m.revision, ot.TextOperation.fromJSON(m.op));
      ws.send('"ack"');
    });
  });
  const ws = new WebSocket(net.url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let acked: (() => void) | undefined;
  class Typing extends ot.Client {
    text = doc;
    sendOperation(revision: number, op: OtTextOperation): void {
      ws.send(JSON.stringify({ revision, op }));
    }
  }
  const client = new Typing(0);
  ws.on('message', () => {
    client.serverAck();
    acked?.();
  });
  return {
    key(pos) {
      const t0 = performance.now();
      const op = new ot.TextOperation();
      if (pos > 0) op.retain(pos);
      op.insert('x');
      if (client.text.length - pos > 0) op.retain(client.text.length - pos);
      client.text = client.text.slice(0, pos) + 'x' + client.text.slice(pos);
      client.applyClient(op);
      const localMs = performance.now() - t0;
      return { localMs, acked: new Promise<void>((resolve) => (acked = resolve)) };
    },
    finalLength: () => client.text.length,
    async close() {
      ws.close();
      net.close();
    },
  };
}

async function sharedbTypist(doc: string): Promise<Typist> {
  const ShareDB = require('sharedb') as ShareDbBackendClass;
  const WebSocketJSONStream = require('@teamwork/websocket-json-stream') as WebSocketJsonStreamClass;
  const client = require('sharedb/lib/client') as ShareDbClientModule;
  ShareDB.types.register(textUnicode);
  client.types.register(textUnicode);
  const backend = new ShareDB();
  const net = await wsServer((ws, req) => {
    const stream = new WebSocketJSONStream(ws);
    stream.on('error', () => {});
    backend.listen(stream, req);
  });
  const connection = new client.Connection(new WebSocket(net.url, { maxPayload: 2 ** 30 }));
  const d: ShareDbDoc = connection.get('bench', 'keystroke');
  await new Promise<void>((resolve, reject) => d.create(doc, textUnicode.uri, (e) => (e ? reject(e) : resolve())));
  return {
    key(pos) {
      let settle: (error?: Error | null) => void = () => {};
      const acked = new Promise<void>((resolve, reject) => (settle = (e) => (e ? reject(e) : resolve())));
      const t0 = performance.now();
      d.submitOp([pos, 'x'], (e) => settle(e));
      const localMs = performance.now() - t0;
      return { localMs, acked };
    },
    finalLength: () => (d.data as string).length,
    async close() {
      connection.close();
      net.close();
      await new Promise<void>((resolve) => backend.close(() => resolve()));
    },
  };
}

const TYPISTS: Record<System, (doc: string) => Promise<Typist>> = {
  otter: otterTypist,
  otjs: otjsTypist,
  sharedb: sharedbTypist,
};

/** Types `warmup + keys` characters into `doc` with `system`, each after the previous one's ack. */
async function measure(system: System, doc: string, keys: number): Promise<Figures> {
  collectGarbage();
  const typist = await TYPISTS[system](doc);
  const roundTrips: number[] = [];
  const locals: number[] = [];
  let caret = doc.length >> 1;
  for (let i = 0; i < WARMUP_KEYS + keys; i++) {
    const t0 = performance.now();
    const { localMs, acked } = typist.key(caret++);
    await acked;
    if (i >= WARMUP_KEYS) {
      roundTrips.push(performance.now() - t0);
      locals.push(localMs);
    }
  }
  const length = typist.finalLength();
  await typist.close();
  if (length !== doc.length + WARMUP_KEYS + keys) {
    throw new Error(`${NAMES[system]} at ${doc.length}: the text has ${length} code units, not ${doc.length + WARMUP_KEYS + keys}`);
  }
  return { roundTripMs: median(roundTrips), localMs: median(locals) };
}

/** `value / reference` as a ratio, with two significant digits below 0.01 (`0.0037×`). */
function times(value: number, reference: number): string {
  const r = value / reference;
  return r < 0.01 ? `${r.toPrecision(2)}×` : ratio(value, reference);
}

function sizeLabel(n: number): string {
  return n >= 1_000_000 ? `${n / 1_000_000} MB` : `${n / 1000} kB`;
}

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
}

/** Runs the benchmark and prints its tables. */
export async function run(): Promise<void> {
  const keys = Number(option('--keys') ?? DEFAULT_KEYS);
  const sizes = (option('--sizes')?.split(',') ?? DEFAULT_SIZES).map(Number);
  const systems = (option('--systems')?.split(',') ?? Object.keys(NAMES)) as System[];
  console.log('\n## Keystroke cost by document size (`bench/keystroke.ts`)\n');
  console.log(machineLine());
  console.log(`${count(keys)} timed keystrokes per case after ${WARMUP_KEYS} untimed; each waits for its ack; medians\n`);
  // A first, untimed pass per system on an empty document, so the first size measured does
  // not pay the JIT's warmup.
  for (const system of systems) await measure(system, '', keys);
  const results = new Map<string, Figures>();
  for (const size of sizes) {
    const doc = makeDocument(size);
    for (const system of systems) results.set(`${system}@${size}`, await measure(system, doc, keys));
  }
  const get = (system: System, size: number): Figures => results.get(`${system}@${size}`) as Figures;
  const base = sizes[0] as number;
  for (const [title, pick] of [
    ['round trip (ms per keystroke)', (f: Figures) => f.roundTripMs],
    ['local apply (ms per keystroke)', (f: Figures) => f.localMs],
  ] as const) {
    console.log(`### ${title}\n`);
    printTable(
      [
        'size',
        ...systems.map((s) => NAMES[s]),
        ...systems.map((s) => `${NAMES[s]} vs ${sizeLabel(base)}`),
        ...(systems.includes('otter') ? systems.filter((s) => s !== 'otter').map((s) => `${NAMES[s]} ÷ Otter`) : []),
      ],
      sizes.map((size) => [
        sizeLabel(size),
        ...systems.map((s) => (pick(get(s, size)) < 0.1 ? pick(get(s, size)).toPrecision(2) : ms(pick(get(s, size))))),
        ...systems.map((s) => times(pick(get(s, size)), pick(get(s, base)))),
        ...(systems.includes('otter')
          ? systems.filter((s) => s !== 'otter').map((s) => times(pick(get(s, size)), pick(get('otter', size))))
          : []),
      ]),
    );
  }
}

if (isMain(import.meta.url)) await run();
