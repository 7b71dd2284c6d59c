/**
 * The client's one WebSocket: handshake (the token as a subprotocol), reconnection with
 * backoff, heartbeat, token refresh, the server's announced size limits, pauses when the
 * server drops messages for rate, and routing of server messages to the open documents.
 * Runs in browsers and in Node (pass `ws` as the `WebSocket` option where there is no global
 * one); imports nothing Node-only.
 */
import { ErrorCode, OtterError } from '../protocol/errors.js';
import {
  type ClientMessage,
  CloseCode,
  type ErrorMessage,
  PROTOCOL_VERSION,
  type ServerLimits,
  type ServerMessage,
} from '../protocol/messages.js';
import { ProtocolError, parseServerFrame } from '../protocol/parse.js';
import { reconnectDelay } from './backoff.js';
import { CollaborativeDocument, type DocumentOptions, type DocumentTransport } from './document.js';
import { Emitter } from './emitter.js';
import { DEFAULT_LIMITS, checkLimits } from '../protocol/limits.js';
import { Adoption, HeldLeaseStorage } from './adoption.js';
import { type ClientIdLease, type ClientStorage, isStoredDocument, randomClientId } from './storage.js';
import { handshake, tokenExpiry } from './token.js';

/**
 * A handler slot of a socket. The socket calls it; its parameter is typed `never` so that
 * both the DOM `WebSocket` and the `ws` package's class fit {@link WebSocketLike}.
 */
export type SocketHandler = ((event: never) => unknown) | null;

/** The part of the WebSocket API the connection uses (the DOM's and `ws`'s both fit). */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Called once the connection is open. */
  onopen: SocketHandler;
  /** Called with `{ data }` for every frame; text frames carry a string. */
  onmessage: SocketHandler;
  /** Called with `{ code }` once the connection is closed. */
  onclose: SocketHandler;
  /** Called on a failure; a close follows. */
  onerror: SocketHandler;
  /** Sends one text frame; may throw if the socket is not open. */
  send(data: string): void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
}

/**
 * A WebSocket class: `new WebSocket(url, protocols)`. The connection offers the subprotocol
 * `otter.v1` (and `otter.token.<token>` with a token); the server selects `otter.v1`.
 */
export type WebSocketConstructor = new (url: string, protocols?: string[]) => WebSocketLike;

/**
 * Where a connection is: `connecting` (opening, or waiting to reopen), `open` (past the
 * handshake), or `closed` (for good).
 */
export type ConnectionState = 'connecting' | 'open' | 'closed';

/** Events of a {@link Connection}. */
export interface ConnectionEvents {
  /** The state changed. */
  state: ConnectionState;
  /**
   * Something went wrong that is not about one document: a server error without a document
   * (a {@link ProtocolError} with the server's code and ref), an unreadable frame, a failed
   * `getToken`, an unsupported protocol (then the connection closes for good), an OtterError
   * `unauthorized` when the server's token check refused the token. Errors about
   * an open document go to that document's `error` event instead.
   */
  error: Error;
}

/**
 * The part of `fetch` the token check uses: a GET of `url` with the given headers, resolving
 * to the response's HTTP status, or rejecting on a network failure.
 */
export type FetchLike = (
  url: string,
  init: { method: 'GET'; headers: Record<string, string> },
) => Promise<{ readonly status: number }>;

/** Options of a {@link Connection}; every field has a default. */
export interface ConnectionOptions extends DocumentOptions {
  /** The WebSocket class. Default `globalThis.WebSocket` (in Node < 22, pass `ws`'s). */
  WebSocket?: WebSocketConstructor;
  /**
   * A token for every connection attempt, offered as the WebSocket subprotocol
   * `otter.token.<token>` (or, if it has characters outside `[A-Za-z0-9._~-]`, sent as the
   * `token` query parameter). Not with `getToken`.
   */
  token?: string;
  /**
   * Called (and awaited) before every connection attempt for a fresh token, carried as
   * `token` is. Also renews the credentials of an open connection: when the token is a JWT
   * with `exp`, a fresh one is sent in an `auth` message `refreshMargin` ms before it
   * expires. Not with `token`.
   */
  getToken?: () => string | Promise<string>;
  /**
   * How long before the credentials expire they are refreshed with `getToken`, in ms; a token
   * that lives less than twice this is refreshed halfway to its expiry. Default 30,000.
   */
  refreshMargin?: number;
  /**
   * What asks the server's token check after an attempt with a token that closed before
   * opening (see {@link Connection}). Default `globalThis.fetch`; without one there is no check.
   */
  fetch?: FetchLike;
  /**
   * This client's id, stable across reconnections. Default: leased from `storage`, else 128
   * random bits, hex. Not with `storage`.
   */
  clientId?: string;
  /**
   * Where to keep the documents' state between visits (in a browser, an `IndexedDbStorage`):
   * the connection leases its client id from it before it connects (the first id no live
   * connection holds, so a reopened tab gets its id back and two live tabs never share one),
   * each document opened loads its record first (see `CollaborativeDocument.loaded`) and saves
   * every change, and edits that never reached the server go out, exactly once, after the
   * next visit's open. Once leased, the connection also sends the pending edits stored under
   * other ids no live connection holds (tabs closed while offline), each under its own id
   * from a hidden connection to the same URL, and removes their records once the server has
   * them; failures there are `error` events (OtterError `storage-failed`) and stop nothing
   * else. Default: none, nothing is kept.
   */
  storage?: ClientStorage;
  /** Shortest delay before a reconnection attempt, in ms. Default 500. */
  minReconnectDelay?: number;
  /** Longest delay before a reconnection attempt, in ms. Default 30,000. */
  maxReconnectDelay?: number;
  /** Time between two `ping` messages, in ms. Default 4,000. */
  heartbeatInterval?: number;
  /**
   * With no frame from the server for this long (in ms), the socket is deemed dead, closed
   * and reopened: a link that went silent is noticed at most this long after the last frame
   * arrived. Must exceed `heartbeatInterval`. Default twice `heartbeatInterval` (8,000 with
   * the default interval). Browsers run the timers of a hidden tab as seldom as once a
   * minute, so there it may take that long.
   */
  heartbeatTimeout?: number;
}

