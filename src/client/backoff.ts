/**
 * Reconnection delays: exponential backoff with full jitter, as a pure function.
 */

/**
 * The delay before reconnection attempt `attempt` (0 for the first after a connection was
 * lost), in ms: uniformly random in [min, cap), where the window's top
 * cap = min(max, min · 2^(attempt + 1)) doubles with each consecutive failure. The whole
 * window above the floor is jittered, so clients that lost the same server spread out, and
 * none retries sooner than `min` or later than `max`.
 * `random` returns a number in [0, 1) (default Math.random, read at each call).
 */
export function reconnectDelay(
  attempt: number,
  min: number,
  max: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(max, min * 2 ** (attempt + 1));
  return min + random() * (cap - min);
}
