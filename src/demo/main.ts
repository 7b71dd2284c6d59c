/**
 * The demo editor page: CodeMirror 6 bound to one Otter document (`?doc=`) with `otterCollab`:
 * line numbers, everyone else's carets and selections with their names and colours, undo and
 * redo of one's own edits (Mod-z, Mod-Shift-z / Mod-y), the connection state, whether the
 * browser is offline, whether edits await the server (closing the tab then asks first), and a
 * clear message when the token is refused or the server had lost the document.
 *
 * Query parameters: `token` for servers with authentication on, `name` for the name shown to
 * the others (a token's name wins). `window.otterDemo` holds the view, the document and the
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
import { Connection, type CollaborativeDocument, ErrorCode, OtterError } from '../client/index.js';
import { cursorsFromPresences, otterCollab } from '../codemirror/index.js';

const params = new URLSearchParams(location.search);
const docId = params.get('doc') ?? 'hello';
const token = params.get('token') ?? undefined;
const userName = params.get('name')?.slice(0, 128) || undefined;

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

const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
const connection = new Connection(url, {
  ...(token === undefined ? {} : { token }),
  ...(userName === undefined ? {} : { profile: { name: userName } }),
});
const doc: CollaborativeDocument = connection.open(docId);

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

void doc.ready.then(() => {
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
  (window as unknown as { otterDemo: unknown }).otterDemo = { view, doc, connection };
  host.dataset.ready = 'true';
  version.textContent = String(doc.version);
  renderPeople();
  view.focus();
}, (e: unknown) => {
  // The document could not be opened (a refused token, no access): the error line says why.
  if (errorLine.textContent === '') showError(`The document could not be opened: ${(e as Error).message}`, 'document');
});
