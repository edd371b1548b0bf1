import { db } from "./db.ts";

declare const EdgeRuntime: { waitUntil(promise: Promise<unknown>): void } | undefined;

/**
 * Flushes a channel's broadcast window (private.flush_window) after `delayMs`, and again for as
 * long as the database says more is waiting. The request that opened the window calls this; if
 * this instance dies first, the pg_cron sweeper flushes the window instead, so a failure here is
 * only logged. On the platform the work is kept alive past the response with
 * EdgeRuntime.waitUntil; the local gateway is a long-lived process anyway.
 */
export function scheduleFlush(channel: string, delayMs: number, force = false): void {
  const flushing = (async () => {
    let wait: number | null = delayMs;
    let now = force;
    while (wait !== null) {
      if (!now) await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait!)));
      const [{ next }] = await db()`select private.flush_window(${channel}, ${now}) as next`;
      wait = next;
      now = false;
    }
  })().catch((error) => console.error(`flushing ${channel}:`, error));
  if (typeof EdgeRuntime !== "undefined") EdgeRuntime.waitUntil(flushing);
}
