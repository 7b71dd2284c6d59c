/**
 * The redis-server processes a test starts on 127.0.0.1 (plain, cluster or Sentinel), by port:
 * each is killed at the test's cleanup, and any can be paused, resumed or killed before; and
 * {@link ask}, a passing connection to one of them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import type { Cleanup } from '../e2e/helpers.js';
import { waitFor, within } from './wait.js';

/** See the file comment. */
export class RedisServers {
  private readonly children = new Map<number, ChildProcess>();

  /** @param cleanup kills every process started here (SIGKILL) when it runs. */
  constructor(private readonly cleanup: Cleanup) {}

  /** Starts `redis-server …args`, which listens on `port` (as `args` say). */
  start(port: number, args: readonly string[]): void {
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    this.children.set(port, child);
    this.cleanup.add(() => this.kill(port));
  }

  /** Whether the process on `port` is still running. */
  running(port: number): boolean {
    const child = this.children.get(port);
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** Stops (SIGSTOP) or resumes (SIGCONT) the process on `port`: stopped, it reads and answers nothing. */
  pause(port: number, paused: boolean): void {
    if (this.running(port)) this.children.get(port)?.kill(paused ? 'SIGSTOP' : 'SIGCONT');
  }

  /** Kills the process on `port` at once (SIGKILL: no goodbye to anyone) and waits until it is gone. */
  async kill(port: number): Promise<void> {
    const child = this.children.get(port);
    if (child === undefined || !this.running(port)) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await within(exited, 10_000, `the redis-server on ${port} exiting`);
  }
}

/**
 * Runs `use` with a connection to the redis-server (or Sentinel) on `port` of 127.0.0.1, once it
 * answers (10 s at most), and closes it after.
 */
export async function ask<T>(port: number, use: (admin: Redis) => Promise<T>): Promise<T> {
  const admin = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, lazyConnect: true });
  admin.on('error', () => {});
  try {
    await waitFor(`redis-server on ${port} to answer`, async () => {
      if (admin.status === 'wait' || admin.status === 'end') await admin.connect().catch(() => undefined);
      return admin.status === 'ready';
    }, 10_000);
    return await use(admin);
  } finally {
    admin.disconnect();
  }
}
