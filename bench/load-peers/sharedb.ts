/**
 * ShareDB under load: ShareDB 7 Backend with its default in-memory database and pub/sub, one
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
import { type ClientHooks, type LoadClient, type Peer, type PeerServer, countingWebSocket } from './common.js';
import type {
  ShareDbBackendClass,
  ShareDbClientModule,
  ShareDbDoc,
  WebSocketJsonStreamClass,
} from './types.js';

const require = createRequire(import.meta.url);
const COLLECTION = 'bench';
const ID = 'doc';

async function startServer(): Promise<PeerServer> {
  const ShareDB = require('sharedb') as ShareDbBackendClass;
  const WebSocketJSONStream = require('@teamwork/websocket-json-stream') as WebSocketJsonStreamClass;
  ShareDB.types.register(textUnicode);
  const backend = new ShareDB();
  // The document exists before any client subscribes.
  const doc = backend.connect().get(COLLECTION, ID);
  await new Promise<void>((resolve, reject) => doc.create('', textUnicode.uri, (e) => (e ? reject(e) : resolve())));
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

export const sharedb: Peer = {
  name: 'ShareDB',
  setup:
    'sharedb 7 Backend (in-memory DB and pub/sub) + ws + @teamwork/websocket-json-stream, type ot-text-unicode; ' +
    'clients: sharedb/lib/client Connection over ws',
  startServer,
  async connect(url: string, _index: number, hooks: ClientHooks): Promise<LoadClient> {
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
      close: () => connection.close(),
    };
  },
};
