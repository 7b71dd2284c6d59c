/**
 * The one validating parser for frames from the network. Every field is checked for type and
 * range before anything else looks at it: strings where numbers belong, fractions, negatives,
 * `1e999` (Infinity after JSON.parse), numbers past 2^53, deep nesting and prototype keys
 * (`__proto__`, `constructor`, `prototype`) are all refused with a {@link ProtocolError}.
 * Parsed messages are fresh objects holding only known fields.
 */
import { type Component, InvalidOperationError, type SelectionRange, checkOperation } from '../ot/index.js';
import { isWellFormed } from '../ot/operation.js';
import { isChecksum } from './checksum.js';
import { ErrorCode, OtterError } from './errors.js';
import type {
  ClientMessage,
  ErrorRef,
  LostState,
  OpEntry,
  PresenceProfile,
  ServerMessage,
} from './messages.js';
import { PROFILE_LIMITS } from './messages.js';

/** Limits the parser enforces; every field has a default. */
export interface ParseLimits {
  /** Longest document id, in code units. Default 256. */
  readonly maxDocIdLength?: number;
  /** Longest client id, in code units. Default 128. */
  readonly maxClientIdLength?: number;
  /** Most ranges in one selection. Default 64. */
  readonly maxSelectionRanges?: number;
}

/** Longest piece of text in one `restore` message (frames are limited anyway). */
const MAX_RESTORE_TEXT = 1 << 24;
/** Most samples in one `restore` message. */
export const MAX_RESTORE_SAMPLES = 64;

/**
 * Most versions between two neighbours of the `sums` a `lost` open answer carries: a client
 * sends every version between the two where its line parts from the server's, and this leaves
 * room among its {@link MAX_RESTORE_SAMPLES} for its newest.
 */
export const MAX_FORK_STEP = 40;
/** Longest epoch id, in code units. */
const MAX_EPOCH_LENGTH = 64;

/** A refused frame: `code` is stable, `ref` says which message it was, as far as known. */
export class ProtocolError extends OtterError {
  /** @param code stable reason; @param message detail; @param ref what the message was. */
  constructor(
    code: ErrorCode,
    message: string,
    readonly ref: ErrorRef = {},
  ) {
    super(code, message);
  }
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
/** Deepest nesting of containers in a client message: message → selection → range. */
const CLIENT_MAX_DEPTH = 3;
/** Deepest nesting in a server frame: batch → message → ops → entry → op. */
const SERVER_MAX_DEPTH = 5;

/**
 * Refuses values nested deeper than `maxDepth` containers or holding a forbidden key.
 * Iterative, and stops at the first container past the limit, so cost is bounded by the
 * value's size whatever its shape.
 */
function checkShape(root: unknown, maxDepth: number): void {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number];
    if (typeof value !== 'object' || value === null) continue;
    if (depth > maxDepth) {
      throw new ProtocolError(ErrorCode.BadMessage, `the message is nested deeper than ${maxDepth} levels`);
    }
    if (Array.isArray(value)) {
      for (const item of value) if (typeof item === 'object' && item !== null) stack.push([item, depth + 1]);
      continue;
    }
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) {
        throw new ProtocolError(ErrorCode.BadMessage, `the key ${JSON.stringify(key)} is not allowed`);
      }
      stack.push([(value as Record<string, unknown>)[key], depth + 1]);
    }
  }
}

/** Parses JSON text and checks its shape; throws `bad-message`. */
function parseJson(data: string, maxDepth: number): unknown {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    throw new ProtocolError(ErrorCode.BadMessage, 'the frame is not valid JSON');
  }
  checkShape(value, maxDepth);
  return value;
}

type Fields = Record<string, unknown>;

function field(msg: Fields, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(msg, key) ? msg[key] : undefined;
}

class Reader {
  constructor(
    private readonly msg: Fields,
    private readonly ref: ErrorRef,
    private readonly limits: Required<ParseLimits>,
  ) {}

