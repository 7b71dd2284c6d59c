/**
 * A mutable rope: text held in a shallow B+-tree of string chunks, so an edit costs
 * O(log n) tree steps plus work on one chunk of at most {@link LEAF_MAX} code units, whatever
 * the document's size. Positions count UTF-16 code units.
 *
 * The server's sequencer and the client's document both hold their texts in ropes, so that
 * neither copies a long document per keystroke; it lives in src/ot (pure, no Node imports) for
 * both to import.
 *
 * Why a small rope of our own: both need exactly four things — insert, delete, charCodeAt (to
 * check surrogate boundaries) and toString (for snapshots, or a client's `text`) — at several
 * million edits per second. Well-kept rope libraries are either line-oriented editor models
 * (@codemirror/state's Text, ~1 M edits/s here) or native/WASM. A B+-tree over V8 strings is
 * small and lets V8's own string slicing do the leaf work.
 *
 * Invariants: every leaf holds 1..LEAF_MAX code units (the root may be an empty leaf); every
 * branch holds 1..BRANCH_MAX children and caches the sum of their lengths; all leaves are at
 * the same depth.
 *
 * Each leaf is a small gap buffer: its text is `head + tail`, split where it was last edited.
 * V8 strings are immutable, and `t.slice(0, p) + s + t.slice(p)` copies the whole chunk on
 * the next edit (the concatenation is a cons string that must be flattened before it can be
 * sliced or read). Typing at the gap only appends to `head` (a cons string, no copy) and
 * reading next to the gap reads `tail`; the chunk is copied only when the gap moves.
 */
import { checkApplies } from './apply.js';
import type { Operation } from './operation.js';

/** Largest chunk a leaf holds, in code units. */
const LEAF_MAX = 512;
/** Most children a branch holds. */
const BRANCH_MAX = 32;

class Leaf {
  readonly leaf = true;
  /** The text before the gap. */
  head: string;
  /** The text after the gap. */
  tail = '';

  constructor(
    public length: number,
    text: string,
  ) {
    this.head = text;
  }

  /** The whole chunk. */
  get text(): string {
    return this.tail.length === 0 ? this.head : this.head + this.tail;
  }

  set text(value: string) {
    this.head = value;
    this.tail = '';
  }

  /** Moves the gap to `at` (0 ≤ at ≤ length). */
  gap(at: number): void {
    const head = this.head;
    if (at === head.length) return;
    const all = this.tail.length === 0 ? head : head + this.tail;
    this.head = all.slice(0, at);
    this.tail = all.slice(at);
  }
}

interface Branch {
  leaf: false;
  length: number;
  children: Node[];
}

type Node = Leaf | Branch;

function makeLeaves(text: string): Leaf[] {
  const leaves: Leaf[] = [];
  const size = LEAF_MAX >> 1;
  for (let i = 0; i < text.length; i += size) {
    const chunk = text.slice(i, i + size);
    leaves.push(new Leaf(chunk.length, chunk));
  }
  return leaves;
}

function makeBranches(nodes: Node[]): Branch[] {
  const out: Branch[] = [];
  const size = BRANCH_MAX >> 1;
  for (let i = 0; i < nodes.length; i += size) {
    const children = nodes.slice(i, i + size);
    let length = 0;
    for (const c of children) length += c.length;
    out.push({ leaf: false, length, children });
  }
  return out;
}

/** Inserts into `node`; returns the siblings to add after it when it had to split. */
function insertAt(node: Node, pos: number, text: string): Node[] | undefined {
  node.length += text.length;
  if (node.leaf) {
    const t = node.text;
    const next = pos === t.length ? t + text : t.slice(0, pos) + text + t.slice(pos);
    if (next.length <= LEAF_MAX) {
      node.text = next;
      return undefined;
    }
    const [first, ...rest] = makeLeaves(next);
    node.text = (first as Leaf).text;
    node.length = node.text.length;
    return rest;
  }
  const children = node.children;
  let i = 0;
  let child = children[0] as Node;
  while (pos > child.length && i + 1 < children.length) {
    pos -= child.length;
    child = children[++i] as Node;
  }
  const extra = insertAt(child, pos, text);
  if (extra === undefined) return undefined;
  children.splice(i + 1, 0, ...extra);
  if (children.length <= BRANCH_MAX) return undefined;
  const [first, ...rest] = makeBranches(children);
  node.children = (first as Branch).children;
  node.length = (first as Branch).length;
  return rest;
}

