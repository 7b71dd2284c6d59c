/**
 * Child process of bench/load.ts: runs one server node of one system so that its CPU time is
 * its own. `node --import tsx bench/load-peers/server-child.ts <system> <NodeContext as JSON>`
 * (systems: the keys of `loaders`); talks over IPC:
 *   → { type: 'ready', url }            once listening
 *   ← { type: 'usage', id }             → { type: 'usage', id, cpu: { user, system } µs, rss }
 *   ← { type: 'stop' }                  closes the server and exits
 */
import type { NodeContext, Peer } from './common.js';

export type ChildRequest = { type: 'usage'; id: number } | { type: 'stop' };
export type ChildReply =
  | { type: 'ready'; url: string }
  | { type: 'usage'; id: number; cpu: NodeJS.CpuUsage; rss: number }
  | { type: 'failed'; error: string };

const loaders: Record<string, () => Promise<Peer>> = {
  otter: async () => (await import('./otter.js')).otter,
  'otter-sqlite': async () => (await import('./otter.js')).otterSqlite,
  'otter-redis': async () => (await import('./otter.js')).otterRedis,
  sharedb: async () => (await import('./sharedb.js')).sharedb,
  'sharedb-redis': async () => (await import('./sharedb.js')).sharedbRedis,
  yjs: async () => (await import('./yjs.js')).yjs,
  'hocuspocus-redis': async () => (await import('./hocuspocus.js')).hocuspocusRedis,
};

function reply(message: ChildReply): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const name = process.argv[2] ?? '';
  const load = loaders[name];
  if (load === undefined) throw new Error(`unknown system ${JSON.stringify(name)}`);
  const context = JSON.parse(process.argv[3] ?? '') as NodeContext;
  const server = await (await load()).startServer(context);
  let peakRss = process.memoryUsage().rss;
  setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 100).unref();
  process.on('message', (m: ChildRequest) => {
    if (m.type === 'usage') {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      reply({ type: 'usage', id: m.id, cpu: process.cpuUsage(), rss: peakRss });
    } else if (m.type === 'stop') {
      const exit = setTimeout(() => process.exit(0), 2000);
      void server.close().finally(() => {
        clearTimeout(exit);
        process.exit(0);
      });
    }
  });
  process.on('disconnect', () => process.exit(0));
  reply({ type: 'ready', url: server.url });
}

main().catch((e: unknown) => {
  reply({ type: 'failed', error: String(e instanceof Error ? e.stack : e) });
  process.exit(1);
});
