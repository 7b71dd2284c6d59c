/**
 * An in-memory loopback world for whole-system tests of the protocol: real `Connection` and
 * `CollaborativeDocument` clients, the real server `Session`, `Rooms` and `Sequencer` over a
 * `MemoryStore`, joined by links whose every frame a test (or a seeded scheduler) delivers
 * explicitly, in order per direction — TCP's promise — but as late as it likes.
 *
 * What a link can do besides delivering: drop the connection (the client sees it closed; the
 * server may go on reading the frames already on their way, "late frames", before it notices),
 * duplicate or lose nothing else. What the server can do: crash and restart on the same
 * durable store, on an empty one (it lost its data) or on an older copy of it (a backup
 * restored); its store can fail, stall, or fail after writing.
 *
 * Time is the test's: run the world under `vi.useFakeTimers()`; `settle()` lets every due
 * timer and promise run, `advance(ms)` moves the clock.
 *
 * The world remembers every text the server ever committed, by epoch and version
 * ({@link World.serverHad}), so a test can check after every step that a client claiming to be
 * synchronized holds a text the server really had at that version.
 */
import { vi } from 'vitest';
import { Connection, type ConnectionOptions, type WebSocketLike } from '../../src/client/connection.js';
import type { Identity } from '../../src/server/auth.js';
import type { ClientMessage } from '../../src/protocol/messages.js';
import type { CollaborativeDocument } from '../../src/client/document.js';
import { apply } from '../../src/ot/index.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Rooms } from '../../src/server/rooms.js';
import { Sequencer, type SequencerOptions } from '../../src/server/sequencer.js';
import { SESSION_DEFAULTS, Session, type SessionContext, type SessionOptions } from '../../src/server/session.js';
import type { AppendContext, ClientMark, LoadedDocument, OpRecord, Snapshot, Store } from '../../src/server/store.js';
import { noTelemetry, silentLogger } from '../../src/server/telemetry.js';
import { sleep } from './wait.js';

/** The real setImmediate, taken before a test installs fake timers. */
const realSetImmediate = globalThis.setImmediate;

/** An event on its way to a client socket. */
type Down = { kind: 'open' } | { kind: 'frame'; data: string } | { kind: 'close'; code: number };

/** Every frame delivered, while a test collects them (see {@link traceFrames}). */
let TRACE: string[] | undefined;

/** Starts collecting a line per delivered frame into `lines` (undefined: stop). */
export function traceFrames(lines: string[] | undefined): void {
  TRACE = lines;
}

/** Marks, in a link's uplink, the point where the client's side closed. */
const CLIENT_CLOSED = Symbol('client closed');

/** One connection between a client socket and a server node. */
export class Link {
  /** Frames from the client the server has not read yet (and where the client closed). */
  readonly up: Array<string | typeof CLIENT_CLOSED> = [];
  /** Every frame the server read (or dropped unread by `intercept`), parsed, with its size. */
  readonly read: Array<{ readonly message: ClientMessage; readonly bytes: number }> = [];
  /** Events for the client it has not received yet. */
  readonly down: Down[] = [];
  /** The client's socket is closed: it reads nothing more. */
  clientGone = false;
  /** The server's side is done: it reads and writes nothing more. */
  serverGone = false;
  session: Session | undefined;

  constructor(
    readonly id: number,
    readonly socket: LoopSocket,
    readonly node: ServerNode,
  ) {}

  /** True while something waits to be delivered either way. */
  get busy(): boolean {
    return (this.up.length > 0 && !this.serverGone) || (this.down.length > 0 && !this.clientGone);
  }

  /** Puts a frame for the client at the front of its queue, as if the server had sent it first. */
  inject(message: unknown): void {
    this.down.unshift({ kind: 'frame', data: JSON.stringify(message) });
  }

  /** Delivers up to `n` of the client's frames to the server; returns how many. */
  deliverUp(n = Infinity): number {
    let done = 0;
    while (done < n && this.up.length > 0) {
      const item = this.up.shift() as string | typeof CLIENT_CLOSED;
      done++;
      if (this.serverGone || this.node.dead) continue;
      if (TRACE !== undefined) TRACE.push(`link ${this.id} ↑ ${item === CLIENT_CLOSED ? '(closed)' : item}`);
      if (item === CLIENT_CLOSED) {
        this.serverClose();
        continue;
      }
      const bytes = Buffer.byteLength(item);
      const message = JSON.parse(item) as ClientMessage;
      this.read.push({ message, bytes });
      if (bytes > this.node.maxPayload) {
        // As the ws package does: a frame over the payload limit closes the connection.
        this.node.violations.push(`a frame of ${bytes} bytes`);
        this.down.push({ kind: 'close', code: 1009 });
        this.serverClose();
        continue;
      }
      if (this.node.intercept?.(message, this) === true) continue;
      this.session?.receive(item, bytes);
    }
    return done;
  }

