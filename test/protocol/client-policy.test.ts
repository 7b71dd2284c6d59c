/**
 * The client's policy per error code (src/protocol/errors.ts): every code has one, a code this
 * version does not know (or a name on Object.prototype) is only reported, and the policy keeps
 * the rules the client's laws rest on.
 */
import { describe, expect, it } from 'vitest';
import { CLIENT_POLICY, ErrorCode, clientPolicy } from '../../src/protocol/errors.js';

describe('clientPolicy', () => {
  it('has a policy for every code, and only for codes', () => {
    expect(Object.keys(CLIENT_POLICY).sort()).toEqual(Object.values(ErrorCode).sort());
  });

  it('only reports a code it does not know, also one named like a property of every object', () => {
    for (const code of ['no-such-code', 'toString', 'constructor', '__proto__']) {
      expect(clientPolicy(code)).toEqual({ submit: 'report', open: 'report', contradicts: false });
    }
  });

  it('retries only what a later attempt can fix, and gives up an open only where none can', () => {
    const retried = Object.values(ErrorCode).filter((c) => clientPolicy(c).submit === 'retry' || clientPolicy(c).open === 'retry');
    expect(retried.sort()).toEqual([ErrorCode.RateLimited, ErrorCode.StorageFailed].sort());
    expect(clientPolicy(ErrorCode.StorageCorrupt).open).toBe('fatal');
    // A server behind what the client holds gets its claim, never a snapshot to adopt.
    expect(clientPolicy(ErrorCode.VersionAhead).submit).toBe('catch-up');
  });
});
