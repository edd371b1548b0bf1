// The page's life as far as a room cares: it woke (visible again, restored from the
// back-forward cache, resumed after being frozen, back online, or its timers had stopped for a
// while, as in a sleeping laptop or a throttled background tab), it is being hidden for good
// (pagehide), it went offline. In Deno or Node there is no page: only the timer check runs.

import { Emitter } from "./events.ts";
import type { TimerHandle, Timers } from "./timers.ts";

export type WakeReason = "visible" | "pageshow" | "resume" | "online" | "timer_gap";

export interface LifecycleEvents extends Record<string, unknown[]> {
  wake: [WakeReason];
  /** pagehide: the page may be going away (leave presence with a keepalive request). */
  hide: [{ persisted: boolean }];
  /** pageshow after a pagehide: the page is back (from the back-forward cache). */
  show: [];
  offline: [];
}

/** Where page events come from: `window` and `document` in a browser, or a test's EventTarget. */
export interface PageEventSource {
  addEventListener(type: string, listener: (event: Event) => void): void;
  removeEventListener(type: string, listener: (event: Event) => void): void;
  visibilityState?: string;
}

export interface PageLifecycleOptions {
  timers: Timers;
  /** window-like: pagehide, pageshow, online, offline. */
  window?: PageEventSource | null;
  /** document-like: visibilitychange, resume (and its visibilityState). */
  document?: PageEventSource | null;
  /** How often the timer check runs. */
  tickMs?: number;
  /** A tick this much later than due means the timers had stopped (the page slept). */
  sleepGapMs?: number;
}

/** The browser's window and document, when there are (not in Deno or Node). */
export function browserPage(): {
  window: PageEventSource | null;
  document: PageEventSource | null;
} {
  const g = globalThis as unknown as { window?: PageEventSource; document?: PageEventSource };
  if (typeof g.document === "undefined" || typeof g.window === "undefined") {
    return { window: null, document: null };
  }
  return { window: g.window, document: g.document };
}

export class PageLifecycle extends Emitter<LifecycleEvents> {
  readonly #options: PageLifecycleOptions;
  readonly #listeners: [PageEventSource, string, (event: Event) => void][] = [];
  #timer: TimerHandle | undefined;
  #lastTick = 0;
  #hidden = false;

  constructor(options: PageLifecycleOptions) {
    super();
    this.#options = options;
  }

  start(): void {
    const { window, document } = this.#options;
    if (document) {
      this.#listen(document, "visibilitychange", () => {
        if (document.visibilityState === "visible") this.emit("wake", "visible");
      });
      this.#listen(document, "resume", () => this.emit("wake", "resume"));
    }
    if (window) {
      this.#listen(window, "pagehide", (event) => {
        this.#hidden = true;
        this.emit("hide", { persisted: Boolean((event as { persisted?: boolean }).persisted) });
      });
      this.#listen(window, "pageshow", () => {
        if (!this.#hidden) return;
        this.#hidden = false;
        this.emit("show");
        this.emit("wake", "pageshow");
      });
      this.#listen(window, "online", () => this.emit("wake", "online"));
      this.#listen(window, "offline", () => this.emit("offline"));
    }
    this.#lastTick = this.#options.timers.now();
    this.#tick();
  }

  stop(): void {
    for (const [source, type, listener] of this.#listeners.splice(0)) {
      source.removeEventListener(type, listener);
    }
    this.#options.timers.clearTimeout(this.#timer);
    this.removeAll();
  }

  #listen(source: PageEventSource, type: string, listener: (event: Event) => void): void {
    source.addEventListener(type, listener);
    this.#listeners.push([source, type, listener]);
  }

  #tick(): void {
    const { timers, tickMs = 5000, sleepGapMs = 15_000 } = this.#options;
    this.#timer = timers.setTimeout(() => {
      const now = timers.now();
      const late = now - this.#lastTick - tickMs;
      this.#lastTick = now;
      if (late > sleepGapMs) this.emit("wake", "timer_gap");
      this.#tick();
    }, tickMs);
  }
}
