/**
 * Offline persistence under faults, against the real server: slow, reordered and failing
 * client storages, tabs that die (their storage stops at once, nothing more is written) at
 * every point of an edit's way, adoption racing with closes and reopens. The laws: an edit is
 * never lost once `flushStorage()` resolved or once acknowledged, never applied twice, and a
 * replica that says it is synchronized holds the server's text.
 */
import { WebSocket } from 'ws';
import { describe, expect, it } from 'vitest';
import {
  type ClientIdLease,
  type Connection,
  MemoryClientStorage,
  OtterError,
  type StoredDocument,
} from '../../src/client/index.js';
import { liveServer } from '../support/live-server.js';
import { FAST, count, observe } from './storage-kit.js';
import { ClientNetwork } from '../support/network.js';
import { below, seededRandom } from '../support/random.js';
import { sleep, waitFor, within } from '../support/wait.js';

const live = liveServer();


/**
 * The storage one tab sees of a shared backing storage (the browser's database): its writes
 * take `delay()` ms each (none without), and once the tab dies ({@link die})
 * nothing it writes lands any more, a write under way included, and its leases are gone.
 */
class TabStorage extends MemoryClientStorage {
  private dead = false;
  private readonly leases: ClientIdLease[] = [];

  constructor(
    private readonly backing: MemoryClientStorage,
    private readonly delay?: () => number,
  ) {
    super();
  }

  /** The tab died: nothing more is written, its leases are given up. */
  die(): void {
    this.dead = true;
    for (const lease of this.leases.splice(0)) lease.release();
  }

  private async pause(): Promise<void> {
    if (this.delay !== undefined) await sleep(this.delay());
  }

  override async acquireClientId(): Promise<ClientIdLease> {
    const lease = await this.backing.acquireClientId();
    this.leases.push(lease);
    return lease;
  }
  override clientIds(): Promise<string[]> {
    return this.backing.clientIds();
  }
  override async tryAcquire(clientId: string): Promise<ClientIdLease | undefined> {
    const lease = await this.backing.tryAcquire(clientId);
    if (lease !== undefined) this.leases.push(lease);
    return lease;
  }
  override documents(clientId: string): Promise<string[]> {
    return this.backing.documents(clientId);
  }
  override load(clientId: string, docId: string): Promise<StoredDocument | undefined> {
    return this.backing.load(clientId, docId);
  }
  override async save(clientId: string, docId: string, record: StoredDocument): Promise<void> {
    await this.pause();
    if (!this.dead) await this.backing.save(clientId, docId, record);
  }
  override async remove(clientId: string, docId: string): Promise<void> {
    await this.pause();
    if (!this.dead) await this.backing.remove(clientId, docId);
  }
}

/** A tab: a connection over its own view of `backing`, and how to kill it. */
function tab(backing: MemoryClientStorage, network?: ClientNetwork, delay?: () => number): { conn: Connection; die: () => void } {
  const storage = new TabStorage(backing, delay);
  const conn = live.connect({ WebSocket: network?.WebSocket ?? WebSocket, storage, ...FAST });
  return {
    conn,
    die: () => {
      storage.die();
      void conn.close();
    },
  };
}

