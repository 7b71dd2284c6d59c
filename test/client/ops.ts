/**
 * Small generators of edits for the client tests: an edit is chosen by abstract numbers and
 * interpreted against the text it applies to, so fast-check can shrink it whatever the text.
 * Texts here are BMP-only (the OT layer's own tests cover surrogate pairs).
 */
import fc from 'fast-check';
import { type Component, compose, fromPatch, targetLength } from '../../src/ot/index.js';

/** One abstract patch: where, how much to delete, what to insert (all resolved modulo the text). */
export interface PatchSpec {
  readonly at: number;
  readonly del: number;
  readonly ins: string;
}

/** An abstract edit: one or two patches, composed. */
export type EditSpec = readonly PatchSpec[];

export const patchSpec: fc.Arbitrary<PatchSpec> = fc.record({
  at: fc.nat(1000),
  del: fc.nat(4),
  ins: fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', 'é', '中'), maxLength: 3 }),
});

export const editSpec: fc.Arbitrary<EditSpec> = fc.array(patchSpec, { minLength: 1, maxLength: 2 });

/** The patch `spec` resolved against a text of length `length`. */
export function patchOn(length: number, spec: PatchSpec): Component[] {
  const at = spec.at % (length + 1);
  const del = Math.min(spec.del, length - at);
  return fromPatch(length, at, del, spec.ins);
}

/** The edit `spec` resolved against `text`: its patches composed into one op. */
export function editOn(text: string, spec: EditSpec): Component[] {
  let length = text.length;
  let op: Component[] | undefined;
  for (const p of spec) {
    const next = patchOn(length, p);
    op = op === undefined ? next : compose(op, next);
    length = targetLength(next);
  }
  return op ?? [text.length].filter((n) => n > 0);
}
