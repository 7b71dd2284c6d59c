/**
 * Intent: how often concurrent editing with reconnections puts text where nobody meant it,
 * with a tiny history window (a reconnecting client's version is usually gone: it gets a
 * snapshot and rebases its pending edits over a text diff) and with the default history.
 *
 * Setup: a real server (`createServer`, MemoryStore, rate limits raised as
 * bench/load-peers/otter.ts does) on 127.0.0.1 and 4 real `Connection`s over `ws`, each through
 * a WebSocket class that can hold it offline (bench/rejoin.ts `SocketGate`). The document
 * starts with ~1,500 characters of shared filler (letters "aehinorst", spaces, newlines). For
 * 250 rounds every client makes 1–3 edits in the same turn of the event loop, then the
 * benchmark yields 0–2 ms (so edits cross on the wire); an online client goes offline with
 * probability 3 % per round for 5–30 rounds, typing on meanwhile, then reconnects. Edits:
 * - 15 %: type a unique marker «cI.J» (client I's J-th), one keystroke per character;
 * - 55 %: type 1–4 characters of the client's own filler alphabet (client 0 "bdfg", 1 "jklm",
 *   2 "pquv", 3 "wxyz"; no client's filler and no shared filler holds a marker character);
 * - 30 %: delete one character of its own filler, chosen at random in its local text.
 * Half the inserts go at a marker's edge (right before a «, right after a »), where edits of
 * different clients meet; the others anywhere allowed. An insert never goes inside a marker as
 * the client sees it: not between a « and the next » (when no other « comes first), and not
 * inside or right after a marker still being typed (a « followed by marker characters).
 * After the last round every client comes back online and the run waits until the clients and
 * the server hold the same text with nothing pending (the runs are checked for convergence).
 *
 * Counted in the final text (every count is of an intent violation; all are 0 if intent holds):
 * - split markers: markers not found contiguous whose characters are all found in order (the
 *   shortest such span starting at a «, using no character of a marker found before: intact
 *   markers are found first, then split ones by increasing span, those within the marker's
 *   length + 64 before any wider one);
 * - inserts inside markers: in those spans, the runs of characters that are not the marker's
 *   (each run ≈ one insert that landed inside; "chars" counts their characters);
 * - deletes that missed their target: for each client, the characters of its own filler
 *   alphabet present beyond (typed − deleted) — a delete it made that removed nothing, or
 *   removed something else, leaves its target behind (a lower bound: a delete that missed its
 *   target and removed another character of the same client's filler instead cancels out);
 * - wrong characters removed: characters nobody deleted that are gone — the client filler
 *   deficits, shared filler (never deleted) missing, and the characters of markers whose
 *   characters are not all there ("markers lost").
 * With the default history, the rare split comes from OT's tie rule, not from a text diff: a
 * marker typed while its first keystroke is in flight goes out as two ops (« alone, then the
 * rest); an insert another client made concurrently at the same place lands between them
 * ("«mjmc0.66»"), and if the rest stays unsent long (its author went offline), more text typed
 * after that lone « lands there too.
 * Also reported: text-diff merges (`merged` events: pending edits rebased over a text diff
 * because the history was gone), `history-gone` refusals (a submit whose base left the tiny
 * window; the client resyncs from a snapshot) and reconnections.
 *
 * A seed fixes every random choice (which edit, where among the allowed places, the offline
 * periods); the texts those choices meet depend on how the edits cross on the wire, which
 * depends on timing, so the counts of one seed vary a little from run to run.
 *
 * Run: npx tsx bench/intent.ts [--seeds 5] [--rounds 250] [--verbose]   (also part of `npm run bench`)
 *   --verbose   prints every split marker as found in the final text
 */
import { type CollaborativeDocument, Connection } from '../src/client/index.js';
import { MemoryStore, type OtterServer, type SequencerOptions, createServer } from '../src/server/index.js';
import { count, isMain, machineLine, printTable } from './common.js';
import { OTTER_LIMITS } from './load-peers/otter.js';
import { SocketGate } from './rejoin.js';
import { seededRandom } from '../test/support/random.js';

