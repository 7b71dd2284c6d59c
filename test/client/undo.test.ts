/**
 * UndoManager: unit tests on a document served by hand (`fakes.ts`), then the law on the
 * loopback world (real clients and server): for random interleavings of local edits, remote
 * edits, undos and redos, undoing all of a user's steps removes exactly that user's
 * surviving contributions, and all replicas still converge.
 *
 * Every character typed in the law's runs is unique and names its typist. 2–3 users edit,
 * undo and redo with frames delivered late; once all are quiet, the focal user undoes every
 * step while the others go on typing. Then every replica holds the same text, in which:
 * - no character of the focal user's is left, except one another user put back (by undoing
 *   a delete of it: from then on it is theirs to undo);
 * - every character of the others' that was there before, or typed since, is still there;
 * - nothing else is, but for text the focal user had deleted (its undo puts that back).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CollaborativeDocument } from '../../src/client/document.js';
import { UndoManager, type UndoManagerOptions } from '../../src/client/undo.js';
import type { Component } from '../../src/ot/index.js';
import { type Random, below, chance, pick, seededRandom, weighted } from '../support/random.js';
import { World, type WorldClient } from '../support/world.js';
import { openedDoc, serve } from './fakes.js';

/** A document opened on `text`, a manager on it, and a clock the test moves. */
function setup(text = '', options: UndoManagerOptions = {}): { doc: CollaborativeDocument; undo: UndoManager; clock: { t: number } } {
  const { doc } = openedDoc(text);
  const clock = { t: 0 };
  const undo = new UndoManager(doc, { now: () => clock.t, ...options });
  return { doc, undo, clock };
}

/** The server acknowledges everything the document sent, so it is synchronized. */
function ackAll(doc: CollaborativeDocument): void {
  for (let life = doc.lifecycle; life.phase === 'live' && life.inflight !== undefined; life = doc.lifecycle) {
    serve(doc, { type: 'ack', doc: 'd', seq: life.inflight, v: doc.version + 1 });
  }
}

/** Another client's `op`, on the current text, arrives. */
function remote(doc: CollaborativeDocument, op: Component[]): void {
  ackAll(doc);
  serve(doc, { type: 'ops', doc: 'd', ops: [{ v: doc.version + 1, op }] });
}

