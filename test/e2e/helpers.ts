/**
 * Shared helpers of the end-to-end tests (real servers, real sockets, real clients). Not a test
 * file itself.
 *
 * - {@link startServer}/{@link stopServer}: an Otter server on 127.0.0.1, port 0 by default;
 * - {@link ClientNetwork}: the WebSocket class an Otter `Connection` uses in these tests: it
 *   exposes the underlying `ws` socket so a test can kill it from underneath, can take a client
 *   offline (connection attempts fail), can delay frames in either direction by random amounts
 *   (keeping per-socket order) and taps every frame;
 * - {@link randomEdit}: a random insert or delete on a document that never cuts into or deletes
 *   a marker such as «c3-17», so tests can count markers afterwards.
 */
import { WebSocket, type RawData } from 'ws';
import {
  Connection,
  type ConnectionOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from '../../src/client/connection.js';
import type { CollaborativeDocument } from '../../src/client/document.js';
import { type OtterServer, type ServerOptions, createServer } from '../../src/server/index.js';
import { type Random, below, pick } from '../support/random.js';
import { textOf } from '../support/raw-client.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { waitFor, within } from '../support/wait.js';

// ─── cleanup ────────────────────────────────────────────────────────────────────────────────

/** Things to undo after a test, in reverse order; `run` never throws before all ran. */
export class Cleanup {
  private readonly tasks: Array<() => unknown> = [];

  /** Registers `task` to run at cleanup. */
  add(task: () => unknown): void {
    this.tasks.push(task);
  }

  /** Runs every registered task, newest first; rethrows the first failure at the end. */
  async run(): Promise<void> {
    let first: unknown;
    while (this.tasks.length > 0) {
      const task = this.tasks.pop() as () => unknown;
      try {
        await task();
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw first;
  }
}

/** A fresh temporary directory, removed at cleanup. */
export function tempDir(cleanup: Cleanup, prefix = 'otter-e2e-'): string {
  const dir = makeTempDir(prefix);
  cleanup.add(() => removeTempDir(dir));
  return dir;
}

// ─── servers ────────────────────────────────────────────────────────────────────────────────

/**
 * Starts an Otter server on 127.0.0.1 (port 0 unless `options.port` says otherwise) and
 * registers its shutdown with `cleanup`. Closing twice is harmless (`close` is idempotent).
 */
export async function startServer(cleanup: Cleanup, options: ServerOptions = {}): Promise<OtterServer> {
  const server = await createServer({ host: '127.0.0.1', port: 0, ...options });
  cleanup.add(() => server.close());
  return server;
}

/** Graceful shutdown of `server` (1001 to every client), bounded. */
export async function stopServer(server: OtterServer, ms = 10_000): Promise<void> {
  await within(server.close(), ms, 'server.close()');
}

/** The server's committed text and version of `docId`. */
export async function headOf(server: OtterServer, docId: string): Promise<{ version: number; text: string }> {
  const { version, text } = await server.sequencer.getSnapshot(docId);
  return { version, text };
}

// ─── the client's network ───────────────────────────────────────────────────────────────────

/** Options of a {@link ClientNetwork}. */
export interface NetworkOptions {
  /** Ms to delay each frame (0: deliver at once); called once per frame, with its direction. */
  delay?: (direction: 'in' | 'out') => number;
  /** Sees every frame the client sends, as it goes onto the socket. */
  onOutgoing?: (frame: string) => void;
  /** Sees every text frame the client receives, as it is delivered to the client. */
  onIncoming?: (frame: string) => void;
}

type Handler = ((event: unknown) => void) | null;

/** A queue that runs its tasks no earlier than their time and strictly in order. */
class OrderedDelay {
  private readonly queue: Array<{ at: number; run: () => void }> = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private last = 0;

  /** Runs `run` after `ms` ms, but never before a task pushed earlier. */
  push(ms: number, run: () => void): void {
    if (ms <= 0 && this.queue.length === 0) {
      run();
      return;
    }
    this.last = Math.max(this.last, Date.now() + ms);
    this.queue.push({ at: this.last, run });
    this.schedule();
  }

  /** Forgets every task not run yet. */
  clear(): void {
    this.queue.length = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    const head = this.queue[0];
    if (head === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = Date.now();
      while (this.queue.length > 0 && (this.queue[0] as { at: number }).at <= now) {
        (this.queue.shift() as { run: () => void }).run();
      }
      this.schedule();
    }, Math.max(0, head.at - Date.now()));
  }
}

/** One socket of a {@link ClientNetwork}: a `ws` client socket behind the WebSocketLike API. */
export class TestSocket implements WebSocketLike {
  onopen: Handler = null;
  onmessage: Handler = null;
  onclose: Handler = null;
  onerror: Handler = null;
  /** The real socket; undefined when the network was offline at creation. */
  readonly inner: WebSocket | undefined;
  /** The close code the client was told, once told. */
  closeCode: number | undefined;
  /** Whether the socket ever opened. */
  wasOpen = false;
  private readonly incoming = new OrderedDelay();
  private readonly outgoing = new OrderedDelay();
  private done = false;
  private frozen = false;

  constructor(
    readonly url: string,
    private readonly network: ClientNetwork,
  ) {
    if (network.offline) {
      this.inner = undefined;
      setTimeout(() => this.finish(1006), 0);
      return;
    }
    const ws = new WebSocket(url);
    this.inner = ws;
    ws.on('open', () => {
      this.wasOpen = true;
      (this.onopen as Handler)?.({});
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const payload = isBinary ? data : textOf(data);
      this.incoming.push(network.delay('in'), () => {
        if (this.done) return;
        if (typeof payload === 'string') {
          network.note(`< ${payload}`);
          network.options.onIncoming?.(payload);
        }
        (this.onmessage as Handler)?.({ data: payload });
      });
    });
    ws.on('close', (code: number) => {
      this.incoming.push(network.delay('in'), () => this.finish(code));
    });
    ws.on('error', () => {}); // a close event follows
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed (as the client was told). */
  get readyState(): number {
    if (this.done) return 3;
    return this.inner?.readyState ?? 0;
  }

  send(data: string): void {
    const ws = this.inner;
    if (ws === undefined || ws.readyState === WebSocket.CONNECTING) throw new Error('the socket is not open');
    if (this.frozen) return;
    this.outgoing.push(this.network.delay('out'), () => {
      if (ws.readyState !== WebSocket.OPEN) {
        this.network.note(`lost > ${data}`);
        return; // lost with the connection
      }
      this.network.note(`> ${data}`);
      this.network.options.onOutgoing?.(data);
      ws.send(data);
    });
  }

  close(code?: number, reason?: string): void {
    const ws = this.inner;
    if (ws === undefined || this.frozen) return;
    this.outgoing.push(this.network.delay('out'), () => ws.close(code, reason));
  }

  /**
   * Kills the connection from underneath, as a network failure would: the TCP connection is
   * destroyed at once (no close frame), and frames still in transit either way are lost.
   */
  kill(): void {
    this.network.note('kill');
    this.outgoing.clear();
    this.incoming.clear();
    if (this.inner === undefined) return;
    this.inner.terminate();
    // `ws` reports the close asynchronously; the close event then reaches the client.
    this.inner.removeAllListeners('message');
  }

  /**
   * Makes the connection half-open, as a dead network path would: nothing more is sent or
   * delivered either way, and the socket stops reading, so the server's pings go unanswered —
   * but no side closes anything. Each side has to find out by its heartbeat.
   */
  freeze(): void {
    this.network.note('freeze');
    this.frozen = true;
    this.outgoing.clear();
    this.incoming.clear();
    this.inner?.removeAllListeners('message');
    this.inner?.pause();
  }

  private finish(code: number): void {
    if (this.done) return;
    this.done = true;
    this.network.note(`closed ${code}`);
    this.closeCode = code;
    this.network.closeCodes.push(code);
    if (code === 1006) (this.onerror as Handler)?.({});
    (this.onclose as Handler)?.({ code });
  }
}

/**
 * The network of one Otter client: pass {@link WebSocket} as the Connection's `WebSocket`
 * option. Every socket the client creates is recorded.
 */
export class ClientNetwork {
  /** Every socket the client created, in order. */
  readonly sockets: TestSocket[] = [];
  /** The close codes the client was told, in order. */
  readonly closeCodes: number[] = [];
  /** While true, new sockets fail to connect (as if the network were down). */
  offline = false;
  /** What happened on this network, one line per frame or event (the last 5,000). */
  readonly trace: string[] = [];
  private readonly started = Date.now();

  /** Adds a line to {@link trace}. */
  note(line: string): void {
    this.trace.push(`${String(Date.now() - this.started).padStart(6)} #${this.sockets.length} ${line}`);
    if (this.trace.length > 5000) this.trace.splice(0, 1000);
  }
  /** The class to hand to the Connection. */
  readonly WebSocket: WebSocketConstructor;

  constructor(readonly options: NetworkOptions = {}) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const network = this;
    this.WebSocket = class extends TestSocket {
      constructor(url: string) {
        super(url, network);
        network.sockets.push(this);
      }
    };
  }

  /** Delay for the next frame going `direction`. */
  delay(direction: 'in' | 'out'): number {
    return this.options.delay?.(direction) ?? 0;
  }

  /** The latest socket. */
  get current(): TestSocket | undefined {
    return this.sockets[this.sockets.length - 1];
  }

  /** Whether the latest socket is open. */
  get isOpen(): boolean {
    return this.current?.readyState === WebSocket.OPEN;
  }

  /** Kills the latest socket from underneath (see {@link TestSocket.kill}); false if none is open. */
  kill(): boolean {
    const socket = this.current;
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) return false;
    socket.kill();
    return true;
  }

  /** Makes the latest socket half-open (see {@link TestSocket.freeze}); false if none is open. */
  freeze(): boolean {
    const socket = this.current;
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) return false;
    socket.freeze();
    return true;
  }

  /** Takes the client off the network: its socket dies and reconnection attempts fail. */
  goOffline(): void {
    this.offline = true;
    this.kill();
  }
}

