// Running the load client (bench/lib/load-worker.ts) from a benchmark: a job in a Worker of its
// own, the CPU of its measured window, and the figures of its result.
import { cpuPerUnit, cpuSnapshot } from "./cpu.ts";
import type { LoadJob, LoadResult } from "./load-worker.ts";
import { round, summarize } from "./results.ts";

export type { LoadJob, LoadResult, LoadTarget } from "./load-worker.ts";

/**
 * What every load benchmark takes from the environment: each scenario sends for WARMUP_S (2) s,
 * not recorded (connections, JIT, caches), then DURATION_S (10) s measured; DB_POOL_MAX (10) is
 * the functions' pool (supabase/functions/_shared/db.ts reads the same variable), printed and
 * written with the figures.
 */
export const loadSettings = {
  warmupMs: Number(Deno.env.get("WARMUP_S") ?? 2) * 1000,
  durationMs: Number(Deno.env.get("DURATION_S") ?? 10) * 1000,
  poolMax: Number(Deno.env.get("DB_POOL_MAX") ?? 10),
};

/** Runs one job in a fresh Worker and returns what it measured. */
export function runLoad(job: LoadJob): Promise<LoadResult> {
  const worker = new Worker(new URL("./load-worker.ts", import.meta.url).href, { type: "module" });
  return new Promise<LoadResult>((resolve, reject) => {
    worker.onmessage = (event) => resolve(event.data);
    worker.onerror = (event) => reject(event.error ?? new Error(event.message));
    worker.postMessage(job);
  }).finally(() => worker.terminate());
}

/**
 * runLoad, with the CPU used in the measured window (from the end of the warm-up until the load
 * client is done) per acknowledged request; `dataDir` is the stack's cluster (bench/lib/cpu.ts).
 */
export async function measuredLoad(job: LoadJob, dataDir: string) {
  const done = runLoad(job);
  const start = new Promise<ReturnType<typeof cpuSnapshot>>((resolve) =>
    setTimeout(() => resolve(cpuSnapshot(dataDir)), job.warmupMs)
  );
  const run = await done;
  const cpu = cpuPerUnit(await start, cpuSnapshot(dataDir), run.ok);
  return { run, cpu };
}

/** The figures of one run, with `units` (e.g. messages) per acknowledged request. */
export function loadFigures(run: LoadResult, unitsPerRequest = 1) {
  const timing = summarize(run.samplesMs);
  const seconds = run.elapsedMs / 1000;
  return {
    requests: run.sent,
    acknowledged: run.ok,
    requests_per_s: round(run.sent / seconds),
    acknowledged_units_per_s: round((run.ok * unitsPerRequest) / seconds),
    p50_ms: timing.p50_ms,
    p99_ms: timing.p99_ms,
    max_ms: timing.max_ms,
    errors: run.errors,
    statuses: run.statuses,
    first_error: run.firstError ?? null,
    mean_response_bytes: run.meanBytes,
  };
}

/** "history   12345 requests   1234.5 req/s  p50 1.23 ms  p99 4.56 ms  max 7.89 ms  errors 0" */
export const figuresLine = (name: string, f: ReturnType<typeof loadFigures>) =>
  `${name.padEnd(18)} ${String(f.requests).padStart(7)} requests  ` +
  `${f.requests_per_s.toFixed(1).padStart(7)} req/s  p50 ${f.p50_ms.toFixed(2)} ms  ` +
  `p99 ${f.p99_ms.toFixed(2)} ms  max ${f.max_ms.toFixed(2)} ms  errors ${f.errors}`;
