/**
 * Real-time collaboration end to end: real servers on 127.0.0.1, real WebSockets, real
 * Connections. Convergence of concurrent editing on several documents, catch-up after a
 * disconnect (exactly-once delivery of offline and in-flight edits), the presence lifecycle
 * (including a half-open connection reaped by the server's heartbeat), a server restart over a
 * SqliteStore under continuous typing, and graceful shutdown.
 *
 * Every wait is a poll with a deadline (`waitFor`); nothing asserts on timing. Markers such as
 * «alpha:c2-17» are unique per edit, and edits never cut into or delete one, so a marker's
 * count in the final text says whether its edit was lost (0) or doubled (2).
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CollaborativeDocument } from '../../src/client/document.js';
import { apply } from '../../src/ot/index.js';
import { MemoryStore, SqliteStore } from '../../src/server/index.js';
import type { OtterServer, Store } from '../../src/server/index.js';
import {
  Cleanup,
  type ClientDoc,
  type TestClient,
  headOf,
  markerCounts,
  markersIn,
  newClient,
  randomEdit,
  startServer,
  stopServer,
  tempDir,
  waitConverged,
} from './helpers.js';
import { below, seededRandom } from '../support/random.js';
import { RawClient } from '../support/raw-client.js';
import { sleep, waitFor } from '../support/wait.js';

const cleanup = new Cleanup();
afterEach(async () => {
  RawClient.terminateAll();
  await cleanup.run();
});

/** Asserts every marker of `typed` occurs exactly once in `text`, and no other marker does. */
function expectExactlyOnce(text: string, typed: Iterable<string>): void {
  const counts = markerCounts(text);
  const expected = [...typed];
  const wrong = expected.filter((m) => counts.get(m) !== 1).map((m) => `${m}×${counts.get(m) ?? 0}`);
  expect(wrong, 'markers lost (×0) or doubled (×2+)').toEqual([]);
  const strangers = [...counts.keys()].filter((m) => !expected.includes(m));
  expect(strangers, 'markers nobody typed').toEqual([]);
}

/** The op log of `docId` from version 0 replays to the head text, with every (client, seq) once. */
async function expectCleanLog(server: OtterServer, docId: string): Promise<void> {
  const head = await headOf(server, docId);
  const ops = await server.sequencer.getOps(docId, 0);
  expect(ops.map((r) => r.version)).toEqual(Array.from({ length: head.version }, (_, i) => i + 1));
  const keys = ops.map((r) => `${r.clientId}#${r.seq}`);
  expect(new Set(keys).size, 'a (clientId, seq) committed twice').toBe(keys.length);
  let text = '';
  for (const r of ops) text = apply(text, r.op);
  expect(text).toBe(head.text);
}

function clientDoc(client: TestClient, doc: CollaborativeDocument): ClientDoc {
  return { name: client.name, connection: client.connection, doc };
}

describe('e2e: concurrent editing', () => {
  it('4 clients on 3 documents, editing at once with emoji, converge on the server text, documents independent', async () => {
    const server = await startServer(cleanup);
    const docIds = ['alpha', 'beta', 'gamma'];
    const clients = [0, 1, 2, 3].map((i) => newClient(cleanup, server.url, `c${i}`));
    const docs = clients.map((c) => docIds.map((d) => c.open(d)));
    await Promise.all(docs.flat().map((d) => d.ready));

    const random = seededRandom(20240601);
    const typed = new Map<string, string[]>(docIds.map((d) => [d, []]));
    let n = 0;
    for (let round = 0; round < 40; round++) {
      // A burst of edits by random clients on random documents, none awaited.
      for (let k = 0; k < 8; k++) {
        const c = below(random, clients.length);
        const d = below(random, docIds.length);
        const docId = docIds[d] as string;
        const marker = `«${docId}:c${c}-${n++}»`;
        const done = randomEdit(docs[c]?.[d] as CollaborativeDocument, random, marker);
        if (done.kind === 'insert') typed.get(docId)?.push(marker);
      }
      await sleep(below(random, 3));
    }

    for (const [d, docId] of docIds.entries()) {
      const head = await waitConverged(
        () => server,
        docId,
        clients.map((c, i) => clientDoc(c, docs[i]?.[d] as CollaborativeDocument)),
      );
      expect(head.version).toBeGreaterThan(0);
      // Independent: each document holds exactly its own markers, each once.
      expectExactlyOnce(head.text, typed.get(docId) ?? []);
      for (const m of markersIn(head.text)) expect(m.startsWith(`«${docId}:`)).toBe(true);
      await expectCleanLog(server, docId);
    }
    for (const c of clients) expect(c.errors).toEqual([]);
  });
});

