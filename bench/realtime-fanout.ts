// `npm run bench -- realtime-fanout`: one private channel, room:{id}:chat, with SUBSCRIBERS
// (1,000) subscribers on the local Realtime stand-in, each a member of the room with its own
// user token (so every join runs the RLS read probe) and its own supabase-js client and
// WebSocket, spread over PROCESSES (4) client processes (bench/realtime-fanout/subscribers.ts).
// All join at once. Once all are SUBSCRIBED, a publisher process (bench/realtime-fanout/
// publisher.ts) sends one chat:batch of MESSAGES (10) messages every INTERVAL_MS (100) for
// DURATION_S (30) s the way chat-send does: send_chat, then the room's flush
// (private.flush_window) whose private.publish commits realtime.send. Delivery latency runs from the commit (the publisher's
// wall clock right after the flush statement returned) to the receipt in a subscriber's
// broadcast callback, both as performance.timeOrigin + performance.now() on this machine.
// Prints joins (count, total time, each), deliveries expected vs received, latency
// p50/p90/p99/max, and where it goes: the first receipt of each batch (replication, plus the
// stand-in's first send) and the spread from first to last receipt (the stand-in sending to
// every socket in turn, and the client processes); then the CPU, in % of one core, of the
// gateway process (which hosts the stand-in), the client processes, the publisher and this
// stack's Postgres over the publishing window. Target (reported, never asserted): p99 < 50 ms.
// SUBSCRIBERS, PROCESSES, DURATION_S, INTERVAL_MS and MESSAGES change it; DRAIN_S (2) is how
// long deliveries may still arrive after the last batch; a subscriber not SUBSCRIBED within
// JOIN_TIMEOUT_S (60) of the start of the joins counts as failed.
import postgres from "npm:postgres@3.4.9";
import { cpuShareOfOneCore, cpuSnapshot } from "./lib/cpu.ts";
import { round, summarize, timingLine, writeResults } from "./lib/results.ts";
import { id, seedBigRoom } from "./lib/seed.ts";
import { lines } from "../local/stream-lines.ts";
import { withThrowawayStack } from "../local/throwaway.ts";

const subscriberCount = Number(Deno.env.get("SUBSCRIBERS") ?? 1000);
const processCount = Number(Deno.env.get("PROCESSES") ?? 4);
const durationS = Number(Deno.env.get("DURATION_S") ?? 30);
const intervalMs = Number(Deno.env.get("INTERVAL_MS") ?? 100);
const perBatch = Number(Deno.env.get("MESSAGES") ?? 10);
const drainMs = Number(Deno.env.get("DRAIN_S") ?? 2) * 1000;
const joinTimeoutS = Number(Deno.env.get("JOIN_TIMEOUT_S") ?? 60);
const room = id(1, 1);

/** A child Deno process that speaks JSON lines on stdout and takes commands on stdin. */
class Child {
  readonly process: Deno.ChildProcess;
  #lines: AsyncIterator<string>;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;

  constructor(script: string, env: Record<string, string>) {
    this.process = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", new URL(script, import.meta.url).pathname],
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#stdin = this.process.stdin.getWriter();
    this.#lines = lines(this.process.stdout);
  }

  /** The next JSON line, which must be of `type`. */
  async expect<T>(type: string): Promise<T> {
    const next = await this.#lines.next();
    if (next.done) throw new Error(`a client process ended before sending "${type}"`);
    const message = JSON.parse(next.value);
    if (message.type !== type) throw new Error(`expected "${type}", got ${next.value}`);
    return message as T;
  }

  send(command: string): Promise<void> {
    return this.#stdin.write(new TextEncoder().encode(command + "\n"));
  }

  async end(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    await this.process.status;
  }
}

async function seed(sql: postgres.Sql) {
  await seedBigRoom(sql, room, subscriberCount);
  await sql`vacuum analyze`;
}

type Ready = {
  joined: number;
  failed: number;
  join_errors: number;
  first_error: string | null;
  join_started: number;
  join_ended: number;
  join_ms: number[];
};
type Sent = {
  batches: { seq: number; started_at: number; flush_started_at: number; committed_at: number }[];
};

