/**
 * A pure reference model of a concurrent editing trace, independent of Otter's OT: the
 * oracle of the convergence benchmark (bench/converge.ts).
 *
 * Every inserted character gets an id (0, 1, 2, … in the order the trace inserts them), and all
 * characters ever inserted are placed in one global order, built by replaying the transactions
 * in index order: each transaction sees exactly the characters inserted and not deleted by its
 * ancestors (plus its own earlier patches), and each of its patches is resolved into
 *   - an anchor: the id of the character it saw just before the patch position (or the start),
 *   - the ids it deletes,
 *   - the ids of the text it inserts, placed in the global order right after the anchor.
 * A transaction's ancestors are described by a version vector: for each agent, the highest
 * per-agent transaction number (1-based) among them; one agent's transactions are totally
 * ordered, so that vector names the set exactly.
 *
 * A {@link View} is one replica's state: the set of transactions it holds (a version vector, kept
 * causally closed) and the text that set defines. It maps any transaction onto its current text
 * as [pos, del, ins] patches in UTF-16 units, which is what an editor does with a user's edit.
 */

/** One editor patch: delete `del` code units at `pos`, then insert `ins` there. */
export type Patch = readonly [pos: number, del: number, ins: string];

/** One transaction of a concurrent trace. */
export interface ConcurrentTxn {
  readonly parents: readonly number[];
  readonly agent: number;
  readonly patches: readonly (readonly [number, number, string])[];
  readonly numChildren?: number;
  readonly time?: string;
}

/** A concurrent trace as stored in traces/concurrent/*.json.gz. */
export interface ConcurrentTrace {
  readonly kind?: string;
  readonly endContent: string;
  readonly numAgents: number;
  readonly txns: readonly ConcurrentTxn[];
}

/** A sequential trace: `{ startContent, endContent, txns: [{ patches }] }`. */
export interface SequentialTrace {
  readonly startContent: string;
  readonly endContent: string;
  readonly txns: readonly { readonly patches: readonly (readonly [number, number, string])[] }[];
}

/** A sequential trace (with empty startContent) as a single-agent concurrent trace. */
export function sequentialAsConcurrent(trace: SequentialTrace): ConcurrentTrace {
  if (trace.startContent !== '') throw new Error('only traces with an empty startContent are supported');
  return {
    kind: 'concurrent',
    endContent: trace.endContent,
    numAgents: 1,
    txns: trace.txns.map((t, i) => ({ parents: i === 0 ? [] : [i - 1], agent: 0, patches: t.patches })),
  };
}

/** The resolved trace. All arrays are indexed as their names say; see the file comment. */
export interface Model {
  readonly numAgents: number;
  readonly numTxns: number;
  /** Number of characters ever inserted (ids are 0 … numChars-1). */
  readonly numChars: number;
  /** Number of patches in the trace. */
  readonly numPatches: number;
  readonly endContent: string;
  /** Agent of each txn. */
  readonly txnAgent: Int32Array;
  /** Per-agent number of each txn, 1-based. */
  readonly txnSeq: Int32Array;
  /** Version vector of each txn's ancestors: entry t * numAgents + a. */
  readonly txnDeps: Int32Array;
  /** For each agent, its txn indexes in per-agent order (agentTxns[a][s - 1] has txnSeq s). */
  readonly agentTxns: readonly Int32Array[];
  /** Patches of txn t are patchStart[t] … patchStart[t+1]-1. */
  readonly patchStart: Int32Array;
  /** Anchor id of each patch; -1 for the start of the document. */
  readonly patchAnchor: Int32Array;
  /** Ids deleted by patch p: delIds[delStart[p]] … delIds[delStart[p+1]-1], in text order. */
  readonly delStart: Int32Array;
  readonly delIds: Int32Array;
  /** Ids inserted by patch p: insStart[p] … insStart[p+1]-1 (consecutive), text patchText[p]. */
  readonly insStart: Int32Array;
  readonly patchText: readonly string[];
  /** Position of each id in the global order. */
  readonly globalIndex: Int32Array;
  /** UTF-16 code unit of each character, by global index. */
  readonly unitAt: Uint16Array;
}

