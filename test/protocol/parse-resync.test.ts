/**
 * The validating parser (src/protocol/parse.ts) on the fields of resync: request ids, epochs
 * and checksums on `open`, the `restore` and `diverged` client messages, and the server's
 * `opened`, `restored`, op entries, `ack` and error refs. Every refusal is a ProtocolError with
 * the code parse.ts gives it: `bad-request` for a field of the wrong type or range (the
 * Reader), `bad-message` for a server frame of the wrong shape, `invalid-op` for an op.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/protocol/errors.js';
import type { ErrorRef } from '../../src/protocol/messages.js';
import { MAX_RESTORE_SAMPLES, ProtocolError, parseClientMessage, parseServerFrame } from '../../src/protocol/parse.js';

/** The ProtocolError parsing `data` throws (fails the test if it throws nothing or anything else). */
function refusal(parse: (data: string) => unknown, data: string): ProtocolError {
  try {
    parse(data);
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    return e as ProtocolError;
  }
  throw new Error(`expected a ProtocolError, the frame was accepted: ${data.slice(0, 200)}`);
}

const client = (msg: unknown): ReturnType<typeof parseClientMessage> => parseClientMessage(JSON.stringify(msg));
const server = (msg: unknown): ReturnType<typeof parseServerFrame> => parseServerFrame(JSON.stringify(msg));

function expectClientRefused(msg: unknown, code: string, ref?: ErrorRef): void {
  const e = refusal(parseClientMessage, typeof msg === 'string' ? msg : JSON.stringify(msg));
  expect(e.code).toBe(code);
  if (ref !== undefined) expect(e.ref).toEqual(ref);
}

function expectServerRefused(msg: unknown, code: string): void {
  const e = refusal(parseServerFrame, typeof msg === 'string' ? msg : JSON.stringify(msg));
  expect(e.code).toBe(code);
}

const TWO_53 = 2 ** 53;

// ─── client: ids a store keeps as UTF-8 ─────────────────────────────────────────────────────────

describe('parseClientMessage: client ids and epochs are well-formed UTF-16', () => {
  // Stores may keep them as UTF-8, where every lone surrogate becomes U+FFFD: two ids differing
  // only there would share one client mark.
  it('refuses a hello whose clientId holds a lone surrogate, and accepts one with a surrogate pair', () => {
    expectClientRefused({ type: 'hello', protocol: 1, clientId: 'c\ud800' }, ErrorCode.BadRequest, { type: 'hello' });
    expectClientRefused({ type: 'hello', protocol: 1, clientId: '\udc00' }, ErrorCode.BadRequest);
    expect(client({ type: 'hello', protocol: 1, clientId: 'c😀' })).toEqual({ type: 'hello', protocol: 1, clientId: 'c😀' });
  });

  it("refuses an open's claimed epoch and a restore's lost epoch holding a lone surrogate", () => {
    expectClientRefused({ type: 'open', doc: 'd', v: 1, epoch: 'e\ud800', sum: 0 }, ErrorCode.BadRequest);
    const restore = { type: 'restore', doc: 'd', rid: 1, part: 0, parts: 1, lost: { epoch: 'e\udc00', v: 1, sum: 0 }, samples: [], text: 'x' };
    expectClientRefused(restore, ErrorCode.BadRequest);
  });
});

// ─── client: open ────────────────────────────────────────────────────────────────────────────

