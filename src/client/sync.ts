/**
 * The client's synchronisation state machine, as pure functions of state (the ot.js model).
 *
 * A client holds at most one op the server has not acknowledged (`outstanding`) and composes
 * every later local edit into one `buffer`, sent when the outstanding op is acknowledged:
 *
 *   Synchronized ──local──▶ AwaitingConfirm ──local──▶ AwaitingWithBuffer ──local──┐
 *        ▲                        │   ▲                         │          ◀───────┘
 *        └────────────ack─────────┘   └────────────ack──────────┘
 *
 * Remote ops change no state name; they transform `outstanding` and `buffer` and come back
 * transformed for the local text. The server rebases a late submission over history with
 * `transform(op, past, 'right')`, so a committed op wins ties; the client mirrors that here.
 *
 * Invariant, with C the server text at the client's version:
 *   local text = apply(apply(C, outstanding), buffer)   (missing ops are the identity)
 *
 * Nothing here touches sockets, timers or text: the caller keeps C and the local text, and
 * applies what these functions return.
 */
import {
  type Component,
  type Operation,
  type SelectionRange,
  apply,
  compose,
  fromDiff,
  invert,
  isNoop,
  transform,
  transformSelection,
} from '../ot/index.js';

/** Nothing local awaits the server. */
export interface Synchronized {
  readonly kind: 'synchronized';
}

/** One op was sent (or is queued to be sent) and awaits its acknowledgement. */
export interface AwaitingConfirm {
  readonly kind: 'awaiting-confirm';
  /** The unacknowledged op, on the server text at the client's version. */
  readonly outstanding: Component[];
}

