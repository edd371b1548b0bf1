// `npm run bench -- late-joiner`: what a late joiner costs, with 1,000 rooms × 1,000 messages
// and 100,000 plays. Through the gateway, at a concurrency of 16 (a closed loop), for:
//   health (floor)      GET /functions/v1/health: what any request costs on this machine
//   room-context        GET /functions/v1/room-context?room_id= (50 chat, 10 plays: one statement)
//   history             GET /functions/v1/history?channel=room:{id}:chat&limit=100
//   room-context-naive  the seed's getRecentContext: three queries one after another, each its
//                       own transaction as the caller (bench/late-joiner/functions/), served by a
//                       second gateway in this process with the same JWT check
// Prints requests/s and p50/p99/max per scenario, each p99 as a multiple of health's p99 in the
// same run, and room-context's throughput over the naive one's. Target: room-context p99 < 15 ms
// and at least 2× the naive throughput. Then, to show
// where the time goes, each statement's cost inside Postgres (timed there, one connection).
// CLIENTS, WARMUP_S, DURATION_S and DB_POOL_MAX change the load and the functions' pool.
import postgres from "npm:postgres@3.4.9";
import { p99OverFloor, ratiosLine, summarize, writeResults } from "./lib.ts";
import { type RunAs, timeCalls } from "./ingest/client.ts";
import type { LoadJob, LoadResult } from "./late-joiner/load.ts";
import { createGateway, serveGateway } from "../local/gateway.ts";
import { userToken } from "../local/keys.ts";
import { withThrowawayStack } from "../local/throwaway.ts";

const clients = Number(Deno.env.get("CLIENTS") ?? 16);
const warmupMs = Number(Deno.env.get("WARMUP_S") ?? 2) * 1000;
const durationMs = Number(Deno.env.get("DURATION_S") ?? 10) * 1000;
// The functions' pool (supabase/functions/_shared/db.ts reads the same variable). Kept at the
// deployed default: the point is the endpoints as shipped, and both sides share this one pool.
const poolMax = Number(Deno.env.get("DB_POOL_MAX") ?? 10);
const naivePort = 54373;
const here = new URL("./late-joiner/", import.meta.url).pathname;

