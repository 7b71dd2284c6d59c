import { expect } from 'vitest';

/**
 * Calls `fn` and returns what it threw, after asserting that it is an instance of `type`;
 * fails the test if `fn` returns without throwing.
 */
export function thrown<E extends Error>(fn: () => unknown, type: abstract new (...args: never[]) => E): E {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(type);
    return e as E;
  }
  throw new Error(`expected a ${type.name} to be thrown, nothing was`);
}
