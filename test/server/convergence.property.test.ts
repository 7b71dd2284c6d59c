/**
 * The convergence law of the sequencer, as a property:
 *
 *   K clients (2–5), each an ot.js-style client (one op in flight, a buffer), make random edits
 *   (emoji included) on their own copy and submit them at whatever base version they know,
 *   resend their in-flight op at random (identical, or transformed to their newer base), and
 *   receive acks and broadcasts after random delays. When everything has been delivered:
 *     1. the server's text is the replay of its log from the empty document;
 *     2. every (clientId, seq) a client sent appears in the log exactly once;
 *     3. every client's text equals the server's.
 *
 * The sequencer rebases a late op over each later history op with side 'right', so a client
 * transforms its in-flight and buffered ops with 'right' and the incoming op with 'left'.
 * fast-check prints the seed and the shrunk command list of a failure.
 */
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Component, apply, compose, fromPatch, transform } from '../../src/ot/index.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { Sequencer, type SequencerOptions, type SubmitRequest } from '../../src/server/sequencer.js';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import type { OpRecord, Store } from '../../src/server/store.js';
import { replay } from './helpers.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { tick } from '../support/wait.js';

const DOC = 'shared';
/** `npm run test:long` (OTTER_LONG=1) explores far more cases. */
const LONG = process.env.OTTER_LONG === '1';

type Command =
  | { t: 'edit'; c: number; at: number; del: number; ins: string[] }
  | { t: 'send'; c: number; n: number }
  | { t: 'recv'; c: number; n: number }
  | { t: 'resend'; c: number; rebased: boolean }
  | { t: 'tick' };

const PIECES = ['a', 'b', 'c', ' ', 'é', '中', '😀', '😁', '👍🏽', '\n'];

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('edit' as const),
      c: fc.nat(4),
      at: fc.nat(1000),
      del: fc.oneof(fc.constant(0), fc.nat(4)),
      ins: fc.array(fc.constantFrom(...PIECES), { maxLength: 3 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('send' as const), c: fc.nat(4), n: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('recv' as const), c: fc.nat(4), n: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('resend' as const), c: fc.nat(4), rebased: fc.boolean() }) },
  { weight: 2, arbitrary: fc.constant({ t: 'tick' as const }) },
);

const scenario = fc.record({
  clients: fc.integer({ min: 2, max: 5 }),
  commands: fc.array(command, { minLength: 20, maxLength: 200, size: 'max' }),
  options: fc.record({
    memoryHistory: fc.constantFrom(0, 3, 1000),
    snapshotEvery: fc.constantFrom(2, 5, 1000),
    // Marks forgotten and history shed after every batch, or never.
    cachedMarks: fc.constantFrom(0, 1, 4096),
    historyMemoryBytes: fc.constantFrom(0, 64, 1 << 26),
  }),
});

/** An ot.js-style client; the network is its outbox (to the server) and inbox (from it). */
class SimClient {
  text = '';
  revision = 0;
  private nextSeq = 1;
  /** The op awaiting its ack, transformed up to `revision`; and how it was first sent. */
  inflight: { seq: number; op: Component[]; sentBase: number; sentOp: Component[] } | undefined;
  buffer: Component[] | undefined;
  readonly outbox: SubmitRequest[] = [];
  readonly inbox: OpRecord[] = [];

  constructor(readonly id: string) {}

  get sentSeqs(): number {
    return this.nextSeq - 1;
  }

  get idle(): boolean {
    return this.inflight === undefined && this.buffer === undefined && this.outbox.length === 0 && this.inbox.length === 0;
  }

  edit(op: Component[]): void {
    this.text = apply(this.text, op);
    if (this.inflight === undefined) this.send(op);
    else this.buffer = this.buffer === undefined ? op : compose(this.buffer, op);
  }

  private send(op: Component[]): void {
    const seq = this.nextSeq++;
    this.inflight = { seq, op, sentBase: this.revision, sentOp: op };
    this.outbox.push({ docId: DOC, clientId: this.id, seq, baseVersion: this.revision, op });
  }

  /** Resends the in-flight op with its seq: as first sent, or as transformed since. */
  resend(rebased: boolean): void {
    const f = this.inflight;
    if (f === undefined) return;
    this.outbox.push(
      rebased
        ? { docId: DOC, clientId: this.id, seq: f.seq, baseVersion: this.revision, op: f.op }
        : { docId: DOC, clientId: this.id, seq: f.seq, baseVersion: f.sentBase, op: f.sentOp },
    );
  }

  /** Handles the next message from the server: an ack of its own op, or another's op. */
  receive(record: OpRecord): void {
    expect(record.version).toBe(this.revision + 1);
    if (record.clientId === this.id) {
      const f = this.inflight;
      expect(f, `${this.id} got an ack with nothing in flight`).toBeDefined();
      expect(record.seq).toBe(f?.seq);
      // The server rebased it over exactly the ops this client transformed it over.
      expect(record.op).toEqual(f?.op);
      this.revision = record.version;
      this.inflight = undefined;
      if (this.buffer !== undefined) {
        const b = this.buffer;
        this.buffer = undefined;
        this.send(b);
      }
      return;
    }
    let op = record.op;
    if (this.inflight !== undefined) {
      const mine = this.inflight.op;
      this.inflight.op = transform(mine, op, 'right');
      op = transform(op, mine, 'left');
    }
    if (this.buffer !== undefined) {
      const mine = this.buffer;
      this.buffer = transform(mine, op, 'right');
      op = transform(op, mine, 'left');
    }
    this.text = apply(this.text, op);
    this.revision = record.version;
  }
}

