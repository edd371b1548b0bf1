// A small typed event emitter. Listeners run synchronously in the order they were added; one
// that throws is reported (reportError where the platform has it) and does not stop the others
// or the library's own bookkeeping.

// deno-lint-ignore no-explicit-any -- listener argument lists of any shape
export type EventMap = Record<string, any[]>;
export type Listener<Args extends unknown[]> = (...args: Args) => void;
// deno-lint-ignore no-explicit-any -- the map holds listeners of every event
type AnyListener = (...args: any[]) => void;

export class Emitter<Events extends EventMap> {
  #listeners = new Map<keyof Events, Set<AnyListener>>();

  /** Adds a listener; returns the function that removes it. */
  on<E extends keyof Events>(event: E, listener: Listener<Events[E]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, set = new Set());
    set.add(listener as AnyListener);
    return () => this.off(event, listener);
  }

  /** Like `on`, for the next emission only. */
  once<E extends keyof Events>(event: E, listener: Listener<Events[E]>): () => void {
    const off = this.on(
      event,
      ((...args: Events[E]) => {
        off();
        listener(...args);
      }) as Listener<Events[E]>,
    );
    return off;
  }

  off<E extends keyof Events>(event: E, listener: Listener<Events[E]>): void {
    this.#listeners.get(event)?.delete(listener as AnyListener);
  }

  emit<E extends keyof Events>(event: E, ...args: Events[E]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[E]>)(...args);
      } catch (error) {
        report(error);
      }
    }
  }

  removeAll(): void {
    this.#listeners.clear();
  }
}

/** Hands an app's exception to the platform (window.onerror in browsers), never to our caller. */
export function report(error: unknown): void {
  const reportError = (globalThis as { reportError?: (e: unknown) => void }).reportError;
  if (typeof reportError === "function") reportError(error);
  else console.error(error);
}
