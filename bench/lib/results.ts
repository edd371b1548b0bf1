// What the benchmarks report: timing summaries, ratios and rounding for the printed figures, and
// the results file. Benchmarks print and write their figures; they never assert them.
export interface Timing {
  count: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
}

export function summarize(samplesMs: number[]): Timing {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  const round = (ms: number) => Math.round(ms * 1000) / 1000;
  return {
    count: sorted.length,
    p50_ms: round(at(0.5)),
    p90_ms: round(at(0.9)),
    p99_ms: round(at(0.99)),
    max_ms: round(at(1)),
  };
}

/** "p50 1.2  p90 3.4  p99 5.6  max 7.8 ms", with `digits` decimals. */
export const timingLine = (t: Timing, digits = 1) =>
  `p50 ${t.p50_ms.toFixed(digits)}  p90 ${t.p90_ms.toFixed(digits)}  ` +
  `p99 ${t.p99_ms.toFixed(digits)}  max ${t.max_ms.toFixed(digits)} ms`;

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Each scenario's p99 as a multiple of the floor scenario's p99 in the same run (e.g. health):
 * what an endpoint adds over the cheapest request on the same machine under the same load.
 */
export function p99OverFloor(
  p99s: Record<string, number>,
  floor: string,
): Record<string, number> {
  return Object.fromEntries(
    Object.entries(p99s)
      .filter(([name]) => name !== floor)
      .map(([name, p99]) => [name, Math.round((p99 / p99s[floor]) * 100) / 100]),
  );
}

/** "room-context 3.1×, history 2.4×" */
export const ratiosLine = (ratios: Record<string, number>) =>
  Object.entries(ratios).map(([name, r]) => `${name} ${r.toFixed(2)}×`).join(", ");

/** Writes bench/results/<name>.json (git-ignored) and says where. */
export async function writeResults(name: string, results: unknown): Promise<void> {
  const dir = new URL("../results/", import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  const file = new URL(`${name}.json`, dir);
  await Deno.writeTextFile(file, JSON.stringify(results, null, 2) + "\n");
  console.log(`Results written to ${file.pathname}`);
}
