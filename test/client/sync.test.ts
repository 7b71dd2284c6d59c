import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type SyncState,
  SyncStateError,
  ack,
  applyLocal,
  applyRemote,
  pendingOp,
  rebaseOnSnapshot,
  rejectOutstanding,
  synchronized,
  transformLocalSelection,
} from '../../src/client/sync.js';
import { type Component, apply, transform } from '../../src/ot/index.js';
import { type EditSpec, editOn, editSpec } from './ops.js';

/** The local text the state implies on top of the confirmed text C. */
function implied(confirmed: string, state: SyncState): string {
  const pending = pendingOp(state);
  return pending === undefined ? confirmed : apply(confirmed, pending);
}

type Command =
  | { readonly kind: 'local'; readonly edit: EditSpec }
  | { readonly kind: 'remote'; readonly edit: EditSpec }
  | { readonly kind: 'up' }
  | { readonly kind: 'down' };

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant('local' as const), edit: editSpec }),
  fc.record({ kind: fc.constant('remote' as const), edit: editSpec }),
  fc.record({ kind: fc.constant('up' as const) }),
  fc.record({ kind: fc.constant('down' as const) }),
);

type Down = { readonly kind: 'remote'; readonly op: Component[]; readonly v: number } | { readonly kind: 'ack'; readonly v: number };

/**
 * One client and a server that rebases late submissions over its history one op at a time
 * with side 'right' (as Otter's sequencer does), joined by two FIFO queues. Another client's
 * edits are committed straight on the server.
 */
class Simulation {
  server = '';
  history: Component[][] = [];
  state: SyncState = synchronized;
  text = '';
  confirmed = '';
  version = 0;
  up: Array<{ op: Component[]; v: number }> = [];
  down: Down[] = [];

  constructor(initial: string) {
    this.server = this.text = this.confirmed = initial;
  }

  run(c: Command): void {
    switch (c.kind) {
      case 'local': {
        const op = editOn(this.text, c.edit);
        this.text = apply(this.text, op);
        const r = applyLocal(this.state, op);
        this.state = r.state;
        if (r.send !== undefined) this.up.push({ op: r.send, v: this.version });
        break;
      }
      case 'remote': {
        const op = editOn(this.server, c.edit);
        this.commit(op);
        this.down.push({ kind: 'remote', op, v: this.history.length });
        break;
      }
      case 'up': {
        const msg = this.up.shift();
        if (msg === undefined) break;
        let op = msg.op;
        for (const past of this.history.slice(msg.v)) op = transform(op, past, 'right');
        this.commit(op);
        this.down.push({ kind: 'ack', v: this.history.length });
        break;
      }
      case 'down': {
        const msg = this.down.shift();
        if (msg === undefined) break;
        if (msg.kind === 'remote') {
          const r = applyRemote(this.state, msg.op);
          this.text = apply(this.text, r.apply);
          this.confirmed = apply(this.confirmed, msg.op);
          this.state = r.state;
        } else {
          if (this.state.kind === 'synchronized') throw new Error('ack while synchronized');
          this.confirmed = apply(this.confirmed, this.state.outstanding);
          const r = ack(this.state);
          this.state = r.state;
          if (r.send !== undefined) this.up.push({ op: r.send, v: msg.v });
        }
        this.version = msg.v;
        break;
      }
    }
  }

  private commit(op: Component[]): void {
    this.server = apply(this.server, op);
    this.history.push(op);
  }

  drain(): void {
    while (this.up.length > 0 || this.down.length > 0) {
      this.run({ kind: 'up' });
      this.run({ kind: 'down' });
    }
  }
}