describe('e2e: catch-up after a disconnect', () => {
  it('a client cut off misses edits, edits offline, reconnects on its own, catches up; its edits land exactly once', async () => {
    const server = await startServer(cleanup);
    const [a, b, c] = ['a', 'b', 'c'].map((name) => newClient(cleanup, server.url, name)) as [TestClient, TestClient, TestClient];
    const da = a.open('doc');
    const db = b.open('doc');
    const dc = c.open('doc');
    await Promise.all([da.ready, db.ready, dc.ready]);
    const all = [clientDoc(a, da), clientDoc(b, db), clientDoc(c, dc)];
    const typed: string[] = [];
    const type = (doc: CollaborativeDocument, marker: string): void => {
      doc.insert(doc.text.length, `${marker}🦦`);
      typed.push(marker);
    };
    type(da, '«a-1»');
    type(db, '«b-1»');
    await waitConverged(() => server, 'doc', all);

    // Cut c off: its socket dies and reconnection attempts fail until it is back online.
    c.net.goOffline();
    await waitFor('c to notice the disconnect', () => c.connection.state === 'connecting');
    for (let i = 2; i <= 6; i++) {
      type(da, `«a-${i}»`);
      type(db, `«b-${i}»`);
    }
    await Promise.all([da.synced(), db.synced()]);
    // Offline edits, at the start, the middle and the end of c's (stale) text.
    dc.insert(0, '«c-1»');
    const mid = dc.text.indexOf('«', 1); // the start of the second marker c has
    dc.insert(mid > 0 ? mid : 0, '«c-2»👍🏽');
    dc.insert(dc.text.length, '«c-3»');
    typed.push('«c-1»', '«c-2»', '«c-3»');
    expect(dc.text).not.toContain('«a-6»'); // it really is cut off
    expect(c.connection.state).toBe('connecting');

    c.net.offline = false; // back online: the client reconnects by itself
    const head = await waitConverged(() => server, 'doc', all);
    expectExactlyOnce(head.text, typed);
    expect(c.net.sockets.filter((s) => s.wasOpen).length).toBeGreaterThanOrEqual(2);
    await expectCleanLog(server, 'doc');
    for (const x of [a, b, c]) expect(x.errors).toEqual([]);
  });

  it('a client further behind than a catch-up may carry (maxCatchUpBytes) gets the text instead, merges its offline edits once, and says so', async () => {
    const server = await startServer(cleanup, { limits: { maxCatchUpBytes: 400 } });
    const [a, c] = ['a', 'c'].map((name) => newClient(cleanup, server.url, name)) as [TestClient, TestClient];
    const da = a.open('doc');
    const dc = c.open('doc');
    await Promise.all([da.ready, dc.ready]);
    const all = [clientDoc(a, da), clientDoc(c, dc)];
    const merged: number[] = [];
    dc.on('merged', ({ edits }) => merged.push(edits));
    da.insert(0, '«a-0»\n');
    await waitConverged(() => server, 'doc', all);
    c.net.goOffline();
    await waitFor('c to notice the disconnect', () => c.connection.state === 'connecting');
    const typed = ['«a-0»'];
    for (let i = 1; i <= 30; i++) {
      da.insert(da.text.length, `«a-${i}»\n`); // about 30 bytes an op: 900 bytes of catch-up
      typed.push(`«a-${i}»`);
    }
    await da.synced();
    dc.insert(0, '«c-1»');
    typed.push('«c-1»');
    c.net.offline = false;
    const head = await waitConverged(() => server, 'doc', all);
    expectExactlyOnce(head.text, typed);
    expect(merged).toEqual([1]);
    for (const x of [a, c]) expect(x.errors).toEqual([]);
  });

  it('an op that reached the server but whose ack was lost is applied once, not twice, after the reconnect', async () => {
    const server = await startServer(cleanup);
    let hold = false;
    const a = newClient(cleanup, server.url, 'a');
    const c = newClient(cleanup, server.url, 'c', { delay: (dir) => (hold && dir === 'in' ? 60_000 : 0) });
    const da = a.open('doc');
    const dc = c.open('doc');
    await Promise.all([da.ready, dc.ready]);
    da.insert(0, '«a-1»');
    await waitConverged(() => server, 'doc', [clientDoc(a, da), clientDoc(c, dc)]);

    // Everything the server sends c from now on is stuck in transit.
    hold = true;
    dc.insert(dc.text.length, '«c-1»🏳️‍🌈');
    da.insert(0, '«a-2»');
    await waitFor("the server to apply c's op", async () => (await headOf(server, 'doc')).text.includes('«c-1»'));
    expect(dc.syncState.kind).toBe('awaiting-confirm'); // c never heard back
    dc.insert(0, '«c-2»'); // buffered behind the op in flight
    // The connection dies with the ack still in transit: it is lost.
    hold = false;
    c.net.kill();

    const head = await waitConverged(() => server, 'doc', [clientDoc(a, da), clientDoc(c, dc)]);
    expectExactlyOnce(head.text, ['«a-1»', '«a-2»', '«c-1»', '«c-2»']);
    await expectCleanLog(server, 'doc');
    expect(a.errors).toEqual([]);
    expect(c.errors).toEqual([]);
  });

  it('an op lost on its way to the server is resent after the reconnect and applied once', async () => {
    const server = await startServer(cleanup);
    let hold = false;
    const a = newClient(cleanup, server.url, 'a');
    const c = newClient(cleanup, server.url, 'c', { delay: (dir) => (hold && dir === 'out' ? 60_000 : 0) });
    const da = a.open('doc');
    const dc = c.open('doc');
    await Promise.all([da.ready, dc.ready]);
    hold = true;
    dc.insert(0, '«c-1»');
    da.insert(0, '«a-1»');
    await waitFor('c to receive a-1', () => dc.text.includes('«a-1»'));
    const head0 = await headOf(server, 'doc');
    expect(head0.text).not.toContain('«c-1»');
    hold = false;
    c.net.kill(); // the submit dies in transit

    const head = await waitConverged(() => server, 'doc', [clientDoc(a, da), clientDoc(c, dc)]);
    expectExactlyOnce(head.text, ['«a-1»', '«c-1»']);
    await expectCleanLog(server, 'doc');
  });
});

