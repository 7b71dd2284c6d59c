/**
 * The life of one document on the client, as pure functions of a named state: whether it is
 * waiting for its connection, opening (and what kind of open it sent, under which request
 * id), restoring a state the server lost, live, or closed — with the document's protocol
 * counters (`seq`, the last seq given to an op; `inflight`, the seq of the op in flight)
 * inside the state. `sync.ts` holds the ops; this file says when they may go out.
 *
 *                 connect                  opened (current rid)
 *   ┌─────────┐ ──────────▶ ┌───────────┐ ─────────────────────▶ ┌──────┐
 *   │ offline │             │  opening  │ ◀───── resync ──────── │ live │
 *   └─────────┘ ◀────────── └───────────┘                         └──────┘
 *        ▲      disconnect    │  ▲   ▲ retry (new rid)               │
 *        │                    │  │   └────┘                          │
 *        │              lost  ▼  │ restored (current rid):           │
 *        │             ┌───────────┐   open for a reset              │
 *        └──────────── │ restoring │                                 │
 *          disconnect  └───────────┘                                 │
 *        ◀───────────────────────────── disconnect ──────────────────┘
 *   close, from any state: closed (final).
 *
 * Rules kept here:
 * - Every open and restore goes out under a new request id (`rid`); only the answer naming the
 *   current one counts ({@link isCurrent}), so a stale answer to a retried or superseded
 *   request is recognised and dropped.
 * - Ops go out only while live; at most one is in flight, and a seq is never reused for
 *   different content except after the server refused it for good ({@link refused}).
 * - An open asks for one of three things ({@link OpenKind}); a wish for a stronger one while a
 *   weaker one is pending sends a new open that supersedes it.
 *
 * Events that cannot happen in a state (an answer while offline, an op sent while opening)
 * throw {@link LifecycleError}: they are bugs in the caller.
 */

/**
 * What an open asks for, weakest first:
 * - `catch-up`: the ops after the version the client holds, which it names with its epoch and
 *   checksum (the server answers `lost` if it does not have that state);
 * - `snapshot`: the head's text, on which the client rebases its pending edits (a first open,
 *   history gone, or a divergence to heal);
 * - `reset`: the head's text after the server lost a state the client held, once that state
 *   was restored (or given up): the client takes it and emits a `reset` event.
 */
export type OpenKind = 'catch-up' | 'snapshot' | 'reset';

/** The protocol counters of a document. */
interface Counters {
  /** The last seq given to an op (after a snapshot: the server's last applied one). */
  readonly seq: number;
  /** The seq of the op in flight, once sent; undefined when none is. */
  readonly inflight: number | undefined;
}

/** No connection: edits wait; `next` is what to open once connected. */
export interface Offline extends Counters {
  readonly phase: 'offline';
  readonly next: OpenKind;
}

/** An open was sent as request `rid`; nothing else goes out until its answer. */
export interface Opening extends Counters {
  readonly phase: 'opening';
  readonly kind: OpenKind;
  readonly rid: number;
}

/** The server lost a state this client holds; restore request `rid` is on its way. */
export interface Restoring extends Counters {
  readonly phase: 'restoring';
  readonly rid: number;
}

/** Open and current: ops and presence go out, remote ops come in. */
export interface Live extends Counters {
  readonly phase: 'live';
}

/** Closed for good. */
export interface Closed {
  readonly phase: 'closed';
}

/** Every state of a document's life; switch on `phase`. */
export type Lifecycle = Offline | Opening | Restoring | Live | Closed;

/** An event that cannot happen in the current state: a bug in the caller. */
export class LifecycleError extends Error {
  override readonly name = 'LifecycleError';

  /** @param event what happened; @param phase the state it cannot happen in. */
  constructor(
    readonly event: string,
    readonly phase: Lifecycle['phase'],
  ) {
    super(`${event} cannot happen while ${phase}`);
  }
}

/** A new document: offline, never opened (its first open asks for a snapshot), no seq used. */
export const initial: Offline = Object.freeze({ phase: 'offline', next: 'snapshot', seq: 0, inflight: undefined });

const STRENGTH: Readonly<Record<OpenKind, number>> = { 'catch-up': 0, snapshot: 1, reset: 2 };

/** The stronger of two open kinds (see {@link OpenKind}). */
export function stronger(a: OpenKind, b: OpenKind): OpenKind {
  return STRENGTH[a] >= STRENGTH[b] ? a : b;
}

function counters(s: Counters): Counters {
  return { seq: s.seq, inflight: s.inflight };
}

/** What a transition asks the caller to send: an open of `kind` under `rid`. */
export interface OpenRequest {
  readonly kind: OpenKind;
  readonly rid: number;
}

/** The next state, and the open to send now, if any. */
export interface Transition {
  readonly state: Lifecycle;
  readonly open?: OpenRequest;
}

/**
 * The connection is up: offline → opening(next) under `rid`, send that open.
 * Throws unless offline.
 */
export function connect(s: Lifecycle, rid: number): Transition {
  if (s.phase !== 'offline') throw new LifecycleError('connect', s.phase);
  return { state: { phase: 'opening', kind: s.next, rid, ...counters(s) }, open: { kind: s.next, rid } };
}

/**
 * The connection is gone: opening(kind) → offline(kind); live → offline(catch-up);
 * restoring → offline(catch-up) (the next open finds out whether the restore landed).
 * Offline and closed stay as they are.
 */
