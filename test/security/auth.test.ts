/**
 * Authentication at the HTTP upgrade and the origin allow-list, over real sockets.
 *
 * For each key kind of the built-in JWT verifier (HS256 secret, RS256 public key, local JWKS):
 * every bad request is refused with HTTP 401 before any WebSocket exists (the server holds no
 * connection), no token ever reaches a log line, and a valid token is accepted in each of the
 * three places a request may carry it, its user becoming the author of the user's ops.
 */
import { type KeyObject, createPublicKey } from 'node:crypto';
import { type JWK, SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JwtOptions } from '../../src/server/auth.js';
import {
  type CapturingLogger,
  algNoneToken,
  attempt,
  b64url,
  closeAll,
  connect,
  hs256Token,
  joined,
  nowSeconds,
  startServer,
} from './helpers.js';
import type { Attempt } from '../support/raw-client.js';
import { fromPatch } from '../../src/ot/index.js';

afterEach(closeAll);

const AUDIENCE = 'otter';
const ISSUER = 'https://idp.example';
const SECRET = 'a-test-secret-of-at-least-32-chars!';

interface KeyKind {
  name: string;
  jwt: () => JwtOptions;
  /** A valid token for `claims` (defaults: aud, iss, iat, exp in an hour). */
  sign: (claims: Record<string, unknown>) => Promise<string>;
  /** A token with the right shape signed by the wrong key. */
  forge: (claims: Record<string, unknown>) => Promise<string>;
}

let rsaPublicPem = '';
const kinds: KeyKind[] = [];

function defaults(claims: Record<string, unknown>): Record<string, unknown> {
  return { aud: AUDIENCE, iss: ISSUER, iat: nowSeconds(), exp: nowSeconds() + 3600, ...claims };
}

async function rsaSigner(alg: 'RS256', key: CryptoKey | KeyObject, kid?: string) {
  return (claims: Record<string, unknown>) =>
    new SignJWT(defaults(claims)).setProtectedHeader(kid === undefined ? { alg } : { alg, kid }).sign(key);
}

