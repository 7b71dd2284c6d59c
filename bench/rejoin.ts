/**
 * Offline rejoin: a client that typed K edits while offline reconnects to a document that
 * moved on by K acknowledged remote ops.
 *
 * Workload (seeded, identical for every system): a ~100 kB document (random letters, spaces,
 * newlines). Client A goes offline and types K single-character edits at scattered places —
 * its cursor jumps to a uniformly random position every 2 edits; each edit inserts a letter at
 * the cursor (60 %) or deletes the character before it (40 %, backspace). Meanwhile client B,
 * online, makes K single-character edits at uniformly random positions (60 % inserts), each
 * acknowledged before the next (so the server holds exactly K new ops); A's and B's edits are
 * interleaved in chunks of 100. Then A reconnects.
 *
 * Measured:
 * - typing: the sum of the times of A's K edit calls while offline (Otter `doc.insert` /
 *   `doc.delete`; ot.js: building the TextOperation, applying it to the editor's string and
 *   `client.applyClient`; ShareDB `doc.submitOp`). For scale, the same K keystrokes applied to
 *   a plain 100 kB string by slicing are timed too.
 * - rejoin: from the reconnect until A, B and the server hold the same text and A has nothing
 *   pending.
 *
 * Systems:
 * - Otter: the real server (`createServer`, MemoryStore, default sequencer options, rate limits
 *   raised as bench/load-peers/otter.ts does) on 127.0.0.1 and two real `Connection`s over the
 *   `ws` package. A goes offline through a WebSocket class this file controls: its live socket
 *   is terminated (as a network drop) and the sockets the connection opens while offline wait,
 *   unconnected, until the benchmark lets them dial. The reconnection is the client's own.
 * - ot.js (npm `ot` 0.0.15): `ot.Client` subclasses and one `ot.Server`, in process, messages
 *   passed directly (no sockets, no JSON): A's outgoing messages and the server's messages to A
 *   queue up while A is offline and are delivered on reconnect (server first, as socket.io
 *   buffers emits), so A's buffer is composed keystroke by keystroke and every server op is
 *   transformed against it on reconnect. Favourable to ot.js: it pays no network or parsing.
 * - ShareDB 7: an in-process Backend (memory db) behind a `ws` server as in
 *   bench/load-peers/sharedb.ts, type ot-text-unicode, two sharedb/lib/client Connections over
 *   `ws`; A's socket is closed (ShareDB composes the ops submitted while disconnected into its
 *   pending op) and `connection.bindToSocket(new socket)` reconnects it.
 *
 * Every case runs in its own child process (fresh heap and JIT), killed if it exceeds its time
 * limit; what finished before (typing) is still reported. K = 10,000 for all three systems;
 * K = 100,000 for Otter only with --full (ot.js and ShareDB are quadratic there), twice: with
 * the default sequencer options (the whole op history is kept: A catches up through the K ops)
 * and with the history capped at 10,000 ops (`retention: { ops: 10_000 }`: A's version has left
 * the history, so it gets a snapshot and rebases its pending edits over a text diff — the
 * `merged` event; fast, but not through the history).
 *
 * Run: npx tsx bench/rejoin.ts [--full] [--timeout <s>] [--systems otter,otjs,sharedb]
 *   (also part of `npm run bench`)
 *   --full         also runs Otter at K = 100,000 (whole history, and history capped at 10,000 ops)
 *   --systems      only these systems (default: all three)
 *   --doc-length   length of the seeded document (default 100,000)
 *   --timeout <s>  time limit per case (default 150 s at K = 10,000, 900 s at K = 100,000)
 *   --k <n>        K of the three-system comparison instead of 10,000 (for a quick look)
 */
import { type ChildProcess, fork } from 'node:child_process';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type as textUnicode } from 'ot-text-unicode';
import { WebSocket, WebSocketServer } from 'ws';
import {
  Connection,
  type SocketHandler,
  type WebSocketConstructor,
  type WebSocketLike,
} from '../src/client/index.js';
import { MemoryStore, type OtterServer, createServer } from '../src/server/index.js';
import { count, isMain, machineLine, ms, printTable, ratio } from './common.js';
import { seededRandom } from '../test/support/random.js';
import { OTTER_LIMITS } from './load-peers/otter.js';
import type {
  ShareDbBackend,
  ShareDbBackendClass,
  ShareDbClientModule,
  ShareDbConnection,
  ShareDbDoc,
  WebSocketJsonStreamClass,
} from './load-peers/types.js';
import type { OtTextOperation } from './peers.js';