await withThrowawayStack({ api: 54481, db: 54482 }, async ({ apiUrl, dbUrl, env, cluster }) => {
  const sql = postgres(dbUrl, { prepare: false, max: 1, onnotice: () => {} });
  const clients: Child[] = [];
  let publisher: Child | undefined;
  try {
    await seed(sql);
    console.log(
      `${subscriberCount} subscribers of room:${room}:chat in ${processCount} client processes; ` +
        `a ${perBatch}-message chat:batch every ${intervalMs} ms for ${durationS} s; ` +
        `${navigator.hardwareConcurrency} CPUs; stand-in at ${apiUrl}/realtime/v1/websocket`,
    );
    const share = Math.ceil(subscriberCount / processCount);
    for (let p = 0; p * share < subscriberCount; p++) {
      clients.push(
        new Child("./realtime-fanout/subscribers.ts", {
          ...env,
          ROOM: room,
          FIRST: String(1 + p * share),
          COUNT: String(Math.min(share, subscriberCount - p * share)),
          JOIN_TIMEOUT_S: String(joinTimeoutS),
        }),
      );
    }
    await Promise.all(clients.map((c) => c.expect("loaded")));

    // Every subscriber joins at once.
    await Promise.all(clients.map((c) => c.send("join")));
    const ready = await Promise.all(clients.map((c) => c.expect<Ready>("ready")));
    const joined = ready.reduce((sum, r) => sum + r.joined, 0);
    const joinTotalMs = Math.max(...ready.map((r) => r.join_ended)) -
      Math.min(...ready.map((r) => r.join_started));
    const joins = summarize(ready.flatMap((r) => r.join_ms));
    const joinErrors = ready.reduce((sum, r) => sum + r.join_errors, 0);
    const firstJoinError = ready.find((r) => r.first_error)?.first_error ?? null;
    console.log(
      `Joined ${joined}/${subscriberCount} in ${(joinTotalMs / 1000).toFixed(2)} s ` +
        `(each: ${timingLine(joins)})` +
        (joinErrors ? `; ${joinErrors} refused or timed out first: ${firstJoinError}` : ""),
    );

    publisher = new Child("./realtime-fanout/publisher.ts", {
      ...env,
      ROOM: room,
      MEMBERS: String(subscriberCount),
      DURATION_S: String(durationS),
      INTERVAL_MS: String(intervalMs),
      MESSAGES: String(perBatch),
    });
    const pids = () => ({
      clients: clients.map((c) => c.process.pid),
      publisher: [publisher!.process.pid],
    });
    await publisher.expect("started");
    const before = cpuSnapshot(cluster.dataDir, pids());
    const { batches } = await publisher.expect<Sent>("sent");
    const cpu = cpuShareOfOneCore(before, cpuSnapshot(cluster.dataDir, pids()));
    await publisher.end();
    await new Promise((resolve) => setTimeout(resolve, drainMs));
    await Promise.all(clients.map((c) => c.send("stop")));
    const received = (await Promise.all(
      clients.map((c) => c.expect<{ received: number[][] }>("samples")),
    )).flatMap((s) => s.received);

    // Per delivery: commit -> receipt. Per batch: the first receipt, and first to last.
    const committedAt = new Map(batches.map((b) => [b.seq, b.committed_at]));
    const latencies: number[] = [];
    const first = new Map<number, number>(), last = new Map<number, number>();
    let unknown = 0, duplicates = 0;
    for (const deliveries of received) {
      const seen = new Set<number>();
      for (let i = 0; i < deliveries.length; i += 2) {
        const [seq, at] = [deliveries[i], deliveries[i + 1]];
        const committed = committedAt.get(seq);
        if (committed === undefined) unknown++;
        else if (seen.has(seq)) duplicates++;
        else {
          seen.add(seq);
          latencies.push(at - committed);
          first.set(seq, Math.min(first.get(seq) ?? Infinity, at));
          last.set(seq, Math.max(last.get(seq) ?? -Infinity, at));
        }
      }
    }
    const expected = batches.length * joined;
    const latency = summarize(latencies);
    const firstReceipt = summarize(
      batches.filter((b) => first.has(b.seq)).map((b) => first.get(b.seq)! - b.committed_at),
    );
    const spread = summarize([...first].map(([seq, at]) => last.get(seq)! - at));
    const flush = summarize(batches.map((b) => b.committed_at - b.flush_started_at));
    const publishStep = summarize(batches.map((b) => b.committed_at - b.started_at));
    const sentForS = (batches.at(-1)!.committed_at - batches[0].started_at) / 1000;
    console.log(
      `Sent ${batches.length} batches in ${sentForS.toFixed(1)} s ` +
        `(send_chat + flush: ${timingLine(publishStep)}; the flush statement: ${
          timingLine(flush)
        })`,
    );
    console.log(
      `Deliveries: expected ${expected}, received ${latencies.length}, lost ` +
        `${expected - latencies.length}${duplicates ? `, duplicates ${duplicates}` : ""}` +
        `${unknown ? `, unknown batches ${unknown}` : ""}`,
    );
    console.log(`Latency commit -> receipt: ${timingLine(latency)} (target p99 < 50 ms)`);
    console.log(`  first receipt of a batch:   ${timingLine(firstReceipt)}`);
    console.log(`  first to last receipt:      ${timingLine(spread)}`);
    console.log(
      `CPU over ${cpu.wall_s.toFixed(1)} s of publishing, % of one core (machine busy ` +
        `${cpu.machine_busy_pct_of_all_cpus}% of ${navigator.hardwareConcurrency} CPUs):`,
    );
    const pct = cpu.pct_of_one_core as Record<string, number>;
    console.log(
      `  gateway + stand-in ${pct.gateway_process}% (main thread ${pct.gateway_main_thread}%), ` +
        `${processCount} client processes ${pct.clients}%, publisher ${pct.publisher}%`,
    );
    console.log(
      `  postgres ${pct.postgres_all}% (walsender ${pct.postgres_walsender}%, walwriter ` +
        `${pct.postgres_walwriter}%, backends ${pct.postgres_backends}%, other ` +
        `${pct.postgres_other}%)`,
    );

    await writeResults("realtime-fanout", {
      subscribers: subscriberCount,
      client_processes: processCount,
      interval_ms: intervalMs,
      messages_per_batch: perBatch,
      duration_s: durationS,
      cpus: navigator.hardwareConcurrency,
      joins: {
        joined,
        failed: subscriberCount - joined,
        refused_or_timed_out_before_joining: joinErrors,
        first_error: firstJoinError,
        total_ms: round(joinTotalMs),
        each: joins,
      },
      publishing: {
        batches: batches.length,
        seconds: sentForS,
        send_and_flush: publishStep,
        flush,
      },
      deliveries: {
        expected,
        received: latencies.length,
        lost: expected - latencies.length,
        duplicates,
        unknown,
      },
      latency_ms: {
        latency_from: "wall clock right after the publisher's flush statement returned",
        commit_to_receipt: latency,
        first_receipt_of_batch: firstReceipt,
        first_to_last_receipt: spread,
      },
      cpu,
      target: "p99 < 50 ms from commit to receipt",
    });
  } finally {
    await Promise.all([...clients, publisher].map((c) => c?.end()));
    await sql.end();
  }
});
