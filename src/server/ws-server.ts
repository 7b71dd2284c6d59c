/**
 * The WebSocket server: listens on its own port or attaches to an existing `http.Server`,
 * turns each connection into a {@link Session}, reaps half-open connections with pings, and
 * shuts down gracefully. The only file that imports `ws`.
 */
import { isWellFormed } from '../ot/operation.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type * as Ws from 'ws';
import { CloseCode } from '../protocol/messages.js';
import {
  AmbiguousTokenError,
  type Authenticate,
  type Authorize,
  type Identity,
  type JwtOptions,
  OTTER_SUBPROTOCOL,
  jwtAuthenticator,
  tokenOf,
} from './auth.js';
import { type RouteHandler, createRoutes } from './http.js';
import { StorageCorruptError } from './integrity.js';
import { MemoryStore } from './memory-store.js';
import { Metrics } from './metrics.js';
import { requireOptional } from './optional-package.js';
import { Reauthorizer } from './reauthorize.js';
import { StoreReadiness } from './readiness.js';
import { RedisFanout } from './redis-fanout.js';
import { RelayedRooms } from './redis-presence.js';
import { RedisStore } from './redis-store.js';
import { Rooms } from './rooms.js';
import { Sequencer, type SequencerOptions } from './sequencer.js';
import { SESSION_DEFAULTS, Session, type SessionContext, type SessionOptions } from './session.js';
import { TokenBucket } from './token-bucket.js';
import { createTokenCheck } from './token-check.js';
import type { Store } from './store.js';
import { type Logger, silentLogger } from './telemetry.js';

// Loaded, not imported, so that a missing ws (an optional peer) is named clearly.
const { WebSocket, WebSocketServer } = requireOptional<typeof Ws>('ws', 'otter/server (its WebSocket server)');
type WebSocket = Ws.WebSocket;

/** The default `conflictRetries` of a server over a shared {@link RedisStore}. */
export const SHARED_CONFLICT_RETRIES = 100;

/** Options of {@link createServer}; every field has a documented default. */
export interface ServerOptions {
  /**
   * Where documents live. Default: a new {@link MemoryStore}. Closed by `close()`. A
   * {@link RedisStore} may be shared by several servers (each with its own RedisStore over the
   * same Redis and prefix): the server then also listens for the ops the others commit
   * (`redis-fanout.ts`) and publishes them to its connections, relays presences between the
   * servers (`redis-presence.ts`: a dead server's cursors vanish), keeps every document its
   * connections have open loaded, retries a batch that lost an append race up to
   * {@link SHARED_CONFLICT_RETRIES} times unless `sequencer.conflictRetries` says otherwise,
   * and reports Redis round trips, append conflicts and the fan-out lag in its metrics.
   */
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
  /**
   * Per-connection limits (see SessionOptions for each, with its default): bad messages,
   * presence interval, messages/s, bytes/s, pending requests, open documents, open deadline.
   */
  limits?: Partial<SessionOptions>;
  /** Connections one authenticated user may hold at once; more get HTTP 429. Default 16. */
  maxConnectionsPerUser?: number;
  /**
   * Decides who a connection is, at the HTTP upgrade (undefined or a throw: HTTP 401).
   * Default: nobody is authenticated and every connection is anonymous.
   */
  authenticate?: Authenticate;
  /** Verify JWTs with the built-in verifier instead of `authenticate`. */
  jwt?: JwtOptions;
  /**
   * What a user may do with a document: 'none', 'read' or 'write'. Default: 'write'. Asked on
   * every open, again for open documents every `reauthorizeInterval`, and on `revoke`.
   */
  authorize?: Authorize;
  /**
   * Ms per round of re-checks of `authorize` for every document open on every connection,
   * spread evenly over the round; a lowered access closes the document on that connection
   * ('none') or makes it read-only ('read'), and the client gets a `revoked` message. Raised
   * access is not applied live (it takes a re-open). 0 = never (only `revoke` re-checks).
   * Default 60,000.
   */
  reauthorizeInterval?: number;
  /**
   * Ms a re-check waits for `authorize` to answer; a re-check that throws or times out keeps
   * the current access (logged at warn, counted in `otter_access_recheck_failures_total`).
   * Default 10,000.
   */
  reauthorizeTimeout?: number;
  /**
   * Browser origins allowed to connect (exact `scheme://host[:port]`); any other `Origin`,
   * including `null`, gets HTTP 403. Requests without an `Origin` (non-browser clients) pass.
   * Default: every origin.
   */
  allowOrigins?: readonly string[];
  /**
   * Slow consumers: a connection whose unsent backlog (ws `bufferedAmount`) stays above this
   * many bytes for `slowConsumerTimeout` ms, or ever passes 8 times it, is closed with 4503 and
   * terminated `slowConsumerGrace` ms later. A prompt reader of one large frame (a big
   * snapshot) drains it in time and is kept. Default 8 MiB.
   */
  maxBufferedAmount?: number;
  /** Ms a backlog may stay above `maxBufferedAmount`. Default 2,000. */
  slowConsumerTimeout?: number;
  /** Ms a slow consumer gets to close cleanly before it is terminated. Default 5,000. */
  slowConsumerGrace?: number;
  /** Serve the demo editor page at `/` (needs `npm run build`). Default false. */
  demo?: boolean;
  /**
   * Ms between the write probes that judge whether the store can be written (`/readyz`,
   * `otter_store_ready`; see `readiness.ts`). The first runs at start; a failed append also
   * makes the server not ready at once, and a successful one ready. Default 3,000.
   */
  readinessInterval?: number;
  /** Structured logger (pino fits). Default: silent. */
  logger?: Logger;
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
  /** The server's Prometheus metrics. */
  readonly metrics: Metrics;
  /**
   * Answers `/healthz`, `/readyz`, `/metrics` (and the demo page if enabled) and the token
   * check on the WebSocket path (see `token-check.ts`); returns false for other requests.
   * Mount it in an embedding HTTP server's request handler.
   */
  readonly handleRequest: RouteHandler;
  /** Whether the store can be written, as `/readyz` answers (`readiness.status`). */
  readonly readiness: StoreReadiness;
  /**
   * Re-checks `authorize` now for every document `user` has open (only `docId`, if given) on
   * every connection — call it after taking a permission away. A lowered access is applied
   * as by the periodic re-check (`reauthorizeInterval`). Resolves once every answer is in (or
   * timed out, `reauthorizeTimeout`) with how many documents were closed or made read-only.
   * `user` undefined means the anonymous connections.
   */
  revoke(user: string | undefined, docId?: string): Promise<number>;
  /**
   * Graceful shutdown: stops accepting connections, lets every queued submission commit and be
   * acknowledged, closes every connection with 1001 (so clients reconnect elsewhere), closes
   * the store and, if this function created it, the HTTP server.
   */
  close(): Promise<void>;
}

