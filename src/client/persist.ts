/**
 * The writes of one open document to its {@link ClientStorage} record: queued at once after a
 * change, one at a time, every change made during a write coalesced into the next one. Each
 * write stores the whole state as it is when the write starts, so a record never mixes two
 * states. The document asks {@link DocumentPersistence.holds} before it sends an op under a new
 * seq: it sends only once a record holding that op in flight is saved (see `storage.ts`).
 *
 * A failed save is reported (once per run of failures) and tried again after a pause that
 * doubles from `retryDelay`, new ops waiting for it, so a passing failure (a busy or briefly
 * full storage) keeps the stored record and the edits it holds. After {@link SAVE_ATTEMPTS}
 * failures in a row the record is removed, and if that works the document goes on without
 * storage (a stale record can never resend what the server has). If the removal fails too,
 * the save is retried after a pause that doubles up to 32 times `retryDelay`, and new ops
 * wait for it: the stored record must not fall behind what was sent. A closed document's
 * last write is not retried.
 */
import type { ClientStorage, StoredDocument } from './storage.js';

/** Failed saves in a row after which storage is given up (the record removed). */
export const SAVE_ATTEMPTS = 3;

/** What the document gives its persistence. */
export interface PersistenceHost {
  /** The state to store now, and how many ops the document had sent (under a new seq) by then. */
  capture(): { readonly record: StoredDocument; readonly sends: number };
  /** A save completed (or storage was given up): ops waiting for it may go out now. */
  durable(): void;
  /** A save failed with `error` (reported once per run of failures). */
  failed(error: unknown): void;
}

/** See the file comment. Internal to the client. */
export class DocumentPersistence {
  /** `sends` of the last record saved: ops sent up to there are in the stored record. */
  private savedSends = 0;
  private writing = false;
  private dirty = false;
  /** Storage given up (the record was removed after a failed save): nothing more is written. */
  private detached = false;
  /** The document closed: its last state, to be written once, and nothing after. */
  private final: { readonly record: StoredDocument; readonly sends: number } | undefined;
  private closed = false;
  private failures = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];

  /**
   * @param storage where the record goes
   * @param clientId the leased client id the record is stored under
   * @param docId the document
   * @param host the document
   * @param retryDelay first pause before retrying a failed save, in ms
   */
  constructor(
    private readonly storage: ClientStorage,
    private readonly clientId: string,
    private readonly docId: string,
    private readonly host: PersistenceHost,
    private readonly retryDelay: number,
  ) {}

  /** Whether an op sent as the document's `sends`-th must wait for a save first. */
  holds(sends: number): boolean {
    return !this.detached && sends > this.savedSends;
  }

  /** The document changed: write its state soon (at once, or after the write in progress). */
  schedule(): void {
    if (this.detached || this.closed) return;
    if (this.writing || this.retryTimer !== undefined) {
      this.dirty = true;
      return;
    }
    this.write();
  }

  /**
   * The document closed with state `last` (captured before it closed): write it after the
   * write in progress, then stop. Resolves once that is done (or given up).
   */
  close(last: { readonly record: StoredDocument; readonly sends: number }): Promise<void> {
    if (this.closed) return this.idle();
    this.final = last;
    this.closed = true;
    if (!this.detached && !this.writing) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.write();
    }
    return this.idle();
  }

  /**
   * Resolves once the state is saved as it was when called, and nothing more is waiting to
   * be written; rejects with the error of a failed save meanwhile. At once without storage.
   */
  idle(): Promise<void> {
    if (this.detached || (!this.writing && !this.dirty && this.retryTimer === undefined)) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private write(): void {
    this.writing = true;
    this.dirty = false;
    let wroteFinal = false;
    // A microtask later, so that every change of the current task goes into one record.
    void Promise.resolve()
      .then(async () => {
        wroteFinal = this.final !== undefined;
        const state = this.final ?? this.host.capture();
        await this.storage.save(this.clientId, this.docId, state.record);
        this.savedSends = Math.max(this.savedSends, state.sends);
      })
      .then(
        () => {
          this.writing = false;
          this.failures = 0;
          if (!this.closed) this.host.durable();
          // Closed while an earlier state was being written: the last state is still to come.
          if (this.closed ? !wroteFinal : this.dirty) this.write();
          else this.settle(undefined);
        },
        (error: unknown) => void this.onFailure(error),
      );
  }

  private async onFailure(error: unknown): Promise<void> {
    if (this.failures === 0) this.host.failed(error);
    this.failures += 1;
    if (this.failures < SAVE_ATTEMPTS && !this.closed) {
      // Perhaps passing: write again after a pause, keeping the record (new ops wait for it).
      this.writing = false;
      this.settle(error);
      this.retryLater();
      return;
    }
    const removed = await this.storage.remove(this.clientId, this.docId).then(
      () => true,
      () => false,
    );
    this.writing = false;
    if (removed) {
      this.detached = true;
      if (!this.closed) this.host.durable();
      this.settle(error);
      return;
    }
    this.settle(error);
    // Closed: what was sent is stored already (ops wait for their save), so give up here.
    if (this.closed) return;
    this.retryLater();
  }

  /** Writes again after a pause doubling with each failure in a row, up to 32 × `retryDelay`. */
  private retryLater(): void {
    const delay = this.retryDelay * 2 ** Math.min(this.failures - 1, 5);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.write();
    }, delay);
  }

  /** Settles the waiters: resolved, or rejected with `error`. */
  private settle(error: unknown): void {
    for (const w of this.waiters.splice(0)) {
      if (error === undefined) w.resolve();
      else w.reject(error);
    }
  }
}
