/**
 * The sync state machine with large pending ops (held in trees, see pending.ts) against the
 * plain state machine it replaced, which composes and transforms arrays: after every event of a
 * long random session — scattered local edits, remote ops, acks, a budget that cuts ops — both
 * hold the same pending ops and return the same ops to apply and to send, op for op.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PendingOp } from '../../src/client/pending.js';
import { type OpBudget, UNLIMITED, fits, splitOp } from '../../src/client/split.js';
import { type SyncState, ack, applyLocal, applyRemote, synchronized } from '../../src/client/sync.js';
import { type Component, apply, compose, isNoop, transform } from '../../src/ot/index.js';
import { patchOn, patchSpec } from './ops.js';

const LONG = process.env.OTTER_LONG === '1';

/** The plain model: the ot.js client with a budget, on arrays (sync.ts before trees). */
interface Plain {
  outstanding: Component[] | undefined;
  buffer: Component[][];
}

function plainQueue(ops: Component[][], budget: OpBudget): { plain: Plain; send?: Component[] } {
  const left = ops.filter((op) => !isNoop(op));
  const first = left[0];
  if (first === undefined) return { plain: { outstanding: undefined, buffer: [] } };
  const [outstanding, ...buffer] = fits(first, budget) ? left : [...splitOp(first, budget), ...left.slice(1)];
  return { plain: { outstanding, buffer }, send: outstanding };
}

function plainLocal(p: Plain, op: Component[], budget: OpBudget): { plain: Plain; send?: Component[] } {
  if (p.outstanding === undefined) return plainQueue(splitOp(op, budget), budget);
  const last = p.buffer[p.buffer.length - 1];
  if (last === undefined) return { plain: { outstanding: p.outstanding, buffer: splitOp(op, budget).filter((b) => !isNoop(b)) } };
  const composed = compose(last, op);
  const tail = isNoop(composed) ? [] : splitOp(composed, budget);
  return { plain: { outstanding: p.outstanding, buffer: [...p.buffer.slice(0, -1), ...tail] } };
}

function plainRemote(p: Plain, op: Component[]): { plain: Plain; apply: Component[] } {
  if (p.outstanding === undefined) return { plain: p, apply: op };
  const outstanding = transform(p.outstanding, op, 'right');
  let past = transform(op, p.outstanding, 'left');
  const buffer: Component[][] = [];
  for (const b of p.buffer) {
    const rebased = transform(b, past, 'right');
    past = transform(past, b, 'left');
    if (!isNoop(rebased)) buffer.push(rebased);
  }
  return { plain: { outstanding, buffer }, apply: past };
}

function pendingOps(state: SyncState): Component[][] {
  if (state.kind === 'synchronized') return [];
  return state.kind === 'awaiting-confirm' ? [state.outstanding.op] : [state.outstanding.op, ...state.buffer.map((b) => b.op)];
}

type Event =
  | { readonly kind: 'local'; readonly at: number; readonly del: number; readonly ins: string }
  | { readonly kind: 'remote'; readonly at: number; readonly del: number; readonly ins: string; readonly wide: boolean }
  | { readonly kind: 'ack' };

/** A patch anywhere in a text of thousands of units (patchSpec's positions stay near the start). */
const scattered = patchSpec.chain((p) => fc.nat(1 << 30).map((at) => ({ ...p, at })));

const event: fc.Arbitrary<Event> = fc.oneof(
  { weight: 300, arbitrary: scattered.map((p) => ({ kind: 'local' as const, ...p })) },
  { weight: 60, arbitrary: fc.record({ p: scattered, wide: fc.boolean() }).map(({ p, wide }) => ({ kind: 'remote' as const, wide, ...p })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'ack' as const }) },
);

/** A position anywhere in the text (patchOn takes it modulo the text's length). */
function scatter(at: number, length: number): number {
  return at % (length + 1);
}

describe('sync with large pending ops', () => {
  it('law: over long sessions of scattered edits, every state and every op to apply or send equals the plain state machine, op for op (with and without a budget that cuts ops)', () => {
    const budgets: OpBudget[] = [UNLIMITED, { maxLength: 900, maxBytes: 8000 }, { maxLength: 300, maxBytes: 100_000 }];
    for (const budget of budgets) {
      let reached = 0;
      const numRuns = LONG ? 100 : 8;
      fc.assert(
      fc.property(
        fc.array(event, { minLength: 400, maxLength: 900 }),
        (events) => {
          let confirmed = 'abcdefghij'.repeat(1000);
          let local = confirmed;
          let state: SyncState = synchronized;
          let plain: Plain = { outstanding: undefined, buffer: [] };
          let large = 0;
          for (const e of events) {
            if (e.kind === 'local') {
              const op = patchOn(local.length, { at: scatter(e.at, local.length), del: e.del, ins: e.ins });
              const r = applyLocal(state, op, budget);
              const q = plainLocal(plain, op, budget);
              expect(r.send).toEqual(q.send);
              state = r.state;
              plain = q.plain;
              local = apply(local, op);
            } else if (e.kind === 'remote') {
              const del = e.wide ? e.del * 10 : e.del;
              const op = patchOn(confirmed.length, { at: scatter(e.at, confirmed.length), del, ins: e.ins });
              const r = applyRemote(state, op);
              const q = plainRemote(plain, op);
              expect(r.apply).toEqual(q.apply);
              state = r.state;
              plain = q.plain;
              confirmed = apply(confirmed, op);
              local = apply(local, r.apply);
            } else if (state.kind !== 'synchronized') {
              confirmed = apply(confirmed, state.outstanding.op);
              const r = ack(state, budget);
              const q = plainQueue(plain.buffer, budget);
              expect(r.send).toEqual(q.send);
              state = r.state;
              plain = q.plain;
            }
            const ops = pendingOps(state);
            // (JSON: vitest's deep equality is too slow for thousands of components per step)
            expect(JSON.stringify(ops)).toBe(JSON.stringify(plain.outstanding === undefined ? [] : [plain.outstanding, ...plain.buffer]));
            expect(ops.reduce(apply, confirmed)).toBe(local);
            for (const op of ops) large = Math.max(large, op.length);
          }
          if (large > 256) reached += 1;
        },
      ),
      { numRuns },
    );
      // The sessions must reach the tree path (over 256 components), or this law says little.
      if (budget === UNLIMITED) expect(reached).toBeGreaterThan(0);
    }
  });

  it('law: a PendingOp says what the plain functions say of its op — fits, isNoop — after every change', () => {
    fc.assert(
      fc.property(fc.array(scattered, { minLength: 200, maxLength: 500 }), fc.nat(400), (patches, limit) => {
        const budget: OpBudget = { maxLength: 300 + limit * 4, maxBytes: 6000 + limit * 40 };
        let text = 'x'.repeat(3000);
        const pending = new PendingOp([text.length]);
        let op: Component[] = [text.length];
        for (const p of patches) {
          const edit = patchOn(text.length, { at: scatter(p.at, text.length), del: p.del, ins: p.ins });
          pending.composeWith(edit);
          op = compose(op, edit);
          text = apply(text, edit);
          expect(pending.fits(budget)).toBe(fits(op, budget));
          expect(pending.isNoop).toBe(isNoop(op));
        }
        expect(pending.op).toEqual(op);
      }),
      { numRuns: LONG ? 100 : 10 },
    );
  });
});
