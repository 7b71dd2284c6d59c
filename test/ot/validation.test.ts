import { describe, expect, it } from 'vitest';
import {
  type Component,
  InvalidOperationError,
  type Operation,
  OperationBuilder,
  type OperationErrorCode,
  type Side,
  apply,
  baseLength,
  checkOperation,
  compose,
  composeAll,
  fromDiff,
  fromPatch,
  invert,
  isNoop,
  normalize,
  targetLength,
  transform,
  transformPosition,
  transformSelection,
  type,
} from '../../src/ot/index.js';

/**
 * A faithful rendering of any value (own enumerable keys included, `__proto__` too; NaN, -0 and
 * ±Infinity kept apart), to compare inputs before and after a call.
 */
function snapshot(value: unknown): string {
  if (typeof value === 'number') return Object.is(value, -0) ? 'num:-0' : `num:${String(value)}`;
  if (typeof value === 'string') return `str:${JSON.stringify(value)}`;
  if (value === null || typeof value !== 'object') return `${typeof value}:${String(value)}`;
  if (Array.isArray(value)) return `[${value.map(snapshot).join(',')}]`;
  const entries = Object.keys(value).map(
    (k) => `${JSON.stringify(k)}:${snapshot((value as Record<string, unknown>)[k])}`,
  );
  return `{${entries.join(',')}}(proto:${Object.getPrototypeOf(value) === Object.prototype ? 'Object' : 'other'})`;
}

function prototypeKeys(): string[] {
  return Object.getOwnPropertyNames(Object.prototype).sort();
}

/**
 * Runs `call`, which must throw an InvalidOperationError with `code` whose message contains
 * every string of `mentions`; and checks that no input changed and Object.prototype gained
 * nothing.
 */
function expectRejected(
  call: () => unknown,
  code: OperationErrorCode,
  mentions: readonly string[],
  inputs: readonly unknown[],
): void {
  const before = inputs.map(snapshot);
  const protoBefore = prototypeKeys();
  let caught: unknown;
  try {
    call();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'the call must throw').toBeInstanceOf(InvalidOperationError);
  const err = caught as InvalidOperationError;
  expect(err).toBeInstanceOf(Error);
  expect(err.name).toBe('InvalidOperationError');
  expect(err.code).toBe(code);
  for (const m of mentions) expect(err.message).toContain(m);
  expect(inputs.map(snapshot)).toEqual(before);
  expect(prototypeKeys()).toEqual(protoBefore);
  expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
}

/** Every entry point that takes one operation, called so that the operation is what fails. */
const OP_TAKERS: ReadonlyArray<readonly [string, (op: unknown) => unknown]> = [
  ['apply', (op) => apply('ab', op as Operation)],
  ['invert', (op) => invert(op as Operation, 'ab')],
  ['normalize', (op) => normalize(op as Operation)],
  ['checkOperation', (op) => checkOperation(op)],
  ['baseLength', (op) => baseLength(op as Operation)],
  ['targetLength', (op) => targetLength(op as Operation)],
  ['isNoop', (op) => isNoop(op as Operation)],
  ['compose (first)', (op) => compose(op as Operation, [2])],
  ['compose (second)', (op) => compose([2], op as Operation)],
  ['composeAll', (op) => composeAll([[2], op as Operation])],
  ['transform (op)', (op) => transform(op as Operation, [2], 'left')],
  ['transform (other)', (op) => transform([2], op as Operation, 'right')],
  ['transformPosition', (op) => transformPosition(0, op as Operation)],
  ['transformSelection', (op) => transformSelection({ anchor: 0, head: 0 }, op as Operation)],
  ['type.apply', (op) => type.apply('ab', op as Operation)],
];

describe('not-array: an operation must be an array', () => {
  const cases: ReadonlyArray<readonly [string, unknown, string]> = [
    ['null', null, 'null'],
    ['an object', { 0: 1, length: 1 }, 'object'],
    ['a string', 'abc', '"abc"'],
    ['a number', 42, '42'],
  ];
  it.each(cases)('not-array: %s is rejected by every entry point', (_name, value, mention) => {
    for (const [, call] of OP_TAKERS) {
      expectRejected(() => call(value), 'not-array', [mention], [value]);
    }
  });
});

