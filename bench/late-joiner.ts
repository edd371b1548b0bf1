// `npm run bench -- late-joiner`: what a late joiner costs, with 1,000 rooms × 1,000 messages
// and 100,000 plays. Through the gateway, at a concurrency of 16 (a closed loop), for:
//   health (floor)      GET /functions/v1/health: what any request costs on this machine
//   room-context        GET /functions/v1/room-context?room_id= (50 chat, 10 plays: one statement)
//   history             GET /functions/v1/history?channel=room:{id}:chat&limit=100
//   room-context-naive  the seed's getRecentContext: three queries one after another, each its
//                       own transaction as the caller (bench/naive/functions/), served by a
//                       second gateway in this process with the same JWT check
// Prints requests/s and p50/p99/max per scenario, each p99 as a multiple of health's p99 in the
// same run, and room-context's throughput over the naive one's. Target: room-context p99 < 15 ms
// and at least 2× the naive throughput. Then, to show
// where the time goes, each statement's cost inside Postgres (timed there, one connection).
// CLIENTS, WARMUP_S, DURATION_S and DB_POOL_MAX change the load and the functions' pool.
import postgres from "npm:postgres@3.4.9";
import { figuresLine, loadFigures, loadSettings, runLoad } from "./lib/load.ts";
import { p99OverFloor, ratiosLine, summarize, writeResults } from "./lib/results.ts";
import { seedRoomsWithMembers, seedTimed } from "./lib/seed.ts";
import { type RunAs, timeCalls } from "./lib/statement-timing.ts";
import { serveNaiveGateway } from "./naive/gateway.ts";
import { userToken } from "../local/keys.ts";
import { withThrowawayStack } from "../local/throwaway.ts";

const { warmupMs, durationMs, poolMax } = loadSettings;
const clients = Number(Deno.env.get("CLIENTS") ?? 16);
// DB_POOL_MAX, the functions' pool, is best kept at the deployed default: the point is the
// endpoints as shipped, and both sides share this one pool.
const naivePort = 54373;

function seed(sql: postgres.Sql) {
  return seedTimed(
    sql,
    "5,000 users, 1,000 rooms, 1,000,000 messages, 100,000 plays",
    async () => {
      await seedRoomsWithMembers(sql, { users: 5000, rooms: 1000, membersFrom: 1001 });
      await sql`
        insert into public.songs (id, title, artist, duration_ms)
        select pg_temp.id(2, n), 'Song ' || n, 'Artist ' || n % 300, 150000 + n % 120 * 1000
        from generate_series(1, 2000) n`;
      // Chat interleaved across rooms as live rooms would write it; created_at grows with the
      // id, 10 ms apart, so the seed's ORDER BY created_at and the endpoints' ORDER BY seq agree.
      // All of it has gone out: each room's seq 1..1,000 in id order, broadcast when created.
      await sql`
        insert into public.messages
          (room_id, user_id, client_id, body, created_at, seq, broadcast_at)
        select pg_temp.id(1, 1 + m % 1000), pg_temp.id(0, 1 + m % 1000), 'bench-' || m,
               'message ' || m || ': what a track, who is this?', t.at, (m + 999) / 1000, t.at
        from generate_series(1, 1000000) m,
             lateral (select now() - (1000000 - m) * interval '10 ms') t (at)`;
      await sql`
        insert into public.play_history (room_id, song_id, played_at)
        select pg_temp.id(1, 1 + p % 1000), pg_temp.id(2, 1 + p % 2000),
               now() - (100000 - p) * interval '1 s'
        from generate_series(1, 100000) p`;
      await sql`
        insert into public.playback_state (room_id, song_id, position_ms, is_playing, seq)
        select pg_temp.id(1, n), pg_temp.id(2, 1 + n % 2000), 60000, true, 1
        from generate_series(1, 1000) n`;
    },
    async () =>
      (await sql`
        select (select count(*) from public.rooms)::int as rooms,
               (select count(*) from public.room_members)::int as memberships,
               (select count(*) from public.messages)::int as messages,
               (select count(*) from public.play_history)::int as plays,
               (select count(*) from public.playback_state)::int as playback_states`)[0],
  );
}

await withThrowawayStack({ api: 54371, db: 54372 }, async ({ apiUrl, dbUrl, cluster }) => {
  const sql = postgres(dbUrl, { prepare: false, max: 1, onnotice: () => {} });
  const naiveServer = await serveNaiveGateway(naivePort, cluster.dir);
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
    // Every loop draws from all targets, each with its own seeded sequence: every scenario asks
    // for the same rooms as the same members.
    const loops = Array.from({ length: clients }, () => targets);
    for (const [name, url] of Object.entries(scenarios)) {
      const run = await runLoad({ url, loops, okStatus: 200, warmupMs, durationMs });
      const figures = loadFigures(run);
      rps[name] = figures.requests_per_s;
      p99s[name] = figures.p99_ms;
      results[name] = figures;
      console.log(`${figuresLine(name, figures)}  ~${run.meanBytes} B/response`);
      if (run.firstError) console.log(`  first error: ${run.firstError}`);
    }
    const ratio = Math.round((rps["room-context"] / rps["room-context-naive"]) * 100) / 100;
    console.log(`room-context req/s ÷ naive req/s: ${ratio}× (targets: ≥ 2×, p99 < 15 ms)`);
    const overHealth = p99OverFloor(p99s, "health (floor)");
    console.log(`p99 ÷ health p99 (same run): ${ratiosLine(overHealth)}`);

    // Where the time goes: the same statements inside Postgres (bench/lib/statement-timing.ts),
    // for the same members (2,000 calls, drawn across them): room-context and history as the
    // functions call them, the naive queries as PostgREST runs them.
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
