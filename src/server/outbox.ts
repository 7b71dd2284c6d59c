/**
 * A connection's outgoing queue: messages queued within one event-loop turn go out as one
 * frame (one message, or a JSON array of messages). Consecutive ops for one document share a
 * single `ops` message, which carries the checksum at its last op; op entries arrive
 * pre-serialized (serialized once per op for all recipients), so fan-out costs grow with
 * frames, not with ops. Messages are joined only while the frame stays within `maxFrame` bytes
 * (judged by {@link UTF8_PER_UNIT}); a single message larger than that is a frame of its own.
 */
import type { ServerMessage } from '../protocol/messages.js';

type Piece = { json: string } | { opsDoc: string; entries: string[]; sum: number };

/**
 * Most bytes of UTF-8 one UTF-16 code unit takes: a frame's size is bounded by its length
 * times this, which costs nothing to measure.
 */
const UTF8_PER_UNIT = 3;

/** Bytes of an `ops` message besides its doc id (as JSON) and entries: type, keys, brackets, checksum. */
const OPS_ENVELOPE = 64;

/** See the file comment. */
export class Outbox {
  private pieces: Piece[] = [];
  private scheduled = false;
  private closed = false;
  /** Most bytes the frame being queued can take once written. */
  private size = 0;

  /** @param write sends one frame; @param maxFrame most bytes of a frame that joins messages. */
  constructor(
    private readonly write: (frame: string) => void,
    private readonly maxFrame = Number.POSITIVE_INFINITY,
  ) {}

  /** Queues a message. */
  message(message: ServerMessage): void {
    this.messageJson(JSON.stringify(message));
  }

  /** Queues a message already encoded as JSON (by the caller, who needed its size). */
  messageJson(json: string): void {
    this.push({ json }, json.length * UTF8_PER_UNIT);
  }

  /**
   * Queues one op entry (already JSON) for `docId`, where the document checksum becomes `sum`,
   * joining the previous `ops` message if it can (and the frame stays within `maxFrame`).
   */
  opEntry(docId: string, entryJson: string, sum: number): void {
    const last = this.pieces[this.pieces.length - 1];
    const bytes = (entryJson.length + 1) * UTF8_PER_UNIT;
    if (last !== undefined && 'opsDoc' in last && last.opsDoc === docId && this.size + bytes <= this.maxFrame) {
      last.entries.push(entryJson);
      last.sum = sum;
      this.size += bytes;
    } else {
      const envelope = OPS_ENVELOPE + JSON.stringify(docId).length * UTF8_PER_UNIT;
      this.push({ opsDoc: docId, entries: [entryJson], sum }, envelope + bytes);
    }
  }

  /**
   * Writes everything queued now, then `json` as a frame of its own (a piece of a large answer
   * that must not be joined with others into one frame).
   */
  frame(json: string): void {
    if (this.closed) return;
    this.flush();
    this.write(json);
  }

  /** Writes everything queued now, as one frame. */
  flush(): void {
    this.scheduled = false;
    const pieces = this.pieces;
    if (pieces.length === 0) return;
    this.pieces = [];
    this.size = 0;
    const parts = pieces.map((p) =>
      'json' in p ? p.json : `{"type":"ops","doc":${JSON.stringify(p.opsDoc)},"ops":[${p.entries.join(',')}],"sum":${p.sum}}`,
    );
    this.write(parts.length === 1 ? (parts[0] as string) : `[${parts.join(',')}]`);
  }

  /** Drops what is queued and queues nothing more. */
  close(): void {
    this.closed = true;
    this.pieces = [];
  }

  /** Queues `piece`, which takes at most `bytes` bytes, after writing the frame it would overfill. */
  private push(piece: Piece, bytes: number): void {
    if (this.closed) return;
    // One more byte for the comma before it, and two for the array around a joined frame.
    if (this.pieces.length > 0 && this.size + bytes + 3 > this.maxFrame) this.flush();
    this.pieces.push(piece);
    this.size += bytes + 1;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }
}