const require = createRequire(import.meta.url);

const DEFAULT_DOC_LENGTH = 100_000;
/**
 * One-byte strings longer than this are allocated in V8's large-object space: every flat copy
 * of such a text (each `apply` to it) then costs far more (see the notes the Otter case prints).
 */
const V8_LARGE_STRING = 131_072;
const SEED = 20_240_601;
const CHUNK = 100;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz';

// ─── seeded workload ─────────────────────────────────────────────────────────────────────────

/** A deterministic document of random letters, spaces and newlines (ASCII). */
function makeDocument(length: number, seed: number): string {
  const rand = seededRandom(seed);
  const parts: string[] = [];
  for (let i = 0; i < length; i++) {
    const r = rand();
    parts.push(r < 0.15 ? ' ' : r < 0.17 ? '\n' : (ALPHABET[Math.floor(rand() * 26)] ?? 'a'));
  }
  return parts.join('');
}

/** One single-character edit: insert `ch` at `pos`, or (ch undefined) delete the character at `pos`. */
interface Edit {
  readonly pos: number;
  readonly ch: string | undefined;
}

/** A's offline typing: the cursor jumps every 2 edits; 60 % letters typed, 40 % backspaces. */
function scatteredEdits(length: number, k: number, seed: number): Edit[] {
  const rand = seededRandom(seed);
  const out: Edit[] = [];
  let cursor = 0;
  for (let i = 0; i < k; i++) {
    if (i % 2 === 0) cursor = Math.floor(rand() * (length + 1));
    if (rand() < 0.6 || cursor === 0) {
      out.push({ pos: cursor, ch: ALPHABET[Math.floor(rand() * 26)] ?? 'a' });
      cursor++;
      length++;
    } else {
      cursor--;
      out.push({ pos: cursor, ch: undefined });
      length--;
    }
  }
  return out;
}

/** B's online edits: each at a uniformly random position; 60 % inserts. */
function randomEdits(length: number, k: number, seed: number): Edit[] {
  const rand = seededRandom(seed);
  const out: Edit[] = [];
  for (let i = 0; i < k; i++) {
    if (rand() < 0.6 || length === 0) {
      out.push({ pos: Math.floor(rand() * (length + 1)), ch: ALPHABET[Math.floor(rand() * 26)] ?? 'a' });
      length++;
    } else {
      out.push({ pos: Math.floor(rand() * length), ch: undefined });
      length--;
    }
  }
  return out;
}

interface Workload {
  readonly doc: string;
  readonly a: readonly Edit[];
  readonly b: readonly Edit[];
}

function makeWorkload(k: number, docLength: number): Workload {
  const doc = makeDocument(docLength, SEED);
  return { doc, a: scatteredEdits(doc.length, k, SEED + 1), b: randomEdits(doc.length, k, SEED + 2) };
}

/** The plain-string floor: A's K keystrokes applied to the document by slicing. */
function stringFloor(w: Workload): number {
  let text = w.doc;
  const t0 = performance.now();
  for (const e of w.a) {
    text = e.ch === undefined ? text.slice(0, e.pos) + text.slice(e.pos + 1) : text.slice(0, e.pos) + e.ch + text.slice(e.pos);
  }
  const elapsed = performance.now() - t0;
  if (text.length === 0) throw new Error('unreachable');
  return elapsed;
}

// ─── a WebSocket class whose connections can be held offline ─────────────────────────────────

type AnyHandler = ((event: unknown) => unknown) | null;

function call(handler: SocketHandler, event: unknown): void {
  (handler as AnyHandler)?.(event);
}

/**
 * Controls the network of the clients whose WebSocket class it makes ({@link socketClass}):
 * `offline()` drops their live connections (terminated, as a network failure) and holds every
 * socket they open afterwards unconnected (readyState 0) until `online()` lets them dial.
 * Also sums the time the clients spend handling incoming frames (`handlerMs`).
 */