  private fail(key: string, expected: string): never {
    const got = field(this.msg, key);
    const shown = typeof got === 'string' ? 'a string' : typeof got === 'number' ? String(got) : got === null ? 'null' : typeof got;
    throw new ProtocolError(ErrorCode.BadRequest, `field ${key} must be ${expected}, got ${shown}`, this.ref);
  }

  string(key: string, max: number): string {
    const v = field(this.msg, key);
    if (typeof v !== 'string' || v.length === 0 || v.length > max) this.fail(key, `a string of 1 to ${max} code units`);
    return v;
  }

  optionalString(key: string, max: number): string | undefined {
    return field(this.msg, key) === undefined ? undefined : this.string(key, max);
  }

  /**
   * A string as {@link string}, holding no lone surrogate: a client id or an epoch, which stores
   * may keep as UTF-8, where every lone surrogate becomes U+FFFD (two ids differing only there
   * would be one).
   */
  name(key: string, max: number): string {
    const v = this.string(key, max);
    if (!isWellFormed(v)) this.fail(key, 'well-formed UTF-16 (no lone surrogate)');
    return v;
  }

  /** {@link name}, or undefined when the field is absent. */
  optionalName(key: string, max: number): string | undefined {
    return field(this.msg, key) === undefined ? undefined : this.name(key, max);
  }

  integer(key: string, min: number): number {
    const v = field(this.msg, key);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) this.fail(key, `a safe integer ≥ ${min}`);
    return v;
  }

  optionalInteger(key: string, min: number): number | undefined {
    return field(this.msg, key) === undefined ? undefined : this.integer(key, min);
  }

  checksum(key: string): number {
    const v = field(this.msg, key);
    if (!isChecksum(v)) this.fail(key, 'a checksum (a safe integer ≥ 0)');
    return v;
  }

  optionalChecksum(key: string): number | undefined {
    return field(this.msg, key) === undefined ? undefined : this.checksum(key);
  }

  boolean(key: string): boolean {
    const v = field(this.msg, key);
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  /** A string field of at most `max` code units, possibly empty. */
  text(key: string, max: number): string {
    const v = field(this.msg, key);
    if (typeof v !== 'string' || v.length > max) this.fail(key, `a string of at most ${max} code units`);
    return v;
  }

  /** A nested object field, read by a reader of its own (errors keep this message's ref). */
  object(key: string): Reader {
    const v = field(this.msg, key);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(key, 'an object');
    return new Reader(v as Fields, this.ref, this.limits);
  }

  lostState(key: string): LostState {
    const r = this.object(key);
    return { epoch: r.name('epoch', MAX_EPOCH_LENGTH), v: r.integer('v', 0), sum: r.checksum('sum') };
  }

  samples(key: string): Array<[number, number]> {
    const v = field(this.msg, key);
    if (!Array.isArray(v) || v.length > MAX_RESTORE_SAMPLES) {
      this.fail(key, `an array of at most ${MAX_RESTORE_SAMPLES} [version, checksum] pairs`);
    }
    return v.map((pair: unknown) => {
      const ok =
        Array.isArray(pair) &&
        pair.length === 2 &&
        Number.isSafeInteger(pair[0]) &&
        (pair[0] as number) >= 0 &&
        isChecksum(pair[1]);
      if (!ok) this.fail(key, `an array of at most ${MAX_RESTORE_SAMPLES} [version, checksum] pairs`);
      return [pair[0] as number, pair[1] as number];
    });
  }

  doc(): string {
    return this.string('doc', this.limits.maxDocIdLength);
  }

  op(): Component[] {
    const v = field(this.msg, 'op');
    try {
      checkOperation(v);
    } catch (e) {
      if (e instanceof InvalidOperationError) {
        throw new ProtocolError(ErrorCode.InvalidOp, e.message, this.ref);
      }
      throw e;
    }
    return (v as Component[]).slice();
  }

  /** The optional `profile` field, checked by {@link readProfile}. */
  profile(): { profile?: PresenceProfile } {
    const v = field(this.msg, 'profile');
    if (v === undefined) return {};
    const profile = readProfile(v);
    if (typeof profile === 'string') this.fail('profile', profile);
    return { profile };
  }

  selection(): SelectionRange[] | null {
    const v = field(this.msg, 'selection');
    if (v === null) return null;
    const max = this.limits.maxSelectionRanges;
    if (!Array.isArray(v) || v.length > max) this.fail('selection', `null or an array of at most ${max} ranges`);
    return v.map((r: unknown) => {
      const range = typeof r === 'object' && r !== null && !Array.isArray(r) ? (r as Fields) : undefined;
      const anchor = range === undefined ? undefined : field(range, 'anchor');
      const head = range === undefined ? undefined : field(range, 'head');
      const ok = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
      if (!ok(anchor) || !ok(head)) this.fail('selection', 'ranges of non-negative safe integers {anchor, head}');
      return { anchor, head };
    });
  }
}

