/**
 * The demo editor page in a real Chromium (playwright-core, the system browser): two pages on
 * one document typing at once (also at the same position) converge on the server's text; a
 * page that keeps typing through a server restart loses no keystroke; other people's carets
 * appear with their names where they are and go away when they leave; undo in one page while
 * the other types; "\r\n" and U+2028 from a Node client; a refused token's message; a page
 * offline says its edits are unsaved and asks before closing, and sends them once back online;
 * and a screenshot of two editors side by side.
 *
 * Needs the built package (`npm run build`) and Chromium at /usr/bin/chromium (or
 * CHROMIUM_PATH). Without the browser the suite is skipped, except with CI=true, where it fails.
 * The screenshot goes to docs/two-editors.png with UPDATE_SCREENSHOTS=1, else to a temp file.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type BrowserContext, type Frame, type Page, chromium } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, ROOT, type RunningServer, requireBuild, runCli, startServe } from './helpers.js';
import { RawClient } from '../support/raw-client.js';
import type { EditorView } from '@codemirror/view';
import type { CollaborativeDocument, Connection } from '../../src/client/index.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { sleep, waitFor } from '../support/wait.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const IN_CI = process.env.CI === 'true';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const SKIP = !HAVE_CHROMIUM && !IN_CI;
const TITLE = SKIP
  ? `demo page in Chromium: SKIPPED, the browser is absent (no ${CHROMIUM}; install chromium or set CHROMIUM_PATH)`
  : 'demo page in Chromium';
if (SKIP) console.warn(`[browser.test] ${TITLE}`);

const SCREENSHOT = process.env.UPDATE_SCREENSHOTS === '1' ? join(ROOT, 'docs/two-editors.png') : undefined;

/** A bounded wait for a condition evaluated in the page (or one of its frames). */
const WAIT = { timeout: 15_000, polling: 25 } as const;

/** What the demo page puts on `window` for the console (and these tests). */
interface DemoWindow {
  otterDemo: { view: EditorView; doc: CollaborativeDocument; connection: Connection };
}