describe('parseClientMessage: open', () => {
  it('accepts a rid ≥ 1 and returns it; a bare open has no rid, v, epoch or sum', () => {
    expect(client({ type: 'open', doc: 'd', rid: 7 })).toEqual({ type: 'open', doc: 'd', rid: 7 });
    expect(client({ type: 'open', doc: 'd', rid: TWO_53 - 1 })).toEqual({ type: 'open', doc: 'd', rid: TWO_53 - 1 });
    const bare = client({ type: 'open', doc: 'd' });
    expect(bare).toEqual({ type: 'open', doc: 'd' });
    expect(Object.keys(bare).sort()).toEqual(['doc', 'type']);
  });

  it('refuses a rid of 0, negative, fractional, a string or past 2^53 with bad-request', () => {
    for (const rid of [0, -1, 1.5, '3', TWO_53, null, true]) {
      expectClientRefused({ type: 'open', doc: 'd', rid }, ErrorCode.BadRequest);
    }
  });

  it('accepts pieces: true (the client takes a long catch-up in pieces) and refuses any other value', () => {
    expect(client({ type: 'open', doc: 'd', rid: 2, v: 1, epoch: 'e', sum: 5, pieces: true })).toEqual({
      type: 'open',
      doc: 'd',
      rid: 2,
      v: 1,
      epoch: 'e',
      sum: 5,
      pieces: true,
    });
    for (const pieces of [false, 1, 'true', null]) {
      expectClientRefused({ type: 'open', doc: 'd', rid: 2, pieces }, ErrorCode.BadRequest, { type: 'open', doc: 'd', rid: 2 });
    }
  });

  it('reads the rid of a catch-up piece (an ops message answering an open) and keeps plain ops without one', () => {
    const piece = { type: 'ops', doc: 'd', rid: 9, ops: [{ v: 3, op: [1, 'x'] }], sum: 17 };
    expect(server(piece)).toEqual([piece]);
    expect(server({ type: 'ops', doc: 'd', ops: [{ v: 3, op: [1, 'x'] }], sum: 17 })).toEqual([
      { type: 'ops', doc: 'd', ops: [{ v: 3, op: [1, 'x'] }], sum: 17 },
    ]);
    expectServerRefused({ ...piece, rid: 0 }, ErrorCode.BadRequest);
  });

  it('accepts v, epoch and sum together (a catch-up) and returns exactly those fields', () => {
    const msg = client({ type: 'open', doc: 'd', rid: 3, v: 12, epoch: 'e-1', sum: 123456789, extra: 1 });
    expect(msg).toEqual({ type: 'open', doc: 'd', rid: 3, v: 12, epoch: 'e-1', sum: 123456789 });
    expect(client({ type: 'open', doc: 'd', v: 0, epoch: 'x', sum: 0 })).toEqual({ type: 'open', doc: 'd', v: 0, epoch: 'x', sum: 0 });
    expect(client({ type: 'open', doc: 'd', v: 1, epoch: 'x', sum: TWO_53 - 1 })).toEqual({
      type: 'open',
      doc: 'd',
      v: 1,
      epoch: 'x',
      sum: TWO_53 - 1,
    });
  });

  it('refuses epoch without sum, sum without epoch, and epoch + sum without v, with bad-request naming the open', () => {
    const ref = { type: 'open', doc: 'd', rid: 4 };
    expectClientRefused({ type: 'open', doc: 'd', rid: 4, v: 3, epoch: 'e' }, ErrorCode.BadRequest, ref);
    expectClientRefused({ type: 'open', doc: 'd', rid: 4, v: 3, sum: 5 }, ErrorCode.BadRequest, ref);
    expectClientRefused({ type: 'open', doc: 'd', rid: 4, epoch: 'e', sum: 5 }, ErrorCode.BadRequest, ref);
    expectClientRefused({ type: 'open', doc: 'd', rid: 4, epoch: 'e' }, ErrorCode.BadRequest, ref);
    expectClientRefused({ type: 'open', doc: 'd', rid: 4, sum: 5 }, ErrorCode.BadRequest, ref);
  });

  it('refuses a negative, fractional, non-number or past-2^53 sum with bad-request', () => {
    for (const sum of [-1, 0.5, 1.25, '5', null, TWO_53, TWO_53 + 2, 1e300]) {
      expectClientRefused({ type: 'open', doc: 'd', v: 1, epoch: 'e', sum }, ErrorCode.BadRequest);
    }
    // 1e999 is Infinity after JSON.parse.
    expectClientRefused('{"type":"open","doc":"d","v":1,"epoch":"e","sum":1e999}', ErrorCode.BadRequest);
    // 9007199254740993 reads as 2^53, which is not safe.
    expectClientRefused('{"type":"open","doc":"d","v":1,"epoch":"e","sum":9007199254740993}', ErrorCode.BadRequest);
  });

  it('accepts an epoch of 64 code units and refuses 65, an empty one or a non-string with bad-request', () => {
    const e64 = 'e'.repeat(64);
    expect(client({ type: 'open', doc: 'd', v: 1, epoch: e64, sum: 1 })).toMatchObject({ epoch: e64 });
    for (const epoch of ['e'.repeat(65), '', 5]) {
      expectClientRefused({ type: 'open', doc: 'd', v: 1, epoch, sum: 1 }, ErrorCode.BadRequest);
    }
  });

  it('refuses a negative or fractional v with bad-request', () => {
    expectClientRefused({ type: 'open', doc: 'd', v: -1, epoch: 'e', sum: 1 }, ErrorCode.BadRequest);
    expectClientRefused({ type: 'open', doc: 'd', v: 1.5, epoch: 'e', sum: 1 }, ErrorCode.BadRequest);
  });
});

