/**
 * A private Redis under Sentinel for tests: a master and one replica (`redis-server` with AOF
 * and `appendfsync always`), and a Sentinel (`redis-server --sentinel`, quorum 1) watching the
 * master group {@link MASTER_NAME}, each on a free port of its own in a temporary directory;
 * waited for until the replica is in sync and the Sentinel knows it. A master that stops
 * answering is failed over after {@link DOWN_AFTER_MS}. One Sentinel, not the three a
 * deployment runs: they would take about 10 s more to find each other, and a client asks them
 * the same question. Killed and removed at cleanup. The Redis on 6379 is never touched.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Cleanup, tempDir } from '../e2e/helpers.js';
import { freePort } from '../product/helpers.js';
import { RedisServers, ask } from './redis-servers.js';
import { waitFor } from './wait.js';

/** The name under which the Sentinels watch the master. */
export const MASTER_NAME = 'otter-test';

/** Ms of silence after which a Sentinel deems the master down (`down-after-milliseconds`). */
export const DOWN_AFTER_MS = 1000;

/** A master, its replica and a Sentinel, on 127.0.0.1. */
export class RedisSentinels {
  private constructor(
    /** The ports of the two data nodes: the first started as master. */
    readonly dataPorts: readonly [number, number],
    readonly sentinelPorts: readonly number[],
    /** Their processes, to pause, resume or kill. */
    readonly processes: RedisServers,
  ) {}

  /**
   * Starts them all and waits until the replica is in sync and the Sentinel knows it (30 s at
   * most); registers their end with `cleanup`.
   */
  static async started(cleanup: Cleanup): Promise<RedisSentinels> {
    const processes = new RedisServers(cleanup);
    const master = await freePort();
    const replica = await freePort();
    for (const [port, extra] of [[master, []], [replica, ['--replicaof', '127.0.0.1', String(master)]]] as const) {
      const dir = tempDir(cleanup, 'otter-sentinel-data-');
      processes.start(port, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir, ...extra]);
    }
    await ask(replica, async (admin) => {
      await waitFor('the replica to sync', async () => String(await admin.info('replication')).includes('master_link_status:up'), 30_000);
    });
    const port = await freePort();
    const dir = tempDir(cleanup, 'otter-sentinel-');
    // A Sentinel rewrites its configuration file: it gets one of its own.
    const config = join(dir, 'sentinel.conf');
    writeFileSync(
      config,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${master} 1`,
        `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
        `sentinel failover-timeout ${MASTER_NAME} 5000`,
        '',
      ].join('\n'),
    );
    processes.start(port, [config, '--sentinel']);
    const set = new RedisSentinels([master, replica], [port], processes);
    await ask(port, async (admin) => {
      await waitFor('the Sentinel to know the replica', async () => {
        const fields = (await admin.call('SENTINEL', 'MASTER', MASTER_NAME)) as string[];
        return Number(fields[fields.indexOf('num-slaves') + 1]) === 1;
      }, 30_000);
    });
    return set;
  }

  /** The Sentinels as URLs. */
  get sentinelUrls(): string[] {
    return this.sentinelPorts.map((port) => `redis://127.0.0.1:${port}`);
  }

  /** The port of the master as the Sentinels now name it (the first Sentinel still running answers). */
  async master(): Promise<number> {
    const port = this.sentinelPorts.find((p) => this.processes.running(p)) as number;
    return ask(port, async (admin) => Number(((await admin.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)) as string[])[1]));
  }
}
