// Bundles the demo editor page (src/demo) with otter/client into dist/demo/ for the server to serve.
import { copyFileSync, mkdirSync } from 'node:fs';
import { build } from 'esbuild';

mkdirSync('dist/demo', { recursive: true });
await build({
  entryPoints: ['src/demo/main.ts'],
  bundle: true,
  format: 'esm',
  target: 'es2020',
  platform: 'browser',
  minify: true,
  sourcemap: true,
  outfile: 'dist/demo/demo.js',
  logLevel: 'warning',
});
copyFileSync('src/demo/index.html', 'dist/demo/index.html');
