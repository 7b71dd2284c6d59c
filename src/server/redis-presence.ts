/**
 * Presence across servers sharing a {@link RedisStore}: {@link RelayedRooms} are the
 * {@link Rooms} of one server that also relay every presence change and departure of their
 * own connections to the other servers, through Redis pub/sub (each document's presence
 * channel, to which the servers holding the document subscribe: see `redis-fanout.ts`), and
 * show their connections the presences of the others' connections.
 *
 * - A connection of another server appears in a room as a {@link RoomMember} that receives
 *   nothing (its own server delivers to it): its presence is mapped through later ops, sent to
 *   members that join later, and removed with a `left` like any member's.
 * - A presence made at a version this server has not published yet waits until it has.
 * - A server relays its connections' presences as its rooms have them: at the room's head,
 *   moved through every op since they were made.
 * - Pub/sub is at-most-once: whenever the subscription is (re)established a server asks the
 *   others, on the store-wide channel, to send their presences again, having sent its own
 *   again; whenever it subscribes to one more document, it does both for that document, on its
 *   channel. A presence shown here that is not sent again within `ttl` ms of such a request is
 *   dropped: its connection left while the message saying so was lost. Each presence is also
 *   sent anew on every change; one that arrives again unchanged changes nothing here.
 * - A server takes the messages of the documents it holds only: it forgets the presences of
 *   a document it stops holding, and ignores what still arrives of it until it holds it again.
 * - A presence is shown once the room knows the document's version (from the open of the
 *   connection that joined it, or an op), so that it is moved through the ops since it was made.
 * - Each server keeps a heartbeat key (`Pnode:<origin>`) that expires `ttl` ms after its last
 *   renewal. Every `heartbeat` ms a server checks the keys of the servers whose presences it
 *   shows, and drops all presences of a server whose key is gone (a dead server): its
 *   connections' cursors disappear for everyone, within about `ttl` + `heartbeat` ms. A server
 *   shut down gracefully ({@link RelayedRooms.close}) relays its connections' departures
 *   first, so that their cursors disappear at once. A server that finds its own key had
 *   lapsed when it renews it (it was paused, or cut off from Redis, but lives on), or whose
 *   heartbeat failed since the last one that succeeded, sends all its presences again: the
 *   others may have dropped them.
 * - A relay that fails (Redis unreachable) is not lost: a departure is sent again, and so are
 *   the presences of its document, or a request for presences, after the next heartbeat that
 *   reaches Redis — so no cursor of a connection long gone stays shown elsewhere.
 */
import type { SelectionRange } from '../ot/index.js';
import type { PresenceProfile } from '../protocol/messages.js';
import type { RedisStore } from './redis-store.js';
import { type RecentOps, type RoomMember, Rooms } from './rooms.js';
import type { OpRecord } from './store.js';
import { type Logger, silentLogger } from './telemetry.js';

/** Options of {@link RelayedRooms}; every field has a documented default. */
export interface PresenceRelayOptions {
  /** Ms between heartbeats (and checks of the other servers' heartbeats). Default 1,000. */
  heartbeat?: number;
  /** Ms a heartbeat key lives without renewal: after it, a server counts as dead. Default 5,000. */
  ttl?: number;
  /** Where failed heartbeats and relays are logged. Default: silent. */
  logger?: Logger;
}

/** A presence as relayed: of connection `id` (of `user`) at version `v`. */
interface Relayed {
  readonly node: string;
  readonly id: string;
  readonly user: string | undefined;
  readonly v: number;
  readonly selection: SelectionRange[] | null;
  readonly profile: PresenceProfile | undefined;
  /** When it arrived here (ms since the epoch). */
  readonly seen: number;
}

/** The stand-in for another server's connection: in the room, it receives nothing. */
class RemoteMember implements RoomMember {
  constructor(
    readonly node: string,
    readonly connectionId: string,
    readonly user: string | undefined,
  ) {}

  deliver(): void {}
  deliverPresence(): void {}
  deliverLeft(): void {}
  deliverHead(): void {}
}

function isRange(x: unknown): x is SelectionRange {
  const r = x as Partial<SelectionRange> | null;
  return typeof r === 'object' && r !== null && Number.isSafeInteger(r.anchor) && Number.isSafeInteger(r.head);
}

