/**
 * The systems bench/load.ts can run, by their `--systems` name, each loaded only when asked
 * for (a server child imports just the peer it runs).
 */
import type { Peer } from './common.js';

const loaders: Record<string, () => Promise<Peer>> = {
  otter: async () => (await import('./otter.js')).otter,
  'otter-sqlite': async () => (await import('./otter.js')).otterSqlite,
  'otter-redis': async () => (await import('./otter.js')).otterRedis,
  sharedb: async () => (await import('./sharedb.js')).sharedb,
  'sharedb-redis': async () => (await import('./sharedb.js')).sharedbRedis,
  yjs: async () => (await import('./yjs.js')).yjs,
  'hocuspocus-redis': async () => (await import('./hocuspocus.js')).hocuspocusRedis,
};

/** Every system's `--systems` name. */
export const SYSTEMS: readonly string[] = Object.keys(loaders);

/** The system named `name`; throws for a name not in {@link SYSTEMS}. */
export async function loadPeer(name: string): Promise<Peer> {
  const load = loaders[name];
  if (load === undefined) throw new Error(`unknown system ${JSON.stringify(name)}`);
  return load();
}
