/**
 * Seeded schedules of the loopback world (`test/support/world.ts`): 2–6 real clients on one
 * document, the real server session and sequencer, and a scheduler that, step by step, lets
 * clients type, delivers frames late (in order per direction), drops connections (with the
 * dead connection's frames sometimes still read by the server after the reconnect), makes
 * the server drop a message and say only that it did (so clients retry, and requests that
 * did arrive are answered twice), stalls and fails the store (before or after writing),
 * restarts the server on its store, on an empty store or on an older copy of it, and, in a
 * third of the runs, keeps only a few ops of history.
 *
 * Laws checked:
 * - after every step: a client that is live with nothing unacknowledged at version v of
 *   epoch e holds exactly a text the server committed as version v of e;
 * - at the end, once everyone is connected and quiet: every client holds the server's text at
 *   its head; each marker a client typed appears exactly once (in runs that keep little
 *   history, a marker split by a diff-based rebase is counted as an intent figure, not a loss);
 *   within each epoch, no (client, seq) was committed twice.
 *
 * `npm test` runs 2,000 seeds and the pinned ones; `npm run test:long` (OTTER_LONG=1) runs 20,000; OTTER_SEED=n
 * runs one (OTTER_TRACE=1 adds every frame to the steps printed on failure), OTTER_SEEDS=a-b a
 * range; OTTER_VERBOSE=1 prints the figures. A failure names its seed and the last steps.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SequencerOptions } from '../../src/server/sequencer.js';
import { type Random, below, chance, pick, seededRandom, weighted } from '../support/random.js';
import { World, type WorldClient, traceFrames } from '../support/world.js';

const LONG = process.env['OTTER_LONG'] === '1';
const ONE = process.env['OTTER_SEED'];
const RANGE = /^(\d+)-(\d+)$/.exec(process.env['OTTER_SEEDS'] ?? '');
const COUNT = LONG ? 20_000 : 2_000;
/** Seeds beyond COUNT that once failed, run every time, with the bug each found. */
const PINNED = [
  11_170, // a restore cut short by a reconnect and answered by a snapshot left its lost state behind
  20_659, // (lossy) a no-delete merge kept a piece of the server's text beside the restored one
];
const SEEDS =
  ONE !== undefined && ONE !== ''
    ? [Number(ONE)]
    : RANGE !== null
      ? Array.from({ length: Number(RANGE[2]) - Number(RANGE[1]) + 1 }, (_, i) => Number(RANGE[1]) + i)
      : [...Array.from({ length: COUNT }, (_, i) => i + 1), ...PINNED.filter((s) => s > COUNT)];
/** Seeds per test case, so that progress shows and one case stays short. */
const BATCH = 250;

const MARKER = /«[^«»]*»/g;
const FILLERS = ['a', 'bc', 'd e', 'fg', '😀', 'x'];

interface Run {
  readonly seed: number;
  readonly random: Random;
  readonly world: World;
  readonly tiny: boolean;
  readonly typed: Map<string, string[]>;
  readonly log: string[];
  lossy: boolean;
}

/** What a finished run found that is not a failure. */
interface Figures {
  /** Markers a diff-based rebase or merge cut apart (all characters still there, in order). */
  split: number;
  /** Markers that came back twice after the server lost data and several clients restored it. */
  doubled: number;
  resets: number;
  diverged: number;
  merged: number;
  /** Runs in which the server lost data (restarted empty or on an older copy). */
  lossy: number;
}

class ScheduleFailure extends Error {}

function fail(run: Run, what: string): never {
  throw new ScheduleFailure(`seed=${run.seed}: ${what}\nlast steps:\n  ${run.log.slice(TRACING ? -400 : -40).join('\n  ')}`);
}

/** With OTTER_TRACE=1 (and one seed), every frame is logged among the steps. */
const TRACING = process.env['OTTER_TRACE'] === '1';

/** Marker spans [start, end) of `text`. */
function spans(text: string): Array<[number, number]> {
  return [...text.matchAll(MARKER)].map((m) => [m.index, m.index + m[0].length]);
}