describe('bad-component: a component is a non-zero safe integer or a non-empty string', () => {
  const cases: ReadonlyArray<readonly [string, unknown, string]> = [
    ['0', 0, 'is 0'],
    ['1.5', 1.5, '1.5'],
    ['NaN', Number.NaN, 'NaN'],
    ['Infinity', Number.POSITIVE_INFINITY, 'Infinity'],
    ['-Infinity', Number.NEGATIVE_INFINITY, '-Infinity'],
    ['2**60', 2 ** 60, String(2 ** 60)],
    ['-(2**60)', -(2 ** 60), String(-(2 ** 60))],
    ['true', true, 'true'],
    ['{}', {}, 'object'],
    ['null', null, 'null'],
    ['a nested array [[1]]', [1], 'array'],
    ['an object with a __proto__ key', JSON.parse('{"__proto__":1}') as unknown, 'object'],
    ["the empty string ''", '', 'empty string'],
  ];
  it.each(cases)('bad-component: %s is rejected by every entry point', (_name, value, mention) => {
    for (const [, call] of OP_TAKERS) {
      const op = [value, 2];
      expectRejected(() => call(op), 'bad-component', ['component 0', mention], [op, value]);
    }
  });

  it('bad-component: names the index of a bad component after valid ones', () => {
    const op = [1, 'x', 1.5];
    expectRejected(() => normalize(op as Operation), 'bad-component', ['component 2', '1.5'], [op]);
  });

  it('bad-component: JSON.parse("[1e999]") is rejected at once', () => {
    for (const text of ['[1e999]', '[-1e999]', '[2, 1e999]']) {
      const op = JSON.parse(text) as unknown[];
      for (const [, call] of OP_TAKERS) {
        expectRejected(() => call(op), 'bad-component', ['Infinity'], [op]);
      }
    }
  });

  it('bad-component: a sparse array hole is rejected', () => {
    const op: unknown[] = [1];
    op[2] = 1;
    expectRejected(() => normalize(op as Operation), 'bad-component', ['component 1', 'undefined'], [op]);
  });
});

describe('length-mismatch: lengths must line up', () => {
  it('length-mismatch: apply with an op too short for the document', () => {
    const op = [1];
    expectRejected(() => apply('abc', op), 'length-mismatch', ['1', '3'], [op]);
    const del = [-2];
    expectRejected(() => apply('abc', del), 'length-mismatch', ['2', '3'], [del]);
  });

  it('length-mismatch: apply with an op too long for the document', () => {
    const op = [5];
    expectRejected(() => apply('abc', op), 'length-mismatch', ['5', '3'], [op]);
    const del = [2, -4];
    expectRejected(() => apply('abc', del), 'length-mismatch', ['6', '3'], [del]);
    const onEmpty = [1];
    expectRejected(() => apply('', onEmpty), 'length-mismatch', ['1', '0'], [onEmpty]);
  });

  it('length-mismatch: invert with an op of the wrong length', () => {
    const op = [2, 'x'];
    expectRejected(() => invert(op, 'abc'), 'length-mismatch', ['2', '3'], [op]);
  });

  it("length-mismatch: compose when b's base length is not a's target length", () => {
    const a = [2, 'xy'];
    const b = [3];
    expectRejected(() => compose(a, b), 'length-mismatch', ['4', '3'], [a, b]);
    expectRejected(() => composeAll([a, b]), 'length-mismatch', ['4', '3'], [a, b]);
    expectRejected(() => type.compose(a, b), 'length-mismatch', ['4', '3'], [a, b]);
  });

  it('length-mismatch: transform of operations on different base lengths', () => {
    const a = [2, 'x'];
    const b = [3];
    for (const side of ['left', 'right'] as const) {
      expectRejected(() => transform(a, b, side), 'length-mismatch', ['2', '3'], [a, b]);
    }
  });

  it('length-mismatch: an operation whose length passes 2^53', () => {
    const op = [2 ** 52, 2 ** 52];
    expectRejected(() => checkOperation(op), 'length-mismatch', ['2^53'], [op]);
    expectRejected(() => normalize(op), 'length-mismatch', ['2^53'], [op]);
  });
});

