/**
 * Otter's ottypes `type` inside the real ShareDB 7: an in-process Backend (MemoryDB, presence
 * on) with `sharedb/lib/client` Connections over ShareDB's own in-process stream.
 *
 * Covers what ShareDB calls on a type beyond apply/transform/compose: `transformPresence`
 * (local presence, remote presence, the server's catch-up of stale presence) and the rollback
 * of an op the server rejects, which without `invert` is ShareDB's hard rollback.
 */
import fc from 'fast-check';
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { type Component, InvalidOperationError, OperationErrorCode, type SelectionRange, type } from '../../src/ot/index.js';
import { thrown } from '../support/thrown.js';
import { waitFor } from '../support/wait.js';

/** The parts of sharedb 7 (untyped CommonJS) these tests use. */
type Callback = (error?: ShareError | null) => void;
interface ShareError extends Error {
  readonly code?: string;
}
interface ShareDoc {
  readonly data: unknown;
  readonly version: number | null;
  create(data: unknown, type: string, callback: Callback): void;
  subscribe(callback: Callback): void;
  fetch(callback: Callback): void;
  submitOp(op: unknown, callback?: Callback): void;
  hasPending(): boolean;
  readonly inflightOp: unknown;
  on(event: 'error', listener: (error: ShareError) => void): void;
  on(event: 'load', listener: () => void): void;
}
interface LocalPresence {
  readonly value: unknown;
  submit(value: unknown, callback?: Callback): void;
  on(event: 'error', listener: (error: Error) => void): void;
}
interface DocPresence {
  readonly remotePresences: Record<string, unknown>;
  create(id: string): LocalPresence;
  subscribe(callback: Callback): void;
  on(event: 'error', listener: (error: Error) => void): void;
}
interface ShareConnection {
  get(collection: string, id: string): ShareDoc;
  getDocPresence(collection: string, id: string): DocPresence;
  close(): void;
}
interface SubmitContext {
  readonly op: { readonly op?: readonly Component[] };
  rejectedError(): ShareError;
}
interface ShareBackend {
  connect(): ShareConnection;
  use(action: 'submit', fn: (context: SubmitContext, next: (error?: unknown) => void) => void): void;
  close(callback?: () => void): void;
}
interface ShareDbModule {
  new (options?: { presence?: boolean; doNotForwardSendPresenceErrorsToClient?: boolean }): ShareBackend;
  readonly types: { register(t: unknown): void; readonly map: Record<string, unknown> };
}

const require = createRequire(import.meta.url);
const ShareDB = require('sharedb') as ShareDbModule;
const clientTypes = (require('sharedb/lib/client') as { types: ShareDbModule['types'] }).types;
ShareDB.types.register(type);

const COLLECTION = 'docs';
const WAIT_MS = 5000;

interface Client {
  readonly connection: ShareConnection;
  readonly doc: ShareDoc;
  readonly presence: DocPresence;
  readonly local: LocalPresence;
  /** Every error ShareDB emitted on the doc, the presence or the local presence. */
  readonly errors: Error[];
}

interface World {
  readonly backend: ShareBackend;
  readonly clients: Client[];
  /** The server's snapshot, read through a fresh connection. */
  serverText(): Promise<string>;
}

const worlds: World[] = [];
afterEach(async () => {
  for (const w of worlds.splice(0)) await closeWorld(w);
});

async function closeWorld(w: World): Promise<void> {
  for (const c of w.clients) c.connection.close();
  await new Promise<void>((resolve) => w.backend.close(resolve));
}

function call(what: string, f: (cb: Callback) => void): Promise<void> {
  return new Promise((resolve, reject) =>
    f((error) => (error ? reject(new Error(`${what}: ${error.message}`)) : resolve())),
  );
}

/**
 * A backend holding one document `id` with text `initial`, and `n` subscribed clients, each
 * with a subscribed presence channel and one local presence named `p<i>`.
 */
async function makeWorld(
  id: string,
  initial: string,
  n: number,
  reject?: (op: readonly Component[], context: SubmitContext) => unknown,
): Promise<World> {
  const backend = new ShareDB({ presence: true, doNotForwardSendPresenceErrorsToClient: true });
  if (reject !== undefined) {
    backend.use('submit', (context, next) => {
      const op = context.op.op;
      next(op === undefined ? undefined : reject(op, context));
    });
  }
  const clients: Client[] = [];
  for (let i = 0; i < n; i++) {
    const connection = backend.connect();
    const doc = connection.get(COLLECTION, id);
    const presence = connection.getDocPresence(COLLECTION, id);
    const local = presence.create(`p${i}`);
    const errors: Error[] = [];
    doc.on('error', (e) => errors.push(e));
    presence.on('error', (e) => errors.push(e));
    local.on('error', (e) => errors.push(e));
    clients.push({ connection, doc, presence, local, errors });
  }
  const first = clients[0] as Client;
  await call('create', (cb) => first.doc.create(initial, type.uri, cb));
  for (const c of clients) {
    await call('subscribe', (cb) => c.doc.subscribe(cb));
    await call('presence subscribe', (cb) => c.presence.subscribe(cb));
  }
  const serverText = async (): Promise<string> => {
    const observer = backend.connect();
    const doc = observer.get(COLLECTION, id);
    await call('fetch', (cb) => doc.fetch(cb));
    observer.close();
    return doc.data as string;
  };
  const w = { backend, clients, serverText };
  worlds.push(w);
  return w;
}