const CLIENTS = 4;
const SHARED = 'aehinorst';
const FILLER = ['bdfg', 'jklm', 'pquv', 'wxyz'] as const;
const MARKER_CHARS = new Set('«»c.0123456789');
const SPAN_SLACK = 64;
/** Share of inserts made at a marker's edge (before its «, after its ») rather than anywhere allowed. */
const HOT = 0.5;
const DOC_ID = 'intent';

interface Setting {
  readonly name: string;
  readonly sequencer: SequencerOptions | undefined;
}

const SETTINGS: readonly Setting[] = [
  {
    name: 'small window (retention.ops 2, snapshotEvery 1, memoryHistory 1)',
    sequencer: { retention: { ops: 2 }, snapshotEvery: 1, memoryHistory: 1 },
  },
  { name: 'default history (all kept)', sequencer: undefined },
];

const sleep = (msec: number): Promise<void> => new Promise((r) => setTimeout(r, msec));

function sharedFiller(length: number, rand: () => number): string {
  const out: string[] = [];
  for (let i = 0; i < length; i++) {
    const r = rand();
    out.push(r < 0.16 ? ' ' : r < 0.19 ? '\n' : (SHARED[Math.floor(rand() * SHARED.length)] ?? 'a'));
  }
  return out.join('');
}

/**
 * forbidden[p] is true when an insert at position p of `text` would go inside a marker: after a
 * « and up to its », or inside or right after a marker still being typed (« then marker chars).
 */
function forbiddenPositions(text: string): Uint8Array {
  const forbidden = new Uint8Array(text.length + 1);
  for (let s = text.indexOf('«'); s >= 0; s = text.indexOf('«', s + 1)) {
    const close = text.indexOf('»', s + 1);
    const next = text.indexOf('«', s + 1);
    let e: number;
    if (close >= 0 && (next < 0 || close < next)) {
      // A complete marker (split or not): positions s+1 … close are inside.
      e = close;
    } else {
      // Still being typed: inside it and right after it.
      e = s + 1;
      while (e < text.length && MARKER_CHARS.has(text[e] as string) && text[e] !== '«' && text[e] !== '»') e++;
    }
    for (let p = s + 1; p <= e; p++) forbidden[p] = 1;
  }
  return forbidden;
}

interface Client {
  readonly index: number;
  readonly gate: SocketGate;
  readonly connection: Connection;
  readonly doc: CollaborativeDocument;
  offlineUntil: number;
  markers: number;
  typed: number;
  deleted: number;
  reconnections: number;
}

interface Counts {
  splitMarkers: number;
  intrusions: number;
  intrudingChars: number;
  missedDeletes: number;
  wrongRemoved: number;
  lostMarkers: number;
  merges: number;
  historyGone: number;
  reconnections: number;
  markers: number;
  edits: number;
  converged: boolean;
  anomalies: string[];
  /** The split markers as found (printed with --verbose). */
  details: string[];
  finalLength: number;
}

/** Marks `m` intact if it occurs contiguous at positions no marker found before uses. */
function findIntact(text: string, m: string, used: Uint8Array): boolean {
  for (let at = text.indexOf(m); at >= 0; at = text.indexOf(m, at + 1)) {
    if (used[at] === 0) {
      used.fill(1, at, at + m.length);
      return true;
    }
  }
  return false;
}

/**
 * The shortest span of `text` holding the characters of `m` in order at positions not in
 * `used`, starting at a « and at most m.length + SPAN_SLACK long; the matched positions.
 */
function shortestSpan(text: string, m: string, used: Uint8Array, slack = SPAN_SLACK): number[] | undefined {
  let best: number[] | undefined;
  for (let s = text.indexOf('«'); s >= 0; s = text.indexOf('«', s + 1)) {
    if (used[s] === 1) continue;
    const limit = Math.min(text.length, s + m.length + slack);
    const at = [s];
    let j = 1;
    for (let p = s + 1; p < limit && j < m.length; p++) {
      if (used[p] === 0 && text[p] === m[j]) {
        at.push(p);
        j++;
      }
    }
    if (j === m.length && (best === undefined || (at[at.length - 1] as number) - s < (best[best.length - 1] as number) - (best[0] as number))) {
      best = at;
    }
  }
  return best;
}

/** ±20 characters of `text` around `pos`, quoted. */
function context(text: string, pos: number): string {
  return JSON.stringify(text.slice(Math.max(0, pos - 20), pos + 20));
}

