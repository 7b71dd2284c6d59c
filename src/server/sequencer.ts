/**
 * The authoritative sequencer: one serial queue per document over a pluggable {@link Store}.
 *
 * For each document, submissions are taken in arrival order in batches: every submission of a
 * batch is decided and applied in memory (one at a time, rebased over history one op at a
 * time), then the whole batch is appended to the store in one transaction (group commit), and
 * only then are the submitters answered and the applied ops published. A failed append
 * discards the in-memory state (reloaded from the store) and answers nothing as applied; if
 * the append had landed after all (its answer was lost), the reload finds its ops and
 * publishes them then, so every committed op is published exactly once, in order.
 * Different documents proceed independently.
 *
 * Several sequencers (one per server) may share one store: each append lands only on the head
 * its writer read, a batch that lost the race is retried on the reloaded state (up to
 * `conflictRetries` times), and {@link Sequencer.refresh} takes in and publishes what the
 * others committed, so each sequencer still publishes every committed op exactly once, in order.
 */
import {
  type Component,
  type OperationLengths,
  apply,
  checkOperation,
  holdsInserts,
  isNoop,
  mergeText,
  normalize,
  targetLength,
} from '../ot/index.js';
import { isWellFormed } from '../ot/operation.js';
import { chainChecksum, isChecksum } from '../protocol/checksum.js';
import { opLength } from '../protocol/limits.js';
import { MAX_FORK_STEP } from '../protocol/parse.js';
import { ErrorCode, OtterError, invalidOpRefusal } from '../protocol/errors.js';
import { catchUp, readHistory } from './catch-up.js';
import { StorageCorruptError, verifyCatchUp, verifyChain, verifyHistory } from './integrity.js';
import { DocumentState, type Outcome, type Submission, isDuplicate, toClientMark } from './document-state.js';
import { describeStoreError } from './readiness.js';
import { type RetentionPolicy, checkRetention, countsBytes, trimPoint } from './retention.js';
import {
  type ClientMark,
  type OpRecord,
  type Recovery,
  type Snapshot,
  type Store,
  VersionConflictError,
} from './store.js';

/** Tunables of a {@link Sequencer}; every field has a documented default. */
export interface SequencerOptions {
  /** Take a snapshot whenever the head passes a multiple of this many versions. Default 1000. */
  snapshotEvery?: number;
  /**
   * How much op history each document keeps for late clients and time travel (see
   * `retention.ts`). Default: all of it. Memory is bounded separately by `memoryHistory`.
   */
  retention?: RetentionPolicy;
  /**
   * Ops per document kept in memory for rebasing late submissions (up to a sixteenth more
   * between trims: `DocumentState.trimRecent`). Default 1000.
   */
  memoryHistory?: number;
  /**
   * Most bytes of ops (`opBytes` in `retention.ts`: their JSON, in code units) kept in memory
   * across all loaded documents, on top of `memoryHistory`. Past it, the least recently used
   * documents drop their oldest committed ops (read from the store again when needed) until
   * the total is at most 7/8 of it; ops not yet committed are always kept. Gauged by
   * {@link Sequencer.historyBytes}. Default 64 MiB (67,108,864).
   */
  historyMemoryBytes?: number;
  /**
   * Client marks per document kept in memory, least recently used forgotten first (the store
   * holds every mark; a forgotten one is read again before its client's next submission is
   * decided). Marks of ops not yet committed are always kept. Default 4096.
   */
  cachedMarks?: number;
  /**
   * A submission based more than this many versions before the in-memory history is rebased
   * over the stored history outside its document's queue before it is queued, so that it
   * holds up no other editor (see `catch-up.ts`). Default 1000.
   */
  catchUpBeyond?: number;
  /** Largest op: inserted code units plus components. Default 1 MiB (1,048,576). */
  maxOpLength?: number;
  /** Largest document, in code units. Default 16 MiB (16,777,216). */
  maxDocLength?: number;
  /** Longest document id, in code units. Default 256. */
  maxDocIdLength?: number;
  /** Longest client key (the server scopes client ids by user), in code units. Default 512. */
  maxClientIdLength?: number;
  /** Unload a document idle for this many ms; 0 never unloads. Default 60,000. */
  idleTimeout?: number;
  /** Retries of a batch whose append lost a race to another writer. Default 5. */
  conflictRetries?: number;
  /**
   * Asked before a document idle for `idleTimeout` is unloaded: true keeps it. A server whose
   * store other servers write keeps the documents its connections have open, so that
   * {@link Sequencer.refresh} publishes every op committed elsewhere to them. Default: none kept.
   */
  keepLoaded?: (docId: string) => boolean;
  /**
   * Called with errors that have no caller to go to (a failed snapshot or trim), and with each
   * `StorageCorruptError` (a document refused as damaged: its callers get `storage-corrupt`).
   */
  onError?: (error: unknown, docId: string) => void;
  /**
   * What to do when the store turns out to have lost data of a document under this sequencer
   * (on a reload it holds an older version than was published, or another epoch). Without it
   * (the default) the document is refused as damaged (`storage-corrupt`) until the server
   * restarts: right for a file rolled back under a running process. With it, losing data is a
   * supported event of the store (a Redis emptied, or failed over to a replica that lacked
   * the last writes): the document is taken as the store now holds it, nothing of the lost
   * state is published again, the submissions queued on the lost state are refused with
   * `storage-failed`, and this is called with the document and what was found, so that the
   * server makes the document's clients open it again: their claims then contradict it, and
   * they restore what they hold (see {@link Sequencer.open} and {@link Sequencer.restore}).
   */
  onStoreLost?: (docId: string, detail: string) => void;
}

/** A request to apply `op`, made by `clientId` as its `seq`-th op on `docId` at `baseVersion`. */
export interface SubmitRequest {
  readonly docId: string;
  readonly clientId: string;
  readonly seq: number;
  readonly baseVersion: number;
  readonly op: readonly Component[];
  /** Authenticated user to attribute the op to (set by the server, never by the client). */
  readonly author?: string | undefined;
  /**
   * Asked when the submission is decided, after it waited in its document's queue and just
   * before it is applied: an error returned refuses it, with nothing applied. The server
   * passes one that refuses once the connection's access to the document was lowered
   * (`forbidden`, `read-only`). Called on the sequencer's hot path: keep it cheap; a throw
   * refuses the submission like a returned error.
   */
  readonly admit?: (() => OtterError | undefined) | undefined;
  /**
   * The epoch `baseVersion` belongs to: the one the client opened. If the document has another
   * epoch when the submission is decided (its store lost it and it was made anew meanwhile),
   * the submission is refused with `not-open`, nothing applied: its versions name states of
   * the lost epoch, and the client must open the document again with its claim (and restore
   * what it holds). Without it, the submission is taken as based on the document's epoch.
   */
  readonly epoch?: string | undefined;
}

/** The answer to a submit: the version the op produced and the op as applied there. */
export type SubmitResult =
  /**
   * A new op, applied as `op` to produce `version`, where the document checksum is now
   * `checksum`; `depth`: how many history ops the submission was transformed against.
   */
  | {
      readonly duplicate: false;
      readonly version: number;
      readonly op: Component[];
      readonly checksum: number;
      readonly depth: number;
    }
  /**
   * A resubmission of an applied op: nothing was applied again. `op` and `checksum` (the
   * document checksum at `version`) are absent if that version left the history.
   */
  | {
      readonly duplicate: true;
      readonly version: number;
      readonly op: Component[] | undefined;
      readonly checksum: number | undefined;
    };

/**
 * What a client opening a document says it holds: the document's `epoch` and its checksum at
 * the version it opens from. The sequencer checks both before it sends a catch-up.
 */
export interface OpenClaim {
  readonly epoch: string;
  readonly checksum: number;
}

/** What every {@link OpenResult} says: where the document is and where the client stands. */
interface OpenHead {
  /** The document's incarnation id. */
  readonly epoch: string;
  /** The committed head. */
  readonly version: number;
  /** The document checksum at `version`. */
  readonly checksum: number;
  /** The client's last applied seq on this document (0 if none). */
  readonly seq: number;
}

/**
 * What {@link Sequencer.open} returns: a `snapshot` (the head's text), the catch-up `ops`, or
 * `lost`: the state the client claims is not this document's — another epoch, a version past
 * the head, or another checksum at that version — so the store lost data the client holds;
 * `recovered` tells what a client already restored of that lost epoch, if anything.
 */
export type OpenResult =
  | (OpenHead & { readonly kind: 'snapshot'; readonly text: string })
  | (OpenHead & { readonly kind: 'ops'; readonly ops: OpRecord[] })
  | (OpenHead & {
      readonly kind: 'lost';
      readonly recovered: { readonly version: number; readonly checksum: number } | undefined;
      /**
       * Under the document's own epoch (the store went back in time), its checksums at versions
       * spread evenly over the last {@link FORK_SPAN} at or below the claimed one, newest first,
       * as far as held in memory: the client finds between which two its line parts from this
       * one, and sends every version there with its restore, so that the merge starts exactly
       * where the lines part.
       */
      readonly sums?: ReadonlyArray<readonly [version: number, checksum: number]>;
    });

/** A client's request to restore a state the document lost (see {@link Sequencer.restore}). */
export interface RestoreRequest {
  readonly docId: string;
  readonly clientId: string;
  /** The lost state: the epoch the client knew, its version there and its checksum. */
  readonly lost: { readonly epoch: string; readonly version: number; readonly checksum: number };
  /**
   * Other versions of the lost epoch the client passed through, with their checksums, newest
   * first: where one matches this document's history, the two diverged after it.
   */
  readonly samples: ReadonlyArray<readonly [version: number, checksum: number]>;
  /** The client's text at the lost version. */
  readonly text: string;
  /**
   * The op the client had in flight on `text`, which may or may not have landed in the lost
   * state: merged with the text, and kept once where the document already holds it.
   */
  readonly op?: readonly Component[] | undefined;
  readonly author?: string | undefined;
  /** As {@link SubmitRequest.admit}: asked when the restore's turn comes, before anything is merged. */
  readonly admit?: (() => OtterError | undefined) | undefined;
}

