/**
 * A private Redis Cluster for tests: three masters (no replicas), each a `redis-server` with
 * `--cluster-enabled yes` on a free port of its own (its cluster bus on port + 10000) in a
 * temporary directory, joined with `redis-cli --cluster create` and waited for until every
 * master reports `cluster_state:ok`. Killed and removed at cleanup. The Redis on 6379 is never
 * touched.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { Cluster, Redis } from 'ioredis';
import { type Cleanup, tempDir } from '../e2e/helpers.js';
import { freePort } from '../product/helpers.js';
import { waitFor, within } from './wait.js';

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

/** A running three-master Redis Cluster on 127.0.0.1. */
export class RedisCluster {
  private constructor(readonly ports: readonly number[]) {}

  /**
   * Starts the three masters, joins them and waits until the cluster is ok everywhere (30 s at
   * most); registers their end with `cleanup`. Throws without the tools, or if it never forms.
   */
  static async started(cleanup: Cleanup): Promise<RedisCluster> {
    if (!HAVE_CLUSTER_TOOLS) throw new Error('redis-server and redis-cli are required with CI=true');
    const ports: number[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await clusterPort();
      const dir = tempDir(cleanup, `otter-cluster-${i}-`);
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'];
      const child: ChildProcess = spawn('redis-server', [...args, '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
      cleanup.add(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await within(exited, 10_000, 'a cluster redis-server exiting');
      });
      ports.push(port);
    }
    for (const port of ports) {
      const admin = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 });
      admin.on('error', () => {});
      try {
        await waitFor(`redis-server on ${port} to answer`, async () => {
          if (admin.status === 'wait' || admin.status === 'end') await admin.connect().catch(() => undefined);
          return (await admin.ping().catch(() => '')) === 'PONG';
        }, 10_000);
      } finally {
        admin.disconnect();
      }
    }
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    for (const port of ports) {
      const admin = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
      admin.on('error', () => {});
      try {
        await waitFor(`the cluster to be ok on ${port}`, async () => String(await admin.cluster('INFO')).includes('cluster_state:ok'), 30_000);
      } finally {
        admin.disconnect();
      }
    }
    return new RedisCluster(ports);
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
