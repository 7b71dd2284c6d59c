/**
 * The peer libraries, loaded once with the right types. All three are CommonJS packages.
 */
import { createRequire } from 'node:module';
import QuillDelta from 'quill-delta';
import type { OtModule, OtTextOperation } from './types.js';

const require = createRequire(import.meta.url);

/** ot.js (npm `ot`), typed by bench/types.d.ts. */
export const ot = require('ot') as OtModule;
export type { OtTextOperation };

/** quill-delta's Delta class (`module.exports = Delta; module.exports.default = Delta`). */
export const Delta = QuillDelta.default;

export { type TextOp as UnicodeTextOp, type as unicodeText } from 'ot-text-unicode';
