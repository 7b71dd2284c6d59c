/**
 * Authentication at the HTTP upgrade, and the built-in JWT verifier on `jose` (the only file
 * that imports it). A request carries its token in exactly one of: `Authorization: Bearer`,
 * the `token` query parameter, or a WebSocket subprotocol `otter.token.<jwt>` (browsers cannot
 * set headers). Anything else — no token, two different tokens, garbage, a bad signature,
 * `alg: none`, an algorithm the key is not for, an expired `exp`, a future `nbf`, a wrong
 * `aud`/`iss` — is refused with HTTP 401 before the upgrade.
 */
import { isWellFormed } from '../ot/operation.js';
import type http from 'node:http';
import type * as Jose from 'jose';
import type { JWTPayload, JWTVerifyGetKey, KeyObject } from 'jose';
import { OTTER_SUBPROTOCOL, PROFILE_LIMITS, TOKEN_SUBPROTOCOL_PREFIX } from '../protocol/messages.js';
import { isProfileColor } from '../protocol/parse.js';
import { importOptional } from './optional-package.js';

/** What a user may do with a document. */
export type Access = 'none' | 'read' | 'write';

/** Decides what `user` (undefined without authentication) may do with `docId`. */
export type Authorize = (user: string | undefined, docId: string) => Access | Promise<Access>;

/** Who a connection belongs to, as an authenticator established it. */
export interface Identity {
  /** The user id: stored as the author of the user's ops and the scope of its client ids. */
  readonly user: string;
  /** When the credentials expire (ms since the epoch), if they do. */
  readonly expiresAt?: number | undefined;
  /**
   * The user's display name and cursor colour, which a client cannot override in its presence
   * profile. Without a `name` here the user id is shown as the name.
   */
  readonly profile?: { readonly name?: string; readonly color?: string } | undefined;
}

/**
 * Decides who a request is. Resolves to an {@link Identity}, or rejects / resolves undefined to
 * refuse it (HTTP 401). `token` is the token found on the request, if any; `request` is the
 * upgrade request (for cookies or headers an embedding application uses instead), absent when
 * a connected client refreshes its token with an `auth` message.
 */
export type Authenticate = (
  token: string | undefined,
  request?: http.IncomingMessage,
) => Promise<Identity | undefined>;

export { OTTER_SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX };

/** A request that names two different tokens. */
export class AmbiguousTokenError extends Error {
  override readonly name = 'AmbiguousTokenError';
}

/**
 * The token a request carries, undefined if none. Throws {@link AmbiguousTokenError} when it
 * carries different tokens in different places.
 */
export function tokenOf(request: http.IncomingMessage): string | undefined {
  const found = new Set<string>();
  const header = request.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    found.add(match?.[1] ?? header); // a malformed header still counts, and fails verification
  }
  const query = new URL(request.url ?? '/', 'http://localhost').searchParams.getAll('token');
  for (const t of query) found.add(t);
  const protocols = request.headers['sec-websocket-protocol'];
  if (protocols !== undefined) {
    for (const p of protocols.split(',')) {
      const entry = p.trim();
      if (entry.startsWith(TOKEN_SUBPROTOCOL_PREFIX)) found.add(entry.slice(TOKEN_SUBPROTOCOL_PREFIX.length));
    }
  }
  if (found.size > 1) throw new AmbiguousTokenError('the request carries more than one token');
  return found.values().next().value;
}

/** Options of the built-in JWT verifier; give exactly one of `secret`, `publicKey`, `jwks`, `jwksUrl`. */
export interface JwtOptions {
  /** HS256 shared secret. */
  readonly secret?: string;
  /** RS256 (or ES256) public key, PEM-encoded SPKI. */
  readonly publicKey?: string;
  /** A JSON Web Key Set held locally. */
  readonly jwks?: { keys: object[] };
  /** The URL of a JSON Web Key Set, fetched and cached by jose. */
  readonly jwksUrl?: string;
  /** Required `aud` claim, if set. */
  readonly audience?: string;
  /** Required `iss` claim, if set. */
  readonly issuer?: string;
  /** The claim naming the user. Default `sub`. */
  readonly userClaim?: string;
  /**
   * The claim holding the display name shown with the user's presence (a string of 1 to
   * {@link PROFILE_LIMITS}`.stringLength` code units; otherwise the user id is shown). Default `name`.
   */
  readonly nameClaim?: string;
  /** The claim holding the user's cursor colour (`#rrggbb` or a colour keyword; ignored otherwise). Default `color`. */
  readonly colorClaim?: string;
  /** Allowed clock skew in seconds for `exp` and `nbf`. Default 0. */
  readonly clockTolerance?: number;
}

/**
 * An {@link Authenticate} that verifies JWTs. The accepted algorithm follows the key kind —
 * HS256 for a secret, RS256/ES256 for public keys and key sets — so `alg: none` and an HS256
 * token signed with the RSA public key are refused. Throws at construction on options that
 * name no key or several; rejects with `MissingPackageError` when jose, an optional peer of
 * `otter` loaded here, is not installed.
 */
export async function jwtAuthenticator(options: JwtOptions): Promise<Authenticate> {
  const kinds = [options.secret, options.publicKey, options.jwks, options.jwksUrl].filter((k) => k !== undefined);
  if (kinds.length !== 1) {
    throw new RangeError('give exactly one of secret, publicKey, jwks or jwksUrl for JWT verification');
  }
  const { createLocalJWKSet, createRemoteJWKSet, importSPKI, jwtVerify } = await importOptional<typeof Jose>(
    'jose',
    'JWT verification (jwtAuthenticator, otter serve --jwt-*)',
  );
  let key: Uint8Array | KeyObject | CryptoKey | JWTVerifyGetKey;
  let algorithms: string[];
  if (options.secret !== undefined) {
    if (options.secret.length < 16) throw new RangeError('the JWT secret must be at least 16 characters');
    key = new TextEncoder().encode(options.secret);
    algorithms = ['HS256'];
  } else if (options.publicKey !== undefined) {
    algorithms = options.publicKey.includes('BEGIN PUBLIC KEY') ? ['RS256', 'ES256'] : [];
    key = await importSPKI(options.publicKey, 'RS256').catch(() => importSPKI(options.publicKey as string, 'ES256'));
  } else if (options.jwks !== undefined) {
    key = createLocalJWKSet(options.jwks as Parameters<typeof createLocalJWKSet>[0]);
    algorithms = ['RS256', 'ES256'];
  } else {
    key = createRemoteJWKSet(new URL(options.jwksUrl as string));
    algorithms = ['RS256', 'ES256'];
  }
  const claim = options.userClaim ?? 'sub';
  return async (token) => {
    if (token === undefined) return undefined;
    const { payload } = await jwtVerify(token, key as Uint8Array, {
      algorithms,
      ...(options.audience === undefined ? {} : { audience: options.audience }),
      ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
      clockTolerance: options.clockTolerance ?? 0,
    });
    const claims = payload as JWTPayload & Record<string, unknown>;
    const user = claims[claim];
    // The user id scopes the user's client marks, which a store keeps as UTF-8: no lone surrogate.
    if (typeof user !== 'string' || user.length === 0 || user.length > 256 || !isWellFormed(user)) return undefined;
    const name = claims[options.nameClaim ?? 'name'];
    const color = claims[options.colorClaim ?? 'color'];
    const profile = {
      ...(typeof name === 'string' && name.length > 0 && name.length <= PROFILE_LIMITS.stringLength ? { name } : {}),
      ...(isProfileColor(color) ? { color } : {}),
    };
    return { user, expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined, profile };
  };
}
