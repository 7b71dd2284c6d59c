/**
 * The Redis connections a {@link RedisStore} makes for itself, from URLs: one Redis
 * (`redis://…`, `rediss://…`), a Redis Cluster from the URLs of some of its nodes (the rest
 * are found from them), or the master of a group that Redis Sentinels watch (asked of them on
 * every connection, so a failover is followed). Either way no command waits on Redis longer than
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

/** A master group watched by Redis Sentinels: where the master is, they say. */
export interface RedisSentinelTarget {
  /**
   * `redis://host:port` URLs of the Sentinels (at least one): the user name and password of the
   * first are the Sentinels' own, and `rediss:` reaches them over TLS.
   */
  readonly sentinels: readonly string[];
  /**
   * A `redis://` or `rediss://` URL whose host is the name of the master group
   * (`redis://:password@mymaster/0`): its user name, password, database and TLS are the
   * master's.
   */
  readonly master: string;
}

/** Where a store made from URLs connects: one Redis URL, a Cluster's seeds, or a Sentinel-watched master. */
export type RedisTarget = string | RedisClusterSeeds | RedisSentinelTarget;

/**
 * Whether `value` is a {@link RedisTarget} rather than a client (which has `cluster` and
 * `sentinel` commands, functions, where targets have lists of URLs).
 */
export function isRedisTarget(value: RedisTarget | object): value is RedisTarget {
  return (
    typeof value === 'string' ||
    Array.isArray((value as Partial<RedisClusterSeeds>).cluster) ||
    Array.isArray((value as Partial<RedisSentinelTarget>).sentinels)
  );
}

/**
 * A client made from a {@link RedisTarget}, and how to make its subscribing connection (typed
 * as the store's interfaces, so that declarations need no ioredis).
 */
export interface MadeClient {
  readonly client: RedisClient;
  /**
   * A new connection for pub/sub: over one Redis (or a Sentinel-watched master), one that does
   * not subscribe again by itself (its caller does); over a Cluster, one with a shard
   * subscriber per master.
   */
  subscriber(): SubscriberClient;
  /**
   * Ms after which the store itself fails a command Redis has not answered, where the client
   * cannot be trusted to: a Cluster's commands wait without a limit while no node is reachable.
   */
  readonly deadlineMs: number | undefined;
  /**
   * Closes the client: QUIT, waited for at most {@link COMMAND_TIMEOUT_MS}, then the connection
   * dropped in any case (a Redis that cannot be reached would hold a QUIT, and the process, for
   * good). Never rejects.
   */
  close(): Promise<void>;
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
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
  } catch {
    throw new RangeError(`${what}: the user name or password is not percent-encoded (write % as %25)`);
  }
  return url;
}

/** The host and port of `url` (by default `port`: 6379, a Sentinel's 26379), as ioredis takes them. */
function address(url: URL, port = 6379): { host: string; port: number } {
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port === '' ? port : Number(url.port) };
}

/** The user name and password of `url`, decoded, under the option names `names` gives. */
function credentials(url: URL, names: { username: string; password: string }): Record<string, string> {
  return {
    ...(url.username === '' ? {} : { [names.username]: decodeURIComponent(url.username) }),
    ...(url.password === '' ? {} : { [names.password]: decodeURIComponent(url.password) }),
  };
}

/**
 * Checks `target` as {@link RedisSentinelTarget} describes it; returns the Sentinels' URLs and
 * the master's, parsed, or throws a RangeError saying what is wrong.
 */
export function sentinelTarget(target: RedisSentinelTarget): { sentinels: URL[]; master: URL; db: number } {
  if (target.sentinels.length === 0) throw new RangeError('a Sentinel-watched master needs the URL of at least one Sentinel');
  const sentinels = target.sentinels.map((s) => redisUrl(s, 'a Sentinel'));
  const master = redisUrl(target.master, 'the master (its host the name of the master group)');
  const path = master.pathname.replace(/^\//, '');
  if (!/^\d*$/.test(path)) throw new RangeError(`the master's URL names no database, got ${JSON.stringify(master.href)}`);
  return { sentinels, master, db: Number(path === '' ? 0 : path) };
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

/**
 * What every connection made here is given: a command fails after a few reconnection attempts
 * (about 300 ms) instead of waiting in the offline queue through 20 of them, and in any case
 * COMMAND_TIMEOUT_MS after it was sent (a Redis that hangs, or a connection attempt that is
 * never answered).
 */
const BOUNDED = { maxRetriesPerRequest: 3, commandTimeout: COMMAND_TIMEOUT_MS, connectTimeout: COMMAND_TIMEOUT_MS } as const;

/** Makes the client `target` names (ioredis must be installed: `MissingPackageError` otherwise). */
export function connect(target: RedisTarget): MadeClient {
  const ioredis = requireOptional<{ Redis: typeof Redis; Cluster: typeof Cluster }>('ioredis', 'RedisStore');
  // The subscriber is typed as the store's interface, which ioredis's clients have.
  const made = (client: Redis | Cluster, subscriber: () => unknown, deadlineMs: number | undefined): MadeClient => {
    // Connection errors reach callers through the commands that fail (and the readiness
    // probe); unheard, ioredis would also print each one.
    client.on('error', () => {});
    return { client, subscriber: subscriber as () => SubscriberClient, deadlineMs, close: () => closing(client) };
  };
  if (typeof target === 'string') {
    return made(new ioredis.Redis(target, BOUNDED), () => new ioredis.Redis(target, { autoResubscribe: false }), undefined);
  }
  if ('sentinels' in target) {
    const { sentinels, master, db } = sentinelTarget(target);
    const first = sentinels[0] as URL;
    const options = {
      sentinels: sentinels.map((u) => address(u, 26379)),
      name: master.hostname,
      db,
      ...credentials(first, { username: 'sentinelUsername', password: 'sentinelPassword' }),
      ...credentials(master, { username: 'username', password: 'password' }),
      ...(first.protocol === 'rediss:' ? { sentinelTLS: {} } : {}),
      ...(master.protocol === 'rediss:' ? { tls: {}, enableTLSForSentinelMode: true } : {}),
      // Hears the Sentinels announce a new master and leaves the old one at once; a command a
      // demoted master refused as READONLY (not run; from a script, Redis 6 words it inside an
      // ERR) is sent again once connected to the new.
      failoverDetector: true,
      reconnectOnError: (e: Error) => (e.message.includes('READONLY') ? 2 : false),
      ...BOUNDED,
    } as const;
    // Asking the Sentinels, then the master, is two connections a command may wait on.
    return made(new ioredis.Redis(options), () => new ioredis.Redis({ ...options, autoResubscribe: false }), COMMAND_TIMEOUT_MS);
  }
  const urls = clusterSeeds(target);
  const first = urls[0] as URL;
  const redisOptions = { ...credentials(first, { username: 'username', password: 'password' }), ...(first.protocol === 'rediss:' ? { tls: {} } : {}), ...BOUNDED };
  const client = new ioredis.Cluster(urls.map((u) => address(u)), { redisOptions });
  // A Cluster keeps commands queued without a limit while it reaches no node.
  return made(client, () => client.duplicate([], { shardedSubscribers: true }), COMMAND_TIMEOUT_MS);
}

/** See {@link MadeClient.close}. */
async function closing(client: Redis | Cluster): Promise<void> {
  try {
    await withinDeadline(client.quit(), COMMAND_TIMEOUT_MS, 'QUIT');
  } catch {
    // Not answered, or not connected: dropped below all the same.
  } finally {
    client.disconnect();
  }
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