/** Deletes `count` code units at `pos` inside `node`, dropping children that become empty. */
function deleteAt(node: Node, pos: number, count: number): void {
  node.length -= count;
  if (node.leaf) {
    node.text = node.text.slice(0, pos) + node.text.slice(pos + count);
    return;
  }
  const children = node.children;
  let i = 0;
  while (count > 0 && i < children.length) {
    const child = children[i] as Node;
    if (pos >= child.length) {
      pos -= child.length;
      i++;
      continue;
    }
    const n = Math.min(count, child.length - pos);
    if (n === child.length) {
      children.splice(i, 1);
    } else {
      deleteAt(child, pos, n);
      i++;
    }
    count -= n;
    pos = 0;
  }
}

/** Pushes the text of every leaf under `node`, in order (each leaf's two halves, unjoined). */
/** Pushes to `out` the text of `node` between `from` and `to` (offsets within it). */
function collectRange(node: Node, from: number, to: number, out: string[]): void {
  if (node.leaf) {
    const split = node.head.length;
    if (from < split) out.push(node.head.slice(from, Math.min(to, split)));
    if (to > split) out.push(node.tail.slice(Math.max(0, from - split), to - split));
    return;
  }
  let start = 0;
  for (const c of node.children) {
    const end = start + c.length;
    if (end > from && start < to) collectRange(c, Math.max(0, from - start), Math.min(c.length, to - start), out);
    if (end >= to) return;
    start = end;
  }
}

function collect(node: Node, out: string[]): void {
  if (node.leaf) {
    out.push(node.head);
    if (node.tail.length > 0) out.push(node.tail);
  } else {
    for (const c of node.children) collect(c, out);
  }
}

/**
 * A mutable UTF-16 text with logarithmic-cost edits. Callers validate positions.
 *
 * Edits cluster: a typist inserts at p, p + 1, p + 2, …, and the sequencer reads the code
 * units around an op's boundaries just before editing there. So the rope remembers the leaf
 * it last descended to (its start offset and its ancestors): a read or an edit that falls in
 * that leaf and changes no tree structure (no split, no emptied leaf) skips the descent and
 * only adds the length change to the ancestors' cached lengths. Every other edit takes the
 * full path and forgets the remembered leaf, so the cache can never outlive the tree shape it
 * describes.
 */
export class Rope {
  private root: Node;
  /** The leaf of the last descent, or undefined after any structural change. */
  private hot: Leaf | undefined = undefined;
  /** Position of `hot`'s first code unit. */
  private hotStart = 0;
  /** hotPath[0 … hotDepth - 1]: the branches from the root down to `hot`'s parent. */
  private readonly hotPath: Branch[] = [];
  private hotDepth = 0;

  /** Creates a rope holding `text`. */
  constructor(text = '') {
    let level: Node[] = makeLeaves(text);
    while (level.length > 1) level = makeBranches(level);
    this.root = level[0] ?? new Leaf(0, '');
  }

  /** Length in UTF-16 code units. */
  get length(): number {
    return this.root.length;
  }

  /**
   * Finds the leaf holding `pos` and remembers it. `atEnd`: a position on the boundary of two
   * leaves goes to the end of the left one (for inserts), else to the start of the right one.
   * `pos` must be in 0..length (0..length-1 unless `atEnd`).
   */
  private seek(pos: number, atEnd: boolean): Leaf {
    // Overwritten in place, never truncated: setting an array's length to 0 frees its storage.
    const path = this.hotPath;
    let depth = 0;
    let node = this.root;
    let start = 0;
    while (!node.leaf) {
      path[depth++] = node;
      const children = node.children;
      const last = children.length - 1;
      let i = 0;
      let child = children[0] as Node;
      let rest = pos - start;
      while (i < last && (atEnd ? rest > child.length : rest >= child.length)) {
        rest -= child.length;
        start += child.length;
        child = children[++i] as Node;
      }
      node = child;
    }
    this.hot = node;
    this.hotStart = start;
    this.hotDepth = depth;
    return node;
  }

  /** Adds `delta` to the cached length of every ancestor of the remembered leaf. */
  private grow(delta: number): void {
    const path = this.hotPath;
    for (let i = 0; i < this.hotDepth; i++) (path[i] as Branch).length += delta;
  }