// ─── client: restore ─────────────────────────────────────────────────────────────────────────

const RESTORE = {
  type: 'restore',
  doc: 'd',
  rid: 5,
  lost: { epoch: 'old', v: 9, sum: 424242 },
  samples: [
    [8, 17],
    [3, 0],
  ],
  part: 0,
  parts: 2,
  text: 'hello 😀',
} as const;

describe('parseClientMessage: restore', () => {
  it('accepts a valid restore and returns exactly its fields (unknown ones dropped)', () => {
    expect(client({ ...RESTORE, junk: true })).toEqual(RESTORE);
    expect(client({ ...RESTORE, part: 1, text: '', samples: [] })).toMatchObject({ part: 1, parts: 2, text: '', samples: [] });
  });

  it('accepts lost.v = 0 and lost.sum = 0 (the empty version 0)', () => {
    expect(client({ ...RESTORE, lost: { epoch: 'old', v: 0, sum: 0 } })).toMatchObject({ lost: { epoch: 'old', v: 0, sum: 0 } });
  });

  it('refuses part ≥ parts with bad-request, keeping the rid in the ref', () => {
    const ref = { type: 'restore', doc: 'd', rid: 5 };
    expectClientRefused({ ...RESTORE, part: 2, parts: 2 }, ErrorCode.BadRequest, ref);
    expectClientRefused({ ...RESTORE, part: 3, parts: 2 }, ErrorCode.BadRequest, ref);
    expectClientRefused({ ...RESTORE, part: 1, parts: 1 }, ErrorCode.BadRequest, ref);
  });

  it('refuses parts 0, a negative part and missing part or parts with bad-request', () => {
    expectClientRefused({ ...RESTORE, part: 0, parts: 0 }, ErrorCode.BadRequest);
    expectClientRefused({ ...RESTORE, part: -1 }, ErrorCode.BadRequest);
    const { part: _p, ...noPart } = RESTORE;
    const { parts: _ps, ...noParts } = RESTORE;
    expectClientRefused(noPart, ErrorCode.BadRequest);
    expectClientRefused(noParts, ErrorCode.BadRequest);
  });

  it('refuses a missing or zero rid, and a missing doc, with bad-request', () => {
    const { rid: _r, ...noRid } = RESTORE;
    const { doc: _d, ...noDoc } = RESTORE;
    expectClientRefused(noRid, ErrorCode.BadRequest);
    expectClientRefused({ ...RESTORE, rid: 0 }, ErrorCode.BadRequest);
    expectClientRefused(noDoc, ErrorCode.BadRequest);
  });

  it('refuses a lost state that is not an object or has a bad epoch, v or sum, with bad-request', () => {
    for (const lost of [
      undefined,
      null,
      'old',
      [1, 2],
      { v: 1, sum: 1 },
      { epoch: '', v: 1, sum: 1 },
      { epoch: 'x'.repeat(65), v: 1, sum: 1 },
      { epoch: 'old', v: -1, sum: 1 },
      { epoch: 'old', v: 1.5, sum: 1 },
      { epoch: 'old', sum: 1 },
      { epoch: 'old', v: 1 },
      { epoch: 'old', v: 1, sum: -1 },
      { epoch: 'old', v: 1, sum: 0.5 },
      { epoch: 'old', v: 1, sum: TWO_53 },
    ]) {
      expectClientRefused({ ...RESTORE, lost }, ErrorCode.BadRequest);
    }
  });

  it(`samples: accepts exactly ${MAX_RESTORE_SAMPLES} pairs, refuses ${MAX_RESTORE_SAMPLES + 1} and a non-array with bad-request`, () => {
    expect(MAX_RESTORE_SAMPLES).toBe(64);
    const many = Array.from({ length: MAX_RESTORE_SAMPLES }, (_, i) => [i, i * 7]);
    const msg = client({ ...RESTORE, samples: many });
    expect(msg.type === 'restore' && msg.samples).toEqual(many);
    expectClientRefused({ ...RESTORE, samples: [...many, [99, 1]] }, ErrorCode.BadRequest);
    for (const samples of [undefined, null, 'x', 3, { 0: [1, 2] }]) {
      expectClientRefused({ ...RESTORE, samples }, ErrorCode.BadRequest);
    }
  });

  it('samples: refuses a pair of the wrong shape or range with bad-request', () => {
    for (const pair of [[], [1], [1, 2, 3], ['1', 2], [1, '2'], [-1, 2], [1, -2], [1.5, 2], [1, 2.5], [1, TWO_53], null, 5, 'ab']) {
      expectClientRefused({ ...RESTORE, samples: [[2, 3], pair] }, ErrorCode.BadRequest);
    }
  });

  it('the optional op is returned when valid and refused with invalid-op when it is not an op', () => {
    expect(client({ ...RESTORE, op: [3, 'x', -2] })).toMatchObject({ op: [3, 'x', -2] });
    for (const op of ['abc', 5, null, [0], ['', 1], [1.5], [{}], [TWO_53]]) {
      expectClientRefused({ ...RESTORE, op }, ErrorCode.InvalidOp, { type: 'restore', doc: 'd', rid: 5 });
    }
    // A lone surrogate in an insert.
    const lone = JSON.stringify({ ...RESTORE, op: ['x'] }).replace('["x"]', '["\\ud800"]');
    expectClientRefused(lone, ErrorCode.InvalidOp);
  });

  it('refuses a text that is not a string with bad-request', () => {
    for (const text of [undefined, null, 5, ['a']]) expectClientRefused({ ...RESTORE, text }, ErrorCode.BadRequest);
  });
});