describe('UndoManager', () => {
  it('undoes and redoes an insert and a delete, each a step of its own when apart in time', () => {
    const { doc, undo, clock } = setup('hello');
    expect([undo.canUndo, undo.canRedo]).toEqual([false, false]);
    doc.insert(5, ' world');
    clock.t = 1000;
    doc.delete(0, 1);
    expect(doc.text).toBe('ello world');
    expect(undo.undo()).not.toBeNull();
    expect(doc.text).toBe('hello world');
    expect(undo.undo()).not.toBeNull();
    expect(doc.text).toBe('hello');
    expect([undo.canUndo, undo.canRedo]).toEqual([false, true]);
    expect(undo.undo()).toBeNull();
    expect(undo.redo()).not.toBeNull();
    expect(doc.text).toBe('hello world');
    expect(undo.redo()).not.toBeNull();
    expect(doc.text).toBe('ello world');
    expect([undo.canUndo, undo.canRedo]).toEqual([true, false]);
    expect(undo.redo()).toBeNull();
  });

  it('groups edits closer together than groupInterval into one step', () => {
    const { doc, undo, clock } = setup('', { groupInterval: 100 });
    for (const [i, ch] of [...'abc'].entries()) {
      clock.t = i * 99;
      doc.insert(i, ch);
    }
    clock.t += 100;
    doc.insert(3, 'd');
    undo.undo();
    expect(doc.text).toBe('abc');
    undo.undo();
    expect(doc.text).toBe('');
    expect(undo.canUndo).toBe(false);
  });

  it('makes every edit a step of its own with groupInterval 0', () => {
    const { doc, undo } = setup('', { groupInterval: 0 });
    doc.insert(0, 'a');
    doc.insert(1, 'b');
    undo.undo();
    expect(doc.text).toBe('a');
  });

  it('starts a new step after an undo, however soon the next edit comes', () => {
    const { doc, undo } = setup('');
    doc.insert(0, 'a');
    undo.undo();
    doc.insert(0, 'b');
    doc.insert(1, 'c');
    undo.undo();
    expect(doc.text).toBe('');
    expect(undo.canUndo).toBe(false);
  });

  it('sends undo and redo as local edits, records them as no new step, and a new edit empties the redo stack', () => {
    const { doc, undo, clock } = setup('x');
    const changes: Array<{ op: Component[]; local: boolean }> = [];
    doc.on('change', ({ op, local }) => changes.push({ op, local }));
    doc.insert(1, 'y');
    expect(undo.undo()).toEqual([1, -1]);
    expect(undo.redo()).toEqual([1, 'y']);
    expect(changes).toEqual([
      { op: [1, 'y'], local: true },
      { op: [1, -1], local: true },
      { op: [1, 'y'], local: true },
    ]);
    expect(doc.syncState.kind).not.toBe('synchronized');
    undo.undo();
    clock.t = 5000;
    doc.insert(0, 'z');
    expect(undo.canRedo).toBe(false);
    undo.undo();
    expect(doc.text).toBe('x');
    expect(undo.canUndo).toBe(false);
  });

  it('undoing an insert deletes only what survives of it, keeping what others typed inside it', () => {
    const { doc, undo } = setup('');
    doc.insert(0, 'abcd');
    remote(doc, [2, 'XY', 2]); // typed inside: abXYcd
    remote(doc, [1, -2, 3]); // deletes "bX": aYcd
    expect(doc.text).toBe('aYcd');
    undo.undo();
    expect(doc.text).toBe('Y');
    undo.redo();
    expect(doc.text).toBe('aYcd');
  });

  it('undoing a delete re-inserts the deleted text where it now belongs', () => {
    const { doc, undo } = setup('one two three');
    doc.delete(4, 4); // "one three"
    remote(doc, ['zero ', 9]); // "zero one three"
    remote(doc, [9, -3, 2]); // "zero one ee"
    undo.undo();
    expect(doc.text).toBe('zero one two ee');
  });

  it('skips a step whose text others deleted: a no-op, never an error', () => {
    const { doc, undo, clock } = setup('');
    doc.insert(0, 'keep ');
    clock.t = 1000;
    doc.insert(5, 'gone');
    remote(doc, [5, -4]);
    expect(doc.text).toBe('keep ');
    expect(undo.canUndo).toBe(true);
    // The emptied step is dropped; the one before it is undone.
    expect(undo.undo()).not.toBeNull();
    expect(doc.text).toBe('');
    doc.insert(0, 'x');
    remote(doc, [-1]);
    expect(undo.canUndo).toBe(true);
    expect(undo.undo()).toBeNull();
    expect(doc.text).toBe('');
    expect(undo.canUndo).toBe(false);
  });

  it('restores the selection from before the step on undo and from after it on redo, mapped through remote edits', () => {
    const { doc, undo } = setup('abcdefgh');
    doc.setSelection({ anchor: 2, head: 6 });
    doc.delete(2, 4); // "abgh", the caret mapped to 2
    doc.setSelection({ anchor: 2, head: 2 });
    remote(doc, ['>>', 4]); // ">>abgh"
    expect(doc.selection).toEqual([{ anchor: 4, head: 4 }]);
    undo.undo();
    expect(doc.text).toBe('>>abcdefgh');
    expect(doc.selection).toEqual([{ anchor: 4, head: 8 }]);
    remote(doc, ['!', 10]);
    doc.setSelection(null);
    undo.redo();
    expect(doc.text).toBe('!>>abgh');
    expect(doc.selection).toEqual([{ anchor: 5, head: 5 }]);
  });

  it('leaves the selection alone when none was set', () => {
    const { doc, undo } = setup('abc');
    doc.insert(3, 'd');
    undo.undo();
    expect(doc.selection).toBeNull();
  });

  it('keeps at most maxSteps steps, forgetting the oldest', () => {
    const { doc, undo } = setup('', { groupInterval: 0, maxSteps: 2 });
    for (const ch of 'abc') doc.insert(doc.text.length, ch);
    while (undo.undo() !== null);
    expect(doc.text).toBe('a');
  });

  it('stopCapturing makes the next edit a step of its own, however soon it comes', () => {
    const { doc, undo } = setup('');
    doc.insert(0, 'ab');
    doc.insert(2, 'c'); // same instant: joins the step
    undo.stopCapturing();
    doc.insert(0, 'X');
    undo.undo();
    expect(doc.text).toBe('abc');
    undo.undo();
    expect(doc.text).toBe('');
  });

  it('clear forgets every step; destroy also stops recording', () => {
    const { doc, undo, clock } = setup('');
    doc.insert(0, 'a');
    undo.undo();
    doc.insert(0, 'b');
    clock.t = 1000;
    doc.insert(1, 'c');
    undo.undo();
    undo.clear();
    expect([undo.canUndo, undo.canRedo]).toEqual([false, false]);
    doc.insert(1, 'd');
    undo.destroy();
    expect(undo.canUndo).toBe(false);
    doc.insert(0, 'e');
    remote(doc, [-1, 2]);
    expect([undo.canUndo, undo.canRedo]).toEqual([false, false]);
    expect(doc.text).toBe('bd');
  });

  it('keeps the step when the document refuses the undo, and throws what submit throws', () => {
    const { doc, undo } = setup('');
    doc.insert(0, 'a');
    doc.close();
    expect(() => undo.undo()).toThrow(/closed/);
    expect(undo.canUndo).toBe(true);
  });

  it('forgets its steps, never throws, when a change listener added before it edits the text', () => {
    const { doc } = openedDoc('');
    doc.on('change', (e) => {
      if (e.local && doc.text === 'a') doc.insert(1, 'b');
    });
    const undo = new UndoManager(doc);
    doc.insert(0, 'a');
    expect(doc.text).toBe('ab');
    expect(undo.canUndo).toBe(false);
    doc.insert(2, 'c');
    undo.undo();
    expect(doc.text).toBe('ab');
  });

  it('forgets its steps, never throws, when a change listener added before it answers an undo with an edit', () => {
    const { doc } = openedDoc('');
    doc.on('change', (e) => {
      if (e.local && doc.text === '') doc.insert(0, 'zzz');
    });
    const undo = new UndoManager(doc);
    doc.insert(0, 'qq');
    expect(undo.undo()).toEqual([-2]);
    expect(doc.text).toBe('zzz');
    expect([undo.canUndo, undo.canRedo]).toEqual([false, false]);
    doc.insert(3, '!');
    undo.undo();
    expect(doc.text).toBe('zzz');
  });

  it('never reads the whole text after it is created: not on an edit, a remote edit, an undo or a redo', () => {
    const { doc, undo, clock } = setup('some text');
    const read = vi.spyOn(doc, 'text', 'get');
    doc.insert(0, 'a');
    clock.t = 1000;
    doc.delete(2, 3);
    remote(doc, [-1, 6]);
    undo.undo();
    undo.redo();
    expect(read).not.toHaveBeenCalled();
    read.mockRestore();
    expect(doc.text).toBe('s text');
  });

  it('refuses a negative groupInterval and a maxSteps that is not a positive integer', () => {
    const { doc } = openedDoc('');
    expect(() => new UndoManager(doc, { groupInterval: -1 })).toThrow(RangeError);
    expect(() => new UndoManager(doc, { maxSteps: 0 })).toThrow(RangeError);
    expect(() => new UndoManager(doc, { maxSteps: 1.5 })).toThrow(RangeError);
  });
});

