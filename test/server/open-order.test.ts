/**
 * The ordering law of opens: the sequencer answers an open of a client only after every
 * submit it received before that open — from any connection of that client — has been
 * decided (committed or refused), in every path: queued, batching, committing, failed and
 * retried. So `opened.seq` accounts for every submit the sequencer received before the open
 * (one still waiting in a session's request gate is not yet received; its resend is a
 * duplicate), and a client never drops an edit on a wrong premise.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, OtterError } from '../../src/protocol/errors.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Sequencer } from '../../src/server/sequencer.js';
import { VersionConflictError } from '../../src/server/store.js';
import { ControlledStore, deferred } from './helpers.js';
import { tick, within } from '../support/wait.js';
import { fromPatch } from '../../src/ot/index.js';

const DOC = 'doc';
const LONG = process.env['OTTER_LONG'] === '1';

const sequencers: Sequencer[] = [];
afterEach(async () => {
  for (const s of sequencers.splice(0)) await within(s.close(), 5000, 'Sequencer.close');
});

function sequencer(store: ControlledStore): Sequencer {
  const s = new Sequencer(store, { idleTimeout: 0 });
  sequencers.push(s);
  return s;
}

describe('an open is answered after every earlier submit is decided', () => {
  it('regression: submit B, submit C, open while B commits: opened.seq counts C', async () => {
    const store = new ControlledStore(new MemoryStore());
    const s = sequencer(store);
    await s.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['A'] });
    const gate = deferred();
    store.appendGate = { docId: DOC, gate: gate.promise };
    const b = s.submit({ docId: DOC, clientId: 'a', seq: 2, baseVersion: 1, op: [1, 'B'] });
    // Let B's batch reach the store and wait there.
    await tick();
    const c = s.submit({ docId: DOC, clientId: 'a', seq: 3, baseVersion: 2, op: [2, 'C'] });
    const opened = s.open(DOC, 'a', 1);
    const order: string[] = [];
    void b.then(() => order.push('B'));
    void c.then(() => order.push('C'));
    void opened.then(() => order.push('open'));
    gate.resolve();
    const result = await opened;
    expect(order).toEqual(['B', 'C', 'open']);
    expect(result.seq).toBe(3);
    expect(result.version).toBe(3);
  });

  it('a refused submit is decided before the open that followed it', async () => {
    const store = new ControlledStore(new MemoryStore());
    const s = sequencer(store);
    const gate = deferred();
    store.appendGate = { docId: DOC, gate: gate.promise };
    store.appendFailures.push({ error: new Error('disk full') });
    const a = s.submit({ docId: DOC, clientId: 'a', seq: 1, baseVersion: 0, op: ['A'] });
    await tick();
    const b = s.submit({ docId: DOC, clientId: 'a', seq: 2, baseVersion: 0, op: ['B'] });
    const opened = s.open(DOC, 'a');
    const settled: string[] = [];
    void a.then(
      () => settled.push('a ok'),
      () => settled.push('a refused'),
    );
    void b.then(
      () => settled.push('b ok'),
      (e: unknown) => settled.push(`b ${e instanceof OtterError ? e.code : 'error'}`),
    );
    void opened.then(() => settled.push('open'));
    gate.resolve();
    const result = await opened;
    expect(settled.at(-1)).toBe('open');
    expect(settled).toContain('a refused');
    expect(result.seq).toBe(0);
  });

  it('law: under slow, failing and conflicting appends, opened.seq equals the last seq committed before the open was issued', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant('submit' as const), fail: fc.constantFrom('none', 'error', 'conflict') }),
            fc.record({ kind: fc.constant('open' as const) }),
            fc.record({ kind: fc.constant('wait' as const), turns: fc.integer({ min: 1, max: 4 }) }),
          ),
          { minLength: 1, maxLength: 30 },
        ),
        async (steps) => {
          const inner = new MemoryStore();
          const store = new ControlledStore(inner);
          const s = new Sequencer(store, { idleTimeout: 0, conflictRetries: 1 });
          // Each append waits a few turns, as a slow disk would.
          const slow = store.append.bind(store);
          store.append = async (...args) => {
            for (let i = 0; i < 3; i++) await tick();
            return slow(...args);
          };
          let seq = 0;
          /** Per submit: its seq, whether it was decided and committed, and its settled promise. */
          const submits: Array<{ seq: number; decided: boolean; committed: boolean; done: Promise<void> }> = [];
          const checks: Array<Promise<void>> = [];
          for (const step of steps) {
            if (step.kind === 'wait') {
              for (let i = 0; i < step.turns; i++) await tick();
              continue;
            }
            if (step.kind === 'submit') {
              if (step.fail === 'error') store.appendFailures.push({ error: new Error('disk error') });
              if (step.fail === 'conflict') {
                store.appendFailures.push({ error: new VersionConflictError(DOC, 0, 0) });
                store.appendFailures.push({ error: new VersionConflictError(DOC, 0, 0) });
              }
              seq += 1;
              const mine = seq;
              // Every submit is made at version 0 by a client that never saw an ack: the
              // sequencer rebases it; a refused one leaves a gap the next seqs run into.
              const entry = { seq: mine, decided: false, committed: false, done: Promise.resolve() };
              entry.done = s
                .submit({ docId: DOC, clientId: 'k', seq: mine, baseVersion: 0, op: fromPatch(0, 0, 0, `${mine};`) })
                .then(
                  () => {
                    entry.decided = true;
                    entry.committed = true;
                  },
                  (e: unknown) => {
                    if (!(e instanceof OtterError)) throw e;
                    expect([ErrorCode.StorageFailed, ErrorCode.SeqGap]).toContain(e.code);
                    entry.decided = true;
                  },
                );
              submits.push(entry);
              continue;
            }
            const before = submits.slice();
            const opening = s.open(DOC, 'k');
            let answered = false;
            checks.push(
              opening.then((result) => {
                answered = true;
                // Every earlier submit was answered before the open was.
                expect(before.every((b) => b.decided)).toBe(true);
                const committed = before.filter((b) => b.committed).map((b) => b.seq);
                expect(result.seq).toBe(Math.max(0, ...committed));
              }),
            );
            expect(answered).toBe(false);
          }
          await Promise.all(checks);
          await Promise.all(submits.map((x) => x.done));
          await s.close();
        },
      ),
      { numRuns: LONG ? 1000 : 150 },
    );
  });
});
