/**
 * VersionSamples, the checksums a document keeps to show a server that lost data where the lost
 * line parted from what it still holds. Laws:
 * - a pick holds at most `max` samples, newest first, no version twice, each with the checksum
 *   noted for it;
 * - every version of the last 4,096 is kept exactly: a pick for a server head among them holds
 *   that head and the versions just below it, and the newest versions too;
 * - older versions stay few (the memory kept is bounded) yet spread back to the oldest;
 * - an open (reset) or a gap in the versions noted starts afresh without losing what was kept;
 * - given the server's checksums at versions spread below the claim (the `lost` answer's), a
 *   pick holds every version between the newest of them the client shares and the next: the
 *   exact point where the lines part is among the samples, wherever the server's head is.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Sample, VersionSamples } from '../../src/client/version-samples.js';

/** The checksum noted for version `v` in these tests. */
const sumOf = (v: number): number => (v * 2654435761) % 4294967296;

/** Samples noted for versions from..to (inclusive). */
function noted(from: number, to: number): VersionSamples {
  const s = new VersionSamples();
  s.reset(from, sumOf(from));
  for (let v = from + 1; v <= to; v++) s.note(v, sumOf(v));
  return s;
}

function wellFormed(picked: readonly Sample[], max: number): void {
  expect(picked.length).toBeLessThanOrEqual(max);
  for (let i = 1; i < picked.length; i++) expect((picked[i - 1] as Sample)[0]).toBeGreaterThan((picked[i] as Sample)[0]);
  for (const [v, sum] of picked) expect(sum).toBe(sumOf(v));
}

describe('VersionSamples', () => {
  it('a pick for a server head in the last 4,096 versions holds that head, the versions just below it and the newest', () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 20_000 }), fc.integer({ min: 0, max: 4000 }), (head, back) => {
        const s = noted(0, head);
        const serverHead = Math.max(0, head - back);
        const picked = s.pick(64, serverHead);
        wellFormed(picked, 64);
        const versions = new Set(picked.map(([v]) => v));
        for (let v = serverHead; v > Math.max(-1, serverHead - 10); v--) expect(versions.has(v), `version ${v}`).toBe(true);
        for (let v = head; v > head - 10; v--) expect(versions.has(v), `newest ${v}`).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it("with the server's checksums spread below the claim, a pick holds every version between the newest shared one and the next: the exact fork, wherever the server's head", () => {
    fc.assert(
      fc.property(fc.integer({ min: 200, max: 3900 }), fc.integer({ min: 1, max: 2500 }), fc.integer({ min: 0, max: 5000 }), (head, forkBack, ahead) => {
        const s = noted(0, head);
        const fork = Math.max(0, head - forkBack);
        // The server's line: the client's up to the fork, another after it, its head anywhere.
        const serverHead = fork + ahead;
        const serverSum = (v: number): number => (v <= fork ? sumOf(v) : sumOf(v) + 1);
        // As a server spreads them (sequencer.ts, forkSums): over the last 63 × 40 versions at
        // or below the claim, newest first, ending with the lowest.
        const hi = Math.min(head, serverHead);
        const lo = Math.max(0, hi - 63 * 40);
        const step = Math.max(1, Math.ceil((hi - lo) / 63));
        const server: Array<[number, number]> = [];
        for (let v = hi; v >= lo && server.length < 64; v -= step) server.push([v, serverSum(v)]);
        if (server.length < 64 && server.at(-1)?.[0] !== lo) server.push([lo, serverSum(lo)]);
        const picked = s.pick(64, serverHead, server);
        wellFormed(picked, 64);
        const versions = new Set(picked.map(([v]) => v));
        expect(versions.has(fork), `the fork ${fork} (server head ${serverHead})`).toBe(true);
        // The newest still go out (another restoring client's op in flight is told by them).
        for (let v = head; v > head - 10; v--) expect(versions.has(v), `newest ${v}`).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('keeps few older versions, reaching back to the first, and picks every version when they are few', () => {
    const s = noted(0, 200_000);
    const all = s.pick(100_000);
    wellFormed(all, 100_000);
    expect(all.length).toBeLessThanOrEqual(2 * 4096 + 64);
    expect(Math.min(...all.map(([v]) => v))).toBeLessThan(20_000);
    const few = noted(10, 40).pick(64, 25);
    expect(few.map(([v]) => v)).toEqual(Array.from({ length: 31 }, (_, i) => 40 - i));
  });

  it('a reset forgets the rest; a gap keeps what came before among the older versions; a stored pick loads back', () => {
    const s = noted(0, 50);
    s.reset(500, sumOf(500));
    expect(s.pick(64)).toEqual([[500, sumOf(500)]]);
    s.note(501, sumOf(501));
    s.note(900, sumOf(900));
    expect(s.pick(64).map(([v]) => v)).toEqual([900, 501, 500]);
    // A stored record brings back the last versions exactly: a loss of the last write after a
    // reload still finds its version.
    const loaded = new VersionSamples();
    loaded.load(noted(0, 10_000).stored(64));
    loaded.note(10_001, sumOf(10_001));
    const picked = loaded.pick(64, 9_999);
    wellFormed(picked, 64);
    expect(picked[0]).toEqual([10_001, sumOf(10_001)]);
    for (let v = 10_000; v > 9_980; v--) expect(picked.some(([p]) => p === v), `version ${v}`).toBe(true);
  });
});
