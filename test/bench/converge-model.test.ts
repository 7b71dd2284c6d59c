import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  type ConcurrentTrace,
  type Model,
  type Patch,
  type SequentialTrace,
  View,
  buildModel,
  modelText,
  sequentialAsConcurrent,
} from '../../bench/converge-model.js';
import { seededRandom } from '../support/random.js';

const TRACES = new URL('../../traces/', import.meta.url);
const CONCURRENT = ['friendsforever', 'clownschool'];
const FLAT = existsSync(new URL('sequential/', TRACES))
  ? readdirSync(new URL('sequential/', TRACES))
      .filter((f) => f.endsWith('_flat.json.gz'))
      .sort()
  : [];

function load<T>(relative: string): T {
  return JSON.parse(gunzipSync(readFileSync(new URL(relative, TRACES))).toString('utf8')) as T;
}

const cache = new Map<string, { trace: ConcurrentTrace; model: Model }>();
function concurrent(name: string): { trace: ConcurrentTrace; model: Model } {
  let entry = cache.get(name);
  if (entry === undefined) {
    const trace = load<ConcurrentTrace>(`concurrent/${name}.json.gz`);
    entry = { trace, model: buildModel(trace) };
    cache.set(name, entry);
  }
  return entry;
}

function applyPatches(text: string, patches: readonly (readonly [number, number, string])[]): string {
  for (const [pos, del, ins] of patches) text = text.slice(0, pos) + ins + text.slice(pos + del);
  return text;
}

