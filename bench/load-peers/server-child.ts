/**
 * Child process of bench/load.ts: runs one server node of one system so that its CPU time is
 * its own. `node --import tsx bench/load-peers/server-child.ts <system> <NodeContext as JSON>`
 * (systems: `SYSTEMS` of ./systems.ts); talks over IPC:
 *   → { type: 'ready', url }            once listening
 *   ← { type: 'usage', id }             → { type: 'usage', id, cpu: { user, system } µs, rss: peak bytes }
 *   ← { type: 'stop' }                  closes the server and exits
 */
import type { NodeContext } from './common.js';
import { loadPeer } from './systems.js';

export type ChildRequest = { type: 'usage'; id: number } | { type: 'stop' };
export type ChildReply =
  | { type: 'ready'; url: string }
  | { type: 'usage'; id: number; cpu: NodeJS.CpuUsage; rss: number }
  | { type: 'failed'; error: string };

function reply(message: ChildReply): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const peer = await loadPeer(process.argv[2] ?? '');
  const context = JSON.parse(process.argv[3] ?? '') as NodeContext;
  const server = await peer.startServer(context);
  process.on('message', (m: ChildRequest) => {
    if (m.type === 'usage') {
      // The kernel's peak RSS (getrusage): no sampling timer of the benchmark's own in the node's CPU time.
      reply({ type: 'usage', id: m.id, cpu: process.cpuUsage(), rss: process.resourceUsage().maxRSS * 1024 });
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
