/**
 * The document lifecycle (src/client/lifecycle.ts), one transition at a time, as its doc
 * comments state them; then one property over random event sequences for the invariants every
 * transition keeps.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Lifecycle,
  LifecycleError,
  type Live,
  type OpenKind,
  type Opening,
  type Offline,
  type Restoring,
  type Transition,
  acknowledged,
  adoptSeq,
  closed,
  connect,
  disconnect,
  initial,
  isCurrent,
  opened,
  refused,
  reset,
  restoring,
  resync,
  retryOpen,
  retryRestore,
  send,
  stronger,
} from '../../src/client/lifecycle.js';
import { thrown } from '../support/thrown.js';

const KINDS: readonly OpenKind[] = ['catch-up', 'snapshot', 'reset'];

const offline = (next: OpenKind, seq = 4, inflight: number | undefined = undefined): Offline => ({
  phase: 'offline',
  next,
  seq,
  inflight,
});
const opening = (kind: OpenKind, rid = 10, seq = 4, inflight: number | undefined = undefined): Opening => ({
  phase: 'opening',
  kind,
  rid,
  seq,
  inflight,
});
const restoringState = (rid = 20, seq = 4, inflight: number | undefined = undefined): Restoring => ({
  phase: 'restoring',
  rid,
  seq,
  inflight,
});
const live = (seq = 4, inflight: number | undefined = undefined): Live => ({ phase: 'live', seq, inflight });

/** One state of every phase, some with an op in flight. */
const SAMPLES: readonly Lifecycle[] = [
  initial,
  offline('catch-up', 3, 3),
  offline('reset'),
  opening('catch-up'),
  opening('snapshot', 11, 5, 5),
  opening('reset'),
  restoringState(),
  restoringState(21, 6, 6),
  live(),
  live(7, 7),
  closed,
];

/** Runs `f` and returns the LifecycleError it throws (fails the test if it throws nothing else). */
describe('initial, closed and stronger', () => {
  it('initial is offline, opens with a snapshot first, has used no seq and has nothing in flight; it is frozen', () => {
    expect(initial).toEqual({ phase: 'offline', next: 'snapshot', seq: 0, inflight: undefined });
    expect(Object.isFrozen(initial)).toBe(true);
  });

  it('closed is the closed phase and is frozen', () => {
    expect(closed).toEqual({ phase: 'closed' });
    expect(Object.isFrozen(closed)).toBe(true);
  });

  it('stronger: catch-up < snapshot < reset, commutative and idempotent', () => {
    expect(stronger('catch-up', 'snapshot')).toBe('snapshot');
    expect(stronger('snapshot', 'catch-up')).toBe('snapshot');
    expect(stronger('catch-up', 'reset')).toBe('reset');
    expect(stronger('reset', 'catch-up')).toBe('reset');
    expect(stronger('snapshot', 'reset')).toBe('reset');
    expect(stronger('reset', 'snapshot')).toBe('reset');
    for (const k of KINDS) expect(stronger(k, k)).toBe(k);
  });
});

describe('connect', () => {
  it('offline(next) → opening(next) under the rid, returning that open request; counters kept', () => {
    for (const next of KINDS) {
      const t = connect(offline(next, 9, 9), 33);
      expect(t.state).toEqual({ phase: 'opening', kind: next, rid: 33, seq: 9, inflight: 9 });
      expect(t.open).toEqual({ kind: next, rid: 33 });
    }
    const first = connect(initial, 1);
    expect(first.state).toEqual({ phase: 'opening', kind: 'snapshot', rid: 1, seq: 0, inflight: undefined });
    expect(first.open).toEqual({ kind: 'snapshot', rid: 1 });
  });

  it('throws LifecycleError("connect", phase) in every phase but offline', () => {
    for (const s of SAMPLES.filter((x) => x.phase !== 'offline')) {
      const e = thrown(() => connect(s, 1), LifecycleError);
      expect(e.event).toBe('connect');
      expect(e.phase).toBe(s.phase);
      expect(e.name).toBe('LifecycleError');
      expect(e.message).toBe(`connect cannot happen while ${s.phase}`);
    }
  });
});