/** The op replacing `del` code units at `pos` of `doc` with `ins`. */
function splice(doc: string, pos: number, del: number, ins: string): Component[] {
  const out: Component[] = [];
  if (pos > 0) out.push(pos);
  if (ins !== '') out.push(ins);
  if (del > 0) out.push(-del);
  const rest = doc.length - pos - del;
  if (rest > 0) out.push(rest);
  return out;
}

/** Resolves once every client is idle and holds the same text as the server. */
async function converged(w: World): Promise<string> {
  let server = '';
  await waitFor(
    'every client to hold the server text',
    async () => {
      server = await w.serverText();
      return w.clients.every((c) => !c.doc.hasPending() && c.doc.data === server);
    },
    WAIT_MS,
    () => `server ${JSON.stringify(server)}, clients ${JSON.stringify(w.clients.map((c) => c.doc.data))}`,
  );
  return server;
}

/** What client `viewer` holds for client `owner`'s presence (null when it holds none). */
function seen(w: World, viewer: number, owner: number): unknown {
  return (w.clients[viewer] as Client).presence.remotePresences[`p${owner}`] ?? null;
}

/** Resolves once every client sees every other client's presence as that client holds it. */
async function presencesAgree(w: World): Promise<void> {
  const n = w.clients.length;
  const views = (): string => {
    const rows: string[] = [];
    for (let o = 0; o < n; o++) {
      const own = JSON.stringify((w.clients[o] as Client).local.value);
      const others = w.clients.map((_, v) => (v === o ? '-' : JSON.stringify(seen(w, v, o))));
      rows.push(`p${o}: local ${own}, seen ${others.join(' ')}`);
    }
    return rows.join('\n');
  };
  await waitFor(
    'every presence to be seen as its owner holds it',
    () => {
      for (let o = 0; o < n; o++) {
        const own = JSON.stringify((w.clients[o] as Client).local.value);
        for (let v = 0; v < n; v++) if (v !== o && JSON.stringify(seen(w, v, o)) !== own) return false;
      }
      return true;
    },
    WAIT_MS,
    views,
  );
}

function submitPresence(c: Client, value: unknown): Promise<void> {
  return call('presence submit', (cb) => c.local.submit(value, cb));
}

describe('type.transformPresence (the hook itself)', () => {
  it('is the hook ShareDB looks up: registered under the uri, a function', () => {
    expect(clientTypes.map[type.uri]).toBe(type);
    expect(typeof type.transformPresence).toBe('function');
  });

  it("moves an end past the owner's own insert at it, keeps it before another's, maps ranges and arrays, keeps null", () => {
    const op = [2, 'xy', 3];
    expect(type.transformPresence({ anchor: 2, head: 2 }, op, true)).toEqual({ anchor: 4, head: 4 });
    expect(type.transformPresence({ anchor: 2, head: 2 }, op, false)).toEqual({ anchor: 2, head: 2 });
    const ranges: SelectionRange[] = [
      { anchor: 0, head: 2 },
      { anchor: 5, head: 3 },
    ];
    expect(type.transformPresence(ranges, op, 'a source')).toEqual([
      { anchor: 0, head: 4 },
      { anchor: 7, head: 5 },
    ]);
    expect(ranges).toEqual([
      { anchor: 0, head: 2 },
      { anchor: 5, head: 3 },
    ]);
    expect(type.transformPresence(null, op, false)).toBeNull();
  });

  it('throws InvalidOperationError (bad-argument) for a presence that is not ranges or lies outside the document', () => {
    for (const bad of [5, 'caret', undefined, [null], { anchor: 9, head: 0 }, { anchor: 1 }]) {
      const e = thrown(() => type.transformPresence(bad as never, [5], false), InvalidOperationError);
      expect(e.code).toBe(OperationErrorCode.BadArgument);
    }
  });

  it('has no invert: ottypes invert(op) has no document, so ShareDB 7 rolls back hard', () => {
    expect('invert' in type).toBe(false);
  });
});