/** An edit on whole code points of `text`. */
function makeEdit(text: string, cmd: Extract<Command, { t: 'edit' }>): Component[] | undefined {
  const cps = Array.from(text);
  const at = cmd.at % (cps.length + 1);
  const del = Math.min(cmd.del, cps.length - at);
  const insert = cmd.ins.join('');
  if (del === 0 && insert === '') return undefined;
  const pos = cps.slice(0, at).join('').length;
  const len = cps.slice(at, at + del).join('').length;
  return fromPatch(text.length, pos, len, insert);
}

async function runScenario(
  store: Store,
  { clients: k, commands, options }: { clients: number; commands: Command[]; options: SequencerOptions },
): Promise<void> {
  const sequencer = new Sequencer(store, { ...options, idleTimeout: 0 });
  const clients = Array.from({ length: k }, (_, i) => new SimClient(`client-${i}`));
  const failures: string[] = [];
  const applied = new Map<string, number>(); // `${clientId}#${seq}` → version, from submit results
  const inFlight = new Set<Promise<unknown>>();

  sequencer.onApplied((docId, record) => {
    if (docId !== DOC) failures.push(`event for ${docId}`);
    for (const c of clients) c.inbox.push(record);
  });

  const deliverSubmit = (c: SimClient): void => {
    const request = c.outbox.shift();
    if (request === undefined) return;
    const key = `${request.clientId}#${request.seq}`;
    const p = sequencer.submit(request).then(
      (result) => {
        const known = applied.get(key);
        if (!result.duplicate) {
          if (known !== undefined) failures.push(`${key} applied twice: versions ${known} and ${result.version}`);
          applied.set(key, result.version);
        } else if (known === undefined || known !== result.version) {
          failures.push(`${key}: duplicate answered with version ${result.version}, applied at ${String(known)}`);
        }
      },
      (e: unknown) => {
        failures.push(`${key} (base ${request.baseVersion}) rejected: ${String(e)}`);
      },
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };


  try {
    for (const cmd of commands) {
      if (cmd.t === 'tick') {
        await tick();
        continue;
      }
      const c = clients[cmd.c % k] as SimClient;
      switch (cmd.t) {
        case 'edit': {
          const op = makeEdit(c.text, cmd);
          if (op !== undefined) c.edit(op);
          break;
        }
        case 'send':
          for (let i = 0; i < cmd.n; i++) deliverSubmit(c);
          break;
        case 'recv':
          for (let i = 0; i < cmd.n && c.inbox.length > 0; i++) c.receive(c.inbox.shift() as OpRecord);
          break;
        case 'resend':
          c.resend(cmd.rebased);
          break;
      }
    }

    // Deliver everything until nothing moves; bounded.
    let rounds = 0;
    while (clients.some((c) => !c.idle) || inFlight.size > 0) {
      if (++rounds > 10_000) throw new Error('the simulation did not quiesce');
      for (const c of clients) while (c.outbox.length > 0) deliverSubmit(c);
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      await tick();
      for (const c of clients) while (c.inbox.length > 0) c.receive(c.inbox.shift() as OpRecord);
    }

    expect(failures).toEqual([]);
    const server = await sequencer.getSnapshot(DOC);
    const log = await sequencer.getOps(DOC, 0);
    // 1. The server's text is its log replayed from ''.
    expect(log.map((r) => r.version)).toEqual(Array.from({ length: server.version }, (_, i) => i + 1));
    expect(replay(log)).toBe(server.text);
    // 2. Every (clientId, seq) sent is in the log exactly once, at the version it was answered with.
    const seen = new Map<string, number>();
    for (const r of log) {
      const key = `${r.clientId}#${r.seq}`;
      expect(seen.has(key), `${key} appears twice in the log`).toBe(false);
      seen.set(key, r.version);
    }
    const sent = clients.flatMap((c) => Array.from({ length: c.sentSeqs }, (_, i) => `${c.id}#${i + 1}`));
    expect([...seen.keys()].sort()).toEqual(sent.sort());
    expect(new Map([...applied].sort())).toEqual(new Map([...seen].sort()));
    // 3. Every client converged on the server's text and version.
    for (const c of clients) {
      expect(c.text).toBe(server.text);
      expect(c.revision).toBe(server.version);
    }
  } finally {
    await sequencer.close();
  }
}

describe('convergence law: every client and the replayed server log agree, each op applied exactly once', () => {
  it('holds on MemoryStore with stale bases, resends and delayed delivery', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        await runScenario(new MemoryStore(), s);
      }),
      { numRuns: LONG ? 2000 : 50 },
    );
  });

  it('holds on SqliteStore (group commit)', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const dir = makeTempDir('otter-converge-');
        const store = new SqliteStore(join(dir, 'otter.db'));
        try {
          await runScenario(store, s);
        } finally {
          await store.close();
          removeTempDir(dir);
        }
      }),
      { numRuns: LONG ? 300 : 12 },
    );
  });
});
