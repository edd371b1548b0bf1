// The load client of the HTTP benchmarks, run in a Worker (bench/lib/load.ts starts it) so that
// sending and timing requests does not share a thread with the gateways it measures.
//
// Two shapes:
//   closed  `loops` concurrent loops, each sending its next request as soon as the last one
//           answered, to a target drawn from its own list by a random source seeded by its
//           index: every run asks for the same targets in the same order
//   paced   an open loop: `ratePerS` requests a second over `targets`, round robin, at most
//           `maxInFlight` at once. When the stack cannot keep up, the slots it falls more than
//           50 ms behind on are skipped (counted as `missed`) rather than sent in a burst later:
//           what was achieved is measured, never assumed.
// Both send for warmupMs (not recorded) and then durationMs.
//
// The URL and the body are templates: {room} is the target's room id; in the body {id} is unique
// per request within the job (`<loop>-<n>`), {seq} is the target's next sequence number
// (seqFrom, seqFrom + 1, ... per target, in the order sent), {elapsed_ms} is the whole
// milliseconds since the job started. A job without a body sends GETs.
import { seededRandom } from "../../local/seeded-random.ts";

export interface LoadTarget {
  room: string;
  token: string;
}

export interface LoadJob {
  url: string;
  /** POST this; without it, GET. */
  body?: string;
  /** Closed loop: one list of targets per concurrent loop. */
  loops?: LoadTarget[][];
  /** Open loop: requests a second over `targets` (round robin). */
  paced?: { ratePerS: number; targets: LoadTarget[]; maxInFlight: number };
  /** The status that counts as acknowledged (202 for chat-send and playback, 200 for a GET). */
  okStatus: number;
  warmupMs: number;
  durationMs: number;
  /** First {seq} of every target (default 1). */
  seqFrom?: number;
  /** Counts the acknowledged responses whose body contains this text (e.g. `"applied":false`). */
  countBodiesContaining?: string;
}

export interface LoadResult {
  /** Latency of every request sent in the measured window (ms). */
  samplesMs: number[];
  /** From the start of the window to the last answer of a request sent in it (ms). */
  elapsedMs: number;
  /** Requests sent in the measured window, and how many were acknowledged (okStatus). */
  sent: number;
  ok: number;
  errors: number;
  firstError?: string;
  statuses: Record<string, number>;
  /** Acknowledged responses containing countBodiesContaining. */
  matching: number;
  /** The mean size of a response body in the measured window (characters). */
  meanBytes: number;
  /** Paced: requests due in the window (rate × duration), and those skipped because the stack
   * fell behind (the rest of due − sent were still waiting for a free slot at the end). */
  due: number;
  missed: number;
  /** Wall clock (epoch ms) of the measured window, to find its rows in the database. */
  windowStartEpochMs: number;
  windowEndEpochMs: number;
  /** The last {seq} sent to each room (warm-up included). */
  lastSeq: Record<string, number>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function run(job: LoadJob): Promise<LoadResult> {
  const jobStart = performance.now();
  const measureFrom = jobStart + job.warmupMs;
  const stopAt = measureFrom + job.durationMs;
  const samplesMs: number[] = [];
  const statuses: Record<string, number> = {};
  const seqs = new Map<string, number>();
  const lastSeq: Record<string, number> = {};
  let sent = 0, ok = 0, errors = 0, matching = 0, bytes = 0, lastEnd = measureFrom;
  let firstError: string | undefined;
  const seqFrom = job.seqFrom ?? 1;

  /** Sends one request; records it when it was sent in the measured window. */
  async function send(target: LoadTarget, id: string): Promise<void> {
    const key = `${target.room} ${target.token}`;
    const seq = seqs.get(key) ?? seqFrom;
    seqs.set(key, seq + 1);
    lastSeq[target.room] = Math.max(lastSeq[target.room] ?? 0, seq);
    const body = job.body
      ?.replaceAll("{room}", target.room)
      .replaceAll("{id}", id)
      .replaceAll("{seq}", String(seq))
      .replaceAll("{elapsed_ms}", String(Math.floor(performance.now() - jobStart)));
    const started = performance.now();
    let status = 0, text: string;
    try {
      const response = await fetch(job.url.replaceAll("{room}", target.room), {
        method: body === undefined ? "GET" : "POST",
        headers: {
          Authorization: `Bearer ${target.token}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body,
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      text = String(error);
    }
    const ended = performance.now();
    if (started < measureFrom || started >= stopAt) return; // warm-up: connections, JIT, caches
    sent++;
    samplesMs.push(ended - started);
    bytes += text.length;
    lastEnd = Math.max(lastEnd, ended);
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status === job.okStatus) {
      ok++;
      if (job.countBodiesContaining && text.includes(job.countBodiesContaining)) matching++;
    } else {
      errors++;
      firstError ??= `${status} ${text.slice(0, 500)}`;
    }
  }

  let due = 0, missed = 0;
  if (job.loops) {
    const loops = job.loops;
    await Promise.all(loops.map(async (targets, loop) => {
      const random = seededRandom(loop + 1);
      for (let n = 0; performance.now() < stopAt; n++) {
        await send(targets[Math.floor(random() * targets.length)], `${loop}-${n}`);
      }
    }));
  } else if (job.paced) {
    const { ratePerS, targets, maxInFlight } = job.paced;
    const inFlight = new Set<Promise<void>>();
    const slowest = Math.max(1, Math.ceil(ratePerS * 0.05)); // 50 ms of requests
    let k = 0; // the next slot
    for (let now = performance.now(); now < stopAt; now = performance.now()) {
      const dueNow = Math.floor(((now - jobStart) * ratePerS) / 1000);
      if (dueNow - k > slowest) {
        if (now >= measureFrom) missed += dueNow - k;
        k = dueNow;
      }
      while (k < dueNow && inFlight.size < maxInFlight) {
        const request = send(targets[k % targets.length], `p-${k}`);
        inFlight.add(request);
        request.finally(() => inFlight.delete(request));
        k++;
      }
      if (inFlight.size >= maxInFlight) await Promise.race(inFlight);
      else await sleep(Math.max(0, jobStart + ((k + 1) * 1000) / ratePerS - performance.now()));
    }
    await Promise.all(inFlight);
    due = Math.floor((ratePerS * job.durationMs) / 1000);
  }
  return {
    samplesMs,
    elapsedMs: lastEnd - measureFrom,
    sent,
    ok,
    errors,
    firstError,
    statuses,
    matching,
    meanBytes: Math.round(bytes / Math.max(1, sent)),
    due,
    missed,
    windowStartEpochMs: performance.timeOrigin + measureFrom,
    windowEndEpochMs: performance.timeOrigin + stopAt,
    lastSeq,
  };
}

// deno-lint-ignore no-explicit-any
const worker = self as any;
worker.onmessage = async (event: MessageEvent<LoadJob>) =>
  worker.postMessage(await run(event.data));