/**
 * A client with pending edits whose version is older than the server's retained history is
 * resynced from a snapshot: the missed history is reconstructed hunk by hunk (a shortest edit
 * script), so a pending delete or insert outside the others' changes keeps its effect and place,
 * as it would had the server rebased it over the real history.
 */
describe('e2e: snapshot resync with pending edits', () => {
  /** A server that keeps no history (every catch-up is a snapshot), a writer and a client cut off. */
  async function cutOff(initial: string): Promise<{
    server: OtterServer;
    a: TestClient;
    c: TestClient;
    da: CollaborativeDocument;
    dc: CollaborativeDocument;
    reconnect: () => Promise<string>;
  }> {
    const server = await startServer(cleanup, { sequencer: { retention: { ops: 0 }, snapshotEvery: 1 } });
    const a = newClient(cleanup, server.url, 'a');
    const c = newClient(cleanup, server.url, 'c');
    const da = a.open('doc');
    const dc = c.open('doc');
    await Promise.all([da.ready, dc.ready]);
    da.insert(0, initial);
    await waitConverged(() => server, 'doc', [clientDoc(a, da), clientDoc(c, dc)]);
    c.net.goOffline();
    await waitFor('c to notice the disconnect', () => c.connection.state === 'connecting');
    const reconnect = async (): Promise<string> => {
      await da.synced();
      // c's version is no longer in the history: its re-open gets a snapshot.
      const from = dc.version;
      await waitFor(
        "the history after c's version to be trimmed",
        () => server.sequencer.getOps('doc', from).then(() => false, (e: { code?: string }) => e.code === 'history-gone'),
      );
      c.net.offline = false;
      return (await waitConverged(() => server, 'doc', [clientDoc(a, da), clientDoc(c, dc)])).text;
    };
    return { server, a, c, da, dc, reconnect };
  }

  it('a delete made while cut off survives a snapshot resync when others edited on both sides of it', async () => {
    const { da, dc, reconnect } = await cutOff('abcXdef');
    dc.delete(3, 1); // c deletes "X"
    da.insert(1, '1');
    da.insert(7, '2'); // a1bcXde2f
    // Today: "a1bcXde2f" — c's delete was dropped without a word.
    expect(await reconnect()).toBe('a1bcde2f');
  });

  it('an insert made while cut off keeps its place after a snapshot resync and does not split a word another client inserted', async () => {
    const { da, dc, reconnect } = await cutOff('Z«k»');
    dc.insert(1, '!'); // c types right after the Z
    da.delete(0, 1);
    da.insert(0, 'Y');
    da.insert(da.text.length, '«q»'); // Y«k»«q»
    // Today: "Y«k»«q!»" — c's "!" moved into the middle of a's «q».
    expect(await reconnect()).toBe('Y!«k»«q»');
  });
});

