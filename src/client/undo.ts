/**
 * Undo and redo of the user's own edits on a {@link CollaborativeDocument}, for any editor.
 *
 * Each local edit is recorded as the op that undoes it (its inverse, built from the edit and
 * the text its `change` event says it deleted: never from a copy of the document), and local
 * edits less than `groupInterval` apart join one step. Remote edits are
 * never undone: every stored op is transformed through each remote change as it arrives, so an
 * undo deletes what survives of the user's inserted text (never text others typed inside it)
 * and re-inserts the user's deleted text where it now belongs. A step whose text others have
 * already deleted becomes an op that changes nothing and is skipped, never an error. Undo and
 * redo are ordinary local edits: they go to the server like typing.
 *
 * The two stacks are sequences, as in ot.js: the top step applies to the current text, each
 * step below it to the text the steps above it produce. A remote op R on the current text is
 * rebased down a stack one step at a time (each step S, on the text R applies to):
 *
 *        S' = transform(S, R, 'left')        R' = transform(R, S, 'right')
 *              ┌────── S ──────▶
 *              │               │
 *              R               R'        (TP1: both paths give the same text)
 *              ▼               ▼
 *              └────── S' ─────▶
 *
 * and R' goes on to the next step down. Selections ride along: the one on S's base text is
 * mapped through R, the one on its target text through R'.
 */
import {
  type Component,
  type Operation,
  type SelectionRange,
  checkOperation,
  compose,
  isNoop,
  transform,
  transformSelection,
} from '../ot/index.js';
import { invertWithDeleted } from '../ot/apply.js';
import type { ChangeEvent, CollaborativeDocument } from './document.js';

/** Tunables of an {@link UndoManager}; every field has a default. */
export interface UndoManagerOptions {
  /**
   * Local edits less than this many ms after the previous one join its step (typing a word
   * is undone at once). 0: every edit is a step of its own. Default 500.
   */
  groupInterval?: number;
  /**
   * Most steps kept; the oldest are forgotten beyond it. Each remote edit is transformed
   * through every step kept. Default 200.
   */
  maxSteps?: number;
  /** The clock grouping reads, in ms. Default `Date.now`. */
  now?: () => number;
}

/** One undoable (or redoable) step. */
interface Step {
  /** Applies the step: an op on the text this step will be applied to. */
  op: Component[];
  /** The local selection on `op`'s base text, when the step was recorded. */
  selectionBefore: readonly SelectionRange[] | null;
  /** The local selection to restore once `op` is applied, on `op`'s target text. */
  selectionAfter: readonly SelectionRange[] | null;
}

/**
 * Undo and redo of one user's own edits on one document, with remote edits kept. Create it
 * once the document exists (before or after `ready`); local edits from then on are recorded.
 * Call {@link destroy} when done with it. Create it before any `change` listener that edits
 * the document in answer to a change: a change made from inside an earlier listener reaches
 * this one out of order, and it then forgets its steps (it never throws for it).
 *
 *   const history = new UndoManager(doc);
 *   doc.insert(0, 'hello');
 *   history.undo(); // 'hello' is gone, whatever others typed meanwhile stays
 *   history.redo(); // and back
 */
export class UndoManager {
  private readonly groupInterval: number;
  private readonly maxSteps: number;
  private readonly now: () => number;
  private readonly undoStack: Step[] = [];
  private readonly redoStack: Step[] = [];
  /** The length of the document's text as of the last change seen. */
  private length: number;
  /** When the last recorded local edit was made. */
  private lastEdit = -Infinity;
  /** Whether the top undo step may take in the next local edit (no undo, redo or clear since). */
  private open = false;
  /** While the manager itself applies an undo or a redo: the inverse of that edit, once made. */
  private applying: { inverse: Component[] | undefined } | undefined;
  private readonly unsubscribe: () => void;

  /**
   * Attaches to `doc`. Throws RangeError if `groupInterval` is negative or `maxSteps` is
   * not a positive integer.
   * @param doc the document whose local edits are recorded
   * @param options see {@link UndoManagerOptions}
   */
  constructor(
    private readonly doc: CollaborativeDocument,
    options: UndoManagerOptions = {},
  ) {
    this.groupInterval = options.groupInterval ?? 500;
    this.maxSteps = options.maxSteps ?? 200;
    this.now = options.now ?? Date.now;
    if (!(this.groupInterval >= 0) || !Number.isSafeInteger(this.maxSteps) || this.maxSteps < 1) {
      throw new RangeError(`groupInterval must be ≥ 0 and maxSteps a positive integer, got ${this.groupInterval} and ${this.maxSteps}`);
    }
    this.length = doc.text.length;
    this.unsubscribe = doc.on('change', (event) => this.onChange(event));
  }

  /** Whether there is a step to undo (it may turn out to change nothing: see {@link undo}). */
  get canUndo(): boolean {
    return this.undoStack.length > 0;
  }

