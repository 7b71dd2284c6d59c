/**
 * The checksum chain (src/protocol/checksum.ts): deterministic, always a checksum, sensitive
 * to every part of its input (the op, the previous checksum, the order of ops, retain vs
 * delete, surrogate pairs), with no collision in a large sample; and pinned to its values,
 * because checksums are stored.
 */
import { describe, expect, it } from 'vitest';
import { type Component, apply, isCanonical, normalize } from '../../src/ot/index.js';
import { EMPTY_CHECKSUM, chainChecksum, isChecksum } from '../../src/protocol/checksum.js';
import { type Random, below, chance, pick, seededRandom } from '../support/random.js';

const ALPHABET = ['a', 'b', 'c', ' ', '\n', 'é', '中', '😀', '😁', '🈀', '👍', '🏽', '\u0000', '\uffff'];

/** A random canonical op (any base length), from `random`. */
function randomOp(random: Random): Component[] {
  const raw: Component[] = [];
  const n = 1 + below(random, 6);
  for (let i = 0; i < n; i++) {
    const kind = below(random, 3);
    if (kind === 0) {
      let s = '';
      const len = 1 + below(random, 4);
      for (let j = 0; j < len; j++) s += pick(random, ALPHABET);
      raw.push(s);
    } else {
      // Mostly small counts, sometimes past 2^32 (the high lane).
      const count = chance(random, 0.05) ? 2 ** 32 + below(random, 1000) : 1 + below(random, 40);
      raw.push(kind === 1 ? count : -count);
    }
  }
  return normalize(raw);
}

/** `count` distinct random canonical ops (by their JSON), from `seed`. */
function distinctOps(seed: number, count: number): Component[][] {
  const random = seededRandom(seed);
  const seen = new Set<string>();
  const out: Component[][] = [];
  while (out.length < count) {
    const op = randomOp(random);
    const key = JSON.stringify(op);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(op);
  }
  return out;
}

/** A random checksum (a safe integer ≥ 0). */
function randomChecksum(random: Random): number {
  return Math.floor(random() * 2 ** 21) * 2 ** 32 + Math.floor(random() * 2 ** 32);
}