/** A client types: a new marker and filler at a place outside every marker, or deletes some filler. */
function edit(run: Run, client: WorldClient): void {
  const doc = client.doc;
  const text = doc.text;
  const marks = spans(text);
  if (text.length > 0 && chance(run.random, 0.3)) {
    // Delete inside one gap between markers, on code point boundaries.
    const gaps: Array<[number, number]> = [];
    let at = 0;
    for (const [s, e] of marks) {
      if (s > at) gaps.push([at, s]);
      at = e;
    }
    if (text.length > at) gaps.push([at, text.length]);
    if (gaps.length === 0) return;
    const [from, to] = pick(run.random, gaps);
    const points = Array.from(text.slice(from, to));
    const i = below(run.random, points.length);
    const n = 1 + below(run.random, Math.min(3, points.length - i));
    const pos = from + points.slice(0, i).join('').length;
    const len = points.slice(i, i + n).join('').length;
    run.log.push(`${client.name} deletes ${len} at ${pos}`);
    doc.delete(pos, len);
    return;
  }
  let pos = below(run.random, text.length + 1);
  for (const [s, e] of marks) if (pos > s && pos < e) pos = e;
  // Never between the halves of a surrogate pair.
  const code = text.charCodeAt(pos - 1);
  if (pos > 0 && code >= 0xd800 && code <= 0xdbff) pos += 1;
  const typed = run.typed.get(client.name) as string[];
  const marker = `«${client.name}.${typed.length}»`;
  typed.push(marker);
  const insert = marker + pick(run.random, FILLERS);
  run.log.push(`${client.name} inserts ${insert} at ${pos}`);
  doc.insert(pos, insert);
}

/** The law checked after every step. */
function checkSynchronized(run: Run): void {
  for (const c of run.world.clients) {
    const doc = c.doc;
    if (doc.lifecycle.phase !== 'live' || doc.syncState.kind !== 'synchronized') continue;
    if (!run.world.serverHad(doc.epoch, doc.version, doc.text)) {
      fail(run, `${c.name} is synchronized at version ${doc.version} of ${doc.epoch} with ${JSON.stringify(doc.text)}, which the server never had there`);
    }
  }
}

function sequencerOptions(random: Random, tiny: boolean): SequencerOptions {
  if (!tiny) return {};
  const options = {
    retention: { ops: below(random, 4) },
    snapshotEvery: 1 + below(random, 3),
    memoryHistory: below(random, 3),
    catchUpBeyond: below(random, 3),
  };
  // Derived, not drawn, so that every seed keeps its schedule: marks forgotten and history
  // shed after every batch in some runs.
  return { ...options, cachedMarks: options.memoryHistory, historyMemoryBytes: 20 * options.catchUpBeyond };
}

