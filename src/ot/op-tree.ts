/**
 * OpTree: one large operation held in a balanced search tree of its components, so that small
 * operations compose into it and transform against it in time logarithmic in its size.
 *
 * WHY
 * A client offline for hours holds a pending operation of tens of thousands of components. With
 * the plain functions every keystroke is `compose(pending, keystroke)` and every remote op costs
 * `transform(pending, remote, ·)` twice: each linear in the pending op, so a session is quadratic.
 * The server has the mirror problem when it rebases a large late op over thousands of small
 * history ops one at a time. An OpTree keeps the large op and edits it in place.
 *
 * DESIGN
 * The components of the canonical form of the operation are the nodes of a treap (a binary search
 * tree ordered by component index, heap-ordered by random priorities, so its expected depth is
 * O(log n)). Every node carries the sums of its subtree: base length (retains + deletes), target
 * length (retains + inserted code units) and component count. That lets a split descend by base
 * position, by target position or by index in O(log n); a component straddling the split point
 * (a retain, a delete, or an inserted string) is cut in two.
 *
 * A small operation is read gap by gap, a gap being what a canonical op holds between two
 * retains: at most one insert followed by at most one delete. For each gap the tree is split into
 * the part before the gap (kept as is), the part the gap deletes (which the gap replaces), and the
 * rest; the pieces are then joined back in order. Retains of the small op cost nothing, so the
 * work is O(log n) per gap plus, for transform only, the components inside the deleted range (d),
 * whose inserts survive and which the rebased small op must step over one by one. Composing a
 * delete over any number of components replaces them with one delete node in O(log n).
 *
 * Transform, gap by gap (other's gap at base position p inserts i and deletes base [p, q)):
 * what this op holds there is x, its insert at p (in canonical form an insert only ever sits at
 * the start of a gap, right after a retain), then its components over [p, q), ending before its
 * insert at q. In this op's result they become x and a retain of i's length, x first iff side is
 * 'left' (transform's tie rule), then the text of this op's inserts strictly inside, as one
 * insert; its retains and deletes there vanish. The returned op holds i and a retain of x's
 * length in the opposite order, then, over the range, a delete for each retain of this op and a
 * retain for each of its inserts. Between gaps, this op is unchanged and the returned op retains
 * its target length, read off the subtree sums. Which side of a split gets the zero-width
 * components at the split point (inserts when splitting by base, deletes by target) is chosen per
 * split so that x lands in the gap and not before it.
 *
 * The tree is kept in canonical form at all times. Both inputs of a join are canonical, and
 * canonical form is a property of adjacent pairs (no two of one kind, no delete before an insert),
 * so only the pair at the seam can break it: two of one kind are merged into one node, and a
 * delete before an insert is repaired by re-normalizing the last three components of the left
 * side with the first three of the right (any three adjacent canonical components include a
 * retain, which fences the repair in). Hence `toOperation()` is a plain in-order walk.
 *
 * Priorities come from a fixed-seed xorshift generator: shapes, and so timings, are reproducible;
 * results never depend on shapes.
 *
 * LAWS (T an OpTree, op = T.toOperation() before the call, a ≡ b meaning equal as JSON)
 *   OpTree.from(x).toOperation()   ≡ normalize(x)
 *   T.size = op.length, T.baseLength = baseLength(op), T.targetLength = targetLength(op)
 *   after T.composeWith(b):         T.toOperation() ≡ compose(op, b)
 *   r = T.transformAgainst(o, side): T.toOperation() ≡ transform(op, o, side)
 *                                    r ≡ transform(o, op, opposite(side))
 *   T.transformOther(o, side)       ≡ transform(o, op, side), T unchanged
 * Every method that throws throws what the plain function throws (same InvalidOperationError
 * code) and leaves the tree unchanged: the small operation is validated in full before any
 * mutation.
 *
 * COMPLEXITY (n = components of the tree, s = components of the small op, d = components of the
 * tree inside the small op's deletes)
 *   from O(n) after validation and normalization; toOperation O(n); getters O(1);
 *   composeWith O(s · log n); transformAgainst and transformOther O(s · log n + d).
 *   Inserted strings are cut and concatenated at edit points, costing up to the length of the
 *   one inserted string being cut (the plain functions copy such a string too). Memory O(n).
 */
