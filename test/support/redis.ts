/**
 * The Redis the RedisStore tests use: OTTER_REDIS_URL, default redis://127.0.0.1:6379. Each
 * test run works under prefixes of its own (`otter-test:<random>:…`) and deletes their keys
 * afterwards, so a shared Redis is left as it was. Without a reachable Redis the tests are
 * skipped with the reason printed, except with CI=true, where they fail.
 */
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.OTTER_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const IN_CI = process.env.CI === 'true';

/** Why the Redis at {@link REDIS_URL} cannot be used (no PONG to a PING within 2 s), or undefined. */
export async function redisUnreachable(): Promise<string | undefined> {
  const url = new URL(REDIS_URL);
  const port = Number(url.port || 6379);
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname, port });
    const done = (reason: string | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => done(`no answer from ${REDIS_URL} within 2 s`), 2000);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      const reply = data.toString();
      done(reply.startsWith('+PONG') ? undefined : `${REDIS_URL} answered ${JSON.stringify(reply.slice(0, 80))} to PING`);
    });
    socket.once('error', (e) => done(`cannot reach ${REDIS_URL}: ${e.message}`));
  });
}

/** A key prefix no other run uses; {@link prefixFor} makes distinct ones under it. */
export const RUN_PREFIX = `otter-test:${randomUUID()}:`;

let counter = 0;

/** A prefix under {@link RUN_PREFIX} no other call returns. */
export function prefixFor(name: string): string {
  return `${RUN_PREFIX}${name}-${counter++}:`;
}

/** Every key that starts with `prefix` (which holds no glob characters). */
export async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out;
}

/** Deletes every key that starts with `prefix`. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  const keys = await keysUnder(redis, prefix);
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
}

/** A new connection to {@link REDIS_URL}; a command fails after one retry instead of queueing on. */
export function connectRedis(): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: 1, connectTimeout: 2000 });
}