export class SocketGate {
  private isOnline = true;
  /** Sockets waiting to dial. */
  readonly waiting = new Set<GatedSocket>();
  /** Sockets with a real connection (open or opening). */
  readonly live = new Set<GatedSocket>();
  /** Milliseconds spent in the clients' onmessage handlers. */
  handlerMs = 0;

  get isUp(): boolean {
    return this.isOnline;
  }

  /** Drops every live connection; new ones wait until {@link online}. */
  offline(): void {
    this.isOnline = false;
    for (const s of [...this.live]) s.drop();
  }

  /** Lets every waiting socket dial now. */
  online(): void {
    this.isOnline = true;
    for (const s of [...this.waiting]) s.dial();
    this.waiting.clear();
  }

  /** The WebSocket class to give to `Connection`. */
  socketClass(): WebSocketConstructor {
    const gate = this;
    return class extends GatedSocket {
      constructor(url: string, protocols?: string[]) {
        super(gate, url, protocols);
      }
    };
  }
}

class GatedSocket implements WebSocketLike {
  onopen: SocketHandler = null;
  onmessage: SocketHandler = null;
  onclose: SocketHandler = null;
  onerror: SocketHandler = null;
  private real: WebSocket | undefined;
  private done = false;

  constructor(
    private readonly gate: SocketGate,
    private readonly url: string,
    private readonly protocols: string[] | undefined,
  ) {
    if (gate.isUp) this.dial();
    else gate.waiting.add(this);
  }

  get readyState(): number {
    if (this.done) return 3;
    return this.real?.readyState ?? 0;
  }

  dial(): void {
    if (this.done || this.real !== undefined) return;
    const ws = new WebSocket(this.url, this.protocols);
    this.real = ws;
    this.gate.live.add(this);
    ws.onopen = () => call(this.onopen, {});
    ws.onmessage = (e) => {
      const t0 = performance.now();
      try {
        call(this.onmessage, { data: e.data });
      } finally {
        this.gate.handlerMs += performance.now() - t0;
      }
    };
    ws.onerror = () => {};
    ws.onclose = (e) => {
      this.gate.live.delete(this);
      if (this.done) return;
      this.done = true;
      call(this.onclose, { code: e.code });
    };
  }

  /** A network failure: the connection is gone without a closing handshake. */
  drop(): void {
    this.real?.terminate();
  }

  send(data: string): void {
    if (this.real === undefined || this.real.readyState !== 1) throw new Error('the socket is not open');
    this.real.send(data);
  }

  close(code?: number, reason?: string): void {
    if (this.done) return;
    if (this.real !== undefined) {
      this.real.close(code, reason);
      return;
    }
    this.done = true;
    this.gate.waiting.delete(this);
    setImmediate(() => call(this.onclose, { code: 1006 }));
  }
}

// ─── the cases (each runs in a child process) ────────────────────────────────────────────────

type System = 'otter' | 'otjs' | 'sharedb';

interface CaseSpec {
  readonly system: System;
  readonly k: number;
  readonly docLength: number;
  /** Otter only: cap the history at 10,000 ops (`retention: { ops: 10_000 }`) instead of keeping all. */
  readonly capHistory?: boolean;
}

/** What a child reports as it goes. */
type ChildMessage =
  | { type: 'typed'; typingMs: number; floorMs: number }
  | { type: 'remote-done'; remoteMs: number; serverVersion: number }
  | {
      type: 'result';
      typingMs: number;
      floorMs: number;
      rejoinMs: number;
      converged: boolean;
      length: number;
      notes: string[];
    }
  | { type: 'failed'; error: string };

function report(m: ChildMessage): void {
  if (process.send !== undefined) process.send(m);
  else console.log(JSON.stringify(m));
}

const sleep = (msec: number): Promise<void> => new Promise((r) => setTimeout(r, msec));