  /** Delivers up to `n` events to the client; returns how many. */
  deliverDown(n = Infinity): number {
    let done = 0;
    while (done < n && this.down.length > 0) {
      const event = this.down.shift() as Down;
      done++;
      if (this.clientGone) continue;
      if (TRACE !== undefined) TRACE.push(`link ${this.id} ↓ ${event.kind === 'frame' ? event.data : event.kind}`);
      this.socket.receive(event);
    }
    return done;
  }

  /** The server forgets the connection (its session leaves every room). */
  serverClose(): void {
    if (this.serverGone) return;
    this.serverGone = true;
    this.up.length = 0;
    this.session?.disconnected();
  }

  /**
   * The network drops the connection: the client sees it closed at once; the server reads
   * the frames already on their way if `late`, then notices, or notices now.
   */
  drop(late: boolean): void {
    if (!this.clientGone) {
      this.clientGone = true;
      this.down.length = 0;
      this.socket.receive({ kind: 'close', code: 1006 });
    }
    if (late) this.up.push(CLIENT_CLOSED);
    else this.serverClose();
  }
}

/** The client side of a link: what `Connection` takes for a WebSocket. */
export class LoopSocket implements WebSocketLike {
  /** The name of the client that made it. */
  owner = '';
  readyState = 0;
  onopen: ((event: never) => unknown) | null = null;
  onmessage: ((event: never) => unknown) | null = null;
  onclose: ((event: never) => unknown) | null = null;
  onerror: ((event: never) => unknown) | null = null;
  link!: Link;

  /** @inheritdoc */
  send(data: string): void {
    if (this.readyState !== 1) throw new Error('the socket is not open');
    if (!this.link.clientGone) this.link.up.push(data);
  }

  /** @inheritdoc */
  close(): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    if (!this.link.clientGone) {
      this.link.clientGone = true;
      this.link.down.length = 0;
      this.link.up.push(CLIENT_CLOSED);
    }
  }

  /** An event from the server side arrives. */
  receive(event: Down): void {
    switch (event.kind) {
      case 'open':
        if (this.readyState !== 0) return;
        this.readyState = 1;
        (this.onopen as ((e: unknown) => void) | null)?.({});
        return;
      case 'frame':
        if (this.readyState === 1) (this.onmessage as ((e: { data: string }) => void) | null)?.({ data: event.data });
        return;
      case 'close':
        if (this.readyState === 3) return;
        this.readyState = 3;
        (this.onclose as ((e: { code: number }) => void) | null)?.({ code: event.code });
        return;
    }
  }
}

/** Store faults a test can arm; each fires once. */
export interface StoreFaults {
  /** The next append fails before writing anything. */
  failBefore: boolean;
  /** The next append writes, then reports a failure (the ack is lost). */
  failAfter: boolean;
  /** The next append waits this many ms (of the world's clock) first. */
  delay: number;
}

/** One operation the durable store took, replayed to build an older copy of it. */
type Logged =
  | { kind: 'append'; docId: string; expectedHead: number; records: OpRecord[]; marks: ClientMark[]; context: AppendContext }
  | { kind: 'snapshot'; docId: string; snapshot: Snapshot };

/**
 * The durable store of the world: a MemoryStore, a log of what it took (to make older
 * copies), and the text of every document at its head (to record what the server had).
 */
class Durable {
  readonly store = new MemoryStore();
  readonly log: Logged[] = [];
  readonly texts = new Map<string, string>();
}

/** The store one server incarnation writes through: faults, and death with its server. */
class NodeStore implements Store {
  dead = false;
  readonly faults: StoreFaults = { failBefore: false, failAfter: false, delay: 0 };

  constructor(
    private readonly world: World,
    private readonly durable: Durable,
  ) {}

  private alive(): void {
    if (this.dead) throw new Error('the server is gone');
  }

  async load(docId: string): Promise<LoadedDocument> {
    this.alive();
    return this.durable.store.load(docId);
  }