import { InvalidOperationError, OperationErrorCode, describeValue } from './errors.js';
import {
  type Component,
  type Operation,
  checkOperation,
  isHighSurrogate,
  normalize,
  pushDelete,
  pushInsert,
  pushRetain,
} from './operation.js';
import type { Side } from './transform.js';

// ---------------------------------------------------------------------------------------------
// Treap nodes

let seed = 0x2545f491;

/** xorshift32: a fixed-seed priority stream (results never depend on it, only tree shapes). */
function nextPriority(): number {
  let x = seed;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  seed = x >>> 0;
  return seed;
}

class Node {
  /** The component; a retain, insert or delete, never zero or empty. */
  c: Component;
  readonly pri: number = nextPriority();
  l: Node | null = null;
  r: Node | null = null;
  /** Base length of the subtree: retains + deletes. */
  b: number;
  /** Target length of the subtree: retains + inserted code units. */
  t: number;
  /** Components in the subtree. */
  n = 1;

  constructor(c: Component) {
    this.c = c;
    if (typeof c === 'string') {
      this.b = 0;
      this.t = c.length;
    } else if (c > 0) {
      this.b = c;
      this.t = c;
    } else {
      this.b = -c;
      this.t = 0;
    }
  }
}

const RETAIN = 0;
const INSERT = 1;
const DELETE = 2;

function kind(c: Component): number {
  return typeof c === 'string' ? INSERT : c > 0 ? RETAIN : DELETE;
}

/** Recomputes x's sums from its component and children; returns x. */
function pull(x: Node): Node {
  const c = x.c;
  let b: number;
  let t: number;
  if (typeof c === 'string') {
    b = 0;
    t = c.length;
  } else if (c > 0) {
    b = c;
    t = c;
  } else {
    b = -c;
    t = 0;
  }
  let n = 1;
  const l = x.l;
  if (l !== null) {
    b += l.b;
    t += l.t;
    n += l.n;
  }
  const r = x.r;
  if (r !== null) {
    b += r.b;
    t += r.t;
    n += r.n;
  }
  x.b = b;
  x.t = t;
  x.n = n;
  return x;
}

/** Concatenates two treaps (every component of a before every one of b). No canonical repair. */
function merge(a: Node | null, b: Node | null): Node | null {
  if (a === null) return b;
  if (b === null) return a;
  if (a.pri >= b.pri) {
    a.r = merge(a.r, b);
    return pull(a);
  }
  b.l = merge(a, b.l);
  return pull(b);
}

// The split functions return their two halves here (no tuple allocated per level).
let sL: Node | null = null;
let sR: Node | null = null;

/**
 * Splits x by base position: sL gets the components covering base [0, pos), sR the rest. A
 * retain or delete straddling pos is cut in two. Inserts (zero base width) exactly at pos go to
 * sL if zeroLeft, else to sR. Destroys x.
 */
function splitBase(x: Node | null, pos: number, zeroLeft: boolean): void {
  if (x === null) {
    sL = sR = null;
    return;
  }
  if (pos > x.b || (pos === x.b && zeroLeft)) {
    sL = x;
    sR = null;
    return;
  }
  if (pos === 0 && !zeroLeft) {
    sL = null;
    sR = x;
    return;
  }
  const l = x.l;
  const lb = l === null ? 0 : l.b;
  const c = x.c;
  if (typeof c === 'string') {
    if (lb < pos || (lb === pos && zeroLeft)) {
      splitBase(x.r, pos - lb, zeroLeft);
      x.r = sL;
      sL = pull(x);
    } else {
      splitBase(l, pos, zeroLeft);
      x.l = sR;
      sR = pull(x);
    }
    return;
  }
  const w = c > 0 ? c : -c;
  if (lb + w <= pos) {
    splitBase(x.r, pos - lb - w, zeroLeft);
    x.r = sL;
    sL = pull(x);
  } else if (lb >= pos) {
    splitBase(l, pos, zeroLeft);
    x.l = sR;
    sR = pull(x);
  } else {
    const k = pos - lb;
    const right = x.r;
    x.c = c > 0 ? k : -k;
    x.r = null;
    sR = merge(new Node(c > 0 ? w - k : k - w), right);
    sL = pull(x);
  }
}

