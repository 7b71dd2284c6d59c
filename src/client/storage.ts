/**
 * Client storage: where a {@link Connection} keeps, per (client id, document), what it needs to
 * carry local edits across a closed tab or a restarted process, and how it leases client ids
 * so that one id is used by one live connection at a time.
 *
 * Exactly once across reloads rests on two rules, kept by the connection and its documents:
 * - records are stored under the client id that made them, and a connection uses an id only
 *   while it holds that id's lease ({@link ClientStorage.acquireClientId}): two live
 *   connections never send the same (client id, seq), and a later connection that leases the
 *   id takes over its documents' pending edits with their seqs;
 * - a connection that holds its own lease also adopts idle ids: for each other stored id
 *   whose lease it can take at once ({@link ClientStorage.tryAcquire}), it sends that id's
 *   pending edits under that id and their stored seqs, then removes their records, and only
 *   then gives the lease up; so edits left under several ids (several tabs closed while
 *   offline) go out on the next visit of one tab, and holding an id's lease stays the one
 *   rule that keeps two senders of one (client id, seq) apart;
 * - an op goes out under a seq only once a record holding it in flight under that seq is
 *   saved, so the stored record always knows every seq the server may have applied; a reload
 *   then re-opens from the stored version like a reconnect, and the server's catch-up says
 *   whether the op in flight landed (else it is resent with the same seq).
 *
 * The browser implementation is `IndexedDbStorage` (`indexeddb-storage.ts`); Node users may
 * implement {@link ClientStorage} over anything, or use {@link MemoryClientStorage}.
 */
import type { Component } from '../ot/index.js';

/** The format of {@link StoredDocument}; a record of another format is ignored on load. */
export const STORED_FORMAT = 1;

/**
 * What is stored of one document, as plain JSON-able data, written whole (never a mix of two
 * states of the document).
 */
export interface StoredDocument {
  /** {@link STORED_FORMAT}. */
  readonly format: number;
  /** The incarnation the confirmed text belongs to; absent if the document never opened. */
  readonly epoch?: string;
  /** The server version of the confirmed text (0 if the document never opened). */
  readonly version: number;
  /** The document checksum of the confirmed text at `version`. */
  readonly checksum: number;
  /** The confirmed text: the server's text at `version`. */
  readonly text: string;
  /**
   * Earlier versions of this epoch and their checksums, oldest first (used to show a server
   * that lost data where the states forked).
   */
  readonly samples: ReadonlyArray<readonly [number, number]>;
  /** The last seq given to an op of this client on this document. */
  readonly seq: number;
  /** The seq of the op in flight (`ops[0]`), if one was sent; absent otherwise. */
  readonly inflight?: number;
  /**
   * The pending local ops, oldest first, each on the text the previous one produces (the
   * first on `text`): the local text is `text` with all of them applied.
   */
  readonly ops: ReadonlyArray<readonly Component[]>;
}

/** A client id held by one connection until {@link release} (see {@link ClientStorage.acquireClientId}). */
export interface ClientIdLease {
  /** The id: never held by another live lease of the same storage. */
  readonly clientId: string;
  /** Gives the id up, for another connection to lease. Releasing twice does nothing. */
  release(): void;
}

/**
 * Where a connection keeps its documents between visits. Every method is asynchronous and may
 * reject; a connection reports a rejection as an `error` and carries on (see `Connection`).
 * Records are plain JSON-able data: an implementation may store them as it likes, but `load`
 * must return what the last successful `save` of that key was given (or undefined after
 * `remove`), and a `save` must replace a record whole or not at all.
 */