/** Polls `check` every millisecond until it is true, or throws after `limitMs`. */
async function until(check: () => boolean | Promise<boolean>, limitMs: number, what: string): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${limitMs} ms`);
    await sleep(1);
  }
}

const WAIT_MS = 3_600_000;

async function otterCase(k: number, docLength: number, capHistory: boolean): Promise<void> {
  const w = makeWorkload(k, docLength);
  const floorMs = stringFloor(w);
  const server: OtterServer = await createServer({
    port: 0,
    host: '127.0.0.1',
    store: new MemoryStore(),
    limits: { ...OTTER_LIMITS },
    ...(capHistory ? { sequencer: { retention: { ops: 10_000 } } } : {}),
  });
  const docId = 'rejoin';
  const gateA = new SocketGate();
  const notes: string[] = [];
  const options = {
    minReconnectDelay: 20,
    maxReconnectDelay: 40,
    heartbeatInterval: WAIT_MS,
  };
  const connA = new Connection(server.url, { ...options, WebSocket: gateA.socketClass(), clientId: 'A' });
  const connB = new Connection(server.url, { ...options, WebSocket: WebSocket as unknown as WebSocketConstructor, clientId: 'B' });
  for (const [name, c] of [['A', connA], ['B', connB]] as const) {
    c.on('error', (e) => notes.push(`${name} connection error: ${e.message}`));
  }
  const a = connA.open(docId);
  const b = connB.open(docId);
  let merged = 0;
  for (const [name, d] of [['A', a], ['B', b]] as const) {
    d.on('error', (m) => notes.push(`${name} document error ${m.code}: ${m.message}`));
    d.on('diverged', (e) => notes.push(`${name} diverged: ${JSON.stringify(e)}`));
    d.on('reset', (e) => notes.push(`${name} reset: ${e.action}`));
  }
  a.on('merged', (e) => {
    merged++;
    notes.push(`A merged ${e.edits} pending ops over a text diff at version ${e.version} (history not available)`);
  });
  await Promise.all([a.ready, b.ready]);
  a.insert(0, w.doc);
  await a.synced();
  await until(() => b.text === w.doc, 30_000, 'B to receive the seed');

  // A goes offline.
  gateA.offline();
  await until(() => connA.state === 'connecting' && gateA.waiting.size > 0, 30_000, 'A to notice the drop');

  let typingMs = 0;
  let remoteMs = 0;
  for (let start = 0; start < k; start += CHUNK) {
    const end = Math.min(k, start + CHUNK);
    for (let i = start; i < end; i++) {
      const e = w.a[i] as Edit;
      const t0 = performance.now();
      if (e.ch === undefined) a.delete(e.pos, 1);
      else a.insert(e.pos, e.ch);
      typingMs += performance.now() - t0;
    }
    const t1 = performance.now();
    for (let i = start; i < end; i++) {
      const e = w.b[i] as Edit;
      if (e.ch === undefined) b.delete(e.pos, 1);
      else b.insert(e.pos, e.ch);
      await b.synced();
    }
    remoteMs += performance.now() - t1;
  }
  report({ type: 'typed', typingMs, floorMs });
  const head = (await server.sequencer.getSnapshot(docId)).version;
  report({ type: 'remote-done', remoteMs, serverVersion: head });
  if (connA.state !== 'connecting') notes.push(`A was ${connA.state} while offline`);

  // Reconnect.
  const handlerBefore = gateA.handlerMs;
  const t0 = performance.now();
  gateA.online();
  await a.synced();
  const expected = (): string => a.text;
  await until(
    async () => b.text === expected() && (await server.sequencer.getSnapshot(docId)).text === expected(),
    WAIT_MS,
    'convergence',
  );
  const rejoinMs = performance.now() - t0;
  const snap = await server.sequencer.getSnapshot(docId);
  notes.push(
    `server head ${count(head)} before the rejoin, ${count(snap.version)} after (A's edits went out as ${snap.version - head} op(s))`,
  );
  notes.push(`A's frame handlers ran ${ms(gateA.handlerMs - handlerBefore)} ms of the rejoin`);
  if (merged === 0) notes.push('A caught up from the server history (no text-diff merge)');
  if (snap.text.length > V8_LARGE_STRING) {
    notes.push(
      `the text ends at ${count(snap.text.length)} code units, over ${count(V8_LARGE_STRING)}: from there on every apply to the ` +
        "client's flat strings allocates in V8's large-object space (far slower per op on this machine)",
    );
  }
  const converged = a.text === b.text && b.text === snap.text && a.syncState.kind === 'synchronized';
  report({ type: 'result', typingMs, floorMs, rejoinMs, converged, length: snap.text.length, notes });
  connA.close();
  connB.close();
  await server.close();
}

