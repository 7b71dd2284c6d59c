/**
 * The Redis connections a {@link RedisStore} makes for itself, from URLs: one Redis
 * (`redis://…`, `rediss://…`), or a Redis Cluster from the URLs of some of its nodes (the rest
 * are found from them). Either way no command waits on Redis longer than
 * {@link COMMAND_TIMEOUT_MS}, so that a Redis that is down makes appends fail soon (their
 * clients resend) and the readiness probe report why, and connection errors reach callers
 * through the commands that fail.
 *
 * @see RedisStore
 */
import type { Cluster, Redis } from 'ioredis';
import { requireOptional } from './optional-package.js';
import type { RedisClient, SubscriberClient } from './redis-store.js';

/**
 * Ms after which a command of a client made from URLs fails if Redis has not answered (also
 * the connection timeout): so no submit waits on Redis longer than this.
 */
export const COMMAND_TIMEOUT_MS = 5000;

/** The nodes a Redis Cluster is first reached through: the URLs of some of its masters or replicas. */
export interface RedisClusterSeeds {
  /**
   * `redis://host:port` or `rediss://host:port` URLs (at least one). The user name, password
   * and TLS of the first apply to every node of the Cluster; none may name a database other
   * than 0 (a Cluster has no other).
   */
  readonly cluster: readonly string[];
}

/** Where a store made from URLs connects: one Redis URL, or a Cluster's seeds. */
export type RedisTarget = string | RedisClusterSeeds;

/**
 * Whether `value` is a {@link RedisTarget} rather than a client (which has a `cluster` command,
 * a function, where seeds have a list of URLs).
 */
export function isRedisTarget(value: RedisTarget | object): value is RedisTarget {
  return typeof value === 'string' || Array.isArray((value as Partial<RedisClusterSeeds>).cluster);
}

/**
 * A client made from a {@link RedisTarget}, and how to make its subscribing connection (typed
 * as the store's interfaces, so that declarations need no ioredis).
 */
export interface MadeClient {
  readonly client: RedisClient;
  /**
   * A new connection for pub/sub: over one Redis, one that does not subscribe again by itself
   * (its caller does); over a Cluster, one with a shard subscriber per master.
   */
  subscriber(): SubscriberClient;
  /**
   * Ms after which the store itself fails a command Redis has not answered, where the client
   * cannot be trusted to: a Cluster's commands wait without a limit while no node is reachable.
   */
  readonly deadlineMs: number | undefined;
}

/**
 * The URL `text` if it is a `redis:` or `rediss:` URL with a host; otherwise a RangeError
 * naming `what`.
 */
export function redisUrl(text: string, what: string): URL {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    throw new RangeError(`${what} must be a redis:// or rediss:// URL with a host, got ${JSON.stringify(text)}`);
  }
  return url;
}

/**
 * Checks `seeds` as {@link RedisClusterSeeds} describes them; returns them parsed, or throws a
 * RangeError saying what is wrong.
 */
export function clusterSeeds(seeds: RedisClusterSeeds): URL[] {
  if (seeds.cluster.length === 0) throw new RangeError('a Redis Cluster needs the URL of at least one of its nodes');
  const urls = seeds.cluster.map((s) => redisUrl(s, 'a Redis Cluster node'));
  for (const url of urls) {
    if (url.pathname !== '' && url.pathname !== '/' && url.pathname !== '/0') {
      throw new RangeError(`a Redis Cluster has only database 0, got ${JSON.stringify(url.href)}`);
    }
  }
  return urls;
}

/** Makes the client `target` names (ioredis must be installed: `MissingPackageError` otherwise). */
export function connect(target: RedisTarget): MadeClient {
  const ioredis = requireOptional<{ Redis: typeof Redis; Cluster: typeof Cluster }>('ioredis', 'RedisStore');
  if (typeof target === 'string') {
    // A command fails after a few reconnection attempts (about 300 ms) instead of waiting in
    // the offline queue through 20 of them, and in any case COMMAND_TIMEOUT_MS after it was sent
    // (a Redis that hangs, or a connection attempt that is never answered).
    const client = new ioredis.Redis(target, { maxRetriesPerRequest: 3, commandTimeout: COMMAND_TIMEOUT_MS, connectTimeout: COMMAND_TIMEOUT_MS });
    client.on('error', () => {});
    return { client, subscriber: () => new ioredis.Redis(target, { autoResubscribe: false }), deadlineMs: undefined };
  }
  const urls = clusterSeeds(target);
  const first = urls[0] as URL;
  const client = new ioredis.Cluster(
    urls.map((u) => ({ host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port === '' ? 6379 : Number(u.port) })),
    {
      redisOptions: {
        ...(first.username === '' ? {} : { username: decodeURIComponent(first.username) }),
        ...(first.password === '' ? {} : { password: decodeURIComponent(first.password) }),
        ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
        maxRetriesPerRequest: 3,
        commandTimeout: COMMAND_TIMEOUT_MS,
        connectTimeout: COMMAND_TIMEOUT_MS,
      },
    },
  );
  client.on('error', () => {});
  return {
    client,
    subscriber: () => client.duplicate([], { shardedSubscribers: true }) as unknown as SubscriberClient,
    deadlineMs: COMMAND_TIMEOUT_MS,
  };
}

/**
 * `promise`, or a rejection once `ms` have passed without it settling (an Error saying Redis
 * did not answer `command` in time). The command itself is not withdrawn: it may still run.
 */
export function withinDeadline<T>(promise: Promise<T>, ms: number, command: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer ${command} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