describe('e2e: presence', () => {
  it('a selection appears on the others under its connection id, follows inserts, and goes when the document is closed or the client leaves', async () => {
    const server = await startServer(cleanup);
    const [a, b, c] = ['a', 'b', 'c'].map((name) => newClient(cleanup, server.url, name)) as [TestClient, TestClient, TestClient];
    let da = a.open('p');
    const db = b.open('p');
    const dc = c.open('p');
    await Promise.all([da.ready, db.ready, dc.ready]);
    da.insert(0, 'hello world');
    await waitConverged(() => server, 'p', [clientDoc(a, da), clientDoc(b, db), clientDoc(c, dc)]);

    const idA = a.connection.connectionId as string;
    expect(idA).toBeTruthy();
    const leftEvents: string[] = [];
    for (const d of [db, dc]) d.on('presence', (e) => e.selection === null && leftEvents.push(e.id));

    da.setSelection({ anchor: 6, head: 11 });
    for (const d of [db, dc]) {
      await waitFor("a's selection to appear", () => d.presences.get(idA)?.selection?.[0]?.anchor === 6);
      expect(d.presences.get(idA)?.selection).toEqual([{ anchor: 6, head: 11 }]);
      expect(d.presences.size).toBe(1);
    }

    // b inserts before it: the selection moves on every side.
    db.insert(0, '¡😀 ');
    const shift = '¡😀 '.length;
    for (const d of [db, dc]) {
      await waitFor("a's selection to move", () => d.presences.get(idA)?.selection?.[0]?.anchor === 6 + shift);
      expect(d.presences.get(idA)?.selection).toEqual([{ anchor: 6 + shift, head: 11 + shift }]);
    }
    await waitFor("a's own selection to move", () => da.selection?.[0]?.anchor === 6 + shift);
    // A latecomer gets the current presences when it opens the document.
    const late = newClient(cleanup, server.url, 'late');
    const dl = late.open('p');
    await dl.ready;
    await waitFor('the latecomer to see a', () => dl.presences.get(idA) !== undefined);
    expect(dl.presences.get(idA)?.selection).toEqual([{ anchor: 6 + shift, head: 11 + shift }]);
    expect(dl.text.slice(6 + shift, 11 + shift)).toBe('world');

    // 1. a closes the document: 'left' reaches the others.
    da.close();
    for (const d of [db, dc, dl]) {
      await waitFor("a's presence to go after it closed the document", () => !d.presences.has(idA));
    }
    expect(leftEvents.filter((id) => id === idA)).toHaveLength(2);

    // 2. a re-opens, selects, then closes its connection.
    da = a.open('p');
    await da.ready;
    da.setSelection({ anchor: 0, head: 1 });
    for (const d of [db, dc]) await waitFor('a back', () => d.presences.get(idA)?.selection?.[0]?.head === 1);
    a.connection.close();
    for (const d of [db, dc, dl]) await waitFor("a's presence to go after it disconnected", () => !d.presences.has(idA));
    expect(leftEvents.filter((id) => id === idA)).toHaveLength(4); // a presence-null event each time

    // 3. c's socket dies underneath: its old id leaves, and after the automatic reconnect its
    //    selection comes back under its new connection id.
    dc.setSelection({ anchor: 2, head: 2 });
    const idC = c.connection.connectionId as string;
    await waitFor("c's caret to appear", () => db.presences.get(idC)?.selection?.[0]?.head === 2);
    c.net.kill();
    await waitFor("c's old presence to go", () => !db.presences.has(idC));
    await waitFor(
      'c to reconnect',
      () => c.connection.connectionId !== undefined && c.connection.connectionId !== idC,
    );
    const idC2 = c.connection.connectionId as string;
    await waitFor("c's caret to come back", () => db.presences.get(idC2)?.selection?.[0]?.head === 2);
    expect(db.presences.has(idC)).toBe(false);
    expect([...db.presences.keys()]).toEqual([idC2]); // the latecomer never selected anything
  });

  it("a connection's profile travels with its presence to the others and to a latecomer", async () => {
    const server = await startServer(cleanup);
    const profile = { name: 'Ann', color: '#00aa55', team: 'red', seat: 4 };
    const a = newClient(cleanup, server.url, 'a', { profile });
    const b = newClient(cleanup, server.url, 'b');
    const da = a.open('p');
    const db = b.open('p');
    await Promise.all([da.ready, db.ready]);
    const idA = a.connection.connectionId as string;
    const events: unknown[] = [];
    db.on('presence', (e) => events.push(e.profile));
    da.setSelection(null);
    await waitFor("a's presence to appear", () => db.presences.has(idA));
    expect(db.presences.get(idA)).toEqual({ selection: null, profile });
    expect(events).toEqual([profile]);
    const late = newClient(cleanup, server.url, 'late');
    const dl = late.open('p');
    await dl.ready;
    await waitFor('the latecomer to see a', () => dl.presences.has(idA));
    expect(dl.presences.get(idA)?.profile).toEqual(profile);
  });

  it('a half-open connection that never answers pings is reaped by the heartbeat and the others see it leave', async () => {
    const server = await startServer(cleanup, { heartbeatInterval: 100 });
    const b = newClient(cleanup, server.url, 'b');
    const db = b.open('p');
    await db.ready;
    db.insert(0, 'abc');
    await db.synced();

    // A raw client that never answers a WebSocket ping (and sends nothing after its presence).
    const ghost = await RawClient.connect(server.url, { autoPong: false });
    const welcome = await ghost.hello('ghost');
    const opened = await ghost.opened('p');
    ghost.send({ type: 'presence', doc: 'p', v: opened.v, selection: [{ anchor: 1, head: 2 }] });
    await waitFor("the ghost's presence", () => db.presences.get(welcome.connectionId) !== undefined);
    expect(db.presences.get(welcome.connectionId)?.selection).toEqual([{ anchor: 1, head: 2 }]);
    expect(server.connections).toBe(2);

    const { code } = await ghost.waitClosed(5000); // terminated: no close frame
    expect(code).toBe(1006);
    await waitFor('the ghost to leave', () => !db.presences.has(welcome.connectionId));
    await waitFor('the server to drop the ghost', () => server.connections === 1);
    // The well-behaved client answers pings and is still on its first socket.
    expect(b.connection.state).toBe('open');
    expect(b.net.sockets).toHaveLength(1);
  });
});

