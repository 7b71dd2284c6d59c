/**
 * Adoption of idle client ids: what tabs closed with edits pending left under their own ids
 * goes out from the next tab, exactly once.
 *
 * For each stored id but the connection's own whose lease is free at once, the documents with
 * pending ops in their record under that id are opened by a hidden connection that holds that
 * lease ({@link HeldLeaseStorage}), so they go out exactly as on a reload under that id (same
 * seqs: a stored op in flight is resent under its seq, and the server applies it once). Once a
 * document is synchronized its record is removed; only after all of them is the lease given
 * up. Holding the id's lease throughout is what keeps two senders of one (id, seq) apart. One
 * id at a time. An id whose lease was held (a live connection sends its edits — or a tab
 * still closing, whose edits then stay behind) is tried again every {@link ADOPTION_RETRY_MS}
 * for as long as the adoption runs, so what a tab closing meanwhile left goes out in this
 * visit. Stopping closes the hidden connection, and the lease is given up once its last
 * states are written and every removal under way is done; what was not confirmed stays stored
 * for a later visit. A failure is
 * reported and leaves that document's record for a later visit.
 */
import { ErrorCode } from '../protocol/errors.js';
import type { CollaborativeDocument } from './document.js';
import { type ClientIdLease, type ClientStorage, type StoredDocument, isStoredDocument } from './storage.js';

/** Ms between two tries of the ids whose leases were held (see the file comment). */
export const ADOPTION_RETRY_MS = 2000;

/** What an adoption needs of a connection that sends under an adopted id. */
export interface HiddenConnection {
  /** Opens `docId` under the adopted id (its stored record is loaded first). */
  open(docId: string): CollaborativeDocument;
  /** Closes it; resolves once its documents' last states are written. */
  close(): Promise<void>;
}

/** What an adoption needs of the connection that runs it. */
export interface AdoptionHost {
  /** A new connection like the host's, with `storage` (which hands out the adopted id). */
  connect(storage: HeldLeaseStorage): HiddenConnection;
  /** Reports that `what` failed because of `error` (the host emits a `storage-failed` error). */
  report(what: string, error: unknown): void;
}

/**
 * A client storage that hands out one lease already held, every other call going to the
 * storage it wraps: given to the hidden connection that sends the pending edits of an idle
 * client id, so that it uses that id and no other. A connection with such a storage adopts
 * no ids itself.
 */
export class HeldLeaseStorage implements ClientStorage {
  constructor(
    private readonly inner: ClientStorage,
    private readonly lease: ClientIdLease,
  ) {}

  /**
   * The held lease's id, every time, under a lease whose release does nothing: the adoption
   * gives the id up itself, once it has removed the records it sent (the hidden connection
   * closes before that when the adoption is stopped).
   */
  async acquireClientId(): Promise<ClientIdLease> {
    return { clientId: this.lease.clientId, release: () => {} };
  }

  /** The wrapped storage's. */
  clientIds(): Promise<string[]> {
    return this.inner.clientIds();
  }

  /** The wrapped storage's. */
  tryAcquire(clientId: string): Promise<ClientIdLease | undefined> {
    return this.inner.tryAcquire(clientId);
  }

  /** The wrapped storage's. */
  documents(clientId: string): Promise<string[]> {
    return this.inner.documents(clientId);
  }

  /** The wrapped storage's. */
  load(clientId: string, docId: string): Promise<StoredDocument | undefined> {
    return this.inner.load(clientId, docId);
  }

  /** The wrapped storage's. */
  save(clientId: string, docId: string, record: StoredDocument): Promise<void> {
    return this.inner.save(clientId, docId, record);
  }

  /** The wrapped storage's. */
  remove(clientId: string, docId: string): Promise<void> {
    return this.inner.remove(clientId, docId);
  }
}

