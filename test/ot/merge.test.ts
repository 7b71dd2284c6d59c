/**
 * Properties of the three-way text merge (`mergeText`), `holdsInserts` and the semantic
 * `fromTextDiff` they rest on (src/ot/merge.ts, src/ot/diff.ts).
 *
 * To tell inserted text apart, scenarios insert markers: code points that occur nowhere else
 * (BMP and astral ones), each inserted once by one side — or by both sides at the same place,
 * as a change made on both sides. Base texts are either drawn from a small alphabet (many
 * equal characters, where diffs align ambiguously) or made of distinct characters (so that a
 * character deleted by both sides can be looked for).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Component,
  InvalidOperationError,
  OperationBuilder,
  apply,
  fromTextDiff,
  holdsInserts,
  isCanonical,
  mergeText,
} from '../../src/ot/index.js';
import { codePoint, doc, docOf, editOn } from './arbitraries.js';

/** Texts with many equal characters (BMP and astral). */
const smallText = docOf(fc.constantFrom('a', 'b', 'c', ' ', '😀', '😁', '中'), 16);
/** Texts of any code points, mostly from a collision-prone alphabet. */
const anyText = fc.oneof(smallText, doc);

/** The i-th marker: a code point no base text holds (alternately astral and BMP). */
function marker(i: number): string {
  return i % 2 === 0 ? String.fromCodePoint(0x1d400 + i) : String.fromCodePoint(0x3b1 + i);
}

/** Code points of a base text: from a small alphabet, or all distinct. */
const baseCps: fc.Arbitrary<string[]> = fc.oneof(
  fc.array(fc.constantFrom('a', 'b', 'c', ' ', '😀', '😁'), { maxLength: 12 }),
  fc.uniqueArray(fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.split(''), '𝔸', '𝔹', 'ℂ'), { maxLength: 12 }),
);

/** Longest base text of the scenarios, in code points. */
const MAX_BASE = 12;

/** How one side changes the base: which base code points it keeps, how many markers per slot. */
interface SideSpec {
  /** Whether base code point i is kept (entries past the base's length are ignored). */
  readonly keep: readonly boolean[];
  /** Markers inserted in slot i (before base code point i; slot n is the end). */
  readonly inserts: readonly number[];
}

/** A side's changes, for any base of up to MAX_BASE code points (flat, so it shrinks well). */
const sideSpec: fc.Arbitrary<SideSpec> = fc.record({
  keep: fc.array(fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }), {
    minLength: MAX_BASE,
    maxLength: MAX_BASE,
  }),
  inserts: fc.array(fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }) }), {
    minLength: MAX_BASE + 1,
    maxLength: MAX_BASE + 1,
  }),
});

/** A side's text: `slots[i]` (marker lists) before base code point i, kept code points. */
function build(base: readonly string[], keep: readonly boolean[], slots: readonly (readonly string[])[]): string {
  let out = '';
  for (let i = 0; i <= base.length; i++) {
    out += (slots[i] ?? []).join('');
    if (i < base.length && keep[i] === true) out += base[i];
  }
  return out;
}

/** A three-way merge scenario with the markers of each side known. */
interface Scenario {
  readonly base: string;
  readonly mine: string;
  readonly theirs: string;
  readonly distinct: boolean;
  readonly baseCps: readonly string[];
  readonly mineKeep: readonly boolean[];
  readonly theirsKeep: readonly boolean[];
  readonly mineMarkers: readonly string[];
  readonly theirsMarkers: readonly string[];
  /** Markers both sides inserted at the same place (first in that slot on both sides). */
  readonly sharedMarkers: readonly string[];
  /** Per shared marker: one side inserted nothing else at its place. */
  readonly sharedOnce: readonly boolean[];
}

