/**
 * The browser's {@link ClientStorage}: records in IndexedDB, client-id leases as Web Locks.
 * Uses only `globalThis.indexedDB` (with `IDBKeyRange`) and `navigator.locks`; the constructor
 * throws where either is missing (Node, old browsers), importing this module does not.
 *
 * Database `name` (default `otter`), version 1, two object stores:
 * - `clients`: one entry `{ clientId, created }` per id ever leased, keyed by `clientId`;
 * - `documents`: one {@link StoredDocument} per (client id, document), keyed by the array
 *   `[clientId, docId]`, each written by one `put` in its own transaction (whole or not at
 *   all), with `durability: 'strict'` where the browser supports it.
 *
 * A lease is the Web Lock `otter-client:<name>:<clientId>`, requested with `ifAvailable` and
 * held until `release()` or until the tab (or worker) that holds it goes away, which the
 * browser notices even after a crash. Tabs of one origin share the database, so a reopened
 * tab leases the id a closed one held and continues its documents, and takes the free locks of
 * the other ids (`tryAcquire`, never waiting) to send what other closed tabs left unsent.
 */
import { type ClientIdLease, type ClientStorage, type StoredDocument, randomClientId } from './storage.js';

/** Options of an {@link IndexedDbStorage}. */
export interface IndexedDbStorageOptions {
  /** The IndexedDB database name, also part of the lock names. Default `otter`. */
  name?: string;
}

const CLIENTS = 'clients';
const DOCUMENTS = 'documents';

/** An entry of the `clients` store. */
interface ClientEntry {
  readonly clientId: string;
  /** When the id was first leased (ms since the epoch): ids are offered oldest first. */
  readonly created: number;
}

/** Resolves with the request's result once it succeeds; rejects with its error. */
function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('Otter: an IndexedDB request failed'));
  });
}

/** Resolves once `tx` commits; rejects if it fails or is aborted. */
function committed(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error('Otter: an IndexedDB transaction failed'));
    tx.onabort = () => reject(tx.error ?? new Error('Otter: an IndexedDB transaction was aborted'));
  });
}

/**
 * A {@link ClientStorage} in the browser's IndexedDB, with Web Locks for the client-id
 * leases (see the file comment). Pass it as the `storage` option of a `Connection`:
 *
 *   const connection = new Connection(url, { storage: new IndexedDbStorage() });
 *
 * The constructor throws an Error where IndexedDB or Web Locks are not available. The
 * database opens lazily, on first use; a failure to open fails each call.
 */
export class IndexedDbStorage implements ClientStorage {
  private readonly name: string;
  private readonly factory: IDBFactory;
  private readonly locks: LockManager;
  private database: Promise<IDBDatabase> | undefined;

  /** See {@link IndexedDbStorageOptions}. Throws where IndexedDB or Web Locks are missing. */
  constructor(options: IndexedDbStorageOptions = {}) {
    const factory = (globalThis as { indexedDB?: IDBFactory }).indexedDB;
    if (factory === undefined) throw new Error('Otter: IndexedDB is not available here');
    const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
    if (locks === undefined) throw new Error('Otter: Web Locks (navigator.locks) are not available here');
    this.factory = factory;
    this.locks = locks;
    this.name = options.name ?? 'otter';
  }

  /** See {@link ClientStorage.acquireClientId}: the oldest id whose lock is free, else a new one. */
  async acquireClientId(): Promise<ClientIdLease> {
    for (const clientId of await this.clientIds()) {
      const lease = await this.tryAcquire(clientId);
      if (lease !== undefined) return lease;
    }
    const db = await this.db();
    const clientId = randomClientId();
    const tx = db.transaction(CLIENTS, 'readwrite');
    tx.objectStore(CLIENTS).add({ clientId, created: Date.now() } satisfies ClientEntry);
    await committed(tx);
    const lease = await this.tryAcquire(clientId);
    if (lease === undefined) throw new Error(`Otter: the lock of the new client id ${clientId} is held elsewhere`);
    return lease;
  }

