/**
 * Runs every benchmark module in sequence: `npm run bench` (tsx bench/index.ts).
 * Each module exports `run()` and also runs alone (npx tsx bench/<name>.ts).
 * To add a benchmark, write bench/<name>.ts exporting `run()` and list it here.
 */
import { machineLine } from './common.js';

interface BenchModule {
  run(): Promise<unknown>;
}

const modules: readonly (readonly [string, () => Promise<BenchModule>])[] = [
  ['apply-trace', () => import('./apply-trace.js')],
  ['compose-trace', () => import('./compose-trace.js')],
  ['rebase', () => import('./rebase.js')],
  ['op-tree', () => import('./op-tree.js')],
  ['sequencer', () => import('./sequencer.js')],
  ['rejoin', () => import('./rejoin.js')],
  ['far-behind', () => import('./far-behind.js')],
  ['fairness', () => import('./fairness.js')],
  ['intent', () => import('./intent.js')],
  ['keystroke', () => import('./keystroke.js')],
];

const only = process.argv.slice(2);
const started = performance.now();
console.log(`# Otter OT benchmarks\n\n${machineLine()}`);
for (const [name, load] of modules) {
  if (only.length > 0 && !only.includes(name)) continue;
  const t0 = performance.now();
  const mod = await load();
  await mod.run();
  console.log(`(${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
console.log(`\nall benchmarks: ${((performance.now() - started) / 1000).toFixed(1)} s`);
