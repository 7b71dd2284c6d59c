import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Connection, type ConnectionOptions, type FetchLike } from '../../src/client/connection.js';
import { ErrorCode, OtterError } from '../../src/protocol/errors.js';
import { FakeWebSocket } from './fakes.js';

const base: ConnectionOptions = {
  WebSocket: FakeWebSocket,
  minReconnectDelay: 100,
  maxReconnectDelay: 1000,
  heartbeatInterval: 1000,
};

/** A fetch answering every request with `status` (or failing), recording what it was asked. */
function fakeFetch(answer: number | 'network-error') {
  return vi.fn<FetchLike>(async () => {
    if (answer === 'network-error') throw new TypeError('fetch failed');
    return { status: answer };
  });
}

function watch(c: Connection): { states: string[]; errors: Error[] } {
  const states: string[] = [];
  const errors: Error[] = [];
  c.on('state', (s) => states.push(s));
  c.on('error', (e) => errors.push(e));
  return { states, errors };
}

const unauthorized = (e: Error): boolean => e instanceof OtterError && e.code === ErrorCode.Unauthorized;

beforeEach(() => {
  FakeWebSocket.reset();
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('Connection: a refused token', () => {
  it('asks the token check over http(s) with the token as a Bearer header after a close before open', async () => {
    const fetch = fakeFetch(204);
    new Connection('wss://h/otter?x=1', { ...base, token: 'tok', fetch });
    FakeWebSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(0);
    expect(fetch).toHaveBeenCalledWith('https://h/otter?x=1', { method: 'GET', headers: { authorization: 'Bearer tok' } });
  });

  it('with a static token: emits unauthorized and stops, with no further attempt', async () => {
    const fetch = fakeFetch(401);
    const c = new Connection('ws://h/otter', { ...base, token: 'bad', fetch });
    const { errors } = watch(c);
    FakeWebSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(0);
    expect(errors.filter(unauthorized)).toHaveLength(1);
    expect(c.state).toBe('closed');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it('with getToken: asks it again at once, and stops after the new token is refused too', async () => {
    const fetch = fakeFetch(401);
    let n = 0;
    const getToken = vi.fn(() => `t${++n}`);
    const c = new Connection('ws://h/otter', { ...base, getToken, fetch });
    const { errors } = watch(c);
    await vi.advanceTimersByTimeAsync(0);
    FakeWebSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(0);
    expect(errors.filter(unauthorized)).toHaveLength(1);
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(FakeWebSocket.last.protocols).toEqual(['otter.v1', 'otter.token.t2']);
    expect(c.state).toBe('connecting');

    FakeWebSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(0);
    expect(errors.filter(unauthorized)).toHaveLength(2);
    expect(c.state).toBe('closed');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('with getToken: a new token that is accepted connects', async () => {
    const fetch = vi.fn<FetchLike>(async (_url, init) => ({ status: init.headers.authorization === 'Bearer t1' ? 401 : 204 }));
    let n = 0;
    const c = new Connection('ws://h/otter', { ...base, getToken: () => `t${++n}`, fetch });
    await vi.advanceTimersByTimeAsync(0);
    FakeWebSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(0);
    FakeWebSocket.last.open();
    expect(c.state).toBe('connecting'); // open, awaiting the welcome
    expect(FakeWebSocket.last.messages()[0]).toMatchObject({ type: 'hello' });
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('an accepted token or a failed check leaves the reconnection to the backoff', async () => {
    for (const answer of [204, 'network-error'] as const) {
      FakeWebSocket.reset();
      const c = new Connection('ws://h/otter', { ...base, token: 'tok', fetch: fakeFetch(answer) });
      const { errors } = watch(c);
      FakeWebSocket.last.serverClose(1006);
      await vi.advanceTimersByTimeAsync(0);
      expect(errors).toEqual([]);
      expect(FakeWebSocket.instances).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1000);
      expect(FakeWebSocket.instances).toHaveLength(2);
      expect(c.state).toBe('connecting');
      c.close();
    }
  });

  it('does not check without a token, or after a close of an opened socket', async () => {
    const fetch = fakeFetch(401);
    const anonymous = new Connection('ws://h/otter', { ...base, fetch });
    FakeWebSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(0);
    anonymous.close();
    const c = new Connection('ws://h/otter', { ...base, token: 'tok', fetch });
    FakeWebSocket.last.open();
    FakeWebSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(0);
    expect(fetch).not.toHaveBeenCalled();
    expect(c.state).toBe('connecting');
  });
});
