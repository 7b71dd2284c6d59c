/**
 * Fuzzing the one validating parser and a live server.
 *
 * Parser: for arbitrary strings, arbitrary JSON, and valid messages mutated with random fields
 * and hostile number spellings, `parseClientMessage` throws nothing but ProtocolError, every
 * message it returns passes an independent validator (and carries the input's values, no
 * others), and Object.prototype is untouched.
 *
 * Socket: arbitrary frames against a live server never apply anything invalid (the document
 * always equals the replay of its log, is well-formed UTF-16, and a bystander's view
 * converges), and the server keeps answering pings.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../src/ot/index.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { ProtocolError, parseClientMessage } from '../../src/protocol/parse.js';
import type { OtterServer } from '../../src/server/ws-server.js';
import { closeAll, connect, joined, prototypeKeys, prototypePolluted, replayOf, startServer } from './helpers.js';
import type { RawClient } from '../support/raw-client.js';
import { sleep, within } from '../support/wait.js';

// ─── an independent validator of parsed client messages ─────────────────────────────────────

const isSafeNat = (v: unknown, min = 0): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
const isStr = (v: unknown, max: number): boolean => typeof v === 'string' && v.length >= 1 && v.length <= max;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function validOp(op: unknown): boolean {
  if (!Array.isArray(op)) return false;
  let base = 0;
  let target = 0;
  for (const c of op) {
    if (typeof c === 'string') {
      if (c.length === 0 || LONE_SURROGATE.test(c)) return false;
      target += c.length;
    } else if (typeof c === 'number') {
      if (!Number.isSafeInteger(c) || c === 0) return false;
      if (c > 0) {
        base += c;
        target += c;
      } else base -= c;
    } else return false;
  }
  return Number.isSafeInteger(base) && Number.isSafeInteger(target);
}

function validSelection(s: unknown): boolean {
  if (s === null) return true;
  if (!Array.isArray(s) || s.length > 64) return false;
  return s.every(
    (r) =>
      typeof r === 'object' &&
      r !== null &&
      Object.getPrototypeOf(r) === Object.prototype &&
      sameKeys(r, ['anchor', 'head'], []) &&
      isSafeNat((r as Record<string, unknown>).anchor) &&
      isSafeNat((r as Record<string, unknown>).head),
  );
}

function sameKeys(obj: object, required: string[], optional: string[]): boolean {
  const keys = Object.keys(obj);
  return required.every((k) => keys.includes(k)) && keys.every((k) => required.includes(k) || optional.includes(k));
}

/** Why `m` (returned by the parser for `input`) is not acceptable, or undefined if it is. */
function problem(m: unknown, input: unknown): string | undefined {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return 'not an object';
  if (Object.getPrototypeOf(m) !== Object.prototype) return 'not a plain object';
  const msg = m as Record<string, unknown>;
  const src = input as Record<string, unknown>;
  const echoes = (k: string) => JSON.stringify(msg[k]) === JSON.stringify(src[k]);
  switch (msg.type) {
    case 'hello':
      if (!sameKeys(msg, ['type', 'protocol'], ['clientId'])) return 'hello keys';
      if (!isSafeNat(msg.protocol)) return 'hello.protocol';
      if (msg.clientId !== undefined && !isStr(msg.clientId, 128)) return 'hello.clientId';
      return echoes('protocol') && (msg.clientId === undefined || echoes('clientId')) ? undefined : 'hello values';
    case 'open':
      if (!sameKeys(msg, ['type', 'doc'], ['v'])) return 'open keys';
      if (!isStr(msg.doc, 256) || (msg.v !== undefined && !isSafeNat(msg.v))) return 'open fields';
      return echoes('doc') && (msg.v === undefined || echoes('v')) ? undefined : 'open values';
    case 'submit':
      if (!sameKeys(msg, ['type', 'doc', 'v', 'seq', 'op'], [])) return 'submit keys';
      if (!isStr(msg.doc, 256) || !isSafeNat(msg.v) || !isSafeNat(msg.seq, 1) || !validOp(msg.op)) return 'submit fields';
      return ['doc', 'v', 'seq', 'op'].every(echoes) ? undefined : 'submit values';
    case 'presence':
      if (!sameKeys(msg, ['type', 'doc', 'v', 'selection'], [])) return 'presence keys';
      if (!isStr(msg.doc, 256) || !isSafeNat(msg.v) || !validSelection(msg.selection)) return 'presence fields';
      return ['doc', 'v'].every(echoes) ? undefined : 'presence values';
    case 'close':
      if (!sameKeys(msg, ['type', 'doc'], []) || !isStr(msg.doc, 256)) return 'close';
      return echoes('doc') ? undefined : 'close values';
    case 'ping':
      return sameKeys(msg, ['type'], []) ? undefined : 'ping keys';
    case 'auth':
      if (!sameKeys(msg, ['type', 'token'], []) || !isStr(msg.token, 8192)) return 'auth';
      return echoes('token') ? undefined : 'auth values';
    default:
      return `type ${String(msg.type)}`;
  }
}