function analyse(text: string, clients: readonly Client[], initial: string, counts: Counts): void {
  const markers: string[] = [];
  for (const c of clients) for (let j = 1; j <= c.markers; j++) markers.push(`«c${c.index}.${j}»`);
  const used = new Uint8Array(text.length);
  // Intact markers first, so that a split one is never matched inside an intact one; then the
  // split ones, tightest span first, each taking its characters out of the running.
  let broken = markers.filter((m) => !findIntact(text, m, used));
  // Split ones, tightest span first (within SPAN_SLACK, then at any distance), each taking its
  // characters out of the running.
  for (const slack of [SPAN_SLACK, Infinity]) {
    for (;;) {
      let pick: { m: string; span: number[] } | undefined;
      for (const m of broken) {
        const span = shortestSpan(text, m, used, slack);
        const width = (sp: number[]): number => (sp[sp.length - 1] as number) - (sp[0] as number) - m.length;
        if (span !== undefined && (pick === undefined || width(span) < width(pick.span))) pick = { m, span };
      }
      if (pick === undefined) break;
      const { m, span } = pick;
      broken = broken.filter((x) => x !== m);
      for (const p of span) used[p] = 1;
      counts.splitMarkers++;
      const seen = text.slice(span[0] as number, (span[span.length - 1] as number) + 1);
      counts.details.push(`${m} split as ${JSON.stringify(seen.length > 160 ? `${seen.slice(0, 80)}…${seen.slice(-80)}` : seen)}`);
      for (let k = 1; k < span.length; k++) {
        const gap = (span[k] as number) - (span[k - 1] as number) - 1;
        if (gap > 0) {
          counts.intrusions++;
          counts.intrudingChars += gap;
        }
      }
    }
  }
  // The rest lack characters: something deleted them.
  for (const m of broken) {
    counts.lostMarkers++;
    counts.wrongRemoved += m.length;
    const head = text.indexOf(m.slice(0, -1));
    const tail = text.indexOf(m.slice(1));
    counts.details.push(
      `${m} not found` +
        (head >= 0 ? `; "${m.slice(0, -1)}" at ${context(text, head)}` : '') +
        (tail >= 0 ? `; "${m.slice(1)}" at ${context(text, tail)}` : ''),
    );
  }
  for (const c of clients) {
    const alphabet = new Set(FILLER[c.index]);
    let present = 0;
    for (const ch of text) if (alphabet.has(ch)) present++;
    const expected = c.typed - c.deleted;
    if (present > expected) counts.missedDeletes += present - expected;
    else counts.wrongRemoved += expected - present;
  }
  const shared = new Set(`${SHARED} \n`);
  let sharedInitial = 0;
  for (const ch of initial) if (shared.has(ch)) sharedInitial++;
  let sharedNow = 0;
  for (const ch of text) if (shared.has(ch)) sharedNow++;
  if (sharedNow < sharedInitial) counts.wrongRemoved += sharedInitial - sharedNow;
  else if (sharedNow > sharedInitial) counts.anomalies.push(`${sharedNow - sharedInitial} shared filler characters more than at the start`);
}