// ─── documents ──────────────────────────────────────────────────────────────────────────────

/** Every marker «…» in `text`. */
export function markersIn(text: string): string[] {
  return text.match(/«[^«»]*»/g) ?? [];
}

/** How often each marker occurs in `text`. */
export function markerCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of markersIn(text)) counts.set(m, (counts.get(m) ?? 0) + 1);
  return counts;
}

const FILLER = ['a', 'b', 'c', 'x', 'y', 'z', ' ', ' ', '\n', 'é', '中', '😀', '🦦', '👍🏽', '🏳️‍🌈', '𝄞'];

/** A random filler string of 0 to `max` code points (emoji included, never « or »). */
export function filler(random: Random, max = 4): string {
  let s = '';
  const n = below(random, max + 1);
  for (let i = 0; i < n; i++) s += pick(random, FILLER);
  return s;
}

function isHigh(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLow(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** Spans [start, end) of every marker in `text`. */
function markerSpans(text: string): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  for (const m of text.matchAll(/«[^«»]*»/g)) spans.push([m.index, m.index + m[0].length]);
  return spans;
}

/** Positions of `text` where an edit may start or end: not inside a surrogate pair or a marker. */
function boundaries(text: string, spans: ReadonlyArray<[number, number]>): number[] {
  const out: number[] = [];
  let s = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i > 0 && i < text.length && isHigh(text.charCodeAt(i - 1)) && isLow(text.charCodeAt(i))) continue;
    while (s < spans.length && (spans[s] as [number, number])[1] <= i) s++;
    const span = spans[s];
    if (span !== undefined && span[0] < i && i < span[1]) continue;
    out.push(i);
  }
  return out;
}

