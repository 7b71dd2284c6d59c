/**
 * Catching up far behind: a submission before it joins its document's queue, and an open.
 *
 * A submission whose base version is far behind the head must be rebased over every op since
 * (the only result equal to what its client computes; see `document-state.ts`). Done inside the
 * document's queue, reading that history from the store and transforming over it would stall
 * every other editor of the document, and, done in one go on the one event loop, every other
 * document too. So the sequencer first rebases such a submission here, outside the queue: over
 * the committed history, read in chunks, transforming op by op exactly as the queue would,
 * yielding to the event loop between chunks. What is left (the ops committed meanwhile) is done
 * in the queue as for any late op.
 *
 * A client that opens far behind is sent that history too; it is read the same way
 * ({@link readHistory}). Chunks hold at most {@link CATCH_UP_CHUNK} ops and about
 * {@link CATCH_UP_CHUNK_BYTES} of op JSON.
 *
 * The rebased submission is the same submission in the eyes of exactly-once: it is what its
 * client would have sent had it received those ops first, and resubmissions are recognised
 * across such rebases. To keep that exact, the catch-up stops before any op of the same client
 * with the same or a later seq (a copy of this submission that landed first must be found as
 * one, against the submission's base before it).
 */
import type { Component } from '../ot/index.js';
import { Rebasing } from './rebasing.js';
import { opBytes } from './retention.js';
import type { OpRecord, Store } from './store.js';

/** Most history ops read (and transformed over) per chunk, between yields to the event loop. */
export const CATCH_UP_CHUNK = 1000;

/**
 * About how much op JSON (code units, {@link opBytes}) a chunk holds: after each chunk the
 * next one is sized from the ops just read, so that a chunk of large ops (1,000 ops of 4 kB
 * would be 4 MB, read, parsed and transformed in one go) holds up the event loop no longer
 * than one of small ops.
 */
export const CATCH_UP_CHUNK_BYTES = 256 * 1024;

/** Fewest ops per chunk. */
const MIN_CHUNK = 8;

/** The size of the chunk after one of `ops.length` ops whose JSON was `length` code units. */
function nextChunk(count: number, length: number): number {
  if (count === 0 || length <= 0) return CATCH_UP_CHUNK;
  return Math.max(MIN_CHUNK, Math.min(CATCH_UP_CHUNK, Math.floor((CATCH_UP_CHUNK_BYTES * count) / length)));
}

/** Where a catch-up got to: the submission rebased to `baseVersion`. */
export interface CaughtUp {
  readonly baseVersion: number;
  readonly op: Component[];
}

/** What is caught up: a submission's identity, base version and op. */
export interface CatchUpRequest {
  readonly docId: string;
  readonly clientId: string;
  readonly seq: number;
  readonly baseVersion: number;
  readonly op: Component[];
}

/**
 * The committed ops with from < version ≤ to, read from `store` in chunks (at most
 * {@link CATCH_UP_CHUNK} ops, about {@link CATCH_UP_CHUNK_BYTES}), yielding to the event loop between chunks (a long catch-up read
 * does not stall other documents). A suffix if some were trimmed meanwhile, as `getOps`.
 * Undefined, with the reading stopped, once the ops read pass `maxLength` code units of JSON
 * ({@link opBytes}): a catch-up too long to send is not held in memory whole.
 */
export async function readHistory(store: Store, docId: string, from: number, to: number, maxLength = Infinity): Promise<OpRecord[] | undefined> {
  const out: OpRecord[] = [];
  let length = 0;
  let chunk = CATCH_UP_CHUNK;
  for (let v = from; v < to; ) {
    const ops = await store.getOps(docId, v, Math.min(to, v + chunk));
    const first = ops[0];
    if (first === undefined) break;
    if (first.version !== v + 1) out.length = 0; // trimmed under us: keep the suffix only
    let read = 0;
    for (const r of ops) {
      out.push(r);
      read += opBytes(r.op);
    }
    length += read;
    if (length > maxLength) return undefined;
    chunk = nextChunk(ops.length, read);
    v = (ops[ops.length - 1] as OpRecord).version;
    if (v < to) await nextTurn();
  }
  return out;
}

/** Resolves on the next turn of the event loop, after pending I/O callbacks. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Rebases `request.op` over the committed ops after its base version up to `target`, one op
 * at a time with history first at ties (`transform(op, past, 'right')`), reading `store` in
 * chunks as {@link readHistory} does and yielding between them. Stops early, with what it
 * reached, at a version the store no longer holds (trimmed meanwhile) or before an op of the
 * same client with a seq ≥ `request.seq`. Rejects with the store's error, or with
 * InvalidOperationError if the op does not fit its base version.
 */
export async function catchUp(store: Store, request: CatchUpRequest, target: number): Promise<CaughtUp> {
  let version = request.baseVersion;
  const rebasing = new Rebasing(request.op, target - version);
  let chunk = CATCH_UP_CHUNK;
  reading: while (version < target) {
    const ops = await store.getOps(request.docId, version, Math.min(target, version + chunk));
    if (ops[0]?.version !== version + 1) break;
    let read = 0;
    for (const past of ops) {
      if (past.clientId === request.clientId && past.seq >= request.seq) break reading;
      rebasing.over(past.op);
      version = past.version;
      read += opBytes(past.op);
    }
    chunk = nextChunk(ops.length, read);
    await nextTurn();
  }
  return { baseVersion: version, op: rebasing.result() };
}