/** A `#rrggbb` colour or a lowercase CSS colour keyword (letters only, so nothing else fits in a style). */
const COLOR = /^(#[0-9a-fA-F]{6}|[a-z]{3,20})$/;

/** Whether `value` is a colour a {@link PresenceProfile} may carry: `#rrggbb` or a lowercase keyword. */
export function isProfileColor(value: unknown): value is string {
  return typeof value === 'string' && COLOR.test(value);
}

/**
 * Checks `value` as a {@link PresenceProfile} (see {@link PROFILE_LIMITS}) and returns a fresh
 * copy holding its fields, or a sentence saying what is wrong with it.
 */
export function readProfile(value: unknown): PresenceProfile | string {
  const { fields, keyLength, stringLength, jsonLength } = PROFILE_LIMITS;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'an object';
  const keys = Object.keys(value);
  if (keys.length > fields) return `an object of at most ${fields} fields`;
  const copy: Record<string, string | number | boolean> = {};
  for (const key of keys) {
    if (key.length === 0 || key.length > keyLength || FORBIDDEN_KEYS.has(key)) {
      return `an object whose keys are 1 to ${keyLength} code units (and not a prototype key)`;
    }
    const v = (value as Fields)[key];
    const ok =
      typeof v === 'boolean' ||
      (typeof v === 'number' && Number.isFinite(v)) ||
      (typeof v === 'string' && v.length <= stringLength);
    if (!ok) return `an object of strings of at most ${stringLength} code units, finite numbers and booleans`;
    copy[key] = v;
  }
  if (copy.name !== undefined && typeof copy.name !== 'string') return 'an object whose name is a string';
  if (copy.color !== undefined && !isProfileColor(copy.color)) {
    return 'an object whose color is #rrggbb or a lowercase colour keyword';
  }
  if (JSON.stringify(copy).length > jsonLength) return `an object of at most ${jsonLength} code units as JSON`;
  return copy;
}

function limitsOf(limits: ParseLimits): Required<ParseLimits> {
  return {
    maxDocIdLength: limits.maxDocIdLength ?? 256,
    maxClientIdLength: limits.maxClientIdLength ?? 128,
    maxSelectionRanges: limits.maxSelectionRanges ?? 64,
  };
}

function asObject(value: unknown): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError(ErrorCode.BadMessage, 'a message must be a JSON object');
  }
  return value as Fields;
}

function refOf(msg: Fields): ErrorRef {
  const type = field(msg, 'type');
  const doc = field(msg, 'doc');
  const seq = field(msg, 'seq');
  const rid = field(msg, 'rid');
  return {
    ...(typeof type === 'string' && type.length <= 32 ? { type } : {}),
    ...(typeof doc === 'string' && doc.length <= 256 ? { doc } : {}),
    ...(typeof seq === 'number' && Number.isSafeInteger(seq) ? { seq } : {}),
    ...(typeof rid === 'number' && Number.isSafeInteger(rid) ? { rid } : {}),
  };
}

/**
 * Parses one client frame (a JSON text) into a {@link ClientMessage}, or throws a
 * {@link ProtocolError} (`bad-message`, `unknown-type`, `bad-request`, `invalid-op`) that
 * says why and which message it was. Never throws anything else; never returns a message with
 * an unchecked field.
 */