describe('disconnect', () => {
  it('opening(kind) → offline(next = kind), counters kept', () => {
    for (const kind of KINDS) {
      expect(disconnect(opening(kind, 10, 5, 5))).toEqual({ phase: 'offline', next: kind, seq: 5, inflight: 5 });
    }
  });

  it('live → offline(catch-up), counters kept', () => {
    expect(disconnect(live(7, 7))).toEqual({ phase: 'offline', next: 'catch-up', seq: 7, inflight: 7 });
    expect(disconnect(live(2))).toEqual({ phase: 'offline', next: 'catch-up', seq: 2, inflight: undefined });
  });

  it('restoring → offline(catch-up), counters kept (the next open finds out whether the restore landed)', () => {
    expect(disconnect(restoringState(20, 6, 6))).toEqual({ phase: 'offline', next: 'catch-up', seq: 6, inflight: 6 });
  });

  it('offline and closed are returned unchanged (the same object)', () => {
    for (const s of [initial, offline('reset', 3, 3), closed]) expect(disconnect(s)).toBe(s);
  });
});

describe('resync', () => {
  it('live → opening(kind) under the new rid, and sends that open; counters kept', () => {
    for (const kind of KINDS) {
      const t = resync(live(7, 7), kind, 40);
      expect(t.state).toEqual({ phase: 'opening', kind, rid: 40, seq: 7, inflight: 7 });
      expect(t.open).toEqual({ kind, rid: 40 });
    }
  });

  it('opening(weaker) + a stronger kind → opening(stronger) under the new rid, sent; the old rid is no longer current', () => {
    const pairs: Array<[OpenKind, OpenKind]> = [
      ['catch-up', 'snapshot'],
      ['catch-up', 'reset'],
      ['snapshot', 'reset'],
    ];
    for (const [weak, strong] of pairs) {
      const before = opening(weak, 10, 5, 5);
      const t = resync(before, strong, 41);
      expect(t.state).toEqual({ phase: 'opening', kind: strong, rid: 41, seq: 5, inflight: 5 });
      expect(t.open).toEqual({ kind: strong, rid: 41 });
      expect(isCurrent(t.state, 10)).toBe(false);
      expect(isCurrent(t.state, 41)).toBe(true);
    }
  });

  it('opening(k) + the same or a weaker kind → unchanged (same object), nothing sent, the old rid still current', () => {
    for (const have of KINDS) {
      for (const want of KINDS) {
        if (stronger(have, want) !== have) continue;
        const before = opening(have, 10);
        const t = resync(before, want, 42);
        expect(t.state).toBe(before);
        expect(t.open).toBeUndefined();
        expect(isCurrent(t.state, 10)).toBe(true);
      }
    }
  });

  it('offline(next) → offline(stronger(next, kind)), nothing sent, counters kept', () => {
    for (const next of KINDS) {
      for (const kind of KINDS) {
        const t = resync(offline(next, 3, 3), kind, 43);
        expect(t.state).toEqual({ phase: 'offline', next: stronger(next, kind), seq: 3, inflight: 3 });
        expect(t.open).toBeUndefined();
      }
    }
    // A catch-up wish does not weaken a pending snapshot.
    expect(resync(initial, 'catch-up', 43).state).toEqual(initial);
  });

  it('restoring and closed → unchanged (same object), nothing sent', () => {
    for (const s of [restoringState(), closed]) {
      for (const kind of KINDS) {
        const t = resync(s, kind, 44);
        expect(t.state).toBe(s);
        expect(t.open).toBeUndefined();
      }
    }
  });
});