function scenarioArb(withShared: boolean): fc.Arbitrary<Scenario> {
  return fc
    .record({
      cps: baseCps,
      mine: sideSpec,
      theirs: sideSpec,
      shared: withShared ? fc.uniqueArray(fc.nat(MAX_BASE), { minLength: 1, maxLength: 3 }) : fc.constant([] as number[]),
    })
    .map(({ cps, mine, theirs, shared }): Scenario => {
      const n = cps.length;
      let next = 0;
      const mineSlots: string[][] = [];
      const theirsSlots: string[][] = [];
      const sharedMarkers: string[] = [];
      for (let i = 0; i <= n; i++) {
        mineSlots.push([]);
        theirsSlots.push([]);
      }
      for (const slot of new Set(shared.map((x) => x % (n + 1)))) {
        const m = marker(next++);
        sharedMarkers.push(m);
        (mineSlots[slot] as string[]).push(m);
        (theirsSlots[slot] as string[]).push(m);
      }
      const mineMarkers: string[] = [];
      const theirsMarkers: string[] = [];
      for (let i = 0; i <= n; i++) {
        for (let k = 0; k < (mine.inserts[i] ?? 0); k++) {
          const m = marker(next++);
          mineMarkers.push(m);
          (mineSlots[i] as string[]).push(m);
        }
        for (let k = 0; k < (theirs.inserts[i] ?? 0); k++) {
          const m = marker(next++);
          theirsMarkers.push(m);
          (theirsSlots[i] as string[]).push(m);
        }
      }
      // A shared marker is inserted once only where one side's insert there holds the other's
      // (one side added nothing else at that place); otherwise both inserts are kept whole.
      const sharedOnce = [...new Set(shared.map((x) => x % (n + 1)))].map(
        (slot) => (mineSlots[slot] as string[]).length === 1 || (theirsSlots[slot] as string[]).length === 1,
      );
      return {
        base: cps.join(''),
        sharedOnce,
        mine: build(cps, mine.keep, mineSlots),
        theirs: build(cps, theirs.keep, theirsSlots),
        distinct: new Set(cps).size === cps.length,
        baseCps: cps,
        mineKeep: mine.keep.slice(0, n),
        theirsKeep: theirs.keep.slice(0, n),
        mineMarkers,
        theirsMarkers,
        sharedMarkers,
      };
    });
}

/** How many times code point `cp` occurs in `text`. */
function count(text: string, cp: string): number {
  let n = 0;
  for (const c of text) if (c === cp) n++;
  return n;
}

/** The merged text of a scenario, after checking the op is canonical and fits `theirs`. */
function merged(base: string, mine: string, theirs: string, made?: string): string {
  const op = made === undefined ? mergeText(base, mine, theirs) : mergeText(base, mine, theirs, made);
  expect(isCanonical(op)).toBe(true);
  return apply(theirs, op);
}

// ─── fromTextDiff with semantic cleanup ─────────────────────────────────────────────────────

