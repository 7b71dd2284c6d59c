/**
 * The server's packages are optional peers of `otter` (better-sqlite3, ioredis, ws, prom-client,
 * pino, jose), so that installing Otter for `otter/ot` or `otter/client` pulls in none of them and
 * never compiles a native module. This file loads them, and turns a missing one into a
 * {@link MissingPackageError} that names the package and the command that installs it.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A package a server feature needs is not installed; the message says how to install it. */
export class MissingPackageError extends Error {
  override readonly name = 'MissingPackageError';
  /** Stable error code. */
  readonly code = 'missing-package';

  /** @param packageName the package to install; @param neededBy the feature that needs it. */
  constructor(
    readonly packageName: string,
    readonly neededBy: string,
  ) {
    super(`${neededBy} needs ${packageName}: npm install ${packageName}`);
  }
}

/** Throws {@link MissingPackageError} unless `name` resolves from Otter's own location. */
function resolve(name: string, neededBy: string): string {
  try {
    return require.resolve(name);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') throw new MissingPackageError(name, neededBy);
    throw e;
  }
}

/**
 * Loads the CommonJS package `name` (as `require` would, resolved from where Otter is
 * installed), typed as `T` by the caller. Throws {@link MissingPackageError} naming `name` and
 * `neededBy` when it is not installed; any other failure to load it is thrown unchanged.
 */
export function requireOptional<T>(name: string, neededBy: string): T {
  resolve(name, neededBy);
  return require(name) as T;
}

/**
 * Loads the package `name`, ES module or CommonJS, as `import()` would, typed as `T` by the
 * caller; rejects like {@link requireOptional} does.
 */
export async function importOptional<T>(name: string, neededBy: string): Promise<T> {
  resolve(name, neededBy);
  return (await import(name)) as T;
}
