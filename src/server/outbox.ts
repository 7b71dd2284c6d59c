/**
 * A connection's outgoing queue: messages queued within one event-loop turn go out as one
 * frame (one message, or a JSON array of messages). Consecutive ops for one document share a
 * single `ops` message, which carries the checksum at its last op; op entries arrive
 * pre-serialized (serialized once per op for all recipients), so fan-out costs grow with
 * frames, not with ops.
 */
import type { ServerMessage } from '../protocol/messages.js';

type Piece = { json: string } | { opsDoc: string; entries: string[]; sum: number };

/** See the file comment. */
export class Outbox {
  private pieces: Piece[] = [];
  private scheduled = false;
  private closed = false;

  /** @param write sends one frame. */
  constructor(private readonly write: (frame: string) => void) {}

  /** Queues a message. */
  message(message: ServerMessage): void {
    this.messageJson(JSON.stringify(message));
  }

  /** Queues a message already encoded as JSON (by the caller, who needed its size). */
  messageJson(json: string): void {
    this.push({ json });
  }

  /**
   * Queues one op entry (already JSON) for `docId`, where the document checksum becomes `sum`,
   * joining the previous `ops` message if it can.
   */
  opEntry(docId: string, entryJson: string, sum: number): void {
    const last = this.pieces[this.pieces.length - 1];
    if (last !== undefined && 'opsDoc' in last && last.opsDoc === docId) {
      last.entries.push(entryJson);
      last.sum = sum;
    } else this.push({ opsDoc: docId, entries: [entryJson], sum });
  }

  /** Writes everything queued now, as one frame. */
  flush(): void {
    this.scheduled = false;
    const pieces = this.pieces;
    if (pieces.length === 0) return;
    this.pieces = [];
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

  private push(piece: Piece): void {
    if (this.closed) return;
    this.pieces.push(piece);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }
}