/**
 * A relayed message, checked: a presence, a departure, or a request to send presences again
 * (those of one document, or without one all of them).
 */
type Message =
  | { readonly kind: 'presence'; readonly doc: string; readonly presence: Relayed }
  | { readonly kind: 'left'; readonly node: string; readonly doc: string; readonly id: string }
  | { readonly kind: 'sync'; readonly node: string; readonly doc: string | undefined };

/** Whether two relayed presences say the same (a presence sent again unchanged). */
function sameRelayed(a: Relayed, b: Relayed): boolean {
  return a.v === b.v && JSON.stringify([a.selection, a.profile ?? null]) === JSON.stringify([b.selection, b.profile ?? null]);
}

function decode(text: string): Message | undefined {
  let row: unknown;
  try {
    row = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(row) || typeof row[1] !== 'string') return undefined;
  const node = row[1] as string;
  if (row[0] === 's' && row.length === 2) return { kind: 'sync', node, doc: undefined };
  if (row[0] === 's' && row.length === 3 && typeof row[2] === 'string') return { kind: 'sync', node, doc: row[2] };
  if (row[0] === 'l' && row.length === 4 && typeof row[2] === 'string' && typeof row[3] === 'string') {
    return { kind: 'left', node, doc: row[2], id: row[3] };
  }
  if (row[0] !== 'p' || row.length !== 8) return undefined;
  const [, , doc, id, user, v, selection, profile] = row as unknown[];
  if (typeof doc !== 'string' || typeof id !== 'string' || (user !== null && typeof user !== 'string')) return undefined;
  if (!Number.isSafeInteger(v) || (v as number) < 0) return undefined;
  if (selection !== null && !(Array.isArray(selection) && selection.every(isRange))) return undefined;
  if (profile !== null && (typeof profile !== 'object' || Array.isArray(profile))) return undefined;
  return {
    kind: 'presence',
    doc,
    presence: {
      node,
      id,
      user: user ?? undefined,
      v: v as number,
      selection: selection as SelectionRange[] | null,
      profile: (profile ?? undefined) as PresenceProfile | undefined,
      seen: Date.now(),
    },
  };
}

/** See the file comment. */
export class RelayedRooms extends Rooms {
  /** The latest presence of each connection of another server, by document and connection. */
  private readonly remote = new Map<string, Map<string, Relayed>>();
  /** Their members, for those shown in a room here. */
  private readonly members = new Map<string, Map<string, RemoteMember>>();
  /** This server's connections in each room (their presences are the rooms': `presenceOf`). */
  private readonly joined = new Map<string, Set<RoomMember>>();
  /** The documents whose messages are taken (see {@link listen}). */
  private readonly listened = new Set<string>();
  /** Documents whose rooms know their version (observed, or an op published). */
  private readonly versioned = new Set<string>();
  /**
   * Presences of other servers asked for again and not sent again yet, by document: when the
   * answers are due (ms since the epoch), and the connections not heard of since.
   */
  private readonly unconfirmed = new Map<string, { due: number; ids: Set<string> }>();
  /**
   * What failed to be relayed, to send again once Redis answers: departures by document,
   * documents whose presences to send again, and requests for presences (by document, or
   * undefined for all).
   */
  private readonly unsent = { left: new Map<string, Set<string>>(), presences: new Set<string>(), syncs: new Set<string | undefined>() };
  /**
   * A heartbeat failed since the last one that succeeded: the key may have lapsed, though a
   * late run of the failed one (a stalled connection) may have set it again.
   */
  private beatFailed = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly heartbeatMs: number;
  private readonly ttl: number;
  private readonly logger: Logger;
  private stopped = false;