/** True if the version vector `have` covers `need` (every entry ≥). */
export function covers(have: Int32Array, need: Int32Array, needOffset = 0, n = have.length): boolean {
  for (let a = 0; a < n; a++) if ((have[a] as number) < (need[needOffset + a] as number)) return false;
  return true;
}

// ─── building ────────────────────────────────────────────────────────────────────────────────

/** Growable Int32Array. */
class IntList {
  data: Int32Array;
  length = 0;
  constructor(capacity = 1024) {
    this.data = new Int32Array(Math.max(16, capacity));
  }
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Int32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  toArray(): Int32Array {
    return this.data.slice(0, this.length);
  }
}

const CHUNK = 128;

/** A run of the global order, with per-agent counts of the characters each builder view sees. */
interface Chunk {
  ids: number[];
  visible: Int32Array;
}

/**
 * The global order while it is being built: a list of chunks of ids, plus, for each agent, the
 * set of characters visible to that agent's builder view (exactly its current txn's ancestors).
 */
class Builder {
  readonly chunks: Chunk[];
  readonly chunkOf: Chunk[];
  /** visible[a * capacity + id]: id is visible to agent a's builder view. */
  readonly visible: Uint8Array;

  constructor(
    readonly agents: number,
    readonly capacity: number,
  ) {
    this.chunks = [{ ids: [], visible: new Int32Array(agents) }];
    this.chunkOf = new Array<Chunk>(capacity);
    this.visible = new Uint8Array(agents * capacity);
  }

  setVisible(agent: number, id: number, on: boolean): void {
    const k = agent * this.capacity + id;
    const was = this.visible[k] === 1;
    if (was === on) return;
    this.visible[k] = on ? 1 : 0;
    const c = this.chunkOf[id] as Chunk;
    c.visible[agent] = (c.visible[agent] as number) + (on ? 1 : -1);
  }

  /** The chunk index and offset of the k-th (0-based) character visible to `agent`. */
  locate(agent: number, k: number): [chunk: number, offset: number] {
    const chunks = this.chunks;
    const base = agent * this.capacity;
    for (let ci = 0; ci < chunks.length; ci++) {
      const c = chunks[ci] as Chunk;
      const n = c.visible[agent] as number;
      if (k >= n) {
        k -= n;
        continue;
      }
      const ids = c.ids;
      for (let i = 0; i < ids.length; i++) {
        if (this.visible[base + (ids[i] as number)] === 1) {
          if (k === 0) return [ci, i];
          k--;
        }
      }
    }
    throw new RangeError(`position out of range for agent ${agent}`);
  }

  /** Inserts ids first … first+count-1 right after `anchor` (-1: at the start). */
  insertAfter(anchor: number, first: number, count: number): void {
    let ci: number;
    let at: number;
    if (anchor < 0) {
      ci = 0;
      at = 0;
    } else {
      const c = this.chunkOf[anchor] as Chunk;
      ci = this.chunks.indexOf(c);
      at = c.ids.indexOf(anchor) + 1;
    }
    const c = this.chunks[ci] as Chunk;
    const fresh: number[] = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      fresh[i] = first + i;
      this.chunkOf[first + i] = c;
    }
    c.ids.splice(at, 0, ...fresh);
    if (c.ids.length > 2 * CHUNK) this.split(ci);
  }

  private split(ci: number): void {
    const c = this.chunks[ci] as Chunk;
    const all = c.ids;
    const pieces: Chunk[] = [];
    for (let s = 0; s < all.length; s += CHUNK) {
      const ids = all.slice(s, s + CHUNK);
      const piece: Chunk = s === 0 ? c : { ids, visible: new Int32Array(this.agents) };
      piece.ids = ids;
      piece.visible.fill(0);
      for (const id of ids) {
        this.chunkOf[id] = piece;
        for (let a = 0; a < this.agents; a++) {
          if (this.visible[a * this.capacity + id] === 1) piece.visible[a] = (piece.visible[a] as number) + 1;
        }
      }
      pieces.push(piece);
    }
    this.chunks.splice(ci, 1, ...pieces);
  }
}

/**
 * Resolves a concurrent trace into the global order. Throws if the trace is malformed (a parent
 * that is not an earlier txn, an agent whose txns are not totally ordered, a patch out of range).
 * Linear-ish: about n · (chars / 128 + 256) steps for n patches.
 */
