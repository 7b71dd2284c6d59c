/**
 * Convergence benchmark: replays a concurrent editing trace through a real Otter server and one
 * real client per agent, over WebSockets on 127.0.0.1, and checks that every client and the
 * server end with exactly the trace's endContent.
 *
 *   npm run bench:converge -- --trace friendsforever      (or a path to a .json.gz trace)
 *   options: --timeout <ms>     longest wait for an ancestor, for the final sync (default 30000)
 *            --default-limits   keep the server's default per-connection rate limit (200
 *                               messages/s); by default it is raised out of the way, since a
 *                               loopback client acknowledged within a millisecond submits faster
 *
 * The transactions are replayed in index order. Before agent a's transaction, a's client must
 * hold every ancestor of it; the replay waits (bounded) for the network to bring them. The
 * client usually holds more than that (ops of other agents the transaction did not see): the
 * transaction's patches are then mapped onto the client's current text with the reference
 * model (bench/converge-model.ts), as an editor maps a user's edit onto the text on screen.
 * Before each transaction the client's text is checked against the model's text for exactly
 * what the client holds.
 *
 * Which transactions a client holds is tracked from the wire: the WebSocket class given to each
 * client is wrapped, so its outgoing `submit` frames (a new seq carries every local transaction
 * made since the previous new seq) and incoming frames (`ops` and `opened` entries, by version)
 * are observed; the server's `sequencer.onApplied` says which (client, seq) made each version.
 * The network runs concurrently with the replay: acknowledgements are not awaited, and the
 * replay yields to the event loop after every transaction.
 *
 * Prints a summary, then as its last line one JSON object; exits 0 if everything converged.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { WebSocket } from 'ws';
import {
  type CollaborativeDocument,
  Connection,
  type SocketHandler,
  type WebSocketConstructor,
  type WebSocketLike,
} from '../src/client/index.js';
import { type Component, compose, fromPatch } from '../src/ot/index.js';
import { MemoryStore, type OtterServer, createServer } from '../src/server/index.js';
import { type ConcurrentTrace, type Model, type Patch, View, buildModel } from './converge-model.js';

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
const CONCURRENT_DIR = resolve(REPO_ROOT, 'traces/concurrent');
const DOC_ID = 'converge';

// ─── arguments ───────────────────────────────────────────────────────────────────────────────

interface Options {
  readonly tracePath: string;
  readonly name: string;
  readonly timeoutMs: number;
  readonly defaultLimits: boolean;
}

/** The rate limit the replay runs under unless --default-limits: high enough never to bite. */
const BENCH_MESSAGES_PER_SECOND = 1_000_000;

function usage(message: string): never {
  console.error(`${message}\nusage: npm run bench:converge -- --trace <name | path> [--timeout <ms>] [--default-limits]`);
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Options {
  let trace: string | undefined;
  let timeoutMs = 30_000;
  let defaultLimits = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [key, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) usage(`${key} needs a value`);
      return v;
    };
    if (key === '--trace') trace = value();
    else if (key === '--timeout') {
      timeoutMs = Number(value());
      if (!(timeoutMs > 0)) usage('--timeout must be a positive number of ms');
    } else if (key === '--default-limits' && inline === undefined) defaultLimits = true;
    else usage(`unknown argument ${arg}`);
  }
  if (trace === undefined) usage('--trace is required');
  return { tracePath: resolveTrace(trace), name: traceName(trace), timeoutMs, defaultLimits };
}

/** A path (relative to where npm was started) or a bare name in traces/concurrent. */
function resolveTrace(arg: string): string {
  const cwd = process.env.INIT_CWD ?? process.cwd();
  const asPath = isAbsolute(arg) ? arg : resolve(cwd, arg);
  if (existsSync(asPath)) return asPath;
  if (!arg.includes('/') && !arg.includes('\\')) {
    for (const candidate of [`${arg}.json.gz`, `${arg}.json`, arg]) {
      const p = resolve(CONCURRENT_DIR, candidate);
      if (existsSync(p)) return p;
    }
  }
  usage(`trace ${arg} not found (neither ${asPath} nor ${resolve(CONCURRENT_DIR, `${arg}.json.gz`)})`);
}