beforeAll(async () => {
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const other = await generateKeyPair('RS256', { extractable: true });
  rsaPublicPem = await exportSPKI(rsa.publicKey);
  const jwk: JWK = { ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  const secret = new TextEncoder().encode(SECRET);
  kinds.push(
    {
      name: 'HS256 secret',
      jwt: () => ({ secret: SECRET, audience: AUDIENCE, issuer: ISSUER }),
      sign: (claims) => new SignJWT(defaults(claims)).setProtectedHeader({ alg: 'HS256' }).sign(secret),
      forge: (claims) =>
        new SignJWT(defaults(claims))
          .setProtectedHeader({ alg: 'HS256' })
          .sign(new TextEncoder().encode('another-secret-of-at-least-32-chars')),
    },
    {
      name: 'RS256 public key',
      jwt: () => ({ publicKey: rsaPublicPem, audience: AUDIENCE, issuer: ISSUER }),
      sign: await rsaSigner('RS256', rsa.privateKey),
      forge: await rsaSigner('RS256', other.privateKey),
    },
    {
      name: 'local JWKS',
      jwt: () => ({ jwks: { keys: [jwk] }, audience: AUDIENCE, issuer: ISSUER }),
      sign: await rsaSigner('RS256', rsa.privateKey, 'k1'),
      forge: await rsaSigner('RS256', other.privateKey, 'k1'),
    },
  );
});

/** Asserts an attempt was refused with `status` and its body does not echo `secrets`. */
function expectRefused(a: Attempt, status: number, secrets: string[] = []): void {
  expect(a.ok ? 'accepted' : a.status).toBe(status);
  if (!a.ok) for (const s of secrets) expect(a.body).not.toContain(s);
}

/** Asserts no log line contains any of the token's parts. */
function expectNotLogged(logger: CapturingLogger, tokens: string[]): void {
  const text = logger.text();
  for (const t of tokens) {
    expect(text).not.toContain(t);
    // The signature and payload segments alone must not leak either.
    for (const part of t.split('.')) if (part.length >= 16) expect(text).not.toContain(part);
  }
}

describe.each([0, 1, 2])('JWT authentication (%#)', (index) => {
  const kind = (): KeyKind => kinds[index] as KeyKind;

  it('refuses every bad request with HTTP 401 before the upgrade, holds no connection, logs no token', async () => {
    const k = kind();
    const { server, logger } = await startServer({ jwt: k.jwt() });
    const now = nowSeconds();
    const valid = await k.sign({ sub: 'ann' });
    const valid2 = await k.sign({ sub: 'bob' });
    const cases: Array<{ what: string; headers?: Record<string, string>; query?: string; protocols?: string[]; tokens: string[] }> = [];
    const bearer = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });
    const bad: Array<[string, string]> = [
      ['garbage', 'garbage-token-0123456789abcdef'],
      ['three garbage segments', 'aaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbb.cccccccccccccccccccc'],
      ['bad signature', await k.forge({ sub: 'ann' })],
      ['alg none', algNoneToken(defaults({ sub: 'ann' }))],
      ['HS256 signed with the RSA public key PEM', hs256Token(defaults({ sub: 'ann' }), rsaPublicPem)],
      ['expired', await k.sign({ sub: 'ann', iat: now - 7200, exp: now - 60 })],
      ['not yet valid', await k.sign({ sub: 'ann', nbf: now + 3600 })],
      ['wrong audience', await k.sign({ sub: 'ann', aud: 'someone-else' })],
      ['wrong issuer', await k.sign({ sub: 'ann', iss: 'https://evil.example' })],
      ['no user claim', await k.sign({})],
      ['user claim not a string', await k.sign({ sub: 42 })],
      // It scopes the user's client marks, which a store keeps as UTF-8.
      ['user claim with a lone surrogate', await k.sign({ sub: 'ann\ud800' })],
      ['valid signature, tampered payload', tamper(valid, { sub: 'root' })],
    ];
    cases.push({ what: 'no token', tokens: [] });
    for (const [what, t] of bad) {
      cases.push({ what: `${what} (header)`, ...bearer(t), tokens: [t] });
      cases.push({ what: `${what} (query)`, query: `token=${encodeURIComponent(t)}`, tokens: [t] });
      cases.push({ what: `${what} (subprotocol)`, protocols: ['otter.v1', `otter.token.${t}`], tokens: [t] });
    }
    cases.push(
      { what: 'header + query', ...bearer(valid), query: `token=${valid2}`, tokens: [valid, valid2] },
      { what: 'header + subprotocol', ...bearer(valid), protocols: ['otter.v1', `otter.token.${valid2}`], tokens: [valid, valid2] },
      { what: 'query + subprotocol', query: `token=${valid}`, protocols: ['otter.v1', `otter.token.${valid2}`], tokens: [valid, valid2] },
      { what: 'two query tokens', query: `token=${valid}&token=${valid2}`, tokens: [valid, valid2] },
      { what: 'a bad and a good token', ...bearer(valid), query: `token=${bad[0]?.[1]}`, tokens: [valid] },
      { what: 'Basic instead of Bearer', headers: { authorization: `Basic ${b64url('ann:pw')}` }, tokens: [] },
    );
    for (const c of cases) {
      const a = await attempt(server, c);
      expect.soft(a.ok ? 'accepted' : a.status, c.what).toBe(401);
      if (!a.ok) for (const t of c.tokens) expect.soft(a.body, c.what).not.toContain(t);
      expect(server.connections, c.what).toBe(0);
    }
    expectNotLogged(logger, [valid, valid2, ...bad.map(([, t]) => t)]);
    // A refusal is logged (without the token): operators see attacks.
    expect(logger.lines.some((l) => l.message === 'authentication refused')).toBe(true);
  });

  it('accepts a valid token in each of the three places; the author of the ops is the token user', async () => {
    const k = kind();
    const { server, logger } = await startServer({ jwt: k.jwt() });
    const tAnn = await k.sign({ sub: 'ann' });
    const tBob = await k.sign({ sub: 'bob' });
    const tCat = await k.sign({ sub: 'cat' });
    const watcher = await joined(server, 'doc', { headers: { authorization: `Bearer ${tBob}` } });
    const places = [
      { user: 'ann', options: { headers: { authorization: `Bearer ${tAnn}` } } },
      { user: 'cat', options: { query: `token=${encodeURIComponent(tCat)}` } },
      { user: 'ann', options: { protocols: ['otter.v1', `otter.token.${tAnn}`] } },
      // The same token twice is one token, not two.
      { user: 'cat', options: { headers: { authorization: `Bearer ${tCat}` }, query: `token=${tCat}` } },
    ];
    let v = 0;
    let len = 0;
    for (const [i, p] of places.entries()) {
      const { client } = await joined(server, 'doc', { ...p.options, clientId: `c${i}` });
      // The server chose otter.v1, never echoing the token subprotocol.
      expect(client.ws.protocol).toBe('otter.v1');
      const from = watcher.client.messages.length;
      // A client-supplied author field is ignored.
      client.send({ type: 'submit', doc: 'doc', v, seq: 1, op: fromPatch(len, len, 0, `${i}`), author: 'mallory' });
      await client.nextOf('ack', { doc: 'doc', seq: 1 });
      const ops = await watcher.client.nextOf('ops', { doc: 'doc' }, { from: from });
      expect(ops.ops).toEqual([{ v: v + 1, op: fromPatch(len, len, 0, `${i}`), author: p.user }]);
      v++;
      len++;
      client.terminate();
    }
    const log = await server.sequencer.getOps('doc', 0);
    expect(log.map((r) => r.author)).toEqual(places.map((p) => p.user));
    expectNotLogged(logger, [tAnn, tBob, tCat]);
  });

  it('takes the presence name and colour from the token, whatever the client sends; keeps its other fields', async () => {
    const k = kind();
    const { server } = await startServer({ jwt: k.jwt() });
    const bearer = async (claims: Record<string, unknown>) => ({ headers: { authorization: `Bearer ${await k.sign(claims)}` } });
    const watcher = await joined(server, 'doc', await bearer({ sub: 'bob' }));
    const ann = await joined(server, 'doc', { ...(await bearer({ sub: 'ann', name: 'Ann Lee', color: '#00aa55' })), clientId: 'a' });
    // No name claim: the user id is the name; a colour claim that is no colour is ignored.
    const cat = await joined(server, 'doc', { ...(await bearer({ sub: 'cat', color: 'url(x)' })), clientId: 'c' });
    const from = watcher.client.messages.length;
    ann.client.send({ type: 'presence', doc: 'doc', v: 0, selection: null, profile: { name: 'Mallory', color: '#ff0000', role: 'editor' } });
    const fromAnn = await watcher.client.nextOf('presence', { doc: 'doc', user: 'ann' }, { from });
    expect(fromAnn.profile).toEqual({ name: 'Ann Lee', color: '#00aa55', role: 'editor' });
    cat.client.send({ type: 'presence', doc: 'doc', v: 0, selection: null, profile: { name: 'Mallory', color: 'red' } });
    const fromCat = await watcher.client.nextOf('presence', { doc: 'doc', user: 'cat' }, { from });
    expect(fromCat.profile).toEqual({ name: 'cat', color: 'red' });
    // A client that sends no profile is still named.
    const at = watcher.client.messages.length;
    cat.client.send({ type: 'presence', doc: 'doc', v: 0, selection: [{ anchor: 0, head: 0 }] });
    expect((await watcher.client.nextOf('presence', { doc: 'doc', user: 'cat' }, { from: at })).profile).toEqual({ name: 'cat' });
  });

  it('states the credentials expiry from the token exp in `authed`', async () => {
    const k = kind();
    const { server } = await startServer({ jwt: k.jwt() });
    const exp = nowSeconds() + 600;
    const client = await connect(server, { headers: { authorization: `Bearer ${await k.sign({ sub: 'ann', exp })}` } });
    await client.hello();
    const from = client.messages.length;
    client.send({ type: 'auth', token: await k.sign({ sub: 'ann', exp: exp + 600 }) });
    expect(await client.nextOf('authed', {}, { from: from })).toEqual({ type: 'authed', expiresAt: (exp + 600) * 1000 });
    // A refreshed token that is bad in any way is refused, the connection stays.
    for (const token of [algNoneToken(defaults({ sub: 'ann' })), await k.forge({ sub: 'ann' }), 'garbage']) {
      const at = client.messages.length;
      client.send({ type: 'auth', token });
      const err = await client.nextOf('error', {}, { from: at });
      expect(err.code).toBe('auth-expired');
    }
    await client.ping();
  });
});