describe('retryOpen and retryRestore', () => {
  it('retryOpen: opening(kind, rid) → opening(kind, new rid), sending the same kind under the new rid', () => {
    for (const kind of KINDS) {
      const t = retryOpen(opening(kind, 10, 5, 5), 11);
      expect(t.state).toEqual({ phase: 'opening', kind, rid: 11, seq: 5, inflight: 5 });
      expect(t.open).toEqual({ kind, rid: 11 });
      expect(isCurrent(t.state, 10)).toBe(false);
      expect(isCurrent(t.state, 11)).toBe(true);
    }
  });

  it('retryOpen: every other phase is unchanged (same object) and nothing is sent', () => {
    for (const s of SAMPLES.filter((x) => x.phase !== 'opening')) {
      const t = retryOpen(s, 99);
      expect(t.state).toBe(s);
      expect(t.open).toBeUndefined();
    }
  });

  it('retryRestore: restoring(rid) → restoring(new rid), counters kept; the old rid is stale', () => {
    const s = retryRestore(restoringState(20, 6, 6), 21);
    expect(s).toEqual({ phase: 'restoring', rid: 21, seq: 6, inflight: 6 });
    expect(isCurrent(s, 20)).toBe(false);
    expect(isCurrent(s, 21)).toBe(true);
  });

  it('retryRestore: every other phase is unchanged (same object)', () => {
    for (const s of SAMPLES.filter((x) => x.phase !== 'restoring')) expect(retryRestore(s, 99)).toBe(s);
  });
});

describe('isCurrent', () => {
  it('accepts only the current rid of an opening or restoring state', () => {
    expect(isCurrent(opening('snapshot', 10), 10)).toBe(true);
    expect(isCurrent(opening('snapshot', 10), 9)).toBe(false);
    expect(isCurrent(opening('snapshot', 10), undefined)).toBe(false);
    expect(isCurrent(restoringState(20), 20)).toBe(true);
    expect(isCurrent(restoringState(20), 21)).toBe(false);
    expect(isCurrent(restoringState(20), undefined)).toBe(false);
  });

  it('accepts no rid at all while offline, live or closed', () => {
    for (const s of SAMPLES.filter((x) => x.phase !== 'opening' && x.phase !== 'restoring')) {
      for (const rid of [undefined, 0, 1, 4, 10, 20]) expect(isCurrent(s, rid)).toBe(false);
    }
  });
});

describe('opened', () => {
  it('snapshot: opening → live with the server seq as authoritative (even lower) and nothing in flight', () => {
    expect(opened(opening('snapshot', 10, 5, 5), 3, true)).toEqual({ phase: 'live', seq: 3, inflight: undefined });
    expect(opened(opening('reset', 10, 5, 5), 5, true)).toEqual({ phase: 'live', seq: 5, inflight: undefined });
    expect(opened(opening('snapshot', 10, 2), 0, true)).toEqual({ phase: 'live', seq: 0, inflight: undefined });
  });

  it('catch-up: opening → live with the larger of the two seqs and the op in flight kept', () => {
    expect(opened(opening('catch-up', 10, 5, 5), 4, false)).toEqual({ phase: 'live', seq: 5, inflight: 5 });
    expect(opened(opening('catch-up', 10, 5, 5), 5, false)).toEqual({ phase: 'live', seq: 5, inflight: 5 });
    expect(opened(opening('catch-up', 10, 2), 6, false)).toEqual({ phase: 'live', seq: 6, inflight: undefined });
    expect(opened(opening('catch-up', 10, 6), 2, false)).toEqual({ phase: 'live', seq: 6, inflight: undefined });
  });

  it('throws LifecycleError("opened") unless opening', () => {
    for (const s of SAMPLES.filter((x) => x.phase !== 'opening')) {
      for (const snapshot of [true, false]) {
        const e = thrown(() => opened(s, 0, snapshot), LifecycleError);
        expect(e.event).toBe('opened');
        expect(e.phase).toBe(s.phase);
      }
    }
  });
});

