import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { apply, fromPatch } from '../../src/ot/index.js';

const DIR = new URL('../../traces/sequential/', import.meta.url);

type Patch = [pos: number, del: number, ins: string];

interface SequentialTrace {
  readonly startContent: string;
  readonly endContent: string;
  readonly txns: ReadonlyArray<{ readonly patches: readonly Patch[] }>;
}

const files = existsSync(DIR)
  ? readdirSync(DIR)
      .filter((f) => f.endsWith('.json.gz'))
      .sort()
  : [];

function load(name: string): SequentialTrace {
  return JSON.parse(gunzipSync(readFileSync(new URL(name, DIR))).toString('utf8')) as SequentialTrace;
}

describe('sequential editing traces', () => {
  it('the trace directory exists and holds the traces', () => {
    expect(existsSync(DIR), `missing trace directory ${fileURLToPath(DIR)}`).toBe(true);
    expect(files).toContain('automerge-paper.json.gz');
    expect(files.length).toBeGreaterThanOrEqual(8);
  });

  it.each(files)('replaying %s patch by patch through fromPatch and apply ends at endContent', (name) => {
    const trace = load(name);
    let doc = trace.startContent;
    let patches = 0;
    for (const txn of trace.txns) {
      for (const [pos, del, ins] of txn.patches) {
        doc = apply(doc, fromPatch(doc.length, pos, del, ins));
        patches++;
      }
    }
    expect(patches).toBeGreaterThan(0);
    expect(doc.length).toBe(trace.endContent.length);
    expect(doc === trace.endContent).toBe(true);
  });
});
