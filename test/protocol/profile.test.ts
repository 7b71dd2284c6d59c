/**
 * The presence profile in the validating parser: a flat record of strings, finite numbers and
 * booleans with a `#rrggbb` or keyword colour, within PROFILE_LIMITS, on the client's and the
 * server's `presence`. A profile past any cap is refused with `bad-request`, whole.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/protocol/errors.js';
import { PROFILE_LIMITS } from '../../src/protocol/messages.js';
import { ProtocolError, parseClientMessage, parseServerFrame, readProfile } from '../../src/protocol/parse.js';

const presence = (profile: unknown): string =>
  JSON.stringify({ type: 'presence', doc: 'd', v: 3, selection: null, profile });

function refused(data: string): ProtocolError {
  try {
    parseClientMessage(data);
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    return e as ProtocolError;
  }
  throw new Error(`expected a ProtocolError, the frame was accepted: ${data.slice(0, 200)}`);
}

const many = (n: number): Record<string, number> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}`, i]));

describe('presence profile', () => {
  it('accepts a valid profile on both sides, copying only its fields', () => {
    const profile = { name: 'Ann', color: '#00aa55', role: 'editor', age: 3.5, admin: false, empty: '' };
    expect(parseClientMessage(presence(profile))).toEqual({ type: 'presence', doc: 'd', v: 3, selection: null, profile });
    expect(parseClientMessage(presence({ color: 'teal' }))).toMatchObject({ profile: { color: 'teal' } });
    expect(parseClientMessage(presence(many(PROFILE_LIMITS.fields)))).toMatchObject({ profile: many(PROFILE_LIMITS.fields) });
    const frame = JSON.stringify({ type: 'presence', doc: 'd', id: 'c1', v: 3, selection: null, user: 'ann', profile });
    expect(parseServerFrame(frame)).toEqual([{ type: 'presence', doc: 'd', id: 'c1', v: 3, selection: null, user: 'ann', profile }]);
  });

  it('leaves out a profile that is not there', () => {
    expect(parseClientMessage(JSON.stringify({ type: 'presence', doc: 'd', v: 3, selection: null }))).not.toHaveProperty('profile');
  });

  const bad: Array<[string, unknown]> = [
    ['not an object', 'Ann'],
    ['an array', ['Ann']],
    ['null', null],
    ['a nested object', { name: 'Ann', extra: { deep: 1 } }],
    ['an array value', { tags: ['a'] }],
    ['a null value', { name: null }],
    ['a name that is no string', { name: 7 }],
    ['a colour that is no colour', { color: 'red; background: url(x)' }],
    ['a short hex colour', { color: '#fff' }],
    ['a capitalised keyword colour', { color: 'Red' }],
    ['too many fields', many(PROFILE_LIMITS.fields + 1)],
    ['a key too long', { ['k'.repeat(PROFILE_LIMITS.keyLength + 1)]: 1 }],
    ['an empty key', { '': 1 }],
    ['a string too long', { name: 'a'.repeat(PROFILE_LIMITS.stringLength + 1) }],
    ['too long as JSON', Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`f${i}`, 'x'.repeat(PROFILE_LIMITS.stringLength)]))],
  ];
  for (const [what, profile] of bad) {
    it(`refuses ${what} with bad-request`, () => {
      expect(refused(presence(profile)).code).toBe(ErrorCode.BadRequest);
    });
  }

  it('refuses 1e999 (Infinity) and a prototype key', () => {
    expect(refused(presence('X').replace('"X"', '{"n":1e999}')).code).toBe(ErrorCode.BadRequest);
    expect(refused(presence('X').replace('"X"', '{"__proto__":"x"}')).code).toBe(ErrorCode.BadMessage);
    expect(typeof readProfile(JSON.parse('{"__proto__":"x"}'))).toBe('string');
  });

  it('refuses a server presence with a bad profile', () => {
    const frame = JSON.stringify({ type: 'presence', doc: 'd', id: 'c1', v: 3, selection: null, profile: { color: 'javascript:x' } });
    expect(() => parseServerFrame(frame)).toThrow(ProtocolError);
  });
});