  /**
   * Rooms of a server over `store` (see {@link Rooms} for `headDelay` and `recentOps`),
   * relaying from now on, heartbeating from {@link start}; {@link stop} ends both. Throws a
   * RangeError unless 0 < heartbeat < ttl. Messages arriving on the presence channels are
   * handed to {@link receive} (the fan-out's subscription does it), {@link resync} is called
   * whenever that subscription is (re)established or takes one more document, and
   * {@link forget} when it drops one.
   */
  constructor(
    private readonly store: RedisStore,
    recentOps: RecentOps,
    options: PresenceRelayOptions = {},
    headDelay?: number,
  ) {
    super(headDelay, recentOps);
    this.heartbeatMs = options.heartbeat ?? 1000;
    this.ttl = options.ttl ?? 5000;
    if (!(this.heartbeatMs > 0) || !(this.ttl > this.heartbeatMs)) {
      throw new RangeError(`the presence heartbeat must be > 0 ms and shorter than its ttl, got ${this.heartbeatMs} and ${this.ttl}`);
    }
    this.logger = options.logger ?? silentLogger;
  }

  /** Heartbeats now and every `heartbeat` ms, checking the other servers' heartbeats each time. */
  start(): void {
    if (this.stopped || this.timer !== undefined) return;
    this.timer = setInterval(() => void this.beat(), this.heartbeatMs);
    this.timer.unref?.();
    void this.beat();
  }

  /**
   * @inheritdoc Also shows the room the presences of other servers' connections not shown in
   * it yet (those shown reach the new member with the others', see `sendPresences`).
   */
  override join(docId: string, member: RoomMember): void {
    super.join(docId, member);
    if (member instanceof RemoteMember) return;
    // Back (the same session): a departure of it not relayed yet is not relayed any more.
    this.unsent.left.get(docId)?.delete(member.connectionId);
    let mine = this.joined.get(docId);
    if (mine === undefined) this.joined.set(docId, (mine = new Set()));
    mine.add(member);
    this.showWaiting(docId, Number.POSITIVE_INFINITY);
  }

  /** @inheritdoc A connection of this server leaving is relayed to the other servers. */
  override leave(docId: string, member: RoomMember): void {
    const relayed = this.presenceOf(docId, member) !== undefined;
    super.leave(docId, member);
    if (member instanceof RemoteMember) return;
    const joined = this.joined.get(docId);
    if (joined?.delete(member) !== true) return;
    if (joined.size === 0) this.joined.delete(docId);
    if (relayed) this.send(docId, ['l', this.store.origin, docId, member.connectionId]);
    // Once no connection of this server is left, the room goes (with the stand-ins in it).
    if (this.joined.has(docId)) return;
    this.versioned.delete(docId);
    const shown = this.members.get(docId);
    if (shown !== undefined) {
      this.members.delete(docId);
      for (const m of shown.values()) super.leave(docId, m);
    }
  }

  /** @inheritdoc A presence of a connection of this server is relayed to the other servers. */
  override setPresence(
    docId: string,
    member: RoomMember,
    v: number,
    selection: SelectionRange[] | null,
    profile?: PresenceProfile,
  ): boolean {
    const taken = super.setPresence(docId, member, v, selection, profile);
    if (taken && !(member instanceof RemoteMember)) this.sendPresence(docId, member);
    return taken;
  }

  /**
   * @inheritdoc Then shows the presences of other servers not shown yet that this version
   * reaches: a connection joins a room before its open tells the room the document's version,
   * and the presences made at that version wait for it.
   */
  override observe(docId: string, version: number): void {
    super.observe(docId, version);
    if (this.joined.has(docId)) this.versioned.add(docId);
    this.showWaiting(docId, version);
  }

  /** @inheritdoc Then shows the presences of other servers that waited for this version. */
  override publish(docId: string, record: OpRecord): void {
    super.publish(docId, record);
    if (this.joined.has(docId) && !this.versioned.has(docId)) {
      this.versioned.add(docId);
      this.showWaiting(docId, record.version);
    }
    for (const p of this.remote.get(docId)?.values() ?? []) {
      if (p.v === record.version) this.show(docId, p);
    }
  }

  /** Shows the presences of other servers of `docId`, made at `upTo` at most, not shown here yet. */
  private showWaiting(docId: string, upTo: number): void {
    const shown = this.members.get(docId);
    for (const p of this.remote.get(docId)?.values() ?? []) {
      if (p.v <= upTo && shown?.has(p.id) !== true) this.show(docId, p);
    }
  }