  /** See {@link ClientStorage.clientIds}: the `clients` store, by `created`. */
  async clientIds(): Promise<string[]> {
    const db = await this.db();
    const entries = await done(db.transaction(CLIENTS, 'readonly').objectStore(CLIENTS).getAll() as IDBRequest<ClientEntry[]>);
    entries.sort((a, b) => a.created - b.created || (a.clientId < b.clientId ? -1 : 1));
    return entries.map((e) => e.clientId);
  }

  /** See {@link ClientStorage.documents}: the keys `[clientId, docId]` of the `documents` store. */
  async documents(clientId: string): Promise<string[]> {
    const db = await this.db();
    // Every `[clientId, docId]` with a string docId sorts between these two (arrays after strings).
    const range = IDBKeyRange.bound([clientId], [clientId, []]);
    const keys = await done(db.transaction(DOCUMENTS, 'readonly').objectStore(DOCUMENTS).getAllKeys(range));
    return keys.map((key) => (key as [string, string])[1]);
  }

  /** See {@link ClientStorage.load}. */
  async load(clientId: string, docId: string): Promise<StoredDocument | undefined> {
    const db = await this.db();
    const request = db.transaction(DOCUMENTS, 'readonly').objectStore(DOCUMENTS).get([clientId, docId]);
    return (await done(request)) as StoredDocument | undefined;
  }

  /** See {@link ClientStorage.save}: one `put`, committed before it resolves. */
  async save(clientId: string, docId: string, record: StoredDocument): Promise<void> {
    const db = await this.db();
    const tx = db.transaction(DOCUMENTS, 'readwrite', { durability: 'strict' });
    tx.objectStore(DOCUMENTS).put(record, [clientId, docId]);
    await committed(tx);
  }

  /** See {@link ClientStorage.remove}. */
  async remove(clientId: string, docId: string): Promise<void> {
    const db = await this.db();
    const tx = db.transaction(DOCUMENTS, 'readwrite');
    tx.objectStore(DOCUMENTS).delete([clientId, docId]);
    await committed(tx);
  }

  /**
   * See {@link ClientStorage.tryAcquire}: takes the lock of `clientId` (`ifAvailable`) if no
   * one holds it, in this tab or another: a lease whose `release` lets the lock go;
   * undefined if it is held.
   */
  tryAcquire(clientId: string): Promise<ClientIdLease | undefined> {
    return new Promise((resolve, reject) => {
      let release = (): void => {};
      const held = new Promise<void>((r) => {
        release = r;
      });
      this.locks
        .request(`otter-client:${this.name}:${clientId}`, { ifAvailable: true }, (lock) => {
          if (lock === null) {
            resolve(undefined);
            return undefined;
          }
          resolve({ clientId, release: () => release() });
          return held; // the lock is held until this settles
        })
        .catch(reject);
    });
  }

  /** The database, opened (and created) on first use; a failed open is tried again next time. */
  private db(): Promise<IDBDatabase> {
    this.database ??= new Promise<IDBDatabase>((resolve, reject) => {
      const request = this.factory.open(this.name, 1);
      request.onupgradeneeded = () => {
        const db = request.result;
        if (!db.objectStoreNames.contains(CLIENTS)) db.createObjectStore(CLIENTS, { keyPath: 'clientId' });
        if (!db.objectStoreNames.contains(DOCUMENTS)) db.createObjectStore(DOCUMENTS);
      };
      request.onsuccess = () => {
        const db = request.result;
        // Another tab upgrading the database: let it, and open again on the next call.
        db.onversionchange = () => {
          db.close();
          this.database = undefined;
        };
        resolve(db);
      };
      request.onerror = () => reject(request.error ?? new Error(`Otter: opening IndexedDB database ${this.name} failed`));
      request.onblocked = () => reject(new Error(`Otter: opening IndexedDB database ${this.name} is blocked by another tab`));
    });
    this.database.catch(() => {
      this.database = undefined;
    });
    return this.database;
  }
}
