/**
 * An in-memory model of an Otter server for one document, and links that join it to
 * CollaborativeDocuments as their transport. It follows docs/protocol.md: catch-up or
 * snapshot opens with `seq`, (clientId, seq) idempotent submits rebased with side 'right',
 * acks to the author and ops to the others, and the error codes a client must survive.
 * Messages travel through FIFO queues the test delivers one at a time; a disconnect loses
 * whatever was still queued either way.
 */
import type { CollaborativeDocument, DocumentMessage, DocumentTransport } from '../../src/client/document.js';
import { opLength } from '../../src/client/split.js';
import { type Component, apply, transform } from '../../src/ot/index.js';
import type { ClientMessage, OpEntry } from '../../src/protocol/messages.js';

interface Record {
  readonly op: Component[];
  readonly clientId: string;
  readonly seq: number;
}

interface Mark {
  readonly seq: number;
  readonly version: number;
  readonly base: number;
  readonly op: Component[];
}

/** One client's connection to the model server. */
export class Link implements DocumentTransport {
  up = false;
  /** Bumped on every connect: which connection a queued submission came from. */
  epoch = 0;
  subscribed = false;
  toServer: ClientMessage[] = [];
  toClient: DocumentMessage[] = [];
  doc: CollaborativeDocument | undefined;

  constructor(
    readonly server: ModelServer,
    readonly clientId: string,
  ) {}

  /** @inheritdoc */
  send(message: ClientMessage): boolean {
    if (!this.up) return false;
    this.toServer.push(message);
    return true;
  }

  /** @inheritdoc */
  detach(): void {
    this.doc = undefined;
  }

  /** Connects (or reconnects) the link and tells the document. */
  connect(): void {
    if (this.up) return;
    this.up = true;
    this.epoch += 1;
    this.doc?.connected();
  }

  /** Drops the connection: queued messages are lost both ways. */
  disconnect(): void {
    if (!this.up) return;
    this.up = false;
    this.subscribed = false;
    this.toServer = [];
    this.toClient = [];
    this.doc?.disconnected();
  }

  /** Delivers one queued message to the server; false if none. */
  deliverUp(): boolean {
    const msg = this.toServer.shift();
    if (msg === undefined) return false;
    this.server.handle(this, msg);
    return true;
  }

  /** Delivers one queued message to the document; false if none. */
  deliverDown(): boolean {
    const msg = this.toClient.shift();
    if (msg === undefined) return false;
    this.doc?.receive(msg);
    return true;
  }
}

/** The model server. `failNext` makes the next open or submit fail with that code (nothing applied). */
export class ModelServer {
  text: string;
  /** history[i] produced version trimmedBase + i + 1. */
  history: Record[] = [];
  /** Versions up to this one are no longer in history. */
  trimmedTo = 0;
  readonly marks = new Map<string, Mark>();
  readonly links: Link[] = [];
  failNext: 'storage-failed' | undefined;
  /**
   * Submissions received but not yet sequenced, as a real server's per-document queue holds
   * them while a batch commits. Opens do not wait for them (like the real sequencer, whose
   * readers run between batches), and they survive their connection.
   */
  queued: Array<{ link: Link; epoch: number; msg: Extract<ClientMessage, { type: 'submit' }> }> = [];
  /** Queue submissions instead of sequencing them at once (see `queued`, `sequenceNext`). */
  pipeline = false;
  /** Every refusal sent, by code. */
  readonly refusals = new Map<string, number>();
  /** Submissions longer than this (components + inserted code units) are refused `too-large`. */
  maxOpLength = Infinity;

  constructor(
    readonly docId = 'd',
    initial = '',
  ) {
    this.text = initial;
  }

  get head(): number {
    return this.trimmedTo + this.history.length;
  }

  /** A new link for `clientId`. */
  link(clientId: string): Link {
    const link = new Link(this, clientId);
    this.links.push(link);
    return link;
  }

  /** Forgets all history but the last `keep` ops. */
  trim(keep: number): void {
    const drop = Math.max(0, this.history.length - keep);
    this.history = this.history.slice(drop);
    this.trimmedTo += drop;
  }

  private recordAt(version: number): Record | undefined {
    return this.history[version - this.trimmedTo - 1];
  }