const PARSER_CODES: string[] = [ErrorCode.BadMessage, ErrorCode.UnknownType, ErrorCode.BadRequest, ErrorCode.InvalidOp];

/** Parses `text`; asserts the outcome is a valid message or a ProtocolError, prototype untouched. */
function check(text: string): void {
  const before = prototypeKeys();
  let parsed: unknown;
  try {
    parsed = parseClientMessage(text);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw new Error(`threw ${String(e)} for ${text.slice(0, 200)}`);
    expect(PARSER_CODES).toContain(e.code);
    expect(typeof e.message).toBe('string');
    parsed = undefined;
  }
  if (parsed !== undefined) {
    const why = problem(parsed, JSON.parse(text));
    if (why !== undefined) throw new Error(`accepted a bad message (${why}): ${text.slice(0, 300)}`);
  }
  expect(prototypeKeys()).toEqual(before);
  expect(prototypePolluted()).toBe(false);
}

// ─── arbitraries: hostile JSON text ─────────────────────────────────────────────────────────

/** A JSON value as text, including number spellings JSON.stringify never makes. */
const hostileNumber = fc.constantFrom(
  '1e999', '-1e999', '1.5', '-1', '-0', '0', '1', '9007199254740991', '9007199254740992', '9007199254740993',
  '-9007199254740993', '1e21', '5e-324', '0.1', '1E2', '"5"', '"1"', 'null', 'true', 'false', '[]', '{}', '[1]',
);
const smallValue: fc.Arbitrary<string> = fc.oneof(
  hostileNumber,
  fc.integer({ min: -1000, max: 1000 }).map(String),
  fc.double().map((d) => (Number.isFinite(d) ? JSON.stringify(d) : '1e999')),
  fc.string({ maxLength: 20, unit: 'binary' }).map((s) => JSON.stringify(s)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
);
const FIELD_NAMES = ['type', 'doc', 'v', 'seq', 'op', 'selection', 'protocol', 'clientId', 'token', 'anchor', 'head'];
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype'];
const keyArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...FIELD_NAMES) },
  { weight: 1, arbitrary: fc.constantFrom(...PROTO_KEYS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 8 }) },
);
const TYPES = ['hello', 'open', 'submit', 'presence', 'close', 'ping', 'auth'];

/** An op as text: components valid, invalid or hostile. */
const opText = fc
  .array(
    fc.oneof(
      fc.integer({ min: -20, max: 20 }).map(String),
      fc.string({ minLength: 0, maxLength: 6, unit: 'binary' }).map((s) => JSON.stringify(s)),
      hostileNumber,
    ),
    { maxLength: 6 },
  )
  .map((cs) => `[${cs.join(',')}]`);
const rangeText = fc
  .tuple(smallValue, smallValue, fc.option(fc.tuple(keyArb, smallValue), { nil: undefined }))
  .map(([a, h, extra]) => `{"anchor":${a},"head":${h}${extra === undefined ? '' : `,${JSON.stringify(extra[0])}:${extra[1]}`}}`);
const selectionText = fc.oneof(fc.constant('null'), fc.array(rangeText, { maxLength: 3 }).map((rs) => `[${rs.join(',')}]`), smallValue);

/** A message that is valid or nearly so, as a list of [key, value-text] entries (keys may repeat). */
const nearValidEntries: fc.Arbitrary<Array<[string, string]>> = fc
  .record({
    type: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...TYPES).map((t) => JSON.stringify(t)) }, { weight: 1, arbitrary: smallValue }),
    doc: fc.oneof(fc.constantFrom('"d"', '"__proto__"', '""', `"${'x'.repeat(257)}"`), smallValue),
    v: fc.oneof(fc.nat(5).map(String), smallValue),
    seq: fc.oneof(fc.integer({ min: 1, max: 5 }).map(String), smallValue),
    op: fc.oneof(opText, smallValue),
    selection: selectionText,
    protocol: fc.oneof(fc.constant('1'), smallValue),
    clientId: fc.oneof(fc.constantFrom('"c1"', `"${'c'.repeat(129)}"`, '"a\\nb"'), smallValue),
    token: fc.oneof(fc.constant('"tok"'), smallValue),
  })
  .chain((fields) =>
    fc
      .tuple(
        fc.subarray(Object.keys(fields), { minLength: 1 }),
        fc.array(fc.tuple(keyArb, smallValue), { maxLength: 3 }),
      )
      .map(([keys, extra]) => [
        ...keys.map((k): [string, string] => [k, (fields as Record<string, string>)[k] as string]),
        ...extra,
      ]),
  );