/** What a restore did: merged the text as the op that produced `version`, or nothing. */
export interface RestoreResult {
  readonly applied: boolean;
  /** The head after the restore. */
  readonly version: number;
}

/**
 * What another writer sharing the store told of a document ({@link Sequencer.refresh}): each
 * field optional, each a claim the refresh checks against the store or the held state.
 */
export interface RefreshNews {
  /** The epoch the writer committed with. */
  readonly epoch?: string | undefined;
  /** Ops the writer committed, as its change hint carried them. */
  readonly ops?: readonly OpRecord[] | undefined;
  /** The head the store records, read after {@link Sequencer.held}. */
  readonly storedHead?: number | undefined;
  /** The checksum the store records at `storedHead`, when it records one. */
  readonly storedChecksum?: number | undefined;
}

/** Called once per committed op, in version order per document. */
export type AppliedListener = (docId: string, record: OpRecord) => void;

function unsettled(): void {
  throw new Error('a pending submission was settled before its promise existed');
}

/**
 * A queued submission: the validated request (it is the {@link Submission} the document
 * decides on) together with its promise's settlers and what its batch made of it. One object
 * per submit, since this is the sequencer's hot path.
 */
class Pending implements Submission {
  resolve: (r: SubmitResult) => void = unsettled;
  reject: (e: unknown) => void = unsettled;
  /** Set for a submission of a {@link Sequencer.submitMany} call: answered into its slot. */
  group: Answers | undefined = undefined;
  index = 0;
  attempts = 0;
  /** What the current batch decided for it, until it is answered. */
  outcome: Outcome | undefined = undefined;
  /** Its place in the document's queue, shared with reads (see {@link Entry.tickets}). */
  ticket = 0;
  /** Versions it was rebased over before it was queued (see `catch-up.ts`). */
  caughtUp = 0;
  /** As its client sent it, if it was caught up before it was queued. */
  sent: { readonly baseVersion: number; readonly op: Component[] } | undefined = undefined;

  /** `baseVersion`, `op` and `lengths` change once, if it is caught up (see {@link Sequencer}). */
  constructor(
    readonly docId: string,
    readonly clientId: string,
    readonly seq: number,
    public baseVersion: number,
    public op: Component[],
    public lengths: OperationLengths,
    readonly size: number,
    readonly author: string | undefined,
    readonly admit: (() => OtterError | undefined) | undefined,
    readonly epoch: string | undefined,
  ) {}

  /** The refusal for this submission on a document of `epoch`: its own check, then its epoch's. */
  refusal(epoch: string): OtterError | undefined {
    const refused = this.admit?.();
    if (refused !== undefined || this.epoch === undefined || this.epoch === epoch) return refused;
    return new OtterError(
      ErrorCode.NotOpen,
      `document ${JSON.stringify(this.docId)} lost the state this op was made on (epoch ${this.epoch}); open it again`,
    );
  }
}

/** A task's append that lost the race to another writer's: `refusal` if it is not tried again. */
class LostRace extends Error {
  override readonly name = 'LostRace';

  /** @param refusal what the caller is told if the task is not decided again. */
  constructor(readonly refusal: OtterError) {
    super(refusal.message);
  }
}

/** What one {@link Sequencer.submitMany} call is answered with: one entry per request. */
export type SubmitAnswer = SubmitResult | OtterError;

/** Collects the answers of one submitMany call and resolves its promise with the last one. */
class Answers {
  readonly results: SubmitAnswer[];
  private remaining: number;

  constructor(
    count: number,
    private readonly done: (answers: SubmitAnswer[]) => void,
  ) {
    this.results = new Array<SubmitAnswer>(count);
    this.remaining = count;
    if (count === 0) done(this.results);
  }

  settle(index: number, answer: SubmitAnswer): void {
    this.results[index] = answer;
    if (--this.remaining === 0) this.done(this.results);
  }
}

/**
 * The refusal for a store failure while `doing` something for `docId`: `storage-corrupt` for
 * data that failed an integrity check (retrying cannot help), else `storage-failed` (retry).
 */
function storageError(e: unknown, doing: string): OtterError {
  if (e instanceof OtterError) return e;
  if (e instanceof StorageCorruptError) return new OtterError(ErrorCode.StorageCorrupt, `${doing} failed: ${e.message}`);
  return new OtterError(ErrorCode.StorageFailed, `${doing} failed: ${String(e)}; retry`);
}

/** Answers a submission with its result. */
function answer(p: Pending, result: SubmitResult): void {
  if (p.group === undefined) p.resolve(result);
  else p.group.settle(p.index, result);
}

/** Answers a submission with a refusal (anything but an OtterError becomes storage-failed). */
function refuse(p: Pending, e: unknown): void {
  if (p.group === undefined) p.reject(e);
  else p.group.settle(p.index, e instanceof OtterError ? e : new OtterError(ErrorCode.StorageFailed, String(e)));
}

/**
 * The Pending whose promise is being constructed. Promise executors run synchronously, so one
 * shared executor can hand the settlers over without allocating a closure per submit.
 */
let settling: Pending | undefined;
function captureSettlers(resolve: (r: SubmitResult) => void, reject: (e: unknown) => void): void {
  const p = settling as Pending;
  settling = undefined;
  p.resolve = resolve;
  p.reject = reject;
}

/** Work that runs on the committed state between batches: a read, or a restore (async). */
interface Reader {
  readonly run: (state: DocumentState) => void | Promise<void>;
  readonly fail: (e: unknown) => void;
  readonly ticket: number;
}

/**
 * A document's queue. Submissions and reads take tickets from one counter in arrival order,
 * and a read runs only once every submission with a smaller ticket is decided (committed or
 * refused): the ordering law of opens (an open sees every earlier submit of its client).
 * Both lists stay in ticket order: a batch retried after a conflict goes back to the front.
 * A far-behind submission is caught up (`catch-up.ts`) before it takes its ticket; meanwhile
 * its client's reads (opens, restores, marks) wait for it, so the ordering law holds for them.
 */
interface Entry {
  state: DocumentState | undefined;
  /** Catch-ups in flight, by client: settled once the submission is queued (or refused). */
  catchUps: Map<string, Promise<void>>;
  /** The last version handed to the listeners (undefined before the first load). */
  published: number | undefined;
  /** The epoch of the document that version belongs to. */
  publishedEpoch: string | undefined;
  /** The checksum at that version: another one there in the store is another history. */
  publishedSum: number | undefined;
  pending: Pending[];
  readers: Reader[];
  tickets: number;
  draining: boolean;
  lastUsed: number;
  /** The bytes of `state.recent` counted in {@link Sequencer}'s history total (see fitHistory). */
  historyBytes: number;
  /** A {@link Sequencer.refresh} queued and not started yet: later calls join it. */
  refreshing: Promise<number> | undefined;
  /** The epoch a refresh was last told the document has, until a refresh runs. */
  hintedEpoch: string | undefined;
  /** Ops refreshes were handed (committed by another writer), until a refresh runs. */
  offered: OpRecord[];
  /** Whether a refresh was asked without ops since the last one ran: it reads the store. */
  unread: boolean;
  /**
   * Whether the store was found, since the last refresh ran, to record a head below what was
   * committed here, or another checksum at the committed head: it went back in time (heads
   * never fall; and was written again), and the document is reloaded.
   */
  storeWentBack: boolean;
}

const DEFAULTS = {
  snapshotEvery: 1000,
  memoryHistory: 1000,
  historyMemoryBytes: 64 * 1024 * 1024,
  cachedMarks: 4096,
  catchUpBeyond: 1000,
  maxOpLength: 1 << 20,
  maxDocLength: 1 << 24,
  maxDocIdLength: 256,
  maxClientIdLength: 512,
  idleTimeout: 60_000,
  conflictRetries: 5,
} as const;

function badRequest(message: string): OtterError {
  return new OtterError(ErrorCode.BadRequest, message);
}

function checkId(value: unknown, what: string, max: number): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw badRequest(`${what} must be a string of 1 to ${max} code units`);
  }
}

/**
 * {@link checkId}, and no lone surrogate: for client ids and epochs, which stores may keep as
 * UTF-8 (SQLite's text, Redis hash fields), where every lone surrogate becomes U+FFFD, so that
 * two ids differing only there would share one client mark. (Document ids may hold any code
 * units: every store keeps them apart.)
 */
function checkName(value: unknown, what: string, max: number): asserts value is string {
  checkId(value, what, max);
  if (!isWellFormed(value)) throw badRequest(`${what} must be well-formed UTF-16: it holds a lone surrogate`);
}

/**
 * Versions back from a claim over which {@link forkSums} spreads the document's checksums: 63
 * steps of at most {@link MAX_FORK_STEP}, so that between two neighbours a client has no more
 * versions to send than its restore leaves room for beside its newest.
 */
const FORK_SPAN = 63 * MAX_FORK_STEP;

/**
 * The `sums` of a `lost` open answer (see {@link OpenResult}) for a claim at version `from` of
 * `epoch`: none for another epoch (the merge then starts from the empty text), else the
 * checksums `s` holds in memory at 64 versions at most, spread evenly from min(`from`, head)
 * back over {@link FORK_SPAN} versions, newest first.
 */
function forkSums(s: DocumentState, epoch: string, from: number): { sums?: Array<[number, number]> } {
  if (epoch !== s.epoch) return {};
  const hi = Math.min(from, s.committed);
  const lo = Math.max(s.recentStart, hi - FORK_SPAN, 0);
  if (hi < lo) return {};
  const step = Math.max(1, Math.ceil((hi - lo) / 63));
  const sums: Array<[number, number]> = [];
  for (let v = hi; v >= lo && sums.length < 64; v -= step) {
    const sum = s.checksumAt(v);
    if (sum !== undefined) sums.push([v, sum]);
  }
  const last = s.checksumAt(lo);
  if (sums.length < 64 && last !== undefined && sums[sums.length - 1]?.[0] !== lo) sums.push([lo, last]);
  return { sums };
}

