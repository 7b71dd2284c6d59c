/**
 * Hocuspocus under load: a Hocuspocus 3 `Server` (in-memory documents, no persistence
 * extension) with `@hocuspocus/extension-redis` 3 on the run's private redis-server, which is how
 * Hocuspocus runs on several nodes: each node holds the Y.Doc, publishes every change as a sync
 * step 1 on the document's Redis channel and answers the other nodes' with a sync step 2.
 * Clients are Y.Doc + `HocuspocusProvider` 3, each on a `HocuspocusProviderWebsocket` of its own
 * (`ws` as its WebSocketPolyfill), awareness off (no presence traffic, as for the other systems).
 * Keystrokes are `ytext.insert(pos, ch)`; the server acknowledges each update (the provider's
 * unsynced-changes count), and the client is settled when that count is back to zero.
 */
import { type ClientHooks, type LoadClient, type NodeContext, type Peer, type PeerServer, countingWebSocket } from './common.js';

const ROOM = 'bench';

async function startServer(context: NodeContext): Promise<PeerServer> {
  if (context.redisUrl === undefined) throw new Error("hocuspocus-redis needs the run's Redis");
  const { Server } = await import('@hocuspocus/server');
  const { Redis } = await import('@hocuspocus/extension-redis');
  const redis = new URL(context.redisUrl);
  const server = new Server({
    port: 0,
    address: '127.0.0.1',
    quiet: true,
    stopOnSignals: false,
    extensions: [new Redis({ host: redis.hostname, port: Number(redis.port) })],
  });
  await server.listen();
  return { url: `ws://127.0.0.1:${server.address.port}`, close: () => server.destroy() };
}

export const hocuspocusRedis: Peer = {
  name: 'Hocuspocus Redis',
  setup:
    '@hocuspocus/server 3 (in-memory) + @hocuspocus/extension-redis 3 (ioredis); ' +
    'clients: Y.Doc + HocuspocusProvider 3 over ws, awareness off',
  shares: { redis: true },
  startServer,
  async connect(url: string, _index: number, hooks: ClientHooks): Promise<LoadClient> {
    const Y = await import('yjs');
    const { HocuspocusProvider, HocuspocusProviderWebsocket } = await import('@hocuspocus/provider');
    const doc = new Y.Doc();
    const ytext = doc.getText('t');
    ytext.observe((event, tr) => {
      if (tr.local) return;
      for (const d of event.delta) if (typeof d.insert === 'string') hooks.remoteInsert(d.insert);
    });
    let closing = false;
    const socket = new HocuspocusProviderWebsocket({
      url,
      WebSocketPolyfill: countingWebSocket(hooks),
      onDisconnect: () => {
        if (!closing) hooks.problem('Hocuspocus connection closed (the provider reconnects)');
      },
    });
    const provider = await new Promise<InstanceType<typeof HocuspocusProvider>>((resolve, reject) => {
      const p: InstanceType<typeof HocuspocusProvider> = new HocuspocusProvider({
        websocketProvider: socket,
        name: ROOM,
        document: doc,
        awareness: null,
        onSynced: () => resolve(p),
        onAuthenticationFailed: ({ reason }) => reject(new Error(`authentication failed: ${reason}`)),
      });
      p.attach();
    });
    return {
      text: () => ytext.toString(),
      insert: (pos, ch) => ytext.insert(pos, ch),
      settled: () => !provider.hasUnsyncedChanges,
      version: () => NaN,
      close: () => {
        closing = true;
        provider.destroy();
        socket.destroy();
        doc.destroy();
      },
    };
  },
};