// ot.js: minimal typings for its client/server model (npm `ot` 0.0.15, untyped).
interface OtClient {
  revision: number;
  applyClient(op: OtTextOperation): void;
  applyServer(op: OtTextOperation): void;
  serverAck(): void;
}
interface OtServer {
  document: string;
  receiveOperation(revision: number, op: OtTextOperation): OtTextOperation;
}
interface OtModuleFull {
  readonly TextOperation: {
    new (): OtTextOperation;
  };
  readonly Client: new (revision: number) => OtClient;
  readonly Server: new (document: string, operations?: OtTextOperation[]) => OtServer;
}

function otjsCase(k: number, docLength: number): void {
  const ot = require('ot') as OtModuleFull;
  const w = makeWorkload(k, docLength);
  const floorMs = stringFloor(w);
  const server = new ot.Server(w.doc);
  type Outgoing = { revision: number; op: OtTextOperation };
  type Incoming = { kind: 'op'; op: OtTextOperation } | { kind: 'ack' };

  /** An editor over ot.Client: its text, its outbox and its inbox (filled while offline). */
  class Peer extends ot.Client {
    text: string;
    online = true;
    readonly outbox: Outgoing[] = [];
    readonly inbox: Incoming[] = [];
    constructor(text: string) {
      super(0);
      this.text = text;
    }
    sendOperation(revision: number, op: OtTextOperation): void {
      this.outbox.push({ revision, op });
    }
    applyOperation(op: OtTextOperation): void {
      this.text = op.apply(this.text);
    }
    /** A keystroke in the editor. */
    edit(e: Edit): void {
      const op = new ot.TextOperation();
      if (e.pos > 0) op.retain(e.pos);
      if (e.ch === undefined) {
        op.delete(1);
        this.text = this.text.slice(0, e.pos) + this.text.slice(e.pos + 1);
      } else {
        op.insert(e.ch);
        this.text = this.text.slice(0, e.pos) + e.ch + this.text.slice(e.pos);
      }
      const rest = this.text.length - e.pos - (e.ch === undefined ? 0 : 1);
      if (rest > 0) op.retain(rest);
      this.applyClient(op);
    }
  }
  const peers: Peer[] = [];
  const a = new Peer(w.doc);
  const b = new Peer(w.doc);
  peers.push(a, b);
  /** Delivers every online peer's outbox to the server and every online peer's inbox to it. */
  const pump = (): void => {
    for (let busy = true; busy; ) {
      busy = false;
      for (const p of peers) {
        if (!p.online) continue;
        for (let m = p.outbox.shift(); m !== undefined; m = p.outbox.shift()) {
          busy = true;
          const applied = server.receiveOperation(m.revision, m.op);
          for (const q of peers) q.inbox.push(q === p ? { kind: 'ack' } : { kind: 'op', op: applied });
        }
      }
      for (const p of peers) {
        if (!p.online) continue;
        for (let m = p.inbox.shift(); m !== undefined; m = p.inbox.shift()) {
          busy = true;
          if (m.kind === 'ack') p.serverAck();
          else p.applyServer(m.op);
        }
      }
    }
  };
  a.online = false;
  let typingMs = 0;
  let remoteMs = 0;
  for (let start = 0; start < k; start += CHUNK) {
    const end = Math.min(k, start + CHUNK);
    for (let i = start; i < end; i++) {
      const t0 = performance.now();
      a.edit(w.a[i] as Edit);
      typingMs += performance.now() - t0;
    }
    const t1 = performance.now();
    for (let i = start; i < end; i++) {
      b.edit(w.b[i] as Edit);
      pump();
    }
    remoteMs += performance.now() - t1;
  }
  report({ type: 'typed', typingMs, floorMs });
  report({ type: 'remote-done', remoteMs, serverVersion: b.revision });
  const t0 = performance.now();
  a.online = true;
  pump();
  const rejoinMs = performance.now() - t0;
  const converged = a.text === b.text && b.text === server.document && a.outbox.length === 0;
  report({
    type: 'result',
    typingMs,
    floorMs,
    rejoinMs,
    converged,
    length: server.document.length,
    notes: ['in-process message passing (no sockets, no JSON)'],
  });
}