/** Notes `s`'s committed head (its version, epoch and checksum) as the last one `entry` published. */
function markPublished(entry: Entry, s: DocumentState): void {
  entry.published = s.committed;
  entry.publishedEpoch = s.epoch;
  entry.publishedSum = s.checksumAt(s.committed);
}

function checkVersion(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw badRequest(`${what} must be a non-negative safe integer, got ${String(value)}`);
  }
}

function positiveOption(options: Omit<SequencerOptions, 'retention'>, key: keyof typeof DEFAULTS, min: number): number {
  const value = options[key] ?? DEFAULTS[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`option ${key} must be an integer ≥ ${min}, got ${String(value)}`);
  }
  return value;
}

const NO_OPS: readonly OpRecord[] = Object.freeze([]);

/** Catch-ups (see `catch-up.ts`) running at once; more wait their turn (bounds their memory). */
const MAX_CATCH_UPS = 2;

/**
 * The records of `offered` (in any order, possibly repeated or stale) with versions head + 1,
 * head + 2, … as far as they run on without a gap, in version order.
 */
function continuing(offered: readonly OpRecord[], head: number): OpRecord[] {
  if (offered.length === 0) return [];
  const byVersion = new Map<number, OpRecord>();
  for (const r of offered) if (r.version > head) byVersion.set(r.version, r);
  const run: OpRecord[] = [];
  for (let r = byVersion.get(head + 1); r !== undefined; r = byVersion.get(head + 1 + run.length)) run.push(r);
  return run;
}

/** Most samples of a lost epoch a recovery keeps. */
const RECOVERY_SAMPLES = 64;

/** Samples of a lost epoch, newest first, without duplicates, at most RECOVERY_SAMPLES. */
function mergeSamples(
  a: ReadonlyArray<readonly [number, number]>,
  b: ReadonlyArray<readonly [number, number]>,
): Array<[number, number]> {
  const byVersion = new Map<number, number>();
  for (const [v, sum] of [...a, ...b]) byVersion.set(v, sum);
  return [...byVersion].sort((x, y) => y[0] - x[0]).slice(0, RECOVERY_SAMPLES);
}

/**
 * Whether an op sent on version `lost.version` of a lost epoch is known to have landed as the
 * next version there: a restoring client passed that version with the checksum the op makes.
 */
function landed(lost: RestoreRequest['lost'], op: readonly Component[], known: Recovery): boolean {
  const next = chainChecksum(lost.checksum, normalize(op));
  return known.samples.some(([v, sum]) => v === lost.version + 1 && sum === next);
}

/** What a recovery says to a client that held the same lost epoch. */
function recoveredOf(r: Recovery | undefined): { version: number; checksum: number } | undefined {
  return r === undefined ? undefined : { version: r.version, checksum: r.checksum };
}

/**
 * Whether `recorded`, the recovery of an earlier restore of `claim.epoch`, certainly holds the
 * claimed state: it is that state, or one of its restorers passed it. What an open answer may
 * name as recovered. Under the document's own epoch that is all it may name: a store that went
 * back in time and kept its epoch (a failover to a replica that lacked the last writes) may do so
 * again later, on the line written since, and a recovery of the earlier line at a higher version
 * would tell a client of the later line that it lost nothing. A restore, which has the client's
 * samples, decides the rest (see {@link Sequencer.restore}).
 */
function holdsClaim(recorded: Recovery, claim: { readonly version: number; readonly checksum: number }): boolean {
  return (
    (recorded.version === claim.version && recorded.checksum === claim.checksum) ||
    recorded.samples.some(([v, sum]) => v === claim.version && sum === claim.checksum)
  );
}

/** What an open answer names as recovered of `claim`'s epoch (see {@link holdsClaim}). */
function recoveredFor(
  recorded: Recovery | undefined,
  claim: { readonly epoch: string; readonly version: number; readonly checksum: number },
  epoch: string,
): { version: number; checksum: number } | undefined {
  if (recorded === undefined || (claim.epoch === epoch && !holdsClaim(recorded, claim))) return undefined;
  return recoveredOf(recorded);
}

/** Told which documents a {@link Sequencer} holds: see {@link Sequencer.watchDocuments}. */
export interface DocumentWatcher {
  /** `docId` is now held (listed by `documents()`); it is loaded after this returns. */
  held(docId: string): void;
  /** `docId` was unloaded. */
  dropped(docId: string): void;
}

/** See the file comment. */
export class Sequencer {
  private readonly docs = new Map<string, Entry>();
  private readonly listeners = new Set<AppliedListener>();
  private readonly watchers = new Set<DocumentWatcher>();
  private readonly limits: Required<Omit<SequencerOptions, 'onError' | 'retention' | 'keepLoaded' | 'onStoreLost'>>;
  private readonly keepLoaded: (docId: string) => boolean;
  private readonly retention: RetentionPolicy;
  private readonly onError: (error: unknown, docId: string) => void;
  private readonly onStoreLost: ((docId: string, detail: string) => void) | undefined;
  private readonly sweeper: ReturnType<typeof setInterval> | undefined;
  private closed = false;
  private readonly idle = new Set<() => void>();
  private catchUpsRunning = 0;
  private readonly catchUpWaiting: Array<() => void> = [];
  /** The sum of every entry's `historyBytes`: the history held as last counted (see fitHistory). */
  private historyHeld = 0;

  /** Creates a sequencer over `store`; throws RangeError on contradictory options. */
  constructor(
    readonly store: Store,
    options: SequencerOptions = {},
  ) {
    this.limits = {
      snapshotEvery: positiveOption(options, 'snapshotEvery', 1),
      memoryHistory: positiveOption(options, 'memoryHistory', 0),
      historyMemoryBytes: positiveOption(options, 'historyMemoryBytes', 0),
      cachedMarks: positiveOption(options, 'cachedMarks', 0),
      catchUpBeyond: positiveOption(options, 'catchUpBeyond', 0),
      maxOpLength: positiveOption(options, 'maxOpLength', 1),
      maxDocLength: positiveOption(options, 'maxDocLength', 1),
      maxDocIdLength: positiveOption(options, 'maxDocIdLength', 1),
      maxClientIdLength: positiveOption(options, 'maxClientIdLength', 1),
      idleTimeout: positiveOption(options, 'idleTimeout', 0),
      conflictRetries: positiveOption(options, 'conflictRetries', 0),
    };
    this.retention = checkRetention(options.retention ?? {});
    this.onError = options.onError ?? (() => {});
    this.onStoreLost = options.onStoreLost;
    this.keepLoaded = options.keepLoaded ?? (() => false);
    const every = this.limits.idleTimeout;
    if (every > 0) {
      this.sweeper = setInterval(() => this.unloadIdle(Date.now() - every), Math.max(10, every / 2));
      this.sweeper.unref?.();
    }
  }

