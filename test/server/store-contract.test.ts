/**
 * The store contract itself: it must be able to fail. Run with a tiny runner of its own (the
 * suite's tests collected and run in order, with their hooks), it passes for MemoryStore and
 * fails for stores that break the contract — one that refuses a conflict with a plain Error
 * (the sequencer retries only on VersionConflictError, so such a store silently loses retries)
 * and one that forgets marks.
 *
 * RedisStore runs the contract against the Redis of `test/support/redis.ts`, each test under a
 * prefix of its own whose keys are deleted after it; without that Redis it is skipped, with
 * the reason printed (with CI=true it fails instead).
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/server/memory-store.js';
import { RedisStore } from '../../src/server/redis-store.js';
import { type ContractRunner, storeContract } from '../../src/server/store-contract.js';
import { type Store, VersionConflictError } from '../../src/server/store.js';
import { IN_CI, REDIS_URL, RUN_PREFIX, connectRedis, deleteKeys, prefixFor, redisUnreachable } from '../support/redis.js';

type Hook = () => Promise<void> | void;

/** Runs the contract for `makeStore`; returns the names of the tests that failed. */
async function failures(makeStore: () => Promise<Store>): Promise<string[]> {
  const tests: Array<{ name: string; body: Hook; before: Hook[]; after: Hook[] }> = [];
  const before: Hook[] = [];
  const after: Hook[] = [];
  const path: string[] = [];
  const runner: ContractRunner = {
    describe(name, body) {
      const depth = [before.length, after.length];
      path.push(name);
      body();
      path.pop();
      before.length = depth[0] as number;
      after.length = depth[1] as number;
    },
    it(name, body) {
      tests.push({ name: [...path, name].join(' > '), body, before: [...before], after: [...after] });
    },
    beforeEach: (hook) => void before.push(hook),
    afterEach: (hook) => void after.push(hook),
    expect,
  };
  storeContract(runner, 'under test', makeStore);
  expect(tests.length).toBeGreaterThan(30);
  const failed: string[] = [];
  for (const t of tests) {
    try {
      for (const h of t.before) await h();
      await t.body();
    } catch {
      failed.push(t.name);
    } finally {
      for (const h of t.after.slice().reverse()) await h();
    }
  }
  return failed;
}

describe('the store contract', () => {
  it('passes for MemoryStore', async () => {
    expect(await failures(async () => new MemoryStore())).toEqual([]);
  });

  it('fails for a store that refuses a conflict with a plain Error', async () => {
    const untyped = async (): Promise<Store> => {
      const inner = new MemoryStore();
      return Object.assign(Object.create(inner) as Store, {
        append: (...args: Parameters<Store['append']>) =>
          inner.append(...args).catch((e: unknown) => {
            throw e instanceof VersionConflictError ? new Error(e.message) : e;
          }),
      });
    };
    const failed = await failures(untyped);
    expect(failed.some((name) => /VersionConflictError/.test(name))).toBe(true);
  });

  it('fails for a store that forgets client marks', async () => {
    const forgetful = async (): Promise<Store> => {
      const inner = new MemoryStore();
      return Object.assign(Object.create(inner) as Store, { getMarks: async () => [] });
    };
    expect((await failures(forgetful)).length).toBeGreaterThan(0);
  });
});

const redisReason = await redisUnreachable();
const skipRedis = redisReason !== undefined && !IN_CI;
if (skipRedis) console.warn(`[store-contract.test] the RedisStore contract is SKIPPED: ${redisReason} (start redis-server or set OTTER_REDIS_URL)`);

describe.skipIf(skipRedis)('RedisStore', () => {
  let admin: Redis | undefined;
  let prefix = '';

  beforeAll(() => {
    if (redisReason !== undefined) throw new Error(`Redis is required with CI=true: ${redisReason}`);
    admin = connectRedis();
  });

  afterAll(async () => {
    if (admin === undefined) return;
    await deleteKeys(admin, RUN_PREFIX);
    admin.disconnect();
  });

  storeContract(
    { describe, it, beforeEach, afterEach, expect },
    'RedisStore',
    async () => new RedisStore(REDIS_URL, { prefix: (prefix = prefixFor('contract')) }),
    async () => {
      if (admin !== undefined) await deleteKeys(admin, prefix);
    },
  );
});