  /** Whether there is an undone step to redo (it may turn out to change nothing: see {@link redo}). */
  get canRedo(): boolean {
    return this.redoStack.length > 0;
  }

  /**
   * Undoes the latest step of the user's own edits that still changes the text, as a local
   * edit (sent to the server like any other), and restores the local selection from before
   * that step, mapped through every edit since. Steps that others' edits have emptied (all
   * their text deleted) are dropped on the way.
   *
   * Returns the op applied to the local text, or null if there was nothing left to undo. Like
   * any local edit, its `change` event says `local: true`: an editor that applies only remote
   * changes applies this op itself, and takes the restored `doc.selection`. Throws what
   * `submit` throws (OtterError `closed`, `read-only`), with the step kept.
   */
  undo(): Component[] | null {
    return this.move(this.undoStack, this.redoStack);
  }

  /**
   * Redoes the latest undone step, as {@link undo} undoes one, and restores the selection
   * from after it. Any new local edit empties the redo stack. Returns the op applied, or null
   * if there was nothing left to redo; throws as {@link undo}.
   */
  redo(): Component[] | null {
    return this.move(this.redoStack, this.undoStack);
  }

  /**
   * Closes the current step: the next local edit starts a new one, however soon it comes.
   * Editors call it when the user moves the caret elsewhere, so typing in two places is two steps.
   */
  stopCapturing(): void {
    this.open = false;
  }

  /** Forgets every step, undoable and redoable. The next local edit starts a new step. */
  clear(): void {
    this.undoStack.length = 0;
    this.redoStack.length = 0;
    this.open = false;
  }

  /** Detaches from the document and forgets every step; the manager records nothing more. */
  destroy(): void {
    this.unsubscribe();
    this.clear();
  }

  /**
   * Applies the top step of `from` that changes the text, pushing its inverse onto `to`;
   * drops the steps on the way that change nothing.
   */
  private move(from: Step[], to: Step[]): Component[] | null {
    for (let step = from.pop(); step !== undefined; step = from.pop()) {
      if (isNoop(step.op)) continue;
      const applying: { inverse: Component[] | undefined } = { inverse: undefined };
      this.applying = applying;
      try {
        this.doc.submit(step.op);
      } catch (e) {
        from.push(step);
        throw e;
      } finally {
        this.applying = undefined;
      }
      // The document's `change` for the step gave its inverse, unless that change reached this
      // manager out of order (then every step was forgotten).
      const inverse = applying.inverse;
      if (inverse !== undefined) to.push({ op: inverse, selectionBefore: step.selectionAfter, selectionAfter: step.selectionBefore });
      this.open = false;
      if (step.selectionAfter !== null) this.doc.setSelection(step.selectionAfter);
      return step.op;
    }
    return null;
  }

  private onChange({ op, local, selectionBefore, deleted }: ChangeEvent): void {
    const { base, target } = checkOperation(op);
    const length = this.length;
    this.length = target;
    if (base !== length) {
      // A change made from inside another change listener reached this one out of order:
      // the recorded steps no longer fit the text, so they are forgotten.
      this.clear();
      this.length = this.doc.text.length;
      return;
    }
    if (!local) this.rebase(op);
    else if (this.applying !== undefined) this.applying.inverse = invertWithDeleted(op, deleted ?? []);
    else this.record(invertWithDeleted(op, deleted ?? []), selectionBefore ?? null);
  }

  /** Records a local edit, given by its inverse and the selection just before it. */
  private record(inverse: Component[], selectionBefore: readonly SelectionRange[] | null): void {
    const now = this.now();
    const top = this.undoStack[this.undoStack.length - 1];
    const selectionAfter = this.doc.selection;
    this.redoStack.length = 0;
    if (top !== undefined && this.open && now - this.lastEdit < this.groupInterval) {
      top.op = compose(inverse, top.op);
      top.selectionBefore = selectionAfter;
    } else {
      this.undoStack.push({ op: inverse, selectionBefore: selectionAfter, selectionAfter: selectionBefore });
      if (this.undoStack.length > this.maxSteps) this.undoStack.shift();
    }
    this.lastEdit = now;
    this.open = true;
  }

  /** Rebases both stacks onto a remote change `op` of the current text. */
  private rebase(op: Operation): void {
    for (const stack of [this.undoStack, this.redoStack]) {
      let remote: Operation = op;
      for (let i = stack.length - 1; i >= 0; i--) {
        const step = stack[i] as Step;
        const next = transform(remote, step.op, 'right');
        step.selectionBefore = mapSelection(step.selectionBefore, remote);
        step.op = transform(step.op, remote, 'left');
        step.selectionAfter = mapSelection(step.selectionAfter, next);
        remote = next;
      }
    }
  }
}

/** `selection` mapped through `op` (null stays null). */
function mapSelection(selection: readonly SelectionRange[] | null, op: Operation): readonly SelectionRange[] | null {
  return selection === null ? null : transformSelection(selection, op);
}
