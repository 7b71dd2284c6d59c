import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type OpBudget, UNLIMITED, fits } from '../../src/client/split.js';
import {
  type SyncState,
  SyncStateError,
  ack,
  applyLocal,
  applyRemote,
  fitOutstanding,
  pendingOp,
  rebaseOnSnapshot,
  rejectOutstanding,
  synchronized,
  transformLocalSelection,
} from '../../src/client/sync.js';
import { type Component, InvalidOperationError, apply, fromPatch, isNoop, transform } from '../../src/ot/index.js';
import { type EditSpec, editOn, editSpec } from './ops.js';

/** The local text the state implies on top of the confirmed text C. */
function implied(confirmed: string, state: SyncState): string {
  const pending = pendingOp(state);
  return pending === undefined ? confirmed : apply(confirmed, pending);
}

/** The pending ops of a state, oldest first, as plain ops. */
function pendingOps(state: SyncState): Component[][] {
  switch (state.kind) {
    case 'synchronized':
      return [];
    case 'awaiting-confirm':
      return [state.outstanding.op];
    case 'awaiting-with-buffer':
      return [state.outstanding.op, ...state.buffer.map((b) => b.op)];
  }
}

/** The state with its pending ops as plain ops, for comparing with a literal. */
function plain(state: SyncState): object {
  switch (state.kind) {
    case 'synchronized':
      return state;
    case 'awaiting-confirm':
      return { kind: state.kind, outstanding: state.outstanding.op };
    case 'awaiting-with-buffer':
      return { kind: state.kind, outstanding: state.outstanding.op, buffer: state.buffer.map((b) => b.op) };
  }
}

/** The state's own invariants: the buffer is never empty and holds no no-op. */
function checkShape(state: SyncState): void {
  if (state.kind !== 'awaiting-with-buffer') return;
  expect(state.buffer.length).toBeGreaterThan(0);
  for (const op of state.buffer) expect(isNoop(op.op)).toBe(false);
}

/** Small enough that most edits of the generators are cut: 6 components + units, 120 bytes. */
const TINY: OpBudget = { maxLength: 6, maxBytes: 120 };

type Command =
  | { readonly kind: 'local'; readonly edit: EditSpec }
  | { readonly kind: 'paste'; readonly at: number; readonly text: string }
  | { readonly kind: 'remote'; readonly edit: EditSpec }
  | { readonly kind: 'up' }
  | { readonly kind: 'down' };

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant('local' as const), edit: editSpec }),
  fc.record({
    kind: fc.constant('paste' as const),
    at: fc.nat(1000),
    text: fc.string({ unit: fc.constantFrom('a', '"', '\n', 'é', '中', '😀'), minLength: 1, maxLength: 20 }),
  }),
  fc.record({ kind: fc.constant('remote' as const), edit: editSpec }),
  fc.record({ kind: fc.constant('up' as const) }),
  fc.record({ kind: fc.constant('down' as const) }),
);

/** Whether `op` applies to `text` (edit specs know nothing of surrogate pairs pastes insert). */
function fitsText(text: string, op: Component[]): boolean {
  try {
    apply(text, op);
    return true;
  } catch (e) {
    if (e instanceof InvalidOperationError) return false;
    throw e;
  }
}

/** A position in `text` at or before `at` (modulo its length) that does not split a surrogate pair. */
function boundary(text: string, at: number): number {
  let pos = at % (text.length + 1);
  const c = text.charCodeAt(pos);
  if (pos > 0 && c >= 0xdc00 && c <= 0xdfff) pos -= 1;
  return pos;
}

type Down = { readonly kind: 'remote'; readonly op: Component[]; readonly v: number } | { readonly kind: 'ack'; readonly v: number };

/**
 * One client and a server that rebases late submissions over its history one op at a time
 * with side 'right' (as Otter's sequencer does), joined by two FIFO queues. Another client's
 * edits are committed straight on the server.
 */
class Simulation {
  /** Every op the client sent, to check each against the budget. */
  sent: Component[][] = [];
  server = '';
  history: Component[][] = [];
  state: SyncState = synchronized;
  text = '';
  confirmed = '';
  version = 0;
  up: Array<{ op: Component[]; v: number }> = [];
  down: Down[] = [];