export function buildModel(trace: ConcurrentTrace): Model {
  const A = trace.numAgents;
  const txns = trace.txns;
  const T = txns.length;
  if (!(Number.isInteger(A) && A >= 1)) throw new Error(`bad numAgents ${String(A)}`);

  // Version vectors, per-agent numbering, patch and character counts.
  const txnAgent = new Int32Array(T);
  const txnSeq = new Int32Array(T);
  const txnDeps = new Int32Array(T * A);
  const counts = new Int32Array(A);
  let numPatches = 0;
  let numChars = 0;
  for (let t = 0; t < T; t++) {
    const x = txns[t] as ConcurrentTxn;
    const a = x.agent;
    if (!(Number.isInteger(a) && a >= 0 && a < A)) throw new Error(`txn ${t}: bad agent ${String(a)}`);
    txnAgent[t] = a;
    const base = t * A;
    for (const p of x.parents) {
      if (!(Number.isInteger(p) && p >= 0 && p < t)) throw new Error(`txn ${t}: bad parent ${String(p)}`);
      const pb = p * A;
      for (let b = 0; b < A; b++) {
        const v = txnDeps[pb + b] as number;
        if (v > (txnDeps[base + b] as number)) txnDeps[base + b] = v;
      }
      const pa = txnAgent[p] as number;
      if ((txnSeq[p] as number) > (txnDeps[base + pa] as number)) txnDeps[base + pa] = txnSeq[p] as number;
    }
    const seq = (counts[a] as number) + 1;
    counts[a] = seq;
    txnSeq[t] = seq;
    if (txnDeps[base + a] !== seq - 1) {
      throw new Error(`txn ${t}: agent ${a}'s txns are not totally ordered (its txn ${seq - 1} is not an ancestor)`);
    }
    numPatches += x.patches.length;
    for (const p of x.patches) numChars += p[2].length;
  }
  const agentTxns: Int32Array[] = [];
  for (let a = 0; a < A; a++) agentTxns.push(new Int32Array(counts[a] as number));
  for (let t = 0; t < T; t++) (agentTxns[txnAgent[t] as number] as Int32Array)[(txnSeq[t] as number) - 1] = t;

  const builder = new Builder(A, numChars);
  const patchStart = new Int32Array(T + 1);
  const patchAnchor = new Int32Array(numPatches);
  const delStart = new Int32Array(numPatches + 1);
  const insStart = new Int32Array(numPatches + 1);
  const patchText: string[] = new Array<string>(numPatches);
  const delIds = new IntList(1024);
  const units = new Uint16Array(numChars);
  // Each agent's builder view, as a version vector and its visible length.
  const viewDeps = new Int32Array(A * A);
  const viewLength = new Int32Array(A);
  const missing: number[] = [];

  let p = 0;
  let nextId = 0;
  for (let t = 0; t < T; t++) {
    const x = txns[t] as ConcurrentTxn;
    const a = txnAgent[t] as number;
    const vb = a * A;
    const db = t * A;
    // Bring agent a's builder view to exactly the ancestors of t.
    missing.length = 0;
    for (let b = 0; b < A; b++) {
      const have = viewDeps[vb + b] as number;
      const need = txnDeps[db + b] as number;
      if (have > need) {
        throw new Error(`txn ${t}: agent ${a} already saw txn ${have} of agent ${b}, which is not an ancestor`);
      }
      const list = agentTxns[b] as Int32Array;
      for (let s = have; s < need; s++) missing.push(list[s] as number);
      viewDeps[vb + b] = need;
    }
    if (missing.length > 1) missing.sort((u, v) => u - v); // index order is a causal order
    for (const u of missing) {
      for (let q = patchStart[u] as number; q < (patchStart[u + 1] as number); q++) {
        for (let k = delStart[q] as number; k < (delStart[q + 1] as number); k++) {
          const id = delIds.data[k] as number;
          if (builder.visible[a * numChars + id] === 1) {
            builder.setVisible(a, id, false);
            viewLength[a] = (viewLength[a] as number) - 1;
          }
        }
        for (let id = insStart[q] as number; id < (insStart[q + 1] as number); id++) {
          builder.setVisible(a, id, true);
          viewLength[a] = (viewLength[a] as number) + 1;
        }
      }
    }
    // Resolve the patches of t on that view.
    for (const [pos, del, ins] of x.patches) {
      const len = viewLength[a] as number;
      if (!(Number.isInteger(pos) && Number.isInteger(del) && pos >= 0 && del >= 0 && pos + del <= len)) {
        throw new Error(`txn ${t}: patch [${pos}, ${del}] out of range on a document of length ${len}`);
      }
      let anchor = -1;
      if (pos > 0) {
        const [ci, off] = builder.locate(a, pos - 1);
        anchor = (builder.chunks[ci] as Chunk).ids[off] as number;
      }
      patchAnchor[p] = anchor;
      delStart[p] = delIds.length;
      if (del > 0) {
        let [ci, off] = builder.locate(a, pos);
        const found: number[] = [];
        while (found.length < del) {
          const c = builder.chunks[ci] as Chunk;
          if (off >= c.ids.length) {
            ci++;
            off = 0;
            continue;
          }
          const id = c.ids[off++] as number;
          if (builder.visible[a * numChars + id] === 1) found.push(id);
        }
        for (const id of found) {
          delIds.push(id);
          builder.setVisible(a, id, false);
        }
        viewLength[a] = len - del;
      }
      insStart[p] = nextId;
      patchText[p] = ins;
      if (ins.length > 0) {
        for (let i = 0; i < ins.length; i++) units[nextId + i] = ins.charCodeAt(i);
        builder.insertAfter(anchor, nextId, ins.length);
        for (let i = 0; i < ins.length; i++) builder.setVisible(a, nextId + i, true);
        viewLength[a] = (viewLength[a] as number) + ins.length;
        nextId += ins.length;
      }
      p++;
      // Sentinels, so that the patch ranges of t are complete once t is done.
      delStart[p] = delIds.length;
      insStart[p] = nextId;
    }
    patchStart[t + 1] = p;
    viewDeps[vb + a] = txnSeq[t] as number;
  }

  const globalIndex = new Int32Array(numChars);
  const unitAt = new Uint16Array(numChars);
  let g = 0;
  for (const c of builder.chunks) {
    for (const id of c.ids) {
      globalIndex[id] = g;
      unitAt[g] = units[id] as number;
      g++;
    }
  }
  return {
    numAgents: A,
    numTxns: T,
    numChars,
    numPatches,
    endContent: trace.endContent,
    txnAgent,
    txnSeq,
    txnDeps,
    agentTxns,
    patchStart,
    patchAnchor,
    delStart,
    delIds: delIds.toArray(),
    insStart,
    patchText,
    globalIndex,
    unitAt,
  };
}

