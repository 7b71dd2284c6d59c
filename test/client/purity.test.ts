import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
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
      expect(spec, `${file} imports ${spec}`).toMatch(/^(\.\/[A-Za-z0-9_-]+|\.\.\/ot\/(index|apply|rope)|\.\.\/protocol\/[a-z]+)\.js$/);
    }
  });

  it('otter/client bundles for a browser from src/client, src/protocol and src/ot alone', async () => {
    // A Node built-in (`util`, `node:fs`) does not resolve for the browser: the build throws.
    // A package that does resolve shows up among the inputs, outside src/.
    const result = await build({
      absWorkingDir: fileURLToPath(new URL('../../', import.meta.url)),
      entryPoints: ['src/client/index.ts'],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs).toContain('src/protocol/errors.ts');
    expect(inputs.filter((f) => !/^src\/(client|protocol|ot)\/[a-z-]+\.ts$/.test(f))).toEqual([]);
  });
});