function objectText(entries: Array<[string, string]>): string {
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
}

/** Valid messages (to mutate). */
const validMessage = fc.oneof(
  fc.record({ type: fc.constant('hello'), protocol: fc.constant(1), clientId: fc.string({ minLength: 1, maxLength: 10 }) }),
  fc.record({ type: fc.constant('open'), doc: fc.string({ minLength: 1, maxLength: 10 }), v: fc.nat() }),
  fc.record({
    type: fc.constant('submit'),
    doc: fc.constant('d'),
    v: fc.nat(),
    seq: fc.integer({ min: 1, max: 10 }),
    op: fc.array(fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: -9, max: -1 }), fc.string({ minLength: 1, maxLength: 4 })), { maxLength: 5 }),
  }),
  fc.record({
    type: fc.constant('presence'),
    doc: fc.constant('d'),
    v: fc.nat(),
    selection: fc.option(fc.array(fc.record({ anchor: fc.nat(), head: fc.nat() }), { maxLength: 3 }), { nil: null }),
  }),
  fc.record({ type: fc.constantFrom('close'), doc: fc.string({ minLength: 1, maxLength: 10 }) }),
  fc.record({ type: fc.constant('ping') }),
  fc.record({ type: fc.constant('auth'), token: fc.string({ minLength: 1, maxLength: 20 }) }),
);
/** A valid message with some fields replaced by random JSON, some removed, some added. */
const mutatedText = fc
  .tuple(validMessage, fc.array(fc.tuple(fc.oneof(fc.constantFrom(...FIELD_NAMES), keyArb), fc.option(fc.jsonValue({ maxDepth: 4 }), { nil: undefined })), { maxLength: 3 }))
  .map(([msg, mutations]) => {
    const entries = new Map<string, string>(Object.entries(msg).map(([k, v]) => [k, JSON.stringify(v)]));
    for (const [k, v] of mutations) {
      if (v === undefined) entries.delete(k);
      else entries.set(k, JSON.stringify(v) ?? 'null');
    }
    return objectText([...entries]);
  });

// ─── the parser fuzz ────────────────────────────────────────────────────────────────────────

describe('parser fuzz (parseClientMessage)', () => {
  it('arbitrary strings', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200, unit: 'binary' }), check), { numRuns: 2000 });
  });

  it('arbitrary JSON texts and values', () => {
    fc.assert(fc.property(fc.json({ maxDepth: 6 }), check), { numRuns: 2000 });
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => check(JSON.stringify(v) ?? 'null')),
      { numRuns: 2000 },
    );
  });

  it('near-valid messages with hostile fields, numbers and keys', () => {
    fc.assert(fc.property(nearValidEntries, (entries) => check(objectText(entries))), { numRuns: 5000 });
  });

  it('valid messages mutated with random fields', () => {
    fc.assert(fc.property(mutatedText, check), { numRuns: 3000 });
  });

  it('the validator agrees on known cases (the oracle is not vacuous)', () => {
    expect(problem(parseClientMessage('{"type":"submit","doc":"d","v":0,"seq":1,"op":["a",-2,3]}'), { doc: 'd', v: 0, seq: 1, op: ['a', -2, 3] })).toBeUndefined();
    expect(problem({ type: 'submit', doc: 'd', v: 0, seq: 0, op: [] }, {})).toBeDefined();
    expect(problem({ type: 'submit', doc: 'd', v: 0, seq: 1, op: ['\ud800'] }, {})).toBeDefined();
    expect(problem({ type: 'presence', doc: 'd', v: 0, selection: [{ anchor: 1.5, head: 0 }] }, {})).toBeDefined();
    expect(problem({ type: 'ping', extra: 1 }, {})).toBeDefined();
    expect(() => check('{"type":"ping","__proto__":{"x":1}}')).not.toThrow();
  });
});

// ─── the socket fuzz ────────────────────────────────────────────────────────────────────────

