/**
 * The demo editor page: a textarea bound to one Otter document (`?doc=`), the connection state,
 * the version, and everyone else's cursors and selections drawn live over the text. Edits made
 * while offline stay in the document and are sent after reconnecting; while any edit is not yet
 * acknowledged the header says so, and closing the tab asks first. A token for servers with
 * authentication on can be given as `?token=`, and the name shown to the others as `?name=`
 * (a token's name wins); remote cursors carry their user's name and colour.
 */
import { Connection, type CollaborativeDocument, type Presence } from '../client/index.js';
import { fromDiff, transformPosition } from '../ot/index.js';

const params = new URLSearchParams(location.search);
const docId = params.get('doc') ?? 'hello';
const token = params.get('token') ?? undefined;
const userName = params.get('name')?.slice(0, 128) || undefined;

function element<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el as T;
}

const editor = element<HTMLTextAreaElement>('editor');
const mirror = element<HTMLDivElement>('mirror');
const state = element<HTMLElement>('state');
const version = element<HTMLElement>('version');
const people = element<HTMLDivElement>('people');
const errorLine = element<HTMLDivElement>('error');
const notice = element<HTMLDivElement>('notice');
const saved = element<HTMLElement>('saved');
element<HTMLElement>('doc').textContent = docId;

const COLORS = ['#d7263d', '#1b998b', '#f46036', '#2e294e', '#c5d86d', '#5b8e7d', '#8e44ad', '#e67e22'];
function colorOf(id: string): string {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return COLORS[h % COLORS.length] as string;
}

const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
const connection = new Connection(url, {
  ...(token === undefined ? {} : { token }),
  ...(userName === undefined ? {} : { profile: { name: userName } }),
});
const doc: CollaborativeDocument = connection.open(docId);

connection.on('state', (s) => {
  state.textContent = s;
  state.dataset.state = s;
});

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Draws the text with every other connection's carets and selections marked. */
function renderPresence(): void {
  const marks: Array<{ at: number; html: string }> = [];
  const names: string[] = [];
  const length = doc.text.length;
  for (const [id, p] of doc.presences as ReadonlyMap<string, Presence>) {
    const color = p.profile?.color ?? colorOf(id);
    const name = p.profile?.name ?? p.user ?? id.slice(0, 4);
    names.push(`<span style="background:${color}">${escapeHtml(name)}</span>`);
    for (const r of p.selection ?? []) {
      const from = Math.min(r.anchor, r.head, length);
      const to = Math.min(Math.max(r.anchor, r.head), length);
      if (to > from) {
        marks.push({ at: from, html: `<span class="range" style="background:${color}">` });
        marks.push({ at: to, html: '</span>' });
      }
      const head = Math.min(r.head, length);
      marks.push({ at: head, html: `<span class="caret" style="border-color:${color};background:${color}" data-name="${escapeHtml(name)}"></span>` });
    }
  }
  marks.sort((a, b) => a.at - b.at);
  let html = '';
  let pos = 0;
  const text = doc.text;
  for (const m of marks) {
    html += escapeHtml(text.slice(pos, m.at)) + m.html;
    pos = m.at;
  }
  mirror.innerHTML = `${html}${escapeHtml(text.slice(pos))}\n`;
  mirror.scrollTop = editor.scrollTop;
  people.innerHTML = names.length === 0 ? 'Nobody else is here yet.' : `Also here: ${names.join('')}`;
}

function sendSelection(): void {
  const backwards = editor.selectionDirection === 'backward';
  doc.setSelection({
    anchor: backwards ? editor.selectionEnd : editor.selectionStart,
    head: backwards ? editor.selectionStart : editor.selectionEnd,
  });
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

editor.addEventListener('input', () => {
  const op = fromDiff(doc.text, editor.value);
  doc.submit(op);
  sendSelection();
  renderPresence();
  showVersionWhenSynced();
});
for (const event of ['keyup', 'mouseup', 'select', 'focus']) editor.addEventListener(event, sendSelection);
document.addEventListener('selectionchange', () => {
  if (document.activeElement === editor) sendSelection();
});
editor.addEventListener('scroll', () => {
  mirror.scrollTop = editor.scrollTop;
});

doc.on('change', ({ op, local }) => {
  version.textContent = String(doc.version);
  if (local) return;
  // A remote edit: keep the local caret and selection where the user left them.
  const start = transformPosition(editor.selectionStart, op, 'left');
  const end = transformPosition(editor.selectionEnd, op, 'left');
  editor.value = doc.text;
  editor.setSelectionRange(start, end);
  renderPresence();
});
doc.on('presence', renderPresence);
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
doc.on('error', (e) => {
  errorLine.textContent = `${e.code}: ${e.message}`;
});

void doc.ready.then(() => {
  editor.value = doc.text;
  editor.disabled = false;
  version.textContent = String(doc.version);
  errorLine.textContent = '';
  renderPresence();
  editor.focus();
});
