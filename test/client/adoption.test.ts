/**
 * The adoption of idle client ids on its own, over a MemoryClientStorage and no server: an id
 * whose lease is held is tried again until the adoption stops, and stopping is prompt whenever
 * it comes (the connection that runs it gives its own lease up only once it is over).
 */
import { describe, expect, it } from 'vitest';
import { ADOPTION_RETRY_MS, Adoption } from '../../src/client/adoption.js';
import { MemoryClientStorage } from '../../src/client/storage.js';
import { waitFor } from '../support/wait.js';

/** An adoption host whose hidden connections must never be needed (no id has pending edits). */
const NO_CONNECTIONS = {
  connect: () => {
    throw new Error('no stored edits: no hidden connection is opened');
  },
  report: (what: string, error: unknown) => {
    throw new Error(`unexpected report: ${what}: ${String(error)}`);
  },
};

describe('adoption of idle client ids', () => {
  it('an id whose lease is held is tried again while the adoption runs, and no more once it stops', async () => {
    const storage = new MemoryClientStorage();
    const own = await storage.acquireClientId();
    const held = await storage.acquireClientId();
    const tries: string[] = [];
    const tryAcquire = storage.tryAcquire.bind(storage);
    storage.tryAcquire = async (id: string) => {
      tries.push(id);
      return tryAcquire(id);
    };
    const adoption = new Adoption(storage, own.clientId, NO_CONNECTIONS);
    await waitFor('a second try of the held id', () => tries.length >= 2, ADOPTION_RETRY_MS * 3);
    expect(new Set(tries)).toEqual(new Set([held.clientId]));
    await adoption.stop();
    const after = tries.length;
    await new Promise((resolve) => setTimeout(resolve, ADOPTION_RETRY_MS + 200));
    expect(tries.length).toBe(after);
  });

  it('stopping in the middle of a pass that found an id held resolves at once, not after the pause before the next try', async () => {
    const storage = new MemoryClientStorage();
    const own = await storage.acquireClientId();
    await storage.acquireClientId(); // a live tab: its lease stays held
    const last = await storage.acquireClientId();
    last.release();
    let stopped: Promise<number> | undefined;
    const start = Date.now();
    const tryAcquire = storage.tryAcquire.bind(storage);
    let adoption: Adoption | undefined;
    storage.tryAcquire = async (id: string) => {
      // Stopped while the pass is on its last id, after it found the other one held.
      if (id === last.clientId && stopped === undefined) stopped = (adoption as Adoption).stop().then(() => Date.now() - start);
      return tryAcquire(id);
    };
    adoption = new Adoption(storage, own.clientId, NO_CONNECTIONS);
    await waitFor('the stop', () => stopped !== undefined);
    expect(await stopped).toBeLessThan(ADOPTION_RETRY_MS / 2);
  });
});