/** One fuzz action: a raw frame, or a plausible submit computed against the live document. */
type Action =
  | { kind: 'raw'; text: string }
  | { kind: 'binary'; bytes: Uint8Array }
  | { kind: 'edit'; pos: number; del: number; text: string; lag: number; seqDelta: number; mutate: boolean };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: nearValidEntries.map((e): Action => ({ kind: 'raw', text: objectText(e) })) },
  { weight: 2, arbitrary: mutatedText.map((text): Action => ({ kind: 'raw', text })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 50, unit: 'binary' }).map((text): Action => ({ kind: 'raw', text })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 20 }).map((bytes): Action => ({ kind: 'binary', bytes })) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('edit' as const),
      pos: fc.nat(50),
      del: fc.nat(4),
      text: fc.string({
        maxLength: 4,
        // Mostly well-formed text (astral characters included), now and then a lone surrogate.
        unit: fc.oneof(
          { weight: 30, arbitrary: fc.constantFrom('a', 'b', 'é', '\n', '\ud83d\ude00') },
          { weight: 1, arbitrary: fc.constantFrom('\ud83d', '\ude00') },
        ),
      }),
      lag: fc.nat(3),
      seqDelta: fc.constantFrom(0, 0, 0, 0, 0, 0, 1, -1, 2),
      mutate: fc.nat(5).map((n) => n === 0),
    }),
  },
);

describe('socket fuzz (a live server)', () => {
  let server: OtterServer;
  let bystander: RawClient;
  const DOC = 'd';

  beforeAll(async () => {
    ({ server } = await startServer({
      limits: { maxBadMessages: 1_000_000, messagesPerSecond: 1e6, bytesPerSecond: 1 << 30, bytesBurst: 1 << 30, maxRateStrikes: 1e6 },
    }));
    ({ client: bystander } = await joined(server, DOC));
  });
  afterAll(closeAll);

  it('arbitrary frames never apply anything invalid; the server keeps answering', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 1, maxLength: 25 }), async (actions) => {
        const before = prototypeKeys();
        const client = await connect(server);
        await client.hello(`fuzz-${run++}`);
        await client.open(DOC);
        let seq = 1;
        for (const a of actions) {
          if (!client.isOpen) break;
          if (a.kind === 'raw') client.sendText(a.text);
          else if (a.kind === 'binary') client.ws.send(a.bytes, { binary: true });
          else {
            const head = await server.sequencer.getSnapshot(DOC);
            const v = Math.max(0, head.version - a.lag);
            const baseText = (await server.sequencer.getSnapshot(DOC, v)).text;
            const base = baseText.length;
            const pos = Math.min(a.pos, base);
            const del = Math.min(a.del, base - pos);
            const op: Array<string | number> = [];
            if (pos > 0) op.push(pos);
            if (a.text.length > 0) op.push(a.text);
            if (del > 0) op.push(-del);
            if (base - pos - del > 0) op.push(base - pos - del);
            if (a.mutate && op.length > 0) op[op.length - 1] = typeof op[op.length - 1] === 'number' ? (op[op.length - 1] as number) + 1 : 1;
            client.send({ type: 'submit', doc: DOC, v, seq: Math.max(1, seq + a.seqDelta), op });
            // Move on to the next seq when this one should be applied (so later ones can be too).
            const splits = (at: number) => at > 0 && at < base && /[\uD800-\uDBFF]/.test(baseText[at - 1] ?? '') && /[\uDC00-\uDFFF]/.test(baseText[at] ?? '');
            if (!a.mutate && a.seqDelta === 0 && !LONE_SURROGATE.test(a.text) && !splits(pos) && !splits(pos + del)) seq++;
          }
        }
        if (client.isOpen) await client.ping().catch((e: unknown) => (client.isOpen ? Promise.reject(e) : undefined));
        await bystander.ping();
        client.terminate();

        // The document is exactly the replay of its log, and well-formed.
        const snap = await server.sequencer.getSnapshot(DOC);
        expect(snap.text).toBe(await replayOf(server, DOC));
        expect(LONE_SURROGATE.test(snap.text)).toBe(false);
        // The bystander saw every op, in order, and holds the same text.
        await within(
          (async () => {
            while (bystander.opsOf(DOC).length < snap.version) await sleep(5);
          })(),
          5000,
          'the bystander catching up',
        );
        let text = '';
        bystander.opsOf(DOC).forEach((e, i) => {
          expect(e.v).toBe(i + 1);
          text = apply(text, e.op);
        });
        expect(text).toBe(snap.text);
        expect(prototypeKeys()).toEqual(before);
        expect(prototypePolluted()).toBe(false);
      }),
      { numRuns: 100 },
    );
    // Something was actually applied along the way.
    expect((await server.sequencer.getSnapshot(DOC)).version).toBeGreaterThan(0);
  });
});