function traceName(arg: string): string {
  return basename(arg).replace(/\.gz$/, '').replace(/\.json$/, '');
}

function loadTrace(path: string): ConcurrentTrace {
  const raw = readFileSync(path);
  const text = path.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
  const trace = JSON.parse(text) as ConcurrentTrace;
  if (trace.kind !== 'concurrent' || !Array.isArray(trace.txns)) {
    throw new Error(`${path} is not a concurrent trace (kind ${JSON.stringify(trace.kind)})`);
  }
  return trace;
}

// ─── wire observation ────────────────────────────────────────────────────────────────────────

interface WireEntry {
  v: number;
  seq?: number;
}
interface WireMessage {
  type: string;
  doc?: string;
  v?: number;
  seq?: number;
  ops?: WireEntry[];
  text?: string;
  code?: string;
  message?: string;
}

/** What a socket wrapper reports to the replay. */
interface Tap {
  outgoing(frame: string): void;
  incoming(frame: string): void;
}

/** A WebSocket class (over `ws`) whose instances report every frame to `tap` first. */
function tappedWebSocket(tap: Tap): WebSocketConstructor {
  type Handler = ((event: unknown) => unknown) | null;
  return class TappedWebSocket implements WebSocketLike {
    onopen: SocketHandler = null;
    onmessage: SocketHandler = null;
    onclose: SocketHandler = null;
    onerror: SocketHandler = null;
    private readonly socket: WebSocket;

    constructor(url: string) {
      const socket = new WebSocket(url);
      this.socket = socket;
      socket.onopen = (e) => (this.onopen as Handler)?.(e);
      socket.onclose = (e) => (this.onclose as Handler)?.(e);
      socket.onerror = (e) => (this.onerror as Handler)?.(e);
      socket.onmessage = (e) => {
        if (typeof e.data === 'string') tap.incoming(e.data);
        (this.onmessage as Handler)?.(e);
      };
    }

    get readyState(): number {
      return this.socket.readyState;
    }

    send(data: string): void {
      tap.outgoing(data);
      this.socket.send(data);
    }

    close(code?: number, reason?: string): void {
      this.socket.close(code, reason);
    }
  };
}

function messagesOf(frame: string): WireMessage[] {
  const parsed = JSON.parse(frame) as WireMessage | WireMessage[];
  return Array.isArray(parsed) ? parsed : [parsed];
}

// ─── the replay ──────────────────────────────────────────────────────────────────────────────

interface Agent {
  readonly index: number;
  readonly clientId: string;
  readonly view: View;
  connection: Connection | undefined;
  doc: CollaborativeDocument | undefined;
  /** Local txns applied since the last new seq went out. */
  pending: number[];
  /** Txns each of its seqs carries. */
  readonly seqTxns: Map<number, number[]>;
  lastSeq: number;
  /** Last server version this client has taken in (mirrors the client's own rule). */
  lastVersion: number;
  submits: number;
  remoteOps: number;
  maxTxnsPerSubmit: number;
}

interface Stats {
  mismatches: number;
  firstMismatch: string | undefined;
  applyErrors: number;
  anomalies: string[];
  /** Local txns whose client held txns the txn did not see (the patches had to be mapped). */
  mapped: number;
  /** Local txns whose mapped form differs from the trace's patches. */
  moved: number;
  /** Txns that had to wait for the network to bring an ancestor. */
  waited: number;
  waitMs: number;
  /** Local txns no submission carried (their net effect was nil, e.g. a delete of text already gone). */
  silent: number;
}

/**
 * Local txns that no submission will ever carry: the client dropped them as no-ops (or they
 * cancelled out in its buffer) and it is synchronized. They took effect on the author's view
 * as it was then (`vv`); another view takes them in once it holds that much of every other
 * agent's work and the author's txns before them.
 */