/** Refuses an upgrade request with a plain HTTP status before any WebSocket state exists. */
function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  const body = `${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nConnection: close\r\n` +
      `Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  socket.destroy();
}

/** Creates and starts an Otter server; resolves once it is listening. */
export async function createServer(options: ServerOptions = {}): Promise<OtterServer> {
  if (options.authenticate !== undefined && options.jwt !== undefined) {
    throw new RangeError('give authenticate or jwt, not both');
  }
  const authenticate = options.jwt !== undefined ? await jwtAuthenticator(options.jwt) : options.authenticate;
  const store = options.store ?? new MemoryStore();
  const logger = options.logger ?? silentLogger;
  const readiness = new StoreReadiness(store, {
    interval: options.readinessInterval,
    logger,
    telemetry: {
      storeWriteFailed: (source) => metrics.storeWriteFailed(source),
      appendConflicted: () => metrics.appendConflicted(),
    },
  });
  const shared = store instanceof RedisStore ? store : undefined;
  const sequencer: Sequencer = new Sequencer(readiness.watch(store), {
    onError: (err, docId) => {
      if (err instanceof StorageCorruptError) {
        metrics.storageCorrupt();
        logger.error({ doc: docId, detail: err.detail }, 'document storage is damaged: the document is not served');
      } else {
        logger.error({ err: String(err), doc: docId }, 'background task failed');
      }
    },
    // Another server may commit to an open document at any time: it stays loaded to publish
    // that; and on a document edited through several servers appends race, so a batch may
    // lose many races in a row before it lands. A Redis may lose data (emptied, failed over):
    // the document is taken as it now is, and its connections are closed, so that their
    // clients open it again with their claims and restore what they hold, as after a restart.
    ...(shared === undefined
      ? {}
      : {
          keepLoaded: (docId: string): boolean => rooms.head(docId) !== undefined,
          conflictRetries: SHARED_CONFLICT_RETRIES,
          onStoreLost: (docId: string, detail: string): void => {
            let closed = 0;
            for (const [ws, session] of sessions) {
              if (!session.documentIds.includes(docId)) continue;
              session.flush();
              session.disconnected();
              ws.close(CloseCode.GoingAway, 'the store lost this document: open it again');
              closed++;
            }
            metrics.documentLost();
            logger.warn({ doc: docId, detail, connections: closed }, 'the store lost data of this document: its connections reopen it');
          },
        }),
    ...options.sequencer,
  });
  const recentOps = (docId: string, after: number, upTo: number): ReturnType<Sequencer['recentOps']> => sequencer.recentOps(docId, after, upTo);
  // Over a shared store, presences are relayed between the servers too.
  const relayed = shared === undefined ? undefined : new RelayedRooms(shared, recentOps, { logger });
  const rooms: Rooms = relayed ?? new Rooms(undefined, recentOps);
  sequencer.onApplied((docId, record) => rooms.publish(docId, record));
  const sessions = new Map<WebSocket, Session>();
  const perUser = new Map<string, number>();
  const maxPerUser = options.maxConnectionsPerUser ?? 16;
  const metrics = new Metrics({
    connections: () => sessions.size,
    openDocuments: () => rooms.size,
    loadedDocuments: () => sequencer.openDocuments,
    historyBytes: () => sequencer.historyBytes,
    storeReady: () => readiness.ready,
  });
  const maxPayload = options.maxPayload ?? 1 << 20;
  if (options.limits?.maxPayload !== undefined && options.limits.maxPayload !== maxPayload) {
    throw new RangeError(
      `limits.maxPayload (${options.limits.maxPayload}) contradicts maxPayload (${maxPayload}): give the frame limit once, as maxPayload`,
    );
  }
  const bytesBurst = options.limits?.bytesBurst ?? Math.max(SESSION_DEFAULTS.bytesBurst, 2 * maxPayload);
  if (bytesBurst < maxPayload) {
    throw new RangeError(`limits.bytesBurst (${bytesBurst}) must be at least maxPayload (${maxPayload}): larger frames could never pass`);
  }
  const context: SessionContext = {
    sequencer,
    rooms,
    telemetry: metrics,
    logger,
    options: {
      ...SESSION_DEFAULTS,
      maxCatchUpBytes: 2 * (options.maxBufferedAmount ?? 8 << 20),
      ...options.limits,
      bytesBurst,
      maxPayload,
    },
    authorize: options.authorize ?? (() => 'write'),
    history: new TokenBucket(
      options.limits?.serverHistoryPerSecond ?? SESSION_DEFAULTS.serverHistoryPerSecond,
      options.limits?.serverHistoryBurst ?? SESSION_DEFAULTS.serverHistoryBurst,
      Date.now(),
    ),
    reauthenticate: authenticate === undefined ? undefined : (token) => authenticate(token),
  };
  const maxBuffered = options.maxBufferedAmount ?? 8 << 20;
  const grace = options.slowConsumerGrace ?? 5000;
  const slowTimeout = options.slowConsumerTimeout ?? 2000;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload,
    handleProtocols: (offered) => (offered.has(OTTER_SUBPROTOCOL) ? OTTER_SUBPROTOCOL : false),
  });
  const reauthorizer = new Reauthorizer(() => sessions.values(), {
    interval: options.reauthorizeInterval ?? 60_000,
    timeout: options.reauthorizeTimeout ?? 10_000,
  });
  const alive = new WeakSet<WebSocket>();
  const routes = createRoutes({ readiness, metrics, demo: options.demo ?? false });
  const owned = options.server === undefined;
  const httpServer =
    options.server ??
    http.createServer((req, res) => {
      if (!handleRequest(req, res)) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    });
  const allowOrigins = options.allowOrigins === undefined ? undefined : new Set(options.allowOrigins);

  /** Who the request is, or the HTTP status refusing it. */
  const identify = async (req: http.IncomingMessage): Promise<Identity | undefined | number> => {
    if (authenticate === undefined) return undefined;
    try {
      const identity = await authenticate(tokenOf(req), req);
      // The user id scopes the user's client marks, which a store keeps as UTF-8.
      if (identity !== undefined && !isWellFormed(identity.user)) {
        logger.warn({}, 'authentication refused: the user id the authenticate hook gave holds a lone surrogate');
        return 401;
      }
      return identity ?? 401;
    } catch (e) {
      if (!(e instanceof AmbiguousTokenError)) logger.info({ reason: (e as Error).name }, 'authentication refused');
      return 401;
    }
  };
  const tokenCheck = createTokenCheck({ path: options.path, allowOrigins, identify });
  const handleRequest: RouteHandler = (req, res) => tokenCheck(req, res) || routes(req, res);

  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (options.path !== undefined && new URL(req.url ?? '/', 'http://x').pathname !== options.path) {
      if (owned) socket.destroy();
      return; // an embedding server may route other paths itself
    }
    socket.on('error', () => socket.destroy());
    const origin = req.headers.origin;
    if (allowOrigins !== undefined && origin !== undefined && !allowOrigins.has(origin)) {
      refuseUpgrade(socket, 403, 'origin not allowed');
      return;
    }
    void identify(req).then((identity) => {
      if (typeof identity === 'number') {
        refuseUpgrade(socket, identity, 'authentication required');
        return;
      }
      if (identity !== undefined && (perUser.get(identity.user) ?? 0) >= maxPerUser) {
        refuseUpgrade(socket, 429, 'too many connections for this user');
        return;
      }
      if (socket.destroyed) return;
      wss.handleUpgrade(req, socket, head, (ws) => accept(ws, req, identity));
    });
  };

  const accept = (ws: WebSocket, req: http.IncomingMessage, identity: Identity | undefined): void => {
    let dropping = false;
    let overSince: number | undefined;
    let recheck: ReturnType<typeof setTimeout> | undefined;
    const dropSlowConsumer = (): void => {
      dropping = true;
      clearTimeout(recheck);
      metrics.slowConsumerDropped();
      logger.warn({ connectionId: session.connectionId, buffered: ws.bufferedAmount }, 'slow consumer dropped');
      ws.close(CloseCode.SlowConsumer, 'slow consumer');
      setTimeout(() => ws.terminate(), grace).unref();
    };
    /** Drops the connection if its backlog is far over the cap, or over it for too long. */
    const checkBacklog = (): void => {
      if (dropping || ws.readyState !== WebSocket.OPEN) return;
      const backlog = ws.bufferedAmount;
      if (backlog > 8 * maxBuffered) return dropSlowConsumer();
      if (backlog <= maxBuffered) {
        overSince = undefined;
        return;
      }
      const now = Date.now();
      overSince ??= now;
      if (now - overSince >= slowTimeout) return dropSlowConsumer();
      if (recheck === undefined) {
        recheck = setTimeout(() => {
          recheck = undefined;
          checkBacklog();
        }, slowTimeout - (now - overSince));
        recheck.unref();
      }
    };
    const session: Session = new Session(
      {
        send: (frame) => {
          if (dropping || ws.readyState !== WebSocket.OPEN) return;
          // Encoded once: the byte count for the metrics and the payload ws would encode anyway.
          const data = Buffer.from(frame);
          ws.send(data, { binary: false });
          metrics.frameSent(data.length);
          checkBacklog();
        },
        close: (code, reason) => ws.close(code, reason),
        buffered: () => ws.bufferedAmount,
      },
      context,
      identity,
    );
    const opened = Date.now();
    sessions.set(ws, session);
    if (identity !== undefined) perUser.set(identity.user, (perUser.get(identity.user) ?? 0) + 1);
    metrics.connectionOpened();
    logger.info({ connectionId: session.connectionId, user: identity?.user, remote: req.socket.remoteAddress }, 'connection opened');
    alive.add(ws);
    ws.on('pong', () => alive.add(ws));
    ws.on('message', (data, isBinary) => {
      alive.add(ws);
      const buffer = data as Buffer;
      session.receive(isBinary ? '' : buffer.toString(), buffer.length);
    });
    ws.on('close', (code) => {
      clearTimeout(recheck);
      sessions.delete(ws);
      if (identity !== undefined) {
        const left = (perUser.get(identity.user) ?? 1) - 1;
        if (left > 0) perUser.set(identity.user, left);
        else perUser.delete(identity.user);
      }
      session.disconnected();
      logger.info({ connectionId: session.connectionId, code, ms: Date.now() - opened }, 'connection closed');
    });
    // ws closes the connection itself after a protocol error (1009 for an oversized frame).
    ws.on('error', (err) => logger.warn({ connectionId: session.connectionId, err: err.message }, 'connection error'));
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

  // Once listening (a failed listen leaves no probe running); the first probe runs now.
  readiness.start();
  // Documents loaded before the fan-out's first subscription are refreshed once it is made.
  const stopRoundTrips = shared?.onRoundTrip((command, ms, ok) => metrics.redisRoundTrip(command, ms, ok));
  relayed?.start();
  const fanout =
    shared === undefined
      ? undefined
      : new RedisFanout(shared, sequencer, { logger, telemetry: metrics, ...(relayed === undefined ? {} : { presence: relayed }) });

  const address = (): AddressInfo => httpServer.address() as AddressInfo;
  let closing: Promise<void> | undefined;

  const close = async (): Promise<void> => {
    fanout?.close();
    clearInterval(heartbeat);
    readiness.stop();
    reauthorizer.stop();
    httpServer.off('upgrade', onUpgrade);
    if (owned) httpServer.close();
    await sequencer.close();
    rooms.close();
    for (const [ws, session] of sessions) {
      session.flush();
      ws.close(CloseCode.GoingAway, 'server shutting down');
    }
    const deadline = Date.now() + 2000;
    while (sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const ws of sessions.keys()) ws.terminate();
    wss.close();
    await store.close();
    stopRoundTrips?.();
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
    metrics,
    handleRequest,
    readiness,
    revoke: (user, docId) => reauthorizer.revoke(user, docId),
    close: () => (closing ??= close()),
  };
}