/** An op awaits its acknowledgement, and later local edits wait, composed, behind it. */
export interface AwaitingWithBuffer {
  readonly kind: 'awaiting-with-buffer';
  /** The unacknowledged op, on the server text at the client's version. */
  readonly outstanding: Component[];
  /** Later local edits composed into one op, on the text `outstanding` produces. */
  readonly buffer: Component[];
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

/** What an acknowledgement leads to: the next state and, if the buffer goes out now, the op. */
export interface AckResult {
  readonly state: SyncState;
  /** The buffer, to send now as the new outstanding op. */
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
 * A local edit `op`, already applied to the local text.
 * Synchronized → AwaitingConfirm(op), send op; AwaitingConfirm(o) → AwaitingWithBuffer(o, op);
 * AwaitingWithBuffer(o, b) → AwaitingWithBuffer(o, compose(b, op)).
 * Throws InvalidOperationError if `op` does not fit the local text the state implies.
 */
export function applyLocal(state: SyncState, op: Operation): LocalResult {
  switch (state.kind) {
    case 'synchronized':
      return { state: { kind: 'awaiting-confirm', outstanding: op.slice() }, send: op.slice() };
    case 'awaiting-confirm':
      return {
        state: { kind: 'awaiting-with-buffer', outstanding: state.outstanding, buffer: op.slice() },
      };
    case 'awaiting-with-buffer':
      return {
        state: {
          kind: 'awaiting-with-buffer',
          outstanding: state.outstanding,
          buffer: compose(state.buffer, op),
        },
      };
    default:
      return exhaustive(state);
  }
}

/**
 * A remote op `op` (on the server text at the client's version) arrives. The pending ops are
 * rebased over it and it is rebased over them; the remote op wins ties:
 *
 *            outstanding         buffer
 *        C ──────────────▶ · ──────────────▶ local
 *        │                 │                   │
 *     op │                 │ op'               │ op''  (returned as `apply`)
 *        ▼                 ▼                   ▼
 *        · ──────────────▶ · ──────────────▶ local'
 *            outstanding'        buffer'
 *
 *   op'  = transform(op, outstanding, 'left')     outstanding' = transform(outstanding, op, 'right')
 *   op'' = transform(op', buffer, 'left')         buffer'      = transform(buffer, op', 'right')
 *
 * Law: apply(local, op'') === apply(apply(apply(C, op), outstanding'), buffer').
 * Throws InvalidOperationError if `op` does not fit C.
 */
export function applyRemote(state: SyncState, op: Operation): RemoteResult {
  switch (state.kind) {
    case 'synchronized':
      return { state, apply: op.slice() };
    case 'awaiting-confirm':
      return {
        state: { kind: 'awaiting-confirm', outstanding: transform(state.outstanding, op, 'right') },
        apply: transform(op, state.outstanding, 'left'),
      };
    case 'awaiting-with-buffer': {
      const outstanding = transform(state.outstanding, op, 'right');
      const past = transform(op, state.outstanding, 'left');
      return {
        state: {
          kind: 'awaiting-with-buffer',
          outstanding,
          buffer: transform(state.buffer, past, 'right'),
        },
        apply: transform(past, state.buffer, 'left'),
      };
    }
    default:
      return exhaustive(state);
  }
}

/**
 * The server acknowledged the outstanding op: C becomes apply(C, outstanding).
 * AwaitingConfirm → Synchronized; AwaitingWithBuffer(o, b) → AwaitingConfirm(b), send b.
 * Throws {@link SyncStateError} when synchronized: there is nothing to acknowledge.
 */
export function ack(state: SyncState): AckResult {
  switch (state.kind) {
    case 'synchronized':
      throw new SyncStateError('ack', state.kind);
    case 'awaiting-confirm':
      return { state: synchronized };
    case 'awaiting-with-buffer':
      return {
        state: { kind: 'awaiting-confirm', outstanding: state.buffer },
        send: state.buffer,
      };
    default:
      return exhaustive(state);
  }
}

/** Every pending local change as one op on C (outstanding then buffer), or undefined. */
export function pendingOp(state: SyncState): Component[] | undefined {
  switch (state.kind) {
    case 'synchronized':
      return undefined;
    case 'awaiting-confirm':
      return state.outstanding;
    case 'awaiting-with-buffer':
      return compose(state.outstanding, state.buffer);
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
 * new outstanding op, to be sent as a new submission.
 *
 *     C·o ──────── buffer ────────▶ local
 *      │                              │
 *  inv │                              │ inv'   (returned as `apply`)
 *      ▼                              ▼
 *      C ──────── buffer' ────────▶ local'
 *
 * inv = invert(outstanding, C); buffer' = transform(buffer, inv, 'right');
 * inv' = transform(inv, buffer, 'left'). Throws {@link SyncStateError} when synchronized.
 */
export function rejectOutstanding(state: SyncState, confirmed: string): RebaseResult {
  switch (state.kind) {
    case 'synchronized':
      throw new SyncStateError('reject', state.kind);
    case 'awaiting-confirm':
      return { state: synchronized, apply: invert(state.outstanding, confirmed) };
    case 'awaiting-with-buffer': {
      const inv = invert(state.outstanding, confirmed);
      const buffer = transform(state.buffer, inv, 'right');
      const undo = transform(inv, state.buffer, 'left');
      return isNoop(buffer)
        ? { state: synchronized, apply: undo }
        : { state: { kind: 'awaiting-confirm', outstanding: buffer }, apply: undo, send: buffer };
    }
    default:
      return exhaustive(state);
  }
}

/**
 * Rebases the pending local changes onto a snapshot `snapshot` that arrived without history
 * (a first open, or a server whose history no longer reaches the client's version).
 *
 * `confirmed` is C, the server text at the client's version. `landed` says the snapshot
 * already holds the outstanding op (the server's last applied seq covers it): then C' =
 * apply(C, outstanding) and only the buffer is pending; otherwise C' = C and everything is.
 * The missed history is taken as one replacement, R = fromDiff(C', snapshot), and
 *
 *   pending' = transform(pending, R, 'right')      apply = transform(R, pending, 'left')
 *
 * Side 'right' is the server's own rule (history first at ties), so where R and a pending
 * insert meet, the result is what the server would have made had it rebased the pending op
 * over the real history; and since an insert anywhere inside R's replaced range lands after
 * R's new text regardless of side, 'right' treats the insert at the range's start the same
 * as those inside it. Law (TP1): apply(local, apply) === apply(snapshot, pending').
 *
 * The result is AwaitingConfirm(pending') with `send` (a new submission), or Synchronized
 * when pending' changes nothing. Throws {@link SyncStateError} if `landed` while
 * synchronized.
 */
export function rebaseOnSnapshot(
  state: SyncState,
  confirmed: string,
  landed: boolean,
  snapshot: string,
): RebaseResult {
  let base = confirmed;
  let pending: Component[] | undefined;
  if (landed) {
    switch (state.kind) {
      case 'synchronized':
        throw new SyncStateError('rebase with a landed op', state.kind);
      case 'awaiting-confirm':
        base = apply(confirmed, state.outstanding);
        break;
      case 'awaiting-with-buffer':
        base = apply(confirmed, state.outstanding);
        pending = state.buffer;
        break;
      default:
        return exhaustive(state);
    }
  } else {
    pending = pendingOp(state);
  }
  const missed = fromDiff(base, snapshot);
  if (pending === undefined) return { state: synchronized, apply: missed };
  const rebased = transform(pending, missed, 'right');
  const change = transform(missed, pending, 'left');
  return isNoop(rebased)
    ? { state: synchronized, apply: change }
    : { state: { kind: 'awaiting-confirm', outstanding: rebased }, apply: change, send: rebased };
}