/** Seeds of the law below: 150, or 3,000 with OTTER_LONG=1; OTTER_SEED=n runs one. */
const ONE = process.env['OTTER_SEED'];
const COUNT = process.env['OTTER_LONG'] === '1' ? 3_000 : 150;
const SEEDS = ONE !== undefined && ONE !== '' ? [Number(ONE)] : Array.from({ length: COUNT }, (_, i) => i + 1);

/** Every character typed is unique: user i types from its own block of CJK code points. */
const BLOCK = 0x1000;
const FIRST = 0x4e00;

function ownerOf(ch: string): number {
  return Math.floor((ch.charCodeAt(0) - FIRST) / BLOCK);
}

interface Player {
  readonly client: WorldClient;
  readonly undo: UndoManager;
  readonly index: number;
  typed: number;
}

interface Run {
  readonly seed: number;
  readonly random: Random;
  readonly world: World;
  readonly players: Player[];
  readonly log: string[];
  /** Characters the focal user (player 0) removed from its text at any time. */
  readonly removedByFocal: Set<string>;
  /**
   * The focal user's characters another user's action put back (undoing a delete of them):
   * theirs to undo from then on.
   */
  readonly restoredByOthers: Set<string>;
  clock: number;
}

function fail(run: Run, what: string): never {
  throw new Error(`seed=${run.seed}: ${what}\nlast steps:\n  ${run.log.slice(-40).join('\n  ')}`);
}

/**
 * Runs `action` as `player`, noting what the focal user's actions remove from its text and
 * which of the focal user's characters the others' actions put back.
 */
function act(run: Run, player: Player, what: string, action: () => void): void {
  const before = counts(player.client.doc.text);
  run.log.push(`${player.client.name} ${what}`);
  action();
  const after = counts(player.client.doc.text);
  if (player.index === 0) {
    for (const [ch, n] of before) if ((after.get(ch) ?? 0) < n) run.removedByFocal.add(ch);
  } else {
    for (const [ch, n] of after) if (n > (before.get(ch) ?? 0) && ownerOf(ch) === 0) run.restoredByOthers.add(ch);
  }
}

