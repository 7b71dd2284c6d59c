/**
 * A client that stops reading while another floods its document: the server cuts it off once
 * its unsent backlog passes maxBufferedAmount (close 4503, then terminate), memory stays
 * bounded, the other clients keep getting their acks and ops, and the slow client, coming
 * back, catches up and converges.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Component, apply } from '../../src/ot/index.js';
import { closeAll, connect, joined, startServer } from './helpers.js';
import type { RawClient, ReceivedOf } from '../support/raw-client.js';
import { waitFor } from '../support/wait.js';

afterEach(closeAll);

/** The socket under a `ws` client, to stop and restart reading. */
function socketOf(client: RawClient): { pause(): void; resume(): void } {
  return (client.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
}

/** The text a client holds: its `opened` snapshot plus every op it received, in order. */
function textOf(client: RawClient, doc: string): { text: string; v: number } {
  const opened = client.messages.find((m): m is ReceivedOf<'opened'> => m.type === 'opened' && m.doc === doc);
  let text = opened?.text ?? '';
  let v = opened?.v ?? 0;
  for (const e of client.opsOf(doc)) {
    expect(e.v).toBe(v + 1);
    text = apply(text, e.op);
    v = e.v;
  }
  return { text, v };
}

describe('slow consumer', () => {
  it('is dropped past maxBufferedAmount with memory bounded; others unaffected; it catches up on return', async () => {
    const { server } = await startServer({
      maxBufferedAmount: 64 * 1024,
      slowConsumerGrace: 200,
      limits: { messagesPerSecond: 1e6, bytesPerSecond: 1 << 30, bytesBurst: 1 << 30 },
    });
    const doc = 'flood';
    const { client: slow } = await joined(server, doc, { clientId: 'slow-client' });
    const { client: reader } = await joined(server, doc);
    const { client: flooder } = await joined(server, doc);
    socketOf(slow).pause();

    const rss0 = process.memoryUsage().rss;
    let maxGrowth = 0;
    const chunkSize = 8 * 1024;
    let v = 0;
    let len = 0;
    let seq = 0;
    const WINDOW = 32;
    while (server.connections === 3) {
      if (seq >= 4000) throw new Error('the slow consumer was never dropped');
      const from = flooder.messages.length;
      for (let i = 0; i < WINDOW; i++) {
        const text = String.fromCharCode(97 + ((seq + i) % 26)).repeat(chunkSize);
        const op: Component[] = len === 0 ? [text] : [text, -len];
        flooder.send({ type: 'submit', doc, v: v + i, seq: seq + i + 1, op });
        len = chunkSize;
      }
      seq += WINDOW;
      v += WINDOW;
      await flooder.nextOf('ack', { doc, seq }, { from: from });
      maxGrowth = Math.max(maxGrowth, process.memoryUsage().rss - rss0);
    }
    expect(flooder.errors()).toEqual([]);
    await waitFor('the slow consumer being dropped', () => server.connections === 2);
    expect(maxGrowth).toBeLessThan(200 * 1024 * 1024);

    // The others go on: the flooder gets acks, the reader every op.
    expect(await flooder.submit(doc, v, seq + 1, ['tail:', chunkSize])).toMatchObject({ type: 'ack', v: v + 1 });
    v++;
    await waitFor('every op reaching the reader', () => reader.opsOf(doc).length === v);
    const head = await server.sequencer.getSnapshot(doc);
    expect(head.version).toBe(v);
    expect(textOf(reader, doc)).toEqual({ text: head.text, v });

    // The slow client reads what it was sent before the cut, sees the connection end…
    socketOf(slow).resume();
    const { code } = await slow.waitClosed();
    expect([4503, 1006]).toContain(code);
    const held = textOf(slow, doc);
    expect(held.v).toBeLessThan(v);
    // …and, reconnecting with its version, catches up and converges.
    const back = await connect(server);
    await back.hello('slow-client');
    const opened = await back.opened(doc, held.v);
    let text = held.text;
    if (typeof opened.text === 'string') text = opened.text;
    else for (const e of opened.ops as Array<{ op: Component[] }>) text = apply(text, e.op);
    expect(opened.v).toBe(v);
    expect(text).toBe(head.text);
  });

  /**
   * One frame larger than maxBufferedAmount (a snapshot of a big document, a long catch-up)
   * must not drop a client that reads it promptly: only a backlog that stays over the cap for
   * slowConsumerTimeout, or passes 8 times the cap, marks a slow consumer.
   */
  it('a prompt reader is not dropped for one large snapshot', async () => {
    const { server } = await startServer({ maxBufferedAmount: 1 << 20, slowConsumerGrace: 200 });
    const chunk = 'z'.repeat(1_000_000);
    for (let i = 0; i < 8; i++) {
      await server.sequencer.submit({ docId: 'big', clientId: 'seed', seq: i + 1, baseVersion: i, op: i === 0 ? [chunk] : [i * chunk.length, chunk] });
    }
    const { client, opened } = await joined(server, 'big');
    expect((opened.text as string).length).toBe(8_000_000);
    await client.ping();
    expect(client.isOpen).toBe(true);
  });
});