/** What the ShareDB client API adds to bench/load-peers/types.ts that this case calls. */
type ShareDoc = ShareDbDoc & {
  readonly version: number | null;
  whenNothingPending(callback: () => void): void;
  fetch(callback: (error?: Error | null) => void): void;
};
type ShareConnection = ShareDbConnection & {
  bindToSocket(socket: WebSocket): void;
  readonly state: string;
  on(event: 'state', listener: (state: string) => void): void;
};

async function sharedbCase(k: number, docLength: number): Promise<void> {
  const w = makeWorkload(k, docLength);
  const floorMs = stringFloor(w);
  const ShareDB = require('sharedb') as ShareDbBackendClass;
  const WebSocketJSONStream = require('@teamwork/websocket-json-stream') as WebSocketJsonStreamClass;
  const client = require('sharedb/lib/client') as ShareDbClientModule;
  ShareDB.types.register(textUnicode);
  client.types.register(textUnicode);
  const backend: ShareDbBackend = new ShareDB();
  const COLLECTION = 'bench';
  const ID = 'rejoin';
  const httpServer = http.createServer();
  const wss = new WebSocketServer({ server: httpServer });
  wss.on('connection', (ws, req) => {
    const stream = new WebSocketJSONStream(ws);
    stream.on('error', () => {});
    backend.listen(stream, req);
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
  const notes: string[] = [];
  const connect = (): { connection: ShareConnection; doc: ShareDoc } => {
    const connection = new client.Connection(new WebSocket(url)) as ShareConnection;
    const doc = connection.get(COLLECTION, ID) as ShareDoc;
    doc.on('error', (e) => notes.push(`doc error: ${e.message}`));
    return { connection, doc };
  };
  const submit = (doc: ShareDoc, e: Edit): Promise<void> =>
    new Promise((resolve, reject) =>
      doc.submitOp(e.ch === undefined ? [e.pos, { d: 1 }] : [e.pos, e.ch], (err) => (err ? reject(err) : resolve())),
    );
  const A = connect();
  const B = connect();
  await new Promise<void>((resolve, reject) => A.doc.create(w.doc, textUnicode.uri, (e) => (e ? reject(e) : resolve())));
  for (const d of [A.doc, B.doc]) {
    await new Promise<void>((resolve, reject) => d.subscribe((e) => (e ? reject(e) : resolve())));
  }
  await until(() => B.doc.data === w.doc, 30_000, 'B to receive the seed');

  // A goes offline: its socket is closed (ShareDB: 'disconnected', it keeps its pending ops).
  const socketA = (A.connection as unknown as { socket: WebSocket }).socket;
  socketA.terminate();
  await until(() => A.connection.state === 'disconnected', 30_000, 'A to notice the drop');

  let typingMs = 0;
  let remoteMs = 0;
  for (let start = 0; start < k; start += CHUNK) {
    const end = Math.min(k, start + CHUNK);
    for (let i = start; i < end; i++) {
      const e = w.a[i] as Edit;
      const t0 = performance.now();
      A.doc.submitOp(e.ch === undefined ? [e.pos, { d: 1 }] : [e.pos, e.ch]);
      typingMs += performance.now() - t0;
    }
    const t1 = performance.now();
    for (let i = start; i < end; i++) await submit(B.doc, w.b[i] as Edit);
    remoteMs += performance.now() - t1;
  }
  report({ type: 'typed', typingMs, floorMs });
  report({ type: 'remote-done', remoteMs, serverVersion: B.doc.version ?? -1 });

  const observer = backend.connect().get(COLLECTION, ID) as ShareDoc;
  const serverText = (): Promise<string> =>
    new Promise((resolve, reject) => observer.fetch((e) => (e ? reject(e) : resolve(observer.data as string))));
  const t0 = performance.now();
  A.connection.bindToSocket(new WebSocket(url));
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (A.connection.state === 'connected' && !A.doc.hasPending()) resolve();
      else setTimeout(check, 1);
    };
    check();
  });
  await until(async () => B.doc.data === A.doc.data && (await serverText()) === A.doc.data, WAIT_MS, 'convergence');
  const rejoinMs = performance.now() - t0;
  const final = await serverText();
  const converged = A.doc.data === B.doc.data && B.doc.data === final;
  notes.push(`server version ${observer.version ?? '?'} after the rejoin`);
  report({ type: 'result', typingMs, floorMs, rejoinMs, converged, length: final.length, notes });
  A.connection.close();
  B.connection.close();
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  httpServer.close();
}

