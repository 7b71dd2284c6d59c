/**
 * Server rebase of one op submitted far behind the head, and the cost of a hostile submit at
 * the oldest retained base — through the Sequencer API directly (no sockets).
 *
 * 1. Far behind. A document is built through the Sequencer: version 1 inserts a seeded ~100 kB
 *    text, then N single-character edits (60 % inserts) at random places, each at the head (no
 *    rebase), submitted with submitMany. Then ONE submission from a new client at baseVersion 1
 *    (the seeded text, N versions behind the head) is timed from `submit` to its promise settling
 *    (the store's commit included): a small op (one inserted character) and, separately, a large
 *    op of ~10,000 components (5,000 one-character inserts and deletes at scattered places).
 *    The server rebases it over the N ops one at a time. N = 1,000, 10,000, 100,000; stores:
 *    MemoryStore and SqliteStore (a file in a temp dir); the whole history is kept (the default
 *    retention) and either all of it is in memory (memoryHistory above N), or only the default
 *    1,000 ops are (the rest is read from the store for the rebase).
 *    Memory: process.memoryUsage().heapUsed after a full GC before the submit, then right after
 *    it settles (no GC in between: what the submit allocated and V8 had not collected yet; a GC
 *    during the submit lowers it), and after a full GC (what the submit left retained).
 *    The GC is `global.gc` when Node runs with --expose-gc; otherwise it is obtained through
 *    v8.setFlagsFromString('--expose-gc') (the header says which).
 * 2. Amplification. A document of ~1,000 (and 4,000) ops, each a 4 KiB insert (about 4 MB and
 *    16 MB of text), with the sequencer's default options (what a server runs). One submit from a
 *    new client at the oldest retained base with an impossible seq — the frame
 *    {"type":"submit","doc":"hist","v":<oldest>,"seq":999999,"op":[<length there>]} — is refused
 *    with `seq-gap`; its cost is timed (median of 5), on the live sequencer and on a fresh
 *    sequencer over the same store (after a restart or an idle unload the document is reloaded
 *    from its latest snapshot, so less of the history is in memory).
 *
 * Run: node --expose-gc --import tsx bench/far-behind.ts [--full]     (or npx tsx bench/far-behind.ts)
 *   --full   always times the large op 100,000 versions behind; without it, that case is skipped
 *            when the large op took over 3 s at 10,000 (a linear rebase would then take minutes)
 * Every rebased result is checked: the text the server ends with must equal the seeded text with
 * the N edits and the late op applied by `apply(text, transform(op, history))` computed here.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { type Component, fromPatch } from '../src/ot/index.js';
import { OtterError } from '../src/protocol/errors.js';
import { MemoryStore } from '../src/server/memory-store.js';
import { Sequencer, type SequencerOptions, type SubmitRequest } from '../src/server/sequencer.js';
import { SqliteStore } from '../src/server/sqlite-store.js';
import type { Store } from '../src/server/store.js';
import { count, isMain, machineLine, ms, printTable, ratio } from './common.js';
import { seededRandom } from '../test/support/random.js';

const DOC_LENGTH = 100_000;
const SEED = 77_001;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz';
const SIZES = [1_000, 10_000, 100_000] as const;
const LARGE_EDITS = 5_000;
const BUILD_CHUNK = 10_000;
/** Without --full, the large op at N = 100,000 is skipped if it took longer than this at 10,000. */
const SLOW_10K_MS = 3000;

const full = process.argv.includes('--full');

function makeText(length: number, rand: () => number): string {
  const parts: string[] = [];
  for (let i = 0; i < length; i++) {
    const r = rand();
    parts.push(r < 0.15 ? ' ' : r < 0.17 ? '\n' : (ALPHABET[Math.floor(rand() * 26)] ?? 'a'));
  }
  return parts.join('');
}

// ─── garbage collection and memory ───────────────────────────────────────────────────────────

type Gc = () => void;

