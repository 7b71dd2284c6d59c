/**
 * `otter/ot`: Otter's pure operational-transformation algebra for plain text.
 * Zero dependencies, no Node, network or storage imports: safe in any browser or worker.
 * The operation format is specified in `operation.ts`.
 */
export { InvalidOperationError, OperationErrorCode } from './errors.js';
export {
  type Component,
  type Operation,
  type OperationLengths,
  OperationBuilder,
  baseLength,
  checkOperation,
  isCanonical,
  isNoop,
  normalize,
  targetLength,
} from './operation.js';
export { apply, invert } from './apply.js';
export { compose, composeAll } from './compose.js';
export {
  type SelectionRange,
  type Side,
  checkPosition,
  transform,
  transformPosition,
  transformSelection,
} from './transform.js';
export { type DiffCleanup, fromDiff, fromPatch, fromTextDiff } from './diff.js';
export { holdsInserts, mergeText } from './merge.js';
export { OP_TREE_THRESHOLD, OpTree } from './op-tree.js';
export { type } from './type.js';
