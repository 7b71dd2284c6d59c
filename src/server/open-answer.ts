/**
 * The frames that answer an `open`: the `opened` message, preceded, when a catch-up would not
 * fit one frame, by `ops` pieces of that catch-up that name the open's `rid` (see
 * docs/protocol.md, "Opening a document, catch-up"). Each piece holds consecutive entries, in
 * version order, as many as fit `maxBytes` of UTF-8 (at least one), and carries the checksum
 * at its last entry; `opened` carries the last piece's entries. So no frame of the answer is
 * larger than `maxBytes`, or than one entry and its envelope.
 */
import type { OpenedMessage } from '../protocol/messages.js';

/** The serialized answer to one open. */
export interface OpenAnswer {
  /** `ops` messages to send first, in order, each in a frame of its own. */
  readonly pieces: readonly string[];
  /** The `opened` message, sent after the pieces. */
  readonly opened: string;
  /** The catch-up's size: the length of all of it as one `opened` message, in UTF-16 code units. */
  readonly length: number;
}

/** Bytes of a piece besides its entries: type, doc id (at most a few kB), rid, checksum. */
const ENVELOPE_BYTES = 256;

/**
 * Serializes `message`. If it is a catch-up with a `rid` that does not fit `maxBytes`, its
 * entries are split into pieces as the file comment says; `sums[i]` is the document checksum
 * at entry i's version. Yields to the event loop after each piece, so that serializing a long
 * catch-up does not hold up other connections.
 */
export async function openAnswer(message: OpenedMessage, sums: readonly number[], maxBytes: number): Promise<OpenAnswer> {
  const entries = message.ops;
  if (entries === undefined || message.rid === undefined) {
    const whole = JSON.stringify(message);
    return { pieces: [], opened: whole, length: whole.length };
  }
  const { ops: _, ...rest } = message;
  const shell = JSON.stringify({ ...rest, ops: [] }); // ends with `"ops":[]}`
  const budget = Math.max(1, maxBytes - Buffer.byteLength(shell) - ENVELOPE_BYTES);
  const prefix = `{"type":"ops","doc":${JSON.stringify(message.doc)},"rid":${message.rid},"ops":[`;
  const pieces: string[] = [];
  let length = shell.length + Math.max(0, entries.length - 1);
  let group: string[] = [];
  let size = 0;
  for (let i = 0; i < entries.length; i++) {
    const json = JSON.stringify(entries[i]);
    const bytes = Buffer.byteLength(json) + 1;
    length += json.length;
    if (group.length > 0 && size + bytes > budget) {
      pieces.push(`${prefix}${group.join(',')}],"sum":${sums[i - 1] as number}}`);
      group = [];
      size = 0;
      await nextTurn();
    }
    group.push(json);
    size += bytes;
  }
  return { pieces, opened: `${shell.slice(0, -3)}[${group.join(',')}]}`, length };
}

/** Resolves on the next turn of the event loop. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