/** A token whose payload is replaced while keeping the original header and signature. */
function tamper(token: string, claims: Record<string, unknown>): string {
  const [header, payload, sig] = token.split('.') as [string, string, string];
  const decoded = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
  return `${header}.${b64url(JSON.stringify({ ...decoded, ...claims }))}.${sig}`;
}

describe('JWT verifier configuration', () => {
  it('an RS256 server refuses an HS256 token signed with its own public key (also as DER/JWK bytes)', async () => {
    const { server } = await startServer({ jwt: { publicKey: rsaPublicPem } });
    const claims = { sub: 'ann', exp: nowSeconds() + 600 };
    const der = createPublicKey(rsaPublicPem).export({ type: 'spki', format: 'der' });
    for (const secret of [rsaPublicPem, rsaPublicPem.trim(), der]) {
      const a = await attempt(server, { headers: { authorization: `Bearer ${hs256Token(claims, secret)}` } });
      expectRefused(a, 401);
    }
    expect(server.connections).toBe(0);
  });

  it('refuses to start with no key, two keys, or a short HS256 secret', async () => {
    await expect(startServer({ jwt: {} })).rejects.toThrow(RangeError);
    await expect(startServer({ jwt: { secret: SECRET, publicKey: rsaPublicPem } })).rejects.toThrow(RangeError);
    await expect(startServer({ jwt: { secret: 'short' } })).rejects.toThrow(RangeError);
    await expect(startServer({ jwt: { secret: SECRET }, authenticate: async () => ({ user: 'x' }) })).rejects.toThrow(
      RangeError,
    );
  });

  it('a custom authenticate that throws, resolves undefined or names a user id holding a lone surrogate refuses with 401 and logs no token', async () => {
    const secretToken = 'custom-secret-token-5f1e2d3c4b5a';
    const { server, logger } = await startServer({
      authenticate: async (token) => {
        if (token === 'boom') throw new Error(`lookup failed for ${token}`);
        if (token === 'lone') return { user: 'ann\udc00' };
        return undefined;
      },
    });
    for (const t of [secretToken, 'boom', 'lone']) {
      expectRefused(await attempt(server, { query: `token=${t}` }), 401, [t]);
    }
    expect(server.connections).toBe(0);
    expect(logger.text()).not.toContain(secretToken);
    // The error's message (which may quote the token) is not logged, only its name.
    expect(logger.text()).not.toContain('lookup failed');
  });
});

