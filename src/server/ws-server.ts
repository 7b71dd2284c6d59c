/**
 * The WebSocket server: listens on its own port or attaches to an existing `http.Server`,
 * turns each connection into a {@link Session}, reaps half-open connections with pings, and
 * shuts down gracefully. The only file that imports `ws`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { CloseCode } from '../protocol/messages.js';
import { MemoryStore } from './memory-store.js';
import { Rooms } from './rooms.js';
import { Sequencer, type SequencerOptions } from './sequencer.js';
import { SESSION_DEFAULTS, Session } from './session.js';
import type { Store } from './store.js';

/** Options of {@link createServer}; every field has a documented default. */
export interface ServerOptions {
  /** Where documents live. Default: a new {@link MemoryStore}. Closed by `close()`. */
  store?: Store;
  /** Options of the sequencer (history, snapshots, size limits). */
  sequencer?: SequencerOptions;
  /** Attach to this HTTP server instead of creating one; `port`/`host` are then ignored. */
  server?: http.Server;
  /** Port to listen on when creating the server. Default 0 (any free port). */
  port?: number;
  /** Address to listen on when creating the server. Default '127.0.0.1'. */
  host?: string;
  /** Accept WebSocket upgrades only on this URL path. Default: any path. */
  path?: string;
  /** Largest incoming frame in bytes; larger frames close the connection with 1009. Default 1 MiB. */
  maxPayload?: number;
  /** Ms between WebSocket pings; a connection that misses one is terminated. Default 30,000. */
  heartbeatInterval?: number;
  /** Malformed messages tolerated per connection before closing with 4400. Default 20. */
  maxBadMessages?: number;
  /** Minimum ms between presence broadcasts of one connection on one document. Default 50. */
  presenceInterval?: number;
  /** Handles plain HTTP requests on a server this function creates. Default: 404. */
  onRequest?: http.RequestListener;
}

/** A running Otter server. */
export interface OtterServer {
  readonly sequencer: Sequencer;
  readonly store: Store;
  readonly httpServer: http.Server;
  /** The port the HTTP server listens on. */
  readonly port: number;
  /** `ws://host:port` of the server. */
  readonly url: string;
  /** Number of open WebSocket connections. */
  readonly connections: number;
  /** Number of documents open on at least one connection. */
  readonly openDocuments: number;
  /**
   * Graceful shutdown: stops accepting connections, lets every queued submission commit and be
   * acknowledged, closes every connection with 1001 (so clients reconnect elsewhere), closes
   * the store and, if this function created it, the HTTP server.
   */
  close(): Promise<void>;
}

/** Creates and starts an Otter server; resolves once it is listening. */
export async function createServer(options: ServerOptions = {}): Promise<OtterServer> {
  const store = options.store ?? new MemoryStore();
  const sequencer = new Sequencer(store, options.sequencer);
  const rooms = new Rooms();
  sequencer.onApplied((docId, record) => rooms.publish(docId, record));
  const sessionOptions = {
    maxBadMessages: options.maxBadMessages ?? SESSION_DEFAULTS.maxBadMessages,
    presenceInterval: options.presenceInterval ?? SESSION_DEFAULTS.presenceInterval,
  };
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayload ?? 1 << 20 });
  const sessions = new Map<WebSocket, Session>();
  const alive = new WeakSet<WebSocket>();
  const owned = options.server === undefined;
  const httpServer =
    options.server ??
    http.createServer(
      options.onRequest ??
        ((_req, res) => {
          res.writeHead(404).end();
        }),
    );

  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (options.path !== undefined && new URL(req.url ?? '/', 'http://x').pathname !== options.path) {
      if (owned) socket.destroy();
      return; // an embedding server may route other paths itself
    }
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws));
  };

  const accept = (ws: WebSocket): void => {
    const session = new Session(
      {
        send: (frame) => {
          if (ws.readyState === WebSocket.OPEN) ws.send(frame);
        },
        close: (code, reason) => ws.close(code, reason),
      },
      sequencer,
      rooms,
      undefined,
      sessionOptions,
    );
    sessions.set(ws, session);
    alive.add(ws);
    ws.on('pong', () => alive.add(ws));
    ws.on('message', (data, isBinary) => {
      alive.add(ws);
      session.receive(isBinary ? '' : data.toString());
    });
    ws.on('close', () => {
      sessions.delete(ws);
      session.disconnected();
    });
    ws.on('error', () => ws.terminate());
  };

  const heartbeat = setInterval(() => {
    for (const ws of sessions.keys()) {
      if (!alive.has(ws)) {
        ws.terminate();
        continue;
      }
      alive.delete(ws);
      ws.ping();
    }
  }, options.heartbeatInterval ?? 30_000);
  heartbeat.unref();

  httpServer.on('upgrade', onUpgrade);
  if (owned) {
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        httpServer.off('error', reject);
        resolve();
      });
    });
  }

  const address = (): AddressInfo => httpServer.address() as AddressInfo;
  let closing: Promise<void> | undefined;

  const close = async (): Promise<void> => {
    clearInterval(heartbeat);
    httpServer.off('upgrade', onUpgrade);
    if (owned) httpServer.close();
    await sequencer.close();
    for (const [ws, session] of sessions) {
      session.flush();
      ws.close(CloseCode.GoingAway, 'server shutting down');
    }
    const deadline = Date.now() + 2000;
    while (sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const ws of sessions.keys()) ws.terminate();
    wss.close();
    await store.close();
    if (owned) httpServer.closeAllConnections();
  };

  return {
    sequencer,
    store,
    httpServer,
    get port() {
      return address().port;
    },
    get url() {
      const a = address();
      return `ws://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    },
    get connections() {
      return sessions.size;
    },
    get openDocuments() {
      return rooms.size;
    },
    close: () => (closing ??= close()),
  };
}