interface Silent {
  readonly author: number;
  readonly txns: number[];
  readonly vv: Int32Array;
  readonly delivered: Set<number>;
}

function anomaly(stats: Stats, message: string): void {
  if (stats.anomalies.length < 20) stats.anomalies.push(message);
  else if (stats.anomalies.length === 20) stats.anomalies.push('… (more anomalies omitted)');
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond()` holds, yielding to the event loop; false after `timeoutMs`. */
async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (let spins = 0; !cond(); spins++) {
    if (performance.now() > deadline) return false;
    await (spins < 200 ? tick() : sleep(1));
  }
  return true;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Where `actual` first differs from `expected`, with some context. */
function difference(actual: string, expected: string, names: readonly [string, string]): string {
  let i = 0;
  while (i < actual.length && i < expected.length && actual.charCodeAt(i) === expected.charCodeAt(i)) i++;
  const around = (s: string): string => JSON.stringify(s.slice(Math.max(0, i - 20), i + 20));
  return `differs at ${i} (lengths ${actual.length} vs ${expected.length}): ${names[0]} ${around(actual)}, ${names[1]} ${around(expected)}`;
}

/** Applies mapped patches to the document: one edit, so that one txn never spans two submits. */
function applyToDocument(doc: CollaborativeDocument, patches: readonly Patch[]): void {
  if (patches.length === 0) return;
  const only = patches[0] as Patch;
  if (patches.length === 1 && only[1] === 0) {
    doc.insert(only[0], only[2]);
    return;
  }
  if (patches.length === 1 && only[2] === '') {
    doc.delete(only[0], only[1]);
    return;
  }
  let length = doc.text.length;
  let op: Component[] | undefined;
  for (const [pos, del, ins] of patches) {
    const step = fromPatch(length, pos, del, ins);
    op = op === undefined ? step : compose(op, step);
    length += ins.length - del;
  }
  if (op !== undefined) doc.submit(op);
}

function sameAs(patches: readonly Patch[], original: readonly (readonly [number, number, string])[]): boolean {
  if (patches.length === original.length) {
    return patches.every((p, i) => {
      const o = original[i] as readonly [number, number, string];
      return p[0] === o[0] && p[1] === o[1] && p[2] === o[2];
    });
  }
  // The model merges "delete at p" + "insert at p" into one patch.
  const first = original[0];
  const second = original[1];
  const only = patches[0];
  return (
    original.length === 2 &&
    patches.length === 1 &&
    first !== undefined &&
    second !== undefined &&
    only !== undefined &&
    first[2] === '' &&
    second[1] === 0 &&
    first[0] === second[0] &&
    only[0] === first[0] &&
    only[1] === first[1] &&
    only[2] === second[2]
  );
}

interface Result {
  readonly converged: boolean;
  readonly serverVersion: number;
  readonly timeMs: number;
  readonly reasons: string[];
}

async function replay(
  trace: ConcurrentTrace,
  model: Model,
  options: Options,
  stats: Stats,
  agents: Agent[],
): Promise<Result> {
  const reasons: string[] = [];
  const server: OtterServer = await createServer({
    store: new MemoryStore(),
    host: '127.0.0.1',
    port: 0,
    ...(options.defaultLimits ? {} : { limits: { messagesPerSecond: BENCH_MESSAGES_PER_SECOND } }),
  });
  const byClient = new Map<string, Agent>();
  /** Txns each server version carries. */
  const versionTxns: (number[] | undefined)[] = [];
  server.sequencer.onApplied((docId, record) => {
    if (docId !== DOC_ID) return;
    const agent = byClient.get(record.clientId);
    const txns = agent?.seqTxns.get(record.seq);
    if (txns === undefined) {
      anomaly(stats, `server version ${record.version} by ${record.clientId} seq ${record.seq}: unknown submission`);
      return;
    }
    versionTxns[record.version] = txns;
  });

  const silent: Silent[] = [];
  /** Turns a synchronized client's uncarried txns into silent ones, and hands silent txns to views ready for them. */
  const settleSilent = (): void => {
    for (const a of agents) {
      if (a.pending.length > 0 && a.doc?.syncState.kind === 'synchronized') {
        stats.silent += a.pending.length;
        silent.push({ author: a.index, txns: a.pending, vv: a.view.vv.slice(), delivered: new Set([a.index]) });
        a.pending = [];
      }
    }
    for (const f of silent) {
      for (const b of agents) {
        if (f.delivered.has(b.index) || !b.view.canAdd(f.txns[0] as number)) continue;
        let ready = true;
        for (let x = 0; x < model.numAgents; x++) {
          if (x !== f.author && (b.view.vv[x] as number) < (f.vv[x] as number)) ready = false;
        }
        if (!ready) continue;
        for (const t of f.txns) b.view.add(t);
        f.delivered.add(b.index);
      }
    }
    for (let i = silent.length - 1; i >= 0; i--) if ((silent[i] as Silent).delivered.size === agents.length) silent.splice(i, 1);
  };

  const incoming = (agent: Agent, frame: string): void => {
    for (const m of messagesOf(frame)) {
      if (m.type === 'error') {
        anomaly(stats, `client ${agent.index} got error ${m.code ?? '?'}: ${m.message ?? ''}`);
        continue;
      }
      if (m.doc !== DOC_ID) continue;
      if (m.type === 'ack') {
        if (m.v === agent.lastVersion + 1) agent.lastVersion = m.v;
        continue;
      }
      if (m.type === 'opened' && m.text !== undefined) {
        if (m.v !== 0 || m.text !== '' || agent.lastVersion !== 0) {
          anomaly(stats, `client ${agent.index} resynced from a snapshot at version ${String(m.v)}`);
        }
        agent.lastVersion = m.v ?? agent.lastVersion;
        continue;
      }
      if (m.type !== 'ops' && m.type !== 'opened') continue;
      for (const entry of m.ops ?? []) {
        if (entry.v <= agent.lastVersion) continue;
        if (entry.v !== agent.lastVersion + 1) {
          anomaly(stats, `client ${agent.index} got version ${entry.v} after ${agent.lastVersion}`);
          return;
        }
        agent.lastVersion = entry.v;
        if (entry.seq !== undefined) continue; // its own op, in a catch-up
        const txns = versionTxns[entry.v];
        if (txns === undefined) {
          anomaly(stats, `client ${agent.index} got version ${entry.v}, which carries no known txns`);
          continue;
        }
        agent.remoteOps++;
        settleSilent(); // the author's silent txns come before the ones this op carries
        for (const t of txns) {
          if (agent.view.canAdd(t)) agent.view.add(t);
          else anomaly(stats, `client ${agent.index} got txn ${t} out of causal order`);
        }
      }
    }
  };

  const outgoing = (agent: Agent, frame: string): void => {
    const m = JSON.parse(frame) as WireMessage;
    if (m.type !== 'submit' || m.doc !== DOC_ID || m.seq === undefined) return;
    if (m.seq <= agent.lastSeq) return; // a resubmission carries what the first did
    agent.lastSeq = m.seq;
    const txns = agent.pending;
    agent.pending = [];
    if (txns.length === 0) anomaly(stats, `client ${agent.index} sent seq ${m.seq} with no new txns`);
    agent.seqTxns.set(m.seq, txns);
    agent.submits++;
    agent.maxTxnsPerSubmit = Math.max(agent.maxTxnsPerSubmit, txns.length);
  };

  let timeMs = 0;
  let serverVersion = 0;
  try {
    for (const agent of agents) {
      byClient.set(agent.clientId, agent);
      const WebSocketClass = tappedWebSocket({
        incoming: (frame) => incoming(agent, frame),
        outgoing: (frame) => outgoing(agent, frame),
      });
      agent.connection = new Connection(server.url, { WebSocket: WebSocketClass, clientId: agent.clientId });
      agent.connection.on('error', (e) => anomaly(stats, `client ${agent.index} connection error: ${e.message}`));
      agent.doc = agent.connection.open(DOC_ID);
      agent.doc.on('error', (m) => anomaly(stats, `client ${agent.index} document error ${m.code}: ${m.message}`));
    }
    await withTimeout(
      Promise.all(agents.map((a) => (a.doc as CollaborativeDocument).ready)),
      options.timeoutMs,
      'the documents to open',
    );

    const A = model.numAgents;
    const start = performance.now();
    for (let t = 0; t < model.numTxns; t++) {
      const agent = agents[model.txnAgent[t] as number] as Agent;
      const doc = agent.doc as CollaborativeDocument;
      const view = agent.view;
      if (!view.hasAncestorsOf(t)) {
        stats.waited++;
        const w0 = performance.now();
        const ok = await waitFor(() => {
          settleSilent();
          return view.hasAncestorsOf(t);
        }, options.timeoutMs);
        stats.waitMs += performance.now() - w0;
        if (!ok) {
          reasons.push(
            `timed out after ${options.timeoutMs} ms: client ${agent.index} never received the ancestors of txn ${t} (holds [${[...view.vv].join(', ')}], needs [${[...model.txnDeps.subarray(t * A, (t + 1) * A)].join(', ')}])`,
          );
          break;
        }
      }
      let extra = false;
      for (let b = 0; b < A; b++) if ((view.vv[b] as number) > (model.txnDeps[t * A + b] as number)) extra = true;
      if (extra) stats.mapped++;
      if (doc.text !== view.text) {
        stats.mismatches++;
        stats.firstMismatch ??= `before txn ${t}, client ${agent.index}'s text ${difference(doc.text, view.text, ['client', 'model'])}`;
      }
      const patches = view.add(t);
      if (!sameAs(patches, (trace.txns[t] as ConcurrentTrace['txns'][number]).patches)) stats.moved++;
      agent.pending.push(t);
      try {
        applyToDocument(doc, patches);
      } catch (e) {
        stats.applyErrors++;
        anomaly(stats, `txn ${t} could not be applied on client ${agent.index}: ${String(e)}`);
      }
      await tick();
    }

    // Settle: every client acknowledged, then every client at the server's head.
    if (reasons.length === 0) {
      try {
        await withTimeout(
          Promise.all(agents.map((a) => (a.doc as CollaborativeDocument).synced())),
          options.timeoutMs,
          'every client to be acknowledged',
        );
        serverVersion = (await server.sequencer.getSnapshot(DOC_ID)).version;
        const head = serverVersion;
        const atHead = await waitFor(
          () => agents.every((a) => (a.doc as CollaborativeDocument).version === head),
          options.timeoutMs,
        );
        if (!atHead) {
          reasons.push(
            `timed out: client versions [${agents.map((a) => a.doc?.version).join(', ')}] never reached the head ${head}`,
          );
        }
      } catch (e) {
        reasons.push(String(e instanceof Error ? e.message : e));
      }
    }
    timeMs = performance.now() - start;

    const snapshot = await server.sequencer.getSnapshot(DOC_ID);
    serverVersion = snapshot.version;
    if (snapshot.text !== trace.endContent) {
      reasons.push(`the server's text ${difference(snapshot.text, trace.endContent, ['server', 'endContent'])}`);
    }
    for (const a of agents) {
      const text = (a.doc as CollaborativeDocument).text;
      if (text !== trace.endContent) {
        reasons.push(`client ${a.index}'s text ${difference(text, trace.endContent, ['client', 'endContent'])}`);
      }
      if (reasons.length === 0 && a.view.text !== trace.endContent) {
        reasons.push(`the model view of client ${a.index} differs from endContent (model bug)`);
      }
    }
    if (stats.mismatches > 0) reasons.push(`${stats.mismatches} mismatches between a client's text and the model`);
    if (stats.applyErrors > 0) reasons.push(`${stats.applyErrors} txns could not be applied`);
  } finally {
    for (const a of agents) a.connection?.close();
    await withTimeout(server.close(), 10_000, 'the server to close').catch((e: unknown) => {
      console.error(String(e));
    });
  }
  return { converged: reasons.length === 0, serverVersion, timeMs, reasons };
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const trace = loadTrace(options.tracePath);
  const m0 = performance.now();
  const model = buildModel(trace);
  const modelMs = performance.now() - m0;

  const agents: Agent[] = Array.from({ length: model.numAgents }, (_, index) => ({
    index,
    clientId: `converge-agent-${index}`,
    view: new View(model),
    connection: undefined,
    doc: undefined,
    pending: [],
    seqTxns: new Map(),
    lastSeq: 0,
    lastVersion: 0,
    submits: 0,
    remoteOps: 0,
    maxTxnsPerSubmit: 0,
  }));
  const stats: Stats = {
    mismatches: 0,
    firstMismatch: undefined,
    applyErrors: 0,
    anomalies: [],
    mapped: 0,
    moved: 0,
    waited: 0,
    silent: 0,
    waitMs: 0,
  };

  let result: Result;
  try {
    result = await replay(trace, model, options, stats, agents);
  } catch (e) {
    console.error(e);
    result = { converged: false, serverVersion: 0, timeMs: 0, reasons: [`the replay threw: ${String(e)}`] };
  }

  const opsPerSec = result.timeMs > 0 ? Math.round(model.numPatches / (result.timeMs / 1000)) : 0;
  console.log(`\n## Convergence: ${options.name}\n`);
  console.log(`trace: ${options.tracePath}`);
  console.log(
    `server: in-process createServer on 127.0.0.1, MemoryStore, ${options.defaultLimits ? 'default rate limits' : `messagesPerSecond raised to ${BENCH_MESSAGES_PER_SECOND.toLocaleString('en-US')} (--default-limits keeps 200)`}; ${model.numAgents} clients over WebSocket (ws)`,
  );
  console.log(
    `${model.numAgents} agents, ${model.numTxns.toLocaleString('en-US')} txns, ${model.numPatches.toLocaleString('en-US')} patches, ${trace.endContent.length.toLocaleString('en-US')} code units at the end; model built in ${modelMs.toFixed(0)} ms`,
  );
  console.log(
    `replay: ${result.timeMs.toFixed(0)} ms, ${opsPerSec.toLocaleString('en-US')} patches/s, server head v${result.serverVersion}`,
  );
  for (const a of agents) {
    console.log(
      `  client ${a.index}: ${a.submits} submits (≤ ${a.maxTxnsPerSubmit} txns each), ${a.remoteOps} remote ops taken in, final version ${a.doc?.version ?? '?'}`,
    );
  }
  console.log(
    `txns mapped onto a text holding ops they did not see: ${stats.mapped} (patches moved: ${stats.moved}); waited for ancestors: ${stats.waited} txns, ${stats.waitMs.toFixed(0)} ms; silent txns (carried by no submission): ${stats.silent}`,
  );
  console.log(`client text vs model mismatches: ${stats.mismatches}${stats.firstMismatch ? ` — first: ${stats.firstMismatch}` : ''}`);
  for (const a of stats.anomalies) console.log(`anomaly: ${a}`);
  for (const r of result.reasons) console.log(`FAIL: ${r}`);
  console.log(result.converged ? 'converged: every client and the server hold endContent' : 'NOT converged');
  console.log(
    JSON.stringify({
      trace: options.name,
      converged: result.converged,
      agents: model.numAgents,
      txns: model.numTxns,
      ops: model.numPatches,
      serverVersion: result.serverVersion,
      timeMs: Math.round(result.timeMs),
      opsPerSec,
      node: process.version,
    }),
  );
  return result.converged ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
    // Do not hang on a stray handle; by now everything was closed.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
