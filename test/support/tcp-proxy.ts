/**
 * A TCP proxy on 127.0.0.1 for tests: a path to a server that can stall without breaking. While
 * {@link TcpProxy.holdIf} says so, what a client sends is held back (that chunk and every later
 * one of the same connection) until {@link TcpProxy.release}; what the server sends passes.
 */
import net from 'node:net';

/** One client connection through the proxy. */
export interface ProxiedConnection {
  /** The client's side of it (destroy it to cut the connection). */
  readonly client: net.Socket;
  /** Everything the client sent so far, as latin1 text (to tell connections apart). */
  sent: string;
  /** Chunks held back, in order. */
  readonly held: Buffer[];
}

export class TcpProxy {
  /** Every connection made through the proxy, in order. */
  readonly connections: ProxiedConnection[] = [];
  /** While set: a chunk for which it returns true is held back, with every later one of its connection. */
  holdIf: ((chunk: Buffer, connection: ProxiedConnection) => boolean) | undefined;
  /** The server's side of each connection. */
  private readonly upstreams = new Map<ProxiedConnection, net.Socket>();
  private readonly server: net.Server;
  /** The port to connect to instead of the target's (0 until {@link start} resolves). */
  port = 0;

  private constructor(target: number) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(target, '127.0.0.1');
      const c: ProxiedConnection = { client, sent: '', held: [] };
      this.connections.push(c);
      this.upstreams.set(c, upstream);
      client.on('data', (chunk: Buffer) => {
        c.sent += chunk.toString('latin1');
        if (c.held.length > 0 || this.holdIf?.(chunk, c) === true) c.held.push(chunk);
        else upstream.write(chunk);
      });
      upstream.pipe(client);
      for (const s of [client, upstream]) {
        s.on('error', () => {});
        s.on('close', () => {
          client.destroy();
          upstream.destroy();
          this.upstreams.delete(c);
        });
      }
    });
  }

  /** A proxy listening on a port chosen by the OS, forwarding each connection to 127.0.0.1:`target`. */
  static async start(target: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', () => resolve()));
    proxy.port = (proxy.server.address() as net.AddressInfo).port;
    return proxy;
  }

  /** Stops holding, and sends on everything held back. */
  release(): void {
    this.holdIf = undefined;
    for (const [c, upstream] of this.upstreams) for (const chunk of c.held.splice(0)) upstream.write(chunk);
  }

  /** Closes the proxy and every connection through it. */
  async close(): Promise<void> {
    for (const [c, upstream] of this.upstreams) {
      c.client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