async function runWorld(setting: Setting, seed: number, rounds: number): Promise<Counts> {
  const rand = seededRandom(seed);
  const server: OtterServer = await createServer({
    port: 0,
    host: '127.0.0.1',
    store: new MemoryStore(),
    limits: { ...OTTER_LIMITS },
    ...(setting.sequencer === undefined ? {} : { sequencer: setting.sequencer }),
  });
  const counts: Counts = {
    splitMarkers: 0,
    intrusions: 0,
    intrudingChars: 0,
    missedDeletes: 0,
    wrongRemoved: 0,
    lostMarkers: 0,
    merges: 0,
    historyGone: 0,
    reconnections: 0,
    markers: 0,
    edits: 0,
    converged: false,
    anomalies: [],
    details: [],
    finalLength: 0,
  };
  const clients: Client[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const gate = new SocketGate();
    const connection = new Connection(server.url, {
      WebSocket: gate.socketClass(),
      clientId: `c${i}`,
      minReconnectDelay: 5,
      maxReconnectDelay: 20,
      heartbeatInterval: 3_600_000,
    });
    const doc = connection.open(DOC_ID);
    connection.on('error', (e) => counts.anomalies.push(`c${i} connection error: ${e.message}`));
    doc.on('error', (m) => {
      // A refusal the client heals from by a resync is part of a tiny window's life: count it.
      if (m.code === 'history-gone') counts.historyGone++;
      else counts.anomalies.push(`c${i} error ${m.code}: ${m.message}`);
    });
    doc.on('diverged', (e) => counts.anomalies.push(`c${i} diverged (${e.reason})`));
    doc.on('reset', (e) => counts.anomalies.push(`c${i} reset (${e.action})`));
    doc.on('merged', () => counts.merges++);
    clients.push({ index: i, gate, connection, doc, offlineUntil: -1, markers: 0, typed: 0, deleted: 0, reconnections: 0 });
  }
  await Promise.all(clients.map((c) => c.doc.ready));
  const initial = sharedFiller(1500, rand);
  (clients[0] as Client).doc.insert(0, initial);
  await (clients[0] as Client).doc.synced();
  for (let t = 0; clients.some((c) => c.doc.text !== initial); t++) {
    if (t > 10_000) throw new Error('the clients did not receive the initial text');
    await sleep(1);
  }

  const act = (c: Client): void => {
    const doc = c.doc;
    const r = rand();
    const text = doc.text;
    if (r < 0.3) {
      const own = FILLER[c.index] as string;
      const candidates: number[] = [];
      for (let p = 0; p < text.length; p++) if (own.includes(text[p] as string)) candidates.push(p);
      if (candidates.length > 0) {
        doc.delete(candidates[Math.floor(rand() * candidates.length)] as number, 1);
        c.deleted++;
        counts.edits++;
        return;
      }
    }
    let at: number;
    const boundaries: number[] = [];
    if (rand() < HOT) {
      // Right before a « or right after a complete marker's »: where edits of others meet.
      for (let p = text.indexOf('«'); p >= 0; p = text.indexOf('«', p + 1)) boundaries.push(p);
      for (let p = text.indexOf('»'); p >= 0; p = text.indexOf('»', p + 1)) boundaries.push(p + 1);
    }
    if (boundaries.length > 0) {
      at = boundaries[Math.floor(rand() * boundaries.length)] as number;
    } else {
      const forbidden = forbiddenPositions(text);
      const allowed: number[] = [];
      for (let p = 0; p <= text.length; p++) if (forbidden[p] === 0) allowed.push(p);
      at = allowed[Math.floor(rand() * allowed.length)] as number;
    }
    let chars: string;
    if (r > 0.85) {
      c.markers++;
      counts.markers++;
      chars = `«c${c.index}.${c.markers}»`;
    } else {
      const own = FILLER[c.index] as string;
      const n = 1 + Math.floor(rand() * 4);
      chars = '';
      for (let k = 0; k < n; k++) chars += own[Math.floor(rand() * own.length)] as string;
      c.typed += n;
    }
    // One keystroke per character.
    for (let k = 0; k < chars.length; k++) {
      doc.insert(at + k, chars[k] as string);
      counts.edits++;
    }
  };

  for (let round = 0; round < rounds; round++) {
    for (const c of clients) {
      if (c.offlineUntil >= 0 && round >= c.offlineUntil) {
        c.offlineUntil = -1;
        c.gate.online();
        c.reconnections++;
      } else if (c.offlineUntil < 0 && rand() < 0.03) {
        c.offlineUntil = round + 5 + Math.floor(rand() * 26);
        c.gate.offline();
      }
      const n = 1 + Math.floor(rand() * 3);
      for (let k = 0; k < n; k++) act(c);
    }
    await sleep(Math.floor(rand() * 3));
  }
  for (const c of clients) {
    if (c.offlineUntil >= 0) {
      c.offlineUntil = -1;
      c.gate.online();
      c.reconnections++;
    }
  }
  counts.reconnections = clients.reduce((n, c) => n + c.reconnections, 0);

  // Quiescence: every client live, nothing pending, the same text as every other and the server.
  const deadline = performance.now() + 60_000;
  let serverText = '';
  for (;;) {
    const quiet = clients.every((c) => c.doc.lifecycle.phase === 'live' && c.doc.syncState.kind === 'synchronized');
    const first = (clients[0] as Client).doc.text;
    if (quiet && clients.every((c) => c.doc.text === first)) {
      serverText = (await server.sequencer.getSnapshot(DOC_ID)).text;
      if (serverText === first) {
        counts.converged = true;
        break;
      }
    }
    if (performance.now() > deadline) {
      counts.anomalies.push('did not converge within 60 s');
      serverText = (await server.sequencer.getSnapshot(DOC_ID)).text;
      break;
    }
    await sleep(5);
  }
  counts.finalLength = serverText.length;
  analyse(serverText, clients, initial, counts);
  for (const c of clients) c.connection.close();
  await server.close();
  return counts;
}