async function childMain(spec: CaseSpec): Promise<void> {
  try {
    if (spec.system === 'otter') await otterCase(spec.k, spec.docLength, spec.capHistory === true);
    else if (spec.system === 'otjs') otjsCase(spec.k, spec.docLength);
    else await sharedbCase(spec.k, spec.docLength);
  } catch (e) {
    report({ type: 'failed', error: String(e instanceof Error ? e.stack : e) });
  }
  // Sockets and timers of the peers may linger: the case is over.
  process.exit(0);
}

// ─── the parent: runs each case in a child with a time limit ─────────────────────────────────

interface Outcome {
  readonly spec: CaseSpec;
  typingMs?: number;
  floorMs?: number;
  remoteMs?: number;
  serverVersion?: number;
  rejoinMs?: number;
  converged?: boolean;
  length?: number;
  notes: string[];
  /** Why it did not finish: a time limit or an error. */
  failure?: string;
}

const NAMES: Record<System, string> = { otter: 'Otter', otjs: 'ot.js (Client/Server)', sharedb: 'ShareDB 7' };

function nameOf(spec: CaseSpec): string {
  return spec.capHistory === true ? `${NAMES[spec.system]}, history capped at 10,000 ops` : NAMES[spec.system];
}

function runCase(spec: CaseSpec, limitS: number): Promise<Outcome> {
  const out: Outcome = { spec, notes: [] };
  return new Promise((resolve) => {
    const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child', JSON.stringify(spec)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const timer = setTimeout(() => {
      out.failure = `did not finish within ${limitS} s`;
      child.kill('SIGKILL');
    }, limitS * 1000);
    child.on('message', (m: ChildMessage) => {
      switch (m.type) {
        case 'typed':
          out.typingMs = m.typingMs;
          out.floorMs = m.floorMs;
          break;
        case 'remote-done':
          out.remoteMs = m.remoteMs;
          out.serverVersion = m.serverVersion;
          break;
        case 'result': {
          const { type: _, ...result } = m;
          Object.assign(out, result, { notes: [...out.notes, ...result.notes] });
          break;
        }
        case 'failed':
          out.failure = m.error;
          break;
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (out.rejoinMs === undefined && out.failure === undefined) {
        out.failure = `the child exited (${signal ?? code}) without a result`;
      }
      resolve(out);
    });
  });
}

function parseArgs(argv: readonly string[]): {
  full: boolean;
  timeoutS: number | undefined;
  k: number;
  systems: readonly System[];
  docLength: number;
} {
  let docLength = DEFAULT_DOC_LENGTH;
  let systems: System[] = ['otter', 'otjs', 'sharedb'];
  let full = false;
  let timeoutS: number | undefined;
  let k = 10_000;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--full') full = true;
    else if (arg === '--timeout') {
      timeoutS = Number(argv[++i]);
      if (!(timeoutS > 0)) throw new Error('--timeout needs a positive number of seconds');
    } else if (arg === '--k') {
      k = Number(argv[++i]);
      if (!Number.isSafeInteger(k) || k < 1) throw new Error('--k needs a positive integer');
    } else if (arg === '--doc-length') {
      docLength = Number(argv[++i]);
      if (!Number.isSafeInteger(docLength) || docLength < 1) throw new Error('--doc-length needs a positive integer');
    } else if (arg === '--systems') {
      systems = (argv[++i] ?? '').split(',').filter((x): x is System => x === 'otter' || x === 'otjs' || x === 'sharedb');
    }
  }
  return { full, timeoutS, k, systems, docLength };
}

