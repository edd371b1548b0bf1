// Test double for client/timers.ts: time moves only when a test says so.

import type { TimerHandle, Timers } from "../timers.ts";

interface Scheduled {
  id: number;
  at: number;
  callback: () => void;
}

/** Lets pending promise callbacks run (a real macrotask turn). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export class FakeTimers implements Timers {
  #now: number;
  #nextId = 1;
  #scheduled: Scheduled[] = [];

  constructor(start = 1_800_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#scheduled.push({ id, at: this.#now + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    this.#scheduled = this.#scheduled.filter((s) => s.id !== handle);
  }

  /** Timers waiting. */
  get pending(): number {
    return this.#scheduled.length;
  }

  /** Moves time forward by `ms`, running each timer due on the way (and what it settles). */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settle();
    for (;;) {
      const next = this.#scheduled.filter((s) =>
        s.at <= end
      ).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!next) break;
      this.#scheduled = this.#scheduled.filter((s) => s !== next);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
      await settle();
    }
    this.#now = end;
    await settle();
  }
}