function parseArgs(argv: readonly string[]): { seeds: number; rounds: number; verbose: boolean } {
  const verbose = argv.includes('--verbose');
  let seeds = 5;
  let rounds = 250;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--seeds') seeds = Number(argv[++i]);
    else if (argv[i] === '--rounds') rounds = Number(argv[++i]);
  }
  if (!Number.isSafeInteger(seeds) || seeds < 1 || !Number.isSafeInteger(rounds) || rounds < 1) {
    throw new Error('--seeds and --rounds take positive integers');
  }
  return { seeds, rounds, verbose };
}

export async function run(): Promise<void> {
  const { seeds, rounds, verbose } = parseArgs(process.argv.slice(2));
  console.log('\n## intent: markers split, inserts inside markers, deletes that missed their target\n');
  console.log(machineLine());
  console.log(
    `${CLIENTS} real Connections over ws to a real server; ${rounds} rounds of 1–3 edits per client (markers typed key by key, ` +
      'own filler typed and deleted), offline 3 % of rounds for 5–30 rounds; seeds 1…' +
      `${seeds}. Definitions in the header of bench/intent.ts.\n`,
  );
  const rows: string[][] = [];
  const anomalies: string[] = [];
  for (const setting of SETTINGS) {
    const total: Counts = {
      splitMarkers: 0, intrusions: 0, intrudingChars: 0, missedDeletes: 0, wrongRemoved: 0, lostMarkers: 0,
      merges: 0, historyGone: 0, reconnections: 0, markers: 0, edits: 0, converged: true, anomalies: [], details: [], finalLength: 0,
    };
    for (let seed = 1; seed <= seeds; seed++) {
      const c = await runWorld(setting, seed, rounds);
      for (const a of c.anomalies) anomalies.push(`${setting.name}, seed ${seed}: ${a}`);
      if (verbose) for (const d of c.details) console.log(`${setting.name}, seed ${seed}: ${d}`);
      rows.push([
        setting.name,
        String(seed),
        count(c.splitMarkers),
        `${count(c.intrusions)} (${count(c.intrudingChars)} chars)`,
        count(c.missedDeletes),
        count(c.wrongRemoved),
        count(c.lostMarkers),
        `${count(c.markers)} / ${count(c.edits)}`,
        `${count(c.merges)} / ${count(c.historyGone)}`,
        count(c.reconnections),
        c.converged ? 'yes' : 'NO',
      ]);
      for (const key of ['splitMarkers', 'intrusions', 'intrudingChars', 'missedDeletes', 'wrongRemoved', 'lostMarkers', 'merges', 'historyGone', 'reconnections', 'markers', 'edits'] as const) {
        total[key] += c[key];
      }
      total.converged &&= c.converged;
    }
    rows.push([
      `${setting.name}: all seeds`,
      '—',
      count(total.splitMarkers),
      `${count(total.intrusions)} (${count(total.intrudingChars)} chars)`,
      count(total.missedDeletes),
      count(total.wrongRemoved),
      count(total.lostMarkers),
      `${count(total.markers)} / ${count(total.edits)}`,
      `${count(total.merges)} / ${count(total.historyGone)}`,
      count(total.reconnections),
      total.converged ? 'yes' : 'NO',
    ]);
  }
  printTable(
    ['setting', 'seed', 'split markers', 'inserts inside markers', 'deletes missed target', 'wrong chars removed', 'markers lost', 'markers / keystrokes', 'text-diff merges / history-gone', 'reconnections', 'converged'],
    rows,
  );
  if (anomalies.length > 0) {
    console.log('anomalies:');
    for (const a of anomalies.slice(0, 40)) console.log(`  - ${a}`);
    if (anomalies.length > 40) console.log(`  … and ${anomalies.length - 40} more`);
  }
}

if (isMain(import.meta.url)) await run();
