// When to try again: the contract's schedule (1, 2, 5, 10 s, then every 10 s) unless the server
// said when with Retry-After.

export const defaultBackoffMs: readonly number[] = [1000, 2000, 5000, 10_000];

/** The delay before retry number `attempt` (0 = the first retry). */
export function backoffMs(attempt: number, schedule: readonly number[] = defaultBackoffMs): number {
  return schedule[Math.min(Math.max(0, attempt), schedule.length - 1)];
}

/**
 * A Retry-After header in milliseconds: delta-seconds or an HTTP date (relative to `now`), or
 * undefined when absent or unreadable.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  now = Date.now(),
): number | undefined {
  if (value === null || value === undefined || value.trim() === "") return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** What `retrying` needs of timers (kept minimal so retry.ts stays free of the timer module). */
interface Sleeper {
  (ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * Runs `attempt` until it succeeds, waiting Retry-After or the backoff after each failure that
 * `isRetryable` accepts; any other failure is thrown. Gives up (throws the last error) once
 * `signal` is aborted.
 */
export async function retrying<T>(
  attempt: () => Promise<T>,
  {
    sleep,
    signal,
    schedule = defaultBackoffMs,
    isRetryable,
  }: {
    sleep: Sleeper;
    signal?: AbortSignal;
    schedule?: readonly number[];
    isRetryable: (error: unknown) => { retryAfterMs?: number } | false;
  },
): Promise<T> {
  for (let failures = 0;; failures++) {
    try {
      return await attempt();
    } catch (error) {
      const retry = isRetryable(error);
      if (!retry || signal?.aborted) throw error;
      await sleep(retry.retryAfterMs ?? backoffMs(failures, schedule), signal);
      if (signal?.aborted) throw error;
    }
  }
}