describe("split-surrogate: no boundary inside '😀'", () => {
  const doc = 'a😀b';

  it('split-surrogate: a retain that ends inside a surrogate pair', () => {
    const op = [2, -2];
    expectRejected(() => apply(doc, op), 'split-surrogate', ['component 0', 'position 2'], [op]);
    expectRejected(() => invert(op, doc), 'split-surrogate', ['position 2'], [op]);
  });

  it('split-surrogate: a delete that starts or ends inside a surrogate pair', () => {
    const ends = [1, -1, 2];
    expectRejected(() => apply(doc, ends), 'split-surrogate', ['component 1', 'position 2'], [ends]);
    const starts = [2, -1, 1];
    expectRejected(() => apply(doc, starts), 'split-surrogate', ['position 2'], [starts]);
    const half = [-2, 2];
    expectRejected(() => apply(doc, half), 'split-surrogate', ['position 2'], [half]);
  });

  it('split-surrogate: an insert between the halves of a surrogate pair', () => {
    const op = [2, 'x', 2];
    expectRejected(() => apply(doc, op), 'split-surrogate', ['position 2'], [op]);
    const patch = fromPatch(doc.length, 2, 0, 'x');
    expectRejected(() => apply(doc, patch), 'split-surrogate', ['position 2'], [patch]);
    const between = [1, -1, 'x', -1, 1];
    expectRejected(() => apply(doc, between), 'split-surrogate', ['position 2'], [between]);
  });

  it('split-surrogate: compose rejects a cut inside a surrogate pair that the first op inserts', () => {
    const a = ['😀'];
    for (const b of [[1, -1], [-1, 1], [1, 'x', 1]]) {
      expectRejected(() => compose(a, b), 'split-surrogate', ['position 1'], [a, b]);
      expectRejected(() => composeAll([a, b]), 'split-surrogate', ['position 1'], [a, b]);
    }
    const a2 = [1, 'x😀'];
    const b2 = [3, -1];
    expectRejected(() => compose(a2, b2), 'split-surrogate', ['position 3'], [a2, b2]);
  });

  it('split-surrogate: adjacent components of one kind may meet inside a pair', () => {
    expect(apply(doc, [2, 2])).toBe(doc);
    expect(apply(doc, [1, -1, -1, 1])).toBe('ab');
    expect(compose(['😀'], [1, 1])).toEqual(['😀']);
    expect(compose(['😀'], [-1, -1])).toEqual([]);
  });
});

describe('lone-surrogate: inserted text must be well-formed', () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ['a lone high surrogate', '\uD83D'],
    ['a lone low surrogate', '\uDE00'],
    ['a high surrogate before a letter', '\uD83Dx'],
    ['a reversed pair', '\uDE00\uD83D'],
  ];
  it.each(cases)('lone-surrogate: inserting %s is rejected everywhere', (_name, text) => {
    const named = JSON.stringify(text);
    const op = [text, 2];
    for (const [, call] of OP_TAKERS) {
      expectRejected(() => call(op), 'lone-surrogate', ['component 0', named], [op]);
    }
    expectRejected(() => new OperationBuilder().insert(text), 'lone-surrogate', [named], [text]);
    expectRejected(() => fromPatch(2, 1, 0, text), 'lone-surrogate', [named], [text]);
  });
});

describe('lone-surrogate without a native String.prototype.isWellFormed', () => {
  it('lone-surrogate: the fallback scan rejects what the native check rejects', () => {
    const proto = String.prototype as { isWellFormed?: () => boolean };
    const saved = Object.getOwnPropertyDescriptor(String.prototype, 'isWellFormed');
    delete proto.isWellFormed;
    try {
      expect(proto.isWellFormed).toBeUndefined();
      for (const text of ['\uD83D', '\uDE00', 'a\uD83D', '\uD83Da', '\uDE00\uD83D', '😀\uDE00']) {
        const op = [text];
        expectRejected(() => normalize(op), 'lone-surrogate', [JSON.stringify(text)], [op]);
      }
      for (const text of ['😀', 'a😀b', '👍🏽', '\uE000', '\uD7FF']) {
        expect(normalize([text])).toEqual([text]);
      }
    } finally {
      if (saved !== undefined) Object.defineProperty(String.prototype, 'isWellFormed', saved);
    }
    expect(typeof proto.isWellFormed).toBe(saved === undefined ? 'undefined' : 'function');
  });
});