  async append(docId: string, expectedHead: number, records: OpRecord[], marks: ClientMark[], context: AppendContext): Promise<void> {
    this.alive();
    const f = this.faults;
    if (f.delay > 0) {
      const ms = f.delay;
      f.delay = 0;
      await sleep(ms);
      this.alive();
    }
    if (f.failBefore) {
      f.failBefore = false;
      throw new Error('injected: the disk refused the write');
    }
    await this.durable.store.append(docId, expectedHead, records, marks, context);
    this.durable.log.push({ kind: 'append', docId, expectedHead, records, marks, context });
    let text = this.durable.texts.get(docId) ?? '';
    for (const r of records) {
      text = apply(text, r.op);
      this.world.recordText(context.epoch, r.version, text);
    }
    this.durable.texts.set(docId, text);
    if (f.failAfter) {
      f.failAfter = false;
      throw new Error('injected: the write landed but its answer was lost');
    }
  }

  async getMarks(docId: string, clientIds: readonly string[]): Promise<ClientMark[]> {
    this.alive();
    return this.durable.store.getMarks(docId, clientIds);
  }

  async getOps(docId: string, from: number, to: number): Promise<OpRecord[]> {
    this.alive();
    return this.durable.store.getOps(docId, from, to);
  }

  async getSnapshot(docId: string, atOrBefore?: number): Promise<Snapshot | undefined> {
    this.alive();
    return this.durable.store.getSnapshot(docId, atOrBefore);
  }

  async putSnapshot(docId: string, snapshot: Snapshot): Promise<void> {
    this.alive();
    await this.durable.store.putSnapshot(docId, snapshot);
    this.durable.log.push({ kind: 'snapshot', docId, snapshot });
  }

  async trim(docId: string, version: number): Promise<void> {
    this.alive();
    return this.durable.store.trim(docId, version);
  }

  async ping(): Promise<void> {
    this.alive();
  }

  async close(): Promise<void> {}
}

/** One incarnation of the server: a sequencer, rooms and sessions over the durable store. */
export class ServerNode {
  readonly store: NodeStore;
  readonly sequencer: Sequencer;
  readonly rooms: Rooms;
  readonly links: Link[] = [];
  /** Frames over the payload limit, and other broken limits. */
  readonly violations: string[] = [];
  /** Decides for each client frame whether the server drops it unread (true) instead of reading it. */
  intercept: ((message: ClientMessage, link: Link) => boolean) | undefined;
  dead = false;
  private readonly context: SessionContext;

  constructor(world: World, durable: Durable, private readonly options: WorldOptions) {
    this.store = new NodeStore(world, durable);
    this.sequencer = new Sequencer(this.store, { idleTimeout: 0, ...options.sequencer });
    this.rooms = new Rooms(undefined, (docId, after, upTo) => this.sequencer.recentOps(docId, after, upTo));
    this.sequencer.onApplied((docId, record) => this.rooms.publish(docId, record));
    this.context = {
      sequencer: this.sequencer,
      rooms: this.rooms,
      telemetry: noTelemetry,
      logger: silentLogger,
      options: { ...SESSION_DEFAULTS, messagesPerSecond: 100_000, maxRateStrikes: 1_000_000, openDeadline: 0, ...options.session },
      authorize: () => 'write',
      reauthenticate: options.authenticate === undefined ? undefined : async (token) => options.authenticate?.(token),
    };
  }

  /** The largest frame a session takes (announced in welcome). */
  get maxPayload(): number {
    return this.context.options.maxPayload;
  }

  /**
   * A client socket connects: it opens (once its `open` event is delivered) to a new session,
   * or, with authentication on and a token refused, closes before opening (HTTP 401).
   */
  accept(link: Link, token: string | undefined): void {
    const authenticate = this.options.authenticate;
    const identity = authenticate?.(token);
    if (authenticate !== undefined && identity === undefined) {
      link.serverGone = true;
      link.down.push({ kind: 'close', code: 1006 });
      return;
    }
    link.session = new Session(
      {
        send: (frame) => {
          if (!link.serverGone && !link.clientGone) link.down.push({ kind: 'frame', data: frame });
        },
        close: (code) => {
          if (!link.clientGone) link.down.push({ kind: 'close', code });
          link.serverGone = true;
        },
        buffered: () => 0,
      },
      this.context,
      identity,
    );
    this.links.push(link);
    link.down.push({ kind: 'open' });
  }

