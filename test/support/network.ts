/**
 * A fault-injecting network for one Otter client over real sockets: the WebSocket class its
 * `Connection` uses ({@link ClientNetwork}) exposes the underlying `ws` socket so a test can
 * kill it from underneath or make it half-open, can take the client offline (connection
 * attempts fail), can delay frames in either direction by random amounts (keeping per-socket
 * order), and taps every frame.
 */
import { type RawData, WebSocket } from 'ws';
import type { WebSocketConstructor, WebSocketLike } from '../../src/client/connection.js';
import { textOf } from './raw-client.js';

/** Options of a {@link ClientNetwork}. */
export interface NetworkOptions {
  /** Ms to delay each frame (0: deliver at once); called once per frame, with its direction. */
  delay?: (direction: 'in' | 'out') => number;
  /** Sees every frame the client sends, as it goes onto the socket. */
  onOutgoing?: (frame: string) => void;
  /** Sees every text frame the client receives, as it is delivered to the client. */
  onIncoming?: (frame: string) => void;
}

type Handler = ((event: unknown) => void) | null;

/** A queue that runs its tasks no earlier than their time and strictly in order. */
class OrderedDelay {
  private readonly queue: Array<{ at: number; run: () => void }> = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private last = 0;

  /** Runs `run` after `ms` ms, but never before a task pushed earlier. */
  push(ms: number, run: () => void): void {
    if (ms <= 0 && this.queue.length === 0) {
      run();
      return;
    }
    this.last = Math.max(this.last, Date.now() + ms);
    this.queue.push({ at: this.last, run });
    this.schedule();
  }

  /** Forgets every task not run yet. */
  clear(): void {
    this.queue.length = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    const head = this.queue[0];
    if (head === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = Date.now();
      while (this.queue.length > 0 && (this.queue[0] as { at: number }).at <= now) {
        (this.queue.shift() as { run: () => void }).run();
      }
      this.schedule();
    }, Math.max(0, head.at - Date.now()));
  }
}

/** One socket of a {@link ClientNetwork}: a `ws` client socket behind the WebSocketLike API. */
export class TestSocket implements WebSocketLike {
  onopen: Handler = null;
  onmessage: Handler = null;
  onclose: Handler = null;
  onerror: Handler = null;
  /** The real socket; undefined when the network was offline at creation. */
  readonly inner: WebSocket | undefined;
  /** The close code the client was told, once told. */
  closeCode: number | undefined;
  /** Whether the socket ever opened. */
  wasOpen = false;
  private readonly incoming = new OrderedDelay();
  private readonly outgoing = new OrderedDelay();
  private done = false;
  private frozen = false;

  constructor(
    readonly url: string,
    private readonly network: ClientNetwork,
  ) {
    if (network.offline) {
      this.inner = undefined;
      setTimeout(() => this.finish(1006), 0);
      return;
    }
    const ws = new WebSocket(url);
    this.inner = ws;
    ws.on('open', () => {
      this.wasOpen = true;
      (this.onopen as Handler)?.({});
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const payload = isBinary ? data : textOf(data);
      this.incoming.push(network.delay('in'), () => {
        if (this.done) return;
        if (typeof payload === 'string') {
          network.note(`< ${payload}`);
          network.options.onIncoming?.(payload);
        }
        (this.onmessage as Handler)?.({ data: payload });
      });
    });
    ws.on('close', (code: number) => {
      this.incoming.push(network.delay('in'), () => this.finish(code));
    });
    ws.on('error', () => {}); // a close event follows
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed (as the client was told). */
  get readyState(): number {
    if (this.done) return 3;
    return this.inner?.readyState ?? 0;
  }

  send(data: string): void {
    const ws = this.inner;
    if (ws === undefined || ws.readyState === WebSocket.CONNECTING) throw new Error('the socket is not open');
    if (this.frozen) return;
    this.outgoing.push(this.network.delay('out'), () => {
      if (ws.readyState !== WebSocket.OPEN) {
        this.network.note(`lost > ${data}`);
        return; // lost with the connection
      }
      this.network.note(`> ${data}`);
      this.network.options.onOutgoing?.(data);
      ws.send(data);
    });
  }

  close(code?: number, reason?: string): void {
    const ws = this.inner;
    if (ws === undefined || this.frozen) return;
    this.outgoing.push(this.network.delay('out'), () => ws.close(code, reason));
  }

  /**
   * Kills the connection from underneath, as a network failure would: the TCP connection is
   * destroyed at once (no close frame), and frames still in transit either way are lost.
   */
  kill(): void {
    this.network.note('kill');
    this.outgoing.clear();
    this.incoming.clear();
    if (this.inner === undefined) return;
    this.inner.terminate();
    // `ws` reports the close asynchronously; the close event then reaches the client.
    this.inner.removeAllListeners('message');
  }

  /**
   * Makes the connection half-open, as a dead network path would: nothing more is sent or
   * delivered either way, and the socket stops reading, so the server's pings go unanswered —
   * but no side closes anything. Each side has to find out by its heartbeat.
   */
  freeze(): void {
    this.network.note('freeze');
    this.frozen = true;
    this.outgoing.clear();
    this.incoming.clear();
    this.inner?.removeAllListeners('message');
    this.inner?.pause();
  }

  private finish(code: number): void {
    if (this.done) return;
    this.done = true;
    this.network.note(`closed ${code}`);
    this.closeCode = code;
    this.network.closeCodes.push(code);
    if (code === 1006) (this.onerror as Handler)?.({});
    (this.onclose as Handler)?.({ code });
  }
}

/**
 * The network of one Otter client: pass {@link WebSocket} as the Connection's `WebSocket`
 * option. Every socket the client creates is recorded.
 */
export class ClientNetwork {
  /** Every socket the client created, in order. */
  readonly sockets: TestSocket[] = [];
  /** The close codes the client was told, in order. */
  readonly closeCodes: number[] = [];
  /** While true, new sockets fail to connect (as if the network were down). */
  offline = false;
  /** What happened on this network, one line per frame or event (the last 5,000). */
  readonly trace: string[] = [];
  private readonly started = Date.now();

  /** Adds a line to {@link trace}. */
  note(line: string): void {
    this.trace.push(`${String(Date.now() - this.started).padStart(6)} #${this.sockets.length} ${line}`);
    if (this.trace.length > 5000) this.trace.splice(0, 1000);
  }
  /** The class to hand to the Connection. */
  readonly WebSocket: WebSocketConstructor;

  constructor(readonly options: NetworkOptions = {}) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const network = this;
    this.WebSocket = class extends TestSocket {
      constructor(url: string) {
        super(url, network);
        network.sockets.push(this);
      }
    };
  }

  /** Delay for the next frame going `direction`. */
  delay(direction: 'in' | 'out'): number {
    return this.options.delay?.(direction) ?? 0;
  }

  /** The latest socket. */
  get current(): TestSocket | undefined {
    return this.sockets[this.sockets.length - 1];
  }

  /** Whether the latest socket is open. */
  get isOpen(): boolean {
    return this.current?.readyState === WebSocket.OPEN;
  }

  /** Kills the latest socket from underneath (see {@link TestSocket.kill}); false if none is open. */
  kill(): boolean {
    const socket = this.current;
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) return false;
    socket.kill();
    return true;
  }

  /** Makes the latest socket half-open (see {@link TestSocket.freeze}); false if none is open. */
  freeze(): boolean {
    const socket = this.current;
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) return false;
    socket.freeze();
    return true;
  }

  /** Takes the client off the network: its socket dies and reconnection attempts fail. */
  goOffline(): void {
    this.offline = true;
    this.kill();
  }
}