/**
 * Splits x by target position: sL gets the components covering target [0, pos), sR the rest. A
 * retain or inserted string straddling pos is cut in two. Deletes (zero target width) exactly at
 * pos go to sL if zeroLeft, else to sR. Destroys x.
 */
function splitTarget(x: Node | null, pos: number, zeroLeft: boolean): void {
  if (x === null) {
    sL = sR = null;
    return;
  }
  if (pos > x.t || (pos === x.t && zeroLeft)) {
    sL = x;
    sR = null;
    return;
  }
  if (pos === 0 && !zeroLeft) {
    sL = null;
    sR = x;
    return;
  }
  const l = x.l;
  const lt = l === null ? 0 : l.t;
  const c = x.c;
  const w = typeof c === 'string' ? c.length : c > 0 ? c : 0;
  const left = w === 0 ? lt < pos || (lt === pos && zeroLeft) : lt + w <= pos;
  if (left) {
    splitTarget(x.r, pos - lt - w, zeroLeft);
    x.r = sL;
    sL = pull(x);
  } else if (w === 0 || lt >= pos) {
    splitTarget(l, pos, zeroLeft);
    x.l = sR;
    sR = pull(x);
  } else {
    const k = pos - lt;
    const right = x.r;
    let tail: Component;
    if (typeof c === 'string') {
      x.c = c.slice(0, k);
      tail = c.slice(k);
    } else {
      x.c = k;
      tail = w - k;
    }
    x.r = null;
    sR = merge(new Node(tail), right);
    sL = pull(x);
  }
}

/** Splits x by index: sL gets the first k components, sR the rest. Destroys x. */
function splitCount(x: Node | null, k: number): void {
  if (x === null || k >= x.n) {
    sL = x;
    sR = null;
    return;
  }
  if (k <= 0) {
    sL = null;
    sR = x;
    return;
  }
  const l = x.l;
  const ln = l === null ? 0 : l.n;
  if (k <= ln) {
    splitCount(l, k);
    x.l = sR;
    sR = pull(x);
  } else {
    splitCount(x.r, k - ln - 1);
    x.r = sL;
    sL = pull(x);
  }
}

function firstNode(x: Node): Node {
  while (x.l !== null) x = x.l;
  return x;
}

function lastNode(x: Node): Node {
  while (x.r !== null) x = x.r;
  return x;
}

/** Replaces the last component of x by c (same base/target change is recomputed up the spine). */
function setLast(x: Node, c: Component): void {
  if (x.r !== null) setLast(x.r, c);
  else x.c = c;
  pull(x);
}

/** Removes the first component of x; returns the new root. */
function dropFirst(x: Node): Node | null {
  if (x.l === null) return x.r;
  x.l = dropFirst(x.l);
  return pull(x);
}

/** Pushes the components of x, in order, onto `out`, keeping it canonical. */
function pushAll(x: Node | null, out: Component[]): void {
  const stack: Node[] = [];
  while (x !== null || stack.length > 0) {
    while (x !== null) {
      stack.push(x);
      x = x.l;
    }
    const y = stack.pop() as Node;
    const c = y.c;
    if (typeof c === 'string') pushInsert(out, c);
    else if (c > 0) pushRetain(out, c);
    else pushDelete(out, -c);
    x = y.r;
  }
}

/** Appends the components of x, in order, to out. */
function collect(x: Node | null, out: Component[]): void {
  const stack: Node[] = [];
  while (x !== null || stack.length > 0) {
    while (x !== null) {
      stack.push(x);
      x = x.l;
    }
    const y = stack.pop() as Node;
    out.push(y.c);
    x = y.r;
  }
}