describe('e2e: half-open connections', () => {
  it('an Otter client whose connection goes half-open is reaped by the server and reconnects by its own heartbeat; its edits land once', async () => {
    const server = await startServer(cleanup, { heartbeatInterval: 100 });
    const a = newClient(cleanup, server.url, 'a');
    const c = newClient(cleanup, server.url, 'c', { heartbeatInterval: 50, heartbeatTimeout: 300 });
    const da = a.open('doc');
    const dc = c.open('doc');
    await Promise.all([da.ready, dc.ready]);
    dc.insert(0, '«c-1» hello');
    await waitConverged(() => server, 'doc', [clientDoc(a, da), clientDoc(c, dc)]);
    dc.setSelection({ anchor: 6, head: 11 });
    const idOld = c.connection.connectionId as string;
    await waitFor("c's selection", () => da.presences.get(idOld)?.selection?.[0]?.head === 11);

    c.net.freeze(); // nothing more gets through, and nobody closes anything
    dc.insert(dc.text.length, ' «c-2»');
    da.insert(0, '«a-1» ');
    // The server's heartbeat reaps the old connection: a sees c leave.
    await waitFor("c's old connection to be reaped", () => !da.presences.has(idOld));
    // c's heartbeat gives up on the dead socket and reconnects; its selection comes back.
    await waitFor(
      'c to reconnect',
      () => c.connection.connectionId !== undefined && c.connection.connectionId !== idOld,
    );
    const idNew = c.connection.connectionId as string;
    const head = await waitConverged(() => server, 'doc', [clientDoc(a, da), clientDoc(c, dc)]);
    expectExactlyOnce(head.text, ['«c-1»', '«c-2»', '«a-1»']);
    await waitFor("c's selection under its new id", () => da.presences.get(idNew)?.selection !== undefined);
    // The same selection on both sides: "hello", and the " «c-2»" c typed at its caret.
    await waitFor(
      "a to see c's current selection",
      () => JSON.stringify(da.presences.get(idNew)?.selection) === JSON.stringify(dc.selection),
    );
    const [range] = dc.selection ?? [];
    expect(dc.text.slice(range?.anchor, range?.head)).toBe('hello «c-2»');
    expect([...da.presences.keys()]).toEqual([idNew]);
    await waitFor('the server to hold exactly the two live connections', () => server.connections === 2);
    await expectCleanLog(server, 'doc');
  });
});

