/**
 * What the client reads from and does with its token, as pure functions: how the WebSocket
 * handshake carries it, and when it expires. Nothing here verifies a token; the server does.
 */

import { OTTER_SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from '../protocol/messages.js';

export { OTTER_SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX };

/** Characters a token may have to travel as a subprotocol (JWTs use only these). */
const SUBPROTOCOL_SAFE = /^[A-Za-z0-9._~-]+$/;

/** The arguments of `new WebSocket(url, protocols)` for one connection attempt. */
export interface Handshake {
  readonly url: string;
  readonly protocols: string[];
}

/**
 * How to open a socket to `url` with `token`: the token as the subprotocol
 * `otter.token.<token>` offered next to `otter.v1`, so it stays out of URLs (and the logs
 * that keep them); a token with characters a subprotocol cannot carry (anything outside
 * `[A-Za-z0-9._~-]`) goes as the `token` query parameter instead. No token: just `otter.v1`.
 */
export function handshake(url: URL, token: string | undefined): Handshake {
  if (token === undefined) return { url: url.href, protocols: [OTTER_SUBPROTOCOL] };
  if (SUBPROTOCOL_SAFE.test(token)) {
    return { url: url.href, protocols: [OTTER_SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + token] };
  }
  const withQuery = new URL(url);
  withQuery.searchParams.set('token', token);
  return { url: withQuery.href, protocols: [OTTER_SUBPROTOCOL] };
}

/**
 * When `token` expires, in ms since the epoch: the `exp` claim of a JWT (three base64url
 * parts, the middle one a JSON object), read without verifying anything. Undefined for a
 * token that is not a JWT or has no numeric `exp`: its expiry is unknown.
 */
export function tokenExpiry(token: string): number | undefined {
  const parts = token.split('.');
  const payload = parts[1];
  if (parts.length !== 3 || payload === undefined || !/^[A-Za-z0-9_-]+$/.test(payload)) return undefined;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
    const claims: unknown = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (ch) => ch.charCodeAt(0))));
    if (typeof claims !== 'object' || claims === null) return undefined;
    const exp = (claims as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
