/**
 * Other people's carets and selections in a CodeMirror 6 editor, drawn from a document's
 * presences: a coloured caret with the person's name above it, and a tinted background over
 * each selected range. The decorations are replaced by a {@link setRemoteCursors} effect and
 * otherwise mapped through every change, so they stay in place while the user types between
 * two presence updates (a remote caret stays before text typed exactly at it, as Otter maps
 * remote carets over local edits).
 */
import { type Extension, type Range, StateEffect, StateField } from '@codemirror/state';
import { Decoration, type DecorationSet, EditorView, WidgetType } from '@codemirror/view';
import type { Presence } from '../client/index.js';

/** One other person in the editor, as drawn: their ranges, name and colour. */
export interface RemoteCursor {
  /** The other connection's id. */
  readonly id: string;
  /** What is written above the caret. */
  readonly name: string;
  /** The caret's colour (`#rrggbb` or a CSS colour keyword, as a presence profile carries). */
  readonly color: string;
  /** The ranges, on the editor's text. */
  readonly ranges: ReadonlyArray<{ readonly anchor: number; readonly head: number }>;
}

/** Replaces every remote cursor drawn in the editor. */
export const setRemoteCursors = StateEffect.define<readonly RemoteCursor[]>();

/** Colours for people whose profile names none, picked by connection id. */
const PALETTE = ['#d7263d', '#1b998b', '#f46036', '#2e294e', '#8e44ad', '#5b8e7d', '#e67e22', '#2274a5'];

/** A stable colour for connection `id`. */
function colorFor(id: string): string {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return PALETTE[h % PALETTE.length] as string;
}

/**
 * The cursors to draw for `presences` (a document's `presences` map): each visible presence
 * with its profile's name and colour, else the authenticated user, else the start of its
 * connection id, and a colour picked from the id.
 */
export function cursorsFromPresences(presences: ReadonlyMap<string, Presence>): RemoteCursor[] {
  const cursors: RemoteCursor[] = [];
  for (const [id, p] of presences) {
    if (p.selection === null || p.selection.length === 0) continue;
    cursors.push({
      id,
      name: p.profile?.name ?? p.user ?? id.slice(0, 6),
      color: p.profile?.color ?? colorFor(id),
      ranges: p.selection,
    });
  }
  return cursors;
}

/** The caret of one remote person, with their name in a label above it. */
class CaretWidget extends WidgetType {
  constructor(
    readonly name: string,
    readonly color: string,
  ) {
    super();
  }

  override eq(other: CaretWidget): boolean {
    return other.name === this.name && other.color === this.color;
  }

  toDOM(): HTMLElement {
    const caret = document.createElement('span');
    caret.className = 'cm-otter-caret';
    caret.style.borderLeftColor = this.color;
    caret.setAttribute('aria-hidden', 'true');
    const label = document.createElement('span');
    label.className = 'cm-otter-name';
    label.style.backgroundColor = this.color;
    label.textContent = this.name;
    caret.appendChild(label);
    return caret;
  }

  override ignoreEvent(): boolean {
    return true;
  }
}

/** The decorations drawing `cursors` on a text of `length` code units. */
function decorate(cursors: readonly RemoteCursor[], length: number): DecorationSet {
  const marks: Range<Decoration>[] = [];
  const clamp = (p: number): number => Math.max(0, Math.min(p, length));
  for (const cursor of cursors) {
    for (const range of cursor.ranges) {
      const from = clamp(Math.min(range.anchor, range.head));
      const to = clamp(Math.max(range.anchor, range.head));
      if (to > from) {
        marks.push(
          Decoration.mark({
            class: 'cm-otter-selection',
            attributes: { style: `background-color: color-mix(in srgb, ${cursor.color} 25%, transparent)` },
          }).range(from, to),
        );
      }
      marks.push(
        Decoration.widget({ widget: new CaretWidget(cursor.name, cursor.color), side: -1 }).range(clamp(range.head)),
      );
    }
  }
  return Decoration.set(marks, true);
}

/** The remote cursors in an editor state: replaced by the effect, mapped through changes. */
const remoteCursorField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(value, tr) {
    let next = value.map(tr.changes);
    for (const effect of tr.effects) {
      if (effect.is(setRemoteCursors)) next = decorate(effect.value, tr.state.doc.length);
    }
    return next;
  },
  provide: (field) => EditorView.decorations.from(field),
});

const cursorTheme = EditorView.baseTheme({
  '.cm-otter-caret': {
    position: 'relative',
    borderLeft: '2px solid',
    marginLeft: '-1px',
    marginRight: '-1px',
    pointerEvents: 'none',
  },
  '.cm-otter-name': {
    position: 'absolute',
    bottom: '100%',
    left: '-2px',
    font: '10px/1.2 system-ui, sans-serif',
    color: '#fff',
    padding: '0 3px',
    borderRadius: '2px 2px 2px 0',
    whiteSpace: 'nowrap',
    userSelect: 'none',
    zIndex: '10',
  },
});

/** The extension drawing remote cursors; feed it with {@link setRemoteCursors}. */
export function remoteCursors(): Extension {
  return [remoteCursorField, cursorTheme];
}
