/**
 * The shared state of one multi-node run of bench/load.ts, set up fresh by the driver for each
 * run, and the CPU time it costs:
 *  - a private `redis-server` on a free port of 127.0.0.1, in a new directory, started with
 *    `--save '' --appendonly yes --appendfsync everysec` (AOF on, fsync once a second, no RDB
 *    snapshots), stopped (SHUTDOWN NOSAVE) after the run; its CPU time is read from
 *    /proc/<pid>/stat;
 *  - Postgres: the database `OTTER_BENCH_PG_DATABASE` (default otter_bench, created if missing)
 *    on `OTTER_BENCH_PG_HOST`/`_PORT`/`_USER`/`_PASSWORD` (default postgres@127.0.0.1:5432, no
 *    password), with sharedb-postgres's tables dropped and created anew; its CPU time is the sum
 *    over every process named `postgres` on the machine (the backends serving the nodes' pools,
 *    the WAL writer, the checkpointer…), read from /proc: so anything else using that Postgres
 *    during the run counts too.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { PostgresConfig } from './common.js';

const require = createRequire(import.meta.url);
/** USER_HZ of /proc/<pid>/stat: 100 on every mainstream Linux. */
const CLOCK_TICKS = 100;
/** The persistence flags of every private redis-server. */
export const REDIS_PERSISTENCE = ['--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec'];

/** User + system CPU time of a process (all threads), in ms, or undefined once it is gone. */
export function procCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime), counted from the state field (3): 11 and 12.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A private redis-server for one run. */
export class PrivateRedis {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly dir: string,
    readonly version: string,
  ) {
    process.once('exit', this.orphaned);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateRedis> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'otter-load-redis-'));
    const port = await freePort();
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...REDIS_PERSISTENCE], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const version = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
      child.stdout?.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve(/Redis version=([^\s,]+)/.exec(out)?.[1] ?? 'unknown');
        }
      });
    });
    child.stdout?.resume();
    return new PrivateRedis(child, port, dir, version);
  }

  /** Kills the server if the driver exits without stopping it (an uncaught error). */
  private readonly orphaned = (): void => {
    this.child.kill('SIGKILL');
  };

  cpuMs(): number {
    return procCpuMs(this.child.pid as number) ?? NaN;
  }

  async stop(): Promise<void> {
    process.off('exit', this.orphaned);
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The Postgres settings from the environment (see the file comment). */
export function postgresConfig(): PostgresConfig {
  const env = process.env;
  return {
    host: env.OTTER_BENCH_PG_HOST ?? '127.0.0.1',
    port: Number(env.OTTER_BENCH_PG_PORT ?? 5432),
    user: env.OTTER_BENCH_PG_USER ?? 'postgres',
    database: env.OTTER_BENCH_PG_DATABASE ?? 'otter_bench',
    ...(env.OTTER_BENCH_PG_PASSWORD === undefined ? {} : { password: env.OTTER_BENCH_PG_PASSWORD }),
  };
}

interface PgClient {
  connect(): Promise<void>;
  query(sql: string): Promise<{ rows: Array<Record<string, unknown>> }>;
  end(): Promise<void>;
}
type PgClientClass = new (config: Record<string, unknown>) => PgClient;

/** Creates the database if missing and sharedb-postgres's tables afresh; answers the server version. */
export async function resetPostgres(config: PostgresConfig): Promise<string> {
  const { Client } = require('pg') as { Client: PgClientClass };
  const admin = new Client({ ...config, database: 'postgres' });
  await admin.connect();
  try {
    const found = await admin.query(`SELECT 1 FROM pg_database WHERE datname = '${config.database.replaceAll("'", "''")}'`);
    if (found.rows.length === 0) await admin.query(`CREATE DATABASE "${config.database.replaceAll('"', '""')}"`);
  } finally {
    await admin.end();
  }
  const client = new Client({ ...config });
  await client.connect();
  try {
    await client.query('DROP TABLE IF EXISTS ops, snapshots');
    await client.query(readFileSync(require.resolve('sharedb-postgres/structure.sql'), 'utf8'));
    return String((await client.query('SHOW server_version')).rows[0]?.server_version);
  } finally {
    await client.end();
  }
}

/** CPU ms of every process named `postgres`, by pid. */
export function postgresCpu(): Map<number, number> {
  const cpu = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue;
    } catch {
      continue;
    }
    const ms = procCpuMs(Number(entry));
    if (ms !== undefined) cpu.set(Number(entry), ms);
  }
  return cpu;
}

/** CPU ms the `postgres` processes spent between two {@link postgresCpu} samples (those gone in between are lost). */
export function postgresCpuSince(before: Map<number, number>): number {
  let total = 0;
  for (const [pid, ms] of postgresCpu()) total += ms - (before.get(pid) ?? 0);
  return total;
}
