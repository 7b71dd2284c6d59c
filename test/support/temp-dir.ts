import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh, empty directory under the system's temporary folder; remove it with {@link removeTempDir}. */
export function makeTempDir(prefix = 'otter-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Removes `dir` and everything in it; nothing if it is undefined or already gone. */
export function removeTempDir(dir: string | undefined): void {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
}
