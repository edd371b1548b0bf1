import { backgroundDb } from "./db.ts";

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
    let wait: number | null = force ? await flushNow(channel) : delayMs;
    while (wait !== null) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait!)));
      const [{ next }] = await backgroundDb()`select private.flush_window(${channel}) as next`;
      wait = next;
    }
  })().catch((error) => console.error(`flushing ${channel}:`, error));
  if (typeof EdgeRuntime !== "undefined") EdgeRuntime.waitUntil(flushing);
}

/** Flushes a channel's window now, due or not; the ms until it wants flushing again, or null. */
export async function flushNow(channel: string): Promise<number | null> {
  const [{ next }] = await backgroundDb()`select private.flush_window(${channel}, true) as next`;
  return next;
}