async function seed(sql: postgres.Sql) {
  console.log("Seeding 5,000 users, 1,000 rooms, 1,000,000 messages, 100,000 plays...");
  const started = performance.now();
  // Ids readable by kind and number: 0 users, 1 rooms, 2 songs.
  await sql`
    create function pg_temp.id(kind int, n int) returns uuid language sql immutable as
    $$ select (kind || '0000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid $$`;
  await sql`
    insert into auth.users (id, email, is_anonymous)
    select pg_temp.id(0, n), 'u' || n || '@bench.test', false from generate_series(1, 5000) n`;
  // Room n is hosted by user n (the trigger adds the host membership); one in five is private.
  await sql`
    insert into public.rooms (id, name, host_id, visibility)
    select pg_temp.id(1, n), 'Room ' || n, pg_temp.id(0, n),
           case when n % 5 = 0 then 'private' else 'public' end
    from generate_series(1, 1000) n`;
  // A dj and eight listeners per room from users 1,001..5,000: most belong to two or three rooms,
  // so the RLS subquery (the caller's rooms) is not trivially one row.
  await sql`
    insert into public.room_members (room_id, user_id, role)
    select pg_temp.id(1, n), pg_temp.id(0, 1001 + (n * 9 + j) % 4000),
           case when j = 0 then 'dj' else 'listener' end
    from generate_series(1, 1000) n, generate_series(0, 8) j`;
  await sql`
    insert into public.songs (id, title, artist, duration_ms)
    select pg_temp.id(2, n), 'Song ' || n, 'Artist ' || n % 300, 150000 + n % 120 * 1000
    from generate_series(1, 2000) n`;
  // Chat interleaved across rooms as live rooms would write it; created_at grows with the id,
  // 10 ms apart, so the seed's ORDER BY created_at and the endpoints' ORDER BY seq agree. All of
  // it has gone out: each room's seq 1..1,000 in id order, broadcast when created.
  await sql`
    insert into public.messages (room_id, user_id, client_id, body, created_at, seq, broadcast_at)
    select pg_temp.id(1, 1 + m % 1000), pg_temp.id(0, 1 + m % 1000), 'bench-' || m,
           'message ' || m || ': what a track, who is this?', t.at, (m + 999) / 1000, t.at
    from generate_series(1, 1000000) m, lateral (select now() - (1000000 - m) * interval '10 ms') t (at)`;
  await sql`
    insert into public.play_history (room_id, song_id, played_at)
    select pg_temp.id(1, 1 + p % 1000), pg_temp.id(2, 1 + p % 2000),
           now() - (100000 - p) * interval '1 s'
    from generate_series(1, 100000) p`;
  await sql`
    insert into public.playback_state (room_id, song_id, position_ms, is_playing, seq)
    select pg_temp.id(1, n), pg_temp.id(2, 1 + n % 2000), 60000, true, 1
    from generate_series(1, 1000) n`;
  await sql`vacuum analyze`;
  const [counts] = await sql`
    select (select count(*) from public.rooms)::int as rooms,
           (select count(*) from public.room_members)::int as memberships,
           (select count(*) from public.messages)::int as messages,
           (select count(*) from public.play_history)::int as plays,
           (select count(*) from public.playback_state)::int as playback_states`;
  console.log(
    `Seeded ${JSON.stringify(counts)} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return counts;
}

/** One scenario's closed loop, in a Worker (bench/late-joiner/load.ts). */
function load(job: LoadJob): Promise<LoadResult> {
  const worker = new Worker(new URL("./late-joiner/load.ts", import.meta.url).href, {
    type: "module",
  });
  return new Promise<LoadResult>((resolve, reject) => {
    worker.onmessage = (event) => resolve(event.data);
    worker.onerror = (event) => reject(event.error ?? new Error(event.message));
    worker.postMessage(job);
  }).finally(() => worker.terminate());
}

await withThrowawayStack({ api: 54371, db: 54372 }, async ({ apiUrl, dbUrl, env }) => {
  const sql = postgres(dbUrl, { prepare: false, max: 1, onnotice: () => {} });
  const naiveServer = serveGateway(
    await createGateway({ functionsDir: `${here}functions`, configPath: `${here}config.toml` }),
    naivePort,
    // The same per-request log line, written the same way, as the stack's own gateway.
    (line) =>
      Deno.writeTextFileSync(`${env.TEST_CLUSTER_DIR}/naive-gateway.log`, line + "\n", {
        append: true,
      }),
  );
  try {
    const seeded = await seed(sql);
    // Every member of every seeded room (not supabase/seed.sql's two), with a token: a request
    // is one room as one of its members.
    const members = await sql<{ room: string; user: string }[]>`
      select room_id::text as room, user_id::text as user from public.room_members
      where room_id::text like '10000000-%'`;
    const targets = await Promise.all(
      members.map(async ({ room, user }) => ({ room, token: await userToken(user) })),
    );
    console.log(
      `${targets.length} (room, member) targets; ${clients} clients, ${
        warmupMs / 1000
      } s warm-up + ` +
        `${durationMs / 1000} s per scenario; DB_POOL_MAX=${poolMax}` +
        (Deno.env.get("DB_POOL_MAX") ? "" : " (the default of _shared/db.ts)"),
    );

    // health first: the floor of this machine, gateway + JWT check + two trivial queries, at
    // the same concurrency (it says what latency any endpoint can reach here).
    const scenarios = {
      "health (floor)": `${apiUrl}/functions/v1/health`,
      "room-context": `${apiUrl}/functions/v1/room-context?room_id={room}`,
      "room-context-naive":
        `http://127.0.0.1:${naivePort}/functions/v1/room-context-naive?room_id={room}`,
      "history": `${apiUrl}/functions/v1/history?channel=room:{room}:chat&limit=100`,
    };
    const results: Record<string, unknown> = {};
    const rps: Record<string, number> = {};
    const p99s: Record<string, number> = {};
    for (const [name, url] of Object.entries(scenarios)) {
      const run = await load({ url, targets, clients, warmupMs, durationMs });
      rps[name] = Math.round((run.samplesMs.length / run.elapsedMs) * 1000 * 10) / 10;
      const timing = summarize(run.samplesMs);
      p99s[name] = timing.p99_ms;
      results[name] = {
        requests: timing.count,
        requests_per_s: rps[name],
        p50_ms: timing.p50_ms,
        p99_ms: timing.p99_ms,
        max_ms: timing.max_ms,
        errors: run.errors,
        first_error: run.firstError ?? null,
        mean_response_bytes: run.meanBytes,
      };
      console.log(
        `${name.padEnd(18)} ${String(timing.count).padStart(7)} requests  ` +
          `${rps[name].toFixed(1).padStart(7)} req/s  p50 ${timing.p50_ms.toFixed(2)} ms  ` +
          `p99 ${timing.p99_ms.toFixed(2)} ms  max ${timing.max_ms.toFixed(2)} ms  ` +
          `errors ${run.errors}  ~${run.meanBytes} B/response`,
      );
      if (run.firstError) console.log(`  first error: ${run.firstError}`);
    }
    const ratio = Math.round((rps["room-context"] / rps["room-context-naive"]) * 100) / 100;
    console.log(`room-context req/s ÷ naive req/s: ${ratio}× (targets: ≥ 2×, p99 < 15 ms)`);
    const overHealth = p99OverFloor(p99s, "health (floor)");
    console.log(`p99 ÷ health p99 (same run): ${ratiosLine(overHealth)}`);

    // Where the time goes: the same statements inside Postgres, for the same members (2,000
    // calls, drawn across them), as bench/ingest/client.ts's timeCalls runs them: room-context
    // and history as the functions call them, the naive queries as PostgREST runs them.
    const pairs = Array.from(
      { length: 2000 },
      (_, i) => members[((i + 1) * 7919) % members.length],
    );
    const statements: Record<string, [string, RunAs]> = {
      "room_context()": [`edge.room_context($1)`, "caller, one statement"],
      "channel_history(100)": [
        `edge.channel_history('room:' || $1 || ':chat', 100)`,
        "caller, one statement",
      ],
      "naive 1: chat": [
        `select * from public.messages where room_id = $1 order by created_at desc limit 50`,
        "caller, settings first",
      ],
      // The seed orders chat by created_at, which no index serves: the room's 1,000 rows are
      // read and sorted. The same query by seq (along the (room_id, seq) index, as
      // room-context reads), for comparison:
      "naive 1 by seq instead": [
        `select * from public.messages where room_id = $1 and seq is not null
         order by seq desc limit 50`,
        "caller, settings first",
      ],
      "naive 2: plays + songs": [
        `select h.*, (select to_jsonb(s) from public.songs s where s.id = h.song_id) as songs
         from public.play_history h where h.room_id = $1
         order by h.played_at desc limit 10`,
        "caller, settings first",
      ],
      "naive 3: playback": [
        `select * from public.playback_state where room_id = $1`,
        "caller, settings first",
      ],
    };
    const database: Record<string, unknown> = {};
    console.log("\nInside Postgres, per call (clock_timestamp, 2,000 calls, one connection):");
    for (const [label, [statement, runAs]] of Object.entries(statements)) {
      database[label] = summarize(await timeCalls(sql, statement, { pairs, calls: 2000, runAs }));
      console.log(`  ${label.padEnd(24)} ${JSON.stringify(database[label])}`);
    }

    await writeResults("late-joiner", {
      seeded,
      clients,
      warmup_s: warmupMs / 1000,
      duration_s: durationMs / 1000,
      db_pool_max: poolMax,
      cpus: navigator.hardwareConcurrency,
      scenarios: results,
      room_context_over_naive_rps: ratio,
      p99_over_health_p99: overHealth,
      in_database: database,
    });
  } finally {
    await naiveServer.shutdown();
    await sql.end();
  }
});
