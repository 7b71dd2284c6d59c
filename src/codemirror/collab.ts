/**
 * `otterCollab(doc)`: binds a CodeMirror 6 editor to a {@link CollaborativeDocument}.
 *
 * Invariant: between events, the editor's text equals `doc.text`, position for position.
 *   - The editor's own transactions become ops on the document (`doc.submit`), in order.
 *   - Every other change of the document (remote edits, undo and redo, edits the application
 *     makes through the document) becomes an editor transaction annotated {@link fromOtter},
 *     `Transaction.remote` for remote ones, and `Transaction.addToHistory` false: it is never
 *     sent back and never lands in CodeMirror's own history.
 *   - Once the server lowers the user's access (`revoked`), the editor becomes read-only.
 *   - An editor change the document refuses (read-only access, a closed document, a lone
 *     surrogate) is reported to `onError` and the editor is put back to the document's text.
 * The editor splits lines on "\n" only (`EditorState.lineSeparator`, at the highest
 * precedence), so "\r\n", a lone "\r" and U+2028 stay the text they are. The local selection
 * is shared as the document's presence; other people's are drawn with their name and colour.
 * Undo and redo (Mod-z, Mod-Shift-z, Mod-y) go through an {@link UndoManager}: only the user's
 * own edits are undone, whatever others typed since.
 */
import { type Extension, Annotation, Compartment, EditorState, Prec, Transaction } from '@codemirror/state';
import { type Command, type EditorView, type ViewUpdate, ViewPlugin, keymap } from '@codemirror/view';
import { type CollaborativeDocument, UndoManager, type UndoManagerOptions } from '../client/index.js';
import { type Component, checkOperation, fromDiff } from '../ot/index.js';
import { LINE_SEPARATOR, changesFromOp, opFromChanges, rangesFromSelection, selectionFromRanges } from './changes.js';
import { cursorsFromPresences, remoteCursors, setRemoteCursors } from './remote-cursors.js';

/** Marks the editor transactions the binding made from the document's changes. */
export const fromOtter = Annotation.define<boolean>();

/** Options of {@link otterCollab}; every field has a default. */
export interface OtterCollabOptions {
  /**
   * The undo manager the keys Mod-z / Mod-Shift-z / Mod-y drive: one of the application's
   * (which it then also owns and destroys), `false` for no undo keys, or options for the one
   * the binding makes and destroys with the editor. Default: the binding's own, defaults.
   */
  undoManager?: UndoManager | UndoManagerOptions | false;
  /** Draw other people's carets and selections. Default true. */
  remoteCursors?: boolean;
  /**
   * Called with what the document threw when it refused an editor change (OtterError
   * `read-only`, `closed`, `forbidden`; InvalidOperationError for text it cannot hold); the
   * editor is put back to the document's text. Default: `console.error`.
   */
  onError?: (error: unknown) => void;
}

/** The binding living in one editor view. */
class Binding {
  /** The undo manager the keys drive, if any. */
  readonly undo: UndoManager | null;
  private readonly ownsUndo: boolean;
  private readonly stop: Array<() => void> = [];
  /** True while the editor's own change is being submitted: its `change` event is ours. */
  private submitting = false;
  private cursorsQueued = false;
  private resyncQueued = false;
  private destroyed = false;

  constructor(
    private readonly view: EditorView,
    private readonly doc: CollaborativeDocument,
    private readonly options: OtterCollabOptions,
    private readonly readOnly: Compartment,
  ) {
    const undo = options.undoManager;
    this.ownsUndo = !(undo instanceof UndoManager) && undo !== false;
    this.undo = undo instanceof UndoManager ? undo : undo === false ? null : new UndoManager(doc, undo);
    this.stop.push(
      doc.on('change', ({ op, local }) => this.fromDocument(op, local)),
      doc.on('presence', () => this.queueCursors()),
      doc.on('revoked', () => this.queueReadOnly()),
    );
    if (doc.revoked !== undefined) this.queueReadOnly();
    // An editor made before the document opened (or from another text) catches up at once.
    if (view.state.doc.length !== doc.text.length || view.state.doc.toString() !== doc.text) this.queueResync();
    else this.shareSelection(view.state);
    this.queueCursors();
  }

  /** The editor's own transactions: each becomes an op, then the selection is shared. */
  update(update: ViewUpdate): void {
    let moved = false;
    for (const tr of update.transactions) {
      if (tr.annotation(fromOtter) === true) continue;
      // The user moved the caret elsewhere: what they type next is a new undo step.
      if (!tr.docChanged && tr.selection !== undefined) this.undo?.stopCapturing();
      if (tr.docChanged && !this.submit(tr)) return;
      moved ||= tr.docChanged || tr.selection !== undefined;
    }
    // The others are told where the user's selection is whenever the user changes or moves it
    // (they map a remote caret differently from how the document maps its own at an insert).
    if (moved) this.shareSelection(update.state, true);
    else if (update.selectionSet) this.shareSelection(update.state);
  }

  /** Submits the changes of `tr`; false (and a resync queued) if the document refused them. */
  private submit(tr: Transaction): boolean {
    this.shareSelection(tr.startState);
    this.submitting = true;
    try {
      this.doc.submit(opFromChanges(tr.changes));
      return true;
    } catch (error) {
      (this.options.onError ?? console.error)(error);
      this.queueResync();
      return false;
    } finally {
      this.submitting = false;
    }
  }