describe('origin allow-list', () => {
  it('refuses other origins with HTTP 403; accepts the exact origin and requests without Origin', async () => {
    const { server } = await startServer({ allowOrigins: ['https://app.example'] });
    const refused = [
      'null',
      'https://app.example.evil.com',
      'https://evil.example',
      'http://app.example',
      'https://app.example:444',
      'https://app.example:443',
      'https://app.example/',
      'https://APP.example',
      'https://app.example.',
      'https://sub.app.example',
      'https://app.exampl',
      '',
    ];
    for (const origin of refused) {
      const a = await attempt(server, { origin });
      expect.soft(a.ok ? 'accepted' : a.status, JSON.stringify(origin)).toBe(403);
      expect(server.connections).toBe(0);
    }
    const exact = await connect(server, { origin: 'https://app.example' });
    await exact.hello();
    await exact.ping();
    const none = await connect(server); // non-browser clients send no Origin
    await none.hello();
    await none.ping();
    expect(server.connections).toBe(2);
  });

  it('checks the origin before the token: a bad origin with a valid token is 403, a good origin without one 401', async () => {
    const { server } = await startServer({
      allowOrigins: ['https://app.example'],
      authenticate: async (token) => (token === 'good-token-value' ? { user: 'ann' } : undefined),
    });
    expectRefused(await attempt(server, { origin: 'https://evil.example', query: 'token=good-token-value' }), 403);
    expectRefused(await attempt(server, { origin: 'https://app.example' }), 401);
    const ok = await connect(server, { origin: 'https://app.example', query: 'token=good-token-value' });
    await ok.hello();
    expect(server.connections).toBe(1);
  });

  it('does not negotiate permessage-deflate (no decompression bombs)', async () => {
    const { server } = await startServer();
    const client = await connect(server);
    expect(client.ws.extensions).toBe(''); // the ws client offered permessage-deflate
    await client.hello();
  });
});