export function parseClientMessage(data: string, limits: ParseLimits = {}): ClientMessage {
  const msg = asObject(parseJson(data, CLIENT_MAX_DEPTH));
  const ref = refOf(msg);
  const r = new Reader(msg, ref, limitsOf(limits));
  const type = field(msg, 'type');
  switch (type) {
    case 'hello': {
      const clientId = r.optionalName('clientId', limitsOf(limits).maxClientIdLength);
      return {
        type,
        protocol: r.integer('protocol', 0),
        ...(clientId === undefined ? {} : { clientId }),
      };
    }
    case 'open': {
      const doc = r.doc();
      const rid = r.optionalInteger('rid', 1);
      const v = r.optionalInteger('v', 0);
      const epoch = r.optionalName('epoch', MAX_EPOCH_LENGTH);
      const sum = r.optionalChecksum('sum');
      if ((epoch === undefined) !== (sum === undefined) || (epoch !== undefined && v === undefined)) {
        throw new ProtocolError(ErrorCode.BadRequest, 'fields epoch and sum come together, and with v', ref);
      }
      const pieces = field(msg, 'pieces');
      if (pieces !== undefined && pieces !== true) throw new ProtocolError(ErrorCode.BadRequest, 'field pieces must be true', ref);
      return {
        type,
        doc,
        ...(rid === undefined ? {} : { rid }),
        ...(v === undefined ? {} : { v }),
        ...(epoch === undefined || sum === undefined ? {} : { epoch, sum }),
        ...(pieces === undefined ? {} : { pieces }),
      };
    }
    case 'restore': {
      const parts = r.integer('parts', 1);
      const part = r.integer('part', 0);
      if (part >= parts) throw new ProtocolError(ErrorCode.BadRequest, `field part must be below parts (${parts}), got ${part}`, ref);
      const op = field(msg, 'op') === undefined ? undefined : r.op();
      return {
        type,
        doc: r.doc(),
        rid: r.integer('rid', 1),
        lost: r.lostState('lost'),
        samples: r.samples('samples'),
        part,
        parts,
        text: r.text('text', MAX_RESTORE_TEXT),
        ...(op === undefined ? {} : { op }),
      };
    }
    case 'diverged':
      return { type, doc: r.doc(), v: r.integer('v', 0) };
    case 'submit':
      return { type, doc: r.doc(), v: r.integer('v', 0), seq: r.integer('seq', 1), op: r.op() };
    case 'presence':
      return { type, doc: r.doc(), v: r.integer('v', 0), selection: r.selection(), ...r.profile() };
    case 'close':
      return { type, doc: r.doc() };
    case 'ping':
      return { type };
    case 'auth':
      return { type, token: r.string('token', 8192) };
    default:
      throw new ProtocolError(
        ErrorCode.UnknownType,
        typeof type === 'string' ? `unknown message type ${JSON.stringify(type.slice(0, 32))}` : 'the message has no string type',
        ref,
      );
  }
}

/** Parses a list of op entries ({v, op, author?, seq?}) of a server frame. */
function opEntries(value: unknown): OpEntry[] {
  if (!Array.isArray(value)) throw new ProtocolError(ErrorCode.BadMessage, 'ops must be an array');
  return value.map((e) => {
    const entry = asObject(e);
    const er = new Reader(entry, {}, limitsOf({}));
    const author = er.optionalString('author', 1024);
    const seq = er.optionalInteger('seq', 1);
    return {
      v: er.integer('v', 1),
      op: er.op(),
      ...(author === undefined ? {} : { author }),
      ...(seq === undefined ? {} : { seq }),
    };
  });
}

/**
 * Parses one server frame into its messages (a frame holds one message or an array of them).
 * The client uses it defensively: a server is trusted, a proxy or a bug may not be. Throws
 * {@link ProtocolError} on anything malformed.
 */
