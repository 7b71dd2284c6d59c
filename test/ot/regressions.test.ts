import { describe, expect, it } from 'vitest';
import {
  InvalidOperationError,
  apply,
  compose,
  composeAll,
  fromDiff,
  fromPatch,
  invert,
  isNoop,
  normalize,
  transform,
  transformPosition,
} from '../../src/ot/index.js';

function codeOf(call: () => unknown): string | undefined {
  try {
    call();
  } catch (err) {
    return err instanceof InvalidOperationError ? err.code : 'not an InvalidOperationError';
  }
  return undefined;
}

describe('regressions and hand-picked edge cases', () => {
  it('the empty op [] is the identity on the empty document', () => {
    expect(apply('', [])).toBe('');
    expect(isNoop([])).toBe(true);
    expect(normalize([])).toEqual([]);
    expect(compose([], [])).toEqual([]);
    expect(composeAll([[]])).toEqual([]);
    expect(transform([], [], 'left')).toEqual([]);
    expect(transform([], [], 'right')).toEqual([]);
    expect(invert([], '')).toEqual([]);
    expect(transformPosition(0, [])).toBe(0);
    expect(fromDiff('', '')).toEqual([]);
    expect(fromPatch(0, 0, 0, '')).toEqual([]);
  });

  it('insert into the empty document', () => {
    expect(apply('', ['abc'])).toBe('abc');
    expect(invert(['abc'], '')).toEqual([-3]);
    expect(compose([], ['abc'])).toEqual(['abc']);
    expect(transform(['abc'], [], 'left')).toEqual(['abc']);
    expect(transform([], ['abc'], 'right')).toEqual([3]);
    expect(fromDiff('', 'abc')).toEqual(['abc']);
    expect(fromPatch(0, 0, 0, 'abc')).toEqual(['abc']);
  });

  it('two inserts at the same position: left goes first, right goes second', () => {
    const a = [1, 'X', 1];
    const b = [1, 'Y', 1];
    expect(transform(a, b, 'left')).toEqual([1, 'X', 2]);
    expect(transform(b, a, 'right')).toEqual([2, 'Y', 1]);
    expect(apply('aYb', [1, 'X', 2])).toBe('aXYb');
    expect(transform(a, b, 'right')).toEqual([2, 'X', 1]);
    expect(transform(b, a, 'left')).toEqual([1, 'Y', 2]);
    expect(apply('aYb', [2, 'X', 1])).toBe('aYXb');
    expect(transformPosition(1, a, 'left')).toBe(1);
    expect(transformPosition(1, a, 'right')).toBe(2);
  });

  it('delete against an overlapping delete removes the union once', () => {
    const a = [1, -3, 2];
    const b = [2, -3, 1];
    expect(transform(a, b, 'left')).toEqual([1, -1, 1]);
    expect(transform(b, a, 'right')).toEqual([1, -1, 1]);
    expect(apply(apply('abcdef', b), [1, -1, 1])).toBe('af');
    expect(apply(apply('abcdef', a), [1, -1, 1])).toBe('af');
    expect(transform([-2], [-2], 'left')).toEqual([]);
  });

  it('an insert inside a range the other op deletes survives, and the delete goes around it', () => {
    const del = [1, -4, 1];
    const ins = [3, 'X', 3];
    expect(transform(del, ins, 'left')).toEqual([1, -2, 1, -2, 1]);
    expect(transform(ins, del, 'right')).toEqual([1, 'X', 1]);
    expect(apply('abcXdef', [1, -2, 1, -2, 1])).toBe('aXf');
    expect(apply('af', [1, 'X', 1])).toBe('aXf');
    expect(transformPosition(3, del)).toBe(1);
  });

  it('emoji at position boundaries', () => {
    expect(apply('😀', ['👍🏽', 2])).toBe('👍🏽😀');
    expect(apply('😀', [2, '👍🏽'])).toBe('😀👍🏽');
    expect(apply('a😀', [1, -2])).toBe('a');
    expect(invert([1, -2], 'a😀')).toEqual([1, '😀']);
    expect(transformPosition(2, ['👍🏽', 2])).toBe(6);
    expect(transformPosition(0, [2, '👍🏽'], 'left')).toBe(0);
    expect(transform([2, 'x'], ['👍🏽', 2], 'left')).toEqual([6, 'x']);
    expect(fromPatch(4, 2, 2, '😁')).toEqual([2, '😁', -2]);
    expect(apply('😀😀', [2, '😁', -2])).toBe('😀😁');
  });

  it('fromDiff keeps a surrogate pair whole when two emoji share a high or a low surrogate', () => {
    expect(fromDiff('😀', '😁')).toEqual(['😁', -2]);
    expect(fromDiff('😀', '🈀')).toEqual(['🈀', -2]);
    expect(fromDiff('a😀b', 'a😁b')).toEqual([1, '😁', -2, 1]);
    expect(fromDiff('x😀', '😀')).toEqual([-1, 2]);
    expect(fromDiff('😀😀', '😀')).toEqual([2, -2]);
  });

  it('compose of an inserted emoji with an op that cuts it in half throws split-surrogate instead of inserting a lone surrogate', () => {
    expect(codeOf(() => compose(['😀'], [1, -1]))).toBe('split-surrogate');
    expect(codeOf(() => compose(['😀'], [-1, 1]))).toBe('split-surrogate');
    expect(codeOf(() => compose(['😀'], [1, 'x', 1]))).toBe('split-surrogate');
    expect(codeOf(() => compose([2, '😀'], [3, -1]))).toBe('split-surrogate');
    expect(codeOf(() => composeAll([['😀'], [1, -1]]))).toBe('split-surrogate');
    expect(compose(['😀'], [1, 1])).toEqual(['😀']);
    expect(compose(['a😀'], [1, -2])).toEqual(['a']);
  });

  it('transform and transformPosition treat a non-canonical op exactly as its canonical form', () => {
    // [-1, 'x'] and ['x', -1] are one change; tie-breaking once depended on the spelling.
    expect(transform([-1, 'x'], ['z', -1], 'left')).toEqual(transform(['x', -1], ['z', -1], 'left'));
    expect(apply(apply('a', ['z', -1]), transform([-1, 'x'], ['z', -1], 'left'))).toBe('xz');
    expect(transform(['z', -1], [-1, 'x'], 'right')).toEqual(transform(['z', -1], ['x', -1], 'right'));
    expect(transformPosition(1, [1, -1, 'x'])).toBe(transformPosition(1, [1, 'x', -1]));
  });
});