describe('Otter type in ShareDB 7: presence', () => {
  it('concurrent edits on two clients leave each with the exact transformed presence of the other', async () => {
    const w = await makeWorld('presence', 'hello world', 2);
    const [a, b] = w.clients as [Client, Client];
    await submitPresence(a, { anchor: 5, head: 5 });
    await submitPresence(b, [
      { anchor: 0, head: 5 },
      { anchor: 11, head: 11 },
    ]);
    await presencesAgree(w);

    // Concurrent: neither has seen the other's op. A types at its own caret; B deletes
    // "hello" and appends "!" at its own caret.
    a.doc.submitOp([5, 'XY', 6]);
    b.doc.submitOp([-5, 6, '!']);
    expect(await converged(w)).toBe('XY world!');
    await presencesAgree(w);

    // A's caret followed its own "XY" (5 → 7), then B's deletion pulled it to 2.
    expect(a.local.value).toEqual({ anchor: 2, head: 2 });
    expect(seen(w, 1, 0)).toEqual({ anchor: 2, head: 2 });
    // B's range end stayed before A's "XY" (5), then collapsed with "hello"; B's caret
    // followed its own "!" to the end.
    const bExpected = [
      { anchor: 0, head: 0 },
      { anchor: 9, head: 9 },
    ];
    expect(b.local.value).toEqual(bExpected);
    expect(seen(w, 0, 1)).toEqual(bExpected);
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  it('a presence submitted against a stale version is caught up by the server and the receiver', async () => {
    const w = await makeWorld('stale', 'abcdef', 2);
    const [a, b] = w.clients as [Client, Client];
    // A's presence and B's edit race: whichever ShareDB sees first, the caret at 3 must end
    // after B's insert before it.
    const sent = submitPresence(a, { anchor: 3, head: 6 });
    b.doc.submitOp(['12', 6]);
    await sent;
    expect(await converged(w)).toBe('12abcdef');
    await presencesAgree(w);
    expect(seen(w, 1, 0)).toEqual({ anchor: 5, head: 8 });
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  it('a presence outside the document is reported as an InvalidOperationError event, not thrown out of ShareDB', async () => {
    const w = await makeWorld('bad-presence', 'abc', 2);
    const [a, b] = w.clients as [Client, Client];
    await submitPresence(a, { anchor: 40, head: 40 });
    await waitFor('B to receive A’s presence', () => seen(w, 1, 0) !== null, WAIT_MS);
    await call('submit', (cb) => a.doc.submitOp([3, 'd'], cb));
    expect(await converged(w)).toBe('abcd');
    for (const c of [a, b]) {
      expect(c.errors).toHaveLength(1);
      expect(c.errors[0]).toBeInstanceOf(InvalidOperationError);
      expect((c.errors[0] as InvalidOperationError).code).toBe(OperationErrorCode.BadArgument);
    }
  });
});

describe('Otter type in ShareDB 7: a rejected op', () => {
  const isBad = (op: readonly Component[]): boolean => op.some((c) => typeof c === 'string' && c.includes('BAD'));

  it.each([
    {
      how: 'a middleware error',
      reject: (_: SubmitContext): unknown => new Error('no BAD text'),
      rejectedCallback: 'no BAD text',
      pendingCallback: 'no BAD text',
    },
    {
      how: "ShareDB's rejectedError()",
      reject: (context: SubmitContext): unknown => context.rejectedError(),
      rejectedCallback: null,
      pendingCallback: 'ERR_PENDING_OP_REMOVED_BY_OP_SUBMIT_REJECTED',
    },
  ])(
    'rejected by $how: hard rollback to the server snapshot, every acknowledged op exactly once, B converges',
    async ({ reject, rejectedCallback, pendingCallback }) => {
      const w = await makeWorld('reject', 'The quick fox', 2, (op, context) => (isBad(op) ? reject(context) : undefined));
      const [a, b] = w.clients as [Client, Client];
      let loads = 0;
      a.doc.on('load', () => loads++);

      await call('op1', (cb) => a.doc.submitOp([10, 'brown ', 3], cb));
      await call('op2', (cb) => a.doc.submitOp([-4, 15], cb));
      await waitFor('B to see A’s ops', () => b.doc.data === 'quick brown fox', WAIT_MS);
      await submitPresence(a, { anchor: 0, head: 5 });

      const outcomes: Record<string, string | null> = {};
      const record =
        (name: string): Callback =>
        (e) => {
          outcomes[name] = e ? (e.code ?? e.message) : null;
        };
      // A's rejected op and B's op are concurrent; A queues one more op behind the rejected one.
      a.doc.submitOp(['BAD ', 15], record('rejected'));
      b.doc.submitOp([15, ' jumps'], record('b'));
      // ShareDB flushes on process.nextTick, and the in-process stream answers on later ticks:
      // a tick queued now runs while the rejected op is in flight and unanswered.
      let inflight: unknown = null;
      process.nextTick(() => {
        inflight = a.doc.inflightOp;
        const text = a.doc.data as string;
        a.doc.submitOp(splice(text, text.indexOf('brown'), 0, 'very '), record('pending'));
      });

      await waitFor('every op to be called back', () => Object.keys(outcomes).length === 3, WAIT_MS);
      expect(inflight).not.toBeNull();
      expect(outcomes).toEqual({ rejected: rejectedCallback, pending: pendingCallback, b: null });
      expect(loads).toBe(1);
      expect(await converged(w)).toBe('quick brown fox jumps');
      expect(a.doc.data).toBe('quick brown fox jumps');
      expect(a.local.value).toBeNull();

      // A edits on from the server's snapshot.
      await call('op after rollback', (cb) => a.doc.submitOp([21, '!'], cb));
      expect(await converged(w)).toBe('quick brown fox jumps!');
      expect([...a.errors, ...b.errors]).toEqual([]);
    },
  );
});

describe('Otter type in ShareDB 7: properties', () => {
  const ALPHABET = 'abc XY';
  const text = fc.string({ unit: fc.constantFrom(...ALPHABET), minLength: 1, maxLength: 3 });
  const fraction = fc.double({ min: 0, max: 1, noNaN: true });
  const step = fc.oneof(
    fc.record({
      kind: fc.constant('edit' as const),
      client: fc.nat({ max: 2 }),
      at: fraction,
      del: fc.nat({ max: 3 }),
      ins: fc.oneof(fc.constant(''), text),
    }),
    fc.record({
      kind: fc.constant('presence' as const),
      client: fc.nat({ max: 2 }),
      ranges: fc.oneof(
        fc.constant(null),
        fc.array(fc.tuple(fraction, fraction), { minLength: 1, maxLength: 2 }),
        fc.tuple(fraction, fraction),
      ),
    }),
  );
  /** Bounded: a run that hangs fails the property instead of the test timeout. */
  const PROPERTY_RUNS = { numRuns: 60, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: true };
  type Step = typeof step extends fc.Arbitrary<infer S> ? S : never;

  /** Submits `s` on its client, built against that client's current text. */
  function run(w: World, s: Step): Promise<void> {
    const c = w.clients[s.client] as Client;
    const doc = c.doc.data as string;
    if (s.kind === 'edit') {
      const pos = Math.floor(s.at * doc.length);
      const del = Math.min(s.del, doc.length - pos);
      const ins = del === 0 && s.ins === '' ? 'X' : s.ins;
      return call('edit', (cb) => c.doc.submitOp(splice(doc, pos, del, ins), cb));
    }
    const place = (f: number): number => Math.floor(f * (doc.length + 0.999));
    const range = ([x, y]: [number, number]): SelectionRange => ({ anchor: place(x), head: place(y) });
    const r = s.ranges;
    const value = r === null ? null : Array.isArray(r[0]) ? (r as [number, number][]).map(range) : range(r as [number, number]);
    return submitPresence(c, value);
  }

  /** Every presence any client holds or sees lies inside that client's document. */
  function inside(w: World): void {
    for (const c of w.clients) {
      const max = (c.doc.data as string).length;
      const values = [c.local.value, ...Object.values(c.presence.remotePresences)];
      for (const v of values) {
        for (const r of v === null ? [] : Array.isArray(v) ? v : [v]) {
          const { anchor, head } = r as SelectionRange;
          expect(anchor >= 0 && anchor <= max && head >= 0 && head <= max, `${anchor}..${head} in ${max}`).toBe(true);
        }
      }
    }
  }

  /**
   * Runs `body` in a new world of three clients on "abcdef", then checks that
   * every presence lies inside its document and no client saw an error; the world is closed
   * whatever happens.
   */
  async function inWorld(name: string, body: (w: World) => Promise<void>): Promise<void> {
    const w = await makeWorld(name, 'abcdef', 3);
    try {
      await body(w);
      inside(w);
      expect(w.clients.flatMap((c) => c.errors)).toEqual([]);
    } finally {
      worlds.splice(worlds.indexOf(w), 1);
      await closeWorld(w);
    }
  }

  it('law: with edits one at a time, every client sees each presence exactly as its owner holds it', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 8 }), async (steps) => {
        await inWorld(`seq-${n++}`, async (w) => {
          for (const s of steps) {
            await run(w, s);
            // A presence update is acknowledged by the server before the next step, but may
            // still be on its way to the other clients when the next edit is made.
            if (s.kind === 'edit') await converged(w);
          }
          await converged(w);
          await presencesAgree(w);
        });
      }),
      PROPERTY_RUNS,
    );
  });

  it('law: under concurrent edits and presence updates, clients converge with no error and every presence inside the document', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 10 }), async (steps) => {
        await inWorld(`conc-${n++}`, async (w) => {
          await Promise.all(steps.map((s) => run(w, s)));
          await converged(w);
        });
      }),
      PROPERTY_RUNS,
    );
  });
});