  /** Registers a listener for committed ops; returns a function that removes it. */
  onApplied(listener: AppliedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Registers a watcher of the held documents (those {@link documents} lists): told of each
   * document as it starts being held, before it is loaded, and as it is unloaded. Returns a
   * function that removes it. A throwing watcher is reported through `onError`.
   */
  watchDocuments(watcher: DocumentWatcher): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  /** Tells the watchers that `docId` is now held (`held`) or no longer is. */
  private watched(docId: string, held: boolean): void {
    for (const w of this.watchers) {
      try {
        if (held) w.held(docId);
        else w.dropped(docId);
      } catch (e) {
        this.onError(e, docId);
      }
    }
  }

  /** Largest op accepted: components plus inserted code units. */
  get maxOpLength(): number {
    return this.limits.maxOpLength;
  }

  /** Largest document, in code units. */
  get maxDocLength(): number {
    return this.limits.maxDocLength;
  }

  /** Number of documents held in memory. */
  get openDocuments(): number {
    return this.docs.size;
  }

  /**
   * Bytes of op history (`opBytes` in `retention.ts`) the loaded documents hold in memory:
   * what `historyMemoryBytes` bounds. O(loaded documents).
   */
  get historyBytes(): number {
    let bytes = 0;
    for (const e of this.docs.values()) bytes += e.state?.recentBytes ?? 0;
    return bytes;
  }

  /**
   * Applies (or recognises as already applied) one op. Resolves after the op is durable in
   * the store, with the version it produced and the op as applied. Rejects with an
   * {@link OtterError} and nothing applied on: `bad-request`, `invalid-op`, `too-large`,
   * `version-ahead`, `history-gone`, `seq-gap`, `seq-reused`, `seq-stale`, `storage-failed`,
   * `closed`. Exactly once: a resubmitted (clientId, seq) is answered with its original version.
   */
  submit(request: SubmitRequest): Promise<SubmitResult> {
    let pending: Pending;
    try {
      pending = this.validate(request);
    } catch (e) {
      return Promise.reject(e);
    }
    settling = pending;
    const promise = new Promise<SubmitResult>(captureSettlers);
    this.admit(this.entry(pending.docId), pending);
    return promise;
  }

  /**
   * Queues `pending`, first catching it up outside the queue if it is far behind (see
   * `catch-up.ts`); behind any catch-up of the same client still in flight, so that a
   * client's submissions are queued in the order they came.
   */
  private admit(entry: Entry, pending: Pending): void {
    const prior = entry.catchUps.get(pending.clientId);
    if (prior === undefined && !this.farBehind(entry, pending)) {
      this.enqueue(entry, pending);
      return;
    }
    const work = (prior ?? Promise.resolve()).then(async () => {
      try {
        // Refused now rather than after a rebase that would be thrown away (decided again when queued).
        const refusal = entry.state === undefined ? pending.admit?.() : pending.refusal(entry.state.epoch);
        if (refusal !== undefined) throw refusal;
        if (!(await this.worthCatchingUp(entry, pending)) || (await this.catchUpPending(entry, pending))) this.enqueue(entry, pending);
      } catch (e) {
        refuse(pending, e);
      }
    });
    const tracked = work.finally(() => {
      if (entry.catchUps.get(pending.clientId) === tracked) entry.catchUps.delete(pending.clientId);
      if (this.idle.size > 0) this.wakeIdle();
    });
    entry.catchUps.set(pending.clientId, tracked);
  }

  /**
   * Whether `pending` is based far enough before the in-memory history to be caught up first
   * (not if its seq skips ahead of its client's last applied one: the queue refuses it).
   */
  private farBehind(entry: Entry, pending: Pending): boolean {
    const state = entry.state;
    if (state === undefined || state.recentStart - pending.baseVersion <= this.limits.catchUpBeyond) return false;
    const mark = state.markOf(pending.clientId);
    return mark === undefined || pending.seq <= mark.seq + 1; // not cached: see worthCatchingUp
  }

  /**
   * {@link farBehind}, reading the client's mark from the store if it is not cached, so that
   * a seq that skips ahead is left to the queue to refuse, with no history read. The mark read
   * here is a hint, not cached (the queue decides on the mark as it is then); a failed read
   * leaves the submission to the queue too.
   */
  private async worthCatchingUp(entry: Entry, pending: Pending): Promise<boolean> {
    if (!this.farBehind(entry, pending)) return false;
    if (entry.state?.markOf(pending.clientId) !== undefined) return true;
    try {
      const [mark] = await this.store.getMarks(pending.docId, [pending.clientId]);
      return pending.seq <= (mark?.seq ?? 0) + 1;
    } catch {
      return false;
    }
  }

  private enqueue(entry: Entry, pending: Pending): void {
    pending.ticket = entry.tickets++;
    entry.pending.push(pending);
    this.kick(pending.docId, entry);
  }

  /**
   * Rebases `pending` in place over the committed history it is behind (at most
   * {@link MAX_CATCH_UPS} catch-ups at a time), keeping the op as sent for its client's mark.
   * False if it was refused (an op that does not fit its base); a failed read leaves the
   * whole rebase to the queue (true, unchanged).
   */
  private async catchUpPending(entry: Entry, pending: Pending): Promise<boolean> {
    await this.catchUpSlot();
    try {
      const caught = await catchUp(this.store, pending, entry.state?.recentStart ?? pending.baseVersion);
      pending.sent = { baseVersion: pending.baseVersion, op: pending.op };
      pending.caughtUp = caught.baseVersion - pending.baseVersion;
      pending.lengths = checkOperation(caught.op);
      pending.baseVersion = caught.baseVersion;
      pending.op = caught.op;
      return true;
    } catch (e) {
      const invalid = invalidOpRefusal(e, `the op does not fit version ${pending.baseVersion}`);
      if (invalid === undefined) return true;
      refuse(pending, invalid);
      return false;
    } finally {
      this.catchUpsRunning -= 1;
      this.catchUpWaiting.shift()?.();
    }
  }

  /** Resolves once fewer than {@link MAX_CATCH_UPS} catch-ups run, taking a place among them. */
  private async catchUpSlot(): Promise<void> {
    while (this.catchUpsRunning >= MAX_CATCH_UPS) {
      await new Promise<void>((resolve) => this.catchUpWaiting.push(resolve));
    }
    this.catchUpsRunning += 1;
  }

  /**
   * Undefined if `clientId` has no catch-up in flight on `docId` (then a read takes its ticket
   * at once, in order with the submissions around it); else a promise that resolves once it
   * has none (its submissions are queued).
   */
  private caughtUp(docId: string, clientId: string): Promise<void> | undefined {
    const first = this.docs.get(docId)?.catchUps.get(clientId);
    if (first === undefined) return undefined;
    return (async () => {
      for (let c: Promise<void> | undefined = first; c !== undefined; c = this.docs.get(docId)?.catchUps.get(clientId)) {
        await c;
      }
    })();
  }

  /**
   * Submits many requests in one call — an import, a replay, a server relaying a burst — with
   * one promise for all of them instead of one each. Every request is decided exactly as
   * {@link submit} would decide it, in array order (per document); the promise resolves once
   * every one is answered (each after its commit), with one entry per request, in order: its
   * {@link SubmitResult}, or the {@link OtterError} that refused it. Never rejects.
   */
  submitMany(requests: readonly SubmitRequest[]): Promise<SubmitAnswer[]> {
    return new Promise((resolve) => {
      const answers = new Answers(requests.length, resolve);
      let last: Entry | undefined;
      let lastDoc = '';
      for (let i = 0; i < requests.length; i++) {
        let pending: Pending;
        try {
          pending = this.validate(requests[i] as SubmitRequest);
        } catch (e) {
          answers.settle(i, e instanceof OtterError ? e : new OtterError(ErrorCode.BadRequest, String(e)));
          continue;
        }
        pending.group = answers;
        pending.index = i;
        if (last === undefined || lastDoc !== pending.docId) {
          last = this.entry(pending.docId);
          lastDoc = pending.docId;
        }
        this.admit(last, pending);
      }
    });
  }

  /**
   * The committed ops of `docId` with after < version ≤ upTo, if the document is loaded and
   * holds all of them in memory; else undefined. Synchronous: what presence maps through.
   */
  recentOps(docId: string, after: number, upTo: number): readonly OpRecord[] | undefined {
    const s = this.docs.get(docId)?.state;
    if (s === undefined || after < s.recentStart || upTo > s.committed || after > upTo) return undefined;
    return s.recent.slice(after - s.recentStart, upTo - s.recentStart);
  }

  /**
   * Catches `docId` up with the ops other writers (servers sharing this store) committed since
   * its committed head, and publishes them to the listeners: with every writer publishing its
   * own commits, each committed op is published exactly once here, in version order, whoever
   * committed it. Does nothing for a document not loaded (resolves 0 at once): loading reads
   * the store anyway. Runs in the document's queue between batches, ahead of everything queued
   * (taking in what others committed first can only spare the next batch a conflict, and
   * changes nothing any queued open or submission was promised); calls made while one is
   * queued join it, and a call made while one runs queues another, so a call always sees every
   * op committed before it was made. Reads only the ops past the committed
   * head (`Store.getOps`) and takes them in if they continue its versions and checksum chain
   * and none is a restore's merge (which also changes the recoveries); otherwise, as after a
   * failed append, the document is reloaded and what it holds beyond the last published op is
   * published ({@link publishLanded}: a store gone back in time is refused as damaged, or
   * taken as it is with `onStoreLost`). `news` is what another writer told, each part optional.
   * `epoch` is the epoch it committed with: if it is not the held one, the document is reloaded
   * (the store lost it and made it anew). `ops` are ops the writer committed (as its change hint carried
   * them): those that continue the committed head are taken without reading the store, checked
   * like any (versions, checksum chain); a refresh asked without them, or with one that lies
   * beyond a gap, reads the store (ops at or below the head were taken in already: no read).
   * `storedHead` is the head the store records, read after {@link held} gave this
   * sequencer's: below the committed head, the store went back in time under the same epoch
   * (a failover to a replica that lacked the last writes), and the document is reloaded, so
   * that the loss is found ({@link publishLanded}); so too when it is the committed head but
   * `storedChecksum` is not the held checksum there (the store went back, and another writer
   * wrote up to that head again), or when an offered op at or below the head has another
   * checksum than the held one. Resolves with the number of ops published;
   * rejects with the store's error (the document is then loaded again on its next use,
   * publishing what it missed). Rejects with a TypeError if `news` is not an object.
   */
  refresh(docId: string, news: RefreshNews = {}): Promise<number> {
    if (typeof news !== 'object' || news === null) {
      return Promise.reject(new TypeError(`refresh takes what another writer told as an object ({ epoch, ops, storedHead, storedChecksum }), got ${typeof news}`));
    }
    const { epoch, ops, storedHead, storedChecksum } = news;
    const entry = this.docs.get(docId);
    if (entry === undefined || this.closed) return Promise.resolve(0);
    if (epoch !== undefined) entry.hintedEpoch = epoch;
    const s = entry.state;
    if (s !== undefined && storedHead !== undefined) {
      const held = s.checksumAt(storedHead);
      if (storedHead < s.committed || (storedHead === s.committed && storedChecksum !== undefined && held !== undefined && storedChecksum !== held)) {
        entry.storeWentBack = true;
      }
    }
    if (ops === undefined || ops.length === 0) entry.unread = true;
    else for (const r of ops) entry.offered.push(r);
    if (entry.refreshing !== undefined) return entry.refreshing;
    let resolve: (n: number) => void = unsettled;
    let reject: (e: unknown) => void = unsettled;
    const refreshing = new Promise<number>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Set before the reader is queued: the queue may run it at once.
    entry.refreshing = refreshing;
    const run = async (s: DocumentState): Promise<void> => {
      entry.refreshing = undefined;
      try {
        resolve(await this.takeCommitted(docId, entry, s));
      } catch (e) {
        reject(e);
      }
    };
    const fail = (e: unknown): void => {
      entry.refreshing = undefined;
      reject(e);
    };
    entry.readers.unshift({ run, fail, ticket: -Infinity });
    this.kick(docId, entry);
    return refreshing;
  }

  /**
   * The epoch and committed head of `docId` as held in memory, if it is loaded (undefined
   * otherwise, or while it reloads). Synchronous: what a server compares with its store.
   */
  held(docId: string): { readonly epoch: string; readonly committed: number; readonly checksum: number } | undefined {
    const s = this.docs.get(docId)?.state;
    return s === undefined ? undefined : { epoch: s.epoch, committed: s.committed, checksum: s.checksumAt(s.committed) ?? s.checksum };
  }

  /** The ids of the documents this sequencer holds (loaded, or queued to load). */
  documents(): string[] {
    return [...this.docs.keys()];
  }

  /**
   * See {@link refresh}: runs in the queue, on the committed state `s` of `entry`. `atLeast`,
   * when given, is a head the store is known to have reached (a lost append saw it): the store
   * is read if the offered ops do not reach it.
   */
  private async takeCommitted(docId: string, entry: Entry, s: DocumentState, atLeast = 0): Promise<number> {
    const hinted = entry.hintedEpoch;
    entry.hintedEpoch = undefined;
    const wentBack = entry.storeWentBack;
    entry.storeWentBack = false;
    const offered = entry.offered;
    entry.offered = [];
    const unread = entry.unread;
    entry.unread = false;
    // An offered op at or below the head with another checksum than the held one there: the
    // store went back, and another writer wrote up to it again (another history).
    const otherHistory = offered.some((r) => {
      const held = r.version <= s.committed ? s.checksumAt(r.version) : undefined;
      return held !== undefined && held !== r.checksum;
    });
    try {
      if ((hinted !== undefined && hinted !== s.epoch) || wentBack || otherHistory) {
        const before = entry.published ?? s.committed;
        return Math.max(0, (await this.load(docId, entry)).committed - before);
      }
      // The offered ops that run on from the committed head, then the store past them when a
      // refresh asked to read it, when an offered op lies beyond them (a hint lost or out of
      // order), or when they fall short of a head the store is known to have. Offered ops at or
      // below the head were taken already (a lost append's refusal carried them): no read.
      const ops = continuing(offered, s.committed);
      const reach = s.committed + ops.length;
      if (unread || reach < atLeast || offered.some((r) => r.version > reach)) {
        for (const r of await this.store.getOps(docId, reach, Number.MAX_SAFE_INTEGER)) ops.push(r);
      }
      if (ops.length === 0) return 0;
      if (ops.some((r) => r.seq === 0) || !s.applyCommitted(ops)) {
        const before = entry.published ?? s.committed;
        return (await this.load(docId, entry)).committed - before;
      }
      this.publish(docId, ops);
      markPublished(entry, s);
      s.trimRecent(Math.max(this.limits.memoryHistory, 0));
      s.forgetMarks(this.limits.cachedMarks);
      this.fitHistory(entry);
      return ops.length;
    } catch (e) {
      if (e instanceof StorageCorruptError) this.onError(e, docId);
      throw e;
    }
  }

  /**
   * The text at `version` (default: the committed head). Versions older than the head are
   * rebuilt from the nearest snapshot and the ops after it. Rejects with `version-ahead` past
   * the head, `history-gone` before the trim point, `bad-request` for malformed arguments.
   */
  async getSnapshot(docId: string, version?: number): Promise<Snapshot> {
    checkId(docId, 'docId', this.limits.maxDocIdLength);
    if (version !== undefined) checkVersion(version, 'version');
    const head = await this.read(docId, (s) => ({
      version: s.committed,
      checksum: s.checksum,
      // The whole text only when it is the answer.
      text: version === undefined || version === s.committed ? s.rope.toString() : undefined,
      trimmedTo: s.trimmedTo,
    }));
    if (head.text !== undefined || version === undefined) {
      return { version: head.version, text: head.text ?? '', checksum: head.checksum };
    }
    if (version > head.version) {
      throw new OtterError(ErrorCode.VersionAhead, `version ${version} is ahead of the head ${head.version}`);
    }
    const gone = new OtterError(
      ErrorCode.HistoryGone,
      `version ${version} is older than the retained history (from ${head.trimmedTo})`,
    );
    if (version < head.trimmedTo) throw gone;
    const snapshot = await this.fromStore(docId, 'reading the history', () => this.textAt(docId, version));
    if (snapshot === undefined) throw gone;
    return snapshot;
  }

  /**
   * Runs `read` of `docId`'s stored data for a caller: a failure becomes the caller's refusal
   * (`storage-corrupt` for damaged data, reported through `onError`; else `storage-failed`).
   */
  private async fromStore<T>(docId: string, doing: string, read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (e) {
      if (e instanceof StorageCorruptError) this.onError(e, docId);
      throw storageError(e, doing);
    }
  }

  /** The stored text at `version` (from the nearest snapshot and the ops after it), if kept. */
  private async textAt(docId: string, version: number): Promise<Snapshot | undefined> {
    const base = await this.store.getSnapshot(docId, version);
    if (base === undefined) return undefined;
    const ops = await this.store.getOps(docId, base.version, version);
    if (ops.length !== version - base.version) return undefined;
    verifyChain(docId, ops, base.checksum);
    let text = base.text;
    for (const r of ops) text = apply(text, r.op);
    return { version, text, checksum: ops[ops.length - 1]?.checksum ?? base.checksum };
  }

  /**
   * The stored checksum at `version`, if that version is still kept: from the op that
   * produced it, or from a snapshot there.
   */
  private async checksumAt(docId: string, version: number): Promise<number | undefined> {
    if (version === 0) return 0;
    const [record] = await this.store.getOps(docId, version - 1, version);
    if (record !== undefined) return record.checksum;
    const snapshot = await this.store.getSnapshot(docId, version);
    return snapshot?.version === version ? snapshot.checksum : undefined;
  }

  /**
   * Committed ops with from < version ≤ head (or ≤ `to`), in order: a late client's catch-up.
   * Rejects with `history-gone` if `from` is before the trim point, `version-ahead` past head.
   */
  async getOps(docId: string, from: number, to?: number): Promise<OpRecord[]> {
    checkId(docId, 'docId', this.limits.maxDocIdLength);
    checkVersion(from, 'from');
    if (to !== undefined) checkVersion(to, 'to');
    type View =
      | { kind: 'error'; code: ErrorCode; head: number }
      | { kind: 'memory'; ops: OpRecord[] }
      | { kind: 'store'; end: number };
    const view = await this.read(docId, (s): View => {
      const end = Math.min(to ?? s.committed, s.committed);
      if (from > s.committed) return { kind: 'error', code: ErrorCode.VersionAhead, head: s.committed };
      if (from < s.trimmedTo) return { kind: 'error', code: ErrorCode.HistoryGone, head: s.committed };
      if (from >= s.recentStart) {
        return { kind: 'memory', ops: s.recent.slice(from - s.recentStart, Math.max(0, end - s.recentStart)) };
      }
      return { kind: 'store', end };
    });
    if (view.kind === 'error') {
      throw new OtterError(
        view.code,
        view.code === ErrorCode.VersionAhead
          ? `version ${from} is ahead of the head ${view.head}`
          : `version ${from} is older than the retained history; resync`,
      );
    }
    if (view.kind === 'memory') return view.ops;
    const ops = await this.store.getOps(docId, from, view.end);
    if (ops.length !== Math.max(0, view.end - from)) {
      throw new OtterError(ErrorCode.HistoryGone, `version ${from} is older than the retained history; resync`);
    }
    return ops;
  }

  /**
   * What a client opening `docId` needs, read at one instant between batches (after every
   * submission queued before this call is decided): the document's epoch, committed head and
   * checksum there, the client's last applied `seq`, and
   * - `kind: 'ops'`, the ops from `from` to the head, when the client holds version `from` of
   *   this document: `claim` names this epoch and this document's checksum at `from`, and
   *   `from` is within the retained history (a catch-up);
   * - `kind: 'lost'` when `claim` contradicts the document: another epoch, `from` past the
   *   head, or another checksum at `from` (the store lost data the client holds, if only an
   *   op the client had in flight on version 0 of a lost epoch);
   * - `kind: 'snapshot'`, the head's text, otherwise: no `from`, or `from` older than the
   *   retained history (so it cannot be checked either).
   * Without `claim` (a trusted caller) `from` is taken as this document's.
   * A catch-up read from the store whose ops' JSON passes `maxCatchUp` code units is cut short
   * and answered with a snapshot instead (so that reading it holds no more than that).
   */
  async open(docId: string, clientId: string, from?: number, claim?: OpenClaim, maxCatchUp = Infinity): Promise<OpenResult> {
    checkId(docId, 'docId', this.limits.maxDocIdLength);
    checkName(clientId, 'clientId', this.limits.maxClientIdLength);
    if (from !== undefined) checkVersion(from, 'from');
    if (claim !== undefined) {
      checkName(claim.epoch, 'epoch', this.limits.maxDocIdLength);
      if (!isChecksum(claim.checksum)) throw badRequest(`checksum must be a non-negative safe integer`);
    }
    const behind = this.caughtUp(docId, clientId);
    if (behind !== undefined) await behind;
    // A client claiming a version past the head held here may have it from another server
    // sharing the store: read what was committed there before judging the claim lost.
    const held = this.docs.get(docId)?.state;
    if (from !== undefined && claim !== undefined && held !== undefined && from > held.committed) {
      await this.fromStore(docId, 'reading the history', () => this.refresh(docId));
    }
    type View =
      | OpenResult
      | (OpenHead & { readonly kind: 'verify'; readonly from: number })
      | (OpenHead & { readonly kind: 'fetch'; readonly from: number });
    const view = await this.read(docId, (s): View => {
      const head: OpenHead = {
        epoch: s.epoch,
        version: s.committed,
        checksum: s.checksum,
        seq: s.markOf(clientId)?.seq ?? 0,
      };
      if (from !== undefined && claim !== undefined) {
        const held = s.checksumAt(from);
        if (claim.epoch !== s.epoch || from > s.committed || (held !== undefined && held !== claim.checksum)) {
          const recovered = recoveredFor(s.recoveries.get(claim.epoch), { epoch: claim.epoch, version: from, checksum: claim.checksum }, s.epoch);
          return { ...head, kind: 'lost', recovered, ...forkSums(s, claim.epoch, from) };
        }
        if (held === undefined && from >= s.trimmedTo) return { ...head, kind: 'verify', from };
      }
      if (from === undefined || from > s.committed || from < s.trimmedTo) {
        return { ...head, kind: 'snapshot', text: s.rope.toString() };
      }
      if (from >= s.recentStart) return { ...head, kind: 'ops', ops: s.recent.slice(from - s.recentStart) };
      return { ...head, kind: 'fetch', from };
    }, clientId);
    if (view.kind !== 'verify' && view.kind !== 'fetch') return view;
    if (view.kind === 'verify') {
      const held = await this.fromStore(docId, 'reading a checksum', () => this.checksumAt(docId, view.from));
      if (held !== undefined && held !== claim?.checksum) {
        const lost = await this.read(docId, (s) =>
          claim === undefined
            ? { recovered: undefined }
            : {
                recovered: recoveredFor(s.recoveries.get(claim.epoch), { epoch: claim.epoch, version: view.from, checksum: claim.checksum }, s.epoch),
                ...forkSums(s, claim.epoch, view.from),
              },
        );
        const { kind: _, from: __, ...head } = view;
        return { ...head, kind: 'lost', ...lost };
      }
    }
    const ops = await this.fromStore(docId, 'reading the history', async () => {
      const read = await readHistory(this.store, docId, view.from, view.version, maxCatchUp);
      if (read !== undefined && read.length === view.version - view.from) verifyCatchUp(docId, read, view);
      return read;
    });
    // Too long, or history trimmed between the read and the fetch: fall back to a snapshot.
    if (ops === undefined || ops.length !== view.version - view.from) return this.open(docId, clientId);
    const { kind: _, from: __, ...head } = view;
    return { ...head, kind: 'ops', ops };
  }

  /**
   * Restores a state the document lost, as a client that holds it asks (after an open
   * answered `lost`). Decided in order with the document's submissions, one at a time, so
   * exactly one client restores each lost state — a compare-and-set on what the document has
   * recovered of `lost.epoch` so far (under this document's own epoch, only what was recovered
   * of the same loss: a recovery recorded before the client's line parted from this document,
   * found by the samples, is of an earlier loss of another line, and counts as nothing):
   * - nothing yet: the client's text is merged into the document ({@link mergeText}) against
   *   their common ancestor: the empty text for another epoch; for this epoch (a store rolled
   *   back), the text at the newest sample whose checksum matches this document's, or the head;
   * - an older version of that epoch: what the client holds beyond the recovered text is
   *   merged in (a client that saw more than the first restorer brings in the difference);
   * - that version or a newer one: only the client's op in flight, if any, is merged in
   *   against the client's text (the document holds that text already).
   * The client's op in flight is merged together with its text, but the recovery records the
   * text alone: a later client whose lost state holds that op too brings it in a second time
   * only where {@link mergeText} does not find it already made.
   * The merge is one op (any size up to maxDocLength), attributed to the client with seq 0,
   * committed with the new {@link Recovery} in one append and published like any op. An append
   * that loses the race to another writer's (a store shared by several servers) is decided
   * again on what that writer committed, up to `conflictRetries` times.
   * Rejects with `bad-request`, `too-large` or `storage-failed` (nothing applied).
   */
  restore(request: RestoreRequest): Promise<RestoreResult> {
    const { docId, clientId, lost, samples, text, author } = request;
    let mine = text;
    try {
      checkId(docId, 'docId', this.limits.maxDocIdLength);
      checkName(clientId, 'clientId', this.limits.maxClientIdLength);
      checkName(lost.epoch, 'epoch', this.limits.maxDocIdLength);
      checkVersion(lost.version, 'version');
      if (!isChecksum(lost.checksum)) throw badRequest('checksum must be a non-negative safe integer');
      if (typeof text !== 'string') throw badRequest('text must be a string');
      if (request.op !== undefined) {
        try {
          mine = apply(text, request.op);
        } catch (e) {
          throw badRequest(`the op in flight does not fit the restored text: ${String(e)}`);
        }
      }
      const longest = Math.max(text.length, mine.length);
      if (longest > this.limits.maxDocLength) {
        throw new OtterError(ErrorCode.TooLarge, `the restored text has ${longest} code units, over the limit of ${this.limits.maxDocLength}`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    const decide = (): Promise<RestoreResult> => this.task(docId, async (s) => {
      const refusal = request.admit?.();
      if (refusal !== undefined) throw refusal;
      // Under the document's own epoch, where the client's line parts from the store: a recovery
      // recorded before that point is of an earlier loss, on another line, and does not count.
      const recorded = s.recoveries.get(lost.epoch);
      const sameEpoch = lost.epoch === s.epoch;
      const parted =
        sameEpoch && (recorded === undefined || !holdsClaim(recorded, lost))
          ? await this.fromStore(docId, 'reading the history', () => this.forkText(docId, s, [[lost.version, lost.checksum], ...samples]))
          : undefined;
      const known = recorded !== undefined && parted?.version !== undefined && parted.version > recorded.at ? undefined : recorded;
      const covered =
        known !== undefined && (known.version > lost.version || (known.version === lost.version && known.checksum === lost.checksum));
      // Covered, the op in flight is merged only if the lost state restored (a later version of
      // the line the client held) does not hold it: then it had not landed there.
      if (
        covered &&
        (request.op === undefined ||
          isNoop(request.op) ||
          landed(lost, request.op, known) ||
          holdsInserts(text, request.op, known.text) ||
          holdsInserts(text, request.op, known.guess))
      ) {
        return { applied: false, version: s.committed };
      }
      // The common ancestor: the client's own text (covered: only its op in flight is new), the
      // lost state restored so far, or where this document and the lost line parted — when
      // that is not known, the head, whose text the merge then never deletes.
      const fork = covered || known !== undefined || !sameEpoch ? undefined : parted;
      const base = covered ? text : known !== undefined ? known.text : (fork?.text ?? '');
      const theirs = s.rope.toString();
      let op: Component[];
      try {
        // What restores merged of ops in flight (the guess) is not brought in a second time.
        op = mergeText(base, mine, theirs, known !== undefined && !covered ? known.guess : base);
        if (fork !== undefined && !fork.found) op = op.map((c) => (typeof c === 'number' && c < 0 ? -c : c));
        op = normalize(op);
      } catch (e) {
        throw new OtterError(ErrorCode.BadRequest, `the restored text cannot be merged: ${String(e)}`);
      }
      const expectedHead = s.head;
      const records: OpRecord[] = [];
      if (!isNoop(op)) {
        const target = targetLength(op);
        if (target > this.limits.maxDocLength) {
          throw new OtterError(ErrorCode.TooLarge, `the document would grow to ${target} code units, over the limit of ${this.limits.maxDocLength}`);
        }
        records.push(s.applyMerge(op, clientId, author));
      }
      const seen = mergeSamples(known?.samples ?? [], [[lost.version, lost.checksum], ...samples]);
      const recovery: Recovery =
        known !== undefined && covered
          ? { ...known, guess: apply(known.guess, mergeText(text, mine, known.guess)), samples: seen }
          : {
              lostEpoch: lost.epoch,
              version: lost.version,
              checksum: lost.checksum,
              text,
              guess: known === undefined ? mine : apply(mine, mergeText(known.text, known.guess, mine)),
              samples: seen,
              at: s.head,
            };
      return this.commitTask(docId, s, expectedHead, records, recovery);
    });
    // A race lost to another writer is decided again on what it wrote, as submissions are.
    const settle = async (): Promise<RestoreResult> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await decide();
        } catch (e) {
          if (!(e instanceof LostRace)) throw e;
          if (attempt >= this.limits.conflictRetries) throw e.refusal;
        }
      }
    };
    return this.caughtUp(docId, clientId)?.then(settle) ?? settle();
  }

  /** The last applied submission of `clientId` on `docId`, if any (for resync decisions). */
  async getClientMark(docId: string, clientId: string): Promise<ClientMark | undefined> {
    checkId(docId, 'docId', this.limits.maxDocIdLength);
    checkName(clientId, 'clientId', this.limits.maxClientIdLength);
    const behind = this.caughtUp(docId, clientId);
    if (behind !== undefined) await behind;
    return this.read(docId, (s) => {
      const mark = s.markOf(clientId);
      return mark === undefined ? undefined : toClientMark(mark);
    }, clientId);
  }

  /**
   * Stops taking submissions (later ones reject with `closed`), waits until every queued one
   * is committed or rejected, and stops the idle sweeper. Does not close the store.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    while ([...this.docs.values()].some((e) => e.draining || e.pending.length > 0 || e.catchUps.size > 0)) {
      await new Promise<void>((resolve) => this.idle.add(resolve));
    }
  }

  private validate(request: SubmitRequest): Pending {
    if (this.closed) throw new OtterError(ErrorCode.Closed, 'the sequencer is closed');
    if (typeof request !== 'object' || request === null) throw badRequest('a submit request must be an object');
    const { docId, clientId, seq, baseVersion, op, author, admit, epoch } = request;
    checkId(docId, 'docId', this.limits.maxDocIdLength);
    checkName(clientId, 'clientId', this.limits.maxClientIdLength);
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
      throw badRequest(`seq must be a positive safe integer, got ${String(seq)}`);
    }
    checkVersion(baseVersion, 'baseVersion');
    if (author !== undefined && typeof author !== 'string') throw badRequest('author must be a string');
    if (admit !== undefined && typeof admit !== 'function') throw badRequest('admit must be a function');
    if (epoch !== undefined) checkName(epoch, 'epoch', this.limits.maxDocIdLength);
    let lengths;
    try {
      lengths = checkOperation(op);
    } catch (e) {
      throw invalidOpRefusal(e) ?? e;
    }
    const size = opLength(op);
    // Canonical (as OpRecord requires) and a copy: the caller may reuse its array. Ops from
    // well-behaved clients are canonical already, and then a plain copy is that form.
    const canonical = lengths.canonical ? op.slice() : normalize(op);
    return new Pending(docId, clientId, seq, baseVersion, canonical, lengths, size, author, admit, epoch);
  }

  private entry(docId: string): Entry {
    let e = this.docs.get(docId);
    if (e === undefined) {
      e = {
        state: undefined,
        catchUps: new Map(),
        published: undefined,
        publishedSum: undefined,
        publishedEpoch: undefined,
        pending: [],
        readers: [],
        tickets: 0,
        draining: false,
        lastUsed: Date.now(),
        historyBytes: 0,
        refreshing: undefined,
        hintedEpoch: undefined,
        storeWentBack: false,
        offered: [],
        unread: false,
      };
      this.docs.set(docId, e);
      this.watched(docId, true);
    }
    return e;
  }

  private kick(docId: string, entry: Entry): void {
    if (entry.draining) return;
    entry.draining = true;
    void this.drain(docId, entry);
  }

  /**
   * Runs `fn` on the document's committed state, between batches. With `markOf`, that client's
   * mark is cached first (read from the store if it is not; a failed read rejects the read).
   */
  private read<T>(docId: string, fn: (s: DocumentState) => T, markOf?: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry = this.entry(docId);
      const run = (s: DocumentState): void => {
        try {
          resolve(fn(s));
        } catch (e) {
          reject(e);
        }
      };
      const client = [{ clientId: markOf ?? '' }];
      const runWithMark = async (s: DocumentState): Promise<void> => {
        try {
          await this.cacheMarks(docId, s, s.uncachedMarks(client));
        } catch (e) {
          if (e instanceof VersionConflictError && entry.state === s) entry.state = undefined;
          if (e instanceof StorageCorruptError) this.onError(e, docId);
          reject(storageError(e, 'reading a client mark'));
          return;
        }
        run(s);
        s.forgetMarks(this.limits.cachedMarks);
      };
      entry.readers.push({ run: markOf === undefined ? run : runWithMark, fail: reject, ticket: entry.tickets++ });
      this.kick(docId, entry);
    });
  }

  /**
   * Runs `fn` on the document's committed state between batches, like {@link read}, and
   * waits for it before anything queued after it. `fn` may change the state and commit
   * through {@link commitTask}; if it fails with the state changed but not committed, the
   * state is discarded and reloaded.
   */
  private task<T>(docId: string, fn: (s: DocumentState) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry = this.entry(docId);
      const run = async (s: DocumentState): Promise<void> => {
        try {
          resolve(await fn(s));
        } catch (e) {
          if (s.head !== s.committed && entry.state === s) entry.state = undefined;
          reject(e);
        }
      };
      entry.readers.push({ run, fail: reject, ticket: entry.tickets++ });
      this.kick(docId, entry);
    });
  }

  /**
   * Commits what a task applied to `s` since `expectedHead` (possibly no op) together with
   * `recovery`, then publishes the ops. Throws `storage-failed` if the append fails (the
   * caller's {@link task} then reloads the state), wrapped in {@link LostRace} if another
   * writer's append came first.
   */
  private async commitTask(
    docId: string,
    s: DocumentState,
    expectedHead: number,
    records: OpRecord[],
    recovery: Recovery,
  ): Promise<RestoreResult> {
    try {
      await this.store.append(docId, expectedHead, records, s.takeChangedMarks(), { epoch: s.epoch, checksum: s.checksumAt(expectedHead), recovery });
    } catch (e) {
      // Reloaded before the next use: another writer may have moved the document (a race lost).
      const entry = this.docs.get(docId);
      if (entry?.state === s) entry.state = undefined;
      const refusal = new OtterError(ErrorCode.StorageFailed, `the append failed: ${describeStoreError(e)}; retry later`);
      throw e instanceof VersionConflictError && e.actual > e.expected ? new LostRace(refusal) : refusal;
    }
    s.committed = s.head;
    s.recoveries.set(recovery.lostEpoch, recovery);
    this.publish(docId, records);
    const entry = this.docs.get(docId);
    if (entry !== undefined) markPublished(entry, s);
    s.trimRecent(Math.max(this.limits.memoryHistory, 0));
    s.forgetMarks(this.limits.cachedMarks);
    if (entry !== undefined) this.fitHistory(entry);
    if (records.length > 0 && this.snapshotDue(s.head, expectedHead)) await this.maintain(docId, s);
    return { applied: records.length > 0, version: s.committed };
  }

  /**
   * The text the lost line of this document's own epoch shares with it: at the newest of
   * `samples` (lost versions and their checksums) that this document still holds with the
   * same checksum (`found`, at `version`), else the head's (a store rolled back to an earlier
   * state of the line, perhaps written since: not `found`).
   */
  private async forkText(
    docId: string,
    s: DocumentState,
    samples: ReadonlyArray<readonly [number, number]>,
  ): Promise<{ text: string; found: boolean; version?: number }> {
    const candidates = samples.filter(([v]) => v <= s.committed && v >= s.trimmedTo).sort((a, b) => b[0] - a[0]);
    for (const [version, checksum] of candidates) {
      const held = s.checksumAt(version) ?? (await this.checksumAt(docId, version));
      if (held !== checksum) continue;
      if (version === s.committed) return { text: s.rope.toString(), found: true, version };
      const snapshot = await this.textAt(docId, version);
      if (snapshot !== undefined) return { text: snapshot.text, found: true, version };
    }
    return { text: s.rope.toString(), found: false };
  }

  /**
   * After a reload: publishes the ops the store holds beyond the last one published (an
   * append whose answer failed but which landed), then notes the head as published. A store
   * that went back in time under this process (older than what was published, another epoch,
   * or another checksum at the version published: a file rolled back or replaced in place, or
   * a store rolled back and written up to that version again by another writer) throws
   * {@link StorageCorruptError}: serving it would reuse versions every client already holds.
   * Once the server restarts, clients tell by their claims that it lost their state and
   * restore it. With `onStoreLost`, the store's state is taken instead, publishing nothing,
   * the queued submissions (made on the lost state) are refused, and `onStoreLost` makes the
   * clients open the document again.
   */
  private async publishLanded(docId: string, entry: Entry, state: DocumentState): Promise<void> {
    const from = entry.published;
    let detail: string | undefined;
    if (from !== undefined && (state.committed < from || entry.publishedEpoch !== state.epoch)) {
      detail =
        `the store went back in time under this server: it holds version ${state.committed} of epoch ${state.epoch}, ` +
        `but version ${from} of epoch ${entry.publishedEpoch ?? '?'} was committed`;
    } else if (from !== undefined && entry.publishedSum !== undefined) {
      // Not held in memory: the stored op or snapshot of that version, if still kept.
      const stored = state.checksumAt(from) ?? (await this.checksumAt(docId, from).catch(() => undefined));
      if (stored !== undefined && stored !== entry.publishedSum) {
        detail =
          `the store holds another version ${from} of epoch ${state.epoch} than the one committed ` +
          `(checksum ${stored}, not ${entry.publishedSum}): it went back in time and was written again`;
      }
    }
    if (detail !== undefined) {
      const onStoreLost = this.onStoreLost;
      if (onStoreLost === undefined) throw new StorageCorruptError(docId, `${detail}; restart the server so that clients restore what they hold`);
      markPublished(entry, state);
      const lost = new OtterError(ErrorCode.StorageFailed, `${detail}: open the document again, and retry`);
      for (const p of entry.pending.splice(0)) refuse(p, lost);
      onStoreLost(docId, detail);
      return;
    }
    if (from !== undefined && state.committed > from) {
      const landed =
        from >= state.recentStart ? state.recent.slice(from - state.recentStart) : await this.store.getOps(docId, from, state.committed);
      this.publish(docId, landed);
    }
    markPublished(entry, state);
  }

  /**
   * Loads `entry`'s state from the store and returns it, first publishing the ops it holds
   * beyond the last one published ({@link publishLanded}). On a throw the entry is left
   * without a state.
   */
  private async load(docId: string, entry: Entry): Promise<DocumentState> {
    entry.state = undefined;
    const state = new DocumentState(docId, await this.store.load(docId), countsBytes(this.retention));
    await this.publishLanded(docId, entry, state);
    entry.state = state;
    this.fitHistory(entry);
    return state;
  }

  /** Hands committed ops to the listeners, in order; a throwing listener is reported, not fatal. */
  private publish(docId: string, records: readonly OpRecord[]): void {
    for (let i = 0; i < records.length && this.listeners.size > 0; i++) {
      const r = records[i] as OpRecord;
      for (const l of this.listeners) {
        try {
          l(docId, r);
        } catch (e) {
          this.onError(e, docId);
        }
      }
    }
  }

  private async drain(docId: string, entry: Entry): Promise<void> {
    try {
      while (entry.pending.length > 0 || entry.readers.length > 0) {
        let loaded = entry.state;
        if (loaded === undefined) {
          try {
            loaded = await this.load(docId, entry);
          } catch (e) {
            if (e instanceof StorageCorruptError) this.onError(e, docId);
            this.failAll(entry, storageError(e, `loading ${JSON.stringify(docId)}`));
            continue;
          }
        }
        // In ticket order: the submissions queued before the first read are decided first
        // (an open after a reconnect sees the ops its previous connection still had queued);
        // then the reads queued before the next submission run, between batches.
        const firstRead = entry.readers[0]?.ticket ?? Infinity;
        if (entry.pending.length > 0 && (entry.pending[0] as Pending).ticket < firstRead) {
          await this.runBatch(docId, entry, loaded, firstRead);
          continue; // a failed batch left no state: reload first
        }
        // Looked at again after each read: a submission may arrive while one awaits the store.
        while (entry.readers.length > 0 && (entry.readers[0] as Reader).ticket < (entry.pending[0]?.ticket ?? Infinity)) {
          const state = entry.state;
          if (state === undefined) break; // a task failed and discarded it: reload first
          const ran = (entry.readers.shift() as Reader).run(state);
          if (ran !== undefined) await ran;
        }
      }
    } finally {
      entry.draining = false;
      entry.lastUsed = Date.now();
      if (this.idle.size > 0) this.wakeIdle();
    }
  }

  /** Wakes everything waiting for the sequencer to go idle (close), to look again. */
  private wakeIdle(): void {
    const waiting = [...this.idle];
    this.idle.clear();
    for (const w of waiting) w();
  }

  private failAll(entry: Entry, error: OtterError): void {
    for (const p of entry.pending.splice(0)) refuse(p, error);
    for (const r of entry.readers.splice(0)) r.fail(error);
  }

  /** Decides, commits and answers the queued submissions with tickets below `before`. */
  private async runBatch(docId: string, entry: Entry, state: DocumentState, before: number): Promise<void> {
    let batch = entry.pending;
    if ((batch[batch.length - 1] as Pending).ticket < before) {
      entry.pending = [];
    } else {
      const end = batch.findIndex((p) => p.ticket >= before);
      batch = batch.slice(0, end);
      entry.pending = entry.pending.slice(end);
    }
    // Deciding a submission takes its client's mark: read the ones not cached.
    const missing = state.uncachedMarks(batch);
    if (missing.length > 0) {
      try {
        await this.cacheMarks(docId, state, missing);
      } catch (e) {
        if (e instanceof VersionConflictError) {
          // The store no longer has this incarnation (see Store.getMarks): the batch waits for
          // the reload, which finds out what happened to the document.
          if (entry.state === state) entry.state = undefined;
          entry.pending = batch.concat(entry.pending);
          return;
        }
        if (e instanceof StorageCorruptError) this.onError(e, docId);
        const error = storageError(e, 'reading client marks');
        for (const p of batch) refuse(p, error);
        return;
      }
    }
    let older: readonly OpRecord[] = NO_OPS;
    const need = this.olderNeeded(state, batch);
    // Only late or resubmitted ops reach back past the in-memory history: others need no read.
    if (need < state.recentStart) {
      try {
        older = await this.store.getOps(docId, need, state.recentStart);
        verifyHistory(docId, older, state.recent[0]);
      } catch (e) {
        // Nothing of this batch was applied yet. The submissions that reach back into that
        // history are refused (answered, or they would wait forever); the others are decided.
        if (e instanceof StorageCorruptError) this.onError(e, docId);
        const error = storageError(e, 'reading the history');
        batch = batch.filter((p) => {
          if (!this.reachesBack(state, p)) return true;
          refuse(p, error);
          return false;
        });
        if (batch.length === 0) {
          state.forgetMarks(this.limits.cachedMarks);
          return;
        }
      }
    }
    const expectedHead = state.head;
    const records: OpRecord[] = [];
    // A submission that threw is answered at once and keeps `outcome` undefined.
    for (const p of batch) {
      try {
        const refusal = p.refusal(state.epoch);
        if (refusal !== undefined) throw refusal;
        const outcome = state.submit(p, this.limits, older);
        p.outcome = outcome;
        if (!isDuplicate(outcome)) records.push(outcome);
      } catch (e) {
        refuse(p, e);
      }
    }
    if (records.length > 0) {
      try {
        await this.store.append(docId, expectedHead, records, state.takeChangedMarks(), { epoch: state.epoch, checksum: state.checksumAt(expectedHead) });
      } catch (e) {
        // Nothing of this batch is durable. A lost race (another writer's append came first,
        // the store is ahead): take the batch back in memory and read what the other wrote,
        // linear in the ops missed. Otherwise (a store behind: lost or rolled back, which the
        // reload tells apart), or if that fails, forget the in-memory state and reload it.
        if (e instanceof VersionConflictError && e.actual > e.expected && state.rollback()) {
          if (e.committed !== undefined) for (const r of e.committed) entry.offered.push(r);
          await this.takeCommitted(docId, entry, state, e.actual).catch(() => {
            entry.state = undefined;
          });
        } else {
          entry.state = undefined;
        }
        const retry: Pending[] = [];
        for (const p of batch) {
          if (p.outcome === undefined) continue;
          p.outcome = undefined;
          if (e instanceof VersionConflictError && p.attempts < this.limits.conflictRetries) {
            p.attempts++;
            retry.push(p);
          } else {
            refuse(p, new OtterError(ErrorCode.StorageFailed, `the append failed: ${describeStoreError(e)}; retry later`));
          }
        }
        if (!(e instanceof VersionConflictError)) {
          // The store failing (down, or not answering): the submissions queued behind the batch
          // are refused at once too, rather than each waiting for an attempt of its own on it.
          // Their clients resend them, as they resend the batch's.
          const failed = new OtterError(ErrorCode.StorageFailed, `the append before it failed: ${describeStoreError(e)}; retry later`);
          for (const p of entry.pending.splice(0)) refuse(p, failed);
          return;
        }
        // Not unshift(...retry): a batch can hold more submissions than a call has arguments.
        entry.pending = retry.concat(entry.pending);
        return;
      }
      state.committed = state.head;
    }
    // A throwing listener must not keep the submitters from being answered.
    this.publish(docId, records);
    markPublished(entry, state);
    for (const p of batch) {
      const outcome = p.outcome;
      if (outcome === undefined) continue;
      p.outcome = undefined;
      answer(
        p,
        isDuplicate(outcome)
          ? outcome
          : {
              duplicate: false,
              version: outcome.version,
              op: outcome.op,
              checksum: outcome.checksum,
              depth: outcome.version - 1 - p.baseVersion + p.caughtUp,
            },
      );
    }
    state.trimRecent(Math.max(this.limits.memoryHistory, 0));
    state.forgetMarks(this.limits.cachedMarks);
    this.fitHistory(entry);
    if (records.length > 0 && this.snapshotDue(state.head, expectedHead)) {
      await this.maintain(docId, state);
    }
  }

  /**
   * Reads the stored marks of `clientIds` (none cached) into `state`'s cache. Called in the
   * document's queue between batches, where the store holds every mark of the state. Forgets
   * nothing: the marks already cached for the same batch or read must stay until it is done
   * (then `forgetMarks` brings the cache back within `cachedMarks`). Rejects with
   * {@link VersionConflictError} when the store no longer has the document under `state`'s
   * epoch (a shared store that lost it): its marks would be another incarnation's.
   */
  private async cacheMarks(docId: string, state: DocumentState, clientIds: readonly string[]): Promise<void> {
    if (clientIds.length === 0) return;
    state.cacheMarks(await this.store.getMarks(docId, clientIds, state.epoch));
  }

  /**
   * Counts `entry`'s history as it is now; then, if the loaded documents hold more than
   * `historyMemoryBytes`, the least recently used documents drop their oldest committed ops,
   * `entry`'s last, until at most 7/8 of it is held. Only documents between batches are
   * trimmed (a batch reads history relative to `recentStart`), and `entry` itself only where
   * its queue is at a safe point (after a commit, after a load). Ops not yet committed stay.
   */
  private fitHistory(entry: Entry): void {
    const held = entry.state?.recentBytes ?? 0;
    this.historyHeld += held - entry.historyBytes;
    entry.historyBytes = held;
    if (this.historyHeld <= this.limits.historyMemoryBytes) return;
    const target = Math.floor((this.limits.historyMemoryBytes / 8) * 7);
    const others: Entry[] = [];
    for (const e of this.docs.values()) {
      if (e.state === undefined) {
        // Discarded (a failed batch): its history is gone with it.
        this.historyHeld -= e.historyBytes;
        e.historyBytes = 0;
      } else if (e !== entry && !e.draining) {
        others.push(e);
      }
    }
    others.sort((a, b) => a.lastUsed - b.lastUsed);
    others.push(entry);
    for (const e of others) {
      if (this.historyHeld <= target) break;
      const state = e.state;
      if (state === undefined) continue;
      state.shedRecent(this.historyHeld - target);
      this.historyHeld += state.recentBytes - e.historyBytes;
      e.historyBytes = state.recentBytes;
    }
  }

  /**
   * The oldest version whose following ops this batch may need (to rebase a late op or to
   * recognise a resubmission); below state.recentStart they must be read from the store.
   */
  private olderNeeded(state: DocumentState, batch: readonly Pending[]): number {
    let need = state.recentStart;
    // A submission whose seq skips ahead (even after the batch's earlier ones of its client)
    // will be refused without history: it must not make the batch read any.
    const last = new Map<string, number>();
    for (const p of batch) {
      const mark = state.markOf(p.clientId);
      const seq = last.get(p.clientId) ?? mark?.seq ?? 0;
      if (p.seq > seq + 1) continue;
      if (p.seq === seq + 1) last.set(p.clientId, p.seq);
      need = Math.min(need, this.oldestRead(state, p));
    }
    return Math.max(need, state.trimmedTo);
  }

  /** The oldest version whose op deciding `p` may read: its base, or its original's if a resend. */
  private oldestRead(state: DocumentState, p: Pending): number {
    const mark = state.markOf(p.clientId);
    return mark !== undefined && p.seq === mark.seq ? Math.min(p.baseVersion, mark.version - 1) : p.baseVersion;
  }

  /** Whether deciding `p` may read history older than what `state` holds in memory. */
  private reachesBack(state: DocumentState, p: Pending): boolean {
    return this.oldestRead(state, p) < state.recentStart;
  }

  /** Did a commit moving the head from `before` to `head` pass a multiple of snapshotEvery? */
  private snapshotDue(head: number, before: number): boolean {
    const every = this.limits.snapshotEvery;
    return Math.floor(head / every) !== Math.floor(before / every);
  }

  /**
   * Snapshots at the head and trims the history as the retention policy allows (after a commit
   * for which snapshotDue).
   */
  private async maintain(docId: string, state: DocumentState): Promise<void> {
    try {
      const at = Date.now();
      const snapshot = { version: state.head, text: state.rope.toString(), checksum: state.checksum, at };
      await this.store.putSnapshot(docId, snapshot);
      state.snapshots.push({ version: snapshot.version, at, bytes: state.logBytes });
      const point = trimPoint(this.retention, state.snapshots, state.trimmedTo, state.head, state.logBytes, at);
      if (point > state.trimmedTo) {
        await this.store.trim(docId, point);
        state.trimmedTo = point;
        state.snapshots = state.snapshots.filter((c) => c.version >= point);
      }
    } catch (e) {
      this.onError(e, docId);
    }
  }

  /** Unloads documents untouched since `before` that have no queued work. */
  private unloadIdle(before: number): void {
    for (const [id, e] of this.docs) {
      if (
        !e.draining &&
        e.pending.length === 0 &&
        e.readers.length === 0 &&
        e.catchUps.size === 0 &&
        e.lastUsed < before &&
        !this.keepLoaded(id)
      ) {
        this.docs.delete(id);
        this.historyHeld -= e.historyBytes;
        this.watched(id, false);
      }
    }
  }
}
