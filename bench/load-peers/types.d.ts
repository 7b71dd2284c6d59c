/**
 * Minimal typings for the untyped CommonJS peers of bench/load.ts — ShareDB 7 (server and
 * client), sharedb-postgres 5, sharedb-redis-pubsub 5, @teamwork/websocket-json-stream 2 and
 * y-websocket 2's server utilities — covering only what the benchmark calls. Plain exported
 * types, not ambient `declare module`s, so they cannot clash with another folder's
 * declarations; the peers are loaded with createRequire.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** A ShareDB OT type (ot-text-unicode's `type`). */
export interface ShareDbType {
  readonly name: string;
  readonly uri: string;
}

export interface ShareDbTypes {
  register(type: ShareDbType): void;
}

type Callback = (error?: Error | null) => void;

/** sharedb/lib/client Doc. */
export interface ShareDbDoc {
  readonly data: unknown;
  readonly type: ShareDbType | null;
  /** Ops the server has applied to the document, as this client holds it. */
  readonly version: number | null;
  create(data: unknown, type: string, callback: Callback): void;
  subscribe(callback: Callback): void;
  submitOp(op: unknown, callback?: Callback): void;
  hasPending(): boolean;
  on(event: 'op', listener: (op: unknown, source: unknown) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
}

/** sharedb/lib/client Connection (also what Backend.connect returns). */
export interface ShareDbConnection {
  get(collection: string, id: string): ShareDbDoc;
  close(): void;
}

export interface ShareDbConnectionClass {
  new (socket: WebSocket): ShareDbConnection;
}

/** The `sharedb` module: the Backend constructor with `types` attached. */
export interface ShareDbBackendClass {
  new (options?: Record<string, unknown>): ShareDbBackend;
  readonly types: ShareDbTypes;
}

export interface ShareDbBackend {
  listen(stream: Duplex, req?: IncomingMessage): unknown;
  connect(): ShareDbConnection;
  close(callback?: Callback): void;
}

/** A snapshot as a ShareDB database reads it. */
export interface ShareDbSnapshot {
  id: string;
  v: number;
  type: string | null;
  data: unknown;
}

/** The part of a ShareDB database (sharedb-postgres's) the benchmark wraps. */
export interface ShareDbDatabase {
  getSnapshot(
    collection: string,
    id: string,
    fields: unknown,
    options: unknown,
    callback: (error: Error | null, snapshot?: ShareDbSnapshot) => void,
  ): void;
}

/** sharedb-postgres: `(poolOptions) => db`, a ShareDB database over a node-postgres Pool. */
export type ShareDbPostgresFactory = (options: object) => ShareDbDatabase;

/** sharedb-redis-pubsub: `(createClientOptions) => pubsub`, over two node-redis clients. */
export type ShareDbRedisPubSubFactory = (options: { url: string }) => unknown;

/** The `sharedb/lib/client` module. */
export interface ShareDbClientModule {
  readonly Connection: ShareDbConnectionClass;
  readonly types: ShareDbTypes;
}

/** @teamwork/websocket-json-stream: a Duplex of JSON values over a WebSocket. */
export interface WebSocketJsonStreamClass {
  new (ws: WebSocket): Duplex;
}

/** y-websocket/bin/utils (y-websocket 2.x): the reference Yjs WebSocket server. */
export interface YWebsocketUtils {
  setupWSConnection(conn: WebSocket, req: IncomingMessage, options?: { docName?: string; gc?: boolean }): void;
}