/** One run over the idle ids of a storage (see the file comment); it starts at once. */
export class Adoption {
  private stopped = false;
  /** The hidden connection of the id being adopted, if any. */
  private hidden: HiddenConnection | undefined;
  /** Settles once the run is over; never rejects. */
  private readonly done: Promise<void>;
  /** Ends the wait before the next try of held ids (at stop). */
  private wake: (() => void) | undefined;

  /**
   * Starts adopting the idle ids of `storage`, every one but `own`.
   * @param storage the storage the host leased `own` from
   * @param own the host's own client id
   * @param host how to open hidden connections and report failures
   */
  constructor(
    private readonly storage: ClientStorage,
    own: string,
    private readonly host: AdoptionHost,
  ) {
    this.done = this.run(own);
  }

  /** Stops: closes the hidden connection. Resolves once the run is over and its lease given up. */
  stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    const closing = this.hidden?.close();
    this.hidden = undefined;
    return Promise.all([closing, this.done]).then(() => undefined);
  }

  /** Passes over the idle ids, then again over those held, until none is held or it stops. */
  private async run(own: string): Promise<void> {
    let clientIds: string[];
    try {
      clientIds = await this.storage.clientIds();
    } catch (error) {
      this.report('listing the client ids of the client storage', error);
      return;
    }
    let held = clientIds.filter((id) => id !== own);
    while (held.length > 0 && !this.stopped) {
      held = await this.pass(held);
      if (held.length > 0 && !this.stopped) await this.pause();
    }
  }

  /** Adopts each of `clientIds` whose lease is free; returns those whose lease was held. */
  private async pass(clientIds: readonly string[]): Promise<string[]> {
    const held: string[] = [];
    for (const clientId of clientIds) {
      if (this.stopped) break;
      let lease: ClientIdLease | undefined;
      try {
        lease = await this.storage.tryAcquire(clientId);
      } catch (error) {
        this.report(`leasing client id ${clientId} from the client storage`, error);
        continue;
      }
      if (lease === undefined) {
        // A live connection holds it and sends its edits, or a tab closing gives it up soon.
        held.push(clientId);
        continue;
      }
      try {
        await this.adopt(lease);
      } finally {
        lease.release();
      }
    }
    return held;
  }

  /** Waits {@link ADOPTION_RETRY_MS}, or until stopped. */
  private pause(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ADOPTION_RETRY_MS);
      (timer as { unref?: () => void }).unref?.();
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  /** Sends the pending edits stored under the held `lease`. */
  private async adopt(lease: ClientIdLease): Promise<void> {
    const { clientId } = lease;
    const pending: string[] = [];
    try {
      for (const docId of await this.storage.documents(clientId)) {
        const record = await this.storage.load(clientId, docId);
        if (isStoredDocument(record) && record.ops.length > 0) pending.push(docId);
      }
    } catch (error) {
      this.report(`reading the documents of client id ${clientId} from the client storage`, error);
      return;
    }
    if (pending.length === 0 || this.stopped) return;
    const hidden = this.host.connect(new HeldLeaseStorage(this.storage, lease));
    this.hidden = hidden;
    const sent = pending.map(async (docId) => {
      const what = `sending the stored edits of document ${JSON.stringify(docId)} under client id ${clientId}`;
      try {
        const doc = hidden.open(docId);
        doc.on('error', (e) => {
          if (e.code === ErrorCode.StorageFailed) this.report(what, e.message);
        });
        await doc.loaded;
        await doc.ready; // rejects if the server refuses the document for good
        await doc.synced();
        doc.close();
        await doc.flushStorage();
        await this.storage.remove(clientId, docId);
      } catch (error) {
        this.report(what, error);
      }
    });
    await Promise.all(sent);
    if (this.hidden === hidden) this.hidden = undefined;
    await hidden.close();
  }

  /** Reports a failure, unless stopped. */
  private report(what: string, error: unknown): void {
    if (!this.stopped) this.host.report(what, error);
  }
}
