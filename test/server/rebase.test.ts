/**
 * Rebasing far-behind submissions over long histories. A large op (a client's offline work) is
 * rebased over history in an OpTree, one history op at a time; the law is that the op applied
 * equals the plain op-by-op result, fold(transform(op, h, 'right')) over the history after its
 * base, op for op. `npm test` uses 10⁴-op histories; `npm run test:long` 10⁵.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Component, apply, fromPatch, transform } from '../../src/ot/index.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Sequencer } from '../../src/server/sequencer.js';
import { type Random, below, seededRandom } from '../support/random.js';

const LONG = process.env.OTTER_LONG === '1';
const DOC = 'doc';
const sequencers: Sequencer[] = [];

afterEach(async () => {
  for (const s of sequencers.splice(0)) await s.close();
});

/** A small edit at a random place of `text`: insert a few letters, delete a few, or both. */
function smallEdit(random: Random, text: string, tag: string): Component[] {
  const at = below(random, text.length + 1);
  const del = below(random, 3) === 0 ? Math.min(below(random, 4), text.length - at) : 0;
  return fromPatch(text.length, at, del, below(random, 4) === 0 ? '' : tag);
}

/**
 * A large op on `text`: `edits` scattered small edits composed (inserting unique markers),
 * built left to right so it is one canonical op of about 2·edits components.
 */
function largeOp(random: Random, text: string, edits: number): Component[] {
  const op: Component[] = [];
  let pos = 0;
  const step = Math.max(1, Math.floor(text.length / edits));
  for (let i = 0; i < edits && pos < text.length; i++) {
    const keep = 1 + below(random, 2 * step - 1);
    const retain = Math.min(keep, text.length - pos);
    op.push(retain);
    pos += retain;
    op.push(`<${i}>`);
    if (below(random, 4) === 0 && pos < text.length) {
      const del = Math.min(1 + below(random, 3), text.length - pos);
      op.push(-del);
      pos += del;
    }
  }
  if (pos < text.length) op.push(text.length - pos);
  return op;
}

interface History {
  /** The text at the head. */
  readonly text: string;
  readonly ops: Component[][];
}

/** Submits `n` small ops of client "h" at the head, one after another, on `base`. */
async function buildHistory(s: Sequencer, random: Random, base: string, n: number): Promise<History> {
  const ops: Component[][] = [];
  let text = base;
  const answers: Promise<unknown>[] = [];
  await s.submit({ docId: DOC, clientId: 'h', seq: 1, baseVersion: 0, op: [base] });
  for (let i = 0; i < n; i++) {
    const op = smallEdit(random, text, `h${i % 10}`);
    answers.push(s.submit({ docId: DOC, clientId: 'h', seq: i + 2, baseVersion: i + 1, op }));
    ops.push(op);
    text = apply(text, op);
  }
  await Promise.all(answers);
  return { text, ops };
}

describe('rebasing a far-behind op over long history', () => {
  const sizes = LONG ? [10_000, 100_000] : [2_000, 10_000];
  for (const n of sizes) {
    it(`law: a large op ${n.toLocaleString('en')} versions behind is applied exactly as the op-by-op plain rebase makes it (and a small one too)`, async () => {
      const random = seededRandom(n);
      const s = new Sequencer(new MemoryStore(), { idleTimeout: 0 });
      sequencers.push(s);
      const base = 'abcdefghijklmnopqrstuvwxyz '.repeat(400);
      const history = await buildHistory(s, random, base, n);
      // Offline work on version 1 (the base text): large, and small.
      const large = largeOp(random, base, 600);
      expect(large.length).toBeGreaterThan(1000);
      const small = smallEdit(random, base, 'SMALL');
      let expectedLarge = large;
      let expectedSmall = small;
      for (const h of history.ops) {
        expectedLarge = transform(expectedLarge, h, 'right');
        expectedSmall = transform(expectedSmall, h, 'right');
      }
      const r1 = await s.submit({ docId: DOC, clientId: 'offline', seq: 1, baseVersion: 1, op: large });
      expect(r1.duplicate).toBe(false);
      expect(JSON.stringify(r1.op)).toBe(JSON.stringify(expectedLarge));
      const afterLarge = apply(history.text, expectedLarge);
      expect((await s.getSnapshot(DOC)).text).toBe(afterLarge);
      // The small op is rebased over the history and then the large op.
      expectedSmall = transform(expectedSmall, expectedLarge, 'right');
      const r2 = await s.submit({ docId: DOC, clientId: 'late', seq: 1, baseVersion: 1, op: small });
      expect(JSON.stringify(r2.op)).toBe(JSON.stringify(expectedSmall));
      // Every marker of the offline work is in the text once.
      const { text } = await s.getSnapshot(DOC);
      for (let i = 0; i < 600; i++) {
        const marker = `<${i}>`;
        if (large.includes(marker)) expect(text.split(marker).length - 1).toBe(1);
      }
    }, 120_000);
  }
});
