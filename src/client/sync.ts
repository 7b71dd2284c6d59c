/**
 * The client's synchronisation state machine, as pure functions of state (the ot.js model,
 * with a queue for edits too large to send as one op).
 *
 * A client holds at most one op the server has not acknowledged (`outstanding`); later local
 * edits wait behind it in the `buffer`, an ordered queue of ops. A new edit is composed into
 * the last op of the queue while the composition fits the {@link OpBudget} (the server's size
 * limits, see `split.ts`); an edit or composition over it is cut into several ops. Ops go out
 * one at a time, in order, each when its predecessor is acknowledged:
 *
 *   Synchronized ──local──▶ AwaitingConfirm ──local──▶ AwaitingWithBuffer ──local──┐
 *        ▲                        │   ▲                      │    ▲   │     ◀───────┘
 *        └────────────ack─────────┘   └──ack: one op left────┘    └───┘ ack: more left
 *
 * An op is cut to the budget at the latest when it becomes outstanding, so every op sent fits
 * (a large local edit on Synchronized goes straight to AwaitingWithBuffer). Remote ops change
 * no state name; they transform `outstanding` and every buffered op in turn, and come back
 * transformed for the local text. The server rebases a late submission over history with
 * `transform(op, past, 'right')`, so a committed op wins ties; the client mirrors that here.
 *
 * Invariant, with C the server text at the client's version:
 *   local text = buffer.reduce(apply, apply(C, outstanding))   (missing ops are the identity)
 *
 * Nothing here touches sockets, timers or text: the caller keeps C and the local text, and
 * applies what these functions return.
 *
 * Pending ops are {@link PendingOp}s: a large one (hours of offline typing) is held in a tree,
 * so a keystroke composed into it and a remote op transformed through it cost O(log n), not
 * O(n). They are updated in place, so every transition *consumes* the state it is given: keep
 * only the state it returns. The results are exactly those of the plain `compose` and
 * `transform`, op for op.
 */
import {
  type Component,
  type Operation,
  type SelectionRange,
  apply,
  compose,
  composeAll,
  fromTextDiff,
  invert,
  targetLength,
  transformSelection,
} from '../ot/index.js';
import { PendingOp } from './pending.js';
import { type OpBudget, UNLIMITED, fits, splitOp } from './split.js';

export { PendingOp } from './pending.js';

/** Nothing local awaits the server. */
export interface Synchronized {
  readonly kind: 'synchronized';
}

/** One op was sent (or is queued to be sent) and awaits its acknowledgement. */
export interface AwaitingConfirm {
  readonly kind: 'awaiting-confirm';
  /** The unacknowledged op, on the server text at the client's version. */
  readonly outstanding: PendingOp;
}

/** An op awaits its acknowledgement, and later local edits wait behind it, in order. */
export interface AwaitingWithBuffer {
  readonly kind: 'awaiting-with-buffer';
  /** The unacknowledged op, on the server text at the client's version. */
  readonly outstanding: PendingOp;
  /**
   * Later local edits, oldest first, never empty and never holding a no-op: the first applies
   * to the text `outstanding` produces, each other to the text its predecessor produces.
   */
  readonly buffer: readonly PendingOp[];
}

/** Every state of the client; switch on `kind`. */
export type SyncState = Synchronized | AwaitingConfirm | AwaitingWithBuffer;

/** The one {@link Synchronized} state. */
export const synchronized: Synchronized = Object.freeze({ kind: 'synchronized' });

/** An event that cannot happen in the current state (`ack` while synchronized): a bug. */
export class SyncStateError extends Error {
  override readonly name = 'SyncStateError';

  /** @param event what happened; @param state the state it cannot happen in. */
  constructor(
    readonly event: string,
    readonly state: SyncState['kind'],
  ) {
    super(`${event} cannot happen in state ${state}`);
  }
}

/** What a local edit leads to: the next state and, if the op must go out now, the op. */
export interface LocalResult {
  readonly state: SyncState;
  /** Send this op now (only when leaving {@link Synchronized}). */
  readonly send?: Component[];
}

/** What a remote op leads to: the next state and the op to apply to the local text. */
export interface RemoteResult {
  readonly state: SyncState;
  /** The remote op transformed past the local pending ops: apply it to the local text. */
  readonly apply: Component[];
}

/** What an acknowledgement leads to: the next state and, if a buffered op goes out now, the op. */
export interface AckResult {
  readonly state: SyncState;
  /** The first buffered op (cut to the budget), to send now as the new outstanding op. */
  readonly send?: Component[];
}

/** What a rebase or a rejection leads to: state, the change to the local text, what to send. */
export interface RebaseResult {
  readonly state: SyncState;
  /** The change to apply to the local text (an identity op when nothing changes). */
  readonly apply: Component[];
  /** The new outstanding op, to send now as a new submission. */
  readonly send?: Component[];
}

