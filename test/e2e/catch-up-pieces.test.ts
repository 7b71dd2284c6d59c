/**
 * A catch-up larger than a frame: the real client, offline while the document grew by far more
 * than the server's maxPayload, reconnects and is caught up in several `ops` pieces naming its
 * open's rid, then `opened` — no frame over the bound — and converges without a snapshot.
 */
import { WebSocket } from 'ws';
import { expect, it } from 'vitest';
import type { ConnectionOptions } from '../../src/client/index.js';
import type { Component } from '../../src/ot/index.js';
import { liveServer } from '../support/live-server.js';
import { waitFor } from '../support/wait.js';

const MAX_PAYLOAD = 64 * 1024;

const live = liveServer();

/** A `ws` WebSocket that keeps every frame it receives and lets the test cut it. */
function recordingWebSocket(frames: string[], sockets: WebSocket[]): ConnectionOptions['WebSocket'] {
  return class extends WebSocket {
    constructor(url: string, protocols?: string[]) {
      super(url, protocols);
      sockets.push(this);
      this.on('message', (data: Buffer) => frames.push(data.toString('utf8')));
    }
  };
}


it('a catch-up of ~300 kB on a server of 64 KiB frames arrives in pieces, each within the bound, and the client converges', async () => {
  const server = await live.start({ maxPayload: MAX_PAYLOAD });
  const sequencer = server.sequencer;
  const frames: string[] = [];
  const sockets: WebSocket[] = [];
  const connection = live.connect({ WebSocket: recordingWebSocket(frames, sockets), clientId: 'reader' });
  const doc = connection.open('doc');
  await doc.ready;
  doc.insert(0, 'start ');
  await doc.synced();
  // Written while the client is away (queued before its reconnect can open: the open sees them).
  const away = 300;
  let written: Promise<unknown> | undefined;
  connection.on('state', (state) => {
    if (state === 'open' || written !== undefined) return;
    const requests = Array.from({ length: away }, (_, i) => ({
      docId: 'doc',
      clientId: 'writer',
      seq: i + 1,
      baseVersion: 1 + i,
      // ~1 kB each, with a multi-byte character: the byte bound, not the code-unit count, must hold.
      op: [6 + i * 1000, `é${'abcdefghi'.repeat(111)}`] as Component[],
    }));
    written = sequencer.submitMany(requests);
  });
  const before = frames.length;
  (sockets[0] as WebSocket).terminate();
  await waitFor('the client caught up', () => written !== undefined && doc.version === 1 + away, 20_000);
  await written;
  const after = frames.slice(before);
  const pieces = after.filter((f) => f.startsWith('{"type":"ops","doc":"doc","rid":'));
  expect(pieces.length).toBeGreaterThanOrEqual(4);
  expect(Math.max(...after.map((f) => Buffer.byteLength(f)))).toBeLessThanOrEqual(MAX_PAYLOAD);
  // Caught up, not resynced from a snapshot.
  expect(after.some((f) => f.includes('"type":"opened"') && f.includes('"text"'))).toBe(false);
  const server_ = await sequencer.getSnapshot('doc');
  expect([doc.version, doc.text]).toEqual([server_.version, server_.text]);
  doc.insert(0, '!');
  await doc.synced();
  expect((await sequencer.getSnapshot('doc')).text).toBe(`!${server_.text}`);
});