async function step(run: Run): Promise<void> {
  const { random, world } = run;
  const action = weighted(random, {
    edit: 25,
    deliver: 45,
    advance: 12,
    drop: 3,
    dropped: 2,
    restart: 1,
    fault: 2,
    select: 2,
  });
  switch (action) {
    case 'edit':
      edit(run, pick(random, world.clients));
      return;
    case 'deliver': {
      const busy = world.busyLinks();
      if (busy.length === 0) return;
      const link = pick(random, busy);
      const n = 1 + below(random, 4);
      const up = chance(random, 0.5);
      run.log.push(`link ${link.id} delivers ${n} ${up ? 'up' : 'down'}`);
      if (up) link.deliverUp(n);
      else link.deliverDown(n);
      return;
    }
    case 'advance': {
      const ms = 1 + below(random, 60);
      run.log.push(`clock +${ms} ms`);
      await world.advance(ms);
      return;
    }
    case 'drop': {
      const link = world.linkOf(pick(random, world.clients));
      if (link === undefined || link.clientGone) return;
      const late = chance(random, 0.5);
      run.log.push(`link ${link.id} drops${late ? ', its frames still on their way' : ''}`);
      link.drop(late);
      return;
    }
    case 'dropped': {
      // The server drops a message unread and says so without naming it: the client resends
      // what awaits an answer; if the message had in fact been read, it is answered twice.
      const link = world.linkOf(pick(random, world.clients));
      if (link === undefined || link.clientGone || link.serverGone) return;
      const lose = chance(random, 0.5) && link.up.length > 0;
      if (lose) link.up.pop();
      run.log.push(`link ${link.id}: the server ${lose ? 'dropped' : 'claims it dropped'} a message`);
      link.inject({ type: 'error', code: 'rate-limited', message: 'slow down: the message was dropped' });
      return;
    }
    case 'restart': {
      const kind = weighted(random, { durable: 6, empty: 2, older: 2 });
      const keep = below(random, world.storeLength + 1);
      run.log.push(`server restarts ${kind}${kind === 'older' ? ` (first ${keep} of ${world.storeLength} writes)` : ''}`);
      if ((kind === 'empty' && world.storeLength > 0) || (kind === 'older' && world.storeLength > keep)) run.lossy = true;
      world.restart(kind, keep);
      return;
    }
    case 'fault': {
      const faults = world.node.store.faults;
      const kind = weighted(random, { before: 1, after: 1, delay: 2 });
      run.log.push(`store fault: ${kind}`);
      if (kind === 'before') faults.failBefore = true;
      else if (kind === 'after') faults.failAfter = true;
      else faults.delay = 1 + below(random, 40);
      return;
    }
    case 'select': {
      const client = pick(random, world.clients);
      const at = below(random, client.doc.text.length + 1);
      const code = client.doc.text.charCodeAt(at - 1);
      if (code >= 0xd800 && code <= 0xdbff) return;
      client.doc.setSelection({ anchor: at, head: at });
      return;
    }
  }
}

/** Counts occurrences of `needle` in `text`. */
function occurrences(text: string, needle: string): number {
  let n = 0;
  for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + needle.length)) n++;
  return n;
}

/** Whether the characters of `needle` appear in order in `text`. */
function subsequence(text: string, needle: string): boolean {
  let i = 0;
  for (const ch of text) if (ch === needle[i]) i++;
  return i >= needle.length;
}

