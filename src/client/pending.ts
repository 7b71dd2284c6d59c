/**
 * A pending local op of the sync state machine (`sync.ts`): the op in flight or a buffered
 * one. Small ops are kept as arrays; once an op passes {@link OP_TREE_THRESHOLD} components it
 * moves into an {@link OpTree}, so that composing the next keystroke into it and transforming a
 * remote op against it cost O(log n) instead of O(n) — hours of offline typing stay as cheap
 * per keystroke as a minute of it. Every result is exactly the plain `compose`/`transform` result
 * (OpTree is property-tested equal, op for op).
 *
 * A PendingOp is mutable and owned by the sync state holding it: a transition of `sync.ts`
 * consumes the state it is given (it may update that state's pending ops in place), so a
 * caller keeps only the state a transition returns.
 */
import { type Component, OP_TREE_THRESHOLD, type Operation, OpTree, type Side, compose, isNoop, transform } from '../ot/index.js';
import { opLength } from '../protocol/limits.js';
import { NUMBER_COST, type OpBudget, opBytes } from './split.js';

function opposite(side: Side): Side {
  return side === 'left' ? 'right' : 'left';
}

/** See the file comment. */
export class PendingOp {
  private array: Component[] | undefined;
  private tree: OpTree | undefined;
  /** Upper bounds of the op's size by the budget's two measures (exact after a {@link fits} that measured). */
  private lengthBound: number;
  private bytesBound: number;

  /** Holds `op` (canonical; the PendingOp takes it over: the caller must not change it). */
  constructor(op: Component[]) {
    this.array = op;
    this.lengthBound = opLength(op);
    this.bytesBound = opBytes(op);
    if (op.length > OP_TREE_THRESHOLD) this.tree = OpTree.from(op);
  }

  /**
   * The op as an array, canonical. O(1) while unchanged since the last call; O(n) once after
   * a change to a large op. Do not change the array.
   */
  get op(): Component[] {
    this.array ??= (this.tree as OpTree).toOperation();
    return this.array;
  }

  /** Whether the op changes nothing. O(1). */
  get isNoop(): boolean {
    const tree = this.tree;
    if (tree === undefined) return isNoop(this.array as Component[]);
    return tree.size === 0 || (tree.size === 1 && tree.baseLength === tree.targetLength);
  }

  /**
   * Whether the op fits `budget` (see split.ts `fits`). O(1) while the running upper bounds of
   * its size are within the budget; otherwise it measures the op (O(n)) and the bounds become
   * exact, so the next measure waits until the op has grown by the slack left.
   */
  fits(budget: OpBudget): boolean {
    if (this.lengthBound > budget.maxLength || this.bytesBound > budget.maxBytes) {
      const op = this.op;
      this.lengthBound = opLength(op);
      this.bytesBound = opBytes(op);
    }
    return this.lengthBound <= budget.maxLength && this.bytesBound <= budget.maxBytes;
  }

  /** this := compose(this, small), `small` applying to this op's result. Throws as compose does. */
  composeWith(small: Operation): void {
    if (this.tree !== undefined) {
      this.tree.composeWith(small);
      this.array = undefined;
    } else {
      const op = compose(this.array as Component[], small);
      this.array = op;
      if (op.length > OP_TREE_THRESHOLD) this.tree = OpTree.from(op);
    }
    // compose keeps at most both ops' components and inserts, and each component of `small`
    // cuts at most one of this op's in two.
    this.lengthBound += opLength(small) + small.length;
    this.bytesBound += opBytes(small) + small.length * NUMBER_COST;
  }

  /**
   * this := transform(this, other, side), `other` being concurrent (same base); returns
   * transform(other, this as it was, the opposite side). Throws as transform does.
   */
  transformAgainst(other: Operation, side: Side): Component[] {
    let rebased: Component[];
    if (this.tree !== undefined) {
      rebased = this.tree.transformAgainst(other, side);
      this.array = undefined;
    } else {
      const before = this.array as Component[];
      rebased = transform(other, before, opposite(side));
      const op = transform(before, other, side);
      this.array = op;
      if (op.length > OP_TREE_THRESHOLD) this.tree = OpTree.from(op);
    }
    // transform keeps this op's inserted text and adds at most a retain per component of `other`.
    this.lengthBound += other.length + 1;
    this.bytesBound += (other.length + 1) * NUMBER_COST;
    return rebased;
  }
}
