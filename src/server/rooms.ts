/**
 * Rooms: which connections have which document open, fan-out of committed ops to them, the
 * presence (selections) of each connection per document, kept current through later ops, and
 * the head (version and checksum) announced to every member once the ops pause.
 * Transport-agnostic: members are {@link RoomMember}s.
 */
import { type SelectionRange, targetLength, transformSelection } from '../ot/index.js';
import type { PresenceProfile } from '../protocol/messages.js';
import { entryJson } from './op-entry.js';
import type { OpRecord } from './store.js';

/** What a room needs of a connection. */
export interface RoomMember {
  /** The server's id of the connection (the presence key). */
  readonly connectionId: string;
  /** The authenticated user, if any. */
  readonly user: string | undefined;
  /** Receives a committed op of `docId` (the member decides: ack, broadcast or buffer). */
  deliver(docId: string, record: OpRecord, entryJson: string): void;
  /** Receives another member's presence (`selection` null: hidden) at version `v`, with its profile if any. */
  deliverPresence(
    docId: string,
    id: string,
    user: string | undefined,
    v: number,
    selection: SelectionRange[] | null,
    profile: PresenceProfile | undefined,
  ): void;
  /** Receives the news that another member left. */
  deliverLeft(docId: string, id: string): void;
  /** Receives the document's head: version `v`, whose checksum is `sum` (see protocol `head`). */
  deliverHead(docId: string, v: number, sum: number): void;
}

interface Presence {
  v: number;
  selection: SelectionRange[] | null;
  profile: PresenceProfile | undefined;
}

/**
 * The committed ops of `docId` with after < version ≤ upTo, if all of them are at hand (the
 * sequencer's history in memory); undefined otherwise. Synchronous.
 */
export type RecentOps = (docId: string, after: number, upTo: number) => readonly OpRecord[] | undefined;

class Room {
  readonly members = new Set<RoomMember>();
  readonly presence = new Map<RoomMember, Presence>();
  /** Last version published to this room (or learned from an open). */
  head = 0;
  /** The document's length at `head`, once an op was published here. */
  length: number | undefined;
  /** The pending announcement of the head, once the ops pause. */
  announce: ReturnType<typeof setTimeout> | undefined;
}

/** Ms without ops after which a room announces its head. */
const DEFAULT_HEAD_DELAY = 1000;

/** All rooms of one server. */
export class Rooms {
  private readonly rooms = new Map<string, Room>();

  /**
   * @param headDelay ms without ops after which every member of a room is sent the head
   *   (version and checksum); 0 never announces. Default 1000.
   * @param recentOps where a presence made at an older version finds the ops to map it through
   *   (the one op history of the server: the sequencer's); without it only presences made at
   *   the head are taken.
   */
  constructor(
    private readonly headDelay = DEFAULT_HEAD_DELAY,
    private readonly recentOps: RecentOps = () => undefined,
  ) {
    if (!(headDelay >= 0) || !Number.isFinite(headDelay)) throw new RangeError(`headDelay must be ≥ 0 ms, got ${headDelay}`);
  }

  /** Number of documents with at least one member. */
  get size(): number {
    return this.rooms.size;
  }

  /** Adds `member` to `docId`'s room; from now on it receives every op published there. */
  join(docId: string, member: RoomMember): void {
    let room = this.rooms.get(docId);
    if (room === undefined) {
      room = new Room();
      this.rooms.set(docId, room);
    }
    room.members.add(member);
  }

  /** The newest version published to `docId`'s room or seen by an open there; undefined without a room. */
  head(docId: string): number | undefined {
    return this.rooms.get(docId)?.head;
  }

  /** Records that `docId` is known to be at `version` (after an open read the store). */
  observe(docId: string, version: number): void {
    const room = this.rooms.get(docId);
    if (room !== undefined && version > room.head && room.length === undefined) room.head = version;
  }

  /**
   * Removes `member` from `docId`'s room and tells the others it left. Idempotent.
   */
  leave(docId: string, member: RoomMember): void {
    const room = this.rooms.get(docId);
    if (room === undefined || !room.members.delete(member)) return;
    room.presence.delete(member);
    for (const m of room.members) m.deliverLeft(docId, member.connectionId);
    if (room.members.size === 0) {
      clearTimeout(room.announce);
      this.rooms.delete(docId);
    }
  }

  /** Sends a committed op to every member of its room and maps every presence through it. */
  publish(docId: string, record: OpRecord): void {
    const room = this.rooms.get(docId);
    if (room === undefined) return;
    room.head = record.version;
    room.length = targetLength(record.op);
    for (const p of room.presence.values()) {
      if (p.selection !== null && p.v === record.version - 1) {
        try {
          p.selection = transformSelection(p.selection, record.op);
        } catch {
          // A range outside the document (sent when its length was unknown here): hide it.
          // Throwing would skip the delivery below and lose the op for every member.
          p.selection = null;
        }
      }
      p.v = record.version;
    }
    const json = entryJson(record);
    for (const m of room.members) m.deliver(docId, record, json);
    if (this.headDelay > 0) {
      clearTimeout(room.announce);
      const { version, checksum } = record;
      room.announce = setTimeout(() => {
        room.announce = undefined;
        for (const m of room.members) m.deliverHead(docId, version, checksum);
      }, this.headDelay);
      room.announce.unref?.();
    }
  }

  /** Stops every pending head announcement (at shutdown). */
  close(): void {
    for (const room of this.rooms.values()) {
      clearTimeout(room.announce);
      room.announce = undefined;
    }
  }

  /**
   * Sets `member`'s selection, made at version `v`, and profile, maps the selection to the
   * room's head and sends both to the other members. Returns false (and changes nothing) when `v` is ahead of the room,
   * older than the ops at hand ({@link RecentOps}), or a range lies outside the document at `v`.
   */
  setPresence(
    docId: string,
    member: RoomMember,
    v: number,
    selection: SelectionRange[] | null,
    profile?: PresenceProfile,
  ): boolean {
    const room = this.rooms.get(docId);
    if (room === undefined || !room.members.has(member) || v > room.head) return false;
    let mapped = selection;
    if (v < room.head && mapped !== null) {
      const ops = this.recentOps(docId, v, room.head);
      if (ops === undefined) return false;
      try {
        for (const r of ops) if (mapped !== null) mapped = transformSelection(mapped, r.op);
      } catch {
        return false; // a range outside the document
      }
    }
    // At the head the ranges are checked against the length the last op produced, if known.
    const length = room.length;
    if (mapped !== null && length !== undefined && mapped.some((r) => r.anchor > length || r.head > length)) return false;
    room.presence.set(member, { v: room.head, selection: mapped, profile });
    for (const m of room.members) {
      if (m !== member) m.deliverPresence(docId, member.connectionId, member.user, room.head, mapped, profile);
    }
    return true;
  }

  /** `member`'s presence in `docId` as the room has it now (mapped to the room's head), if any. */
  presenceOf(docId: string, member: RoomMember): Readonly<Presence> | undefined {
    return this.rooms.get(docId)?.presence.get(member);
  }

  /** Sends every other member's current presence in `docId` to `member`. */
  sendPresences(docId: string, member: RoomMember): void {
    const room = this.rooms.get(docId);
    if (room === undefined) return;
    for (const [m, p] of room.presence) {
      if (m !== member) member.deliverPresence(docId, m.connectionId, m.user, p.v, p.selection, p.profile);
    }
  }
}
