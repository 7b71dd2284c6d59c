import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../../src/client/', import.meta.url);
const files = readdirSync(SRC)
  .filter((f) => f.endsWith('.ts'))
  .sort();

/** Every module specifier in `source`: static imports and re-exports, side-effect imports, import(), require(). */
function specifiers(source: string): string[] {
  const patterns = [
    /\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"`]([^'"`]*)['"`]/g,
    /\brequire\s*\(\s*['"`]([^'"`]*)['"`]/g,
  ];
  const out: string[] = [];
  for (const re of patterns) for (const m of source.matchAll(re)) out.push(m[1] as string);
  return out;
}

describe('src/client is browser-safe', () => {
  it('src/client holds the client modules', () => {
    expect(files).toEqual(expect.arrayContaining(['index.ts', 'sync.ts', 'document.ts', 'connection.ts', 'emitter.ts']));
  });

  it.each(files)('%s imports only client siblings, ../ot and ../protocol: no Node, no ws, no server', (file) => {
    const source = readFileSync(new URL(file, SRC), 'utf8');
    expect(source).not.toMatch(/\bimport\s*\(/);
    expect(source).not.toMatch(/\brequire\s*\(/);
    expect(source).not.toMatch(/\bprocess\.|\bBuffer\b|\bsetImmediate\b/);
    for (const spec of specifiers(source)) {
      expect(spec, `${file} imports ${spec}`).toMatch(/^(\.\/[A-Za-z0-9_-]+|\.\.\/ot\/index|\.\.\/protocol\/[a-z]+)\.js$/);
    }
  });
});
