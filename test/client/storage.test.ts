/**
 * Offline persistence against the real server: a Connection with a client storage keeps its
 * documents' confirmed text, version, seq counters and pending ops between connections (a
 * closed tab and the next visit), leases its client id from the storage, and every edit
 * reaches the server exactly once.
 */
import { WebSocket } from 'ws';
import { describe, expect, it } from 'vitest';
import {
  type Connection,
  type ErrorMessage,
  MemoryClientStorage,
  type OtterError,
  type StoredDocument,
} from '../../src/client/index.js';
import { apply } from '../../src/ot/index.js';
import { SAVE_ATTEMPTS } from '../../src/client/persist.js';
import { liveServer } from '../support/live-server.js';
import { FAST, count, observe } from './storage-kit.js';
import { ClientNetwork } from '../support/network.js';
import { below, chance, seededRandom } from '../support/random.js';
import { waitFor, within } from '../support/wait.js';

const live = liveServer();


/** A connection with `storage`, over `network` (default: plain `ws`). */
function tab(storage: MemoryClientStorage, network?: ClientNetwork): Connection {
  return live.connect({ WebSocket: network?.WebSocket ?? WebSocket, storage, ...FAST });
}

describe('client storage', () => {
  it('without storage, `loaded` resolves at once and the document opens as ever', async () => {
    await live.start();
    const doc = live.connect({ WebSocket, ...FAST }).open('no-storage');
    let loaded = false;
    void doc.loaded.then(() => {
      loaded = true;
    });
    await Promise.resolve();
    expect(loaded).toBe(true);
    await within(doc.ready, 5000, 'the open');
  });

  it('edits made while the server is unreachable, then the tab closed: the next connection with the storage leases the same client id, shows them at once and sends each exactly once', async () => {
    await live.start();
    const storage = new MemoryClientStorage();
    const network = new ClientNetwork();
    const first = tab(storage, network);
    const doc = first.open('notes');
    await within(doc.ready, 5000, 'the first open');
    doc.insert(0, 'base.');
    await within(doc.synced(), 5000, 'the first edit');
    network.goOffline();
    await waitFor('the document to go offline', () => doc.lifecycle.phase === 'offline');
    doc.insert(doc.text.length, '[one]');
    doc.insert(0, '[two]');
    await within(doc.flushStorage(), 5000, 'the save');
    const clientId = first.clientId;
    expect(clientId).toMatch(/^[0-9a-f]{32}$/);
    await within(first.close(), 5000, 'closing the tab');

    const second = tab(storage);
    const reopened = second.open('notes');
    await within(reopened.loaded, 5000, 'the stored record');
    expect(reopened.text).toBe('[two]base.[one]');
    expect(reopened.unsaved).toBe(true);
    expect(second.clientId).toBe(clientId);
    await within(reopened.ready, 5000, 'the re-open');
    await within(reopened.synced(), 5000, 'the stored edits');
    const observer = await observe(live, 'notes');
    expect(observer.text).toBe('[two]base.[one]');
    expect(reopened.text).toBe(observer.text);
    expect(reopened.version).toBe(observer.version);
    expect(observer.version).toBe(3); // 'base.', then the two offline edits, one op each
  });

  it('the op in flight was applied but its ack lost, then the tab closed: the next connection resends it under the same seq and the server applies it once', async () => {
    await live.start();
    const storage = new MemoryClientStorage();
    // Once the submit of '[lost-ack]' is on the wire, nothing more reaches the client.
    const network = new ClientNetwork({
      onOutgoing: (frame) => {
        if (frame.includes('"submit"') && frame.includes('[lost-ack]')) network.current?.freeze();
      },
    });
    const first = tab(storage, network);
    const doc = first.open('notes');
    await within(doc.ready, 5000, 'the first open');
    const observer = await observe(live, 'notes');
    doc.insert(0, '[lost-ack]');
    await waitFor('the server to apply the op', () => observer.text === '[lost-ack]');
    expect(doc.unsaved).toBe(true); // the ack never arrived
    const inflight = doc.lifecycle.phase === 'closed' ? undefined : doc.lifecycle.inflight;
    expect(inflight).toBe(1);
    await within(doc.flushStorage(), 5000, 'the save');
    await within(first.close(), 5000, 'closing the tab');

    const second = tab(storage);
    const reopened = second.open('notes');
    await within(reopened.loaded, 5000, 'the stored record');
    expect(reopened.text).toBe('[lost-ack]');
    await within(reopened.synced(), 5000, 'the stored op');
    expect(reopened.version).toBe(1);
    expect(reopened.text).toBe('[lost-ack]');
    await waitFor('the observer to see the same version', () => observer.version === 1);
    expect(observer.text).toBe('[lost-ack]');
    // Settled for good: nothing is sent again and nothing waits.
    expect(reopened.lifecycle).toEqual({ phase: 'live', seq: 1, inflight: undefined });
  });

  it('two live connections sharing a storage lease different client ids; once one closes, a third leases its id and sends its stored pending edits exactly once', async () => {
    await live.start();
    const storage = new MemoryClientStorage();
    const network = new ClientNetwork();
    const a = tab(storage, network);
    const b = tab(storage);
    const docA = a.open('shared');
    const docB = b.open('shared');
    await within(Promise.all([docA.ready, docB.ready]), 5000, 'both opens');
    expect(a.clientId).not.toBe(b.clientId);
    network.goOffline();
    await waitFor('A to go offline', () => docA.lifecycle.phase === 'offline');
    docA.insert(0, '[from-a]');
    docB.insert(0, '[from-b]');
    await within(docB.synced(), 5000, 'B syncing');
    await within(docA.flushStorage(), 5000, 'A saving');
    const idA = a.clientId;
    await within(a.close(), 5000, 'closing A');

    const c = tab(storage);
    const docC = c.open('shared');
    await within(docC.loaded, 5000, 'the stored record');
    expect(c.clientId).toBe(idA);
    expect(docC.text).toBe('[from-a]');
    await within(docC.synced(), 5000, 'the stored edit');
    await waitFor('B and C to converge', () => docB.text === docC.text && docB.version === docC.version);
    expect(count(docC.text, '[from-a]')).toBe(1);
    expect(count(docC.text, '[from-b]')).toBe(1);
    expect(docC.text.length).toBe('[from-a][from-b]'.length);
    expect(b.clientId).not.toBe(c.clientId);
  });

  /**
   * Two tabs, each under its own client id, edit `shared` offline (`[from-a]`, `[from-b]`) and
   * close; returns their ids (A leased first, so the next tab leases A).
   */
  async function twoClosedTabs(storage: MemoryClientStorage): Promise<{ idA: string; idB: string }> {
    const netA = new ClientNetwork();
    const netB = new ClientNetwork();
    const a = tab(storage, netA);
    const docA = a.open('shared');
    await within(docA.ready, 5000, 'A opening');
    const b = tab(storage, netB);
    const docB = b.open('shared');
    await within(docB.ready, 5000, 'B opening');
    netA.goOffline();
    netB.goOffline();
    await waitFor('both to go offline', () => docA.lifecycle.phase === 'offline' && docB.lifecycle.phase === 'offline');
    docA.insert(0, '[from-a]');
    docB.insert(0, '[from-b]');
    await within(Promise.all([docA.flushStorage(), docB.flushStorage()]), 5000, 'both saving');
    const idA = a.clientId as string;
    const idB = b.clientId as string;
    expect(idA).not.toBe(idB);
    await within(Promise.all([a.close(), b.close()]), 5000, 'closing both tabs');
    return { idA, idB };
  }

  it('two tabs closed with edits pending under two client ids: the next single tab sends both exactly once and removes the other id\'s record', async () => {
    await live.start();
    const storage = new MemoryClientStorage();
    const { idA, idB } = await twoClosedTabs(storage);
    expect((await storage.load(idB, 'shared'))?.ops).toEqual([['[from-b]']]);

    const errors: Error[] = [];
    const c = tab(storage);
    c.on('error', (e) => errors.push(e));
    const docC = c.open('shared');
    await within(docC.loaded, 5000, 'the stored record');
    expect(c.clientId).toBe(idA);
    expect(docC.text).toBe('[from-a]');
    const observer = await observe(live, 'shared');
    await waitFor('both edits on the server', () => observer.text.includes('[from-a]') && observer.text.includes('[from-b]'), 10_000, () => observer.text);
    await waitFor("B's record to be removed", async () => (await storage.load(idB, 'shared')) === undefined);
    await within(docC.synced(), 5000, "A's edit");
    await waitFor('C and the observer to converge', () => docC.text === observer.text && docC.version === observer.version);
    expect(count(observer.text, '[from-a]')).toBe(1);
    expect(count(observer.text, '[from-b]')).toBe(1);
    expect(observer.text.length).toBe('[from-a][from-b]'.length);
    expect(await storage.documents(idB)).toEqual([]);
    expect(errors).toEqual([]);
    // B's lease was given up once its edits were out: another connection can take it.
    const leaseB = await storage.tryAcquire(idB);
    expect(leaseB?.clientId).toBe(idB);
    leaseB?.release();
  });

  it('an adopted document the server refuses for good is reported and left stored; the adoption goes on and gives the id back', async () => {
    let locked = false;
    await live.start({ authorize: (_user, docId) => (locked && docId === 'shared' ? 'none' : 'write') });
    const storage = new MemoryClientStorage();
    const { idB } = await twoClosedTabs(storage);
    locked = true;
    const errors: Error[] = [];
    const c = tab(storage);
    c.on('error', (e) => errors.push(e));
    const other = c.open('other');
    await within(other.ready, 5000, 'another document');
    await waitFor("B's id to be given back", async () => {
      const lease = await storage.tryAcquire(idB);
      lease?.release();
      return lease !== undefined;
    });
    expect(errors.map((e) => (e as OtterError).code)).toEqual(['storage-failed']);
    expect(errors[0]?.message).toContain('"shared"');
    expect((await storage.load(idB, 'shared'))?.ops).toEqual([['[from-b]']]);
  });

  it('an id whose lease was still held when this tab started (its tab still closing) is adopted once the lease is given up, in this visit, exactly once', async () => {
    await live.start();
    const storage = new MemoryClientStorage();
    const { idA, idB } = await twoClosedTabs(storage);
    // B's tab is still closing: its lease is held while this tab starts.
    const closing = await storage.tryAcquire(idB);
    expect(closing).toBeDefined();
    const c = tab(storage);
    const docC = c.open('shared');
    await within(docC.ready, 5000, 'C opening');
    expect(c.clientId).toBe(idA);
    const observer = await observe(live, 'shared');
    await waitFor("A's edit on the server", () => observer.text.includes('[from-a]'), 10_000, () => observer.text);
    expect(observer.text.includes('[from-b]')).toBe(false);
    closing?.release();
    await waitFor("B's edit on the server", () => observer.text.includes('[from-b]'), 15_000, () => observer.text);
    await waitFor("B's record to be removed", async () => (await storage.load(idB, 'shared')) === undefined);
    await waitFor('C and the observer to converge', () => docC.text === observer.text && docC.version === observer.version);
    expect(count(observer.text, '[from-a]')).toBe(1);
    expect(count(observer.text, '[from-b]')).toBe(1);
  });

  it('an id still leased by a live connection is not adopted: its edits are sent by their owner only, exactly once', async () => {
    await live.start();
    class Watched extends MemoryClientStorage {
      readonly refused: string[] = [];
      override async tryAcquire(clientId: string) {
        const lease = await super.tryAcquire(clientId);
        if (lease === undefined) this.refused.push(clientId);
        return lease;
      }
    }
    const storage = new Watched();
    const netB = new ClientNetwork();
    const a = tab(storage);
    const docA = a.open('shared');
    await within(docA.ready, 5000, 'A opening');
    const b = tab(storage, netB);
    const docB = b.open('shared');
    await within(docB.ready, 5000, 'B opening');
    const idB = b.clientId as string;
    netB.goOffline();
    await waitFor('B to go offline', () => docB.lifecycle.phase === 'offline');
    docB.insert(0, '[from-b]');
    await within(docB.flushStorage(), 5000, 'B saving');
    await within(a.close(), 5000, 'closing A');

    const netC = new ClientNetwork();
    const c = tab(storage, netC);
    const docC = c.open('shared');
    await within(docC.ready, 5000, 'C opening');
    await waitFor("C to find B's id held", () => storage.refused.includes(idB));
    expect(netC.trace.some((line) => line.includes(idB))).toBe(false); // no hello under B's id
    expect((await storage.load(idB, 'shared'))?.ops).toEqual([['[from-b]']]);

    netB.offline = false;
    await within(docB.synced(), 10_000, 'B sending its edit');
    await waitFor('C to receive it', () => docC.text === docB.text && docC.version === docB.version);
    expect(count(docC.text, '[from-b]')).toBe(1);
    expect(docC.text).toBe('[from-b]');
    expect(netC.trace.some((line) => line.includes(idB))).toBe(false);
  });

  it('adoption cut off after the server applied the adopted op but before its ack, then the tab closed: a later tab finishes it, still exactly once', async () => {
    await live.start();
    const storage = new MemoryClientStorage();
    const { idB } = await twoClosedTabs(storage);
    const observer = await observe(live, 'shared');

    // Once B's op is on the wire, nothing more reaches or leaves this tab, on any socket.
    const netC: ClientNetwork = new ClientNetwork({
      onOutgoing: (frame) => {
        if (frame.includes('"submit"') && frame.includes('[from-b]')) for (const s of netC.sockets) s.freeze();
      },
    });
    const c = tab(storage, netC);
    c.open('shared');
    await waitFor('the server to apply the adopted op', () => observer.text.includes('[from-b]'), 10_000, () => observer.text);
    expect((await storage.load(idB, 'shared'))?.inflight).toBe(1); // unconfirmed: still stored
    await within(c.close(), 5000, 'closing the tab mid-adoption');
    expect((await storage.load(idB, 'shared'))?.ops).toEqual([['[from-b]']]);

    const d = tab(storage);
    const docD = d.open('shared');
    await within(docD.synced(), 10_000, "D's open");
    await waitFor("B's record to be removed", async () => (await storage.load(idB, 'shared')) === undefined, 10_000);
    await waitFor('both edits on the server', () => observer.text.includes('[from-a]'), 10_000, () => observer.text);
    await waitFor('D and the observer to converge', () => docD.text === observer.text && docD.version === observer.version);
    expect(count(observer.text, '[from-a]')).toBe(1);
    expect(count(observer.text, '[from-b]')).toBe(1);
    expect(observer.text.length).toBe('[from-a][from-b]'.length);
  });

  it('a save that fails once is written again: the record keeps the edits saved before it and gains the later ones', async () => {
    await live.start();
    class BusyOnceStorage extends MemoryClientStorage {
      failNext = false;
      override async save(clientId: string, docId: string, record: StoredDocument): Promise<void> {
        if (this.failNext) {
          this.failNext = false;
          throw new Error('storage busy');
        }
        return super.save(clientId, docId, record);
      }
    }
    const storage = new BusyOnceStorage();
    const network = new ClientNetwork();
    const conn = tab(storage, network);
    const doc = conn.open('busy');
    const errors: ErrorMessage[] = [];
    doc.on('error', (e) => errors.push(e));
    await within(doc.ready, 5000, 'the open');
    network.goOffline();
    await waitFor('the document to go offline', () => doc.lifecycle.phase === 'offline');
    doc.insert(0, '[A]');
    await within(doc.flushStorage(), 5000, 'saving [A]');
    storage.failNext = true;
    doc.insert(3, '[B]');
    await waitFor('the failed save to be reported', () => errors.length === 1);
    await waitFor('[A][B] to be stored', async () => {
      const record = await storage.load(conn.clientId as string, 'busy');
      return record !== undefined && record.ops.length > 0 && doc.unsaved;
    });
    await within(doc.flushStorage(), 5000, 'the retried save');
    const record = await storage.load(conn.clientId as string, 'busy');
    let text = record?.text ?? '';
    for (const op of record?.ops ?? []) text = apply(text, op);
    expect(text).toBe('[A][B]');
    expect(errors.map((e) => e.code)).toEqual(['storage-failed']);
    network.offline = false; // back online: the reconnection goes through
    await within(doc.synced(), 5000, 'the edits');
    expect((await observe(live, 'busy')).text).toBe('[A][B]');
  });

  it('a storage whose saves fail: the document emits error storage-failed, goes on without storage, and every edit still reaches the server once', async () => {
    await live.start();
    class FailingStorage extends MemoryClientStorage {
      saves = 0;
      override async save(): Promise<void> {
        this.saves += 1;
        throw new Error('quota exceeded');
      }
    }
    const storage = new FailingStorage();
    const errors: ErrorMessage[] = [];
    const conn = tab(storage);
    const doc = conn.open('notes');
    doc.on('error', (e) => errors.push(e));
    await within(doc.ready, 5000, 'the open');
    doc.insert(0, 'one');
    doc.insert(3, ' two');
    expect(doc.text).toBe('one two');
    await within(doc.synced(), 5000, 'the edits');
    doc.insert(7, ' three');
    await within(doc.synced(), 5000, 'the edit after the failure');
    expect(errors.map((e) => [e.code, e.ref])).toEqual([['storage-failed', { type: 'client-storage', doc: 'notes' }]]);
    expect(errors[0]?.message).toContain('quota exceeded');
    expect(storage.saves).toBe(SAVE_ATTEMPTS); // given up after the record was removed
    expect(await storage.load(conn.clientId as string, 'notes')).toBeUndefined();
    const observer = await observe(live, 'notes');
    expect(observer.text).toBe('one two three');
  });

  it('a record stored under the leased id holds the confirmed text, version, seq and pending ops as one consistent state', async () => {
    await live.start();
    const storage = new MemoryClientStorage();
    const network = new ClientNetwork();
    const conn = tab(storage, network);
    const doc = conn.open('notes');
    await within(doc.ready, 5000, 'the open');
    doc.insert(0, 'abc');
    await within(doc.synced(), 5000, 'the edit');
    network.goOffline();
    await waitFor('the document to go offline', () => doc.lifecycle.phase === 'offline');
    doc.insert(3, 'd');
    await within(doc.flushStorage(), 5000, 'the save');
    const record = (await storage.load(conn.clientId as string, 'notes')) as StoredDocument;
    expect(record).toEqual({
      format: 1,
      epoch: doc.epoch,
      version: 1,
      checksum: expect.any(Number),
      text: 'abc',
      samples: expect.any(Array),
      seq: 1,
      ops: [[3, 'd']],
    });
  });

  // Law: whatever the order of edits, server drops and tab closes, every edit a tab made
  // reaches the server exactly once, and every client ends with the server's text.
  it('seeded runs of random edits, socket kills, offline spells and tab closes with one storage: every marker exactly once on the server, all converge', async () => {
    await live.start();
    for (const seed of [1, 2, 3]) {
      const random = seededRandom(seed);
      const docId = `prop-${seed}`;
      const storage = new MemoryClientStorage();
      const observer = await observe(live, docId);
      const typed: string[] = [];
      let network = new ClientNetwork();
      let conn = tab(storage, network);
      let doc = conn.open(docId);
      await within(doc.loaded, 5000, 'the first load');
      let marker = 0;
      const boundaries = (text: string): number[] => [0, ...[...text.matchAll(/>/g)].map((m) => (m.index as number) + 1)];
      for (let step = 0; step < 40; step += 1) {
        const action = below(random, 10);
        if (action < 5) {
          const text = `<${seed}.${marker++}>`;
          const at = boundaries(doc.text);
          doc.insert(at[below(random, at.length)] as number, text);
          typed.push(text);
        } else if (action === 5) {
          const text = `<o${seed}.${marker++}>`;
          const at = boundaries(observer.text);
          observer.insert(at[below(random, at.length)] as number, text);
          typed.push(text);
        } else if (action === 6) {
          network.kill();
        } else if (action === 7) {
          network.offline = !network.offline;
          if (network.offline) network.kill();
        } else {
          // The tab closes (its last write done and its id given up, as a closed page's are) and reopens.
          if (chance(random, 0.5)) await within(doc.flushStorage(), 5000, 'a save');
          const clientId = conn.clientId;
          await within(conn.close(), 5000, 'a close');
          network = new ClientNetwork();
          conn = tab(storage, network);
          doc = conn.open(docId);
          await within(doc.loaded, 5000, 'a reload');
          expect(conn.clientId).toBe(clientId);
        }
        await new Promise((resolve) => setTimeout(resolve, below(random, 15)));
      }
      network.offline = false;
      await within(doc.ready, 10_000, 'the last tab opening');
      await within(Promise.all([doc.synced(), observer.synced()]), 10_000, 'everything sent');
      await waitFor(
        `seed ${seed}: the tab and the observer to converge`,
        () => doc.version === observer.version && doc.text === observer.text,
        10_000,
        () => `tab ${doc.version} ${doc.text}\nobserver ${observer.version} ${observer.text}`,
      );
      for (const text of typed) expect(count(observer.text, text), `seed ${seed}: ${text}`).toBe(1);
      expect(observer.text.length).toBe(typed.join('').length);
      conn.close();
    }
  }, 30_000);
});