describe('chainChecksum', () => {
  it('is deterministic: equal inputs (even copies) give equal checksums, and the op is not mutated', () => {
    const random = seededRandom(1);
    for (const op of distinctOps(2, 500)) {
      const prev = randomChecksum(random);
      const copy = JSON.parse(JSON.stringify(op)) as Component[];
      const first = chainChecksum(prev, op);
      expect(chainChecksum(prev, op)).toBe(first);
      expect(chainChecksum(prev, copy)).toBe(first);
      expect(op).toEqual(copy);
    }
  });

  it('always returns a checksum: a safe integer in [0, 2^53) (isChecksum), from any previous checksum', () => {
    const random = seededRandom(3);
    const previous = [EMPTY_CHECKSUM, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
    for (const op of distinctOps(4, 3000)) {
      for (const prev of [...previous, randomChecksum(random)]) {
        const sum = chainChecksum(prev, op);
        expect(isChecksum(sum)).toBe(true);
        expect(sum).toBeLessThan(2 ** 53);
      }
    }
  });

  it('no collision: 20,000 distinct canonical ops on the same previous checksum give 20,000 distinct checksums (0 and a random one)', () => {
    const ops = distinctOps(5, 20_000);
    expect(ops.every((op) => isCanonical(op))).toBe(true);
    for (const prev of [EMPTY_CHECKSUM, randomChecksum(seededRandom(6))]) {
      const sums = new Set(ops.map((op) => chainChecksum(prev, op)));
      expect(sums.size).toBe(ops.length);
    }
  });

  it('sensitive to the previous checksum: 20,000 distinct previous checksums give distinct results for one op', () => {
    const random = seededRandom(7);
    const prevs = new Set<number>([0, 1, 2 ** 32, 2 ** 53 - 1]);
    while (prevs.size < 20_000) prevs.add(randomChecksum(random));
    for (const op of [['x'], [3, -2, 'ab'], [5]] as Component[][]) {
      const sums = new Set([...prevs].map((p) => chainChecksum(p, op)));
      expect(sums.size).toBe(prevs.size);
    }
    // Neighbours in either lane.
    expect(chainChecksum(0, ['x'])).not.toBe(chainChecksum(1, ['x']));
    expect(chainChecksum(0, ['x'])).not.toBe(chainChecksum(2 ** 32, ['x']));
  });

  it('sensitive to order: chain(chain(s, a), b) ≠ chain(chain(s, b), a) for 5,000 pairs a ≠ b', () => {
    const ops = distinctOps(8, 10_000);
    const random = seededRandom(9);
    for (let i = 0; i < ops.length; i += 2) {
      const a = ops[i] as Component[];
      const b = ops[i + 1] as Component[];
      const s = chance(random, 0.5) ? EMPTY_CHECKSUM : randomChecksum(random);
      expect(chainChecksum(chainChecksum(s, a), b)).not.toBe(chainChecksum(chainChecksum(s, b), a));
    }
  });

  it('sensitive to retain vs delete of the same length, small and past 2^32', () => {
    const lengths = [1, 2, 3, 7, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 3, 2 ** 53 - 1];
    for (const n of lengths) {
      for (const prev of [EMPTY_CHECKSUM, 987654321]) {
        expect(chainChecksum(prev, [n])).not.toBe(chainChecksum(prev, [-n]));
        expect(chainChecksum(prev, ['ab', n])).not.toBe(chainChecksum(prev, ['ab', -n]));
        expect(chainChecksum(prev, [4, 'ab', n])).not.toBe(chainChecksum(prev, [4, 'ab', -n]));
      }
    }
    // And every length 1..5000 in both kinds: 10,000 distinct checksums.
    const sums = new Set<number>();
    for (let n = 1; n <= 5000; n++) {
      sums.add(chainChecksum(0, ['q', n]));
      sums.add(chainChecksum(0, ['q', -n]));
    }
    expect(sums.size).toBe(10_000);
  });

  it('sensitive to surrogate pairs: pairs differing only in the high or only in the low half, swapped pairs, and a sample of astral characters', () => {
    const differ = (x: string, y: string): void => {
      expect(chainChecksum(0, [x])).not.toBe(chainChecksum(0, [y]));
      expect(chainChecksum(0, [2, x, -1])).not.toBe(chainChecksum(0, [2, y, -1]));
    };
    differ('😀', '😁'); // D83D·DE00 vs D83D·DE01: same high half
    differ('😀', '🈀'); // D83D·DE00 vs D83C·DE00: same low half
    differ('😀😁', '😁😀');
    differ('a😀', '😀a');
    differ('👍🏽', '🏽👍');
    differ('\u{10000}', '\u{10FFFF}');
    differ('😀', 'ὠ0'); // two BMP code units
    const random = seededRandom(10);
    const chars = new Set<string>();
    while (chars.size < 5000) chars.add(String.fromCodePoint(0x10000 + below(random, 0x100000)));
    const sums = new Set([...chars].map((c) => chainChecksum(0, [c])));
    expect(sums.size).toBe(chars.size);
  });

  it('pinned values: a change to the function must fail this test', () => {
    // Checksums are stored with every op and snapshot and compared across server versions and
    // clients, so these numbers are part of the storage format (schema 2 of the SQLite store):
    // never update them to make this test pass; a different definition needs a new format
    // (and a migration).
    const table: Array<[number, Component[], number]> = [
      [0, [], 0],
      [0, ['a'], 3349155573368662],
      [0, ['hello'], 1566013292709547],
      [0, ['😀'], 2171735591425319],
      [0, [3], 5234107974908024],
      [0, [-3], 1338758219524943],
      [0, [2, 'x', -1, 4], 1234372285583261],
      [123456789, ['ab', 7], 1797532674967712],
      [2 ** 53 - 1, [-5], 6940814441022343],
      [0, [2 ** 32 + 5], 6218067687532815],
      [0, ['中é\n'], 4165944102798105],
      [0, [1, -(2 ** 32 + 1)], 4960524811146604],
      [0, [1, 2 ** 32 + 1], 2911851655474043],
    ];
    for (const [prev, op, sum] of table) expect([prev, op, chainChecksum(prev, op)]).toEqual([prev, op, sum]);

    // A document's chain from version 0, each op applied to the text before it.
    const history: Array<[Component[], string, number]> = [
      [['hello'], 'hello', 1566013292709547],
      [[5, ' world'], 'hello world', 2212745239770757],
      [[6, 'there', -5], 'hello there', 2138614798844374],
      [['H', -1, 10], 'Hello there', 4459233458019372],
      [[5, '😀', 6], 'Hello😀 there', 7062440117409324],
    ];
    let text = '';
    let sum = EMPTY_CHECKSUM;
    for (const [op, expectedText, expectedSum] of history) {
      expect(isCanonical(op)).toBe(true);
      text = apply(text, op);
      sum = chainChecksum(sum, op);
      expect([text, sum]).toEqual([expectedText, expectedSum]);
    }
  });

  it('EMPTY_CHECKSUM is 0, and isChecksum accepts exactly the safe integers ≥ 0', () => {
    expect(EMPTY_CHECKSUM).toBe(0);
    for (const v of [0, 1, 2 ** 32, 2 ** 53 - 1]) expect(isChecksum(v)).toBe(true);
    for (const v of [-1, 0.5, 2 ** 53, Number.NaN, Infinity, '1', null, undefined, 1n]) expect(isChecksum(v)).toBe(false);
  });
});