describe("fromTextDiff(…, 'semantic')", () => {
  it("law: apply(before, fromTextDiff(before, after, m, 'semantic')) === after, canonically, for any maxEdits", () => {
    fc.assert(
      fc.property(anyText, anyText, fc.oneof(fc.constant(1000), fc.nat(20)), (before, after, m) => {
        const op = fromTextDiff(before, after, m, 'semantic');
        expect(isCanonical(op)).toBe(true);
        expect(apply(before, op)).toBe(after);
      }),
      { numRuns: 1500 },
    );
  });

  it('law holds for an edit of the text (texts that share most of their characters)', () => {
    fc.assert(
      fc.property(
        doc.chain((d) => editOn(d, codePoint)),
        (e) => {
          expect(apply(e.doc, fromTextDiff(e.doc, e.expected, 1000, 'semantic'))).toBe(e.expected);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

// ─── fromTextDiff by lines ───────────────────────────────────────────────────────────────────

/** Texts of a few lines, the lines from a small set (so lines repeat and blocks align ambiguously). */
const lineText = fc
  .array(fc.oneof(fc.constantFrom('', 'a', 'ab', 'abc', 'b a', '😀x', 'x😀'), smallText), { maxLength: 8 })
  .map((lines) => lines.join('\n'));

describe("fromTextDiff(…, 'lines')", () => {
  it("law: apply(before, fromTextDiff(before, after, m, 'lines')) === after, canonically, for any maxEdits", () => {
    fc.assert(
      fc.property(fc.oneof(lineText, anyText), fc.oneof(lineText, anyText), fc.oneof(fc.constant(1000), fc.nat(6)), (before, after, m) => {
        const op = fromTextDiff(before, after, m, 'lines');
        expect(isCanonical(op)).toBe(true);
        expect(apply(before, op)).toBe(after);
      }),
      { numRuns: 1500 },
    );
  });

  it('keeps unchanged lines whole and diffs a changed line by character', () => {
    const before = 'alpha beta\ngamma delta\nepsilon\n';
    const after = 'alpha beta\ngamma DELTA delta\nzeta\nepsilon\n';
    // Line 2 gains a word in place; a new line comes before "epsilon".
    expect(fromTextDiff(before, after, 1000, 'lines')).toEqual([17, 'DELTA ', 6, 'zeta\n', 8]);
  });

  it('aligns a line edited in place letter by letter', () => {
    expect(fromTextDiff('a\nthe quick fox\nb\n', 'a\nthe quick brown fox\nb\nc\n', 1000, 'lines')).toEqual([12, 'brown ', 6, 'c\n']);
  });

  it('stays within time on long texts far apart: a block over maxEdits is replaced whole', () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `line ${i} ${'x'.repeat(i % 50)}\n`);
    const before = lines.join('');
    const after = lines.map((l, i) => (i % 3 === 0 ? l.toUpperCase() : l)).join('');
    const op = fromTextDiff(before, after, 1000, 'lines');
    expect(apply(before, op)).toBe(after);
  });
});

// ─── mergeText ──────────────────────────────────────────────────────────────────────────────

describe('mergeText', () => {
  it('law: when theirs === base, the merge brings theirs to mine', () => {
    fc.assert(
      fc.property(anyText, anyText, (base, mine) => {
        expect(merged(base, mine, base)).toBe(mine);
      }),
      { numRuns: 1000 },
    );
  });

  it('law: when mine === base, the merge leaves theirs as it is', () => {
    fc.assert(
      fc.property(anyText, anyText, (base, theirs) => {
        expect(merged(base, base, theirs)).toBe(theirs);
      }),
      { numRuns: 1000 },
    );
  });

  it('law: when mine === theirs, the merge leaves theirs as it is (a change made on both sides is made once)', () => {
    fc.assert(
      fc.property(anyText, anyText, (base, both) => {
        expect(merged(base, both, both)).toBe(both);
      }),
      { numRuns: 1000 },
    );
  });

  it('every marker mine inserted and every marker theirs inserted is in the merge exactly once; a base character both deleted is absent', () => {
    fc.assert(
      fc.property(scenarioArb(false), (s) => {
        const out = merged(s.base, s.mine, s.theirs);
        for (const m of s.mineMarkers) expect(count(out, m)).toBe(1);
        for (const m of s.theirsMarkers) expect(count(out, m)).toBe(1);
        if (s.distinct) {
          s.baseCps.forEach((cp, i) => {
            if (s.mineKeep[i] !== true && s.theirsKeep[i] !== true) expect(count(out, cp)).toBe(0);
          });
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('a marker both sides inserted at the same place is in the merge once where one side’s insert there holds the other’s (over a base of distinct characters both kept whole, which aligns one way only), else at most twice, never lost; each side’s own markers exactly once', () => {
    fc.assert(
      fc.property(scenarioArb(true), (s) => {
        const out = merged(s.base, s.mine, s.theirs);
        const aligned = s.distinct && s.baseCps.every((_, i) => s.mineKeep[i] === true && s.theirsKeep[i] === true);
        s.sharedMarkers.forEach((m, i) => {
          if (s.sharedOnce[i] === true && aligned) expect(count(out, m)).toBe(1);
          else expect([1, 2]).toContain(count(out, m));
        });
        for (const m of s.mineMarkers) expect(count(out, m)).toBe(1);
        for (const m of s.theirsMarkers) expect(count(out, m)).toBe(1);
      }),
      { numRuns: 2000 },
    );
  });
});

// ─── mergeText with `made` ──────────────────────────────────────────────────────────────────

/**
 * A scenario with earlier merged edits: `made` is the base plus markers K that `theirs` holds
 * (theirs derives from made: its own markers and deletes of base characters); `mine` derives
 * from made (holding K) or from the base (lacking K), with its own markers and deletes.
 */
interface MadeScenario extends Scenario {
  readonly made: string;
  readonly madeMarkers: readonly string[];
  readonly mineHoldsMade: boolean;
}

const madeScenario: fc.Arbitrary<MadeScenario> = fc
  .record({
    cps: baseCps,
    made: fc.uniqueArray(fc.nat(MAX_BASE), { minLength: 1, maxLength: 3 }),
    mine: sideSpec,
    theirs: sideSpec,
    mineHoldsMade: fc.boolean(),
  })
  .map(({ cps, made, mine, theirs, mineHoldsMade }): MadeScenario => {
    const n = cps.length;
    let next = 0;
    const madeSlots: string[][] = [];
    for (let i = 0; i <= n; i++) madeSlots.push([]);
    const madeMarkers: string[] = [];
    for (const slot of new Set(made.map((x) => x % (n + 1)))) {
      const m = marker(next++);
      madeMarkers.push(m);
      (madeSlots[slot] as string[]).push(m);
    }
    const mineSlots = madeSlots.map((s) => (mineHoldsMade ? s.slice() : []));
    const theirsSlots = madeSlots.map((s) => s.slice());
    const mineMarkers: string[] = [];
    const theirsMarkers: string[] = [];
    for (let i = 0; i <= n; i++) {
      for (let k = 0; k < (mine.inserts[i] ?? 0); k++) {
        const m = marker(next++);
        mineMarkers.push(m);
        (mineSlots[i] as string[]).push(m);
      }
      for (let k = 0; k < (theirs.inserts[i] ?? 0); k++) {
        const m = marker(next++);
        theirsMarkers.push(m);
        (theirsSlots[i] as string[]).push(m);
      }
    }
    return {
      base: cps.join(''),
      made: build(
        cps,
        cps.map(() => true),
        madeSlots,
      ),
      mine: build(cps, mine.keep, mineSlots),
      theirs: build(cps, theirs.keep, theirsSlots),
      distinct: new Set(cps).size === cps.length,
      baseCps: cps,
      mineKeep: mine.keep.slice(0, n),
      theirsKeep: theirs.keep.slice(0, n),
      mineMarkers,
      theirsMarkers,
      sharedMarkers: [],
      sharedOnce: [],
      madeMarkers,
      mineHoldsMade,
    };
  });

describe('mergeText with made', () => {
  for (const mineHoldsMade of [true, false]) {
    const what = mineHoldsMade ? 'mine holds too is in the merge exactly once, not doubled' : 'mine lacks is in the merge exactly once, not deleted';
    it(`what made inserted (theirs holds it) and ${what}; both sides’ own markers once`, () => {
      fc.assert(
        fc.property(
          madeScenario.filter((s) => s.mineHoldsMade === mineHoldsMade),
          (s) => {
            const out = merged(s.base, s.mine, s.theirs, s.made);
            for (const m of [...s.madeMarkers, ...s.mineMarkers, ...s.theirsMarkers]) expect(count(out, m)).toBe(1);
          },
        ),
        { numRuns: 2000 },
      );
    });
  }

  it('made = base changes nothing: mergeText(base, mine, theirs, base) equals mergeText(base, mine, theirs)', () => {
    fc.assert(
      fc.property(anyText, anyText, anyText, (base, mine, theirs) => {
        expect(mergeText(base, mine, theirs, base)).toEqual(mergeText(base, mine, theirs));
      }),
      { numRuns: 500 },
    );
  });
});

describe('mergeText regressions (found by the properties above)', () => {
  it('holds a change both sides made when theirs replaced the text around it: base "A", mine "AS", theirs "S" → "S"', () => {
    expect(merged('A', 'AS', 'S')).toBe('S');
  });

  it('regression: mine replaced "A" by "S", theirs inserted "S" after "A" (base "A", mine "S", theirs "AS") → "S", not "SS"', () => {
    // mine's change reconstructs as ["S", -1]: the insert sits at 0, before the delete, and
    // withoutInsertsHeldBy only asks whether theirs's hunk covers position 0 (theirs's is at 1).
    expect(merged('A', 'S', 'AS')).toBe('S');
  });

  it('regression: both inserted "S" after "a" and mine also deleted "c" (base "abcd", mine "aSbd", theirs "aSbcd") → "aSbd", not "aSSbd"', () => {
    // The semantic cleanup folds mine's kept "b" into one hunk, [1, "Sb", -2, 1]; "Sb" is not
    // contained in theirs's insert "S", so mine's "S" is not recognised as made already.
    expect(merged('abcd', 'aSbd', 'aSbcd')).toBe('aSbd');
  });

  it('regression: mine holds what made inserted and deleted around it (base "ab", made = theirs = "aKb", mine "K") → "K", not "KK"', () => {
    // diff(made, mine) folds into ["K", -3]; keeping() turns the delete of made's "K" into a
    // retain but leaves the re-insert of "K", so "K" is doubled.
    expect(merged('ab', 'K', 'aKb', 'aKb')).toBe('K');
  });
});

// ─── holdsInserts ───────────────────────────────────────────────────────────────────────────

/**
 * An op on `left + "|" + right` that inserts markers into the left part (slot i of `slots`
 * before left code point i) and deletes the left code points `keep` says, retaining the rest;
 * built component by component, with its outcome.
 */
function leftEdit(
  left: readonly string[],
  right: readonly string[],
  keep: readonly boolean[],
  slots: readonly (readonly string[])[],
): { base: string; op: Component[]; after: string } {
  const b = new OperationBuilder();
  for (let i = 0; i <= left.length; i++) {
    const ins = (slots[i] ?? []).join('');
    if (ins !== '') b.insert(ins);
    const cp = left[i];
    if (cp === undefined) continue;
    if (keep[i] === true) b.retain(cp.length);
    else b.delete(cp.length);
  }
  const rest = '|' + right.join('');
  b.retain(rest.length);
  const base = left.join('') + rest;
  return { base, op: b.build(), after: build(left, keep, slots) + rest };
}

/** Mostly runs of one or two letters: where the diff of base into target has most choices. */
const repetitiveLeft = fc.oneof(
  { weight: 2, arbitrary: fc.array(fc.constantFrom('a', 'a', 'a', 'b', '😀'), { maxLength: MAX_BASE }) },
  { weight: 1, arbitrary: baseCps },
);
/** Distinct characters none of the right parts and replacements use: one way to align. */
const distinctLeft = fc.uniqueArray(fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.split(''), '𝔸', '𝔹', 'ℂ'), {
  maxLength: MAX_BASE,
});
const rightText = fc.array(fc.constantFrom('a', 'b', 'x', 'y', '😁'), { maxLength: 6 });

/** A base `left|right`, an op inserting markers into (and deleting from) its left part. */
function holdScenarioOf(left: fc.Arbitrary<string[]>) {
  return fc
    .record({
      left,
      right: rightText,
      slots: fc.array(fc.nat(MAX_BASE), { minLength: 1, maxLength: 3 }),
      keep: sideSpec.map((spec) => spec.keep),
      replacement: fc.array(fc.constantFrom('a', 'b', 'x', 'y', '😁'), { minLength: 1, maxLength: 6 }).map((cps) => cps.join('')),
      drop: fc.nat(),
    })
    .map(({ left, right, slots, keep, replacement, drop }) => {
      const lists: string[][] = [];
      for (let i = 0; i <= left.length; i++) lists.push([]);
      const markers = slots.map((slot, i) => {
        (lists[slot % (left.length + 1)] as string[]).push(marker(i));
        return marker(i);
      });
      const { base, op, after } = leftEdit(left, right, keep, lists);
      const prefix = after.slice(0, after.indexOf('|'));
      return { base, op, after, markers, prefix, replacement, dropped: markers[drop % markers.length] as string };
    });
}

const holdScenario = holdScenarioOf(repetitiveLeft);
const distinctHoldScenario = holdScenarioOf(distinctLeft);

describe('holdsInserts', () => {
  it('true when target = apply(base, op), and with unrelated changes elsewhere, for a left part of distinct characters', () => {
    fc.assert(
      fc.property(distinctHoldScenario, (s) => {
        expect(apply(s.base, s.op)).toBe(s.after);
        expect(holdsInserts(s.base, s.op, s.after)).toBe(true);
        expect(holdsInserts(s.base, s.op, s.prefix + '|' + s.replacement)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('true when target = apply(base, op), for a base with repeated characters', () => {
    fc.assert(
      fc.property(holdScenario, (s) => {
        expect(apply(s.base, s.op)).toBe(s.after);
        expect(holdsInserts(s.base, s.op, s.after)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('true when target = apply(base, op) plus unrelated changes elsewhere (the text after "|" replaced), for a base with repeated characters', () => {
    fc.assert(
      fc.property(holdScenario, (s) => {
        expect(holdsInserts(s.base, s.op, s.prefix + '|' + s.replacement)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('regression: true for base "aaaab", op [-1, 1, "M", 2, -1] and target = apply(base, op) = "aMaa"', () => {
    // The diff of base into target keeps the first "a" and deletes the fourth, placing "M" at
    // base position 1; the op deletes the first "a" and has "M" at 2: not found "at its place".
    expect(apply('aaaab', [-1, 1, 'M', 2, -1])).toBe('aMaa');
    expect(holdsInserts('aaaab', [-1, 1, 'M', 2, -1], 'aMaa')).toBe(true);
  });

  it('regression: true for base "aaaa", op [-1, 1, "M", 2] (→ "aMaa") and target "aMaax" (an "x" appended)', () => {
    // Without the "x" the diff deletes the first "a" as the op does, and the insert is found.
    expect(holdsInserts('aaaa', [-1, 1, 'M', 2], 'aMaa')).toBe(true);
    expect(holdsInserts('aaaa', [-1, 1, 'M', 2], 'aMaax')).toBe(true);
  });

  it('false when the target lacks one of the op’s inserts (the rest of the op applied, other changes elsewhere)', () => {
    fc.assert(
      fc.property(fc.oneof(holdScenario, distinctHoldScenario), (s) => {
        const without = s.prefix.replace(s.dropped, '');
        expect(without).not.toBe(s.prefix);
        expect(holdsInserts(s.base, s.op, without + s.after.slice(s.prefix.length))).toBe(false);
        expect(holdsInserts(s.base, s.op, without + '|' + s.replacement)).toBe(false);
        // Nothing applied at all.
        expect(holdsInserts(s.base, s.op, s.base)).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('true for an op that inserts nothing, whatever the target', () => {
    fc.assert(
      fc.property(baseCps, sideSpec, anyText, (cps, spec, target) => {
        const { base, op } = leftEdit(cps, [], spec.keep, []);
        expect(op.every((c) => typeof c === 'number')).toBe(true);
        expect(holdsInserts(base, op, target)).toBe(true);
      }),
      { numRuns: 1000 },
    );
    expect(holdsInserts('', [], 'anything')).toBe(true);
  });

  it('refuses an op whose base length is not the base’s, with InvalidOperationError', () => {
    expect(() => holdsInserts('abc', [2, 'x'], 'abxc')).toThrow(InvalidOperationError);
    expect(() => holdsInserts('abc', [4], 'abc')).toThrow(InvalidOperationError);
  });
});
