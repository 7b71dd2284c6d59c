/**
 * A submitted op being rebased over history, one history op at a time, history first at ties
 * (`transform(op, past, 'right')`): the server's one rule for late ops, used by the document
 * queue (`document-state.ts`) and by catch-ups (`catch-up.ts`).
 */
import { type Component, OP_TREE_THRESHOLD, OpTree, type Operation, transform } from '../ot/index.js';

/**
 * See the file comment. A large op rebased over more than one history op is held in an
 * {@link OpTree} meanwhile: each step then costs O(log n) in its n components instead of O(n),
 * with exactly the plain `transform`'s result.
 */
export class Rebasing {
  private op: Component[];
  private readonly tree: OpTree | undefined;

  /** Starts from `op` (not changed), to be rebased over about `steps` history ops. */
  constructor(op: Component[], steps: number) {
    this.op = op;
    this.tree = op.length > OP_TREE_THRESHOLD && steps > 1 ? OpTree.from(op) : undefined;
  }

  /** op := transform(op, past, 'right'). Throws InvalidOperationError as transform does (op unchanged). */
  over(past: Operation): void {
    if (this.tree === undefined) this.op = transform(this.op, past, 'right');
    else this.tree.transformAgainst(past, 'right');
  }

  /** The op rebased so far. O(n) for a tree; call it once, at the end. */
  result(): Component[] {
    return this.tree === undefined ? this.op : this.tree.toOperation();
  }
}
