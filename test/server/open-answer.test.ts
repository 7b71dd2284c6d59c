/**
 * The frames answering an open (`open-answer.ts`): a catch-up that fits one frame is one
 * `opened`; a longer one is cut into `ops` pieces naming the rid, each within the byte bound
 * (counted in UTF-8), whose entries, followed by `opened`'s, are the catch-up in order.
 */
import { describe, expect, it } from 'vitest';
import type { OpEntry, OpenedMessage } from '../../src/protocol/messages.js';
import { openAnswer } from '../../src/server/open-answer.js';

/** A catch-up of `n` entries of about `size` code units each, with multi-byte text. */
function catchUp(n: number, size: number, rid: number | undefined): { message: OpenedMessage; sums: number[] } {
  const ops: OpEntry[] = Array.from({ length: n }, (_, i) => ({ v: 11 + i, op: [i, `é€${'a'.repeat(size)}`], ...(i % 7 === 0 ? { seq: i + 1 } : {}) }));
  const message: OpenedMessage = { type: 'opened', doc: 'notes', ...(rid === undefined ? {} : { rid }), epoch: 'e1', v: 10 + n, sum: 99, seq: 3, ops };
  return { message, sums: ops.map((_, i) => 1000 + i) };
}

describe('openAnswer', () => {
  it('a catch-up that fits the bound is one opened, exactly the message', async () => {
    const { message, sums } = catchUp(5, 100, 7);
    const answer = await openAnswer(message, sums, 64 * 1024);
    expect(answer.pieces).toEqual([]);
    expect(JSON.parse(answer.opened)).toEqual(message);
    expect(answer.length).toBe(JSON.stringify(message).length);
  });

  it('a longer one comes in pieces within the bound that carry every entry once, in order, with the sum at each last entry', async () => {
    const bound = 16 * 1024;
    const { message, sums } = catchUp(300, 500, 7);
    const answer = await openAnswer(message, sums, bound);
    expect(answer.pieces.length).toBeGreaterThan(5);
    const frames = [...answer.pieces, answer.opened];
    for (const f of frames) expect(Buffer.byteLength(f)).toBeLessThanOrEqual(bound);
    const entries: OpEntry[] = [];
    for (const piece of answer.pieces) {
      const p = JSON.parse(piece) as { type: string; doc: string; rid: number; ops: OpEntry[]; sum: number };
      expect([p.type, p.doc, p.rid]).toEqual(['ops', 'notes', 7]);
      entries.push(...p.ops);
      expect(p.sum).toBe(sums[(p.ops[p.ops.length - 1] as OpEntry).v - 11]);
    }
    const opened = JSON.parse(answer.opened) as OpenedMessage;
    entries.push(...(opened.ops ?? []));
    expect(entries).toEqual(message.ops);
    expect({ ...opened, ops: message.ops }).toEqual(message);
    expect(answer.length).toBe(JSON.stringify(message).length);
  });

  it('an entry larger than the bound goes alone; an open without rid is never cut', async () => {
    const { message, sums } = catchUp(3, 5000, 7);
    const answer = await openAnswer(message, sums, 4096);
    expect(answer.pieces.map((p) => (JSON.parse(p) as { ops: unknown[] }).ops.length)).toEqual([1, 1]);
    const plain = catchUp(300, 500, undefined);
    expect((await openAnswer(plain.message, plain.sums, 4096)).pieces).toEqual([]);
  });
});