function exhaustive(state: never): never {
  throw new Error(`unknown sync state ${JSON.stringify(state)}`);
}

/**
 * The state in which `ops` (oldest first) are pending and none is sent yet: no-ops dropped,
 * the first cut to `budget` since it goes out now; Synchronized if nothing is left.
 */
function queue(ops: readonly PendingOp[], budget: OpBudget): LocalResult {
  const left = ops.filter((op) => !op.isNoop);
  const first = left[0];
  if (first === undefined) return { state: synchronized };
  const [outstanding, ...buffer] = first.fits(budget) ? left : [...pieces(first.op, budget), ...left.slice(1)];
  return { state: awaiting(outstanding as PendingOp, buffer), send: (outstanding as PendingOp).op };
}

/** AwaitingConfirm(outstanding) if `buffer` is empty, else AwaitingWithBuffer(outstanding, buffer). */
function awaiting(outstanding: PendingOp, buffer: PendingOp[]): SyncState {
  return buffer.length === 0
    ? { kind: 'awaiting-confirm', outstanding }
    : { kind: 'awaiting-with-buffer', outstanding, buffer };
}

/** `op` cut to `budget` (see splitOp), as pending ops. */
function pieces(op: Operation, budget: OpBudget): PendingOp[] {
  return splitOp(op, budget).map((piece) => new PendingOp(piece));
}

/**
 * A local edit `op`, already applied to the local text. `budget` is the largest op the server
 * takes (default: no limit).
 * Synchronized → AwaitingConfirm(op), send op — or, if op is over the budget,
 *   AwaitingWithBuffer(p1, [p2, …]) with `[p1, p2, …] = splitOp(op, budget)`, send p1;
 * AwaitingConfirm(o) → AwaitingWithBuffer(o, splitOp(op));
 * AwaitingWithBuffer(o, [b1, …, bn]) → AwaitingWithBuffer(o, [b1, …, compose(bn, op)]) if the
 *   composition fits the budget, else AwaitingWithBuffer(o, [b1, …, …splitOp(compose(bn, op))]).
 * Throws InvalidOperationError if `op` does not fit the local text the state implies.
 */
export function applyLocal(state: SyncState, op: Operation, budget: OpBudget = UNLIMITED): LocalResult {
  switch (state.kind) {
    case 'synchronized':
      return queue(pieces(op, budget), budget);
    case 'awaiting-confirm': {
      const buffer = pieces(op, budget).filter((b) => !b.isNoop);
      return { state: awaiting(state.outstanding, buffer) };
    }
    case 'awaiting-with-buffer': {
      const n = state.buffer.length;
      const last = state.buffer[n - 1] as PendingOp;
      last.composeWith(op);
      const tail = last.isNoop ? [] : last.fits(budget) ? [last] : pieces(last.op, budget);
      return { state: awaiting(state.outstanding, [...state.buffer.slice(0, n - 1), ...tail]) };
    }
    default:
      return exhaustive(state);
  }
}

/**
 * A remote op `op` (on the server text at the client's version) arrives. The pending ops are
 * rebased over it one at a time and it is rebased over them; the remote op wins ties:
 *
 *            outstanding          b1                  bn
 *        C ──────────────▶ · ──────────▶ · ··· · ──────────▶ local
 *        │                 │             │       │             │
 *     op │             op0 │         op1 │       │ op(n-1)     │ opn  (returned as `apply`)
 *        ▼                 ▼             ▼       ▼             ▼
 *        · ──────────────▶ · ──────────▶ · ··· · ──────────▶ local'
 *            outstanding'         b1'                 bn'
 *
 *   op0 = transform(op, outstanding, 'left')     outstanding' = transform(outstanding, op, 'right')
 *   opk = transform(op(k-1), bk, 'left')         bk'          = transform(bk, op(k-1), 'right')
 *
 * Buffered ops the remote op made no-ops are dropped (AwaitingConfirm if none is left).
 * Law: apply(local, opn) === buffer'.reduce(apply, apply(apply(C, op), outstanding')).
 * Throws InvalidOperationError if `op` does not fit C.
 */
export function applyRemote(state: SyncState, op: Operation): RemoteResult {
  switch (state.kind) {
    case 'synchronized':
      return { state, apply: op.slice() };
    case 'awaiting-confirm':
      return { state, apply: state.outstanding.transformAgainst(op, 'right') };
    case 'awaiting-with-buffer': {
      let past = state.outstanding.transformAgainst(op, 'right');
      const buffer: PendingOp[] = [];
      for (const b of state.buffer) {
        past = b.transformAgainst(past, 'right');
        if (!b.isNoop) buffer.push(b);
      }
      return { state: awaiting(state.outstanding, buffer), apply: past };
    }
    default:
      return exhaustive(state);
  }
}

