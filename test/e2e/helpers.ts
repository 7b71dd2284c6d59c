/**
 * Shared helpers of the end-to-end tests (real servers, real sockets, real clients). Not a test
 * file itself.
 *
 * - {@link startServer}/{@link stopServer}: an Otter server on 127.0.0.1, port 0 by default;
 * - {@link newClient}: an Otter `Connection` over a fault-injecting `ClientNetwork`
 *   (`test/support/network.ts`);
 * - {@link randomEdit}: a random insert or delete on a document that never cuts into or deletes
 *   a marker such as «c3-17», so tests can count markers afterwards.
 */
import { Connection, type ConnectionOptions } from '../../src/client/connection.js';
import type { CollaborativeDocument } from '../../src/client/document.js';
import { type OtterServer, type ServerOptions, createServer } from '../../src/server/index.js';
import { ClientNetwork, type NetworkOptions } from '../support/network.js';
import { type Random, below, pick } from '../support/random.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { waitFor, within } from '../support/wait.js';

// ─── cleanup ────────────────────────────────────────────────────────────────────────────────

/** Things to undo after a test, in reverse order; `run` never throws before all ran. */
export class Cleanup {
  private readonly tasks: Array<() => unknown> = [];

  /** Registers `task` to run at cleanup. */
  add(task: () => unknown): void {
    this.tasks.push(task);
  }

  /** Runs every registered task, newest first; rethrows the first failure at the end. */
  async run(): Promise<void> {
    let first: unknown;
    while (this.tasks.length > 0) {
      const task = this.tasks.pop() as () => unknown;
      try {
        await task();
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw first;
  }
}

/** A fresh temporary directory, removed at cleanup. */
export function tempDir(cleanup: Cleanup, prefix = 'otter-e2e-'): string {
  const dir = makeTempDir(prefix);
  cleanup.add(() => removeTempDir(dir));
  return dir;
}

// ─── servers ────────────────────────────────────────────────────────────────────────────────

/**
 * Starts an Otter server on 127.0.0.1 (port 0 unless `options.port` says otherwise) and
 * registers its shutdown with `cleanup`. Closing twice is harmless (`close` is idempotent).
 */
export async function startServer(cleanup: Cleanup, options: ServerOptions = {}): Promise<OtterServer> {
  const server = await createServer({ host: '127.0.0.1', port: 0, ...options });
  cleanup.add(() => server.close());
  return server;
}

/** Graceful shutdown of `server` (1001 to every client), bounded. */
export async function stopServer(server: OtterServer, ms = 10_000): Promise<void> {
  await within(server.close(), ms, 'server.close()');
}

/** The server's committed text and version of `docId`. */
export async function headOf(server: OtterServer, docId: string): Promise<{ version: number; text: string }> {
  const { version, text } = await server.sequencer.getSnapshot(docId);
  return { version, text };
}

// ─── documents ──────────────────────────────────────────────────────────────────────────────

/** Every marker «…» in `text`. */
export function markersIn(text: string): string[] {
  return text.match(/«[^«»]*»/g) ?? [];
}

/** How often each marker occurs in `text`. */
export function markerCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of markersIn(text)) counts.set(m, (counts.get(m) ?? 0) + 1);
  return counts;
}

const FILLER = ['a', 'b', 'c', 'x', 'y', 'z', ' ', ' ', '\n', 'é', '中', '😀', '🦦', '👍🏽', '🏳️‍🌈', '𝄞'];

/** A random filler string of 0 to `max` code points (emoji included, never « or »). */
export function filler(random: Random, max = 4): string {
  let s = '';
  const n = below(random, max + 1);
  for (let i = 0; i < n; i++) s += pick(random, FILLER);
  return s;
}

