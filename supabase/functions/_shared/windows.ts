import { backgroundDb } from "./db.ts";

declare const EdgeRuntime: { waitUntil(promise: Promise<unknown>): void } | undefined;

/** This instance's flushing of one channel: at most one timer or one flush at a time. */
interface ChannelFlush {
  timer?: ReturnType<typeof setTimeout>;
  firesAt: number;
  running: boolean;
  /** Something committed while a flush ran, which that flush may not have seen. */
  again: boolean;
  /** Flushes that failed in a row, for the backoff. */
  failures: number;
  done: Promise<void>;
  finish: () => void;
}

const flushes = new Map<string, ChannelFlush>();

/**
 * Flushes a channel's broadcasts (private.flush_window) in `delayMs`, and again for as long as
 * the database says more is waiting (or, backing off, while flushing fails). Call it after the commit of what is to go out: a flush
 * that starts after that commit sees it. All requests of this instance share one timer per
 * channel, so a busy room costs one flush per interval, not one per request; flushes of other
 * instances are serialised by the database and skip what already went out. If this instance
 * dies first, the pg_cron sweeper flushes instead, so a failure here is only logged. On the
 * platform the work is kept alive past the response with EdgeRuntime.waitUntil.
 */
export function requestFlush(channel: string, delayMs: number): void {
  const firesAt = Date.now() + Math.max(0, delayMs);
  let flush = flushes.get(channel);
  if (!flush) {
    let finish!: () => void;
    const done = new Promise<void>((resolve) => finish = resolve);
    flush = { firesAt, running: false, again: false, failures: 0, done, finish };
    flushes.set(channel, flush);
    if (typeof EdgeRuntime !== "undefined") EdgeRuntime.waitUntil(done);
  }
  if (flush.running) {
    flush.again = true;
  } else if (flush.timer === undefined || firesAt < flush.firesAt) {
    clearTimeout(flush.timer);
    flush.firesAt = firesAt;
    flush.timer = setTimeout(() => runFlush(channel, flush), Math.max(0, firesAt - Date.now()));
  }
}

async function runFlush(channel: string, flush: ChannelFlush): Promise<void> {
  flush.timer = undefined;
  flush.running = true;
  flush.again = false;
  let next: number | null = null;
  try {
    [{ next }] = await backgroundDb()`select private.flush_window(${channel}) as next`;
    flush.failures = 0;
  } catch (error) {
    // A timeout, a deadlock or a dropped connection: try again soon, backing off, rather than
    // leave what waits to the minute's sweeper.
    console.error(`flushing ${channel}:`, error);
    flush.failures++;
    next = Math.min(2000, 100 * 2 ** (flush.failures - 1));
  }
  flush.running = false;
  if (flush.again || next !== null) {
    requestFlush(channel, flush.again ? 0 : next!);
  } else {
    flushes.delete(channel);
    flush.finish();
  }
}
