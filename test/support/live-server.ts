/**
 * A real Otter server and real client Connections for the tests of one file: every server
 * started and connection made through {@link liveServer} is closed after each test.
 */
import { afterEach } from 'vitest';
import { Connection, type ConnectionOptions } from '../../src/client/index.js';
import { type OtterServer, type ServerOptions, createServer } from '../../src/server/index.js';

/** What {@link liveServer} gives a test file. */
export interface LiveServer {
  /** Starts the server of the current test (one at a time). */
  start(options?: ServerOptions): Promise<OtterServer>;
  /** The server of the current test; throws before {@link start}. */
  readonly server: OtterServer;
  /** A Connection to the current server, closed after the test. */
  connect(options?: ConnectionOptions): Connection;
}

/** Registers the cleanup (an `afterEach`) and returns the helpers; call at the top of a file. */
export function liveServer(): LiveServer {
  let current: OtterServer | undefined;
  const connections: Connection[] = [];
  afterEach(async () => {
    for (const c of connections.splice(0)) c.close();
    await current?.close();
    current = undefined;
  });
  return {
    async start(options = {}) {
      current = await createServer(options);
      return current;
    },
    get server() {
      if (current === undefined) throw new Error('no server started in this test');
      return current;
    },
    connect(options = {}) {
      const c = new Connection(this.server.url, options);
      connections.push(c);
      return c;
    },
  };
}