function isHigh(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLow(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** Spans [start, end) of every marker in `text`. */
function markerSpans(text: string): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  for (const m of text.matchAll(/«[^«»]*»/g)) spans.push([m.index, m.index + m[0].length]);
  return spans;
}

/** Positions of `text` where an edit may start or end: not inside a surrogate pair or a marker. */
function boundaries(text: string, spans: ReadonlyArray<[number, number]>): number[] {
  const out: number[] = [];
  let s = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i > 0 && i < text.length && isHigh(text.charCodeAt(i - 1)) && isLow(text.charCodeAt(i))) continue;
    while (s < spans.length && (spans[s] as [number, number])[1] <= i) s++;
    const span = spans[s];
    if (span !== undefined && span[0] < i && i < span[1]) continue;
    out.push(i);
  }
  return out;
}

/** What {@link randomEdit} did. */
export type EditDone = { kind: 'insert'; pos: number; text: string } | { kind: 'delete'; pos: number; length: number };

/**
 * Makes one random edit on `doc`: with probability `deleteChance` a delete of up to 12 code
 * units that holds no marker (if there is such a range), else an insert of `marker` wrapped
 * in random filler (emoji included). Edits never split a surrogate pair or a marker, and
 * deletes never remove (part of) a marker, so every marker inserted survives whole, whatever
 * the concurrent edits: a concurrent insert inside a deleted range survives it in OT.
 */
export function randomEdit(doc: CollaborativeDocument, random: Random, marker: string, deleteChance = 0.3): EditDone {
  const text = doc.text;
  const spans = markerSpans(text);
  const points = boundaries(text, spans);
  if (random() < deleteChance && text.length > 0) {
    const start = pick(random, points);
    const next = spans.find(([a]) => a >= start)?.[0] ?? text.length;
    const ends = points.filter((p) => p > start && p <= Math.min(next, start + 12));
    if (ends.length > 0) {
      const end = pick(random, ends);
      doc.delete(start, end - start);
      return { kind: 'delete', pos: start, length: end - start };
    }
  }
  const pos = pick(random, points);
  const inserted = filler(random, 3) + marker + filler(random, 3);
  doc.insert(pos, inserted);
  return { kind: 'insert', pos, text: inserted };
}

// ─── convergence ────────────────────────────────────────────────────────────────────────────

/** A document of some client, for {@link waitConverged}. */
export interface ClientDoc {
  readonly name: string;
  readonly connection: Connection;
  readonly doc: CollaborativeDocument;
}

/** One line per client: state, sync state, version, text length and a text excerpt. */
export async function describeClients(server: OtterServer | undefined, docId: string, clients: readonly ClientDoc[]): Promise<string> {
  const lines: string[] = [];
  if (server !== undefined) {
    try {
      const head = await headOf(server, docId);
      lines.push(`server ${docId}: v${head.version}, ${head.text.length} units: ${JSON.stringify(head.text.slice(0, 120))}`);
    } catch (e) {
      lines.push(`server ${docId}: ${String(e)}`);
    }
  }
  for (const c of clients) {
    lines.push(
      `${c.name}: ${c.connection.state}, ${c.doc.syncState.kind}, v${c.doc.version}, ${c.doc.text.length} units: ${JSON.stringify(c.doc.text.slice(0, 120))}`,
    );
  }
  return lines.join('\n');
}

/**
 * Waits until every client's document is connected, has nothing awaiting acknowledgement, is
 * at the server's head version and holds the server's text. Returns the server's head.
 */
export async function waitConverged(
  getServer: () => OtterServer,
  docId: string,
  clients: readonly ClientDoc[],
  ms = 10_000,
): Promise<{ version: number; text: string }> {
  let head: { version: number; text: string } = { version: -1, text: '' };
  await waitFor(
    `every client of ${docId} to converge on the server's head`,
    async () => {
      head = await headOf(getServer(), docId);
      return clients.every(
        (c) =>
          c.connection.state === 'open' &&
          c.doc.syncState.kind === 'synchronized' &&
          c.doc.version === head.version &&
          c.doc.text === head.text,
      );
    },
    ms,
    () => describeClients(getServer(), docId, clients),
  );
  return head;
}

// ─── Otter clients ──────────────────────────────────────────────────────────────────────────

