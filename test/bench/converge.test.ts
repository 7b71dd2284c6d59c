import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Runs the convergence benchmark on one trace and returns its last line, parsed. */
function converge(trace: string): { converged: boolean; trace: string; serverVersion: number } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'bench/converge.ts', '--trace', trace], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  });
  const lines = run.stdout.trim().split('\n');
  expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
  return JSON.parse(lines[lines.length - 1] as string);
}

describe('convergence benchmark: every real client and the server end at the trace endContent', () => {
  it.each(['friendsforever', 'clownschool'])('%s converges over real sockets', (trace) => {
    const result = converge(trace);
    expect(result.trace).toBe(trace);
    expect(result.converged).toBe(true);
    expect(result.serverVersion).toBeGreaterThan(0);
  }, 150_000);
});