/** What {@link randomEdit} did. */
export type EditDone = { kind: 'insert'; pos: number; text: string } | { kind: 'delete'; pos: number; length: number };

/**
 * Makes one random edit on `doc`: with probability `deleteChance` a delete of up to 12 code
 * units that holds no marker (if there is such a range), else an insert of `marker` wrapped
 * in random filler (emoji included). Edits never split a surrogate pair or a marker, and
 * deletes never remove (part of) a marker, so every marker inserted survives whole, whatever
 * the concurrent edits: a concurrent insert inside a deleted range survives it in OT.
 */
export function randomEdit(doc: CollaborativeDocument, random: Random, marker: string, deleteChance = 0.3): EditDone {
  const text = doc.text;
  const spans = markerSpans(text);
  const points = boundaries(text, spans);
  if (random() < deleteChance && text.length > 0) {
    const start = pick(random, points);
    const next = spans.find(([a]) => a >= start)?.[0] ?? text.length;
    const ends = points.filter((p) => p > start && p <= Math.min(next, start + 12));
    if (ends.length > 0) {
      const end = pick(random, ends);
      doc.delete(start, end - start);
      return { kind: 'delete', pos: start, length: end - start };
    }
  }
  const pos = pick(random, points);
  const inserted = filler(random, 3) + marker + filler(random, 3);
  doc.insert(pos, inserted);
  return { kind: 'insert', pos, text: inserted };
}