/**
 * The server acknowledged the outstanding op: C becomes apply(C, outstanding).
 * AwaitingConfirm → Synchronized; AwaitingWithBuffer(o, [b1, …]) → the state with b1 (cut to
 * `budget`, default no limit) outstanding and the rest buffered; send it.
 * Throws {@link SyncStateError} when synchronized: there is nothing to acknowledge.
 */
export function ack(state: SyncState, budget: OpBudget = UNLIMITED): AckResult {
  switch (state.kind) {
    case 'synchronized':
      throw new SyncStateError('ack', state.kind);
    case 'awaiting-confirm':
      return { state: synchronized };
    case 'awaiting-with-buffer':
      return queue(state.buffer, budget);
    default:
      return exhaustive(state);
  }
}

/**
 * Cuts an outstanding op that has not been sent yet to `budget` (after the budget shrank:
 * a server announced smaller limits than the edit was queued under); the rest of it goes to
 * the front of the buffer. The state itself when the op fits. Do not use on an op in flight:
 * a resubmission must be the same op.
 */
export function fitOutstanding(state: SyncState, budget: OpBudget): SyncState {
  switch (state.kind) {
    case 'synchronized':
      return state;
    case 'awaiting-confirm':
      return state.outstanding.fits(budget) ? state : queue([state.outstanding], budget).state;
    case 'awaiting-with-buffer':
      return state.outstanding.fits(budget) ? state : queue([state.outstanding, ...state.buffer], budget).state;
    default:
      return exhaustive(state);
  }
}

/** Every pending local change as one op on C (outstanding, then the buffer), or undefined. */
export function pendingOp(state: SyncState): Component[] | undefined {
  switch (state.kind) {
    case 'synchronized':
      return undefined;
    case 'awaiting-confirm':
      return state.outstanding.op;
    case 'awaiting-with-buffer':
      return composeAll([state.outstanding.op, ...state.buffer.map((b) => b.op)]);
    default:
      return exhaustive(state);
  }
}

/**
 * Maps a selection on the local text through `applied`, the op {@link applyRemote} returned.
 * Text a remote op inserts exactly at a caret goes before it (side 'right': the caret moves
 * past it), as it would go before an insert of ours typed at that caret, since the server
 * puts the op committed first ahead at ties.
 */
export function transformLocalSelection(
  selection: readonly SelectionRange[],
  applied: Operation,
): SelectionRange[] {
  return transformSelection(selection, applied, 'right');
}

/**
 * The server refused the outstanding op for good (it can never apply, e.g. `too-large`):
 * undo it locally and keep the buffer. `confirmed` is C, the server text at the client's
 * version. `apply` undoes the op on the local text; the rebased buffer, if any, becomes the
 * pending ops, the first (cut to `budget`, default no limit) to be sent as a new submission.
 *
 *     C·o ──────── b1 ────────▶ · ··· · ──────── bn ────────▶ local
 *      │                        │     │                         │
 *  inv │                   inv1 │     │ inv(n-1)                │ invn   (returned as `apply`)
 *      ▼                        ▼     ▼                         ▼
 *      C ──────── b1' ───────▶ · ··· · ──────── bn' ───────▶ local'
 *
 * inv = invert(outstanding, C); bk' = transform(bk, inv(k-1), 'right');
 * invk = transform(inv(k-1), bk, 'left'). Throws {@link SyncStateError} when synchronized.
 */
export function rejectOutstanding(
  state: SyncState,
  confirmed: string,
  budget: OpBudget = UNLIMITED,
): RebaseResult {
  switch (state.kind) {
    case 'synchronized':
      throw new SyncStateError('reject', state.kind);
    case 'awaiting-confirm':
      return { state: synchronized, apply: invert(state.outstanding.op, confirmed) };
    case 'awaiting-with-buffer': {
      const change = rebaseAll(state.buffer, invert(state.outstanding.op, confirmed));
      return { ...queue(state.buffer, budget), apply: change };
    }
    default:
      return exhaustive(state);
  }
}

/** The op that changes nothing on a text of `length` code units. */
function identity(length: number): Component[] {
  return length > 0 ? [length] : [];
}

/**
 * Gives up the pending local ops the server will never take (the document was made
 * read-only): every buffered op, and the outstanding op too unless it is `inFlight` (sent:
 * the server decides it, and its answer acknowledges or refuses it). `confirmed` is C, the
 * server text at the client's version. `apply` undoes them on the local text (an identity op
 * when nothing is given up).
 *
 *   AwaitingWithBuffer(o, [b1, …, bn]), inFlight → AwaitingConfirm(o),
 *     apply = invert(compose(b1, …, bn), apply(C, o));
 *   any pending state, not inFlight → Synchronized, apply = invert(pendingOp(state), C);
 *   Synchronized, or AwaitingConfirm in flight → unchanged, identity.
 */