describe('restoring and reset', () => {
  it('restoring: opening → restoring under the rid, counters kept', () => {
    expect(restoring(opening('catch-up', 10, 5, 5), 30)).toEqual({ phase: 'restoring', rid: 30, seq: 5, inflight: 5 });
  });

  it('restoring: throws LifecycleError("lost") unless opening', () => {
    for (const s of SAMPLES.filter((x) => x.phase !== 'opening')) {
      const e = thrown(() => restoring(s, 30), LifecycleError);
      expect(e.event).toBe('lost');
      expect(e.phase).toBe(s.phase);
    }
  });

  it('reset: opening or restoring → opening(reset) under the rid, sending that open; counters kept', () => {
    for (const s of [opening('catch-up', 10, 5, 5), opening('reset', 10, 5, 5), restoringState(20, 5, 5)]) {
      const t: Transition = reset(s, 31);
      expect(t.state).toEqual({ phase: 'opening', kind: 'reset', rid: 31, seq: 5, inflight: 5 });
      expect(t.open).toEqual({ kind: 'reset', rid: 31 });
    }
  });

  it('reset: throws LifecycleError("reset") while offline, live or closed', () => {
    for (const s of SAMPLES.filter((x) => x.phase !== 'opening' && x.phase !== 'restoring')) {
      const e = thrown(() => reset(s, 31), LifecycleError);
      expect(e.event).toBe('reset');
      expect(e.phase).toBe(s.phase);
    }
  });
});

