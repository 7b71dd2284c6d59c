/**
 * The plain-HTTP side of an Otter server: health, readiness, Prometheus metrics and the demo
 * editor page with its client bundle (built by `npm run build` into dist/demo/).
 */
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Metrics } from './metrics.js';
import { type ReadinessStatus, readinessAnswer } from './readiness.js';

/** What the HTTP routes read. */
export interface HttpContext {
  /** What `/readyz` answers from: the store's readiness as last judged (see `readiness.ts`). */
  readonly readiness: { readonly status: ReadinessStatus };
  readonly metrics: Metrics;
  /** Serve the demo page at `/` and its bundle at `/demo.js`. */
  readonly demo: boolean;
  /** Folder holding index.html and demo.js. Default: the package's dist/demo/. */
  readonly demoDir?: string;
}

/** A request handler that answers what it knows and reports whether it did. */
export type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

function readAsset(dir: string, name: string): Buffer | undefined {
  try {
    return readFileSync(`${dir}/${name}`);
  } catch {
    return undefined;
  }
}

/**
 * Routes: `GET /healthz` (200 while the process runs), `GET /readyz` (200 while the store can
 * be written, as its last write probe or append found; else 503 with the reason, also before
 * the first probe finished and while shutting down), `GET /metrics` (Prometheus text), and
 * with `demo`, `GET /` and `GET /demo.js`. Returns false for any other request, leaving it to
 * the caller.
 */
export function createRoutes(ctx: HttpContext): RouteHandler {
  const dir = ctx.demoDir ?? fileURLToPath(new URL('../../dist/demo', import.meta.url));
  const page = ctx.demo ? readAsset(dir, 'index.html') : undefined;
  const bundle = ctx.demo ? readAsset(dir, 'demo.js') : undefined;
  const send = (res: http.ServerResponse, status: number, type: string, body: string | Buffer): void => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
  };
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    switch (path) {
      case '/healthz':
        send(res, 200, 'text/plain', 'ok\n');
        return true;
      case '/readyz': {
        const answer = readinessAnswer(ctx.readiness.status);
        send(res, answer.status, 'text/plain', answer.body);
        return true;
      }
      case '/metrics':
        ctx.metrics.text().then(
          (text) => send(res, 200, ctx.metrics.contentType, text),
          () => send(res, 500, 'text/plain', 'metrics failed\n'),
        );
        return true;
      case '/':
        if (!ctx.demo) return false;
        if (page === undefined || bundle === undefined) {
          send(res, 503, 'text/plain', 'the demo page is not built: run npm run build\n');
        } else {
          send(res, 200, 'text/html; charset=utf-8', page);
        }
        return true;
      case '/demo.js':
        if (!ctx.demo || bundle === undefined) return false;
        send(res, 200, 'text/javascript; charset=utf-8', bundle);
        return true;
      default:
        return false;
    }
  };
}