describe('client storage under faults', () => {
  it('a tab closed while a save is under way: the edits made during that save are in the record once close() resolved', async () => {
    await live.start();
    const backing = new MemoryClientStorage();
    const network = new ClientNetwork();
    const { conn } = tab(backing, network, () => 5);
    const doc = conn.open('notes');
    await within(doc.ready, 5000, 'the open');
    network.goOffline();
    await waitFor('the document to go offline', () => doc.lifecycle.phase === 'offline');
    doc.insert(0, '[one]');
    await sleep(1); // the save of '[one]' is under way
    doc.insert(0, '[two]');
    const clientId = conn.clientId as string;
    await within(conn.close(), 5000, 'closing the tab');
    const record = await backing.load(clientId, 'notes');
    expect(record?.ops.flat().join('')).toContain('[two]');

    const next = tab(backing).conn;
    const reopened = next.open('notes');
    await within(reopened.loaded, 5000, 'the reload');
    expect(reopened.text).toBe('[two][one]');
    await within(reopened.synced(), 5000, 'the stored edits');
    const observer = await observe(live, 'notes');
    expect(observer.text).toBe('[two][one]');
  });

  it('a document closed and opened again at once on the same connection: the reopened one holds the edits the closed one had', async () => {
    await live.start();
    const backing = new MemoryClientStorage();
    const network = new ClientNetwork();
    const { conn } = tab(backing, network);
    const doc = conn.open('notes');
    await within(doc.ready, 5000, 'the open');
    network.goOffline();
    await waitFor('the document to go offline', () => doc.lifecycle.phase === 'offline');
    doc.insert(0, '[kept]');
    doc.close();
    const reopened = conn.open('notes');
    await within(reopened.loaded, 5000, 'the reload');
    expect(reopened.text).toBe('[kept]');
    network.offline = false;
    await within(reopened.synced(), 10_000, 'the stored edit');
    const observer = await observe(live, 'notes');
    expect(observer.text).toBe('[kept]');
  });

  it("a tab closing while it removes an adopted id's record keeps that id leased until the removal is done: a later tab's saved edits under that id survive", async () => {
    await live.start();
    const backing = new MemoryClientStorage();
    // Tab A leases the oldest id (the next tab's own); tab B edits offline and dies with its
    // edit stored under its id.
    const a = tab(backing);
    await waitFor('A to lease its id', () => a.conn.clientId !== undefined);
    const netB = new ClientNetwork();
    const b = tab(backing, netB);
    const docB = b.conn.open('shared');
    await within(docB.ready, 5000, 'B opening');
    netB.goOffline();
    await waitFor('B to go offline', () => docB.lifecycle.phase === 'offline');
    docB.insert(0, '[from-b]');
    await within(docB.flushStorage(), 5000, 'B saving');
    const idB = b.conn.clientId as string;
    b.die();
    await within(Promise.all([b.conn.close(), a.conn.close()]), 5000, 'A closing and B dying');

    // C adopts B's id; its removal of B's record is held until C has closed.
    let removing: (() => void) | undefined;
    class GatedStorage extends TabStorage {
      override async remove(clientId: string, docId: string): Promise<void> {
        if (clientId === idB) await new Promise<void>((resolve) => (removing = resolve));
        return super.remove(clientId, docId);
      }
    }
    const c = live.connect({ WebSocket, storage: new GatedStorage(backing), ...FAST });
    await waitFor("C to remove B's record", () => removing !== undefined, 10_000);
    const closing = c.close();
    await sleep(20);
    // While C still removes B's record, nobody else may take B's id.
    const lease = await backing.tryAcquire(idB);
    lease?.release();
    (removing as () => void)();
    await within(closing, 5000, 'C closing');
    expect(lease, 'B\'s id was leased while its record was being removed').toBeUndefined();
  });

  it('a record of an unknown format is reported and ignored: the document opens from the server and its edits go out once', async () => {
    await live.start();
    const backing = new MemoryClientStorage();
    const lease = await backing.acquireClientId();
    await backing.save(lease.clientId, 'notes', { format: 99, text: 'x' } as unknown as StoredDocument);
    lease.release();
    const { conn } = tab(backing);
    const errors: string[] = [];
    conn.on('error', (e) => errors.push(e instanceof OtterError ? e.code : e.message));
    const doc = conn.open('notes');
    await within(doc.ready, 5000, 'the open');
    expect(conn.clientId).toBe(lease.clientId);
    expect(errors).toEqual(['storage-failed']);
    expect(doc.text).toBe('');
    doc.insert(0, '[new]');
    await within(doc.synced(), 5000, 'the edit');
    await within(doc.flushStorage(), 5000, 'the save');
    expect((await backing.load(lease.clientId, 'notes'))?.format).toBe(1);
    const observer = await observe(live, 'notes');
    expect(observer.text).toBe('[new]');
  });

  // Law: with two tabs on one storage whose saves take random times, sockets killed, offline
  // spells, and tabs that die (nothing more written) or close at any point and reopen, every
  // edit reaches the server at most once, every edit a tab saw saved (`flushStorage()`) or
  // acknowledged (`synced()`) exactly once, and a tab that says it is synchronized at the
  // server's version holds the server's text.
  it('seeded runs of edits, slow saves, socket kills and tab deaths at any point: nothing saved or acknowledged is lost, nothing applied twice', async () => {
    await live.start();
    for (const seed of [11, 12, 13, 14]) {
      const random = seededRandom(seed);
      const docId = `faults-${seed}`;
      const backing = new MemoryClientStorage();
      const observer = await observe(live, docId);
      const typed: string[] = [];
      const durable = new Set<string>();
      const markers = (text: string): string[] => text.match(/<[^>]*>/g) ?? [];
      const open = () => {
        const network = new ClientNetwork();
        const t = tab(backing, network, () => below(random, 6));
        return { ...t, network, doc: t.conn.open(docId) };
      };
      const tabs = [open(), open()];
      let marker = 0;
      const why = () => `seed ${seed}`;
      for (let step = 0; step < 40; step += 1) {
        const i = below(random, 2);
        const t = tabs[i] as ReturnType<typeof open>;
        const action = below(random, 12);
        if (action < 5) {
          if (t.doc.closed || !(await t.doc.loaded.then(() => true, () => false))) continue;
          const text = `<${seed}.${marker++}>`;
          const at = [0, ...[...t.doc.text.matchAll(/>/g)].map((m) => (m.index as number) + 1)];
          t.doc.insert(at[below(random, at.length)] as number, text);
          typed.push(text);
        } else if (action === 5) {
          const seen = markers(t.doc.text);
          void t.doc.flushStorage().then(() => seen.forEach((m) => durable.add(m)), () => {});
        } else if (action === 6) {
          const seen = markers(t.doc.text);
          void t.doc.synced().then(() => seen.forEach((m) => durable.add(m)), () => {});
        } else if (action === 7) {
          t.network.kill();
        } else if (action === 8) {
          t.network.offline = !t.network.offline;
          if (t.network.offline) t.network.kill();
        } else if (action < 11) {
          // The tab dies where it stands: what its storage holds now is all that is left.
          t.die();
          await within(t.conn.close(), 5000, `${why()}: a tab dying`);
          tabs[i] = open();
        } else {
          await within(t.conn.close(), 5000, `${why()}: a tab closing`);
          tabs[i] = open();
        }
        await sleep(below(random, 10));
        for (const u of tabs) {
          if (u.doc.lifecycle.phase === 'live' && !u.doc.unsaved && u.doc.version === observer.version) {
            expect(u.doc.text, `${why()}: a synchronized tab at the server's version`).toBe(observer.text);
          }
        }
      }
      for (const t of tabs) t.network.offline = false;
      await within(Promise.all(tabs.map((t) => t.doc.synced())), 10_000, `${why()}: the last tabs syncing`);
      // Adopted ids' edits go out from hidden connections: wait until the storage holds none.
      await waitFor(
        `${why()}: every stored edit sent`,
        async () => {
          for (const id of await backing.clientIds()) {
            for (const d of await backing.documents(id)) if (((await backing.load(id, d))?.ops.length ?? 0) > 0) return false;
          }
          return true;
        },
        10_000,
      );
      await waitFor(
        `${why()}: the tabs and the observer to converge`,
        () => tabs.every((t) => t.doc.version === observer.version && t.doc.text === observer.text),
        10_000,
        () => `observer ${observer.version} ${observer.text}\n${tabs.map((t) => `tab ${t.doc.version} ${t.doc.text}`).join('\n')}`,
      );
      for (const text of typed) expect(count(observer.text, text), `${why()}: ${text} at most once`).toBeLessThanOrEqual(1);
      for (const text of durable) expect(count(observer.text, text), `${why()}: ${text}, saved or acknowledged, exactly once`).toBe(1);
      expect(markers(observer.text).join('')).toBe(observer.text);
      for (const t of tabs) t.conn.close();
    }
  }, 20_000);
});
