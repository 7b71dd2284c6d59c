/**
 * Otter under load: the server is `createServer` from src/server with the per-connection rate
 * limits raised out of the way (the defaults allow 200 messages/s and 1 MiB/s per connection),
 * over one of three stores: MemoryStore (`otter`), a SqliteStore file of the run, synchronous
 * 'normal' (`otter-sqlite`, what `otter serve --data` runs), or a RedisStore on the run's private
 * redis-server (`otter-redis`, what `otter serve --redis` runs: any number of nodes on the same
 * Redis, each publishing the ops the others commit through src/server/redis-fanout.ts). The
 * clients are raw `ws` sockets speaking protocol v1 (docs/protocol.md) with the ot.js client
 * state machine (one op in flight, later keystrokes composed into a buffer) built on src/ot —
 * the same rules as src/client/sync.ts, without its reconnection and presence layers.
 */
import { WebSocket } from 'ws';
import { type Component, apply, compose, transform } from '../../src/ot/index.js';
import type { OpEntry, ServerMessage } from '../../src/protocol/messages.js';
import { MemoryStore, RedisStore, SqliteStore, type Store, createServer } from '../../src/server/index.js';
import { type ClientHooks, type LoadClient, type NodeContext, type Peer, type PeerServer, countingWebSocket } from './common.js';

const DOC = 'bench';

/** The limits the benchmark passes: far above anything it sends. */
export const OTTER_LIMITS = { messagesPerSecond: 1e6, bytesPerSecond: 1e9 } as const;

async function startServer(store: Store): Promise<PeerServer> {
  const server = await createServer({ store, port: 0, host: '127.0.0.1', limits: { ...OTTER_LIMITS } });
  return { url: server.url, close: () => server.close() };
}

class OtterClient implements LoadClient {
  private local = '';
  /** Server version the client is at. */
  private at = 0;
  private seq = 0;
  /** The op awaiting its ack, on the server text at {@link at}. */
  private outstanding: Component[] | undefined;
  /** Later keystrokes, composed, on the text `outstanding` produces. */
  private buffer: Component[] | undefined;
  private readonly ws: WebSocket;
  readonly ready: Promise<void>;

  constructor(
    url: string,
    private readonly clientId: string,
    private readonly hooks: ClientHooks,
  ) {
    const Socket = countingWebSocket(hooks);
    this.ws = new Socket(url);
    this.ready = new Promise<void>((resolve, reject) => {
      this.ws.once('error', reject);
      this.ws.once('open', () => this.send({ type: 'hello', protocol: 1, clientId: this.clientId }));
      this.ws.on('message', (data) => {
        const parsed = JSON.parse((data as Buffer).toString()) as ServerMessage | ServerMessage[];
        for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
          if (m.type === 'opened') {
            this.local = m.text ?? '';
            this.at = m.v;
            resolve();
          } else this.receive(m);
        }
      });
    });
  }

  private send(message: object): void {
    this.ws.send(JSON.stringify(message));
  }

  private receive(m: ServerMessage): void {
    switch (m.type) {
      case 'welcome':
        this.send({ type: 'open', doc: DOC });
        return;
      case 'ops':
        for (const e of m.ops) this.remote(e);
        return;
      case 'ack':
        this.at = m.v;
        this.outstanding = this.buffer;
        this.buffer = undefined;
        if (this.outstanding !== undefined) this.submit(this.outstanding);
        return;
      case 'error':
        this.hooks.problem(`error ${m.code}: ${m.message}`);
        return;
      default:
        return; // presence, left, pong: not used here
    }
  }

  private remote(e: OpEntry): void {
    let op: Component[] = e.op;
    if (this.outstanding !== undefined) {
      const past = transform(op, this.outstanding, 'left');
      this.outstanding = transform(this.outstanding, op, 'right');
      op = past;
      if (this.buffer !== undefined) {
        const next = transform(op, this.buffer, 'left');
        this.buffer = transform(this.buffer, op, 'right');
        op = next;
      }
    }
    this.local = apply(this.local, op);
    this.at = e.v;
    for (const c of e.op) if (typeof c === 'string') this.hooks.remoteInsert(c);
  }

  private submit(op: Component[]): void {
    this.send({ type: 'submit', doc: DOC, v: this.at, seq: ++this.seq, op });
  }

  text(): string {
    return this.local;
  }

  insert(pos: number, ch: string): void {
    const rest = this.local.length - pos;
    const op: Component[] = pos > 0 ? [pos, ch] : [ch];
    if (rest > 0) op.push(rest);
    this.local = apply(this.local, op);
    if (this.outstanding === undefined) {
      this.outstanding = op;
      this.submit(op);
    } else {
      this.buffer = this.buffer === undefined ? op : compose(this.buffer, op);
    }
  }

  settled(): boolean {
    return this.outstanding === undefined;
  }

  version(): number {
    return this.at;
  }

  close(): void {
    this.ws.close();
  }
}

async function connect(url: string, index: number, hooks: ClientHooks): Promise<LoadClient> {
  const client = new OtterClient(url, `load-${index}`, hooks);
  await client.ready;
  return client;
}

const CLIENTS = 'raw ws clients speaking protocol v1 with the ot.js client state machine on src/ot';
const LIMITS = 'limits messagesPerSecond 1e6 / bytesPerSecond 1e9';

export const otter: Peer = {
  name: 'Otter',
  setup: `src/server createServer (MemoryStore, ${LIMITS}); ${CLIENTS}`,
  startServer: () => startServer(new MemoryStore()),
  connect,
};

export const otterSqlite: Peer = {
  name: 'Otter SQLite',
  setup: `src/server createServer (SqliteStore in a fresh file, synchronous normal, ${LIMITS}); ${CLIENTS}`,
  startServer: (context: NodeContext) => startServer(new SqliteStore(`${context.dir}/otter.db`)),
  connect,
};

export const otterRedis: Peer = {
  name: 'Otter Redis',
  setup:
    `src/server createServer (RedisStore on the run's redis-server, the fan-out of src/server/redis-fanout.ts; ${LIMITS}); ` +
    CLIENTS,
  shares: { redis: true },
  startServer(context: NodeContext) {
    if (context.redisUrl === undefined) throw new Error("otter-redis needs the run's Redis");
    return startServer(new RedisStore(context.redisUrl));
  },
  connect,
};