  /** The process dies: every connection drops, nothing pending is answered, the store is cut off. */
  crash(): void {
    this.dead = true;
    this.store.dead = true;
    for (const link of this.links) {
      link.serverGone = true;
      link.up.length = 0;
      if (!link.clientGone) {
        link.down.length = 0;
        link.down.push({ kind: 'close', code: 1006 });
      }
    }
  }
}

/** The token a client offered: as the `otter.token.` subprotocol or the `token` query parameter. */
function tokenOf(url: string, protocols: readonly string[] | undefined): string | undefined {
  const offered = protocols?.find((p) => p.startsWith('otter.token.'));
  return offered?.slice('otter.token.'.length) ?? new URL(url).searchParams.get('token') ?? undefined;
}

/** How a restarted server finds its store. */
export type RestartKind = 'durable' | 'empty' | 'older';

/** Options of a {@link World}. */
export interface WorldOptions {
  /** Options of every server incarnation's sequencer (history window, snapshots, op size). */
  readonly sequencer?: SequencerOptions;
  /** Per-connection limits of the server (payload, rates), over the world's generous defaults. */
  readonly session?: Partial<SessionOptions>;
  /**
   * Authentication: who a token is (at connection and in `auth` refreshes), undefined to
   * refuse it. Default: none, every connection anonymous.
   */
  readonly authenticate?: (token: string | undefined) => Identity | undefined;
  /** Options of every client's connection (a WebSocket class and client id are set by the world). */
  readonly client?: Omit<ConnectionOptions, 'WebSocket' | 'clientId'>;
}

/** A client of the world: its connection and its one document. */
export interface WorldClient {
  readonly name: string;
  readonly connection: Connection;
  readonly doc: CollaborativeDocument;
}

/** See the file comment. */
export class World {
  node: ServerNode;
  private durable = new Durable();
  readonly links: Link[] = [];
  readonly clients: WorldClient[] = [];
  /** Every text the server committed: epoch → version → texts (several if versions were reused). */
  private readonly texts = new Map<string, Map<number, Set<string>>>();
  private nextLink = 0;

  constructor(
    readonly docId: string,
    private readonly options: WorldOptions = {},
  ) {
    this.node = new ServerNode(this, this.durable, options);
  }

  /** Records that the server committed `text` as `version` of incarnation `epoch`. */
  recordText(epoch: string, version: number, text: string): void {
    let versions = this.texts.get(epoch);
    if (versions === undefined) {
      versions = new Map();
      this.texts.set(epoch, versions);
    }
    let set = versions.get(version);
    if (set === undefined) {
      set = new Set();
      versions.set(version, set);
    }
    set.add(text);
  }

  /** Whether the server ever held `text` at `version` of incarnation `epoch` (version 0 is empty). */
  serverHad(epoch: string | undefined, version: number, text: string): boolean {
    if (version === 0) return text === '';
    return epoch !== undefined && (this.texts.get(epoch)?.get(version)?.has(text) ?? false);
  }

  /** Adds a client with its own connection and the world's document open. */
  addClient(name: string, options: Omit<ConnectionOptions, 'WebSocket' | 'clientId'> = {}): WorldClient {
    const world = this;
    class Socket extends LoopSocket {
      constructor(url: string, protocols?: string[]) {
        super();
        this.owner = name;
        world.dial(this, tokenOf(url, protocols));
      }
    }
    const connection = new Connection('ws://world.invalid/', {
      minReconnectDelay: 5,
      maxReconnectDelay: 200,
      retryDelay: 10,
      presenceInterval: 0,
      heartbeatInterval: 3_600_000,
      ...this.options.client,
      ...options,
      WebSocket: Socket,
      clientId: name,
    });
    const client = { name, connection, doc: connection.open(this.docId) };
    this.clients.push(client);
    return client;
  }

  private dial(socket: LoopSocket, token: string | undefined): void {
    const link = new Link(this.nextLink++, socket, this.node);
    socket.link = link;
    this.links.push(link);
    this.node.accept(link, token);
  }

  /** Every frame the server read from `client`'s connections, in order. */
  framesOf(client: WorldClient): Array<{ readonly message: ClientMessage; readonly bytes: number }> {
    return this.links.filter((l) => l.socket.owner === client.name).flatMap((l) => l.read);
  }

  /** The links that have something to deliver. */
  busyLinks(): Link[] {
    return this.links.filter((l) => l.busy);
  }