describe('send, acknowledged, refused, adoptSeq', () => {
  it('send: live with nothing in flight → live with seq + 1 in flight', () => {
    expect(send(live(4))).toEqual({ phase: 'live', seq: 5, inflight: 5 });
    expect(send(live(0))).toEqual({ phase: 'live', seq: 1, inflight: 1 });
  });

  it('send: throws LifecycleError("send") when not live, or live with an op in flight', () => {
    for (const s of SAMPLES.filter((x) => x.phase !== 'live')) {
      const e = thrown(() => send(s), LifecycleError);
      expect(e.event).toBe('send');
      expect(e.phase).toBe(s.phase);
    }
    const e = thrown(() => send(live(7, 7)), LifecycleError);
    expect(e.event).toBe('send');
    expect(e.phase).toBe('live');
  });

  it('acknowledged: nothing in flight afterwards, phase and everything else kept, in every phase but closed', () => {
    expect(acknowledged(live(7, 7))).toEqual({ phase: 'live', seq: 7, inflight: undefined });
    expect(acknowledged(offline('catch-up', 3, 3))).toEqual({ phase: 'offline', next: 'catch-up', seq: 3, inflight: undefined });
    expect(acknowledged(opening('snapshot', 11, 5, 5))).toEqual({
      phase: 'opening',
      kind: 'snapshot',
      rid: 11,
      seq: 5,
      inflight: undefined,
    });
    expect(acknowledged(restoringState(21, 6, 6))).toEqual({ phase: 'restoring', rid: 21, seq: 6, inflight: undefined });
    expect(acknowledged(live(4))).toEqual(live(4));
  });

  it('acknowledged: throws LifecycleError("ack") when closed', () => {
    const e = thrown(() => acknowledged(closed), LifecycleError);
    expect(e.event).toBe('ack');
    expect(e.phase).toBe('closed');
  });

  it('refused: seq goes back to inflight − 1 (reused by the next op), nothing in flight, phase kept', () => {
    expect(refused(live(7, 7))).toEqual({ phase: 'live', seq: 6, inflight: undefined });
    expect(refused(live(1, 1))).toEqual({ phase: 'live', seq: 0, inflight: undefined });
    expect(refused(offline('reset', 3, 3))).toEqual({ phase: 'offline', next: 'reset', seq: 2, inflight: undefined });
    expect(refused(opening('catch-up', 12, 9, 9))).toEqual({ phase: 'opening', kind: 'catch-up', rid: 12, seq: 8, inflight: undefined });
    expect(refused(restoringState(22, 5, 5))).toEqual({ phase: 'restoring', rid: 22, seq: 4, inflight: undefined });
    // The next send reuses the refused seq.
    expect(send(refused(live(7, 7)))).toEqual({ phase: 'live', seq: 7, inflight: 7 });
  });

  it('refused: throws LifecycleError("refuse") when closed or when nothing is in flight', () => {
    for (const s of SAMPLES.filter((x) => x.phase === 'closed' || x.inflight === undefined)) {
      const e = thrown(() => refused(s), LifecycleError);
      expect(e.event).toBe('refuse');
      expect(e.phase).toBe(s.phase);
    }
  });

  it('adoptSeq: seq becomes the server’s (lower or higher), nothing in flight, phase kept', () => {
    expect(adoptSeq(live(7, 7), 7)).toEqual({ phase: 'live', seq: 7, inflight: undefined });
    expect(adoptSeq(live(7, 7), 5)).toEqual({ phase: 'live', seq: 5, inflight: undefined });
    expect(adoptSeq(live(2), 9)).toEqual({ phase: 'live', seq: 9, inflight: undefined });
    expect(adoptSeq(offline('snapshot', 3, 3), 1)).toEqual({ phase: 'offline', next: 'snapshot', seq: 1, inflight: undefined });
    expect(adoptSeq(opening('reset', 13, 4, 4), 2)).toEqual({ phase: 'opening', kind: 'reset', rid: 13, seq: 2, inflight: undefined });
    expect(adoptSeq(restoringState(23, 4, 4), 3)).toEqual({ phase: 'restoring', rid: 23, seq: 3, inflight: undefined });
  });

  it('adoptSeq: throws LifecycleError("adopt seq") when closed', () => {
    const e = thrown(() => adoptSeq(closed, 1), LifecycleError);
    expect(e.event).toBe('adopt seq');
    expect(e.phase).toBe('closed');
  });

  it('no transition mutates its input', () => {
    const s = live(7, 7);
    const copy = { ...s };
    acknowledged(s);
    refused(s);
    adoptSeq(s, 1);
    disconnect(s);
    resync(s, 'reset', 1);
    expect(s).toEqual(copy);
    const o = opening('catch-up', 10, 5, 5);
    const oCopy = { ...o };
    retryOpen(o, 11);
    resync(o, 'reset', 12);
    opened(o, 9, false);
    restoring(o, 13);
    reset(o, 14);
    expect(o).toEqual(oCopy);
  });
});

// ─── invariants over random event sequences ─────────────────────────────────────────────────

type Event =
  | { readonly kind: 'connect' }
  | { readonly kind: 'disconnect' }
  | { readonly kind: 'resync'; readonly open: OpenKind }
  | { readonly kind: 'retryOpen' }
  | { readonly kind: 'retryRestore' }
  /** The server's seq, as a fraction of the client's (a server never applied more than was sent). */
  | { readonly kind: 'opened'; readonly seqShare: number; readonly snapshot: boolean }
  | { readonly kind: 'restoring' }
  | { readonly kind: 'reset' }
  | { readonly kind: 'send' }
  | { readonly kind: 'ack' }
  | { readonly kind: 'refused' }
  | { readonly kind: 'adoptSeq'; readonly seqShare: number }
  | { readonly kind: 'close' };

const share = fc.double({ min: 0, max: 1, noNaN: true });
/** Events weighted so that runs reach every phase; `close` is rare, or little else would run. */
const event: fc.Arbitrary<Event> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'connect' as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'disconnect' as const }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('resync' as const), open: fc.constantFrom(...KINDS) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'retryOpen' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'retryRestore' as const }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('opened' as const), seqShare: share, snapshot: fc.boolean() }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'restoring' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'reset' as const }) },
  { weight: 8, arbitrary: fc.constant({ kind: 'send' as const }) },
  { weight: 4, arbitrary: fc.constant({ kind: 'ack' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'refused' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('adoptSeq' as const), seqShare: share }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'close' as const }) },
);

