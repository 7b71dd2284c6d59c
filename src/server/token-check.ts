/**
 * The token check: a plain-HTTP answer to "is this token accepted?" on the WebSocket path. A
 * browser sees only close code 1006 when the server refuses an upgrade with 401, so the client
 * asks here after an attempt that failed before opening, and reports `unauthorized` on a 401.
 */
import type http from 'node:http';
import type { Identity } from './auth.js';
import type { RouteHandler } from './http.js';

/** Paths the HTTP routes answer: not the token check when every path is the WebSocket path. */
const ROUTE_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/demo.js']);

/** What the token check needs from the server. */
export interface TokenCheckContext {
  /** The WebSocket path; undefined: every path but the HTTP routes' own. */
  readonly path: string | undefined;
  /** The allowed browser origins; undefined: every origin. */
  readonly allowOrigins: ReadonlySet<string> | undefined;
  /** Who the request is (undefined: the server does not authenticate), or the refusing HTTP status. */
  readonly identify: (req: http.IncomingMessage) => Promise<Identity | undefined | number>;
}

/**
 * Answers, on the WebSocket path: `GET`/`HEAD` with an `Authorization` header with 204 when
 * the upgrade would accept its token and 401 (body `token refused`) when not; the `OPTIONS`
 * preflight with 204. For an allowed `Origin` (every origin without `allowOrigins`) the answers
 * carry `Access-Control-Allow-Origin` with that origin; any other origin gets 403 without CORS
 * headers. Returns false for every other request. Never logs the token.
 */
export function createTokenCheck(ctx: TokenCheckContext): RouteHandler {
  return (req, res) => {
    const method = req.method ?? 'GET';
    const preflight = method === 'OPTIONS';
    if (!preflight && method !== 'GET' && method !== 'HEAD') return false;
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (ctx.path === undefined ? ROUTE_PATHS.has(path) : path !== ctx.path) return false;
    if (!preflight && req.headers.authorization === undefined) return false;
    const origin = req.headers.origin;
    const headers: Record<string, string> = { 'cache-control': 'no-store', vary: 'Origin' };
    if (origin !== undefined) {
      if (ctx.allowOrigins !== undefined && !ctx.allowOrigins.has(origin)) {
        res.writeHead(403, { ...headers, 'content-type': 'text/plain' }).end('origin not allowed\n');
        return true;
      }
      headers['access-control-allow-origin'] = origin;
    }
    if (preflight) {
      headers['access-control-allow-methods'] = 'GET, HEAD';
      headers['access-control-allow-headers'] = 'authorization';
      headers['access-control-max-age'] = '600';
      res.writeHead(204, headers).end();
      return true;
    }
    void ctx.identify(req).then((identity) => {
      if (typeof identity === 'number') {
        res.writeHead(identity, { ...headers, 'content-type': 'text/plain' }).end('token refused\n');
      } else {
        res.writeHead(204, headers).end();
      }
    });
    return true;
  };
}
