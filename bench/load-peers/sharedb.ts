/**
 * ShareDB under load: ShareDB 7 Backend with its default in-memory database and pub/sub
 * (`sharedb`), or, for several nodes, with sharedb-postgres 5 as the database (ops and snapshots
 * in the run's Postgres tables, a pg Pool of node-postgres's default 10 connections per node) and
 * sharedb-redis-pubsub 5 on the run's private redis-server (`sharedb-redis`); in each node one
 * `ws` WebSocketServer whose connections are piped into `backend.listen` through
 * @teamwork/websocket-json-stream; the plain-text type is ot-text-unicode, registered on both
 * sides. Clients are ShareDB's own client (sharedb/lib/client Connection over a `ws` socket),
 * subscribed to the one document; keystrokes are `submitOp([pos, ch])`, which ShareDB keeps
 * one-in-flight and composes while waiting, like Otter's client.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { type as textUnicode } from 'ot-text-unicode';
import { WebSocketServer } from 'ws';
import { type ClientHooks, type LoadClient, type NodeContext, type Peer, type PeerServer, countingWebSocket } from './common.js';
import type {
  ShareDbBackendClass,
  ShareDbPostgresFactory,
  ShareDbRedisPubSubFactory,
  ShareDbClientModule,
  ShareDbDatabase,
  ShareDbDoc,
  WebSocketJsonStreamClass,
} from './types.js';

const require = createRequire(import.meta.url);
const COLLECTION = 'bench';
const ID = 'doc';

/** A node over the in-memory defaults (`options` empty) or over shared `db` and `pubsub`; node 0 creates the document. */
async function startServer(options: Record<string, unknown>, node: number): Promise<PeerServer> {
  const ShareDB = require('sharedb') as ShareDbBackendClass;
  const WebSocketJSONStream = require('@teamwork/websocket-json-stream') as WebSocketJsonStreamClass;
  ShareDB.types.register(textUnicode);
  const backend = new ShareDB(options);
  // The document exists before any client subscribes.
  if (node === 0) {
    const doc = backend.connect().get(COLLECTION, ID);
    await new Promise<void>((resolve, reject) => doc.create('', textUnicode.uri, (e) => (e ? reject(e) : resolve())));
  }
  const httpServer = http.createServer();
  const wss = new WebSocketServer({ server: httpServer });
  wss.on('connection', (ws, req) => {
    const stream = new WebSocketJSONStream(ws);
    stream.on('error', () => {}); // a client going away mid-write
    backend.listen(stream, req);
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      httpServer.close();
      await new Promise<void>((resolve) => backend.close(() => resolve()));
    },
  };
}

function insertsOf(op: unknown, hooks: ClientHooks): void {
  if (!Array.isArray(op)) return;
  for (const c of op) if (typeof c === 'string') hooks.remoteInsert(c);
}

async function connect(url: string, _index: number, hooks: ClientHooks): Promise<LoadClient> {
  const client = require('sharedb/lib/client') as ShareDbClientModule;
  client.types.register(textUnicode);
  const Socket = countingWebSocket(hooks);
  const socket = new Socket(url);
  const connection = new client.Connection(socket);
  const doc: ShareDbDoc = connection.get(COLLECTION, ID);
  doc.on('error', (e) => hooks.problem(`doc error: ${e.message}`));
  await new Promise<void>((resolve, reject) => doc.subscribe((e) => (e ? reject(e) : resolve())));
  if (doc.type?.name !== textUnicode.name) throw new Error(`ShareDB doc has type ${doc.type?.name}`);
  doc.on('op', (op, source) => {
    if (!source) insertsOf(op, hooks);
  });
  return {
    text: () => doc.data as string,
    insert: (pos, ch) =>
      doc.submitOp(pos > 0 ? [pos, ch] : [ch], (e) => {
        if (e) hooks.problem(`submit error: ${e.message}`);
      }),
    settled: () => !doc.hasPending(),
    version: () => doc.version ?? NaN,
    close: () => connection.close(),
  };
}

/**
 * sharedb-postgres 5 reads a snapshot's data as `row.data || undefined`, so the empty text the
 * benchmark's document starts with comes back as no data at all, which ot-text-unicode cannot
 * apply an op to: a typed snapshot read without data is given back its empty text.
 */
function withEmptyText(db: ShareDbDatabase): ShareDbDatabase {
  const getSnapshot = db.getSnapshot.bind(db);
  db.getSnapshot = (collection, id, fields, options, callback) =>
    getSnapshot(collection, id, fields, options, (error, snapshot) => {
      if (snapshot !== undefined && snapshot.type === textUnicode.uri && snapshot.data === undefined) snapshot.data = '';
      callback(error, snapshot);
    });
  return db;
}

const CLIENTS = 'clients: sharedb/lib/client Connection over ws';

export const sharedb: Peer = {
  name: 'ShareDB',
  setup:
    'sharedb 7 Backend (in-memory DB and pub/sub) + ws + @teamwork/websocket-json-stream, type ot-text-unicode; ' + CLIENTS,
  startServer: () => startServer({}, 0),
  connect,
};

export const sharedbRedis: Peer = {
  name: 'ShareDB Redis',
  setup:
    'sharedb 7 Backend, db sharedb-postgres 5 (Postgres 15; its empty-text read fixed, see withEmptyText), pubsub sharedb-redis-pubsub 5 (node-redis 5) ' +
    '+ ws + @teamwork/websocket-json-stream, type ot-text-unicode; ' + CLIENTS,
  shares: { redis: true, postgres: true },
  startServer(context: NodeContext) {
    if (context.redisUrl === undefined || context.postgres === undefined) throw new Error("sharedb-redis needs the run's Redis and Postgres");
    const db = withEmptyText((require('sharedb-postgres') as ShareDbPostgresFactory)(context.postgres));
    const pubsub = (require('sharedb-redis-pubsub') as ShareDbRedisPubSubFactory)({ url: context.redisUrl });
    return startServer({ db, pubsub }, context.node);
  },
  connect,
};