  /** Takes one message of a presence channel (from another server, or this one: skipped). */
  receive(text: string): void {
    const m = decode(text);
    if (m === undefined || this.stopped) return;
    if ((m.kind === 'presence' ? m.presence.node : m.node) === this.store.origin) return;
    if (m.kind === 'sync') {
      this.sendMine(m.doc);
      return;
    }
    if (!this.listened.has(m.doc)) return; // a document not held here (any more)
    if (m.kind === 'left') {
      this.drop(m.doc, m.id);
      return;
    }
    const id = m.presence.id;
    this.unconfirmed.get(m.doc)?.ids.delete(id);
    let byId = this.remote.get(m.doc);
    if (byId === undefined) this.remote.set(m.doc, (byId = new Map()));
    const before = byId.get(id);
    byId.set(id, m.presence);
    // The same presence again (an answer to a request): what is shown stays.
    if (before !== undefined && this.members.get(m.doc)?.has(id) === true && sameRelayed(before, m.presence)) return;
    this.show(m.doc, m.presence);
  }

  /** Takes the messages of `docId` from now on (its channels are being subscribed). */
  listen(docId: string): void {
    this.listened.add(docId);
  }

  /**
   * Sends this server's presences of `docId` again and asks the other servers for theirs
   * (once its channel is subscribed), or, without one, of every document (after the
   * subscription was (re)established); theirs not sent within `ttl` are then dropped.
   */
  resync(docId?: string): void {
    // This server's own first: those who missed them (or dropped them, not hearing from it
    // while its subscription was down) show them again.
    this.sendMine(docId);
    const due = Date.now() + this.ttl;
    for (const [doc, byId] of this.remote) {
      if (docId !== undefined && doc !== docId) continue;
      const waiting = this.unconfirmed.get(doc);
      if (waiting === undefined) this.unconfirmed.set(doc, { due, ids: new Set(byId.keys()) });
      else {
        waiting.due = due;
        for (const id of byId.keys()) waiting.ids.add(id);
      }
    }
    if (docId === undefined) this.send(undefined, ['s', this.store.origin]);
    else this.send(docId, ['s', this.store.origin, docId]);
  }

  /** Sends the presences of this server's connections in `docId` (without one, in every document). */
  private sendMine(docId: string | undefined): void {
    for (const [doc, mine] of this.joined) {
      if (docId !== undefined && doc !== docId) continue;
      for (const member of mine) this.sendPresence(doc, member);
    }
  }

  /**
   * Sends the presence of this server's `member` in `docId`, if it has one, as the room has it
   * now: at the room's head, moved through every op since it was made.
   */
  private sendPresence(docId: string, member: RoomMember): void {
    const p = this.presenceOf(docId, member);
    if (p === undefined) return;
    this.send(docId, ['p', this.store.origin, docId, member.connectionId, member.user ?? null, p.v, p.selection, p.profile ?? null]);
  }

  /**
   * Forgets the other servers' presences of `docId`, and ignores what still arrives of it until
   * {@link listen}: its channels are no longer heard here.
   */
  forget(docId: string): void {
    this.listened.delete(docId);
    this.unconfirmed.delete(docId);
    for (const id of [...(this.remote.get(docId)?.keys() ?? [])]) this.drop(docId, id);
  }

  /** Stops heartbeating and relaying (at shutdown); the heartbeat key then expires. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /**
   * @inheritdoc At shutdown: first relays the departure of every presence of this server's
   * connections, so that they vanish on the other servers at once rather than when the
   * heartbeat key expires, then stops relaying and heartbeating.
   */
  override close(): void {
    for (const [docId, mine] of this.joined) {
      for (const member of mine) {
        if (this.presenceOf(docId, member) !== undefined) this.send(docId, ['l', this.store.origin, docId, member.connectionId]);
      }
    }
    this.stop();
    super.close();
  }

