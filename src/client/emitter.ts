/**
 * A tiny typed event emitter for browsers and Node alike (no Node `EventEmitter`).
 */

/** A listener of one event. */
export type Listener<T> = (event: T) => void;

/** Reports an error thrown by a listener without interrupting the emitter's caller. */
function report(error: unknown): void {
  const reportError = (globalThis as { reportError?: (e: unknown) => void }).reportError;
  if (typeof reportError === 'function') reportError(error);
  else
    queueMicrotask(() => {
      throw error;
    });
}

/**
 * Typed events: `Events` maps each event name to its payload type.
 *
 * Listeners run synchronously, in the order they were added. A listener that throws does not
 * stop the others or the emitter's caller: the error is re-thrown asynchronously (through
 * `reportError` where the platform has it), so the owner's state stays consistent. Emitting
 * an event nobody listens to does nothing, `error` included.
 */
export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Calls `listener` on every `name` event until removed; returns a function removing it. */
  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(name, listener);
  }

  /** Removes `listener` from `name`; does nothing if it was not added. */
  off<K extends keyof Events>(name: K, listener: Listener<Events[K]>): void {
    const set = this.listeners.get(name);
    if (set === undefined) return;
    set.delete(listener as Listener<never>);
    if (set.size === 0) this.listeners.delete(name);
  }

  /** Calls `listener` on the next `name` event only; returns a function removing it. */
  once<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    const wrapper: Listener<Events[K]> = (event) => {
      this.off(name, wrapper);
      listener(event);
    };
    return this.on(name, wrapper);
  }

  /**
   * Calls every listener of `name` with `event`, each once, in the order they were added.
   * A listener removed during the emit is not called; one added during it waits for the next.
   * For the owner only.
   */
  protected emit<K extends keyof Events>(name: K, event: Events[K]): void {
    const set = this.listeners.get(name);
    if (set === undefined) return;
    for (const listener of [...set]) {
      if (!set.has(listener)) continue;
      try {
        (listener as Listener<Events[K]>)(event);
      } catch (error) {
        report(error);
      }
    }
  }
}