// ─── convergence ────────────────────────────────────────────────────────────────────────────

/** A document of some client, for {@link waitConverged}. */
export interface ClientDoc {
  readonly name: string;
  readonly connection: Connection;
  readonly doc: CollaborativeDocument;
}

/** One line per client: state, sync state, version, text length and a text excerpt. */
export async function describeClients(server: OtterServer | undefined, docId: string, clients: readonly ClientDoc[]): Promise<string> {
  const lines: string[] = [];
  if (server !== undefined) {
    try {
      const head = await headOf(server, docId);
      lines.push(`server ${docId}: v${head.version}, ${head.text.length} units: ${JSON.stringify(head.text.slice(0, 120))}`);
    } catch (e) {
      lines.push(`server ${docId}: ${String(e)}`);
    }
  }
  for (const c of clients) {
    lines.push(
      `${c.name}: ${c.connection.state}, ${c.doc.syncState.kind}, v${c.doc.version}, ${c.doc.text.length} units: ${JSON.stringify(c.doc.text.slice(0, 120))}`,
    );
  }
  return lines.join('\n');
}

/**
 * Waits until every client's document is connected, has nothing awaiting acknowledgement, is
 * at the server's head version and holds the server's text. Returns the server's head.
 */
export async function waitConverged(
  getServer: () => OtterServer,
  docId: string,
  clients: readonly ClientDoc[],
  ms = 10_000,
): Promise<{ version: number; text: string }> {
  let head: { version: number; text: string } = { version: -1, text: '' };
  await waitFor(
    `every client of ${docId} to converge on the server's head`,
    async () => {
      head = await headOf(getServer(), docId);
      return clients.every(
        (c) =>
          c.connection.state === 'open' &&
          c.doc.syncState.kind === 'synchronized' &&
          c.doc.version === head.version &&
          c.doc.text === head.text,
      );
    },
    ms,
    () => describeClients(getServer(), docId, clients),
  );
  return head;
}

// ─── Otter clients ──────────────────────────────────────────────────────────────────────────

