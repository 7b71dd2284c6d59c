/**
 * The request gate on its own (`request-gate.ts`), with Vitest's fake clock: what waits, in
 * which order, what a coalescing key replaces, the bound on waiting messages, one costly
 * request at a time, and the per-request cap of a charge.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RequestGate } from '../../src/server/request-gate.js';
import { TokenBucket } from '../../src/server/token-bucket.js';

/** A message: a name, how many versions it costs, and an optional coalescing key. */
interface Item {
  readonly name: string;
  readonly cost: number;
  readonly key?: string;
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
});

afterEach(() => {
  vi.useRealTimers();
});

/** A gate over buckets of 100 versions/s (burst 1,000) whose run charges each item's cost. */
function gate(
  options: { shared?: TokenBucket; limit?: number; maxBytes?: number; answer?: (item: Item) => Promise<void> | undefined } = {},
) {
  const own = new TokenBucket(100, 1000, Date.now());
  const ran: string[] = [];
  const g: RequestGate<Item> = new RequestGate(
    own,
    options.shared,
    options.limit ?? 10,
    {
      run: (item) => {
        ran.push(item.name);
        g.charge(item.cost);
        return options.answer?.(item);
      },
      costly: (item) => item.cost > 0,
      coalesce: (item) => item.key,
    },
    Date.now,
    options.maxBytes,
  );
  return { g, ran };
}

describe('RequestGate', () => {
  it('takes up at once while not in debt; after a charge into debt, later messages wait in order until it is paid back', () => {
    const { g, ran } = gate();
    g.offer({ name: 'a', cost: 1500 }); // 1,000 (the cap): the bucket is empty, not in debt
    g.offer({ name: 'b', cost: 500 }); // 500 in debt: 5 s
    g.offer({ name: 'c', cost: 0 });
    g.offer({ name: 'd', cost: 0 });
    expect(ran).toEqual(['a', 'b']);
    vi.advanceTimersByTime(4999);
    expect(ran).toEqual(['a', 'b']);
    vi.advanceTimersByTime(1);
    expect(ran).toEqual(['a', 'b', 'c', 'd']);
  });

  it('a waiting message with the same key is replaced in its place; past the limit nothing is queued', () => {
    const { g, ran } = gate({ limit: 3 });
    g.offer({ name: 'debt', cost: 2000 });
    g.offer({ name: 'debt2', cost: 100 });
    expect(g.offer({ name: 'p1', cost: 0, key: 'doc' })).toBe(true);
    expect(g.offer({ name: 'x', cost: 0 })).toBe(true);
    expect(g.offer({ name: 'p2', cost: 0, key: 'doc' })).toBe(true);
    expect(g.offer({ name: 'y', cost: 0 })).toBe(true);
    expect(g.offer({ name: 'z', cost: 0 })).toBe(false);
    vi.advanceTimersByTime(60_000);
    expect(ran).toEqual(['debt', 'debt2', 'p2', 'x', 'y']);
  });

  it('the bytes waiting are bounded too: a replacement counts its own size, and what was taken up frees its bytes', () => {
    const { g, ran } = gate({ maxBytes: 100 });
    g.offer({ name: 'debt', cost: 2000 }, 1000); // taken up at once: its size never waits
    g.offer({ name: 'debt2', cost: 100 }); // 100 in debt: 1 s
    expect(g.offer({ name: 'a', cost: 0 }, 60)).toBe(true);
    expect(g.offer({ name: 'p1', cost: 0, key: 'doc' }, 30)).toBe(true);
    expect(g.offer({ name: 'b', cost: 0 }, 11)).toBe(false); // 101 bytes
    expect(g.offer({ name: 'p2', cost: 0, key: 'doc' }, 41)).toBe(false); // 60 + 41 in place of 30
    expect(g.offer({ name: 'p3', cost: 0, key: 'doc' }, 40)).toBe(true);
    expect(g.holds((item) => item.name === 'p3')).toBe(true);
    vi.advanceTimersByTime(10_000);
    expect(ran).toEqual(['debt', 'debt2', 'a', 'p3']);
    expect(g.holds(() => true)).toBe(false);
    g.offer({ name: 'debt3', cost: 2000 }); // 100 in debt again
    expect(g.offer({ name: 'c', cost: 0 }, 100)).toBe(true);
  });

  it('the shared bucket in debt holds costly messages only; a costly one holds the next until it is answered', async () => {
    const shared = new TokenBucket(100, 1000, Date.now());
    shared.charge(1500, Date.now()); // 5 s in debt
    let finish: () => void = () => {};
    const { g, ran } = gate({
      shared,
      answer: (item) => (item.name === 'slow' ? new Promise<void>((r) => (finish = r)) : undefined),
    });
    g.offer({ name: 'cheap', cost: 0 });
    g.offer({ name: 'costly', cost: 10 });
    g.offer({ name: 'after', cost: 0 }); // behind the waiting costly one
    expect(ran).toEqual(['cheap']);
    vi.advanceTimersByTime(5000);
    expect(ran).toEqual(['cheap', 'costly', 'after']);
    vi.advanceTimersByTime(60_000);
    g.offer({ name: 'slow', cost: 10 });
    g.offer({ name: 'next', cost: 10 });
    vi.advanceTimersByTime(60_000);
    expect(ran.slice(3)).toEqual(['slow']);
    finish();
    await Promise.resolve();
    await Promise.resolve();
    expect(ran.slice(3)).toEqual(['slow', 'next']);
  });

  it('topUp charges what a request cost beyond its charge, within the per-request cap', () => {
    const { g, ran } = gate();
    g.offer({ name: 'a', cost: 600 }); // 400 left
    g.topUp(600, 5000); // capped: 1,000 − 600 more: 0 left, not in debt
    g.offer({ name: 'b', cost: 0 });
    g.topUp(0, 100); // 100 in debt: 1 s
    g.offer({ name: 'c', cost: 0 });
    expect(ran).toEqual(['a', 'b']);
    vi.advanceTimersByTime(1000);
    expect(ran).toEqual(['a', 'b', 'c']);
  });
});
