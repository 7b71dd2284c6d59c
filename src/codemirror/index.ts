/**
 * `otter/codemirror`: CodeMirror 6 bound to an Otter document in one extension.
 *
 *   import { otterCollab } from 'otter/codemirror';
 *   const doc = new Connection('wss://example.com/').open('notes');
 *   await doc.ready;
 *   new EditorView({ doc: doc.text, extensions: [basicSetup, otterCollab(doc)], parent: document.body });
 *
 * Needs `@codemirror/state` and `@codemirror/view` (optional peers of Otter: install them
 * with the editor). Nothing else in Otter imports CodeMirror.
 */
export { type OtterCollabOptions, fromOtter, otterCollab } from './collab.js';
export { LINE_SEPARATOR, changesFromOp, opFromChanges, rangesFromSelection, selectionFromRanges } from './changes.js';
export { type RemoteCursor, cursorsFromPresences, remoteCursors, setRemoteCursors } from './remote-cursors.js';