const OPEN = 1;
/** The close code of a connection that ended without a close frame. */
const ABNORMAL_CLOSURE = 1006;
/** Longest delay `setTimeout` takes (about 24.8 days); longer waits are made of several. */
const MAX_TIMER = 2 ** 31 - 1;
/** Pause before the one retry of a refused token refresh, in ms (at most half the margin). */
const AUTH_RETRY_DELAY = 1000;

/** A browser's global scope: it says when the network goes and comes back. */
interface NetworkEvents {
  addEventListener(type: 'online' | 'offline', listener: () => void): void;
  removeEventListener(type: 'online' | 'offline', listener: () => void): void;
}

/** The global scope if it announces `online` and `offline` (a browser's does; Node's does not). */
function networkEvents(): NetworkEvents | undefined {
  const scope = globalThis as { addEventListener?: unknown; removeEventListener?: unknown; navigator?: { onLine?: unknown } };
  const announces =
    typeof scope.addEventListener === 'function' &&
    typeof scope.removeEventListener === 'function' &&
    typeof scope.navigator?.onLine === 'boolean';
  return announces ? (globalThis as unknown as NetworkEvents) : undefined;
}

/** `error` as an Error, for the `error` event. */
function asError(error: unknown, what: string): Error {
  return error instanceof Error ? error : new Error(`Otter: ${what}: ${String(error)}`);
}

function positive(name: string, value: number): number {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`Otter: ${name} must be a positive finite number of ms, got ${String(value)}`);
  }
  return value;
}

/** An OtterError `storage-failed` about the client storage: `what` failed because of `error`. */
function storageError(what: string, error: unknown): OtterError {
  const reason = error instanceof Error ? error.message : String(error);
  return new OtterError(ErrorCode.StorageFailed, `${what} failed: ${reason}`);
}