// ─── views ───────────────────────────────────────────────────────────────────────────────────

/**
 * One replica's view of the trace: the transactions it holds (a causally closed set, as a
 * version vector) and the text they define, kept up to date as transactions are added.
 */
export class View {
  /** Per agent, how many of its txns this view holds. */
  readonly vv: Int32Array;
  /** Fenwick tree over global indexes: number of visible characters. */
  private readonly tree: Int32Array;
  /** visible[g]: the character at global index g is visible. */
  private readonly visible: Uint8Array;
  private current = '';
  private size = 0;

  constructor(readonly model: Model) {
    this.vv = new Int32Array(model.numAgents);
    this.tree = new Int32Array(model.numChars + 1);
    this.visible = new Uint8Array(model.numChars);
  }

  /** The text this view's transactions define. */
  get text(): string {
    return this.current;
  }

  /** Its length in code units. */
  get length(): number {
    return this.size;
  }

  /** True if this view holds txn `t`. */
  holds(t: number): boolean {
    const m = this.model;
    return (this.vv[m.txnAgent[t] as number] as number) >= (m.txnSeq[t] as number);
  }

  /** True if this view holds every ancestor of txn `t`. */
  hasAncestorsOf(t: number): boolean {
    const m = this.model;
    return covers(this.vv, m.txnDeps, t * m.numAgents, m.numAgents);
  }

  /** True if txn `t` can be added: not held yet, and every ancestor held. */
  canAdd(t: number): boolean {
    return !this.holds(t) && this.hasAncestorsOf(t) && this.vv[this.model.txnAgent[t] as number] === (this.model.txnSeq[t] as number) - 1;
  }

