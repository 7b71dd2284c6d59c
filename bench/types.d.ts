/**
 * Minimal typings for ot.js (npm `ot` 0.0.15, plain CommonJS, untyped): only what the benchmarks
 * call. Plain exported types, not an ambient `declare module 'ot'`, so they cannot clash with
 * another folder's declaration of that module; bench/peers.ts loads ot.js with these types.
 */

/** ot.js text operation: retain (n > 0), insert (string), delete (n < 0). */
export interface OtTextOperation {
  ops: (number | string)[];
  baseLength: number;
  targetLength: number;
  retain(n: number): this;
  insert(text: string): this;
  delete(n: number | string): this;
  apply(doc: string): string;
  compose(other: OtTextOperation): OtTextOperation;
  toJSON(): (number | string)[];
}

export interface OtTextOperationClass {
  new (): OtTextOperation;
  fromJSON(ops: readonly (number | string)[]): OtTextOperation;
  /** Returns [a', b'] with apply(apply(d, a), b') === apply(apply(d, b), a'); a's inserts win ties. */
  transform(a: OtTextOperation, b: OtTextOperation): [OtTextOperation, OtTextOperation];
}

export interface OtModule {
  readonly version: string;
  readonly TextOperation: OtTextOperationClass;
}