  /**
   * Tells the document where the local selection is (a no-op once it is closed); unless
   * `always`, only if that differs from the document's own (mapped) local selection.
   */
  private shareSelection(state: EditorState, always = false): void {
    if (this.doc.closed) return;
    const ranges = rangesFromSelection(state.selection);
    const current = this.doc.selection;
    const same = current !== null && current.length === ranges.length && current.every((r, i) => r.anchor === ranges[i]?.anchor && r.head === ranges[i]?.head);
    if (same && !always) return;
    try {
      this.doc.setSelection(ranges);
    } catch {
      // A selection that does not fit the document: the editor is out of step, resync it.
      this.queueResync();
    }
  }

  /** A change of the document not made by this editor: apply it to the editor. */
  private fromDocument(op: Component[], local: boolean): void {
    if (this.submitting || this.destroyed) return;
    const state = this.view.state;
    if (this.resyncQueued || checkOperation(op).base !== state.doc.length) {
      this.queueResync();
      return;
    }
    const selection = local ? null : selectionFromRanges(this.doc.selection, this.doc.text.length, state.selection.mainIndex);
    try {
      this.view.dispatch({
        changes: changesFromOp(op, state.doc.length),
        ...(selection === null ? {} : { selection }),
        annotations: [fromOtter.of(true), Transaction.addToHistory.of(false), Transaction.remote.of(!local)],
      });
    } catch {
      // Changed from inside an editor update (an update listener editing the document): the
      // editor takes no transaction now, so it catches up with the document right after.
      this.queueResync();
      return;
    }
    this.queueCursors();
  }

  /** Makes the editor read-only once the task is done: the server lowered this user's access. */
  private queueReadOnly(): void {
    queueMicrotask(() => {
      if (this.destroyed) return;
      this.view.dispatch({ effects: this.readOnly.reconfigure(EditorState.readOnly.of(true)) });
    });
  }

  /** Redraws the remote cursors once the current task is done (coalesced). */
  private queueCursors(): void {
    if (this.cursorsQueued || this.options.remoteCursors === false) return;
    this.cursorsQueued = true;
    queueMicrotask(() => {
      this.cursorsQueued = false;
      if (this.destroyed) return;
      this.view.dispatch({ effects: setRemoteCursors.of(cursorsFromPresences(this.doc.presences)) });
    });
  }

  /**
   * Puts the editor's text back to the document's, once the current task is done (an editor
   * update cannot dispatch): the smallest replacing change, annotated {@link fromOtter}.
   */
  private queueResync(): void {
    if (this.resyncQueued) return;
    this.resyncQueued = true;
    queueMicrotask(() => {
      this.resyncQueued = false;
      if (this.destroyed) return;
      const before = this.view.state.doc.toString();
      if (before !== this.doc.text) {
        const op = fromDiff(before, this.doc.text);
        this.view.dispatch({
          changes: changesFromOp(op, before.length),
          annotations: [fromOtter.of(true), Transaction.addToHistory.of(false), Transaction.remote.of(true)],
        });
      }
      this.shareSelection(this.view.state);
      this.queueCursors();
    });
  }

  /** Runs an undo or redo and puts the editor's selection where the step left it. */
  step(which: 'undo' | 'redo'): boolean {
    if (this.undo === null) return false;
    try {
      const op = which === 'undo' ? this.undo.undo() : this.undo.redo();
      if (op === null) return true;
    } catch (error) {
      (this.options.onError ?? console.error)(error);
      return true;
    }
    const selection = selectionFromRanges(this.doc.selection, this.view.state.doc.length);
    this.view.dispatch({
      ...(selection === null ? {} : { selection }),
      scrollIntoView: true,
      annotations: [fromOtter.of(true), Transaction.userEvent.of(which)],
    });
    return true;
  }

  /** The editor is gone: stop listening to the document; an undo manager the binding made is destroyed. */
  destroy(): void {
    this.destroyed = true;
    for (const stop of this.stop.splice(0)) stop();
    if (this.ownsUndo) this.undo?.destroy();
  }
}

/**
 * The CodeMirror 6 extension binding an editor to `doc`. Create the editor with the
 * document's text once it is ready (a different text is replaced by the document's):
 *
 *   const doc = connection.open('notes');
 *   await doc.ready;
 *   new EditorView({ doc: doc.text, extensions: [basicSetup, otterCollab(doc)], parent });
 *
 * Leave CodeMirror's `history()` out (or below): the binding's undo keys take precedence and
 * undo only this user's edits. One binding per editor view; destroying the view detaches it.
 */
export function otterCollab(doc: CollaborativeDocument, options: OtterCollabOptions = {}): Extension {
  const readOnly = new Compartment();
  const plugin = ViewPlugin.define((view) => new Binding(view, doc, options, readOnly));
  const run =
    (which: 'undo' | 'redo'): Command =>
    (view) =>
      view.plugin(plugin)?.step(which) ?? false;
  return [
    Prec.highest(EditorState.lineSeparator.of(LINE_SEPARATOR)),
    readOnly.of([]),
    plugin,
    options.remoteCursors === false ? [] : remoteCursors(),
    options.undoManager === false
      ? []
      : Prec.high(
          keymap.of([
            { key: 'Mod-z', run: run('undo'), preventDefault: true },
            { key: 'Mod-y', mac: 'Mod-Shift-z', run: run('redo'), preventDefault: true },
            { key: 'Mod-Shift-z', run: run('redo'), preventDefault: true },
          ]),
        ),
  ];
}
