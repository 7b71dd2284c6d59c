/**
 * How a committed op goes on the wire: one home for the `OpEntry` of an {@link OpRecord}, used
 * by catch-ups (`opened`) and live fan-out (`ops`) alike.
 */
import type { OpEntry } from '../protocol/messages.js';
import type { OpRecord } from './store.js';

/**
 * The entry of `record` as the client keyed `recipient` sees it: version, op, author if any,
 * and the op's seq only if the recipient submitted it (an op a restore merged has seq 0 and
 * carries none).
 */
export function opEntry(record: OpRecord, recipient?: string): OpEntry {
  const entry: { v: number; op: OpRecord['op']; author?: string; seq?: number } = { v: record.version, op: record.op };
  if (record.author !== undefined) entry.author = record.author;
  if (recipient !== undefined && record.clientId === recipient && record.seq > 0) entry.seq = record.seq;
  return entry;
}

/** The JSON of `record`'s entry as every recipient but its submitter sees it (serialized once per op). */
export function entryJson(record: OpRecord): string {
  return JSON.stringify(opEntry(record));
}
