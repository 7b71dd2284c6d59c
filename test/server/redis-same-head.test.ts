/**
 * A Redis rolled back under servers that hold a document, then written by another server up
 * to the very head they hold (a failover to a lagging replica, and a server that loaded the
 * document only afterwards): the same head and epoch, another history. Head and epoch alone
 * cannot tell; the head's checksum does. Law: a server never appends on top of a head whose
 * checksum is not the one it holds, and learns of the other history by any of the three ways a
 * server learns of a store's change — its next commit, another server's change hint, and its
 * periodic check of what Redis records — reporting the loss (`onStoreLost`) so that its
 * clients restore what they hold, never serving its own version as the store's.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../src/ot/index.js';
import { ErrorCode, type OtterError } from '../../src/protocol/errors.js';
import { verifyChain } from '../../src/server/integrity.js';
import { RedisStore } from '../../src/server/redis-store.js';
import { Sequencer } from '../../src/server/sequencer.js';
import { VersionConflictError } from '../../src/server/store.js';
import { IN_CI, REDIS_URL, connectRedis, deleteKeys, keysUnder, prefixFor, redisUnreachable } from '../support/redis.js';

const unreachable = await redisUnreachable();
if (unreachable !== undefined && IN_CI) throw new Error(`Redis is required in CI: ${unreachable}`);
const SKIP = unreachable !== undefined;
if (SKIP) console.warn(`skipping the same-head rollback tests: ${unreachable}`);

const DOC = 'doc';

describe.skipIf(SKIP)('a Redis rolled back, then written to the same head by another server', () => {
  let admin: Redis;
  const stores: RedisStore[] = [];
  const sequencers: Sequencer[] = [];
  let prefix = '';
  let n = 0;

  beforeAll(() => {
    admin = connectRedis();
  });
  afterAll(async () => {
    await admin.quit();
  });
  afterEach(async () => {
    for (const s of sequencers.splice(0)) await s.close();
    for (const s of stores.splice(0)) await s.close();
    await deleteKeys(admin, prefix);
  });

  function store(): RedisStore {
    const s = new RedisStore(REDIS_URL, { prefix });
    stores.push(s);
    return s;
  }

  function server(lost: string[] = []): Sequencer {
    const seq = new Sequencer(store(), { idleTimeout: 0, onStoreLost: (docId, detail) => lost.push(`${docId}: ${detail}`) });
    sequencers.push(seq);
    return seq;
  }

  /**
   * Server `held` commits "a" … "j" (v10), Redis is dumped, `held` commits "LOST" (v11), the
   * dump is restored, and another server commits "INTRUDER" at v10 (a v11 of its own).
   */
  async function rolledBackAndOverwritten(lost: string[]): Promise<{ held: Sequencer; other: Sequencer }> {
    prefix = prefixFor(`same-head-${n++}`);
    const held = server(lost);
    for (let i = 0; i < 10; i++) {
      await held.submit({ docId: DOC, clientId: 'a', seq: i + 1, baseVersion: i, op: i === 0 ? ['a'] : [i, String.fromCharCode(97 + i)] });
    }
    const keys = await keysUnder(admin, prefix);
    const dumps = await Promise.all(keys.map(async (k) => [k, await admin.dumpBuffer(k)] as const));
    await held.submit({ docId: DOC, clientId: 'a', seq: 11, baseVersion: 10, op: [10, 'LOST'] });
    await deleteKeys(admin, prefix);
    for (const [k, dump] of dumps) if (dump !== null) await admin.restore(k, 0, dump, 'REPLACE');
    const other = server();
    expect(await other.submit({ docId: DOC, clientId: 'b', seq: 1, baseVersion: 10, op: ['INTRUDER', 10] })).toMatchObject({ version: 11 });
    return { held, other };
  }

  /** The stored log runs 1…head with an unbroken checksum chain, and holds `text`. */
  async function storeHolds(text: string): Promise<void> {
    const loaded = await store().load(DOC);
    verifyChain(DOC, loaded.ops, loaded.snapshot.checksum);
    let rebuilt = loaded.snapshot.text;
    for (const r of loaded.ops) rebuilt = apply(rebuilt, r.op);
    expect(rebuilt).toBe(text);
  }

  it('its next commit is refused, writing nothing, and the loss reported; the store keeps the other server’s history', async () => {
    const lost: string[] = [];
    const { held } = await rolledBackAndOverwritten(lost);
    const refused = await held.submit({ docId: DOC, clientId: 'a', seq: 12, baseVersion: 11, op: [14, '!'] }).then(
      () => undefined,
      (e: unknown) => e as OtterError,
    );
    expect(refused?.code).toBe(ErrorCode.StorageFailed);
    expect(lost).toEqual([expect.stringMatching(/^doc: the store holds another version 11 .* than the one committed/)]);
    await storeHolds('INTRUDERabcdefghij');
    expect((await held.getSnapshot(DOC)).text).toBe('INTRUDERabcdefghij');
  });

  it("another server's change hint carrying its op at the held head makes the holder reload and report the loss", async () => {
    const lost: string[] = [];
    const { held } = await rolledBackAndOverwritten(lost);
    const [intruder] = await store().getOps(DOC, 10, 11);
    await held.refresh(DOC, { ops: [intruder as never] });
    expect(lost).toEqual([expect.stringMatching(/another version 11/)]);
    expect((await held.getSnapshot(DOC)).text).toBe('INTRUDERabcdefghij');
  });

  it("the periodic check: the head's checksum Redis records is not the held one", async () => {
    const lost: string[] = [];
    const { held } = await rolledBackAndOverwritten(lost);
    const stamp = await store().stamp(DOC);
    expect(stamp.head).toBe(11);
    expect(stamp.checksum).toBe((await store().load(DOC)).ops.at(-1)?.checksum);
    await held.refresh(DOC, { epoch: stamp.epoch, storedHead: stamp.head, storedChecksum: stamp.checksum });
    expect(lost).toEqual([expect.stringMatching(/another version 11/)]);
  });

  it('the store refuses an append whose expected head has another checksum, writing nothing', async () => {
    prefix = prefixFor(`same-head-${n++}`);
    const s = store();
    const epoch = (await s.load(DOC)).epoch;
    await s.append(DOC, 0, [{ version: 1, op: ['x'], clientId: 'a', seq: 1, checksum: 7 }], [], { epoch });
    const append = s.append(DOC, 1, [{ version: 2, op: [1, 'y'], clientId: 'a', seq: 2, checksum: 8 }], [], { epoch, checksum: 6 });
    const error = await append.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(VersionConflictError);
    expect(error).toMatchObject({ expected: 1, actual: 1 });
    expect((await s.load(DOC)).ops.map((r) => r.version)).toEqual([1]);
    // The right checksum, or none (a writer that does not know it), appends.
    await s.append(DOC, 1, [{ version: 2, op: [1, 'y'], clientId: 'a', seq: 2, checksum: 8 }], [], { epoch, checksum: 7 });
    await s.append(DOC, 2, [{ version: 3, op: [2, 'z'], clientId: 'a', seq: 3, checksum: 9 }], [], { epoch });
    expect((await s.stamp(DOC)).checksum).toBe(9);
  });
});
