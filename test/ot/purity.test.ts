import { describe, expect, it } from 'vitest';
import { sourceFiles, specifiers } from '../support/imports.js';

const sources = sourceFiles(new URL('../../src/ot/', import.meta.url));
const files = sources.map((s) => s.file);

describe('src/ot is pure', () => {
  it('src/ot holds the modules of the OT core', () => {
    expect(files).toEqual(expect.arrayContaining(['index.ts', 'operation.ts', 'apply.ts', 'transform.ts']));
  });

  it('the specifier scanner finds bare, node: and relative imports', () => {
    const sample = [
      "import fs from 'node:fs';",
      "import { x } from \"./x.js\";",
      "export * from '../server/y.js';",
      "import 'ws';",
      "const z = await import('ioredis');",
      "const w = require('path');",
    ].join('\n');
    expect(specifiers(sample).sort()).toEqual(['../server/y.js', './x.js', 'ioredis', 'node:fs', 'path', 'ws'].sort());
  });

  it.each(sources)('$file imports only sibling modules through relative ./ paths', ({ file, source }) => {
    expect(source).not.toMatch(/\bimport\s*\(/);
    expect(source).not.toMatch(/\brequire\s*\(/);
    for (const spec of specifiers(source)) {
      expect(spec, `${file} imports ${spec}`).toMatch(/^\.\/[A-Za-z0-9_-]+\.js$/);
      const target = spec.slice(2).replace(/\.js$/, '.ts');
      expect(files, `${file} imports ${spec}, which is not in src/ot`).toContain(target);
    }
  });
});