/**
 * Tracks which markers the server acknowledged to one client, from the frames themselves:
 * each outgoing `submit` records the markers its op inserts under its (doc, seq); an `ack` of
 * that seq, or the client's own entry (with its `seq`) in an `opened` catch-up, acknowledges
 * them. (A submission that landed and is learned of only through a snapshot is not counted:
 * the set is a lower bound of what was acknowledged.)
 */
export class AckTracker {
  /** Markers the server acknowledged, per document. */
  readonly acked = new Map<string, Set<string>>();
  private readonly bySeq = new Map<string, string[]>();

  /** Network options that feed this tracker. */
  readonly network: NetworkOptions = {
    onOutgoing: (frame) => this.outgoing(frame),
    onIncoming: (frame) => this.incoming(frame),
  };

  /** The acknowledged markers of `doc`. */
  of(doc: string): Set<string> {
    let set = this.acked.get(doc);
    if (set === undefined) {
      set = new Set();
      this.acked.set(doc, set);
    }
    return set;
  }

  private outgoing(frame: string): void {
    const m = JSON.parse(frame) as { type?: string; doc?: string; seq?: number; op?: unknown[] };
    if (m.type !== 'submit' || m.op === undefined) return;
    const markers = m.op.filter((c): c is string => typeof c === 'string').flatMap((s) => markersIn(s));
    this.bySeq.set(`${m.doc}\n${m.seq}`, markers);
  }

  private incoming(frame: string): void {
    const value = JSON.parse(frame) as unknown;
    for (const m of (Array.isArray(value) ? value : [value]) as Array<Record<string, unknown>>) {
      const doc = m['doc'] as string;
      if (m['type'] === 'ack') this.acknowledge(doc, m['seq'] as number);
      if (m['type'] === 'opened' && Array.isArray(m['ops'])) {
        for (const e of m['ops'] as Array<{ seq?: number }>) if (e.seq !== undefined) this.acknowledge(doc, e.seq);
      }
    }
  }

  private acknowledge(doc: string, seq: number): void {
    const set = this.of(doc);
    for (const marker of this.bySeq.get(`${doc}\n${seq}`) ?? []) set.add(marker);
  }
}

/** An Otter client of the tests: a real Connection over a {@link ClientNetwork}. */
export interface TestClient {
  readonly name: string;
  readonly net: ClientNetwork;
  readonly connection: Connection;
  readonly acks: AckTracker;
  /** Errors the connection and its documents reported, as `code: message`. */
  readonly errors: string[];
  /** Opens `docId` (recording its errors). */
  open(docId: string): CollaborativeDocument;
}

/** Options of {@link newClient}. */
export interface TestClientOptions extends Omit<ConnectionOptions, 'WebSocket'> {
  /** Delays of the client's network (see {@link NetworkOptions.delay}). */
  delay?: NetworkOptions['delay'];
}

/**
 * A Connection to `url` named `name` (also its clientId unless given), reconnecting quickly
 * (20 to 200 ms), closed at cleanup.
 */
export function newClient(cleanup: Cleanup, url: string, name: string, options: TestClientOptions = {}): TestClient {
  const acks = new AckTracker();
  const { delay, ...rest } = options;
  const net = new ClientNetwork({ ...acks.network, ...(delay === undefined ? {} : { delay }) });
  const connection = new Connection(url, {
    clientId: name,
    minReconnectDelay: 20,
    maxReconnectDelay: 200,
    retryDelay: 20,
    ...rest,
    WebSocket: net.WebSocket,
  });
  cleanup.add(() => {
    connection.close();
    for (const s of net.sockets) s.inner?.terminate(); // frozen sockets included
  });
  const errors: string[] = [];
  connection.on('error', (e) => errors.push(`${(e as { code?: string }).code ?? e.name}: ${e.message}`));
  return {
    name,
    net,
    connection,
    acks,
    errors,
    open(docId: string) {
      const doc = connection.open(docId);
      doc.on('error', (m) => errors.push(`${docId} ${m.code}: ${m.message}`));
      return doc;
    },
  };
}