describe('e2e: server restart and shutdown', () => {
  it('clients keep typing through a restart on the same SQLite file and port, reconnect on their own and lose or double nothing', async () => {
    const file = join(tempDir(cleanup), 'otter.db');
    let server = await startServer(cleanup, { store: new SqliteStore(file) });
    const port = server.port;
    const clients = [0, 1, 2].map((i) => newClient(cleanup, server.url, `r${i}`));
    const docs = clients.map((c) => c.open('doc'));
    await Promise.all(docs.map((d) => d.ready));
    const all = clients.map((c, i) => clientDoc(c, docs[i] as CollaborativeDocument));

    const random = seededRandom(7);
    const typed: string[] = [];
    let stop = false;
    cleanup.add(() => {
      stop = true; // if the test fails half-way
    });
    const typing = clients.map(async (_, i) => {
      const doc = docs[i] as CollaborativeDocument;
      for (let n = 0; !stop && !doc.closed; n++) {
        const marker = `«r${i}-${n}»`;
        if (randomEdit(doc, random, marker, 0.25).kind === 'insert') typed.push(marker);
        await sleep(2 + below(random, 8));
      }
    });

    await waitFor('some edits before the restart', async () => (await headOf(server, 'doc')).version >= 15, 10_000);
    const socketsBefore = clients.map((c) => c.net.current);
    await stopServer(server);
    // Every acknowledgement the clients got before the shutdown finished.
    const ackedAtClose = clients.flatMap((c) => [...c.acks.of('doc')]);
    expect(ackedAtClose.length).toBeGreaterThan(0);
    // The graceful close told every client 1001 (going away).
    for (const s of socketsBefore) await waitFor('the 1001 close', () => s?.closeCode !== undefined);
    expect(socketsBefore.map((s) => s?.closeCode)).toEqual([1001, 1001, 1001]);

    server = await startServer(cleanup, { store: new SqliteStore(file), port });
    expect(server.port).toBe(port);
    // Nothing acknowledged before the restart was lost in it.
    const restarted = await headOf(server, 'doc');
    const counts = markerCounts(restarted.text);
    expect(ackedAtClose.filter((m) => counts.get(m) !== 1)).toEqual([]);

    // Typing goes on after the clients reconnect by themselves.
    const version = restarted.version;
    await waitFor('edits after the restart', async () => (await headOf(server, 'doc')).version >= version + 15, 10_000);
    stop = true;
    await Promise.all(typing);

    const head = await waitConverged(() => server, 'doc', all, 15_000);
    expectExactlyOnce(head.text, typed);
    await expectCleanLog(server, 'doc');
    for (const c of clients) {
      expect(c.net.sockets.filter((s) => s.wasOpen).length).toBeGreaterThanOrEqual(2);
      // Submits that reached the old server after its sequencer stopped were refused 'closed'
      // (and resent after the reconnect); nothing else may go wrong.
      expect(c.errors.filter((e) => !/ closed: /.test(e))).toEqual([]);
    }
  });

  it('a graceful close lets a submission still being stored commit and be acknowledged before the 1001', async () => {
    // A store whose appends wait for a gate: the submission is mid-commit when close() starts.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let appending = false;
    const inner = new MemoryStore();
    const store: Store = Object.assign(Object.create(inner) as Store, {
      append: async (...args: Parameters<Store['append']>) => {
        appending = true;
        await gate;
        return inner.append(...args);
      },
    });
    const server = await startServer(cleanup, { store });
    const raw = await RawClient.connect(server.url);
    await raw.hello();
    await raw.open('doc');
    raw.send({ type: 'submit', doc: 'doc', v: 0, seq: 1, op: ['kept'] });
    await waitFor('the append to start', () => appending);
    const closing = stopServer(server);
    release();
    await closing;
    expect((await raw.waitClosed()).code).toBe(1001);
    expect(raw.messages.find((m) => m.type === 'ack')).toEqual({ type: 'ack', doc: 'doc', seq: 1, v: 1, sum: expect.any(Number) });
    expect(await inner.load('doc')).toMatchObject({ ops: [{ version: 1, op: ['kept'] }] });
  });

  it('a graceful close sends 1001 to raw and Otter clients, and Otter clients go back to reconnecting', async () => {
    const server = await startServer(cleanup);
    const raw = await RawClient.connect(server.url);
    await raw.hello();
    await raw.open('doc');
    raw.send({ type: 'submit', doc: 'doc', v: 0, seq: 1, op: ['x'] });
    await raw.nextOf('ack');
    const c = newClient(cleanup, server.url, 'c');
    const dc = c.open('doc');
    await dc.ready;
    const states: string[] = [];
    c.connection.on('state', (s) => states.push(s));

    await stopServer(server);
    expect((await raw.waitClosed()).code).toBe(1001);
    await waitFor('the Otter client to see the close', () => c.net.closeCodes.length > 0);
    expect(c.net.closeCodes[0]).toBe(1001);
    expect(states[0]).toBe('connecting'); // not 'closed': it will reconnect
    expect(server.connections).toBe(0);
  });
});