  /** Inserts `text` at `pos` (0 ≤ pos ≤ length). */
  insert(pos: number, text: string): void {
    const n = text.length;
    if (n === 0) return;
    let leaf = this.hot;
    if (leaf === undefined || pos < this.hotStart || pos > this.hotStart + leaf.length) {
      leaf = this.seek(pos, true);
    }
    if (leaf.length + n <= LEAF_MAX) {
      leaf.gap(pos - this.hotStart);
      leaf.head += text;
      leaf.length += n;
      this.grow(n);
      return;
    }
    this.hot = undefined;
    const extra = insertAt(this.root, pos, text);
    if (extra !== undefined) {
      let level: Node[] = [this.root, ...extra];
      while (level.length > 1) level = makeBranches(level);
      this.root = level[0] as Node;
    }
  }

  /** Deletes `count` code units at `pos` (pos + count ≤ length). */
  delete(pos: number, count: number): void {
    if (count === 0) return;
    let leaf = this.hot;
    if (leaf === undefined || pos < this.hotStart || pos >= this.hotStart + leaf.length) {
      leaf = this.seek(pos, false);
    }
    const at = pos - this.hotStart;
    // Inside one leaf that keeps at least one code unit: no child disappears.
    if (at + count <= leaf.length && count < leaf.length) {
      const head = leaf.head;
      if (at + count === head.length) {
        leaf.head = head.slice(0, at); // backspace at the gap
      } else {
        leaf.gap(at);
        leaf.tail = leaf.tail.slice(count); // forward delete at the gap
      }
      leaf.length -= count;
      this.grow(-count);
      return;
    }
    this.hot = undefined;
    deleteAt(this.root, pos, count);
    let root = this.root;
    while (!root.leaf && root.children.length <= 1) {
      root = root.children[0] ?? new Leaf(0, '');
    }
    this.root = root;
  }

  /** The UTF-16 code unit at `pos`, or NaN outside the text (as String#charCodeAt). */
  charCodeAt(pos: number): number {
    if (pos < 0 || pos >= this.root.length) return NaN;
    let leaf = this.hot;
    if (leaf === undefined || pos < this.hotStart || pos >= this.hotStart + leaf.length) {
      leaf = this.seek(pos, false);
    }
    const at = pos - this.hotStart;
    const head = leaf.head;
    return at < head.length ? head.charCodeAt(at) : leaf.tail.charCodeAt(at - head.length);
  }

  /**
   * The text from `from` to `to` (as String#slice for 0 ≤ from ≤ to ≤ length; callers
   * validate). O(log n + leaves touched + to − from): never the whole text.
   */
  slice(from: number, to: number): string {
    if (from >= to) return '';
    const parts: string[] = [];
    collectRange(this.root, from, to, parts);
    return parts.join('');
  }

  /** The whole text. Linear in its length. */
  toString(): string {
    const parts: string[] = [];
    collect(this.root, parts);
    return parts.join('');
  }
}

/**
 * Applies `op` to `rope` in place: the rope becomes `apply(rope.toString(), op)`.
 *
 * Contract: `op` is valid, its base length equals `rope.length` and no boundary splits a
 * surrogate pair; otherwise throws InvalidOperationError and the rope is unchanged.
 * Time: O(k log n) for an op of k components on a rope of n code units, plus the inserted
 * text; the rope's text is never copied or joined.
 */
export function applyToRope(rope: Rope, op: Operation): void {
  checkApplies(rope, op);
  let pos = 0;
  for (const c of op) {
    if (typeof c === 'string') {
      rope.insert(pos, c);
      pos += c.length;
    } else if (c > 0) pos += c;
    else rope.delete(pos, -c);
  }
}

/**
 * The texts `op` deletes from `rope`, in order: what {@link invertWithDeleted} needs to undo
 * `op` once applied. Read before applying `op`; `op` must fit the rope (unchecked here).
 * Time: linear in the components and the deleted length, O(log n) per delete; the rope's text
 * is never joined, and an op that deletes nothing allocates nothing.
 */
export function deletedFromRope(rope: Rope, op: Operation): readonly string[] {
  let out: string[] | undefined;
  let pos = 0;
  for (const c of op) {
    if (typeof c === 'string') continue;
    if (c > 0) pos += c;
    else {
      (out ??= []).push(rope.slice(pos, pos - c));
      pos -= c;
    }
  }
  return out ?? NOTHING_DELETED;
}

/** What {@link deletedFromRope} answers for an op that deletes nothing: one shared empty list. */
const NOTHING_DELETED: readonly string[] = Object.freeze([]);
