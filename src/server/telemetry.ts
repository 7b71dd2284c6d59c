/**
 * What the server reports about itself: a narrow interface the sessions and the WebSocket
 * server call, implemented by the Prometheus metrics in `metrics.ts` (or by nothing), and the
 * minimal logger shape the server writes structured logs to (pino's loggers fit it).
 */

/** Events the server counts. All methods are cheap and never throw. */
export interface Telemetry {
  /** A WebSocket connection was accepted. */
  connectionOpened(): void;
  /** An op was committed after being transformed against `depth` ops, `seconds` after it arrived. */
  opApplied(depth: number, seconds: number): void;
  /** A request was refused with error `code`. */
  opRejected(code: string): void;
  /** A frame of `bytes` bytes was written to a client. */
  frameSent(bytes: number): void;
  /** A client that asked for catch-up was sent a snapshot instead (its version was unknown). */
  resync(): void;
  /** A client opened a document claiming a state the store lost (it will restore it). */
  lostState(): void;
  /** A client reported that its copy of a document diverged from the server's (it resyncs). */
  diverged(): void;
  /** A slow consumer was disconnected. */
  slowConsumerDropped(): void;
  /** A document's stored data failed an integrity check and was not served. */
  storageCorrupt(): void;
  /**
   * The store was found to have lost data of a document this server committed (a shared Redis
   * emptied or failed over): the document goes on from what the store holds, its clients restore.
   */
  documentLost(): void;
  /** A re-check of an open document's access lowered it to `access` (see `revoked`). */
  accessRevoked(access: 'none' | 'read'): void;
  /** A re-check of an open document's access failed (authorize threw or did not answer): access kept. */
  recheckFailed(): void;
}

/** Telemetry that records nothing. */
export const noTelemetry: Telemetry = {
  connectionOpened() {},
  opApplied() {},
  opRejected() {},
  frameSent() {},
  resync() {},
  lostState() {},
  diverged() {},
  slowConsumerDropped() {},
  storageCorrupt() {},
  documentLost() {},
  accessRevoked() {},
  recheckFailed() {},
};

/** Structured log calls: an object of fields, then a message. Never given tokens or text. */
export interface LogFn {
  (fields: Record<string, unknown>, message: string): void;
}

/** The logger shape the server needs (a subset of pino's). */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

/** A logger that writes nothing. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