/**
 * Tracks which markers the server acknowledged to one client, from the frames themselves:
 * each outgoing `submit` records the markers its op inserts under its (doc, seq); an `ack` of
 * that seq, or the client's own entry (with its `seq`) in an `opened` catch-up, acknowledges
 * them. (A submission that landed and is learned of only through a snapshot is not counted:
 * the set is a lower bound of what was acknowledged.)
 */
export class AckTracker {
  /** Markers the server acknowledged, per document. */
  readonly acked = new Map<string, Set<string>>();
  private readonly bySeq = new Map<string, string[]>();

  /** Network options that feed this tracker. */
  readonly network: NetworkOptions = {
    onOutgoing: (frame) => this.outgoing(frame),
    onIncoming: (frame) => this.incoming(frame),
  };

  /** The acknowledged markers of `doc`. */
  of(doc: string): Set<string> {
    let set = this.acked.get(doc);
    if (set === undefined) {
      set = new Set();
      this.acked.set(doc, set);
    }
    return set;
  }

  private outgoing(frame: string): void {
    const m = JSON.parse(frame) as { type?: string; doc?: string; seq?: number; op?: unknown[] };
    if (m.type !== 'submit' || m.op === undefined) return;
    const markers = m.op.filter((c): c is string => typeof c === 'string').flatMap((s) => markersIn(s));
    this.bySeq.set(`${m.doc}\n${m.seq}`, markers);
  }

  private incoming(frame: string): void {
    const value = JSON.parse(frame) as unknown;
    for (const m of (Array.isArray(value) ? value : [value]) as Array<Record<string, unknown>>) {
      const doc = m['doc'] as string;
      if (m['type'] === 'ack') this.acknowledge(doc, m['seq'] as number);
      if (m['type'] === 'opened' && Array.isArray(m['ops'])) {
        for (const e of m['ops'] as Array<{ seq?: number }>) if (e.seq !== undefined) this.acknowledge(doc, e.seq);
      }
    }
  }

  private acknowledge(doc: string, seq: number): void {
    const set = this.of(doc);
    for (const marker of this.bySeq.get(`${doc}\n${seq}`) ?? []) set.add(marker);
  }
}

/** An Otter client of the tests: a real Connection over a {@link ClientNetwork}. */
export interface TestClient {
  readonly name: string;
  readonly net: ClientNetwork;
  readonly connection: Connection;
  readonly acks: AckTracker;
  /** Errors the connection and its documents reported, as `code: message`. */
  readonly errors: string[];
  /** Opens `docId` (recording its errors). */
  open(docId: string): CollaborativeDocument;
}

/** Options of {@link newClient}. */
export interface TestClientOptions extends Omit<ConnectionOptions, 'WebSocket'> {
  /** Delays of the client's network (see {@link NetworkOptions.delay}). */
  delay?: NetworkOptions['delay'];
}

/**
 * A Connection to `url` named `name` (also its clientId unless given), reconnecting quickly
 * (20 to 200 ms), closed at cleanup.
 */
export function newClient(cleanup: Cleanup, url: string, name: string, options: TestClientOptions = {}): TestClient {
  const acks = new AckTracker();
  const { delay, ...rest } = options;
  const net = new ClientNetwork({ ...acks.network, ...(delay === undefined ? {} : { delay }) });
  const connection = new Connection(url, {
    clientId: name,
    minReconnectDelay: 20,
    maxReconnectDelay: 200,
    retryDelay: 20,
    ...rest,
    WebSocket: net.WebSocket,
  });
  cleanup.add(() => {
    connection.close();
    for (const s of net.sockets) s.inner?.terminate(); // frozen sockets included
  });
  const errors: string[] = [];
  connection.on('error', (e) => errors.push(`${(e as { code?: string }).code ?? e.name}: ${e.message}`));
  return {
    name,
    net,
    connection,
    acks,
    errors,
    open(docId: string) {
      const doc = connection.open(docId);
      doc.on('error', (m) => errors.push(`${docId} ${m.code}: ${m.message}`));
      return doc;
    },
  };
}