export function disconnect(s: Lifecycle): Lifecycle {
  switch (s.phase) {
    case 'offline':
    case 'closed':
      return s;
    case 'opening':
      return { phase: 'offline', next: s.kind, ...counters(s) };
    case 'restoring':
    case 'live':
      return { phase: 'offline', next: 'catch-up', ...counters(s) };
    default:
      return exhaustive(s);
  }
}

/**
 * The document must be (re-)opened with at least `kind`:
 * live → opening(kind) under `rid`, send it; opening(k) → opening(kind) under `rid`, send it,
 * if `kind` is stronger than k (the earlier answer will be stale), else unchanged;
 * offline(next) → offline(stronger(next, kind)); restoring and closed: unchanged.
 */
export function resync(s: Lifecycle, kind: OpenKind, rid: number): Transition {
  switch (s.phase) {
    case 'live':
      return { state: { phase: 'opening', kind, rid, ...counters(s) }, open: { kind, rid } };
    case 'opening':
      if (STRENGTH[kind] <= STRENGTH[s.kind]) return { state: s };
      return { state: { phase: 'opening', kind, rid, ...counters(s) }, open: { kind, rid } };
    case 'offline':
      return { state: { ...s, next: stronger(s.next, kind) } };
    case 'restoring':
    case 'closed':
      return { state: s };
    default:
      return exhaustive(s);
  }
}

/**
 * The pending open went unanswered (the server dropped a message without saying which):
 * opening(kind, rid) → opening(kind, `rid`), send it again under the new id, so an answer to
 * the old attempt is recognised as stale. Other states: unchanged.
 */
export function retryOpen(s: Lifecycle, rid: number): Transition {
  if (s.phase !== 'opening') return { state: s };
  return { state: { ...s, rid }, open: { kind: s.kind, rid } };
}

/**
 * The pending restore went unanswered or was refused for now: restoring → restoring under
 * the new `rid` (the caller sends it again). Other states: unchanged.
 */
export function retryRestore(s: Lifecycle, rid: number): Lifecycle {
  return s.phase === 'restoring' ? { ...s, rid } : s;
}

/** Whether an answer naming `rid` answers the current open or restore. */
export function isCurrent(s: Lifecycle, rid: number | undefined): boolean {
  return (s.phase === 'opening' || s.phase === 'restoring') && s.rid === rid;
}

/**
 * The current open was answered with the document: opening → live. `seq` is the server's
 * last applied seq of this client. After a snapshot it is authoritative (the in-flight op,
 * if any, is in the snapshot or pending again, unsent); after a catch-up the counters keep
 * the larger seq and the op in flight (to be resent if the catch-up did not carry it).
 * Throws unless opening.
 */
export function opened(s: Lifecycle, seq: number, snapshot: boolean): Live {
  if (s.phase !== 'opening') throw new LifecycleError('opened', s.phase);
  return snapshot
    ? { phase: 'live', seq, inflight: undefined }
    : { phase: 'live', seq: Math.max(s.seq, seq), inflight: s.inflight };
}

/**
 * The current open found that the server lost the state this client holds, and the client
 * restores it under `rid`: opening → restoring. Throws unless opening.
 */
export function restoring(s: Lifecycle, rid: number): Restoring {
  if (s.phase !== 'opening') throw new LifecycleError('lost', s.phase);
  return { phase: 'restoring', rid, ...counters(s) };
}

/**
 * The lost state is settled (restored by this client or another, or given up): opening or
 * restoring → opening(reset) under `rid`, send it. Throws in other states.
 */
export function reset(s: Lifecycle, rid: number): Transition {
  if (s.phase !== 'opening' && s.phase !== 'restoring') throw new LifecycleError('reset', s.phase);
  return { state: { phase: 'opening', kind: 'reset', rid, ...counters(s) }, open: { kind: 'reset', rid } };
}

/**
 * The outstanding op goes out: live → live with seq + 1 in flight. Throws unless live with
 * nothing in flight.
 */
export function send(s: Lifecycle): Live {
  if (s.phase !== 'live' || s.inflight !== undefined) throw new LifecycleError('send', s.phase);
  return { phase: 'live', seq: s.seq + 1, inflight: s.seq + 1 };
}

/** The op in flight was acknowledged: nothing is in flight. Throws when closed. */
export function acknowledged<S extends Lifecycle>(s: S): S {
  if (s.phase === 'closed') throw new LifecycleError('ack', s.phase);
  return { ...s, inflight: undefined };
}

/**
 * The server refused the op in flight for good: its seq was not applied and is given to the
 * next op. Throws when closed or when nothing is in flight.
 */
export function refused<S extends Lifecycle>(s: S): S {
  if (s.phase === 'closed' || s.inflight === undefined) throw new LifecycleError('refuse', s.phase);
  return { ...s, seq: s.inflight - 1, inflight: undefined };
}

/**
 * The server says this client's last applied seq is `seq` and the in-flight op, if any, is
 * not in flight any more (it landed, or will go out again under a new seq). Throws when closed.
 */
export function adoptSeq<S extends Lifecycle>(s: S, seq: number): S {
  if (s.phase === 'closed') throw new LifecycleError('adopt seq', s.phase);
  return { ...s, seq, inflight: undefined };
}

/** Closed, from any state. */
export const closed: Closed = Object.freeze({ phase: 'closed' });

function exhaustive(s: never): never {
  throw new Error(`unknown lifecycle state ${JSON.stringify(s)}`);
}