describe('convergence model', () => {
  it('finds the traces', () => {
    expect(existsSync(TRACES), `missing ${fileURLToPath(TRACES)}`).toBe(true);
    expect(FLAT).toContain('clownschool_flat.json.gz');
    expect(FLAT).toContain('friendsforever_flat.json.gz');
    for (const name of CONCURRENT) expect(existsSync(new URL(`concurrent/${name}.json.gz`, TRACES))).toBe(true);
  });

  it.each(CONCURRENT)('%s: the text of every txn is endContent', (name) => {
    const { trace, model } = concurrent(name);
    expect(model.numTxns).toBe(trace.txns.length);
    expect(model.numPatches).toBe(trace.txns.reduce((n, t) => n + t.patches.length, 0));
    const view = new View(model);
    for (let t = 0; t < model.numTxns; t++) view.add(t);
    expect(view.text.length).toBe(trace.endContent.length);
    expect(view.text === trace.endContent).toBe(true);
    expect(view.recompute() === trace.endContent).toBe(true);
    expect([...view.vv]).toEqual(model.agentTxns.map((l) => l.length));
  });

  it.each(FLAT)('%s, as a single-agent trace: the model text is endContent', (file) => {
    const trace = sequentialAsConcurrent(load<SequentialTrace>(`sequential/${file}`));
    const model = buildModel(trace);
    expect(model.numAgents).toBe(1);
    expect(modelText(model) === trace.endContent).toBe(true);
  });

  it.each(CONCURRENT)('%s: on a view holding exactly its ancestors, a txn maps to its own patches', (name) => {
    const { trace, model } = concurrent(name);
    const views = Array.from({ length: model.numAgents }, () => new View(model));
    let splitDeletes = 0;
    for (let t = 0; t < model.numTxns; t++) {
      const txn = trace.txns[t] as ConcurrentTrace['txns'][number];
      const view = views[txn.agent] as View;
      view.advanceTo(model.txnDeps.subarray(t * model.numAgents, (t + 1) * model.numAgents));
      const before = view.text;
      const mapped = view.add(t);
      const expected = applyPatches(before, txn.patches);
      if (view.text !== expected) throw new Error(`txn ${t}: mapped patches give a different text`);
      // Same edits, up to merging a deletion with the insertion at the same position.
      const total = (ps: readonly (readonly [number, number, string])[]): [number, string] => [
        ps.reduce((n, p) => n + p[1], 0),
        ps.map((p) => p[2]).join(''),
      ];
      expect(total(mapped)).toEqual(total(txn.patches));
      if (mapped.length > txn.patches.length) splitDeletes++;
    }
    expect(splitDeletes).toBe(0);
  });

  it.each(CONCURRENT)('%s: replicas that receive concurrent txns early in random causal orders converge', (name) => {
    const { trace, model } = concurrent(name);
    const A = model.numAgents;
    for (const seed of [1, 2, 3]) {
      const random = seededRandom(seed);
      const views = Array.from({ length: A }, () => new View(model));
      let mapped = 0;
      let remoteMapped = 0;
      const deliverSome = (view: View, below: number): void => {
        // Deliver a random number of other agents' next txns (index < below) that are ready.
        for (let tries = Math.floor(random() * 4); tries > 0; tries--) {
          const b = Math.floor(random() * A);
          const list = model.agentTxns[b] as Int32Array;
          const next = list[view.vv[b] as number];
          if (next !== undefined && next < below && view.canAdd(next)) {
            view.add(next);
            remoteMapped++;
          }
        }
      };
      for (let t = 0; t < model.numTxns; t++) {
        const a = model.txnAgent[t] as number;
        const view = views[a] as View;
        deliverSome(view, t);
        view.advanceTo(model.txnDeps.subarray(t * A, (t + 1) * A));
        const patches: Patch[] = view.add(t);
        for (const [pos, del] of patches) expect(pos + del).toBeLessThanOrEqual(view.length + del);
        mapped++;
        if (t % 2000 === 0) expect(view.text === view.recompute()).toBe(true);
      }
      const all = model.agentTxns.map((l) => l.length);
      for (const view of views) {
        view.advanceTo(all);
        expect(view.text === view.recompute()).toBe(true);
        expect(view.text === trace.endContent).toBe(true);
      }
      expect(mapped).toBe(model.numTxns);
      expect(remoteMapped).toBeGreaterThan(0);
    }
  });

  it('rejects a txn whose ancestors are missing, and txns added twice', () => {
    const model = buildModel({
      endContent: 'ab',
      numAgents: 2,
      txns: [
        { parents: [], agent: 0, patches: [[0, 0, 'a']] },
        { parents: [0], agent: 1, patches: [[1, 0, 'b']] },
      ],
    });
    const view = new View(model);
    expect(() => view.add(1)).toThrow(/cannot be added/);
    expect(view.add(0)).toEqual([[0, 0, 'a']]);
    expect(() => view.add(0)).toThrow(/cannot be added/);
    expect(view.add(1)).toEqual([[1, 0, 'b']]);
    expect(view.text).toBe('ab');
  });

  it('maps an insertion after a concurrently deleted anchor, and a deletion around a concurrent insertion', () => {
    const model = buildModel({
      endContent: 'aXc',
      numAgents: 2,
      txns: [
        { parents: [], agent: 0, patches: [[0, 0, 'abc']] },
        { parents: [0], agent: 1, patches: [[1, 1, '']] }, // ac
        { parents: [0], agent: 0, patches: [[2, 0, 'X']] }, // abXc
      ],
    });
    const v = new View(model);
    v.add(0);
    v.add(1); // ac
    expect(v.add(2)).toEqual([[1, 0, 'X']]);
    expect(v.text).toBe('aXc');
    expect(modelText(model)).toBe('aXc');
    // Deleting "bc" of "abcd" on a view that holds a concurrent "Z" between them.
    const m2 = buildModel({
      endContent: 'aZd',
      numAgents: 2,
      txns: [
        { parents: [], agent: 0, patches: [[0, 0, 'abcd']] },
        { parents: [0], agent: 1, patches: [[2, 0, 'Z']] }, // abZcd
        { parents: [0], agent: 0, patches: [[1, 2, '']] }, // ad
      ],
    });
    const w = new View(m2);
    w.add(0);
    w.add(1);
    expect(w.add(2)).toEqual([
      [1, 1, ''],
      [2, 1, ''],
    ]);
    expect(w.text).toBe('aZd');
  });
});
