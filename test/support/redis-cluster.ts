/**
 * A private Redis Cluster for tests: three masters, with or without a replica each, each a
 * `redis-server` with `--cluster-enabled yes` on a free port of its own (its cluster bus on
 * port + 10000) in a temporary directory, joined with `redis-cli --cluster create` and waited
 * for until every node reports `cluster_state:ok` (and, with replicas, every replica is
 * attached). Killed and removed at cleanup. The Redis on 6379 is never touched.
 */
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { Cluster } from 'ioredis';
import { type Cleanup, tempDir } from '../e2e/helpers.js';
import { freePort } from '../product/helpers.js';
import { RedisServers, ask } from './redis-servers.js';
import { waitFor } from './wait.js';

/** Whether `redis-server` and `redis-cli` are both on PATH. */
export const HAVE_CLUSTER_TOOLS =
  spawnSync('redis-server', ['--version']).status === 0 && spawnSync('redis-cli', ['--version']).status === 0;

/** Whether `port` can be listened on at 127.0.0.1 now. */
function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port chosen by the OS whose cluster bus port (+ 10000) is free too; at most 50 tries. */
async function clusterPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    if (port + 10000 <= 65535 && (await free(port + 10000))) return port;
  }
  throw new Error('no free port with a free cluster bus port in 50 tries');
}

/** Options of {@link RedisCluster.started}. */
export interface ClusterOptions {
  /** Replicas per master (0 or 1). Default 0. */
  replicas?: number;
  /** `cluster-node-timeout`, ms: how long a silent master takes to be failed over. Default Redis's (15,000). */
  nodeTimeout?: number;
}

/** A running three-master Redis Cluster on 127.0.0.1. */
export class RedisCluster {
  private constructor(
    readonly ports: readonly number[],
    /** Its nodes' processes, to pause, resume or kill. */
    readonly processes: RedisServers,
  ) {}

  /**
   * Starts the nodes, joins them and waits until the cluster is ok everywhere (30 s at most);
   * registers their end with `cleanup`. Throws without the tools, or if it never forms.
   */
  static async started(cleanup: Cleanup, options: ClusterOptions = {}): Promise<RedisCluster> {
    if (!HAVE_CLUSTER_TOOLS) throw new Error('redis-server and redis-cli are required with CI=true');
    const replicas = options.replicas ?? 0;
    const ports: number[] = [];
    const processes = new RedisServers(cleanup);
    for (let i = 0; i < 3 * (1 + replicas); i++) {
      const port = await clusterPort();
      const dir = tempDir(cleanup, `otter-cluster-${i}-`);
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'];
      if (options.nodeTimeout !== undefined) args.push('--cluster-node-timeout', String(options.nodeTimeout));
      processes.start(port, [...args, '--save', '', '--appendonly', 'no', '--dir', dir]);
      ports.push(port);
    }
    for (const port of ports) await ask(port, async () => {});
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    for (const port of ports) {
      await ask(port, async (admin) => {
        await waitFor(`the cluster to be ok on ${port}`, async () => String(await admin.cluster('INFO')).includes('cluster_state:ok'), 30_000);
        // Each replica attached to its master and in sync, and known as such to every node.
        await waitFor(`the replica on ${port} to sync`, async () => {
          const info = String(await admin.info('replication'));
          return info.includes('role:master') || info.includes('master_link_status:up');
        }, 30_000);
        await waitFor(`every slot range with its replicas, seen from ${port}`, async () =>
          (await admin.cluster('SLOTS')).every((range) => range.length === 3 + replicas),
        30_000);
      });
    }
    return new RedisCluster(ports, processes);
  }

  /**
   * The port of the master serving the slot of `key`, and of its replicas, as the node on
   * `on` (default: any node still running) reports them.
   */
  async servers(key: string, on?: number): Promise<{ master: number; replicas: number[] }> {
    const port = on ?? (this.ports.find((p) => this.processes.running(p)) as number);
    return ask(port, async (admin) => {
      const slot = Number(await admin.cluster('KEYSLOT', key));
      const range = (await admin.cluster('SLOTS')).find(([from, to]) => from <= slot && slot <= to);
      const [, , master, ...others] = range ?? [];
      if (master === undefined) throw new Error(`no node serves slot ${slot}`);
      return { master: master[1], replicas: others.map((r) => r[1]) };
    });
  }

  /** A new ioredis Cluster client on it (the caller disconnects it). */
  client(): Cluster {
    const cluster = new Cluster(
      this.ports.map((port) => ({ host: '127.0.0.1', port })),
      { redisOptions: { maxRetriesPerRequest: 3 } },
    );
    cluster.on('error', () => {});
    return cluster;
  }
}