describe('bad-argument: positions, sides, patches and texts', () => {
  it('bad-argument: transformPosition out of range', () => {
    const op = [3, 'x'];
    const cases: ReadonlyArray<readonly [unknown, string]> = [
      [-1, '-1'],
      [4, '4'],
      [1.5, '1.5'],
      [Number.NaN, 'NaN'],
      ['1', '"1"'],
    ];
    for (const [pos, mention] of cases) {
      expectRejected(
        () => transformPosition(pos as number, op),
        'bad-argument',
        [mention, 'length 3'],
        [op],
      );
    }
  });

  it('bad-argument: a side other than left or right', () => {
    const op = [3];
    for (const [side, mention] of [
      ['up', '"up"'],
      ['LEFT', '"LEFT"'],
      [null, 'null'],
      [1, '1'],
    ] as const) {
      expectRejected(() => transformPosition(0, op, side as unknown as Side), 'bad-argument', [mention], [op]);
      expectRejected(() => transform(op, op, side as unknown as Side), 'bad-argument', [mention], [op]);
      expectRejected(
        () => transformSelection({ anchor: 0, head: 0 }, op, side as unknown as Side),
        'bad-argument',
        [mention],
        [op],
      );
    }
    expectRejected(() => transform(op, op, undefined as unknown as Side), 'bad-argument', ['undefined'], [op]);
  });

  it('bad-argument: transformSelection with a range outside the document or not an object', () => {
    const op = [3];
    const ranges = [{ anchor: 0, head: 7 }];
    expectRejected(() => transformSelection(ranges, op), 'bad-argument', ['7', 'length 3'], [ranges, op]);
    const notRanges = [null];
    expectRejected(
      () => transformSelection(notRanges as unknown as { anchor: number; head: number }[], op),
      'bad-argument',
      ['null'],
      [notRanges],
    );
  });

  it('bad-argument: fromPatch out of range', () => {
    expectRejected(() => fromPatch(4, 2, 3, 'x'), 'bad-argument', ['2..5', 'length 4'], []);
    expectRejected(() => fromPatch(4, 5, 0, ''), 'bad-argument', ['5..5', 'length 4'], []);
    expectRejected(() => fromPatch(4, -1, 0, ''), 'bad-argument', ['-1'], []);
    expectRejected(() => fromPatch(4, 0, -1, ''), 'bad-argument', ['-1'], []);
    expectRejected(() => fromPatch(4, 0.5, 0, ''), 'bad-argument', ['0.5'], []);
    expectRejected(() => fromPatch(-4, 0, 0, ''), 'bad-argument', ['-4'], []);
    expectRejected(() => fromPatch(4, 0, 0, 7 as unknown as string), 'bad-argument', ['7'], []);
  });

  it('bad-argument: fromDiff of non-strings', () => {
    const arr = ['a'];
    expectRejected(() => fromDiff(null as unknown as string, 'a'), 'bad-argument', ['null'], []);
    expectRejected(() => fromDiff('a', 5 as unknown as string), 'bad-argument', ['5'], []);
    expectRejected(() => fromDiff(arr as unknown as string, 'a'), 'bad-argument', ['array'], [arr]);
  });

  it('bad-argument: apply and invert to a document that is not a string', () => {
    const op = [1];
    expectRejected(() => apply(5 as unknown as string, op), 'bad-argument', ['5'], [op]);
    expectRejected(() => invert(op, null as unknown as string), 'bad-argument', ['null'], [op]);
  });

  it('bad-argument: composeAll of no operations', () => {
    const ops: Operation[] = [];
    expectRejected(() => composeAll(ops), 'bad-argument', ['at least one'], [ops]);
  });

  it('bad-argument: OperationBuilder counts must be non-negative safe integers', () => {
    expectRejected(() => new OperationBuilder().retain(-1), 'bad-argument', ['-1'], []);
    expectRejected(() => new OperationBuilder().delete(1.5), 'bad-argument', ['1.5'], []);
    expectRejected(() => new OperationBuilder().retain(Number.NaN), 'bad-argument', ['NaN'], []);
    expectRejected(
      () => new OperationBuilder().insert(3 as unknown as string),
      'bad-argument',
      ['3'],
      [],
    );
  });

  it('bad-argument: type.create of a non-string snapshot', () => {
    const initial = { text: 'a' };
    expectRejected(() => type.create(initial), 'bad-argument', ['object'], [initial]);
  });
});

describe('a rejected call leaves its inputs as they were', () => {
  it('inputs to a failing transform, compose and apply are unchanged', () => {
    const a: Component[] = [1, 'x', -1, 'y'];
    const b: Component[] = [2, 'z', 2];
    expectRejected(() => transform(a, b, 'left'), 'length-mismatch', [], [a, b]);
    expectRejected(() => compose(b, a), 'length-mismatch', [], [a, b]);
    expectRejected(() => apply('abcd', a), 'length-mismatch', [], [a]);
  });
});