// ─── client: diverged, error refs ────────────────────────────────────────────────────────────

describe('parseClientMessage: diverged and error refs', () => {
  it('diverged: accepts {doc, v ≥ 0} and returns exactly those fields', () => {
    expect(client({ type: 'diverged', doc: 'd', v: 0 })).toEqual({ type: 'diverged', doc: 'd', v: 0 });
    expect(client({ type: 'diverged', doc: 'd', v: 41, sum: 3, rid: 2 })).toEqual({ type: 'diverged', doc: 'd', v: 41 });
  });

  it('diverged: refuses a missing, negative, fractional or string v and a missing doc with bad-request', () => {
    for (const v of [undefined, -1, 0.5, '3']) expectClientRefused({ type: 'diverged', doc: 'd', v }, ErrorCode.BadRequest);
    expectClientRefused({ type: 'diverged', v: 3 }, ErrorCode.BadRequest);
  });

  it('a refusal’s ref carries the message’s rid when it is a safe integer, and leaves it out otherwise', () => {
    expect(refusal(parseClientMessage, JSON.stringify({ type: 'open', doc: 'd', rid: 9, v: -1 })).ref).toEqual({
      type: 'open',
      doc: 'd',
      rid: 9,
    });
    // rid itself out of range: still named in the ref (it is a safe integer), refused as bad-request.
    const zero = refusal(parseClientMessage, JSON.stringify({ type: 'open', doc: 'd', rid: 0 }));
    expect(zero.code).toBe(ErrorCode.BadRequest);
    expect(zero.ref).toEqual({ type: 'open', doc: 'd', rid: 0 });
    const fractional = refusal(parseClientMessage, JSON.stringify({ type: 'open', doc: 'd', rid: 1.5 }));
    expect(fractional.ref).toEqual({ type: 'open', doc: 'd' });
    const text = refusal(parseClientMessage, JSON.stringify({ type: 'open', doc: 'd', rid: '9' }));
    expect(text.ref).toEqual({ type: 'open', doc: 'd' });
  });
});

// ─── server frames ───────────────────────────────────────────────────────────────────────────

const OPENED = { type: 'opened', doc: 'd', rid: 3, epoch: 'e1', v: 4, sum: 99, seq: 2, text: 'abcd' } as const;

