/**
 * Waiting in tests, always bounded: a hang fails with a message naming what was awaited.
 */

/** Resolves after `ms` milliseconds: for pacing actions, never to wait for an outcome. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves `p`, or rejects if it has not settled within `ms`, so a hang fails with a reason. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `cond` every 5 ms until it returns true; rejects after `ms` (default 5 s) with an
 * error naming `what`, the last error `cond` threw (a throw counts as false) and, if given,
 * what `describe` says was seen instead.
 */
export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  ms = 5000,
  describe?: () => string | Promise<string>,
): Promise<void> {
  const deadline = Date.now() + ms;
  let lastError: unknown;
  for (;;) {
    try {
      if (await cond()) return;
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const seen = describe === undefined ? '' : `\n${await describe()}`;
      const error = lastError === undefined ? '' : `\nlast error: ${String(lastError)}`;
      throw new Error(`timed out after ${ms} ms waiting for ${what}${seen}${error}`);
    }
    await sleep(5);
  }
}

/** Lets every pending promise callback and one turn of the event loop (a `setImmediate`) run. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
