/**
 * DocumentState.rollback: a batch the store refused is taken back in memory, so the state can
 * catch up from the store and decide the batch again without loading the whole document.
 * Law: submissions applied past `committed`, then rolled back, leave the text, head, checksum
 * and recent ops exactly as they were, and each client's mark as it was (as the store still
 * holds it); a client that had none is forgotten, to be read from the store again.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkOperation } from '../../src/ot/index.js';
import type { Component } from '../../src/ot/index.js';
import { DocumentState, type LiveMark, type Submission, toClientMark } from '../../src/server/document-state.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { editOn } from '../ot/arbitraries.js';

const LIMITS = { maxDocLength: 1 << 20, maxOpLength: 1 << 16 };

/** A submission of `op` by `clientId` as its `seq`-th op, on version `baseVersion`. */
function submission(clientId: string, seq: number, baseVersion: number, op: Component[]): Submission {
  return { docId: 'd', clientId, seq, baseVersion, op, lengths: checkOperation(op), size: op.length };
}

/** A state holding `text` at version 1, committed, with client "w"'s mark cached. */
async function stateWith(text: string): Promise<DocumentState> {
  const state = new DocumentState('d', await new MemoryStore().load('d'));
  state.cacheMarks([]);
  if (text.length > 0) {
    state.submit(submission('w', 1, 0, [text]), LIMITS, []);
    state.takeChangedMarks();
    state.committed = state.head;
  }
  return state;
}

describe('DocumentState.rollback', () => {
  it('takes back two submissions: text, head, checksum and recent ops as before, their clients\' marks forgotten', async () => {
    const state = await stateWith('hello world');
    const before = { text: state.rope.toString(), head: state.head, checksum: state.checksum, recent: state.recent.length };
    state.submit(submission('a', 1, 1, [5, -6]), LIMITS, []);
    state.submit(submission('b', 1, 1, ['Oh, ', 11]), LIMITS, []);
    state.takeChangedMarks();
    expect(state.rope.toString()).toBe('Oh, hello');
    expect(state.rollback()).toBe(true);
    expect({ text: state.rope.toString(), head: state.head, checksum: state.checksum, recent: state.recent.length }).toEqual(before);
    expect(state.uncachedMarks([{ clientId: 'a' }, { clientId: 'b' }, { clientId: 'w' }])).toEqual(['a', 'b']);
    // Decided again, the same submissions apply as the next versions.
    state.cacheMarks([]);
    const again = state.submit(submission('a', 1, 1, [5, -6]), LIMITS, []);
    expect(again).toMatchObject({ version: 2, seq: 1 });
    expect(state.rope.toString()).toBe('hello');
  });

  it('a client that had a mark gets it back as it was, even after several ops in the batch: no store read, its next seq taken', async () => {
    const state = await stateWith('abc');
    const before = toClientMark(state.markOf('w') as LiveMark);
    state.submit(submission('w', 2, 1, [3, 'd']), LIMITS, []);
    state.submit(submission('w', 3, 2, [4, 'e']), LIMITS, []);
    state.takeChangedMarks();
    expect(state.rollback()).toBe(true);
    expect(state.uncachedMarks([{ clientId: 'w' }])).toEqual([]);
    expect(toClientMark(state.markOf('w') as LiveMark)).toEqual(before);
    // Its resend of seq 1 is still the op applied at version 1; seq 2 is decided anew.
    expect(state.submit(submission('w', 1, 0, ['abc']), LIMITS, [])).toMatchObject({ duplicate: true, version: 1 });
    expect(state.submit(submission('w', 2, 1, [3, 'd']), LIMITS, [])).toMatchObject({ version: 2, seq: 2 });
    expect(state.rope.toString()).toBe('abcd');
  });

  it('with nothing past committed, does nothing', async () => {
    const state = await stateWith('abc');
    expect(state.rollback()).toBe(true);
    expect([state.rope.toString(), state.head]).toEqual(['abc', 1]);
  });

  it("refuses when a restore's merge is among the ops (it changed the recoveries too), changing nothing", async () => {
    const state = await stateWith('abc');
    state.submit(submission('a', 1, 1, [3, 'd']), LIMITS, []);
    state.applyMerge([4, 'e'], 'r', undefined);
    expect(state.rollback()).toBe(false);
    expect([state.rope.toString(), state.head]).toEqual(['abcde', 3]);
  });

  it("law: random submissions past committed, rolled back, leave text, head, checksum and every client's mark as they were", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 20 }).chain((text) => fc.tuple(fc.constant(text), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 1 << 30 }))),
        async ([base, count, seed]) => {
          const state = await stateWith(base.replace(/[\ud800-\udfff]/g, 'x'));
          const clients = ['w', 'c0', 'c1'];
          const marks = (): unknown[] => clients.map((c) => (state.markOf(c) === undefined ? undefined : toClientMark(state.markOf(c) as LiveMark)));
          const before = { text: state.rope.toString(), head: state.head, checksum: state.checksum, marks: marks() };
          let text = before.text;
          for (let i = 0; i < count; i++) {
            const edit = fc.sample(editOn(text), { numRuns: 1, seed: seed + i })[0];
            if (edit === undefined) break;
            const client = clients[(seed + i) % clients.length] as string;
            state.submit(submission(client, (state.markOf(client)?.seq ?? 0) + 1, state.head, edit.op), LIMITS, []);
            text = edit.expected;
          }
          state.takeChangedMarks();
          expect(state.rope.toString()).toBe(text);
          expect(state.rollback()).toBe(true);
          expect({ text: state.rope.toString(), head: state.head, checksum: state.checksum, marks: marks() }).toEqual(before);
        },
      ),
      { numRuns: 200 },
    );
  });
});