async function simulate(seed: number): Promise<Figures> {
  const random = seededRandom(seed);
  const jitter = seededRandom(seed ^ 0x5bd1e995);
  vi.spyOn(Math, 'random').mockImplementation(jitter);
  const tiny = chance(random, 1 / 3);
  const world = new World('d', { sequencer: sequencerOptions(random, tiny) });
  const run: Run = { seed, random, world, tiny, typed: new Map(), log: [], lossy: false };
  if (TRACING) traceFrames(run.log);
  const figures: Figures = { split: 0, doubled: 0, resets: 0, diverged: 0, merged: 0, lossy: 0 };
  const clients = 2 + below(random, 5);
  for (let i = 0; i < clients; i++) {
    const c = world.addClient(`k${i}`);
    run.typed.set(c.name, []);
    c.doc.on('reset', () => figures.resets++);
    c.doc.on('diverged', (e) => { figures.diverged++; if (TRACING) console.log('DIVERGED', c.name, JSON.stringify(e), '\n' + run.log.slice(-150).join('\n')); });
    c.doc.on('merged', () => figures.merged++);
  }
  const steps = 100 + below(random, 150);
  try {
    for (let i = 0; i < steps; i++) {
      await step(run);
      await world.settle();
      checkSynchronized(run);
    }
    // No more faults: everyone reconnects and the world goes quiet.
    const faults = world.node.store.faults;
    faults.failBefore = faults.failAfter = false;
    faults.delay = 0;
    try {
      await world.quiesce(120_000);
    } catch (e) {
      const states = world.clients.map((c) => `${c.name}: ${c.connection.state} ${c.doc.lifecycle.phase}/${c.doc.syncState.kind} v${c.doc.version}`);
      if (TRACING) console.log(world.clients.map((c) => c.connection), world.links.map((l) => [l.id, l.socket.owner, l.clientGone, l.serverGone, l.up.length, l.down.length]));
      fail(run, `${(e as Error).message}; ${states.join(', ')}`);
    }
    checkSynchronized(run);
    const head = await world.head();
    for (const c of world.clients) {
      if (c.doc.text !== head.text || c.doc.version !== head.version || c.doc.epoch !== head.epoch) {
        if (TRACING) {
          const rooms = (world.node.rooms as unknown as { rooms: Map<string, { members: Set<{ connectionId: string }> }> }).rooms;
          console.log('TIMERS', vi.getTimerCount(), Date.now());
          console.log('ROOM', [...(rooms.get('d')?.members ?? [])].map((m) => m.connectionId));
          for (const l of world.links.filter((x) => x.node === world.node)) {
            const docs = (l.session as unknown as { docs: Map<string, { held: unknown[] | undefined }> }).docs;
            const outbox = (l.session as unknown as { outbox: { pieces: unknown[]; scheduled: boolean; closed: boolean } }).outbox;
            console.log('LINK', l.id, l.socket.owner, l.session?.connectionId, [...docs].map(([k, d]) => [k, d.held?.length]), outbox.pieces.length, outbox.scheduled, outbox.closed);
          }
        }
        fail(run, `${c.name} ends at v${c.doc.version} of ${c.doc.epoch} with ${JSON.stringify(c.doc.text)}; the server at v${head.version} of ${head.epoch} has ${JSON.stringify(head.text)}`);
      }
    }
    if (run.lossy) figures.lossy = 1;
    for (const [name, markers] of run.typed) {
      for (const marker of markers) {
        const n = occurrences(head.text, marker);
        if (n === 1) continue;
        // A diff-based rebase (history removed, a reset) can put another's text inside a marker.
        if (n === 0 && (tiny || figures.merged > 0 || figures.resets > 0) && subsequence(head.text, marker)) {
          figures.split++;
          continue;
        }
        // After data loss, copies restored from several clients are merged by text: an edit
        // whose fate was unknown (in flight at the loss) can come back from two of them.
        if (n > 1 && run.lossy) {
          figures.doubled++;
          continue;
        }
        fail(run, `${name}'s marker ${marker} appears ${n} times in ${JSON.stringify(head.text)}`);
      }
    }
    // Without a diff-based rebase, no marker is ever cut, so none can look like a new one.
    // After data loss, a merge that cannot tell where the lost copy forked from the server's
    // keeps both texts (it never deletes): pieces of one can come back beside the other.
    if (figures.split === 0 && figures.doubled === 0) {
      const unexpected = [...head.text.matchAll(MARKER)].map((m) => m[0]).filter((m) => ![...run.typed.values()].some((t) => t.includes(m)));
      if (unexpected.length > 0 && run.lossy) figures.doubled += unexpected.length;
      else if (unexpected.length > 0) fail(run, `markers nobody typed: ${unexpected.join(' ')}`);
    }
    world.checkExactlyOnce((what) => fail(run, what));
    return figures;
  } finally {
    traceFrames(undefined);
    world.close();
    vi.mocked(Math.random).mockRestore();
  }
}

describe('seeded schedules of the loopback world', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const batches: number[][] = [];
  for (let i = 0; i < SEEDS.length; i += BATCH) batches.push(SEEDS.slice(i, i + BATCH));
  it.each(batches.map((b) => [b[0] as number, b[b.length - 1] as number, b] as const))(
    'seeds %i–%i: synchronized clients hold the server text at every step; at the end all are equal and each marker is there once',
    async (_first, _last, seeds) => {
      const total: Figures = { split: 0, doubled: 0, resets: 0, diverged: 0, merged: 0, lossy: 0 };
      for (const seed of seeds) {
        const f = await simulate(seed);
        for (const key of Object.keys(total) as Array<keyof Figures>) total[key] += f[key];
      }
      if (process.env['OTTER_VERBOSE'] === '1') console.log(`seeds ${seeds[0]}–${seeds.at(-1)}:`, total);
      expect(total.diverged).toBe(0);
    },
    600_000,
  );
});

