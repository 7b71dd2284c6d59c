/**
 * Yjs under load: the reference y-websocket 2.x server (`setupWSConnection` from
 * y-websocket/bin/utils, in-memory, no persistence) on a `ws` WebSocketServer; clients are
 * Y.Doc + WebsocketProvider (y-websocket 2.x) over `ws`, with the BroadcastChannel shortcut
 * off (all clients share one process; they must talk through the server) and the awareness
 * state cleared before connecting (no presence traffic, as for the other systems).
 * Keystrokes are `ytext.insert(pos, ch)`; Yjs sends every update at once and the server
 * relays it to every connection, the author included; nothing is acknowledged.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { WebSocketServer } from 'ws';
import { type ClientHooks, type LoadClient, type Peer, type PeerServer, countingWebSocket } from './common.js';
import type { YWebsocketUtils } from './types.js';

const require = createRequire(import.meta.url);
const ROOM = 'bench';

/*
 * The server side loads y-websocket/bin/utils, which requires the CommonJS build of yjs; the
 * client side imports the ES module build. Each is loaded only where it is used, so no process
 * holds two copies of yjs (which Yjs warns about and which breaks its constructor checks).
 */

async function startServer(): Promise<PeerServer> {
  const { setupWSConnection } = require('y-websocket/bin/utils') as YWebsocketUtils;
  const httpServer = http.createServer();
  const wss = new WebSocketServer({ server: httpServer });
  wss.on('connection', (ws, req) => setupWSConnection(ws, req, { docName: ROOM }));
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      httpServer.close();
    },
  };
}

export const yjs: Peer = {
  name: 'Yjs',
  setup:
    'yjs 13 + y-websocket 2.1 server (bin/utils setupWSConnection, in-memory) on ws; ' +
    'clients: Y.Doc + WebsocketProvider (disableBc, awareness state null)',
  startServer,
  async connect(url: string, _index: number, hooks: ClientHooks): Promise<LoadClient> {
    const Y = await import('yjs');
    const { WebsocketProvider } = await import('y-websocket');
    // Every provider adds a process 'exit' listener.
    process.setMaxListeners(0);
    const doc = new Y.Doc();
    const ytext = doc.getText('t');
    ytext.observe((event, tr) => {
      if (tr.local) return;
      for (const d of event.delta) if (typeof d.insert === 'string') hooks.remoteInsert(d.insert);
    });
    const provider = new WebsocketProvider(url, ROOM, doc, {
      connect: false,
      disableBc: true,
      WebSocketPolyfill: countingWebSocket(hooks) as unknown as typeof globalThis.WebSocket,
    });
    provider.awareness.setLocalState(null);
    const synced = new Promise<void>((resolve) => {
      const onSync = (isSynced: boolean): void => {
        if (!isSynced) return;
        provider.off('sync', onSync);
        resolve();
      };
      provider.on('sync', onSync);
    });
    provider.on('connection-close', () => {
      if (provider.shouldConnect) hooks.problem('y-websocket connection closed (the provider reconnects)');
    });
    provider.connect();
    await synced;
    return {
      text: () => ytext.toString(),
      insert: (pos, ch) => ytext.insert(pos, ch),
      settled: () => true,
      version: () => NaN,
      close: () => {
        provider.destroy();
        doc.destroy();
      },
    };
  },
};