  /**
   * Shows `p` to this server's members of `docId`, if it has any, the room knows the
   * document's version, and that version reaches `p`'s.
   */
  private show(docId: string, p: Relayed): void {
    const head = this.head(docId);
    // Nobody here to show it to, or it waits for the version (observe, publish).
    if (head === undefined || !this.joined.has(docId) || !this.versioned.has(docId) || p.v > head) return;
    let shown = this.members.get(docId);
    if (shown === undefined) this.members.set(docId, (shown = new Map()));
    let member = shown.get(p.id);
    if (member === undefined) {
      member = new RemoteMember(p.node, p.id, p.user);
      shown.set(p.id, member);
      super.join(docId, member);
    }
    if (!super.setPresence(docId, member, p.v, p.selection, p.profile)) {
      // Too old to map here (or out of range): hidden until its next change.
      super.setPresence(docId, member, head, null, p.profile);
    }
  }

  /** Forgets the presence of connection `id` on `docId`, telling the members it left. */
  private drop(docId: string, id: string): void {
    const byId = this.remote.get(docId);
    byId?.delete(id);
    if (byId?.size === 0) this.remote.delete(docId);
    const shown = this.members.get(docId);
    const member = shown?.get(id);
    if (member === undefined) return;
    shown?.delete(id);
    if (shown?.size === 0) this.members.delete(docId);
    super.leave(docId, member);
  }

  /**
   * Publishes `row` on `docId`'s presence channel, or without one on the store-wide channel;
   * if that fails, notes what to send again after the next heartbeat that reaches Redis.
   */
  private send(docId: string | undefined, row: unknown[]): void {
    if (this.stopped) return;
    this.store.publishPresence(docId, JSON.stringify(row)).catch((e: unknown) => {
      this.logger.warn({ err: String(e) }, 'relaying a presence failed: sent again once Redis answers');
      if (row[0] === 's') this.unsent.syncs.add(docId);
      else if (docId === undefined) return;
      else if (row[0] === 'p') this.unsent.presences.add(docId);
      else if (row[0] === 'l') {
        let ids = this.unsent.left.get(docId);
        if (ids === undefined) this.unsent.left.set(docId, (ids = new Set()));
        ids.add(row[3] as string);
      }
    });
  }

  /**
   * Sends again what failed to be relayed (see {@link send}), and with `everyPresence` all of
   * this server's presences; what fails again waits again.
   */
  private sendUnsent(everyPresence: boolean): void {
    const { left, presences, syncs } = this.unsent;
    const departures = [...left];
    const docs = [...presences];
    const requests = [...syncs];
    left.clear();
    presences.clear();
    syncs.clear();
    for (const [docId, ids] of departures) for (const id of ids) this.send(docId, ['l', this.store.origin, docId, id]);
    // A request for every presence sends every one of this server's first (see resync).
    if (requests.includes(undefined)) {
      this.resync();
      return;
    }
    if (everyPresence) this.sendMine(undefined);
    else for (const docId of docs) this.sendMine(docId);
    for (const docId of requests) this.resync(docId);
  }

  /**
   * Renews this server's heartbeat; drops the presences of servers whose heartbeat expired,
   * and those asked for again and not sent again in time.
   */
  private async beat(): Promise<void> {
    if (this.stopped) return;
    const now = Date.now();
    for (const [docId, waiting] of [...this.unconfirmed]) {
      if (waiting.due > now) continue;
      this.unconfirmed.delete(docId);
      for (const id of waiting.ids) this.drop(docId, id);
    }
    try {
      const lived = await this.store.heartbeat(this.ttl);
      // Taken for dead meanwhile, the others dropped this server's presences: send them again.
      this.sendUnsent(!lived || this.beatFailed);
      this.beatFailed = false;
      const nodes = new Set<string>();
      for (const byId of this.remote.values()) for (const p of byId.values()) nodes.add(p.node);
      for (const node of nodes) {
        const asked = Date.now();
        if (await this.store.isAlive(node)) continue;
        this.logger.warn({ node }, 'a server sharing the store stopped heartbeating: its presences are dropped');
        // Not those that arrived since it was asked: a server back from a lapse sent them again.
        for (const [docId, byId] of [...this.remote]) {
          for (const p of [...byId.values()]) if (p.node === node && p.seen < asked) this.drop(docId, p.id);
        }
      }
    } catch (e) {
      this.beatFailed = true;
      this.logger.warn({ err: String(e) }, 'presence heartbeat failed');
    }
  }
}