export async function run(): Promise<void> {
  const { full, timeoutS, k, systems, docLength } = parseArgs(process.argv.slice(2));
  console.log('\n## rejoin: K offline edits at scattered places against K acknowledged remote ops\n');
  console.log(machineLine());
  console.log(
    `document: ${count(docLength)} code units (seeded); A offline types K single characters, cursor jumping every 2 edits ` +
      '(60 % letters, 40 % backspaces); B makes K acknowledged single-character edits at random places; chunks of 100 interleaved.',
  );
  console.log('typing = sum of the times of A\'s K edit calls; rejoin = reconnect → A, B and server hold the same text, A has nothing pending.');
  console.log('each case runs in its own child process (node --import tsx), killed at its time limit.\n');
  const specs: { spec: CaseSpec; limit: number }[] = [
    { spec: { system: 'otter', k, docLength }, limit: timeoutS ?? 150 },
    { spec: { system: 'otjs', k, docLength }, limit: timeoutS ?? 150 },
    { spec: { system: 'sharedb', k, docLength }, limit: timeoutS ?? 150 },
  ];
  if (full && systems.includes('otter')) {
    specs.push({ spec: { system: 'otter', k: 100_000, docLength }, limit: timeoutS ?? 900 });
    specs.push({ spec: { system: 'otter', k: 100_000, docLength, capHistory: true }, limit: timeoutS ?? 900 });
  }
  const outcomes: Outcome[] = [];
  for (const { spec, limit } of specs) {
    if (!systems.includes(spec.system)) continue;
    const t0 = performance.now();
    const o = await runCase(spec, limit);
    outcomes.push(o);
    console.log(
      `${nameOf(spec)} K=${count(spec.k)}: ${o.failure === undefined ? 'done' : (o.failure.split('\n')[0] ?? '')} ` +
        `(${((performance.now() - t0) / 1000).toFixed(1)} s in all)`,
    );
  }
  if (!full) {
    console.log('Otter K=100,000 (whole history, and history capped at 10,000 ops): skipped (run with --full; ot.js and ShareDB are reported at K = 10,000 only)');
  }
  console.log('');

  const otter10 = outcomes.find((o) => o.spec.system === 'otter' && o.spec.k === k && o.spec.capHistory !== true);
  const cell = (v: number | undefined): string => (v === undefined ? '—' : ms(v));
  const rel = (v: number | undefined, ref: number | undefined, same: boolean): string =>
    same ? '1.00×' : v === undefined || ref === undefined ? '—' : ratio(v, ref);
  printTable(
    ['system', 'K', 'typing ms', 'string floor ms', 'rejoin ms', 'typing × Otter', 'rejoin × Otter', 'converged', 'remote phase ms'],
    outcomes.map((o) => {
      const isRef = o === otter10;
      const ref = o.spec.k === k ? otter10 : undefined;
      return [
        nameOf(o.spec),
        count(o.spec.k),
        cell(o.typingMs),
        cell(o.floorMs),
        o.rejoinMs === undefined ? (o.failure ?? '—').split('\n')[0] ?? '—' : ms(o.rejoinMs),
        ref === undefined ? '—' : rel(o.typingMs, ref.typingMs, isRef),
        ref === undefined ? '—' : rel(o.rejoinMs, ref.rejoinMs, isRef),
        o.converged === undefined ? '—' : o.converged ? 'yes' : 'NO',
        cell(o.remoteMs),
      ];
    }),
  );
  console.log('ratio = that system\'s time ÷ Otter\'s at the same K (above 1: Otter is faster). ' +
    '"remote phase" = B\'s K acknowledged edits (not part of either timing).\n');
  for (const o of outcomes) {
    const lines = [...o.notes];
    if (o.serverVersion !== undefined) lines.unshift(`server version after B's edits: ${count(o.serverVersion)}`);
    if (o.failure !== undefined && o.failure.includes('\n')) lines.push(`failure: ${o.failure}`);
    if (lines.length === 0) continue;
    console.log(`${nameOf(o.spec)} K=${count(o.spec.k)}:`);
    for (const l of lines) console.log(`  - ${l}`);
  }
  const bad = outcomes.filter((o) => o.converged === false);
  if (bad.length > 0) console.log(`\nNOT CONVERGED: ${bad.map((o) => `${nameOf(o.spec)} K=${o.spec.k}`).join(', ')}`);
}

if (isMain(import.meta.url)) {
  const i = process.argv.indexOf('--child');
  if (i >= 0) await childMain(JSON.parse(process.argv[i + 1] ?? '{}') as CaseSpec);
  else await run();
}
