/**
 * The demo editor page: CodeMirror 6 bound to one Otter document (`?doc=`) with `otterCollab`:
 * line numbers, everyone else's carets and selections with their names and colours, undo and
 * redo of one's own edits (Mod-z, Mod-Shift-z / Mod-y), the connection state, whether the
 * browser is offline, whether edits await the server (closing the tab then asks first), and a
 * clear message when the token is refused or the server had lost the document. Edits not yet
 * on the server are kept in this browser (IndexedDB): a tab closed offline sends them on the
 * next visit, exactly once; two tabs of one browser each keep their own.
 *
 * Query parameters: `token` for servers with authentication on, `name` for the name shown to
 * the others (a token's name wins), `storage=off` to keep nothing in the browser. `window.otterDemo` holds the view, the document and the
 * connection, for the browser console.
 */
import { defaultKeymap } from '@codemirror/commands';
import {
  EditorView,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
} from '@codemirror/view';
import { type ClientStorage, Connection, type CollaborativeDocument, ErrorCode, IndexedDbStorage, OtterError } from '../client/index.js';
import { cursorsFromPresences, otterCollab } from '../codemirror/index.js';

const params = new URLSearchParams(location.search);
const docId = params.get('doc') ?? 'hello';
const token = params.get('token') ?? undefined;
const userName = params.get('name')?.slice(0, 128) || undefined;
/** A colour for a named user, the same on every page: picked from a palette by the name. */
const PALETTE = ['#d7263d', '#1b998b', '#f46036', '#2e294e', '#8e44ad', '#5b8e7d', '#e67e22', '#2274a5'];
function colorOf(name: string): string {
  let h = 7;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return PALETTE[h % PALETTE.length] as string;
}

function element<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el as T;
}

const host = element<HTMLDivElement>('editor');
const state = element<HTMLElement>('state');
const network = element<HTMLElement>('network');
const version = element<HTMLElement>('version');
const people = element<HTMLDivElement>('people');
const errorLine = element<HTMLDivElement>('error');
const notice = element<HTMLDivElement>('notice');
const saved = element<HTMLElement>('saved');
element<HTMLElement>('doc').textContent = docId;

/** The browser's storage for edits not yet on the server, unless `?storage=off` or the browser has none. */
function browserStorage(): ClientStorage | undefined {
  if (params.get('storage') === 'off') return undefined;
  try {
    return new IndexedDbStorage();
  } catch {
    return undefined;
  }
}

const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
const storage = browserStorage();
const connection = new Connection(url, {
  ...(token === undefined ? {} : { token }),
  ...(userName === undefined ? {} : { profile: { name: userName, color: colorOf(userName) } }),
  ...(storage === undefined ? {} : { storage }),
});
const doc: CollaborativeDocument = connection.open(docId);
/** For the browser console: the connection, the document, and the editor once it is made. */
const demo: { connection: Connection; doc: CollaborativeDocument; view?: EditorView } = { connection, doc };
(window as unknown as { otterDemo: typeof demo }).otterDemo = demo;

connection.on('state', (s) => {
  state.textContent = s;
  state.dataset.state = s;
  if (s === 'open' && errorLine.dataset.kind === 'connection') showError('', 'connection');
});
connection.on('error', (e) => {
  if (e instanceof OtterError && e.code === ErrorCode.Unauthorized) {
    showError('The server refused this page’s token: sign in again to keep editing. Your edits stay in this page until then.', 'token');
  } else {
    showError(`Connection: ${e.message}`, 'connection');
  }
});

function showError(text: string, kind: string): void {
  errorLine.textContent = text;
  errorLine.dataset.kind = kind;
}

function showNetwork(): void {
  const online = navigator.onLine;
  network.textContent = online ? '' : 'offline: edits are kept and sent when the network is back';
  network.dataset.online = String(online);
}
window.addEventListener('online', showNetwork);
window.addEventListener('offline', showNetwork);
showNetwork();

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The list of the other people here, with their colours. */
function renderPeople(): void {
  const names = cursorsFromPresences(doc.presences).map((c) => `<span style="background:${c.color}">${escapeHtml(c.name)}</span>`);
  people.innerHTML = names.length === 0 ? 'Nobody else is here yet.' : `Also here: ${names.join('')}`;
}

/** Shows the version once the local edits are acknowledged (acks raise no change event). */
function showVersionWhenSynced(): void {
  doc.synced().then(
    () => {
      version.textContent = String(doc.version);
    },
    () => {},
  );
}

doc.on('change', ({ local }) => {
  version.textContent = String(doc.version);
  if (local) showVersionWhenSynced();
});
doc.on('presence', renderPeople);
doc.on('unsaved', ({ unsaved }) => {
  saved.textContent = unsaved ? 'unsaved edits' : 'all edits saved';
  saved.dataset.unsaved = String(unsaved);
});
// Closing the tab while edits await the server would lose them: the browser asks first.
window.addEventListener('beforeunload', (event) => {
  if (doc.unsaved) event.preventDefault();
});
doc.on('reset', (e) => {
  const what = {
    restored: 'The server had lost this document; the text from this page was put back.',
    adopted: 'The server had lost this document; another editor put it back, and this page took that text.',
    accepted: 'The server had lost this document; this page took the server’s text.',
  }[e.action];
  notice.textContent = `${what} (It had version ${e.lost.version}; your unsent edits were kept.)`;
});
doc.on('diverged', () => {
  notice.textContent = 'This page’s copy differed from the server’s; it was reloaded from the server, keeping your unsent edits.';
});
doc.on('merged', () => {
  notice.textContent = 'Edits made while away were merged into a newer text from the server.';
});
doc.on('revoked', ({ access }) => {
  showError(access === 'read' ? 'You may now only read this document.' : 'You no longer have access to this document.', 'access');
});
doc.on('error', (e) => {
  if (errorLine.dataset.kind === 'token') return; // the refused token says more
  showError(`${e.code}: ${e.message}`, 'document');
});

/** Makes the editor on the document's text; from then on the binding keeps the two equal. */
function createEditor(): void {
  const view = new EditorView({
    parent: host,
    doc: doc.text,
    extensions: [
      lineNumbers(),
      highlightActiveLineGutter(),
      highlightSpecialChars(),
      drawSelection(),
      highlightActiveLine(),
      EditorView.lineWrapping,
      otterCollab(doc, { onError: (e) => showError(`Edit refused: ${(e as Error).message}`, 'edit') }),
      keymap.of(defaultKeymap),
    ],
  });
  demo.view = view;
  host.dataset.ready = 'true';
  version.textContent = doc.epoch === undefined ? '–' : String(doc.version);
  renderPeople();
  view.focus();
}

// The editor opens on the text stored in this browser (at once, even offline), else on the server's.
doc.loaded
  .then(() => (doc.epoch === undefined ? doc.ready : undefined))
  .then(createEditor)
  .catch((e: unknown) => {
    // The document could not be opened (a refused token, no access): the error line says why.
    if (errorLine.textContent === '') showError(`The document could not be opened: ${(e as Error).message}`, 'document');
  });