/** Builds a treap of the given components, in order, in O(n) (Cartesian-tree construction). */
function build(comps: readonly Component[]): Node | null {
  const stack: Node[] = [];
  for (let i = 0; i < comps.length; i++) {
    const node = new Node(comps[i] as Component);
    let below: Node | null = null;
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as Node;
      if (top.pri >= node.pri) break;
      stack.pop();
      below = pull(top);
    }
    node.l = below;
    if (stack.length > 0) (stack[stack.length - 1] as Node).r = node;
    stack.push(node);
  }
  for (let i = stack.length - 1; i >= 0; i--) pull(stack[i] as Node);
  return stack.length > 0 ? (stack[0] as Node) : null;
}

/**
 * Concatenates two canonical treaps into one canonical treap. Only the seam can break canonical
 * form (see the file header): two components of one kind are merged; a delete followed by an
 * insert is repaired by re-normalizing up to three components on each side of the seam.
 */
function join(a: Node | null, b: Node | null): Node | null {
  if (a === null) return b;
  if (b === null) return a;
  const ca = lastNode(a).c;
  const cb = firstNode(b).c;
  const ka = kind(ca);
  const kb = kind(cb);
  if (ka !== kb) {
    if (ka === DELETE && kb === INSERT) return joinWindow(a, b);
    return merge(a, b);
  }
  setLast(a, ka === INSERT ? (ca as string) + (cb as string) : (ca as number) + (cb as number));
  return merge(a, dropFirst(b));
}

function joinWindow(a: Node, b: Node): Node | null {
  splitCount(a, a.n - 3);
  const a1 = sL;
  const a2 = sR;
  splitCount(b, 3);
  const b1 = sL;
  const b2 = sR;
  const w: Component[] = [];
  pushAll(a2, w);
  pushAll(b1, w);
  return merge(merge(a1, build(w)), b2);
}

/** Joins a single new component to the end of a canonical treap. */
function append(a: Node | null, c: Component): Node | null {
  return join(a, new Node(c));
}

// ---------------------------------------------------------------------------------------------
// Read-only queries

/** Target length of the components before base position pos (inserts at pos excluded). */
function targetBefore(x: Node | null, pos: number): number {
  let acc = 0;
  while (x !== null) {
    const l = x.l;
    const lb = l === null ? 0 : l.b;
    if (pos <= lb) {
      x = l;
      continue;
    }
    const lt = l === null ? 0 : l.t;
    const c = x.c;
    if (typeof c === 'string') {
      acc += lt + c.length;
      pos -= lb;
      x = x.r;
      continue;
    }
    const w = c > 0 ? c : -c;
    if (lb + w <= pos) {
      acc += lt + (c > 0 ? c : 0);
      pos -= lb + w;
      x = x.r;
      continue;
    }
    return acc + lt + (c > 0 ? pos - lb : 0);
  }
  return acc;
}

/**
 * Appends to out, in order and clipped, the components a gap of the small op covers when it
 * deletes base [p, q): retains and deletes overlapping it, inserts at p and strictly inside (not
 * those at q). With p === q (a gap that only inserts), just the insert at p, if any.
 * `off` is the base position where x's subtree starts.
 */
function collectRange(x: Node | null, off: number, p: number, q: number, out: Component[]): void {
  if (x === null) return;
  const l = x.l;
  const lb = off + (l === null ? 0 : l.b);
  const c = x.c;
  const w = typeof c === 'string' ? 0 : c > 0 ? c : -c;
  const end = lb + w;
  const point = p === q;
  if (l !== null && lb >= p && (off < q || (point && off === q))) collectRange(l, off, p, q, out);
  if (typeof c === 'string') {
    if (point ? lb === p : lb >= p && lb < q) out.push(c);
  } else {
    const s = lb > p ? lb : p;
    const e = end < q ? end : q;
    if (s < e) out.push(c > 0 ? e - s : s - e);
  }
  const r = x.r;
  if (r !== null && off + x.b >= p && (end < q || (point && end === q))) {
    collectRange(r, end, p, q, out);
  }
}

