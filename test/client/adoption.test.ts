/**
 * The adoption of idle client ids on its own, over a MemoryClientStorage and no server, on fake
 * timers: an id whose lease is held is tried again every ADOPTION_RETRY_MS until the adoption
 * stops, and stopping never waits for the pause before the next try, whenever it comes (the
 * connection that runs it gives its own lease up only once it is over).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ADOPTION_RETRY_MS, Adoption } from '../../src/client/adoption.js';
import { MemoryClientStorage } from '../../src/client/storage.js';

/** An adoption host whose hidden connections must never be needed (no id has pending edits). */
const NO_CONNECTIONS = {
  connect: () => {
    throw new Error('no stored edits: no hidden connection is opened');
  },
  report: (what: string, error: unknown) => {
    throw new Error(`unexpected report: ${what}: ${String(error)}`);
  },
};

/** A storage whose tryAcquire calls are recorded, with `own` leased and `held` leased by another tab. */
async function storageWithHeldId(): Promise<{ storage: MemoryClientStorage; own: string; held: string; tries: string[] }> {
  const storage = new MemoryClientStorage();
  const own = (await storage.acquireClientId()).clientId;
  const held = (await storage.acquireClientId()).clientId;
  const tries: string[] = [];
  const tryAcquire = storage.tryAcquire.bind(storage);
  storage.tryAcquire = async (id: string) => {
    tries.push(id);
    return tryAcquire(id);
  };
  return { storage, own, held, tries };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('adoption of idle client ids', () => {
  it('an id whose lease is held is tried again after each pause while the adoption runs, and no more once it stops', async () => {
    const { storage, own, held, tries } = await storageWithHeldId();
    const adoption = new Adoption(storage, own, NO_CONNECTIONS);
    await vi.advanceTimersByTimeAsync(0);
    expect(tries).toEqual([held]);
    await vi.advanceTimersByTimeAsync(ADOPTION_RETRY_MS);
    expect(tries).toEqual([held, held]);
    await vi.advanceTimersByTimeAsync(ADOPTION_RETRY_MS);
    expect(tries).toEqual([held, held, held]);
    await adoption.stop();
    await vi.advanceTimersByTimeAsync(3 * ADOPTION_RETRY_MS);
    expect(tries).toEqual([held, held, held]);
  });

  it('stopping in the middle of a pass that found an id held settles without the pause before the next try', async () => {
    const { storage, own, tries } = await storageWithHeldId();
    const last = await storage.acquireClientId();
    last.release();
    let adoption: Adoption | undefined;
    let stopped = false;
    const tryAcquire = storage.tryAcquire.bind(storage);
    storage.tryAcquire = async (id: string) => {
      // Stopped while the pass is on its last id, after it found the other one held.
      if (id === last.clientId && adoption !== undefined) void adoption.stop().then(() => (stopped = true));
      return tryAcquire(id);
    };
    adoption = new Adoption(storage, own, NO_CONNECTIONS);
    // No timer advanced: a stop that waited for the pause would not settle.
    await vi.advanceTimersByTimeAsync(0);
    expect(tries.length).toBeGreaterThan(0);
    expect(stopped).toBe(true);
  });
});
