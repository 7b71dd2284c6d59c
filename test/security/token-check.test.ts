/**
 * The token check over real sockets: a plain-HTTP GET on the WebSocket path answers whether
 * the upgrade would accept a token (204) or refuse it (401), with CORS headers for allowed
 * origins only; and a client with a refused token reports `unauthorized` and stops.
 */
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../src/client/index.js';
import { ErrorCode, OtterError } from '../../src/protocol/errors.js';
import { closeAll, hs256Token, nowSeconds, startServer } from './helpers.js';
import { waitFor } from '../support/wait.js';

afterEach(closeAll);

const SECRET = 'a-test-secret-of-at-least-32-chars!';
const ALLOWED = 'https://app.example';

const good = (): string => hs256Token({ sub: 'ann', exp: nowSeconds() + 3600 }, SECRET);
const bad = (): string => hs256Token({ sub: 'ann', exp: nowSeconds() + 3600 }, 'another-secret-of-at-least-32-chars');

async function start() {
  return startServer({ path: '/otter', jwt: { secret: SECRET }, allowOrigins: [ALLOWED] });
}

function httpUrl(wsUrl: string, path: string): string {
  return `${wsUrl.replace(/^ws/, 'http')}${path}`;
}

describe('the token check', () => {
  it('answers 204 for an accepted token and 401 for a refused one, never logging either', async () => {
    const { server, logger } = await start();
    const url = httpUrl(server.url, '/otter');
    const token = good();
    const wrong = bad();
    const ok = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(204);
    const refused = await fetch(url, { headers: { authorization: `Bearer ${wrong}` } });
    expect(refused.status).toBe(401);
    expect(await refused.text()).toBe('token refused\n');
    expect(logger.text()).not.toContain(token);
    expect(logger.text()).not.toContain(wrong);
  });

  it('is only on the WebSocket path, and only with an Authorization header', async () => {
    const { server } = await start();
    const other = await fetch(httpUrl(server.url, '/elsewhere'), { headers: { authorization: `Bearer ${good()}` } });
    expect(other.status).toBe(404);
    const bare = await fetch(httpUrl(server.url, '/otter'));
    expect(bare.status).toBe(404);
  });

  it('sends CORS headers to an allowed origin, preflight included, and none to others', async () => {
    const { server } = await start();
    const url = httpUrl(server.url, '/otter');
    const preflight = await fetch(url, {
      method: 'OPTIONS',
      headers: { origin: ALLOWED, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(preflight.headers.get('access-control-allow-headers')).toBe('authorization');
    const refused = await fetch(url, { headers: { origin: ALLOWED, authorization: `Bearer ${bad()}` } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe(ALLOWED);

    const stranger = 'https://evil.example';
    const strangerPreflight = await fetch(url, { method: 'OPTIONS', headers: { origin: stranger } });
    expect(strangerPreflight.status).toBe(403);
    expect(strangerPreflight.headers.get('access-control-allow-origin')).toBeNull();
    const strangerCheck = await fetch(url, { headers: { origin: stranger, authorization: `Bearer ${good()}` } });
    expect(strangerCheck.status).toBe(403);
    expect(strangerCheck.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('a client with a refused token reports unauthorized and stops', async () => {
    const { server } = await start();
    const c = new Connection(`${server.url}/otter`, { WebSocket, token: bad() });
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    await waitFor('the client to stop', () => c.state === 'closed');
    expect(errors.some((e) => e instanceof OtterError && e.code === ErrorCode.Unauthorized)).toBe(true);
    expect(server.connections).toBe(0);
  });

  it('a client with getToken asks it again once, then stops when that token is refused too', async () => {
    const { server } = await start();
    let asked = 0;
    const c = new Connection(`${server.url}/otter`, { WebSocket, getToken: () => (asked++, bad()) });
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    await waitFor('the client to stop', () => c.state === 'closed');
    expect(asked).toBe(2);
    expect(errors.filter((e) => e instanceof OtterError && e.code === ErrorCode.Unauthorized)).toHaveLength(2);
  });
});
