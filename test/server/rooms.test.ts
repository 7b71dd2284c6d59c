/**
 * Presence in rooms, mapped through the server's one op history (the sequencer's ops in
 * memory): a selection made at an older version reaches the others at the head, moved by the
 * ops since; one older than the history at hand, ahead of the room, or outside the document is
 * dropped, and nothing is sent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SelectionRange } from '../../src/ot/index.js';
import { MemoryStore } from '../../src/server/memory-store.js';
import { type RoomMember, Rooms } from '../../src/server/rooms.js';
import { Sequencer } from '../../src/server/sequencer.js';
import type { OpRecord } from '../../src/server/store.js';
import { within } from '../support/wait.js';

const sequencers: Sequencer[] = [];
afterEach(async () => {
  for (const s of sequencers.splice(0)) await within(s.close(), 5000, 'Sequencer.close');
});

/** A member recording the presences it is sent. */
function member(id: string): RoomMember & { seen: Array<{ v: number; selection: SelectionRange[] | null }> } {
  const seen: Array<{ v: number; selection: SelectionRange[] | null }> = [];
  return {
    connectionId: id,
    user: undefined,
    seen,
    deliver(_doc: string, _record: OpRecord, _json: string) {},
    deliverPresence(_doc, _id, _user, v, selection) {
      seen.push({ v, selection });
    },
    deliverLeft() {},
    deliverHead() {},
  };
}

/** A sequencer keeping `memoryHistory` ops in memory, its rooms, and "d" typed "0123456789" one character an op. */
async function typed(memoryHistory: number): Promise<{ rooms: Rooms; a: ReturnType<typeof member>; b: ReturnType<typeof member> }> {
  const s = new Sequencer(new MemoryStore(), { idleTimeout: 0, memoryHistory });
  sequencers.push(s);
  const rooms = new Rooms(0, (docId, after, upTo) => s.recentOps(docId, after, upTo));
  s.onApplied((docId, record) => rooms.publish(docId, record));
  const a = member('a');
  const b = member('b');
  rooms.join('d', a);
  rooms.join('d', b);
  for (let i = 0; i < 10; i++) await s.submit({ docId: 'd', clientId: 'w', seq: i + 1, baseVersion: i, op: i === 0 ? ['0'] : [i, String(i)] });
  return { rooms, a, b };
}

describe('presence through the sequencer history', () => {
  it('a selection made at an older version is moved by the ops since and sent at the head', async () => {
    const { rooms, a, b } = await typed(100);
    // At version 3 ("012") a range over "1", and a caret before "0"; an insert before it since
    // would move it, the appends after it do not: mapped through versions 4 to 10.
    expect(rooms.setPresence('d', a, 3, [{ anchor: 1, head: 2 }, { anchor: 0, head: 0 }])).toBe(true);
    expect(b.seen).toEqual([{ v: 10, selection: [{ anchor: 1, head: 2 }, { anchor: 0, head: 0 }] }]);
    expect(a.seen).toEqual([]);
  });

  it('drops a selection older than the history in memory, ahead of the room, or outside the document', async () => {
    const { rooms, a, b } = await typed(4);
    expect(rooms.setPresence('d', a, 2, [{ anchor: 1, head: 1 }])).toBe(false); // only versions 6…10 are held
    expect(rooms.setPresence('d', a, 11, [{ anchor: 1, head: 1 }])).toBe(false);
    expect(rooms.setPresence('d', a, 7, [{ anchor: 8, head: 8 }])).toBe(false); // "0123456" has 7 characters
    expect(rooms.setPresence('d', a, 10, [{ anchor: 11, head: 11 }])).toBe(false);
    expect(b.seen).toEqual([]);
    expect(rooms.setPresence('d', a, 6, [{ anchor: 5, head: 2 }])).toBe(true);
    expect(rooms.setPresence('d', a, 10, null)).toBe(true);
    expect(b.seen).toEqual([
      { v: 10, selection: [{ anchor: 5, head: 2 }] },
      { v: 10, selection: null },
    ]);
  });
});
