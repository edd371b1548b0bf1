// The publisher of bench/realtime-fanout.ts, a process of its own so its CPU is counted apart.
// Every INTERVAL_MS for DURATION_S it does what chat-send does for a request that fills a
// batch, with the functions' own code (supabase/functions/_shared): edge.send_chat of
// MESSAGES messages as one of the room's members (asCaller), then private.flush_window(channel)
// on the background pool, again after the milliseconds it answers until it answers null (the
// room's interval had not quite passed), whose private.publish -> realtime.send commits the
// chat:batch. The batch's
// sequence number rides in its messages' client_id, `b<seq>-<i>`. `committed_at` is the
// wall-clock time (performance.timeOrigin + performance.now()) right after the flush statement
// returns: it ran alone, so its commit had happened by then. Prints `{"type":"started"}` when
// the first batch is about to go, and `{"type":"sent", batches: [...]}` at the end; it exits
// when its stdin closes.
import { asCaller, backgroundDb, closeDb, db } from "../../supabase/functions/_shared/db.ts";
import type { Claims } from "../../supabase/functions/_shared/auth.ts";
import { id } from "../lib/seed.ts";

const room = Deno.env.get("ROOM")!;
const members = Number(Deno.env.get("MEMBERS"));
const durationMs = Number(Deno.env.get("DURATION_S")) * 1000;
const intervalMs = Number(Deno.env.get("INTERVAL_MS"));
const perBatch = Number(Deno.env.get("MESSAGES"));
const channel = `room:${room}:chat`;

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const words = ["the", "drop", "is", "coming", "who", "picked", "this", "song", "again", "love"];
// A chat line of 20 to 120 characters.
const body = (seq: number, i: number) =>
  Array.from({ length: 4 + ((seq * 7 + i * 13) % 20) }, (_, w) => words[(seq + i + w) % 10])
    .join(" ");

// Each batch is one member's request; sending 10 messages a batch, no member comes near the
// rate limit (20/s, bursts of 50) when they take turns.
const claimsOf = (n: number): Claims => ({
  sub: id(0, n),
  role: "authenticated",
  aud: "authenticated",
  is_anonymous: false,
});

// Both pools connected before the first batch, so it does not pay for the connections.
await db()`select 1`;
await backgroundDb()`select 1`;

interface Sent {
  seq: number;
  started_at: number;
  flush_started_at: number;
  committed_at: number;
}
const batches: Sent[] = [];
const started = now();
console.log(JSON.stringify({ type: "started", at: started }));
for (let seq = 1; (seq - 1) * intervalMs < durationMs; seq++) {
  await sleep(started + (seq - 1) * intervalMs - now());
  const startedAt = now();
  const messages = Array.from({ length: perBatch }, (_, i) => ({
    client_id: `b${seq}-${i}`,
    body: body(seq, i),
  }));
  await asCaller(
    claimsOf(1 + (seq % members)),
    (sql) => sql`edge.send_chat(${room}, ${sql.json(messages)})`,
  );
  // flush_started_at: of the flush that sent the batch (an early one only says how long to wait).
  let flushStarted = 0;
  for (let next: number | null = 0; next !== null;) {
    await sleep(next);
    flushStarted = now();
    [{ next }] = await backgroundDb()`select private.flush_window(${channel}) as next`;
  }
  batches.push({
    seq,
    started_at: startedAt,
    flush_started_at: flushStarted,
    committed_at: now(),
  });
}
console.log(JSON.stringify({ type: "sent", batches }));
// Connected until the bench has read the CPU of its backends and closes stdin.
for await (const _ of Deno.stdin.readable);
await closeDb();
