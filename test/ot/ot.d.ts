/** Types for the parts of ot.js (npm `ot` 0.0.15, plain CommonJS, untyped) that the tests use. */
declare module 'ot' {
  type OtComponent = number | string;

  class TextOperation {
    ops: OtComponent[];
    baseLength: number;
    targetLength: number;
    retain(n: number): this;
    insert(text: string): this;
    delete(n: number | string): this;
    apply(text: string): string;
    invert(text: string): TextOperation;
    compose(other: TextOperation): TextOperation;
    toJSON(): OtComponent[];
    equals(other: TextOperation): boolean;
    isNoop(): boolean;
    static fromJSON(ops: readonly OtComponent[]): TextOperation;
    static transform(a: TextOperation, b: TextOperation): [TextOperation, TextOperation];
  }

  const ot: {
    readonly version: string;
    readonly TextOperation: typeof TextOperation;
  };
  export default ot;
}