  handle(link: Link, msg: ClientMessage): void {
    const doc = this.docId;
    switch (msg.type) {
      case 'open': {
        if (this.failNext !== undefined) {
          const code = this.failNext;
          this.failNext = undefined;
          link.subscribed = false;
          this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
          link.toClient.push({ type: 'error', code, message: code, ref: { type: 'open', doc } });
          return;
        }
        link.subscribed = true;
        const seq = this.marks.get(link.clientId)?.seq ?? 0;
        if (msg.v === undefined || msg.v < this.trimmedTo || msg.v > this.head) {
          link.toClient.push({ type: 'opened', doc, v: this.head, seq, text: this.text });
          return;
        }
        const ops: OpEntry[] = [];
        for (let v = msg.v + 1; v <= this.head; v++) {
          const r = this.recordAt(v) as Record;
          ops.push(r.clientId === link.clientId ? { v, op: r.op, seq: r.seq } : { v, op: r.op });
        }
        link.toClient.push({ type: 'opened', doc, v: this.head, seq, ops });
        return;
      }
      case 'close':
        link.subscribed = false;
        link.toClient.push({ type: 'closed', doc });
        return;
      case 'submit':
        if (!link.subscribed) return this.refuse(link, 'not-open', msg.seq);
        if (this.pipeline) this.queued.push({ link, epoch: link.epoch, msg });
        else this.submit(link, link.epoch, msg.v, msg.seq, msg.op);
        return;
      default:
        return;
    }
  }

  /** Sequences the oldest queued submission; false if none. */
  sequenceNext(): boolean {
    const next = this.queued.shift();
    if (next === undefined) return false;
    this.submit(next.link, next.epoch, next.msg.v, next.msg.seq, next.msg.op);
    return true;
  }

  /** Sends to the connection a request came from, if it is still the link's current one. */
  private reply(link: Link, epoch: number, message: DocumentMessage): void {
    if (link.up && link.epoch === epoch) link.toClient.push(message);
  }

  private refuse(link: Link, code: string, seq: number, epoch = link.epoch): void {
    this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
    this.reply(link, epoch, {
      type: 'error',
      code: code as never,
      message: code,
      ref: { type: 'submit', doc: this.docId, seq },
    });
  }

  private submit(link: Link, epoch: number, base: number, seq: number, submitted: Component[]): void {
    if (this.failNext !== undefined) {
      const code = this.failNext;
      this.failNext = undefined;
      return this.refuse(link, code, seq, epoch);
    }
    if (opLength(submitted) > this.maxOpLength) return this.refuse(link, 'too-large', seq, epoch);
    const mark = this.marks.get(link.clientId);
    const last = mark?.seq ?? 0;
    if (mark !== undefined && seq <= last) {
      if (seq < last) return this.refuse(link, 'seq-stale', seq, epoch);
      if (this.isResubmission(base, submitted, mark)) {
        this.reply(link, epoch, { type: 'ack', doc: this.docId, seq, v: mark.version });
        return;
      }
      return this.refuse(link, 'seq-reused', seq, epoch);
    }
    if (seq !== last + 1) return this.refuse(link, 'seq-gap', seq, epoch);
    if (base > this.head) return this.refuse(link, 'version-ahead', seq, epoch);
    if (base < this.trimmedTo) return this.refuse(link, 'history-gone', seq, epoch);
    let op = submitted;
    try {
      for (let v = base + 1; v <= this.head; v++) op = transform(op, (this.recordAt(v) as Record).op, 'right');
      this.text = apply(this.text, op);
    } catch {
      return this.refuse(link, 'invalid-op', seq, epoch);
    }
    this.history.push({ op, clientId: link.clientId, seq });
    const v = this.head;
    this.marks.set(link.clientId, { seq, version: v, base, op: submitted });
    for (const other of this.links) {
      if (!other.up || !other.subscribed) continue;
      if (other.clientId === link.clientId) other.toClient.push({ type: 'ack', doc: this.docId, seq, v });
      else other.toClient.push({ type: 'ops', doc: this.docId, ops: [{ v, op }] });
    }
  }

  private isResubmission(base: number, op: Component[], mark: Mark): boolean {
    if (base === mark.base && JSON.stringify(op) === JSON.stringify(mark.op)) return true;
    const original = this.recordAt(mark.version);
    if (original === undefined || base >= mark.version || base < this.trimmedTo) return false;
    try {
      let rebased = op;
      for (let v = base + 1; v < mark.version; v++) rebased = transform(rebased, (this.recordAt(v) as Record).op, 'right');
      return JSON.stringify(rebased) === JSON.stringify(original.op);
    } catch {
      return false;
    }
  }

  /** Commits an op made by someone outside the test's clients and broadcasts it. */
  external(op: Component[]): void {
    this.text = apply(this.text, op);
    this.history.push({ op, clientId: '(external)', seq: 0 });
    const v = this.head;
    for (const link of this.links) {
      if (link.up && link.subscribed) link.toClient.push({ type: 'ops', doc: this.docId, ops: [{ v, op }] });
    }
  }
}