  /** The latest link of a client (by its socket), if any. */
  linkOf(client: WorldClient): Link | undefined {
    for (let i = this.links.length - 1; i >= 0; i--) {
      const link = this.links[i] as Link;
      if (link.socket.owner === client.name) return link;
    }
    return undefined;
  }

  /**
   * Lets every due timer, immediate and promise run: the fake clock moves 1 ms (an immediate
   * that a timer schedules runs only once the fake clock moves on), then a real macrotask
   * turn lets promise chains of any length finish; twice over.
   */
  async settle(): Promise<void> {
    for (let i = 0; i < 2; i++) {
      await vi.advanceTimersByTimeAsync(1);
      await new Promise((resolve) => realSetImmediate(resolve));
    }
  }

  /** Moves the clock by `ms`, running what falls due. */
  async advance(ms: number): Promise<void> {
    await vi.advanceTimersByTimeAsync(ms);
  }

  /** Delivers everything on every link, both ways, until nothing is left (bounded). */
  async flush(rounds = 1000): Promise<void> {
    for (let i = 0; i < rounds; i++) {
      const busy = this.busyLinks();
      if (busy.length === 0) {
        await this.settle();
        if (this.busyLinks().length === 0) return;
        continue;
      }
      for (const link of busy) {
        link.deliverUp();
        link.deliverDown();
      }
      await this.settle();
    }
    throw new Error(`the world did not go quiet within ${rounds} rounds`);
  }

  /**
   * Delivers everything and lets time pass (10 ms at a time, at most `ms`) until every client
   * is live with nothing unacknowledged and no link has anything to deliver. Throws if that
   * does not happen in time.
   */
  async quiesce(ms = 60_000): Promise<void> {
    for (let waited = 0; ; waited += 10) {
      await this.flush();
      const quiet = this.clients.every(
        (c) => c.doc.closed || (c.doc.lifecycle.phase === 'live' && c.doc.syncState.kind === 'synchronized'),
      );
      if (quiet && this.busyLinks().length === 0) return;
      if (waited >= ms) throw new Error(`the world did not settle within ${ms} ms of its clock`);
      await this.advance(10);
    }
  }

  /**
   * Crashes the server and starts a new one: on the same store (`durable`), on an empty one
   * (`empty`: the server lost its data), or on a copy of the store as it was after the first
   * `keep` operations it took (`older`: a backup restored).
   */
  restart(kind: RestartKind, keep = 0): void {
    this.node.crash();
    if (kind === 'empty') {
      this.durable = new Durable();
    } else if (kind === 'older') {
      const older = new Durable();
      for (const entry of this.durable.log.slice(0, keep)) {
        if (entry.kind === 'snapshot') {
          void older.store.putSnapshot(entry.docId, entry.snapshot);
        } else {
          void older.store.append(entry.docId, entry.expectedHead, entry.records, entry.marks, entry.context);
          let text = older.texts.get(entry.docId) ?? '';
          for (const r of entry.records) text = apply(text, r.op);
          older.texts.set(entry.docId, text);
        }
        older.log.push(entry);
      }
      this.durable = older;
    }
    this.node = new ServerNode(this, this.durable, this.options);
  }

  /**
   * Checks exactly-once in the store the server runs on now: no (client, seq) was committed
   * twice; calls `fail` with what was.
   */
  checkExactlyOnce(fail: (what: string) => void): void {
    const seen = new Map<string, number>();
    for (const entry of this.durable.log) {
      if (entry.kind !== 'append') continue;
      for (const r of entry.records) {
        if (r.seq === 0) continue;
        const key = `${r.clientId} seq ${r.seq}`;
        const earlier = seen.get(key);
        if (earlier !== undefined) fail(`${key} was committed twice, as versions ${earlier} and ${r.version}`);
        seen.set(key, r.version);
      }
    }
  }

  /** How many operations the durable store has taken (a `keep` for {@link restart}). */
  get storeLength(): number {
    return this.durable.log.length;
  }

  /** The server's document now: epoch, head version and text. */
  async head(): Promise<{ epoch: string; version: number; text: string }> {
    const opened = this.node.sequencer.open(this.docId, 'world-observer');
    await this.settle();
    const result = await opened;
    if (result.kind !== 'snapshot') throw new Error(`unexpected ${result.kind}`);
    return { epoch: result.epoch, version: result.version, text: result.text };
  }

  /** Closes every client. */
  close(): void {
    for (const c of this.clients) c.connection.close();
  }
}