function obtainGc(): { gc: Gc; how: string } {
  const exposed = (globalThis as { gc?: Gc }).gc;
  if (exposed !== undefined) return { gc: exposed, how: 'global.gc (node --expose-gc)' };
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as Gc;
  return { gc, how: "v8.setFlagsFromString('--expose-gc') (Node was not started with --expose-gc)" };
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)}`;
}

// ─── stores ──────────────────────────────────────────────────────────────────────────────────

type StoreKind = 'memory' | 'sqlite';

interface StoreHandle {
  readonly store: Store;
  /** A second handle on the same data (for a reloaded sequencer); SQLite: a new connection. */
  reopen(): Store;
  dispose(): Promise<void>;
}

function openStore(kind: StoreKind): StoreHandle {
  if (kind === 'memory') {
    const store = new MemoryStore();
    return { store, reopen: () => store, dispose: async () => {} };
  }
  const dir = mkdtempSync(join(tmpdir(), 'otter-far-behind-'));
  const path = join(dir, 'otter.db');
  const opened: Store[] = [new SqliteStore(path)];
  return {
    store: opened[0] as Store,
    reopen: () => {
      const s = new SqliteStore(path);
      opened.push(s);
      return s;
    },
    dispose: async () => {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ─── building documents ──────────────────────────────────────────────────────────────────────

const DOC = 'hist';

/** Submits `ops` (each at the head, as seq 1.. of client `writer`) in chunks; returns the text. */
async function build(seq: Sequencer, ops: readonly Component[][]): Promise<void> {
  for (let start = 0; start < ops.length; start += BUILD_CHUNK) {
    const requests: SubmitRequest[] = [];
    for (let i = start; i < Math.min(ops.length, start + BUILD_CHUNK); i++) {
      requests.push({ docId: DOC, clientId: 'writer', seq: i + 1, baseVersion: i, op: ops[i] as Component[] });
    }
    const answers = await seq.submitMany(requests);
    for (const a of answers) if (a instanceof OtterError) throw a;
  }
}

/** The seed text and N single-character edits after it, as ops at the head. */
function history(n: number, rand: () => number): { seedText: string; ops: Component[][] } {
  const seedText = makeText(DOC_LENGTH, rand);
  const ops: Component[][] = [[seedText]];
  let length = seedText.length;
  for (let i = 0; i < n; i++) {
    if (rand() < 0.6) {
      ops.push(fromPatch(length, Math.floor(rand() * (length + 1)), 0, ALPHABET[Math.floor(rand() * 26)] ?? 'a'));
      length++;
    } else {
      ops.push(fromPatch(length, Math.floor(rand() * length), 1, ''));
      length--;
    }
  }
  return { seedText, ops };
}

/** An op on a text of `length` with `edits` one-character inserts and deletes at sorted random places. */
function largeOp(length: number, edits: number, rand: () => number): Component[] {
  const positions = new Set<number>();
  while (positions.size < edits) positions.add(Math.floor(rand() * length));
  const sorted = [...positions].sort((x, y) => x - y);
  const op: Component[] = [];
  let at = 0;
  sorted.forEach((p, i) => {
    if (p > at) op.push(p - at);
    if (i % 2 === 0) {
      op.push(ALPHABET[i % 26] ?? 'a');
      at = p;
    } else {
      op.push(-1);
      at = p + 1;
    }
  });
  if (length > at) op.push(length - at);
  return op;
}

// ─── 1. far behind ───────────────────────────────────────────────────────────────────────────

interface FarRow {
  readonly n: number;
  readonly store: StoreKind;
  readonly memory: 'all' | 'default';
  readonly op: 'small' | 'large';
  readonly components: number;
  /** Median of the timed submits (ms), or undefined if skipped. */
  readonly timeMs: number | undefined;
  readonly runs: number;
  readonly depth: number;
  readonly heapGrowth: number;
  readonly retained: number;
  readonly note?: string;
}

async function farBehind(gc: Gc): Promise<FarRow[]> {
  const rows: FarRow[] = [];
  for (const n of SIZES) {
    const rand = seededRandom(SEED + n);
    const { ops } = history(n, rand);
    const small: Component[] = fromPatch(DOC_LENGTH, Math.floor(rand() * DOC_LENGTH), 0, 'Z');
    const large = largeOp(DOC_LENGTH, LARGE_EDITS, rand);
    for (const storeKind of ['memory', 'sqlite'] as const) {
      for (const memory of ['all', 'default'] as const) {
        const handle = openStore(storeKind);
        const options: SequencerOptions = {
          idleTimeout: 0,
          ...(memory === 'all' ? { memoryHistory: n + 1000 } : {}),
        };
        const seq = new Sequencer(handle.store, options);
        await build(seq, ops);
        let head = ops.length;
        let late = 0;
        for (const [kind, op] of [['small', small], ['large', large]] as const) {
          // Linear today would make the large op at 100,000 ten times its time at 10,000.
          const at10k = rows.find((r) => r.n === 10_000 && r.store === storeKind && r.memory === memory && r.op === kind)?.timeMs;
          if (kind === 'large' && n >= 100_000 && !full && at10k !== undefined && at10k > SLOW_10K_MS) {
            rows.push({ n, store: storeKind, memory, op: kind, components: op.length, timeMs: undefined, runs: 0, depth: 0, heapGrowth: 0, retained: 0, note: 'skipped (--full)' });
            continue;
          }
          const samples: number[] = [];
          let depth = 0;
          let heapGrowth = 0;
          let retained = 0;
          for (let run = 0; run < 3; run++) {
            gc();
            const before = process.memoryUsage().heapUsed;
            const t0 = performance.now();
            const result = await seq.submit({ docId: DOC, clientId: `late-${late++}`, seq: 1, baseVersion: 1, op });
            const elapsed = performance.now() - t0;
            const after = process.memoryUsage().heapUsed;
            gc();
            const kept = process.memoryUsage().heapUsed;
            if (result.duplicate) throw new Error('unexpected duplicate');
            head++;
            if (result.version !== head) throw new Error(`expected version ${head}, got ${result.version}`);
            samples.push(elapsed);
            if (run === 0) {
              depth = result.depth;
              heapGrowth = after - before;
              retained = kept - before;
            }
            // One run is enough for the slow cases.
            if (elapsed > 2000) break;
          }
          samples.sort((x, y) => x - y);
          rows.push({
            n,
            store: storeKind,
            memory,
            op: kind,
            components: op.length,
            timeMs: samples[samples.length >> 1],
            runs: samples.length,
            depth,
            heapGrowth,
            retained,
          });
        }
        await seq.close();
        await handle.dispose();
      }
    }
    console.log(`N = ${count(n)} done`);
  }
  return rows;
}

/**
 * Checks one far-behind rebase end to end against a reference computed here (N = 1,000, both
 * ops, MemoryStore): the server's text equals the seed text with the history and the late ops
 * rebased by Otter's own transform.
 */
async function verify(): Promise<void> {
  const { apply, transform } = await import('../src/ot/index.js');
  const rand = seededRandom(SEED + 1);
  const { ops } = history(1_000, rand);
  const late = [fromPatch(DOC_LENGTH, 500, 0, 'Z'), largeOp(DOC_LENGTH, 200, rand)];
  const seq = new Sequencer(new MemoryStore(), { memoryHistory: 5_000, idleTimeout: 0 });
  await build(seq, ops);
  let text = '';
  for (const op of ops) text = apply(text, op);
  const committed = ops.slice();
  for (const [i, op] of late.entries()) {
    await seq.submit({ docId: DOC, clientId: `check-${i}`, seq: 1, baseVersion: 1, op });
    let rebased = op;
    for (const past of committed.slice(1)) rebased = transform(rebased, past, 'right');
    committed.push(rebased);
    text = apply(text, rebased);
  }
  const server = await seq.getSnapshot(DOC);
  if (server.text !== text) throw new Error('far-behind check: the server text differs from the reference rebase');
  await seq.close();
}

// ─── 2. amplification ────────────────────────────────────────────────────────────────────────

interface AmpRow {
  readonly ops: number;
  readonly store: StoreKind;
  readonly sequencer: 'live' | 'reloaded';
  readonly oldest: number;
  readonly frameBytes: number;
  readonly code: string;
  readonly medianMs: number;
  readonly maxMs: number;
  readonly honestMs: number;
  readonly textMiB: number;
}

const INSERT_BYTES = 4096;

async function amplification(): Promise<AmpRow[]> {
  const rows: AmpRow[] = [];
  for (const nOps of [1_000, 4_000]) {
    const rand = seededRandom(SEED + 7 + nOps);
    const ops: Component[][] = [];
    let length = 0;
    for (let i = 0; i < nOps; i++) {
      ops.push(fromPatch(length, Math.floor(rand() * (length + 1)), 0, makeText(INSERT_BYTES, rand)));
      length += INSERT_BYTES;
    }
    for (const storeKind of ['memory', 'sqlite'] as const) {
      const handle = openStore(storeKind);
      const live = new Sequencer(handle.store, { idleTimeout: 0 });
      await build(live, ops);
      for (const which of ['live', 'reloaded'] as const) {
        const seq = which === 'live' ? live : new Sequencer(handle.reopen(), { idleTimeout: 0 });
        // The oldest retained base: the first version getOps still serves.
        let oldest = 0;
        for (;;) {
          try {
            await seq.getOps(DOC, oldest, oldest);
            break;
          } catch {
            oldest += 1000;
          }
        }
        const base = oldest === 0 ? '' : (await seq.getSnapshot(DOC, oldest)).text;
        const op: Component[] = base.length > 0 ? [base.length] : [];
        const frame = JSON.stringify({ type: 'submit', doc: DOC, v: oldest, seq: 999_999, op });
        const samples: number[] = [];
        let code = '';
        for (let run = 0; run < 6; run++) {
          const t0 = performance.now();
          try {
            await seq.submit({ docId: DOC, clientId: `attacker-${run}`, seq: 999_999, baseVersion: oldest, op });
            code = 'accepted!';
          } catch (e) {
            code = e instanceof OtterError ? e.code : String(e);
          }
          const elapsed = performance.now() - t0;
          if (run > 0) samples.push(elapsed); // the first also loads the document (reloaded)
        }
        // For scale: an honest keystroke at the head on the same document (median of 5).
        const honest: number[] = [];
        let now = await seq.getSnapshot(DOC);
        for (let i = 0; i < 5; i++) {
          const h0 = performance.now();
          const r = await seq.submit({ docId: DOC, clientId: `honest-${which}`, seq: i + 1, baseVersion: now.version, op: fromPatch(now.text.length, 0, 0, 'h') });
          honest.push(performance.now() - h0);
          if (r.duplicate) throw new Error('unexpected duplicate');
          now = { ...now, version: r.version, text: `h${now.text}` };
        }
        honest.sort((x, y) => x - y);
        const honestMs = honest[2] as number;
        samples.sort((x, y) => x - y);
        rows.push({
          ops: nOps,
          store: storeKind,
          sequencer: which,
          oldest,
          frameBytes: Buffer.byteLength(frame),
          code,
          medianMs: samples[samples.length >> 1] as number,
          maxMs: samples[samples.length - 1] as number,
          honestMs,
          textMiB: now.text.length / 2 ** 20,
        });
        if (which === 'reloaded') await seq.close();
      }
      await live.close();
      await handle.dispose();
    }
  }
  return rows;
}

// ─── output ──────────────────────────────────────────────────────────────────────────────────

export async function run(): Promise<void> {
  const { gc, how } = obtainGc();
  console.log('\n## far behind: server rebase of one op submitted N versions behind\n');
  console.log(machineLine());
  console.log(
    `document: a seeded ${count(DOC_LENGTH)}-code-unit text (version 1), then N single-character edits at the head; ` +
      'the late op is submitted at baseVersion 1 by a new client and rebased over the N ops.',
  );
  console.log(`small op: 1 inserted character (3 components); large op: ${count(LARGE_EDITS)} one-character inserts/deletes (~${count(2 * LARGE_EDITS)} components).`);
  console.log('memory history "all": memoryHistory > N (rebase from memory); "default": 1,000 ops in memory, the rest read from the store.');
  console.log(`time: submit → promise settled (commit included), median of up to 3 submits (1 if it took over 2 s). GC: ${how}.`);
  console.log('heap growth: heapUsed right after the submit − before (after a full GC), no GC in between; retained: after a full GC.\n');
  await verify();
  console.log('check: a far-behind rebase (N = 1,000, small and large op) matches the reference transform: ok\n');
  const rows = await farBehind(gc);
  console.log('');
  printTable(
    ['N behind', 'store', 'memory history', 'op', 'components', 'time ms', 'runs', 'depth', 'heap growth MiB', 'retained MiB'],
    rows.map((r) => [
      count(r.n),
      r.store,
      r.memory,
      r.op,
      count(r.components),
      r.timeMs === undefined ? (r.note ?? '—') : ms(r.timeMs),
      String(r.runs),
      r.timeMs === undefined ? '—' : count(r.depth),
      r.timeMs === undefined ? '—' : mib(r.heapGrowth),
      r.timeMs === undefined ? '—' : mib(r.retained),
    ]),
  );
  console.log('growth of the time per ×10 of N (linear = ×10, logarithmic ≈ ×1):\n');
  const key = (r: FarRow): string => `${r.store}/${r.memory}/${r.op}`;
  const byKey = new Map<string, FarRow[]>();
  for (const r of rows) byKey.set(key(r), [...(byKey.get(key(r)) ?? []), r]);
  printTable(
    ['store / memory history / op', ...SIZES.slice(1).map((n, i) => `${count(SIZES[i] as number)}→${count(n)}`)],
    [...byKey.entries()].map(([k, list]) => [
      k,
      ...list.slice(1).map((r, i) => {
        const prev = list[i] as FarRow;
        return r.timeMs === undefined || prev.timeMs === undefined ? '—' : `${(r.timeMs / prev.timeMs).toFixed(1)}×`;
      }),
    ]),
  );

  console.log('## amplification: a submit at the oldest retained base with an impossible seq\n');
  console.log(
    `documents of 1,000 and 4,000 ops of ${count(INSERT_BYTES)}-code-unit inserts; default SequencerOptions (snapshotEvery 1,000, ` +
      'whole history kept, memoryHistory 1,000). A new client submits seq 999999 at the oldest retained version; ' +
      'expected refusal: seq-gap. Median (and max) of 5 submits after a first one; "reloaded": a fresh Sequencer on the same ' +
      'store (as after a restart or an idle unload). honest: a keystroke at the head, median of 5, for scale.\n',
  );
  const amp = await amplification();
  printTable(
    ['ops of 4 KiB', 'text MiB', 'store', 'sequencer', 'oldest base', 'frame bytes', 'answer', 'median ms', 'max ms', 'honest keystroke ms', 'hostile ÷ honest'],
    amp.map((r) => [
      count(r.ops),
      r.textMiB.toFixed(1),
      r.store,
      r.sequencer,
      count(r.oldest),
      String(r.frameBytes),
      r.code,
      ms(r.medianMs),
      ms(r.maxMs),
      ms(r.honestMs),
      ratio(r.medianMs, r.honestMs),
    ]),
  );
}

if (isMain(import.meta.url)) await run();