/** True if target position pos falls strictly inside a surrogate pair of an inserted string. */
function cutsInsertedPair(x: Node | null, pos: number): boolean {
  while (x !== null) {
    const l = x.l;
    const lt = l === null ? 0 : l.t;
    if (pos <= lt) {
      if (pos === lt) return false;
      x = l;
      continue;
    }
    const c = x.c;
    const w = typeof c === 'string' ? c.length : c > 0 ? c : 0;
    if (pos >= lt + w) {
      if (pos === lt + w) return false;
      pos -= lt + w;
      x = x.r;
      continue;
    }
    return typeof c === 'string' && isHighSurrogate(c.charCodeAt(pos - lt - 1));
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Shared pieces of the algorithms

function checkSide(side: unknown): asserts side is Side {
  if (side !== 'left' && side !== 'right') {
    throw new InvalidOperationError(
      OperationErrorCode.BadArgument,
      `side must be 'left' or 'right', got ${describeValue(side)}`,
    );
  }
}

/**
 * Reads canonical `op` gap by gap (see the file header): calls `visit(pos, ins, del)` for each,
 * in order, where at base position `pos` the op inserts `ins` (if any) and then deletes `del`
 * code units (0 for a pure insert). Retains between gaps cost nothing.
 */
function forEachGap(op: Operation, visit: (pos: number, ins: string | undefined, del: number) => void): void {
  let pos = 0;
  for (let i = 0; i < op.length; ) {
    const c = op[i] as Component;
    if (typeof c === 'number' && c > 0) {
      pos += c;
      i++;
      continue;
    }
    let ins: string | undefined;
    let del = 0;
    if (typeof c === 'string') {
      ins = c;
      const next = op[++i];
      if (typeof next === 'number' && next < 0) {
        del = -next;
        i++;
      }
    } else {
      del = -c;
      i++;
    }
    visit(pos, ins, del);
    pos += del;
  }
}

/**
 * `other` in canonical form after the checks {@link transform} makes: a valid op, a valid
 * `side`, the base length `base`. Throws InvalidOperationError as transform does, naming the
 * lengths in transform's argument order (`treeFirst`: the tree's op is transform's first).
 */
function transformInput(other: Operation, side: unknown, base: number, treeFirst: boolean): Operation {
  const lengths = checkOperation(other);
  checkSide(side);
  if (lengths.base !== base) {
    const [a, b] = treeFirst ? [base, lengths.base] : [lengths.base, base];
    throw new InvalidOperationError(OperationErrorCode.LengthMismatch, `cannot transform: the operations apply to lengths ${a} and ${b}`);
  }
  return lengths.canonical ? other : normalize(other);
}

/**
 * The rebased small op's part for one gap: `ins` is what the gap inserts at base position p,
 * `m` the tree's components the gap covers (collectRange). The tree's insert at p comes first iff
 * treeFirst. Inside the deleted range, the tree's retained text is deleted and its inserted text
 * retained. Returns the tree's inserted text strictly inside the range (after the one at p).
 */
function rebaseGap(
  out: Component[],
  ins: string | undefined,
  m: readonly Component[],
  treeFirst: boolean,
): string {
  let k = 0;
  const x = m[0];
  if (typeof x === 'string') k = 1;
  if (treeFirst) {
    if (k === 1) pushRetain(out, (x as string).length);
    if (ins !== undefined) pushInsert(out, ins);
  } else {
    if (ins !== undefined) pushInsert(out, ins);
    if (k === 1) pushRetain(out, (x as string).length);
  }
  let inner = '';
  for (; k < m.length; k++) {
    const c = m[k] as Component;
    if (typeof c === 'string') {
      pushRetain(out, c.length);
      inner += c;
    } else if (c > 0) pushDelete(out, c);
  }
  return inner;
}

// ---------------------------------------------------------------------------------------------

/**
 * Components past which holding an operation in an {@link OpTree} pays for itself when many
 * small operations are composed into it or transformed against it (building the tree costs
 * about one plain pass; below this size the plain functions win).
 */
export const OP_TREE_THRESHOLD = 256;

/**
 * A large text operation held in a balanced tree of its components (see the file header), for
 * composing small operations into it and transforming small operations against it in time
 * logarithmic in its size. Always holds a valid operation in canonical form.
 */
export class OpTree {
  private root: Node | null;

  private constructor(root: Node | null) {
    this.root = root;
  }

  /**
   * Builds a tree holding `op` (any valid operation; it is held in canonical form).
   * Throws {@link InvalidOperationError} as `checkOperation` does for an invalid `op`.
   * Law: OpTree.from(op).toOperation() ≡ normalize(op). Time: O(n).
   */
  static from(op: Operation): OpTree {
    const { canonical } = checkOperation(op);
    return new OpTree(build(canonical ? op : normalize(op)));
  }

  /** Base length of the held operation: the length of the document it applies to. O(1). */
  get baseLength(): number {
    return this.root === null ? 0 : this.root.b;
  }

  /** Target length of the held operation: the length of the document it produces. O(1). */
  get targetLength(): number {
    return this.root === null ? 0 : this.root.t;
  }

  /** Number of components of the held operation (in canonical form). O(1). */
  get size(): number {
    return this.root === null ? 0 : this.root.n;
  }

  /**
   * The held operation as a new array, in canonical form.
   * Law: equals normalize(the operation held). Time: O(n).
   */
  toOperation(): Component[] {
    const out: Component[] = [];
    collect(this.root, out);
    return out;
  }

  /**
   * In place: this := compose(this, small), where `small` applies to this operation's target.
   *
   * Contract: exactly as {@link compose}(this.toOperation(), small): throws
   * {@link InvalidOperationError} for an invalid `small`, with `length-mismatch` unless its base
   * length equals this.targetLength, and with `split-surrogate` if one of its retains or deletes
   * ends inside a surrogate pair this operation inserts (unless followed by one of the same kind).
   * On a throw the tree is unchanged.
   * Law: after T.composeWith(b), T.toOperation() ≡ compose(op, b), op being T's operation before.
   * Time: O(s · log n): each gap of `small` costs O(log n) however many components it deletes.
   */
  composeWith(small: Operation): void {
    const lengths = checkOperation(small);
    const target = this.targetLength;
    if (lengths.base !== target) {
      throw new InvalidOperationError(
        OperationErrorCode.LengthMismatch,
        `cannot compose: the first operation produces length ${target} but the second applies to length ${lengths.base}`,
      );
    }
    // compose's surrogate rule, checked against the original (not normalized) small op.
    let end = 0;
    for (let i = 0; i < small.length; i++) {
      const c = small[i] as Component;
      if (typeof c === 'string') continue;
      end += c > 0 ? c : -c;
      const next = small[i + 1];
      if (typeof next === 'number' && next > 0 === c > 0) continue;
      if (cutsInsertedPair(this.root, end)) {
        throw new InvalidOperationError(
          OperationErrorCode.SplitSurrogate,
          `cannot compose: component ${i} of the second operation ends at position ${end}, inside a surrogate pair the first operation inserts`,
        );
      }
    }
    let rest = this.root;
    let done: Node | null = null;
    let at = 0; // target position of this op where `rest` starts
    // Gap positions are in the small op's base: this op's target.
    forEachGap(lengths.canonical ? small : normalize(small), (pos, ins, del) => {
      // Deletes of this op at the cut go right: the kept part then never ends with a delete.
      splitTarget(rest, pos - at, false);
      const keep = sL; // read both halves before join, which reuses sL and sR
      rest = sR;
      done = join(done, keep);
      let removed = 0;
      if (del > 0) {
        splitTarget(rest, del, true);
        removed = sL === null ? 0 : sL.b;
        rest = sR;
      }
      if (ins !== undefined) done = append(done, ins);
      if (removed > 0) done = append(done, -removed);
      at = pos + del;
    });
    this.root = join(done, rest);
    sL = sR = null; // drop references to discarded subtrees
  }

  /**
   * In place: this := transform(this, other, side); returns transform(other, this_before,
   * opposite side). Both results of one transform step, like ot.js's `transform(a, b)` pair.
   *
   * Contract: `other` is valid and has this op's base length, `side` is 'left' or 'right', else
   * throws {@link InvalidOperationError} with the code {@link transform} throws (and the tree is
   * unchanged). Where both insert at one position, this op's insert comes first iff side is
   * 'left', exactly as in transform.
   * Laws, with op the operation held before the call:
   *   T.toOperation() ≡ transform(op, other, side) after the call;
   *   the result ≡ transform(other, op, side === 'left' ? 'right' : 'left');
   *   so (TP1) op·result and other·T.toOperation() have the same effect.
   * Time: O(s · log n + d): d components inside other's deletes are visited (the result steps
   * over each of them).
   */
  transformAgainst(other: Operation, side: Side): Component[] {
    const o = transformInput(other, side, this.baseLength, true);
    const left = side === 'left';
    const out: Component[] = [];
    const m: Component[] = [];
    let rest = this.root;
    let done: Node | null = null;
    let at = 0; // base position of this op where `rest` starts
    forEachGap(o, (pos, ins, del) => {
      // Before the gap: this op unchanged; other' retains its target. Its insert at pos goes right.
      splitBase(rest, pos - at, false);
      const keep = sL;
      rest = sR;
      if (keep !== null && keep.t > 0) pushRetain(out, keep.t);
      done = join(done, keep);
      // The gap: this op's insert at pos, and with a delete, all up to (not with) the inserts at its end.
      if (del > 0) splitBase(rest, del, false);
      else splitBase(rest, 0, true);
      const gap = sL;
      rest = sR;
      m.length = 0;
      collect(gap, m);
      const inner = rebaseGap(out, ins, m, left);
      const x = m[0];
      if (left) {
        if (typeof x === 'string') done = append(done, x);
        if (ins !== undefined) done = append(done, ins.length);
        if (inner !== '') done = append(done, inner);
      } else {
        if (ins !== undefined) done = append(done, ins.length);
        const text = typeof x === 'string' ? x + inner : inner;
        if (text !== '') done = append(done, text);
      }
      at = pos + del;
    });
    if (rest !== null && rest.t > 0) pushRetain(out, rest.t);
    this.root = join(done, rest);
    sL = sR = null; // drop references to discarded subtrees
    return out;
  }

  /**
   * Read-only: returns transform(other, this.toOperation(), side), the small op `other` rebased
   * over the large op held here, which is not modified. For a server holding a large history op:
   * an incoming small op is rebased over it without O(n) work.
   *
   * Contract: as {@link transform}(other, op, side): throws {@link InvalidOperationError} with the
   * same code for an invalid `other` or `side` or a base length mismatch. Where both insert at
   * one position, other's insert comes first iff side is 'left'.
   * Law: T.transformOther(o, side) ≡ transform(o, T.toOperation(), side); and it equals what
   * T.transformAgainst(o, opposite(side)) would return.
   * Time: O(s · log n + d).
   */
  transformOther(other: Operation, side: Side): Component[] {
    const o = transformInput(other, side, this.baseLength, false);
    const treeFirst = side === 'right';
    const root = this.root;
    const out: Component[] = [];
    const m: Component[] = [];
    let cursor = 0; // target position of this op that `out` has covered
    forEachGap(o, (pos, ins, del) => {
      const before = targetBefore(root, pos);
      if (before > cursor) pushRetain(out, before - cursor);
      m.length = 0;
      collectRange(root, 0, pos, pos + del, m);
      rebaseGap(out, ins, m, treeFirst);
      cursor = before;
      for (const x of m) cursor += typeof x === 'string' ? x.length : x > 0 ? x : 0;
    });
    const total = this.targetLength;
    if (total > cursor) pushRetain(out, total - cursor);
    return out;
  }
}
