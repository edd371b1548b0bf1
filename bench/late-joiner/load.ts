// The load client of bench/late-joiner.ts, run in a Worker so that sending requests and timing
// them does not share a thread (event loop) with the gateways it measures.
//
// A closed loop: `clients` concurrent loops, each sending its next request as soon as the last
// answered, for warmupMs (not recorded) then durationMs. Every loop draws its targets from a
// PRNG seeded by its index, so every scenario asks for the same rooms as the same members.
export interface LoadJob {
  /** Full URL; `{room}` is replaced by the target's room id. */
  url: string;
  targets: { room: string; token: string }[];
  clients: number;
  warmupMs: number;
  durationMs: number;
}

export interface LoadResult {
  samplesMs: number[];
  elapsedMs: number;
  errors: number;
  firstError?: string;
  meanBytes: number;
}

function mulberry32(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function run(job: LoadJob): Promise<LoadResult> {
  const measureFrom = performance.now() + job.warmupMs;
  const stopAt = measureFrom + job.durationMs;
  const samplesMs: number[] = [];
  let errors = 0, bytes = 0, lastEnd = measureFrom;
  let firstError: string | undefined;
  await Promise.all(Array.from({ length: job.clients }, async (_, client) => {
    const random = mulberry32(client + 1);
    while (performance.now() < stopAt) {
      const target = job.targets[Math.floor(random() * job.targets.length)];
      const started = performance.now();
      let status = 0, body: string;
      try {
        const response = await fetch(job.url.replace("{room}", target.room), {
          headers: { Authorization: `Bearer ${target.token}` },
        });
        status = response.status;
        body = await response.text();
      } catch (error) {
        body = String(error);
      }
      const ended = performance.now();
      if (started < measureFrom) continue; // warm-up: connections, JIT, caches
      samplesMs.push(ended - started);
      bytes += body.length;
      lastEnd = Math.max(lastEnd, ended);
      if (status !== 200) {
        errors++;
        firstError ??= `${status} ${body.slice(0, 500)}`;
      }
    }
  }));
  return {
    samplesMs,
    elapsedMs: lastEnd - measureFrom,
    errors,
    firstError,
    meanBytes: Math.round(bytes / Math.max(1, samplesMs.length)),
  };
}

// deno-lint-ignore no-explicit-any
const worker = self as any;
worker.onmessage = async (event: MessageEvent<LoadJob>) =>
  worker.postMessage(await run(event.data));