/** Whether `e` is legal in `s`, as the doc comments say (an illegal one must throw). */
function legal(s: Lifecycle, e: Event): boolean {
  switch (e.kind) {
    case 'connect':
      return s.phase === 'offline';
    case 'opened':
    case 'restoring':
      return s.phase === 'opening';
    case 'reset':
      return s.phase === 'opening' || s.phase === 'restoring';
    case 'send':
      return s.phase === 'live' && s.inflight === undefined;
    case 'ack':
    case 'adoptSeq':
      return s.phase !== 'closed';
    case 'refused':
      return s.phase !== 'closed' && s.inflight !== undefined;
    default:
      return true; // disconnect, resync, retries and close never throw
  }
}

function seqOf(s: Lifecycle): number {
  return s.phase === 'closed' ? 0 : s.seq;
}

/** Applies `e` to `s` with fresh rid `rid`; returns the next state and the open to send, if any. */
function step(s: Lifecycle, e: Event, rid: number): Transition {
  switch (e.kind) {
    case 'connect':
      return connect(s, rid);
    case 'disconnect':
      return { state: disconnect(s) };
    case 'resync':
      return resync(s, e.open, rid);
    case 'retryOpen':
      return retryOpen(s, rid);
    case 'retryRestore':
      return { state: retryRestore(s, rid) };
    case 'opened':
      return { state: opened(s, Math.floor(e.seqShare * seqOf(s)), e.snapshot) };
    case 'restoring':
      return { state: restoring(s, rid) };
    case 'reset':
      return reset(s, rid);
    case 'send':
      return { state: send(s) };
    case 'ack':
      return { state: acknowledged(s) };
    case 'refused':
      return { state: refused(s) };
    case 'adoptSeq':
      return { state: adoptSeq(s, Math.floor(e.seqShare * seqOf(s))) };
    case 'close':
      return { state: closed };
  }
}

describe('lifecycle invariants', () => {
  it('over random event sequences (illegal ones throw LifecycleError and are skipped): inflight is undefined or equals seq, seq ≥ 0, closed stays closed, and every open request sent carries the rid isCurrent accepts (and the kind) of the resulting state', () => {
    let sawOpen = 0;
    let sawLiveInflight = 0;
    let sawRestoring = 0;
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 80, size: 'max' }), (events) => {
        let s: Lifecycle = initial;
        let rid = 0;
        for (const e of events) {
          rid += 1;
          if (!legal(s, e)) {
            const before = s;
            expect(() => step(before, e, rid)).toThrow(LifecycleError);
            continue;
          }
          const wasClosed = s.phase === 'closed';
          const t = step(s, e, rid);
          s = t.state;
          if (wasClosed) expect(s.phase).toBe('closed');
          if (t.open !== undefined) {
            sawOpen++;
            expect(t.open.rid).toBe(rid);
            expect(isCurrent(s, t.open.rid)).toBe(true);
            expect(s.phase).toBe('opening');
            if (s.phase === 'opening') expect(s.kind).toBe(t.open.kind);
          }
          if (s.phase !== 'closed') {
            expect(Number.isSafeInteger(s.seq)).toBe(true);
            expect(s.seq).toBeGreaterThanOrEqual(0);
            if (s.inflight !== undefined) expect(s.inflight).toBe(s.seq);
            if (s.phase === 'live' && s.inflight !== undefined) sawLiveInflight++;
            if (s.phase === 'restoring') sawRestoring++;
          }
        }
      }),
      { numRuns: 2000 },
    );
    // The generator reaches the interesting states.
    expect(sawOpen).toBeGreaterThan(100);
    expect(sawLiveInflight).toBeGreaterThan(100);
    expect(sawRestoring).toBeGreaterThan(100);
  });
});