describe('parseServerFrame: opened', () => {
  it('accepts a snapshot with rid, epoch and sum, and returns exactly its fields', () => {
    expect(server({ ...OPENED, junk: 1 })).toEqual([{ type: 'opened', doc: 'd', rid: 3, epoch: 'e1', v: 4, sum: 99, seq: 2, text: 'abcd' }]);
    const { rid: _r, ...noRid } = OPENED;
    expect(server(noRid)).toEqual([{ type: 'opened', doc: 'd', epoch: 'e1', v: 4, sum: 99, seq: 2, text: 'abcd' }]);
  });

  it('requires epoch and sum: missing, empty or over-long epoch, and missing or bad sum, are bad-request', () => {
    const { epoch: _e, ...noEpoch } = OPENED;
    const { sum: _s, ...noSum } = OPENED;
    expectServerRefused(noEpoch, ErrorCode.BadRequest);
    expectServerRefused(noSum, ErrorCode.BadRequest);
    expectServerRefused({ ...OPENED, epoch: '' }, ErrorCode.BadRequest);
    expectServerRefused({ ...OPENED, epoch: 'e'.repeat(65) }, ErrorCode.BadRequest);
    for (const sum of [-1, 2.5, '99', null, TWO_53]) expectServerRefused({ ...OPENED, sum }, ErrorCode.BadRequest);
  });

  it('refuses a rid of 0 or a fractional rid with bad-request', () => {
    expectServerRefused({ ...OPENED, rid: 0 }, ErrorCode.BadRequest);
    expectServerRefused({ ...OPENED, rid: 1.5 }, ErrorCode.BadRequest);
  });

  it('accepts lost: true with recovered {v ≥ 0, sum} and returns them', () => {
    const lost = { type: 'opened', doc: 'd', rid: 3, epoch: 'e2', v: 7, sum: 5, seq: 0, lost: true };
    expect(server(lost)).toEqual([lost]);
    for (const recovered of [
      { v: 0, sum: 0 },
      { v: 12, sum: TWO_53 - 1 },
    ]) {
      expect(server({ ...lost, recovered })).toEqual([{ ...lost, recovered }]);
    }
  });

  it('refuses lost other than true (false, 1, "true", null) with bad-message', () => {
    for (const lost of [false, 1, 'true', null]) expectServerRefused({ ...OPENED, lost }, ErrorCode.BadMessage);
  });

  it('refuses recovered that is not an object, or with v < 0 or a bad sum, with bad-request', () => {
    for (const recovered of [null, 3, 'x', [1, 2], { v: -1, sum: 0 }, { v: 1.5, sum: 0 }, { sum: 0 }, { v: 1 }, { v: 1, sum: -3 }]) {
      expectServerRefused({ ...OPENED, lost: true, recovered }, ErrorCode.BadRequest);
    }
  });

  it("accepts lost with the server's checksums (sums: up to 64 [version, checksum] pairs) and refuses malformed ones with bad-request", () => {
    const lost = { type: 'opened', doc: 'd', rid: 3, epoch: 'e2', v: 7, sum: 5, seq: 0, lost: true };
    const sums = [
      [7, 1],
      [3, TWO_53 - 1],
      [0, 0],
    ];
    expect(server({ ...lost, sums })).toEqual([{ ...lost, sums }]);
    const many = Array.from({ length: 65 }, (_, i) => [i, 1]);
    for (const bad of [null, 'x', [[1]], [[-1, 0]], [[1, -1]], [[1.5, 0]], many]) {
      expectServerRefused({ ...lost, sums: bad }, ErrorCode.BadRequest);
    }
  });

  it('refuses a text that is not a string with bad-message', () => {
    expectServerRefused({ ...OPENED, text: 5 }, ErrorCode.BadMessage);
  });
});