  /**
   * Adds txn `t` to this view and returns its patches mapped onto this view's text as it was
   * (each patch applies to the result of the previous one), [pos, del, ins] in UTF-16 units.
   * Throws unless {@link canAdd}(t).
   */
  add(t: number): Patch[] {
    const m = this.model;
    if (!this.canAdd(t)) {
      throw new Error(
        `txn ${t} (agent ${m.txnAgent[t]}, #${m.txnSeq[t]}) cannot be added to a view holding [${[...this.vv].join(', ')}]`,
      );
    }
    const out: Patch[] = [];
    const emit = (pos: number, del: number, ins: string): void => {
      const last = out[out.length - 1];
      // A deletion followed by an insertion at the same place is one patch.
      if (last !== undefined && ins.length > 0 && del === 0 && last[2] === '' && last[0] === pos) {
        out[out.length - 1] = [pos, last[1], ins];
      } else if (last !== undefined && del > 0 && ins === '' && last[2] === '' && last[0] === pos) {
        out[out.length - 1] = [pos, last[1] + del, ''];
      } else {
        out.push([pos, del, ins]);
      }
      this.current = this.current.slice(0, pos) + ins + this.current.slice(pos + del);
      this.size += ins.length - del;
    };
    for (let q = m.patchStart[t] as number; q < (m.patchStart[t + 1] as number); q++) {
      // Deletions: runs of ids that are adjacent in this view become one patch.
      let runPos = -1;
      let runLen = 0;
      for (let k = m.delStart[q] as number; k < (m.delStart[q + 1] as number); k++) {
        const g = m.globalIndex[m.delIds[k] as number] as number;
        if (this.visible[g] !== 1) continue; // already deleted by a concurrent txn this view holds
        const pos = this.rank(g);
        this.setVisible(g, false);
        if (runLen > 0 && pos === runPos) runLen++;
        else {
          if (runLen > 0) emit(runPos, runLen, '');
          runPos = pos;
          runLen = 1;
        }
      }
      if (runLen > 0) emit(runPos, runLen, '');
      // Insertion: the new ids are consecutive in every view that can add t.
      const first = m.insStart[q] as number;
      const end = m.insStart[q + 1] as number;
      if (end > first) {
        const pos = this.rank(m.globalIndex[first] as number);
        for (let id = first; id < end; id++) this.setVisible(m.globalIndex[id] as number, true);
        emit(pos, 0, m.patchText[q] as string);
      }
    }
    this.vv[m.txnAgent[t] as number] = m.txnSeq[t] as number;
    return out;
  }

  /** Adds every txn the version vector `target` names that this view lacks, in a causal order. */
  advanceTo(target: ArrayLike<number>): void {
    const m = this.model;
    const todo: number[] = [];
    for (let a = 0; a < m.numAgents; a++) {
      const list = m.agentTxns[a] as Int32Array;
      for (let s = this.vv[a] as number; s < (target[a] as number); s++) todo.push(list[s] as number);
    }
    todo.sort((u, v) => u - v);
    for (const t of todo) this.add(t);
  }

  /** The text recomputed from scratch from the visibility set (for checks). */
  recompute(): string {
    const parts: string[] = [];
    let run: number[] = [];
    const { unitAt } = this.model;
    for (let g = 0; g < this.visible.length; g++) {
      if (this.visible[g] === 1) {
        run.push(unitAt[g] as number);
        if (run.length === 4096) {
          parts.push(String.fromCharCode(...run));
          run = [];
        }
      }
    }
    parts.push(String.fromCharCode(...run));
    return parts.join('');
  }

  /** Number of visible characters with global index < g. */
  private rank(g: number): number {
    let sum = 0;
    for (let i = g; i > 0; i -= i & -i) sum += this.tree[i] as number;
    return sum;
  }

  private setVisible(g: number, on: boolean): void {
    if ((this.visible[g] === 1) === on) return;
    this.visible[g] = on ? 1 : 0;
    const d = on ? 1 : -1;
    for (let i = g + 1; i < this.tree.length; i += i & -i) this.tree[i] = (this.tree[i] as number) + d;
  }
}

/** The text of the whole trace according to the model: every txn, in index order. */
export function modelText(model: Model): string {
  const v = new View(model);
  for (let t = 0; t < model.numTxns; t++) v.add(t);
  return v.text;
}