export interface ClientStorage {
  /**
   * Leases a client id: the first of the ids this storage has leased before that no live
   * lease holds, oldest first, else a new random one, which is recorded. A lease lasts until
   * released (for a browser tab: at the latest when the tab closes).
   */
  acquireClientId(): Promise<ClientIdLease>;
  /**
   * Every client id this storage has leased through {@link acquireClientId}, oldest first
   * (held or not).
   */
  clientIds(): Promise<string[]>;
  /**
   * Leases `clientId` (one of {@link clientIds}) if no live lease holds it, without waiting:
   * undefined if one does. The lease is exclusive as one from {@link acquireClientId} is.
   */
  tryAcquire(clientId: string): Promise<ClientIdLease | undefined>;
  /** The ids of the documents with a record under `clientId`, in no particular order. */
  documents(clientId: string): Promise<string[]>;
  /** The record of `docId` stored under `clientId`, or undefined if there is none. */
  load(clientId: string, docId: string): Promise<StoredDocument | undefined>;
  /** Stores `record` as the record of `docId` under `clientId`, replacing any earlier one. */
  save(clientId: string, docId: string, record: StoredDocument): Promise<void>;
  /** Removes the record of `docId` under `clientId`, if any. */
  remove(clientId: string, docId: string): Promise<void>;
}

/** A random client id: 128 bits from `crypto.getRandomValues`, as 32 hex digits. */
export function randomClientId(): string {
  const crypto = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
  if (crypto?.getRandomValues === undefined) {
    throw new Error('Otter: globalThis.crypto.getRandomValues is missing; pass a clientId option');
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Whether `value` is a {@link StoredDocument} of the current format (checked loosely: the
 * shape, not the ops' fit to the text, which the document checks when it takes the record).
 */
export function isStoredDocument(value: unknown): value is StoredDocument {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  return (
    r.format === STORED_FORMAT &&
    (r.epoch === undefined || typeof r.epoch === 'string') &&
    Number.isSafeInteger(r.version) &&
    typeof r.checksum === 'number' &&
    typeof r.text === 'string' &&
    Array.isArray(r.samples) &&
    Number.isSafeInteger(r.seq) &&
    (r.inflight === undefined || Number.isSafeInteger(r.inflight)) &&
    Array.isArray(r.ops) &&
    r.ops.every((op) => Array.isArray(op))
  );
}

/**
 * A {@link ClientStorage} in memory: records live as long as the object (as JSON, so a loaded
 * record never shares anything with a saved one), and leases are exclusive within this object.
 * For Node applications that keep one process up across connections, and for tests.
 */
export class MemoryClientStorage implements ClientStorage {
  /** Every id leased so far, oldest first. */
  private readonly ids: string[] = [];
  private readonly held = new Set<string>();
  private readonly records = new Map<string, string>();

  /** See {@link ClientStorage.acquireClientId}. */
  async acquireClientId(): Promise<ClientIdLease> {
    let clientId = this.ids.find((id) => !this.held.has(id));
    if (clientId === undefined) {
      clientId = randomClientId();
      this.ids.push(clientId);
    }
    return this.hold(clientId);
  }

  /** See {@link ClientStorage.clientIds}. */
  async clientIds(): Promise<string[]> {
    return [...this.ids];
  }

  /** See {@link ClientStorage.tryAcquire}. */
  async tryAcquire(clientId: string): Promise<ClientIdLease | undefined> {
    return this.held.has(clientId) ? undefined : this.hold(clientId);
  }

  /** See {@link ClientStorage.documents}. */
  async documents(clientId: string): Promise<string[]> {
    const docIds: string[] = [];
    for (const k of this.records.keys()) {
      const [id, docId] = JSON.parse(k) as [string, string];
      if (id === clientId) docIds.push(docId);
    }
    return docIds;
  }

  /** A lease of `id`, which no live lease holds. */
  private hold(id: string): ClientIdLease {
    this.held.add(id);
    let released = false;
    return {
      clientId: id,
      release: () => {
        if (released) return;
        released = true;
        this.held.delete(id);
      },
    };
  }

  /** See {@link ClientStorage.load}. */
  async load(clientId: string, docId: string): Promise<StoredDocument | undefined> {
    const json = this.records.get(key(clientId, docId));
    return json === undefined ? undefined : (JSON.parse(json) as StoredDocument);
  }

  /** See {@link ClientStorage.save}. */
  async save(clientId: string, docId: string, record: StoredDocument): Promise<void> {
    this.records.set(key(clientId, docId), JSON.stringify(record));
  }

  /** See {@link ClientStorage.remove}. */
  async remove(clientId: string, docId: string): Promise<void> {
    this.records.delete(key(clientId, docId));
  }
}

function key(clientId: string, docId: string): string {
  return JSON.stringify([clientId, docId]);
}