describe('parseServerFrame: op entries, ack, restored, error refs', () => {
  const ENTRY = { v: 5, op: [4, 'x'], author: 'ann', seq: 3 };

  it('an ops message requires sum (the checksum at its last entry); entries are returned whole, in ops and in opened.ops', () => {
    expect(server({ type: 'ops', doc: 'd', ops: [ENTRY, { v: 6, op: ['y', 5] }], sum: 0 })).toEqual([
      { type: 'ops', doc: 'd', ops: [ENTRY, { v: 6, op: ['y', 5] }], sum: 0 },
    ]);
    const { text: _t, ...catchUp } = OPENED;
    expect(server({ ...catchUp, v: 5, ops: [ENTRY] })).toEqual([{ ...catchUp, v: 5, ops: [ENTRY] }]);
  });

  it('an ops message without sum, or with a negative, fractional or past-2^53 one, is bad-request', () => {
    expectServerRefused({ type: 'ops', doc: 'd', ops: [ENTRY] }, ErrorCode.BadRequest);
    for (const sum of [-1, 0.5, '77', TWO_53]) {
      expectServerRefused({ type: 'ops', doc: 'd', ops: [ENTRY], sum }, ErrorCode.BadRequest);
    }
  });

  it('ops that is not an array and an entry that is not an object are bad-message; a bad op is invalid-op', () => {
    expectServerRefused({ type: 'ops', doc: 'd', ops: 'x', sum: 0 }, ErrorCode.BadMessage);
    expectServerRefused({ type: 'ops', doc: 'd', ops: [5], sum: 0 }, ErrorCode.BadMessage);
    expectServerRefused({ type: 'ops', doc: 'd', ops: [{ ...ENTRY, op: [0] }], sum: 0 }, ErrorCode.InvalidOp);
  });

  it('ack: sum is optional; present, it is returned, absent, the message has no sum key', () => {
    const [withSum] = server({ type: 'ack', doc: 'd', seq: 2, v: 8, sum: 1234 });
    expect(withSum).toEqual({ type: 'ack', doc: 'd', seq: 2, v: 8, sum: 1234 });
    const [without] = server({ type: 'ack', doc: 'd', seq: 2, v: 8 });
    expect(without).toEqual({ type: 'ack', doc: 'd', seq: 2, v: 8 });
    expect(Object.keys(without as object)).not.toContain('sum');
    expect(server({ type: 'ack', doc: 'd', seq: 1, v: 1, sum: 0 })).toEqual([{ type: 'ack', doc: 'd', seq: 1, v: 1, sum: 0 }]);
  });

  it('ack: a negative, fractional, string or past-2^53 sum is bad-request', () => {
    for (const sum of [-1, 0.5, '3', null, TWO_53]) expectServerRefused({ type: 'ack', doc: 'd', seq: 2, v: 8, sum }, ErrorCode.BadRequest);
  });

  it('restored: {doc, rid ≥ 1, v ≥ 0, applied} is returned exactly; a bad or missing field is bad-request', () => {
    const ok = { type: 'restored', doc: 'd', rid: 4, v: 0, applied: false };
    expect(server({ ...ok, extra: 'x' })).toEqual([ok]);
    expect(server({ ...ok, v: 10, applied: true })).toEqual([{ ...ok, v: 10, applied: true }]);
    for (const bad of [
      { ...ok, rid: 0 },
      { ...ok, rid: undefined },
      { ...ok, v: -1 },
      { ...ok, applied: 'yes' },
      { ...ok, applied: 1 },
      { ...ok, applied: undefined },
      { ...ok, doc: undefined },
    ]) {
      expectServerRefused(bad, ErrorCode.BadRequest);
    }
  });

  it('an error’s ref keeps a safe-integer rid and drops one that is not', () => {
    expect(server({ type: 'error', code: 'bad-request', message: 'm', ref: { type: 'open', doc: 'd', rid: 12 } })).toEqual([
      { type: 'error', code: 'bad-request', message: 'm', ref: { type: 'open', doc: 'd', rid: 12 } },
    ]);
    expect(server({ type: 'error', code: 'bad-request', message: 'm', ref: { type: 'restore', rid: 1.5, seq: 2 } })).toEqual([
      { type: 'error', code: 'bad-request', message: 'm', ref: { type: 'restore', seq: 2 } },
    ]);
    expect(server({ type: 'error', code: 'bad-request', message: 'm', ref: { rid: '12' } })).toEqual([
      { type: 'error', code: 'bad-request', message: 'm', ref: {} },
    ]);
  });

  it('a batch frame parses every message, and one bad message refuses the frame', () => {
    const batch = [OPENED, { type: 'ack', doc: 'd', seq: 3, v: 5, sum: 1 }, { type: 'restored', doc: 'd', rid: 4, v: 5, applied: true }];
    expect(server(batch)).toHaveLength(3);
    expectServerRefused([OPENED, { type: 'ack', doc: 'd', seq: 3, v: 5, sum: -1 }], ErrorCode.BadRequest);
  });
});