/** How many times each character occurs in `text` (two users may both put one back). */
function counts(text: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const ch of text) map.set(ch, (map.get(ch) ?? 0) + 1);
  return map;
}

/** A player inserts 1–3 new characters, or (unless `insertOnly`) deletes 1–3. */
function edit(run: Run, player: Player, insertOnly: boolean): void {
  const doc = player.client.doc;
  const length = doc.text.length;
  if (!insertOnly && length > 0 && chance(run.random, 0.35)) {
    const pos = below(run.random, length);
    const n = 1 + below(run.random, Math.min(3, length - pos));
    act(run, player, `deletes ${n} at ${pos}`, () => doc.delete(pos, n));
    return;
  }
  const pos = below(run.random, length + 1);
  let text = '';
  for (let n = 1 + below(run.random, 3); n > 0; n--) {
    text += String.fromCharCode(FIRST + player.index * BLOCK + player.typed++);
  }
  act(run, player, `inserts ${text} at ${pos}`, () => doc.insert(pos, text));
}

async function deliver(run: Run): Promise<void> {
  const busy = run.world.busyLinks();
  if (busy.length === 0) return;
  const link = pick(run.random, busy);
  const n = 1 + below(run.random, 3);
  if (chance(run.random, 0.5)) link.deliverUp(n);
  else link.deliverDown(n);
  await run.world.settle();
}

function converged(run: Run): string {
  const texts = run.players.map((p) => p.client.doc.text);
  if (texts.some((t) => t !== texts[0])) fail(run, `replicas differ: ${JSON.stringify(texts)}`);
  return texts[0] as string;
}

async function schedule(seed: number): Promise<void> {
  const random = seededRandom(seed);
  const world = new World('undo');
  const run: Run = { seed, random, world, players: [], log: [], removedByFocal: new Set(), restoredByOthers: new Set(), clock: 0 };
  const count = 2 + below(random, 2);
  for (let i = 0; i < count; i++) {
    const client = world.addClient(`u${i}`);
    const undo = new UndoManager(client.doc, { groupInterval: 10, now: () => run.clock });
    run.players.push({ client, undo, index: i, typed: 0 });
  }
  await world.quiesce();
  try {
    // Anyone edits, undoes and redoes, with frames delivered late and time passing.
    for (let i = 0; i < 80; i++) {
      const player = pick(random, run.players);
      const action = weighted(random, { edit: 30, undo: 12, redo: 6, deliver: 40, tick: 12 });
      if (action === 'edit') edit(run, player, false);
      else if (action === 'undo') act(run, player, 'undoes', () => player.undo.undo());
      else if (action === 'redo') act(run, player, 'redoes', () => player.undo.redo());
      else if (action === 'deliver') await deliver(run);
      else run.clock += below(random, 20);
    }
    await world.quiesce();
    const middle = converged(run);
    // Others' characters that must survive: those in the text now, and those typed from now on.
    const kept = new Set([...middle].filter((ch) => ownerOf(ch) !== 0));
    // The focal user undoes every step while the others go on typing.
    const focal = run.players[0] as Player;
    while (focal.undo.canUndo) {
      act(run, focal, 'undoes', () => focal.undo.undo());
      for (let n = below(random, 4); n > 0; n--) {
        if (chance(random, 0.3)) {
          const other = pick(random, run.players.slice(1));
          edit(run, other, true);
          for (const ch of other.client.doc.text) if (ownerOf(ch) !== 0) kept.add(ch);
        } else await deliver(run);
      }
    }
    await world.quiesce();
    const end = converged(run);
    const left = [...end].filter((ch) => ownerOf(ch) === 0 && !run.restoredByOthers.has(ch));
    if (left.length > 0) fail(run, `the focal user's ${JSON.stringify(left.join(''))} survived undoing all its steps in ${JSON.stringify(end)}`);
    const present = new Set(end);
    const lost = [...kept].filter((ch) => !present.has(ch));
    if (lost.length > 0) fail(run, `others' ${JSON.stringify(lost.join(''))} was lost from ${JSON.stringify(end)}`);
    // Anything else is text the focal user had deleted and put back, or the focal user's text
    // another user put back.
    const extra = [...end].filter((ch) => !kept.has(ch) && !run.removedByFocal.has(ch) && !run.restoredByOthers.has(ch));
    if (extra.length > 0) fail(run, `${JSON.stringify(extra.join(''))} came back in ${JSON.stringify(end)} without the focal user having deleted it`);
  } finally {
    world.close();
  }
}

describe('UndoManager across replicas (loopback world)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('undoing all of a user\'s steps removes exactly that user\'s surviving contributions, and all replicas converge', async () => {
    for (const seed of SEEDS) await schedule(seed);
  }, 600_000);
});