export function parseServerFrame(data: string): ServerMessage[] {
  const value = parseJson(data, SERVER_MAX_DEPTH);
  const items = Array.isArray(value) ? value : [value];
  return items.map((item): ServerMessage => {
    const msg = asObject(item);
    const r = new Reader(msg, refOf(msg), limitsOf({ maxDocIdLength: 1024 }));
    const type = field(msg, 'type');
    switch (type) {
      case 'welcome': {
        const lr = new Reader(asObject(field(msg, 'limits')), {}, limitsOf({}));
        return {
          type,
          protocol: r.integer('protocol', 0),
          connectionId: r.string('connectionId', 256),
          clientId: r.string('clientId', 256),
          limits: { maxPayload: lr.integer('maxPayload', 1), maxOpLength: lr.integer('maxOpLength', 1) },
        };
      }
      case 'opened': {
        const text = field(msg, 'text');
        if (text !== undefined && typeof text !== 'string') {
          throw new ProtocolError(ErrorCode.BadMessage, 'opened.text must be a string');
        }
        const ops = field(msg, 'ops');
        const rid = r.optionalInteger('rid', 1);
        const lost = field(msg, 'lost');
        if (lost !== undefined && lost !== true) throw new ProtocolError(ErrorCode.BadMessage, 'opened.lost must be true');
        const recovered = field(msg, 'recovered') === undefined ? undefined : r.object('recovered');
        return {
          type,
          doc: r.doc(),
          ...(rid === undefined ? {} : { rid }),
          epoch: r.string('epoch', MAX_EPOCH_LENGTH),
          v: r.integer('v', 0),
          sum: r.checksum('sum'),
          seq: r.integer('seq', 0),
          ...(text === undefined ? {} : { text }),
          ...(ops === undefined ? {} : { ops: opEntries(ops) }),
          ...(lost === undefined ? {} : { lost }),
          ...(recovered === undefined ? {} : { recovered: { v: recovered.integer('v', 0), sum: recovered.checksum('sum') } }),
          ...(field(msg, 'sums') === undefined ? {} : { sums: r.samples('sums') }),
        };
      }
      case 'restored':
        return { type, doc: r.doc(), rid: r.integer('rid', 1), v: r.integer('v', 0), applied: r.boolean('applied') };
      case 'head':
        return { type, doc: r.doc(), v: r.integer('v', 0), sum: r.checksum('sum') };
      case 'ops': {
        const rid = r.optionalInteger('rid', 1);
        return { type, doc: r.doc(), ...(rid === undefined ? {} : { rid }), ops: opEntries(field(msg, 'ops')), sum: r.checksum('sum') };
      }
      case 'ack': {
        const sum = r.optionalChecksum('sum');
        return { type, doc: r.doc(), seq: r.integer('seq', 1), v: r.integer('v', 1), ...(sum === undefined ? {} : { sum }) };
      }
      case 'presence': {
        const user = r.optionalString('user', 1024);
        return {
          type,
          doc: r.doc(),
          id: r.string('id', 256),
          v: r.integer('v', 0),
          selection: r.selection(),
          ...(user === undefined ? {} : { user }),
          ...r.profile(),
        };
      }
      case 'left':
        return { type, doc: r.doc(), id: r.string('id', 256) };
      case 'closed':
        return { type, doc: r.doc() };
      case 'revoked': {
        const access = field(msg, 'access');
        if (access !== 'none' && access !== 'read') {
          throw new ProtocolError(ErrorCode.BadMessage, "revoked.access must be 'none' or 'read'");
        }
        return { type, doc: r.doc(), access };
      }
      case 'pong':
        return { type };
      case 'authed': {
        const expiresAt = r.optionalInteger('expiresAt', 0);
        return expiresAt === undefined ? { type } : { type, expiresAt };
      }
      case 'error': {
        const code = r.string('code', 64) as ErrorCode;
        const message = r.string('message', 65536);
        const ref = field(msg, 'ref');
        return { type, code, message, ...(ref === undefined ? {} : { ref: refOf(asObject(ref)) }) };
      }
      default:
        throw new ProtocolError(ErrorCode.UnknownType, `unknown server message type ${JSON.stringify(String(type).slice(0, 32))}`);
    }
  });
}
