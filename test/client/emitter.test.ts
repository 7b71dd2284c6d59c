import { describe, expect, it, vi } from 'vitest';
import { Emitter } from '../../src/client/emitter.js';

interface Events {
  n: number;
  s: string;
}

class Source extends Emitter<Events> {
  fire<K extends keyof Events>(name: K, event: Events[K]): void {
    this.emit(name, event);
  }
}

describe('Emitter', () => {
  it('calls listeners in the order they were added, until removed by off or by the returned function', () => {
    const src = new Source();
    const seen: string[] = [];
    const a = (n: number): void => void seen.push(`a${n}`);
    src.on('n', a);
    const offB = src.on('n', (n) => seen.push(`b${n}`));
    src.on('s', (s) => seen.push(s));
    src.fire('n', 1);
    src.off('n', a);
    offB();
    src.fire('n', 2);
    src.fire('s', 'x');
    expect(seen).toEqual(['a1', 'b1', 'x']);
  });

  it('once calls a listener for the next event only', () => {
    const src = new Source();
    const listener = vi.fn();
    src.once('n', listener);
    src.fire('n', 1);
    src.fire('n', 2);
    expect(listener).toHaveBeenCalledTimes(1);
    expect(listener).toHaveBeenCalledWith(1);
  });

  it('a listener removed during an emit is not called; one added during it waits for the next', () => {
    const src = new Source();
    const seen: string[] = [];
    const late = (): void => void seen.push('late');
    const second = (): void => void seen.push('second');
    src.on('n', () => {
      seen.push('first');
      src.off('n', second);
      src.on('n', late);
    });
    src.on('n', second);
    src.fire('n', 1);
    expect(seen).toEqual(['first']);
  });

  it('a throwing listener does not stop the others or the emitter; its error is reported asynchronously', async () => {
    const src = new Source();
    const reported: unknown[] = [];
    vi.stubGlobal('reportError', (e: unknown) => reported.push(e));
    try {
      const after = vi.fn();
      src.on('n', () => {
        throw new Error('boom');
      });
      src.on('n', after);
      expect(() => src.fire('n', 1)).not.toThrow();
      expect(after).toHaveBeenCalledWith(1);
      expect(reported).toEqual([new Error('boom')]);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('emitting an event nobody listens to does nothing', () => {
    expect(() => new Source().fire('s', 'x')).not.toThrow();
  });
});
