/**
 * Smoke tests of the client against the real server over real sockets (`ws`): a paste far
 * over the server's announced limits is cut into ops that each pass them, and a server that
 * drops frames for rate (`rate-limited` without ref) only slows the client down.
 */
import { WebSocket } from 'ws';
import { describe, expect, it } from 'vitest';
import type { Connection, ConnectionOptions, ConnectionState } from '../../src/client/index.js';
import type { ServerOptions } from '../../src/server/index.js';
import { liveServer } from '../support/live-server.js';
import { waitFor } from '../support/wait.js';

/** A `ws` WebSocket that records the byte size of every frame it sends. */
function recordingWebSocket(sizes: number[]): ConnectionOptions['WebSocket'] {
  return class extends WebSocket {
    constructor(url: string, protocols?: string[]) {
      super(url, protocols);
      const send = this.send.bind(this);
      this.send = ((data: string) => {
        sizes.push(Buffer.byteLength(data));
        send(data);
      }) as typeof this.send;
    }
  };
}

/** About `bytes` bytes of UTF-8 text mixing 1- to 4-byte characters and JSON escapes. */
function pasteOf(bytes: number): string {
  const chunk = 'Lorem ipsum "quoted" \\ back\\slash\nnew line\ttab é ü 中文字 😀🎉 end. ';
  return chunk.repeat(Math.ceil(bytes / Buffer.byteLength(chunk)));
}


const live = liveServer();

async function twoClients(options: ServerOptions, clientOptions: ConnectionOptions = {}) {
  await live.start(options);
  const sizes: number[] = [];
  const states: ConnectionState[] = [];
  const errors: string[] = [];
  const make = (clientId: string, WebSocketClass: ConnectionOptions['WebSocket']): Connection => {
    const c = live.connect({ WebSocket: WebSocketClass, clientId, ...clientOptions });
    c.on('state', (s) => states.push(s));
    c.on('error', (e) => errors.push((e as { code?: string }).code ?? e.message));
    return c;
  };
  const a = make('paster', recordingWebSocket(sizes));
  const b = make('typist', WebSocket);
  const da = a.open('doc');
  const db = b.open('doc');
  await Promise.all([da.ready, db.ready]);
  return { da, db, sizes, states, errors };
}

describe('client against the real server', () => {
  it('a 1 MB paste on a server taking ops of 100,000 and frames of 200,000 bytes: cut into submits under both limits, both clients converge, no disconnect', async () => {
    const { da, db, sizes, states, errors } = await twoClients({ sequencer: { maxOpLength: 100_000 }, maxPayload: 200_000 });
    const paste = pasteOf(1_000_000);
    da.insert(0, paste);
    db.insert(0, 'typed meanwhile: ');
    await Promise.all([da.synced(), db.synced()]);
    await waitFor('both clients hold the same version', () => da.version === db.version && da.text === db.text, 20_000);
    // The typed text lands where the server ordered it: before the paste or between two of its ops.
    expect(da.text.length).toBe(paste.length + 'typed meanwhile: '.length);
    expect(da.text.replace('typed meanwhile: ', '')).toBe(paste);
    expect(da.version).toBeGreaterThan(10); // at least 1 MB / 100,000 code units
    expect(Math.max(...sizes)).toBeLessThanOrEqual(200_000);
    expect(states).toEqual(['open', 'open']); // one welcome each, never 'connecting' again
    expect(errors).toEqual([]);
    expect(live.server.connections).toBe(2);
  });

  it('a server dropping frames for rate (rate-limited without ref): the client pauses, resends, and still converges', async () => {
    const { da, db, states, errors } = await twoClients(
      {
        sequencer: { maxOpLength: 100_000 },
        maxPayload: 200_000,
        limits: { bytesPerSecond: 400_000, bytesBurst: 400_000 },
      },
      { retryDelay: 100 },
    );
    const paste = pasteOf(700_000);
    da.insert(0, paste);
    await da.synced();
    await waitFor('the other client has the paste', () => db.text === paste, 20_000);
    expect(errors).toContain('rate-limited');
    expect(new Set(errors)).toEqual(new Set(['rate-limited']));
    expect(states).toEqual(['open', 'open']);
  });
});