describe.skipIf(SKIP)(TITLE, () => {
  let browser: Browser;
  let dir: string;
  let server: RunningServer;
  const contexts: BrowserContext[] = [];
  const extraServers: CliProcess[] = [];
  /** Uncaught exceptions in any page: a test fails if one happened. */
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`chromium is required in CI: ${CHROMIUM} does not exist`);
    requireBuild();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      timeout: 30_000,
    });
    dir = makeTempDir('otter-browser-');
    server = await startServe(['--port', '0', '--data', join(dir, 'shared.db')]);
  });

  afterEach(async () => {
    for (const c of contexts.splice(0)) await c.close().catch(() => {});
    for (const s of extraServers.splice(0)) s.kill();
    const errors = pageErrors.splice(0);
    expect(errors, 'uncaught errors in the pages').toEqual([]);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.cli.stop().catch(() => server.cli.kill());
    if (dir !== undefined) removeTempDir(dir);
  });

  /** Opens the demo page on `doc` in its own browser context (or `context`); `query` adds parameters (`&name=…`). */
  async function openEditor(
    base: string,
    doc: string,
    viewport = { width: 700, height: 600 },
    query = '',
    context?: BrowserContext,
  ): Promise<Page> {
    let ctx = context;
    if (ctx === undefined) {
      ctx = await browser.newContext({ viewport });
      contexts.push(ctx);
    }
    const page = await ctx.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${doc}: ${e.message}`));
    await page.goto(`${base}/?doc=${encodeURIComponent(doc)}${query}`, { timeout: 15_000 });
    await waitReady(page);
    return page;
  }

  /** Waits until the page is connected, its document open and its editor made. */
  async function waitReady(page: Page | Frame): Promise<void> {
    await page.waitForFunction(() => {
      const state = document.querySelector<HTMLElement>('#state')?.dataset.state;
      const content = document.querySelector<HTMLElement>('#editor .cm-content');
      return state === 'open' && content !== null && content.contentEditable === 'true';
    }, undefined, WAIT);
  }

  /** The text in the page's editor, read from CodeMirror's state. */
  function valueOf(page: Page | Frame): Promise<string> {
    return page.evaluate(() => (window as unknown as DemoWindow).otterDemo.view.state.doc.toString());
  }

  /** Focuses the page's editor and puts its caret at `at` (the end for -1). */
  async function caretAt(page: Page | Frame, at: number): Promise<void> {
    await page.click('#editor .cm-content');
    await page.evaluate((pos) => {
      const { view } = (window as unknown as DemoWindow).otterDemo;
      const p = pos < 0 ? view.state.doc.length : pos;
      view.dispatch({ selection: { anchor: p } });
      view.focus();
    }, at);
  }

  /** The positions, in the page's text, of the remote carets drawn in its editor, with their names. */
  function caretsIn(page: Page | Frame): Promise<Array<{ at: number; name: string }>> {
    return page.evaluate(() => {
      const { view } = (window as unknown as DemoWindow).otterDemo;
      return Array.from(document.querySelectorAll<HTMLElement>('#editor .cm-otter-caret')).map((caret) => ({
        at: view.posAtDOM(caret),
        name: caret.querySelector('.cm-otter-name')?.textContent ?? '',
      }));
    });
  }

  /** The document as the server has it, from a fresh protocol connection. */
  async function serverDoc(ws: string, doc: string): Promise<{ text: string; v: number }> {
    const c = await RawClient.connect(`${ws}/`);
    try {
      await c.hello();
      const opened = await c.opened(doc);
      return { text: opened.text ?? '', v: opened.v };
    } finally {
      c.close();
    }
  }

  async function serverText(ws: string, doc: string): Promise<string> {
    return (await serverDoc(ws, doc)).text;
  }

  /** Waits until every page shows the server's version in #version. */
  async function versionsShown(ws: string, doc: string, pages: Array<Page | Frame>): Promise<void> {
    const { v } = await serverDoc(ws, doc);
    for (const page of pages) {
      await page.waitForFunction((want) => document.querySelector('#version')?.textContent === String(want), v, WAIT);
    }
  }

  /** Waits until every page and the server hold the same text; returns it. */
  async function converged(ws: string, doc: string, pages: Array<Page | Frame>, ms = 15_000): Promise<string> {
    let last: string[] = [];
    try {
      await waitFor(
        'convergence',
        async () => {
          last = [...(await Promise.all(pages.map(valueOf))), await serverText(ws, doc)];
          return last.every((t) => t === last[0]);
        },
        ms,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}: pages and server hold ${JSON.stringify(last)}`);
    }
    return last[0] as string;
  }

  /** Whether `sub`'s characters appear in `text` in order. */
  function isSubsequence(sub: string, text: string): boolean {
    let i = 0;
    for (const ch of text) if (i < sub.length && ch === sub[i]) i++;
    return i === sub.length;
  }

  it('two pages typing at once, also at the same position, end with the same text as the server', async () => {
    const doc = 'race';
    const a = await openEditor(server.http, doc);
    const b = await openEditor(server.http, doc);

    // Both type at position 0 of the empty document at the same time.
    const a1 = 'Ann types here. ';
    const b1 = 'Bob too! ';
    await caretAt(a, 0);
    await caretAt(b, 0);
    await Promise.all([a.keyboard.type(a1, { delay: 15 }), b.keyboard.type(b1, { delay: 22 })]);
    const first = await converged(server.ws, doc, [a, b]);
    expect(first).toHaveLength(a1.length + b1.length);
    expect(isSubsequence(a1, first), `${JSON.stringify(a1)} in order in ${JSON.stringify(first)}`).toBe(true);
    expect(isSubsequence(b1, first), `${JSON.stringify(b1)} in order in ${JSON.stringify(first)}`).toBe(true);

    // Interleaved at both ends, then both at the same middle position.
    const a2 = '[end by Ann]';
    const b2 = '[start by Bob]';
    await caretAt(a, -1);
    await caretAt(b, 0);
    await Promise.all([a.keyboard.type(a2, { delay: 12 }), b.keyboard.type(b2, { delay: 17 })]);
    const second = await converged(server.ws, doc, [a, b]);
    expect(second.startsWith(b2)).toBe(true);
    expect(second.endsWith(a2)).toBe(true);

    const middle = Math.floor(second.length / 2);
    const a3 = 'xyz';
    const b3 = '123';
    await caretAt(a, middle);
    await caretAt(b, middle);
    await Promise.all([a.keyboard.type(a3, { delay: 20 }), b.keyboard.type(b3, { delay: 20 })]);
    // And one deletes while the other types.
    await Promise.all([
      (async () => {
        for (let i = 0; i < 4; i++) await a.keyboard.press('Backspace', { delay: 10 });
      })(),
      b.keyboard.type('!', { delay: 10 }),
    ]);
    const final = await converged(server.ws, doc, [a, b]);
    expect(final.length).toBe(second.length + a3.length + b3.length + 1 - 4);
    expect(await a.textContent('#error')).toBe('');
    expect(await b.textContent('#error')).toBe('');
    // Both pages show the server's version, the one that typed last too.
    await versionsShown(server.ws, doc, [a, b]);

    // The durable copy: `otter export` reads the same text from the database file.
    const exported = await runCli(['export', doc, '--data', join(dir, 'shared.db')]);
    expect(exported.code).toBe(0);
    expect(exported.stdout).toBe(final);
  });

  it('keeps every keystroke typed while the server restarts', async () => {
    const file = join(dir, 'restart.db');
    let first: RunningServer | undefined = await startServe(['--port', '0', '--data', file]);
    extraServers.push(first.cli);
    const port = first.port;
    const doc = 'restart';
    const a = await openEditor(first.http, doc);
    const b = await openEditor(first.http, doc);

    const before = 'typed before the restart; ';
    await caretAt(a, 0);
    await a.keyboard.type(before, { delay: 5 });
    await converged(first.ws, doc, [a, b]);

    // Keep typing on page A while the server stops and starts again on the same port and file.
    const during = 'typed-while-the-server-was-down-and-coming-back; ';
    const typing = a.keyboard.type(during, { delay: 40 });
    await sleep(150);
    expect(await first.cli.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    first = undefined;
    await a.waitForFunction(() => document.querySelector<HTMLElement>('#state')?.dataset.state !== 'open', undefined, WAIT);
    expect(await a.getAttribute('#editor .cm-content', 'contenteditable')).toBe('true');
    await sleep(600); // typing goes on offline
    const offlineText = await valueOf(a);
    const second = await startServe(['--port', String(port), '--data', file]);
    extraServers.push(second.cli);
    await typing;
    const after = 'and after.';
    await a.keyboard.type(after, { delay: 5 });
    await waitReady(a);
    await waitReady(b);

    const expected = before + during + after;
    expect(offlineText.length, 'some keystrokes were typed while the server was down').toBeGreaterThan(before.length);
    const final = await converged(second.ws, doc, [a, b]);
    expect(final).toBe(expected);
    await versionsShown(second.ws, doc, [a, b]);
    expect(await second.cli.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const exported = await runCli(['export', doc, '--data', file]);
    expect(exported.stdout).toBe(expected);
  });

  it('a server restarted without its data (--memory) gets the text back from the two open pages, once, and both pages say so', async () => {
    let first: RunningServer | undefined = await startServe(['--port', '0', '--memory']);
    extraServers.push(first.cli);
    const port = first.port;
    const doc = 'amnesia';
    const a = await openEditor(first.http, doc);
    const b = await openEditor(first.http, doc);
    const text = 'only the pages hold this text now; ';
    await caretAt(a, 0);
    await a.keyboard.type(text, { delay: 2 });
    await converged(first.ws, doc, [a, b]);
    expect(await first.cli.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    first = undefined;
    await a.waitForFunction(() => document.querySelector<HTMLElement>('#state')?.dataset.state !== 'open', undefined, WAIT);
    const second = await startServe(['--port', String(port), '--memory']);
    extraServers.push(second.cli);
    await waitReady(a);
    await waitReady(b);
    // Neither page took the empty document: the text is back on the server, exactly once.
    expect(await converged(second.ws, doc, [a, b])).toBe(text);
    for (const page of [a, b]) {
      await page.waitForFunction(() => (document.querySelector('#notice')?.textContent ?? '').includes('had lost this document'), undefined, WAIT);
    }
    const notices = await Promise.all([a, b].map((p) => p.textContent('#notice')));
    expect(notices.filter((n) => n?.includes('the text from this page was put back'))).toHaveLength(1);
    await second.cli.stop('SIGTERM');
  });

  it('offline: the page says its edits are unsaved and asks before closing; back online, it sends them', async () => {
    const doc = 'offline';
    const page = await openEditor(server.http, doc);
    await page.context().setOffline(true);
    await page.waitForFunction(() => document.querySelector<HTMLElement>('#state')?.dataset.state === 'connecting', undefined, WAIT);
    await caretAt(page, 0);
    await page.keyboard.type('typed offline', { delay: 5 });
    expect(await page.$eval('#saved', (e) => (e as HTMLElement).dataset.unsaved)).toBe('true');
    const asked = new Promise<string>((resolve) => page.once('dialog', (d) => void d.dismiss().then(() => resolve(d.type()))));
    await page.close({ runBeforeUnload: true });
    expect(await asked).toBe('beforeunload');
    expect(page.isClosed()).toBe(false);
    await page.context().setOffline(false);
    await page.waitForFunction(() => document.querySelector<HTMLElement>('#saved')?.dataset.unsaved === 'false', undefined, WAIT);
    expect(await serverText(server.ws, doc)).toBe('typed offline');
  });

  /** Resolves once the page's document has written its state to the browser's storage. */
  async function stored(page: Page): Promise<void> {
    await page.evaluate(() => (window as unknown as DemoWindow).otterDemo.doc.flushStorage());
  }

  it('edits made offline survive closing the tab and arrive exactly once on the next visit', async () => {
    const doc = 'offline-reopen';
    const context = await browser.newContext();
    contexts.push(context);
    const first = await openEditor(server.http, doc, undefined, '', context);
    await caretAt(first, 0);
    await first.keyboard.type('online. ', { delay: 3 });
    await converged(server.ws, doc, [first]);
    const id = await first.evaluate(() => (window as unknown as DemoWindow).otterDemo.connection.clientId);

    await context.setOffline(true);
    await first.waitForFunction(() => document.querySelector<HTMLElement>('#state')?.dataset.state !== 'open', undefined, WAIT);
    await caretAt(first, -1);
    await first.keyboard.type('[typed offline]', { delay: 3 });
    await stored(first);
    await first.close(); // no beforeunload prompt: the edits are kept in this browser
    expect(await serverText(server.ws, doc)).toBe('online. ');

    await context.setOffline(false);
    const second = await openEditor(server.http, doc, undefined, '', context);
    expect(await second.evaluate(() => (window as unknown as DemoWindow).otterDemo.connection.clientId)).toBe(id);
    const text = await converged(server.ws, doc, [second]);
    expect(text).toBe('online. [typed offline]');
    await second.waitForFunction(() => document.querySelector<HTMLElement>('#saved')?.dataset.unsaved === 'false', undefined, WAIT);
    // A third visit sends nothing again.
    await second.close();
    const third = await openEditor(server.http, doc, undefined, '', context);
    expect(await converged(server.ws, doc, [third])).toBe('online. [typed offline]');
  });

  it('two tabs of one browser, both offline, then online: each edit arrives exactly once', async () => {
    const doc = 'two-tabs';
    const context = await browser.newContext();
    contexts.push(context);
    const a = await openEditor(server.http, doc, undefined, '', context);
    const b = await openEditor(server.http, doc, undefined, '', context);
    const ids = await Promise.all([a, b].map((p) => p.evaluate(() => (window as unknown as DemoWindow).otterDemo.connection.clientId)));
    expect(ids[0]).not.toBe(ids[1]);
    await caretAt(a, 0);
    await a.keyboard.type('middle', { delay: 3 });
    await converged(server.ws, doc, [a, b]);

    // Each tab types at its own places (keystrokes at one place from two tabs may interleave).
    await context.setOffline(true);
    for (const page of [a, b]) {
      await page.waitForFunction(() => document.querySelector<HTMLElement>('#state')?.dataset.state !== 'open', undefined, WAIT);
    }
    await caretAt(a, 0);
    await a.keyboard.type('<A1>', { delay: 3 });
    await caretAt(b, -1);
    await b.keyboard.type('<B1>', { delay: 3 });
    await caretAt(a, '<A1>mid'.length);
    await a.keyboard.type('<A2>', { delay: 3 });
    await Promise.all([stored(a), stored(b)]);
    // Tab B is closed offline too; a tab opened later takes over its edits.
    await b.close();

    await context.setOffline(false);
    const c = await openEditor(server.http, doc, undefined, '', context);
    const text = await converged(server.ws, doc, [a, c]);
    expect(text).toBe('<A1>mid<A2>dle<B1>');
  });

  it('two tabs closed offline, one tab opened later: the edits of both arrive exactly once', async () => {
    const doc = 'two-tabs-closed';
    const context = await browser.newContext();
    contexts.push(context);
    const a = await openEditor(server.http, doc, undefined, '', context);
    const b = await openEditor(server.http, doc, undefined, '', context);
    await caretAt(a, 0);
    await a.keyboard.type('|', { delay: 3 });
    await converged(server.ws, doc, [a, b]);
    await context.setOffline(true);
    for (const page of [a, b]) {
      await page.waitForFunction(() => document.querySelector<HTMLElement>('#state')?.dataset.state !== 'open', undefined, WAIT);
    }
    // Each tab types on its own side of "|" (keystrokes at one place from two tabs may interleave).
    await caretAt(a, 0);
    await a.keyboard.type('<A>', { delay: 3 });
    await caretAt(b, -1);
    await b.keyboard.type('<B>', { delay: 3 });
    await Promise.all([stored(a), stored(b)]);
    await a.close();
    await b.close();

    await context.setOffline(false);
    const c = await openEditor(server.http, doc, undefined, '', context);
    let text = '';
    await waitFor('both tabs\' edits on the server', async () => {
      text = await serverText(server.ws, doc);
      return text.length === 7;
    }, 15_000);
    expect(text).toBe('<A>|<B>');
    expect(await converged(server.ws, doc, [c])).toBe(text);
  });

  it("shows another person's caret with their name where they are, and removes it when they leave", async () => {
    const doc = 'presence';
    const a = await openEditor(server.http, doc, undefined, '&name=Ann');
    await caretAt(a, 0);
    await a.keyboard.type('The quick brown fox jumps over the lazy dog.', { delay: 2 });
    const b = await openEditor(server.http, doc);
    await converged(server.ws, doc, [a, b]);

    // Page A clicks into its text, somewhere on the first line.
    const box = await a.locator('#editor .cm-line').first().boundingBox();
    expect(box).not.toBeNull();
    await a.mouse.click((box?.x ?? 0) + 9 * 9, (box?.y ?? 0) + 8);
    const at = await a.evaluate(() => (window as unknown as DemoWindow).otterDemo.view.state.selection.main.head);
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThan(44);

    // Page B draws A's caret at that position, named.
    await b.waitForFunction(
      (pos) => {
        const { view } = (window as unknown as DemoWindow).otterDemo;
        const carets = Array.from(document.querySelectorAll('#editor .cm-otter-caret'));
        return carets.length === 1 && view.posAtDOM(carets[0] as Node) === pos;
      },
      at,
      WAIT,
    );
    expect(await caretsIn(b)).toEqual([{ at, name: 'Ann' }]);
    expect(await b.textContent('#people')).toBe('Also here: Ann');
    // A sees B's caret too (B focused its editor on load).
    await a.waitForFunction(() => document.querySelectorAll('#editor .cm-otter-caret').length === 1, undefined, WAIT);

    // A moves to the end of the line: B follows.
    await a.keyboard.press('End');
    await b.waitForFunction(
      () => {
        const { view } = (window as unknown as DemoWindow).otterDemo;
        const caret = document.querySelector('#editor .cm-otter-caret');
        return caret !== null && view.posAtDOM(caret) === 44;
      },
      undefined,
      WAIT,
    );

    // A leaves: its caret disappears from B.
    await a.close();
    await b.waitForFunction(() => document.querySelector('#editor .cm-otter-caret') === null, undefined, WAIT);
    expect(await b.textContent('#people')).toBe('Nobody else is here yet.');
  });

  it('undo in one page takes back only its own edit while the other page types', async () => {
    const doc = 'undo';
    const a = await openEditor(server.http, doc);
    const b = await openEditor(server.http, doc);
    await caretAt(a, 0);
    await a.keyboard.type('base text. ', { delay: 2 });
    await converged(server.ws, doc, [a, b]);
    // A types a word at the start; B keeps typing at the end meanwhile; A undoes its word.
    await caretAt(a, 0);
    await caretAt(b, -1);
    const typingB = b.keyboard.type('Bob keeps typing here', { delay: 25 });
    // Moving the caret closed the step of "base text. ": the word is a step of its own.
    await a.keyboard.type('ANN ', { delay: 5 });
    await a.keyboard.press('Control+z');
    await typingB;
    const text = await converged(server.ws, doc, [a, b]);
    expect(text).toBe('base text. Bob keeps typing here');
    // Redo puts the word back, once.
    await a.keyboard.press('Control+Shift+Z');
    expect(await converged(server.ws, doc, [a, b])).toBe('ANN base text. Bob keeps typing here');
    expect(await a.textContent('#error')).toBe('');
  });

  it('a "\\r\\n" and a U+2028 from a Node client appear exactly, and typing goes on', async () => {
    const doc = 'crlf';
    const a = await openEditor(server.http, doc);
    const node = await RawClient.connect(`${server.ws}/`);
    try {
      await node.hello();
      const opened = await node.opened(doc);
      const from = 'first line\r\nsecond\rthird\u2028fourth\n';
      await node.submitAcked(doc, opened.v, 1, [from]);
      await a.waitForFunction((want) => (window as unknown as DemoWindow).otterDemo.view.state.doc.toString() === want, from, WAIT);
      // Typing at the end and in the middle of the "\r\n" line goes on without an error.
      await caretAt(a, -1);
      await a.keyboard.type('typed after', { delay: 3 });
      await a.keyboard.press('Enter');
      await caretAt(a, 'first line'.length);
      await a.keyboard.type('!', { delay: 3 });
      const text = await converged(server.ws, doc, [a]);
      expect(text).toBe('first line!\r\nsecond\rthird\u2028fourth\ntyped after\n');
      expect(await a.textContent('#error')).toBe('');
    } finally {
      node.close();
    }
  });

  it('a refused token shows its message instead of reconnecting forever', async () => {
    const secured = await startServe(['--port', '0', '--memory', '--jwt-secret', 'a-secret-of-sixteen-or-more']);
    extraServers.push(secured.cli);
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`token: ${e.message}`));
    await page.goto(`${secured.http}/?doc=locked&token=not-a-valid-token`, { timeout: 15_000 });
    await page.waitForFunction(() => (document.querySelector('#error')?.textContent ?? '').includes('refused this page’s token'), undefined, WAIT);
    expect(await page.$eval('#error', (e) => (e as HTMLElement).dataset.kind)).toBe('token');
  });

  it('renders two editors side by side with text and remote cursors (screenshot)', async () => {
    const doc = 'side-by-side';
    const context = await browser.newContext({ viewport: { width: 1400, height: 700 } });
    contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`frame page: ${e.message}`));
    const src = `${server.http}/?doc=${doc}&name=`;
    await page.setContent(
      `<!doctype html><html><body style="margin:0;display:flex;gap:8px;background:#d9dee6;padding:8px;box-sizing:border-box;height:100vh">
        <iframe id="left" src="${src}Ann" style="flex:1;border:0;border-radius:6px;background:#fff"></iframe>
        <iframe id="right" src="${src}Bob" style="flex:1;border:0;border-radius:6px;background:#fff"></iframe>
      </body></html>`,
    );
    const frameOf = async (id: string): Promise<Frame> => {
      const handle = await page.waitForSelector(`#${id}`, { timeout: 15_000 });
      const frame = await handle.contentFrame();
      if (frame === null) throw new Error(`no frame in #${id}`);
      await waitReady(frame);
      return frame;
    };
    const left = await frameOf('left');
    const right = await frameOf('right');

    await caretAt(left, 0);
    await page.keyboard.type('Otter keeps both windows in sync.\nType in either one, ', { delay: 3 });
    await converged(server.ws, doc, [left, right]);
    await caretAt(right, -1);
    await page.keyboard.type('and the other one follows.\nEveryone sees where the others are.', { delay: 3 });
    const text = await converged(server.ws, doc, [left, right]);
    // Left puts its caret after "Otter keeps"; right's stays at the end.
    await caretAt(left, 11);
    await left.press('#editor .cm-content', 'ArrowRight');
    await left.press('#editor .cm-content', 'ArrowLeft');
    for (const frame of [left, right]) {
      await frame.waitForFunction(() => document.querySelectorAll('#editor .cm-otter-caret').length === 1, undefined, WAIT);
    }
    // Each shows the other's caret where the other has it, with the other's name.
    const where = async (frame: Frame, want: { at: number; name: string }): Promise<void> => {
      let seen: Array<{ at: number; name: string }> = [];
      await waitFor(`${want.name}'s caret at ${want.at}`, async () => {
        seen = await caretsIn(frame);
        return seen.length === 1 && seen[0]?.at === want.at && seen[0]?.name === want.name;
      }).catch((e: Error) => {
        throw new Error(`${e.message}: carets drawn ${JSON.stringify(seen)}`);
      });
    };
    await where(left, { at: text.length, name: 'Bob' });
    await where(right, { at: 11, name: 'Ann' });
    expect(await valueOf(left)).toBe(text);
    expect(await valueOf(right)).toBe(text);
    await versionsShown(server.ws, doc, [left, right]);

    const path = SCREENSHOT ?? join(dir, 'two-editors.png');
    mkdirSync(join(path, '..'), { recursive: true });
    await page.screenshot({ path, timeout: 15_000 });
    expect(statSync(path).size).toBeGreaterThan(10_000);
  });
});
