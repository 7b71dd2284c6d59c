/**
 * A keystroke costs the same in a long document as in a short one: nothing on the client's
 * per-keystroke path (an edit, its send, its acknowledgement, a remote op, the selection and
 * the presence sent for it) reads or joins the whole text. Checked without timing: every
 * String.prototype read (which flattens a cons string, copying it whole) and every array
 * join made meanwhile is recorded with the length of the string it reads or makes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CollaborativeDocument } from '../../src/client/document.js';
import type { ClientMessage } from '../../src/protocol/messages.js';
import { type FakeTransport, openedDoc, serve } from './fakes.js';

/** String methods that read a string's code units (and so flatten a cons string first). */
const READS = [
  'at',
  'charAt',
  'charCodeAt',
  'codePointAt',
  'endsWith',
  'includes',
  'indexOf',
  'lastIndexOf',
  'normalize',
  'slice',
  'split',
  'startsWith',
  'substr',
  'substring',
] as const;

type Method = (this: unknown, ...args: unknown[]) => unknown;
const stringProto = String.prototype as unknown as Record<string, Method>;
const arrayProto = Array.prototype as unknown as Record<string, Method>;
const originals = new Map<string, Method>(READS.map((name) => [name, stringProto[name] as Method]));
const originalJoin = arrayProto['join'] as Method;

function restore(): void {
  for (const [name, fn] of originals) stringProto[name] = fn;
  arrayProto['join'] = originalJoin;
}

afterEach(restore);

/**
 * Runs `run` and returns the length of the longest string that a String.prototype read was
 * called on, or that an array join produced, while it ran.
 */
function longestStringTouched(run: () => void): number {
  let longest = 0;
  for (const [name, fn] of originals) {
    stringProto[name] = function (this: unknown, ...args: unknown[]): unknown {
      if (typeof this === 'string' && this.length > longest) longest = this.length;
      return fn.apply(this, args);
    };
  }
  arrayProto['join'] = function (this: unknown, ...args: unknown[]): unknown {
    const joined = originalJoin.apply(this, args) as string;
    if (joined.length > longest) longest = joined.length;
    return joined;
  };
  try {
    run();
  } finally {
    restore();
  }
  return longest;
}

/** A 1 MiB document with a surrogate pair right before the caret. */
const SIZE = 1 << 20;
const CARET = SIZE >> 1;
const DOCUMENT = `${'a'.repeat(CARET - 2)}😀${'b'.repeat(SIZE - CARET)}`;
/** Far below the document: a rope leaf, an op, a message. */
const SMALL = 4096;

function sentOfType(t: FakeTransport, type: ClientMessage['type']): ClientMessage[] {
  return t.sent.filter((m) => m.type === type);
}

describe('the per-keystroke path of a document', () => {
  it('the instrument sees a read of a long string and a long join', () => {
    const long = 'x'.repeat(SIZE);
    expect(longestStringTouched(() => long.charCodeAt(7))).toBe(SIZE);
    expect(longestStringTouched(() => ['x'.repeat(10), 'y'.repeat(SIZE)].join(''))).toBe(SIZE + 10);
  });

  it('never reads or joins the whole text of a 1 MiB document: edits, acks, remote ops, selection, presence', () => {
    const { doc, t } = openedDoc(DOCUMENT, 1, { presenceInterval: 0 });
    serve(doc, { type: 'presence', doc: 'd', id: 'other', v: 1, selection: [{ anchor: 10, head: 20 }] });
    let v = 1;
    const keystrokes = (d: CollaborativeDocument): void => {
      d.insert(CARET, 'x'); // sent at once (seq 1)
      d.setSelection({ anchor: CARET + 1, head: CARET + 1 });
      d.insert(CARET + 1, 'y'); // buffered behind it
      d.setSelection({ anchor: CARET + 2, head: CARET + 2 });
      serve(d, { type: 'ack', doc: 'd', seq: 1, v: ++v }); // the buffer goes out (seq 2)
      serve(d, { type: 'ops', doc: 'd', ops: [{ v: ++v, op: [5, 'r', SIZE - 4] }] });
      serve(d, { type: 'ack', doc: 'd', seq: 2, v: ++v });
      d.delete(CARET + 2, 1); // a backspace (seq 3)
      serve(d, { type: 'ack', doc: 'd', seq: 3, v: ++v });
    };
    expect(longestStringTouched(() => keystrokes(doc))).toBeLessThan(SMALL);

    // The path was the whole one: three submits, presences sent, all acknowledged.
    expect(sentOfType(t, 'submit')).toHaveLength(3);
    expect(sentOfType(t, 'presence').length).toBeGreaterThan(0);
    expect(doc.syncState.kind).toBe('synchronized');
    const expected = `${DOCUMENT.slice(0, 5)}r${DOCUMENT.slice(5, CARET)}xy${DOCUMENT.slice(CARET)}`;
    // The remote 'r' moved the local edits one place right: the backspace removed the 'y'.
    const want = `${expected.slice(0, CARET + 2)}${expected.slice(CARET + 3)}`;
    expect(doc.text.length).toBe(want.length);
    expect(doc.text === want, 'the text after the keystrokes').toBe(true);
    expect(doc.selection).toEqual([{ anchor: CARET + 2, head: CARET + 2 }]);
    expect(doc.presences.get('other')?.selection).toEqual([{ anchor: 11, head: 21 }]);
  });

  it('an edit splitting the surrogate pair before the caret is still refused, the text unchanged', () => {
    const { doc } = openedDoc(DOCUMENT, 1);
    expect(() => doc.insert(CARET - 1, 'x')).toThrow(/surrogate/);
    expect(() => doc.delete(CARET - 1, 1)).toThrow(/surrogate/);
    expect(doc.text === DOCUMENT, 'the text is unchanged').toBe(true);
    expect(doc.syncState.kind).toBe('synchronized');
  });
});