/** Calls `getToken`, turning a synchronous throw into a rejection. */
function askToken(getToken: () => string | Promise<string>): Promise<string> {
  try {
    return Promise.resolve(getToken());
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * A connection to an Otter server, carrying any number of documents.
 *
 * It connects at once, says `hello` with its clientId, and re-opens every open document after
 * each reconnection (not one whose access the server revoked: that one is closed, see the
 * document's `revoked` event). It reconnects after any close, with exponential backoff and jitter
 * (see {@link reconnectDelay}), except: after {@link close}; when the server does not speak
 * its protocol (close code 4000) or the token expired and there is no `getToken` to renew it
 * (4401), where it stops and emits `error`; when the server's token check refuses the token
twice in a row, or a static token once (see docs/security.md), where it stops after emitting
`unauthorized`; and when the server dropped it for having no
 * document open (4408), where it reconnects on the next {@link open}. While disconnected,
 * local edits wait in their documents and go out after the re-open.
 *
 * A dead link is noticed by the heartbeat (`heartbeatTimeout`, 8 s by default). In a browser
 * (where the global scope has `addEventListener` and `navigator.onLine`) the connection also
 * follows the `offline` and `online` events: going offline closes the socket at once (state
 * `connecting`), coming back online reconnects at once, with the backoff starting over.
 *
 * Documents cut their edits to the size limits the server announces in `welcome` (before
 * the first one, to the `limits` option). When the server drops a message without reading it
 * (a `rate-limited` error without `ref`), the connection pauses — `retryDelay`, doubling on
 * each further such error until an answer arrives — and sends again whatever still awaits an
 * answer: every unanswered open, every op in flight and an unanswered `auth`.
 *
 * With a `storage` option (see `storage.ts`), it leases its client id from the storage before
 * the first connection attempt, each document reads its stored record before it opens, and
 * every document change is saved; failures of the storage are `error` events (OtterError
 * `storage-failed`) and never stop editing.
 */
export class Connection extends Emitter<ConnectionEvents> {

  private readonly url: URL;
  private readonly WebSocket: WebSocketConstructor;
  private readonly options: ConnectionOptions;
  private readonly minDelay: number;
  private readonly maxDelay: number;
  private readonly heartbeatInterval: number;
  private readonly heartbeatTimeout: number;
  private readonly refreshMargin: number;
  private readonly retryDelay: number;
  /** The server's size limits: from the last `welcome`, or the `limits` option before one. */
  private limits: ServerLimits;

  private current: ConnectionState = 'connecting';
  private socket: WebSocketLike | undefined;
  private welcomed = false;
  private id: string | undefined;
  private stopped = false;
  /** The largest submit sent on the current socket: the suspect of a 1009 close. */
  private largestSubmit: { doc: string; seq: number; size: number } | undefined;
  /** The server refused this client's protocol version in an error message. */
  private protocolRefused = false;
  /** Closed by the server for having no document open: reconnect on the next `open`. */
  private idle = false;
  /** The token the current socket was opened with. */
  private token: string | undefined;
  /** The token of an `auth` message sent and not answered yet. */
  private authPending: string | undefined;
  /** The one retry of a refused refresh was used (until the next successful one). */
  private authRetried = false;
  /** When the current credentials expire (ms since the epoch), if known. */
  private expiresAt: number | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** The pause after a `rate-limited` error without ref, before sending again. */
  private resendTimer: ReturnType<typeof setTimeout> | undefined;
  /** Such pauses since the last answer (ack or opened): each doubles the next. */
  private resendStrikes = 0;
  /** The token check refused a token since the last welcome: a second refusal stops. */
  private refused = false;
  /** Consecutive attempts without a welcome. */
  private attempt = 0;
  /** Bumped by each connection attempt, so a stale `getToken` answer is ignored. */
  private generation = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private deadline: ReturnType<typeof setTimeout> | undefined;
  /** When the last frame arrived on the current socket (ms since the epoch). */
  private lastFrameAt = 0;
  /** When the oldest ping not followed by any frame was sent (≤ lastFrameAt: none outstanding). */
  private pingSentAt = 0;
  /** The browser's global scope, listened to for `online` and `offline`; undefined elsewhere. */
  private readonly network = networkEvents();
  private readonly docs = new Map<string, CollaborativeDocument>();
  /** This client's id; undefined while it is being leased from the storage. */
  private ownId: string | undefined;
  /** The storage, once its lease is held (undefined without one, or if leasing failed). */
  private storage: ClientStorage | undefined;
  private lease: ClientIdLease | undefined;
  /** Settles once the lease is taken (or failed); undefined without storage. */
  private leasing: Promise<void> | undefined;
  /** Settles once, after the connection stopped, the client id is given up. */
  private released: Promise<void> = Promise.resolve();
  /** Sends what idle client ids of the storage left unsent (see `adoption.ts`); stopped with this one. */
  private adoption: Adoption | undefined;
  /** Documents reading their stored record: not opened with the server until it is read. */
  private readonly loading = new Set<CollaborativeDocument>();
  /**
   * The last writes of documents closed on this connection, by id, until done: a document
   * opened again reads its record only after them (else it would take an older record, and
   * its saves would overwrite the closed one's edits).
   */
  private readonly closing = new Map<string, Promise<void>>();
  private readonly transport: DocumentTransport = {
    send: (message) => this.send(message),
    detach: (doc) => {
      this.loading.delete(doc);
      if (this.docs.get(doc.id) === doc) this.docs.delete(doc.id);
      const written: Promise<void> = doc
        .flushStorage()
        .catch(() => {}) // a failed save was reported as an `error`
        .then(() => {
          if (this.closing.get(doc.id) === written) this.closing.delete(doc.id);
        });
      this.closing.set(doc.id, written);
    },
  };

  /**
   * Starts connecting to `url`: ws: or wss: (http: and https: are taken as ws: and wss:), or
   * a path relative to the page in a browser. Throws at once on a bad URL, contradictory
   * options, or no WebSocket class.
   */
  constructor(url: string | URL, options: ConnectionOptions = {}) {
    super();
    const WebSocketClass =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (WebSocketClass === undefined) {
      throw new Error(
        'Otter: no WebSocket class: this platform has no globalThis.WebSocket; pass one as the WebSocket option (in Node: the `ws` package)',
      );
    }
    if (options.token !== undefined && options.getToken !== undefined) {
      throw new Error('Otter: pass either token or getToken, not both');
    }
    if (options.clientId !== undefined && options.storage !== undefined) {
      throw new Error('Otter: pass either clientId or storage, not both (with storage, the client id is leased from it)');
    }
    this.WebSocket = WebSocketClass;
    const base = (globalThis as { location?: { href?: string } }).location?.href;
    this.url = new URL(url, base);
    // A URL relative to a page comes out as http(s): the WebSocket scheme is ws(s).
    if (this.url.protocol === 'http:') this.url.protocol = 'ws:';
    else if (this.url.protocol === 'https:') this.url.protocol = 'wss:';
    if (this.url.protocol !== 'ws:' && this.url.protocol !== 'wss:') {
      throw new TypeError(`Otter: the server URL must be ws:, wss:, http: or https:, got ${this.url.href}`);
    }
    this.options = options;
    this.minDelay = positive('minReconnectDelay', options.minReconnectDelay ?? 500);
    this.maxDelay = positive('maxReconnectDelay', options.maxReconnectDelay ?? 30_000);
    if (this.maxDelay < this.minDelay) {
      throw new RangeError(
        `Otter: maxReconnectDelay (${this.maxDelay}) is below minReconnectDelay (${this.minDelay})`,
      );
    }
    this.heartbeatInterval = positive('heartbeatInterval', options.heartbeatInterval ?? 4_000);
    this.heartbeatTimeout = positive('heartbeatTimeout', options.heartbeatTimeout ?? 2 * this.heartbeatInterval);
    if (this.heartbeatTimeout <= this.heartbeatInterval) {
      throw new RangeError(
        `Otter: heartbeatTimeout (${this.heartbeatTimeout}) must exceed heartbeatInterval (${this.heartbeatInterval})`,
      );
    }
    this.refreshMargin = positive('refreshMargin', options.refreshMargin ?? 30_000);
    this.retryDelay = positive('retryDelay', options.retryDelay ?? 250);
    this.limits = checkLimits(options.limits ?? DEFAULT_LIMITS);
    this.network?.addEventListener('offline', this.onOffline);
    this.network?.addEventListener('online', this.onOnline);
    if (options.storage === undefined) {
      this.ownId = options.clientId ?? randomClientId();
      this.connect();
    } else {
      this.leaseClientId(options.storage);
    }
  }

  /**
   * This client's id, sent in every `hello`; stable for the connection's lifetime. With
   * `storage`, undefined until the id is leased (before the first connection attempt).
   */
  get clientId(): string | undefined {
    return this.ownId;
  }

  /** The current state; `state` events announce changes. */
  get state(): ConnectionState {
    return this.current;
  }

  /** The server's id for the current connection (the key of this client's presence), once welcomed. */
  get connectionId(): string | undefined {
    return this.id;
  }

  /**
   * Opens document `docId` and returns it; the same instance while it stays open. Its
   * `ready` promise resolves when the server has sent it. Throws OtterError `closed` after
   * {@link close}.
   */
  open(docId: string): CollaborativeDocument {
    if (this.stopped) throw new OtterError(ErrorCode.Closed, 'the connection is closed');
    if (typeof docId !== 'string' || docId.length === 0) {
      throw new TypeError(`Otter: a document id must be a non-empty string, got ${JSON.stringify(docId)}`);
    }
    const open = this.docs.get(docId);
    if (open !== undefined) return open;
    const doc = new CollaborativeDocument(docId, this.transport, { ...this.options, limits: this.limits });
    this.docs.set(docId, doc);
    if (this.options.storage !== undefined) {
      doc.startLoading();
      this.loading.add(doc);
      // Before the lease, the lease's arrival loads it.
      if (this.ownId !== undefined) this.load(doc);
    } else {
      doc.finishLoading(); // nothing to load: `loaded` resolves at once
    }
    if (this.welcomed && !this.loading.has(doc)) doc.connected(this.limits);
    if (this.idle) {
      this.idle = false;
      this.connect();
    }
    return doc;
  }

  /**
   * Closes the connection and every document for good: no reconnection, pending `ready` and
   * `synced()` promises reject. Closing twice does nothing. With `storage`, the returned
   * promise resolves once the documents' last states are written and the client id (with
   * any idle id it was sending the edits of) is given up for another connection to lease
   * (at once without storage); it never rejects.
   */
  close(): Promise<void> {
    this.stop();
    return this.released;
  }

  // ─── client storage ───────────────────────────────────────────────────────────────────────

  /**
   * Leases the client id from `storage`, then loads the documents opened meanwhile and
   * connects. If leasing fails: an `error` (OtterError `storage-failed`), and the connection
   * goes on without storage, under a random id.
   */
  private leaseClientId(storage: ClientStorage): void {
    const leased = (async () => storage.acquireClientId())();
    this.leasing = leased.then(
      (lease) => {
        if (this.stopped) {
          lease.release();
          return;
        }
        this.lease = lease;
        this.storage = storage;
        this.ownId = lease.clientId;
        for (const doc of this.loading) this.load(doc);
        this.connect();
        if (!(storage instanceof HeldLeaseStorage)) {
          this.adoption = new Adoption(storage, lease.clientId, {
            connect: (held) => new Connection(this.url, { ...this.options, storage: held }),
            report: (what, error) => {
              if (!this.stopped) this.emit('error', storageError(what, error));
            },
          });
        }
      },
      (error: unknown) => {
        if (this.stopped) return;
        this.emit('error', storageError('leasing a client id from the client storage', error));
        if (this.stopped) return; // a listener closed it
        this.ownId = randomClientId();
        for (const doc of [...this.loading]) this.loaded(doc, undefined);
        this.connect();
      },
    );
  }

  /** Reads the stored record of `doc` (under the leased id), then lets it open. */
  private load(doc: CollaborativeDocument): void {
    const storage = this.storage as ClientStorage;
    const clientId = this.ownId as string;
    const read = (this.closing.get(doc.id) ?? Promise.resolve()).then(() => storage.load(clientId, doc.id));
    read.then(
      (record) => {
        if (record !== undefined && !isStoredDocument(record)) {
          this.emit('error', storageError(`reading document ${JSON.stringify(doc.id)} from the client storage`, 'the record is not one this client reads'));
          this.loaded(doc, { storage, clientId });
          return;
        }
        this.loaded(doc, { storage, clientId, ...(record === undefined ? {} : { record }) });
      },
      (error: unknown) => {
        this.emit('error', storageError(`reading document ${JSON.stringify(doc.id)} from the client storage`, error));
        this.loaded(doc, { storage, clientId });
      },
    );
  }

  /** `doc` has its stored state (or none): it may open with the server now. */
  private loaded(doc: CollaborativeDocument, storage: Parameters<CollaborativeDocument['finishLoading']>[0]): void {
    if (!this.loading.delete(doc) || doc.closed) return;
    try {
      doc.finishLoading(storage);
    } catch (error) {
      this.emit('error', storageError(`taking document ${JSON.stringify(doc.id)} from the client storage`, error));
      if (doc.closed) return; // a listener closed it
      doc.finishLoading(storage === undefined ? undefined : { storage: storage.storage, clientId: storage.clientId });
    }
    if (this.welcomed && !doc.closed) doc.connected(this.limits);
  }

  // ─── connecting ───────────────────────────────────────────────────────────────────────────

  /** The browser lost its network: give up the socket now rather than at the heartbeat's end. */
  private readonly onOffline = (): void => {
    const socket = this.socket;
    if (this.stopped || socket === undefined) return;
    this.lost(ABNORMAL_CLOSURE);
    try {
      socket.close(1000, 'offline');
    } catch {
      // already closing: nothing to do
    }
  };

  /** The browser has a network again: a reconnection waiting for its backoff starts now. */
  private readonly onOnline = (): void => {
    if (this.stopped || this.reconnectTimer === undefined) return;
    clearTimeout(this.reconnectTimer);
    this.attempt = 0;
    this.connect();
  };

  private connect(): void {
    this.reconnectTimer = undefined;
    const generation = ++this.generation;
    this.setState('connecting');
    const getToken = this.options.getToken;
    if (getToken === undefined) {
      this.openSocket(this.options.token);
      return;
    }
    askToken(getToken).then(
      (token) => {
        if (!this.stopped && generation === this.generation) this.openSocket(token);
      },
      (error: unknown) => {
        if (this.stopped || generation !== this.generation) return;
        this.emit('error', asError(error, 'getToken failed'));
        this.scheduleReconnect();
      },
    );
  }

  private openSocket(token: string | undefined): void {
    const { url, protocols } = handshake(this.url, token);
    let socket: WebSocketLike;
    try {
      socket = new this.WebSocket(url, protocols);
    } catch (e) {
      this.emit('error', e instanceof Error ? e : new Error(String(e)));
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    this.token = token;
    // Handlers stay attached for the socket's life and ignore it once it is replaced: `ws`
    // throws on an `error` event that has no listener.
    let opened = false;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      opened = true;
      this.armDeadline();
      this.sendRaw(socket, { type: 'hello', protocol: PROTOCOL_VERSION, clientId: this.ownId as string });
      this.pingTimer = setInterval(() => {
        if (this.pingSentAt <= this.lastFrameAt) this.pingSentAt = Date.now();
        this.send({ type: 'ping' });
      }, this.heartbeatInterval);
    };
    socket.onmessage = (event: { data?: unknown }) => {
      if (this.socket !== socket) return;
      this.armDeadline();
      this.onFrame(socket, event.data);
    };
    socket.onclose = (event: { code?: number }) => {
      if (this.socket !== socket) return;
      this.lost(event.code ?? ABNORMAL_CLOSURE);
      if (!opened && token !== undefined) this.checkToken(token);
    };
    socket.onerror = () => {}; // a close event follows
    this.armDeadline();
  }

  /**
   * (Re)starts the wait for the next frame (a frame arrived, or the socket is new). The socket is
   * deemed dead once `heartbeatTimeout` passed without a frame and, once it is open (pinging), a
   * ping sent at least `heartbeatTimeout - heartbeatInterval` ago is still unanswered. Judged by the clock when the
   * timer runs, not by the timer alone: a hidden tab's timers are throttled (to once a minute in
   * Chromium), and a ping and this timer woken together must not kill a live link.
   */
  private armDeadline(): void {
    this.lastFrameAt = Date.now();
    this.scheduleDeadline(this.heartbeatTimeout);
  }

  private scheduleDeadline(wait: number): void {
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => {
      const now = Date.now();
      const unanswered = this.pingSentAt > this.lastFrameAt ? now - this.pingSentAt : 0;
      const grace = this.pingTimer === undefined ? 0 : this.heartbeatTimeout - this.heartbeatInterval;
      if (now - this.lastFrameAt < this.heartbeatTimeout || unanswered < grace) {
        this.scheduleDeadline(Math.max(1, Math.min(this.heartbeatTimeout - (now - this.lastFrameAt), grace - unanswered, this.heartbeatInterval)));
        return;
      }
      const socket = this.socket;
      this.lost(ABNORMAL_CLOSURE);
      try {
        socket?.close(1000, 'heartbeat timeout');
      } catch {
        // already closing: nothing to do
      }
    }, wait);
  }

  /**
   * An attempt with `token` closed before opening: ask the server's token check (a GET of the
   * WebSocket URL as http(s) with `Authorization: Bearer <token>`) whether it refuses the
   * token. On 401, while no later attempt has started: emit OtterError `unauthorized`, then
   * ask `getToken` again at once, or stop (state `closed`) after a second refusal since the
   * last welcome or with a static token. Any other answer, or a failed fetch, leaves the
   * reconnection to the backoff.
   */
  private checkToken(token: string): void {
    const fetchFn = this.options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (fetchFn === undefined || this.stopped) return;
    const generation = this.generation;
    const url = new URL(this.url);
    url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
    let answer: Promise<{ readonly status: number }>;
    try {
      answer = fetchFn.call(globalThis, url.href, { method: 'GET', headers: { authorization: `Bearer ${token}` } });
    } catch {
      return; // a token a header cannot carry: the backoff goes on
    }
    answer.then(
      ({ status }) => {
        if (status !== 401 || this.stopped || generation !== this.generation) return;
        const error = new OtterError(ErrorCode.Unauthorized, 'the server refused the token (HTTP 401)');
        if (this.options.getToken === undefined || this.refused) {
          this.fail(error);
          return;
        }
        this.refused = true;
        this.emit('error', error);
        if (this.stopped || generation !== this.generation) return; // a listener acted
        clearTimeout(this.reconnectTimer);
        this.connect();
      },
      () => {}, // no answer: the backoff goes on
    );
  }

  /** The socket is gone (closed, or deemed dead): tell the documents, then reconnect or stop. */
  private lost(code: number): void {
    const suspect = this.largestSubmit;
    this.dropSocket();
    for (const doc of [...this.docs.values()]) doc.disconnected();
    if (this.stopped) return;
    switch (code) {
      case CloseCode.ProtocolVersion:
        if (this.protocolRefused) this.stop(); // the server's error said why already
        else
          this.fail(
            new OtterError(
              ErrorCode.UnsupportedProtocol,
              `the server does not speak protocol ${PROTOCOL_VERSION} (close code ${code}); not reconnecting`,
            ),
          );
        return;
      case CloseCode.AuthExpired:
        if (this.options.getToken === undefined) {
          this.fail(
            new OtterError(
              ErrorCode.AuthExpired,
              `the server closed the connection because the token expired (close code ${code}); pass getToken to renew it`,
            ),
          );
          return;
        }
        break;
      case CloseCode.TooBig: {
        // A frame was over the server's payload limit: the largest submit is the culprit, and
        // resending it after the reconnection would loop. Its document undoes it (as for a
        // `too-large` refusal; nothing happens if that op is no longer in flight).
        const culprit = suspect;
        const doc = culprit === undefined ? undefined : this.docs.get(culprit.doc);
        if (culprit !== undefined && doc !== undefined) {
          doc.receive({
            type: 'error',
            code: ErrorCode.TooLarge,
            message: `the server closed the connection (${code}): a submission of ${culprit.size} code units was over its payload limit`,
            ref: { type: 'submit', doc: culprit.doc, seq: culprit.seq },
          });
        }
        break;
      }
      case CloseCode.OpenDeadline:
        // The server drops connections with no document open; reconnect when one is opened.
        if (this.docs.size === 0) {
          this.idle = true;
          this.setState('connecting');
          return;
        }
        break;
      default:
        break;
    }
    this.scheduleReconnect();
  }

  private dropSocket(): void {
    this.socket = undefined;
    this.largestSubmit = undefined;
    this.welcomed = false;
    this.id = undefined;
    clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    clearTimeout(this.deadline);
    this.deadline = undefined;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    clearTimeout(this.resendTimer);
    this.resendTimer = undefined;
    this.resendStrikes = 0;
    this.authPending = undefined;
    this.token = undefined;
    this.expiresAt = undefined;
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer !== undefined) return;
    this.setState('connecting');
    const delay = reconnectDelay(this.attempt, this.minDelay, this.maxDelay);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** Stops for good because of `error`. */
  private fail(error: Error): void {
    this.stop();
    this.emit('error', error);
  }

  private stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.network?.removeEventListener('offline', this.onOffline);
    this.network?.removeEventListener('online', this.onOnline);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const socket = this.socket;
    this.dropSocket();
    try {
      socket?.close(1000, 'closed by the client');
    } catch {
      // already closing
    }
    const docs = [...this.docs.values()];
    for (const doc of docs) doc.close();
    this.docs.clear();
    this.loading.clear();
    // The id is given up once the documents' last states are written, not before: the next
    // holder of the id must read them. A lease still on its way is given up when it arrives.
    const written = Promise.allSettled(docs.map((doc) => doc.flushStorage()));
    // Adoption ends too: each hidden connection closes and gives its id up.
    const adopted = this.adoption?.stop();
    this.released = Promise.all([written, this.leasing, adopted]).then(() => {
      this.lease?.release();
      this.lease = undefined;
    });
    this.setState('closed');
  }

  private setState(state: ConnectionState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit('state', state);
  }

  // ─── sending and receiving ────────────────────────────────────────────────────────────────

  /** Sends a message if open and welcomed; false otherwise. */
  private send(message: ClientMessage): boolean {
    const socket = this.socket;
    if (socket === undefined || !this.welcomed || this.stopped) return false;
    return this.sendRaw(socket, message);
  }

  private sendRaw(socket: WebSocketLike, message: ClientMessage): boolean {
    if (socket.readyState !== OPEN) return false;
    try {
      const data = JSON.stringify(message);
      socket.send(data);
      if (message.type === 'submit' && data.length > (this.largestSubmit?.size ?? 0)) {
        this.largestSubmit = { doc: message.doc, seq: message.seq, size: data.length };
      }
      return true;
    } catch {
      return false; // the socket is closing; its close event follows
    }
  }

  private onFrame(socket: WebSocketLike, data: unknown): void {
    if (typeof data !== 'string') {
      this.emit('error', new ProtocolError(ErrorCode.BadMessage, 'the server sent a binary frame'));
      return;
    }
    let messages: ServerMessage[];
    try {
      messages = parseServerFrame(data);
    } catch (e) {
      this.emit('error', e instanceof Error ? e : new Error(String(e)));
      return;
    }
    for (const message of messages) {
      if (this.stopped || this.socket !== socket) return; // a listener closed it meanwhile
      this.dispatch(message);
    }
  }

  private dispatch(message: ServerMessage): void {
    switch (message.type) {
      case 'welcome':
        if (message.protocol !== PROTOCOL_VERSION) {
          this.fail(
            new OtterError(
              ErrorCode.UnsupportedProtocol,
              `the server speaks protocol ${message.protocol}, this client ${PROTOCOL_VERSION}`,
            ),
          );
          return;
        }
        this.welcomed = true;
        this.id = message.connectionId;
        this.attempt = 0;
        this.refused = false;
        this.limits = message.limits;
        this.scheduleRefresh(this.token === undefined ? undefined : tokenExpiry(this.token));
        this.setState('open');
        for (const doc of [...this.docs.values()]) if (!this.loading.has(doc)) doc.connected(this.limits);
        return;
      case 'pong':
        return;
      case 'authed':
        this.onAuthed(message.expiresAt);
        return;
      case 'error':
        this.onServerError(message);
        return;
      case 'opened':
      case 'restored':
      case 'ack':
        this.resendStrikes = 0; // an answer: the server reads our messages again
        this.docs.get(message.doc)?.receive(message);
        return;
      case 'ops':
      case 'head':
      case 'presence':
      case 'left':
      case 'closed':
      case 'revoked':
        this.docs.get(message.doc)?.receive(message);
        return;
      default:
        exhaustive(message);
    }
  }

  private onServerError(message: ErrorMessage): void {
    const docId = message.ref?.doc;
    const doc = docId === undefined ? undefined : this.docs.get(docId);
    if (doc !== undefined) {
      doc.receive(message);
      return;
    }
    // unsupported-protocol is followed by close code 4000, which stops the connection.
    if (message.code === ErrorCode.UnsupportedProtocol) this.protocolRefused = true;
    const about = message.ref?.type;
    if (about === 'auth') this.onAuthRefused(message);
    // Dropped unread, so the server cannot say which message it was: send again, after a
    // pause, everything that awaits an answer. Not for `bad-message` without ref: that is a
    // frame the server could not parse (not JSON, too deep, a forbidden key), which this
    // client never writes; sending it again would only be refused again, and each refusal
    // counts toward closing the connection (4400).
    if (message.code === ErrorCode.RateLimited && about === undefined) this.scheduleResend();
    this.emit('error', new ProtocolError(message.code, message.message, message.ref ?? {}));
  }

  // ─── rate limits ──────────────────────────────────────────────────────────────────────────

  /** Sends again what awaits an answer, after a pause that doubles with each strike (up to 32×). */
  private scheduleResend(): void {
    if (this.resendTimer !== undefined) return; // one pause covers every message dropped meanwhile
    const delay = this.retryDelay * 2 ** Math.min(this.resendStrikes, 5);
    this.resendStrikes += 1;
    this.resendTimer = setTimeout(() => {
      this.resendTimer = undefined;
      const socket = this.socket;
      if (this.stopped || socket === undefined) return;
      if (!this.welcomed) {
        // The hello itself was dropped: say it again.
        this.sendRaw(socket, { type: 'hello', protocol: PROTOCOL_VERSION, clientId: this.ownId as string });
        return;
      }
      for (const doc of [...this.docs.values()]) doc.retryUnanswered();
      if (this.authPending !== undefined) this.send({ type: 'auth', token: this.authPending });
    }, delay);
  }

  // ─── token refresh ────────────────────────────────────────────────────────────────────────

  /**
   * Schedules the renewal of credentials that expire at `expiresAt` (ms since the epoch;
   * undefined: they do not, or nobody knows when): `refreshMargin` before then, or halfway
   * there if that is later, so that short-lived tokens are not refreshed in a loop. Only with
   * `getToken`.
   */
  private scheduleRefresh(expiresAt: number | undefined): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    this.authRetried = false;
    this.expiresAt = expiresAt;
    if (this.options.getToken === undefined || expiresAt === undefined) return;
    const left = expiresAt - Date.now();
    const delay = Math.max(0, left - this.refreshMargin, left / 2);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      if (delay > MAX_TIMER) this.scheduleRefresh(expiresAt);
      else this.refresh();
    }, Math.min(delay, MAX_TIMER));
  }

  /** Asks `getToken` for a fresh token and sends it in an `auth` message on this socket. */
  private refresh(): void {
    const getToken = this.options.getToken;
    const socket = this.socket;
    if (getToken === undefined || socket === undefined || !this.welcomed) return;
    askToken(getToken).then(
      (token) => {
        if (this.stopped || this.socket !== socket) return;
        this.authPending = token;
        this.send({ type: 'auth', token });
      },
      (error: unknown) => {
        if (this.stopped || this.socket !== socket) return;
        this.emit('error', asError(error, 'getToken failed'));
        this.retryRefresh();
      },
    );
  }

  /**
   * A refresh failed: try once more after a short pause. If that fails too, the server
   * closes the connection with 4401 when the credentials run out, and the reconnection asks
   * `getToken` again.
   */
  private retryRefresh(): void {
    if (this.authRetried) return;
    this.authRetried = true;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      this.refresh();
    }, Math.min(AUTH_RETRY_DELAY, this.refreshMargin / 2));
  }

  /**
   * The server took a refreshed token valid until `expiresAt`. A token that expires no later
   * than the one before did not help (a cached token, say): ask once more, then let it run
   * out, rather than refresh again and again ever closer to the expiry.
   */
  private onAuthed(expiresAt: number | undefined): void {
    this.authPending = undefined;
    const before = this.expiresAt;
    if (expiresAt !== undefined && before !== undefined && expiresAt <= before) this.retryRefresh();
    else this.scheduleRefresh(expiresAt);
  }

  /** The server refused an `auth`: retry once if it refused the token; stop if it has no authentication. */
  private onAuthRefused(message: ErrorMessage): void {
    this.authPending = undefined;
    if (message.code === ErrorCode.AuthExpired) {
      this.retryRefresh();
    } else if (message.code === ErrorCode.BadRequest) {
      // The server does not authenticate: its connections do not expire.
      clearTimeout(this.refreshTimer);
      this.refreshTimer = undefined;
    }
  }
}

function exhaustive(message: never): never {
  throw new Error(`unhandled server message ${JSON.stringify(message)}`);
}
