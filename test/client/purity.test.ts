import { describe, expect, it } from 'vitest';
import { sourceFiles, specifiers } from '../support/imports.js';

const sources = sourceFiles(new URL('../../src/client/', import.meta.url));

describe('src/client is browser-safe', () => {
  it('src/client holds the client modules', () => {
    expect(sources.map((s) => s.file)).toEqual(
      expect.arrayContaining(['index.ts', 'sync.ts', 'document.ts', 'connection.ts', 'emitter.ts']),
    );
  });

  it.each(sources)('$file imports only client siblings, ../ot and ../protocol: no Node, no ws, no server', ({ file, source }) => {
    expect(source).not.toMatch(/\bimport\s*\(/);
    expect(source).not.toMatch(/\brequire\s*\(/);
    expect(source).not.toMatch(/\bprocess\.|\bBuffer\b|\bsetImmediate\b/);
    for (const spec of specifiers(source)) {
      expect(spec, `${file} imports ${spec}`).toMatch(/^(\.\/[A-Za-z0-9_-]+|\.\.\/ot\/index|\.\.\/protocol\/[a-z]+)\.js$/);
    }
  });
});