describe('sync state machine', () => {
  it('convergence: for any interleaving of local edits, remote edits and deliveries, once all messages are delivered the client equals the server and is synchronized', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 8 }), fc.array(command, { maxLength: 40 }), (initial, commands) => {
        const sim = new Simulation(initial);
        for (const c of commands) {
          sim.run(c);
          // Invariant: local text = apply(apply(C, outstanding), buffer) after every step.
          expect(implied(sim.confirmed, sim.state)).toBe(sim.text);
        }
        sim.drain();
        expect(sim.text).toBe(sim.server);
        expect(sim.confirmed).toBe(sim.server);
        expect(sim.version).toBe(sim.history.length);
        expect(sim.state).toEqual(synchronized);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps at most one op in flight: local edits while awaiting are composed into the buffer', () => {
    let r = applyLocal(synchronized, ['a']);
    expect(r.send).toEqual(['a']);
    r = applyLocal(r.state, [1, 'b']);
    expect(r.send).toBeUndefined();
    r = applyLocal(r.state, [2, 'c']);
    expect(r.send).toBeUndefined();
    expect(r.state).toEqual({ kind: 'awaiting-with-buffer', outstanding: ['a'], buffer: [1, 'bc'] });
    const a = ack(r.state);
    expect(a).toEqual({ state: { kind: 'awaiting-confirm', outstanding: [1, 'bc'] }, send: [1, 'bc'] });
    expect(ack(a.state)).toEqual({ state: synchronized });
  });

  it('puts the remote op first where both insert at one position', () => {
    const { state } = applyLocal(synchronized, [1, 'L', 1]); // "ab" → "aLb"
    const r = applyRemote(state, [1, 'R', 1]); // "ab" → "aRb" on the server
    expect(apply('aLb', r.apply)).toBe('aRLb');
    expect(r.state).toEqual({ kind: 'awaiting-confirm', outstanding: [2, 'L', 1] });
  });

  it('throws on impossible events: ack, reject or a landed rebase while synchronized', () => {
    expect(() => ack(synchronized)).toThrow(SyncStateError);
    expect(() => ack(synchronized)).toThrow('ack cannot happen in state synchronized');
    expect(() => rejectOutstanding(synchronized, 'x')).toThrow(SyncStateError);
    expect(() => rebaseOnSnapshot(synchronized, 'x', true, 'y')).toThrow(SyncStateError);
  });

  it('moves a local caret past remote text inserted at it and before it, not after it', () => {
    const sel = [{ anchor: 1, head: 3 }];
    expect(transformLocalSelection(sel, [1, 'XY', 3])).toEqual([{ anchor: 3, head: 5 }]);
    expect(transformLocalSelection(sel, [3, 'XY', 1])).toEqual([{ anchor: 1, head: 5 }]);
    expect(transformLocalSelection(sel, [4, 'XY'])).toEqual(sel);
  });
});

/** A state with pending local edits on `confirmed`, built from edit specs. */
function pendingOn(confirmed: string, edits: readonly EditSpec[]): { state: SyncState; text: string } {
  let state: SyncState = synchronized;
  let text = confirmed;
  for (const e of edits) {
    const op = editOn(text, e);
    text = apply(text, op);
    state = applyLocal(state, op).state;
  }
  return { state, text };
}

describe('rebaseOnSnapshot', () => {
  it('law: the returned change takes the local text to the snapshot with the rebased pending op applied', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 8 }),
        fc.array(editSpec, { maxLength: 3 }),
        fc.boolean(),
        fc.array(editSpec, { maxLength: 2 }),
        (confirmed, local, landedWish, missed) => {
          const { state, text } = pendingOn(confirmed, local);
          const outstanding = state.kind === 'synchronized' ? undefined : state.outstanding;
          const landed = landedWish && outstanding !== undefined;
          // The snapshot: the server text after our op, if landed, and the missed history.
          let snapshot = landed ? apply(confirmed, outstanding) : confirmed;
          for (const e of missed) snapshot = apply(snapshot, editOn(snapshot, e));
          const r = rebaseOnSnapshot(state, confirmed, landed, snapshot);
          const expected = r.send === undefined ? snapshot : apply(snapshot, r.send);
          expect(apply(text, r.apply)).toBe(expected);
          if (r.send === undefined) expect(r.state).toEqual(synchronized);
          else expect(r.state).toEqual({ kind: 'awaiting-confirm', outstanding: r.send });
        },
      ),
      { numRuns: 500 },
    );
  });

  it('does not apply a landed op twice', () => {
    // "ab", our op inserted "X" (landed), then we typed "Y" (buffer); the server has "aXb".
    let state: SyncState = applyLocal(synchronized, [1, 'X', 1]).state;
    state = applyLocal(state, [3, 'Y']).state;
    const r = rebaseOnSnapshot(state, 'ab', true, 'aXb');
    expect(apply('aXbY', r.apply)).toBe('aXbY');
    expect(r.send).toEqual([3, 'Y']);
  });

  it('keeps an op that did not land and puts it after the missed text at a tie', () => {
    const state = applyLocal(synchronized, [1, 'X', 1]).state; // "ab" → "aXb"
    const r = rebaseOnSnapshot(state, 'ab', false, 'aZb');
    expect(r.send).toEqual([2, 'X', 1]);
    expect(apply('aXb', r.apply)).toBe('aZXb');
  });
});

describe('rejectOutstanding', () => {
  it('law: undoes the outstanding op and keeps the buffer, rebased onto the confirmed text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 8 }), fc.array(editSpec, { minLength: 1, maxLength: 3 }), (confirmed, local) => {
        const { state, text } = pendingOn(confirmed, local);
        if (state.kind === 'synchronized') return;
        const r = rejectOutstanding(state, confirmed);
        expect(apply(text, r.apply)).toBe(r.send === undefined ? confirmed : apply(confirmed, r.send));
      }),
      { numRuns: 300 },
    );
  });

  it('sends the buffer as the new outstanding op', () => {
    let state: SyncState = applyLocal(synchronized, ['big']).state;
    state = applyLocal(state, [3, '!']).state;
    const r = rejectOutstanding(state, '');
    expect(r.send).toEqual(['!']);
    expect(apply('big!', r.apply)).toBe('!');
  });
});