  constructor(
    initial: string,
    readonly budget: OpBudget = UNLIMITED,
  ) {
    this.server = this.text = this.confirmed = initial;
  }

  private send(op: Component[], v: number): void {
    this.sent.push(op);
    this.up.push({ op, v });
  }

  private local(op: Component[]): void {
    this.text = apply(this.text, op);
    const r = applyLocal(this.state, op, this.budget);
    this.state = r.state;
    if (r.send !== undefined) this.send(r.send, this.version);
  }

  run(c: Command): void {
    switch (c.kind) {
      case 'local': {
        const op = editOn(this.text, c.edit);
        if (fitsText(this.text, op)) this.local(op);
        break;
      }
      case 'paste':
        this.local(fromPatch(this.text.length, boundary(this.text, c.at), 0, c.text));
        break;
      case 'remote': {
        const op = editOn(this.server, c.edit);
        if (!fitsText(this.server, op)) break;
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
          this.confirmed = apply(this.confirmed, this.state.outstanding.op);
          const r = ack(this.state, this.budget);
          this.state = r.state;
          if (r.send !== undefined) this.send(r.send, msg.v);
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

  it('convergence under a tiny budget: edits are cut and queued, every op sent fits the budget, and the client still equals the server', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 8 }), fc.array(command, { maxLength: 40 }), (initial, commands) => {
        const sim = new Simulation(initial, TINY);
        for (const c of commands) {
          sim.run(c);
          // Invariant: local text = buffer.reduce(apply, apply(C, outstanding)).
          expect(pendingOps(sim.state).reduce(apply, sim.confirmed)).toBe(sim.text);
          checkShape(sim.state);
        }
        sim.drain();
        expect(sim.text).toBe(sim.server);
        expect(sim.state).toEqual(synchronized);
        for (const op of sim.sent) expect(fits(op, TINY), JSON.stringify(op)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('composes a new edit into the last buffered op while that fits the budget, and queues a new op when it would not', () => {
    const budget: OpBudget = { maxLength: 8, maxBytes: 1000 };
    let r = applyLocal(synchronized, ['ab'], budget);
    expect({ ...r, state: plain(r.state) }).toEqual({ state: { kind: 'awaiting-confirm', outstanding: ['ab'] }, send: ['ab'] });
    r = applyLocal(r.state, [2, 'c'], budget); // "abc"
    r = applyLocal(r.state, [3, 'd'], budget); // composed: [2, "cd"], length 2 + 2 = 4
    expect(plain(r.state)).toEqual({ kind: 'awaiting-with-buffer', outstanding: ['ab'], buffer: [[2, 'cd']] });
    r = applyLocal(r.state, [4, 'efgh'], budget); // [2, "cdefgh"] has length 8: still fits
    expect(plain(r.state)).toMatchObject({ buffer: [[2, 'cdefgh']] });
    r = applyLocal(r.state, ['X', 8], budget); // the composition [ "X", 1, "cdefgh"] has length 10: cut
    expect(r.send).toBeUndefined();
    const buffer = pendingOps(r.state).slice(1);
    expect(buffer.length).toBeGreaterThan(1);
    for (const op of buffer) expect(fits(op, budget)).toBe(true);
    expect(buffer.reduce(apply, 'ab')).toBe('Xabcdefgh');
  });

  it('cuts a large edit on Synchronized: sends the first piece, queues the rest in order, and sends each on the ack before', () => {
    const budget: OpBudget = { maxLength: 10, maxBytes: 1000 };
    const paste = 'abcdefghijklmnopqrstuvwxyz';
    let r: { state: SyncState; send?: Component[] } = applyLocal(synchronized, [2, paste, 1], budget);
    let text = 'xyz';
    const sent: Component[][] = [];
    while (r.send !== undefined) {
      expect(fits(r.send, budget)).toBe(true);
      sent.push(r.send);
      text = apply(text, r.send);
      r = ack(r.state, budget);
    }
    expect(r.state).toEqual(synchronized);
    expect(sent.length).toBe(4); // 7 units a piece: 3 retains-or-insert components + 7 ≤ 10
    expect(text).toBe(`xy${paste}z`);
  });

  it('drops buffered ops a remote op makes no-ops, and fitOutstanding cuts an unsent op after the budget shrank', () => {
    let state: SyncState = applyLocal(synchronized, [1, 'X', 2]).state; // "abc" → "aXbc"
    state = applyLocal(state, [2, -1, 1]).state; // delete "b"
    const r = applyRemote(state, [1, -1, 1]); // the server deleted "b" too
    expect(plain(r.state)).toEqual({ kind: 'awaiting-confirm', outstanding: [1, 'X', 1] });
    const big = applyLocal(synchronized, ['0123456789']).state;
    const cut = fitOutstanding(big, { maxLength: 5, maxBytes: 1000 });
    expect(cut.kind).toBe('awaiting-with-buffer');
    expect(pendingOps(cut).reduce(apply, '')).toBe('0123456789');
    for (const op of pendingOps(cut)) expect(fits(op, { maxLength: 5, maxBytes: 1000 })).toBe(true);
    expect(fitOutstanding(big, UNLIMITED)).toBe(big);
  });

  it('keeps at most one op in flight: local edits while awaiting are composed into the buffer', () => {
    let r = applyLocal(synchronized, ['a']);
    expect(r.send).toEqual(['a']);
    r = applyLocal(r.state, [1, 'b']);
    expect(r.send).toBeUndefined();
    r = applyLocal(r.state, [2, 'c']);
    expect(r.send).toBeUndefined();
    expect(plain(r.state)).toEqual({ kind: 'awaiting-with-buffer', outstanding: ['a'], buffer: [[1, 'bc']] });
    const a = ack(r.state);
    expect({ ...a, state: plain(a.state) }).toEqual({ state: { kind: 'awaiting-confirm', outstanding: [1, 'bc'] }, send: [1, 'bc'] });
    expect(ack(a.state)).toEqual({ state: synchronized });
  });

  it('puts the remote op first where both insert at one position', () => {
    const { state } = applyLocal(synchronized, [1, 'L', 1]); // "ab" → "aLb"
    const r = applyRemote(state, [1, 'R', 1]); // "ab" → "aRb" on the server
    expect(apply('aLb', r.apply)).toBe('aRLb');
    expect(plain(r.state)).toEqual({ kind: 'awaiting-confirm', outstanding: [2, 'L', 1] });
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
function pendingOn(
  confirmed: string,
  edits: readonly EditSpec[],
  budget: OpBudget = UNLIMITED,
): { state: SyncState; text: string } {
  let state: SyncState = synchronized;
  let text = confirmed;
  for (const e of edits) {
    const op = editOn(text, e);
    text = apply(text, op);
    state = applyLocal(state, op, budget).state;
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
        fc.constantFrom(UNLIMITED, TINY),
        (confirmed, local, landedWish, missed, budget) => {
          const { state, text } = pendingOn(confirmed, local, budget);
          const outstanding = state.kind === 'synchronized' ? undefined : state.outstanding;
          const landed = landedWish && outstanding !== undefined;
          // The snapshot: the server text after our op, if landed, and the missed history.
          let snapshot = landed ? apply(confirmed, outstanding.op) : confirmed;
          for (const e of missed) snapshot = apply(snapshot, editOn(snapshot, e));
          const r = rebaseOnSnapshot(state, confirmed, landed, snapshot, budget);
          expect(apply(text, r.apply)).toBe(pendingOps(r.state).reduce(apply, snapshot));
          checkShape(r.state);
          if (r.send === undefined) expect(r.state).toEqual(synchronized);
          else {
            expect(plain(r.state)).toMatchObject({ outstanding: r.send });
            expect(fits(r.send, budget)).toBe(true);
          }
          // Without a limit, everything pending goes out as one op, as before the queue existed.
          if (budget === UNLIMITED) expect(pendingOps(r.state).length).toBeLessThanOrEqual(1);
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
        const { state, text } = pendingOn(confirmed, local, TINY);
        if (state.kind === 'synchronized') return;
        const r = rejectOutstanding(state, confirmed, TINY);
        expect(apply(text, r.apply)).toBe(pendingOps(r.state).reduce(apply, confirmed));
        checkShape(r.state);
        if (r.send !== undefined) expect(fits(r.send, TINY)).toBe(true);
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