export function discardUnsent(state: SyncState, confirmed: string, inFlight: boolean): RebaseResult {
  switch (state.kind) {
    case 'synchronized':
      return { state, apply: identity(confirmed.length) };
    case 'awaiting-confirm':
      if (inFlight) return { state, apply: identity(targetLength(state.outstanding.op)) };
      return { state: synchronized, apply: invert(state.outstanding.op, confirmed) };
    case 'awaiting-with-buffer': {
      if (!inFlight) return { state: synchronized, apply: invert(pendingOp(state) as Component[], confirmed) };
      const buffered = composeAll(state.buffer.map((b) => b.op));
      return { state: awaiting(state.outstanding, []), apply: invert(buffered, apply(confirmed, state.outstanding.op)) };
    }
    default:
      return exhaustive(state);
  }
}

/**
 * Rebases the sequence `ops` in place over a concurrent op `other` on the same text, one op at
 * a time with `other` winning ties; returns `other` rebased past all of them.
 * Law (TP1, step by step): ops'.reduce(apply, apply(d, other)) === apply(ops.reduce(apply, d), change).
 */
function rebaseAll(ops: readonly PendingOp[], other: Component[]): Component[] {
  let change = other;
  for (const op of ops) change = op.transformAgainst(change, 'right');
  return change;
}

/**
 * `ops` with each run of neighbours composed into one op while the composition fits `budget`.
 * Runs once per snapshot rebase over ops already cut to the budget, so plain arrays serve.
 */
function pack(ops: readonly Component[][], budget: OpBudget): PendingOp[] {
  const packed: Component[][] = [];
  for (const op of ops) {
    const last = packed[packed.length - 1];
    const composed = last === undefined ? undefined : compose(last, op);
    if (composed !== undefined && fits(composed, budget)) packed[packed.length - 1] = composed;
    else packed.push(op);
  }
  return packed.map((op) => new PendingOp(op));
}

/**
 * Rebases the pending local changes onto a snapshot `snapshot` that arrived without history
 * (a first open, or a server whose history no longer reaches the client's version).
 *
 * `confirmed` is C, the server text at the client's version. `landed` says the snapshot
 * already holds the outstanding op (the server's last applied seq covers it): then C' =
 * apply(C, outstanding) and only the buffer is pending; otherwise C' = C and everything is.
 * Since all of them go out as new submissions, the pending ops are first composed into as few
 * ops p1 … pn as fit the budget. The missed history is reconstructed as a diff, lines first
 * and then characters within the changed lines, R = fromTextDiff(C', snapshot, 1000, 'lines')
 * (hunk by hunk, so a pending edit outside every hunk keeps its place; an unchanged line is
 * never matched letter by letter against a changed one, nor a rewritten passage against the
 * old), and p1 … pn are rebased over it one at a time (R0 = R):
 *
 *   pk' = transform(pk, R(k-1), 'right')      Rk = transform(R(k-1), pk, 'left')      apply = Rn
 *
 * Side 'right' is the server's own rule (history first at ties), so where R and a pending
 * insert meet, the result is what the server would have made had it rebased the pending op
 * over the real history. Law (TP1): apply(local, apply) === [p1', …, pn'].reduce(apply, snapshot).
 *
 * The rebased ops become the pending ops, no-ops dropped, the first cut to `budget` (default
 * no limit) and returned as `send` (a new submission); Synchronized when nothing is left.
 * Throws {@link SyncStateError} if `landed` while synchronized.
 */
export function rebaseOnSnapshot(
  state: SyncState,
  confirmed: string,
  landed: boolean,
  snapshot: string,
  budget: OpBudget = UNLIMITED,
): RebaseResult {
  let base = confirmed;
  let pending: readonly PendingOp[];
  switch (state.kind) {
    case 'synchronized':
      if (landed) throw new SyncStateError('rebase with a landed op', state.kind);
      pending = [];
      break;
    case 'awaiting-confirm':
      if (landed) base = apply(confirmed, state.outstanding.op);
      pending = landed ? [] : [state.outstanding];
      break;
    case 'awaiting-with-buffer':
      if (landed) base = apply(confirmed, state.outstanding.op);
      pending = landed ? state.buffer : [state.outstanding, ...state.buffer];
      break;
    default:
      return exhaustive(state);
  }
  const ops = pack(
    pending.map((p) => p.op),
    budget,
  );
  const change = rebaseAll(ops, fromTextDiff(base, snapshot, 1000, 'lines'));
  return { ...queue(ops, budget), apply: change };
}
