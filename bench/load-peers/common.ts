/**
 * What bench/load.ts needs of each system under test (Otter, ShareDB, Yjs, Hocuspocus): a server
 * that runs in one or more child processes (bench/load-peers/server-child.ts) and a client that
 * runs in the driver.
 */
import { WebSocket } from 'ws';

/** A running server of one system, in the child process. */
export interface PeerServer {
  /** Base `ws://127.0.0.1:port` URL. */
  readonly url: string;
  close(): Promise<void>;
}

/** Postgres connection settings (node-postgres `Pool` options). */
export interface PostgresConfig {
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
}

/**
 * What one server node of a run is given: the shared state the driver set up for this run
 * (bench/load-peers/backends.ts) and its place among the run's nodes.
 */
export interface NodeContext {
  /** This node's number, from 0. Node 0 is started alone, before the others. */
  node: number;
  /** A directory of this run's own, empty at the start of the run. */
  dir: string;
  /** `redis://127.0.0.1:port`: this run's private redis-server, when the system uses Redis. */
  redisUrl?: string;
  /** This run's Postgres database, its tables emptied, when the system uses Postgres. */
  postgres?: PostgresConfig;
}

/** What a client reports to the driver. */
export interface ClientHooks {
  /** Text inserted by a remote op, as it arrived (inserted strings survive transformation). */
  remoteInsert(text: string): void;
  /**
   * One WebSocket message from the server, `bytes` payload bytes, before any library sees it.
   * Returning false drops it unseen (the driver does so once a run is aborted, so that a
   * flooded client process stops working on it).
   */
  frame(bytes: number): boolean;
  /** Something unexpected: an error message from the server, an unexpected close. */
  problem(what: string): void;
}

/** One connected, synced client of the shared benchmark document. */
export interface LoadClient {
  /** The client's current local text (pending local edits included). */
  text(): string;
  /** Types `ch` at `pos` of the local text (a keystroke); the client sends it as it normally would. */
  insert(pos: number, ch: string): void;
  /** No local edit waits for the server's acknowledgement (always true where nothing is acknowledged). */
  settled(): boolean;
  /**
   * How many ops the server has sequenced on the document, as far as this client has heard (its
   * version); NaN for a system without versions (Yjs). Ops, not keystrokes: a client composes
   * the keystrokes typed while one op awaits its ack into the next.
   */
  version(): number;
  /** Disconnects. */
  close(): void;
}

/** One system under test. */
export interface Peer {
  readonly name: string;
  /** One line on how the server and clients are set up. */
  readonly setup: string;
  /**
   * What the nodes share. Without `redis` or `postgres` the server keeps its state to itself and
   * runs as one node only.
   */
  readonly shares?: { readonly redis?: boolean; readonly postgres?: boolean };
  /** Starts one server node (called in the child process). */
  startServer(context: NodeContext): Promise<PeerServer>;
  /** Connects client number `index` and resolves once it holds the document. */
  connect(url: string, index: number, hooks: ClientHooks): Promise<LoadClient>;
}

/** A WebSocket constructor as browser-style libraries call it. */
export type SocketClass = new (address: string, protocols?: string | string[]) => WebSocket;

/** Payload size of a `ws` message, whatever its binaryType made of it. */
export function payloadBytes(data: unknown): number {
  if (Array.isArray(data)) return data.reduce((n: number, b: Buffer) => n + b.byteLength, 0);
  if (typeof data === 'string') return Buffer.byteLength(data);
  return (data as ArrayBuffer).byteLength;
}

/**
 * A `ws` WebSocket class that reports every incoming message to `hooks.frame` before any
 * listener (`on('message')` or `onmessage`) sees it, drops it if that says so, and reports every
 * close it did not ask for to `hooks.problem` (for libraries that take a WebSocket constructor).
 */
export function countingWebSocket(hooks: ClientHooks): SocketClass {
  return class CountingWebSocket extends WebSocket {
    private closing = false;
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols);
      this.on('close', (code, reason) => {
        if (!this.closing) hooks.problem(`connection closed by the server: ${code} ${reason.toString()}`);
      });
    }
    override emit(event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'message' && !hooks.frame(payloadBytes(args[0]))) return false;
      return super.emit(event, ...args);
    }
    override close(code?: number, reason?: string | Buffer): void {
      this.closing = true;
      super.close(code, reason);
    }
    override terminate(): void {
      this.closing = true;
      super.terminate();
    }
  };
}

/** Resolves when `promise` does, or rejects after `ms` with `what` timed out. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
