// `npm run bench -- presence`: presence in a room of 10,000 present members (API.md §4), through
// the gateway, CLIENTS (16) concurrent closed loops, WARMUP_S (2) + DURATION_S (10) s each:
//   health (floor)   GET /functions/v1/health: what any request costs on this machine
//   GET presence     GET /functions/v1/presence?room_id= as one of the 10,000 present members
//                    (a summary: total, 10 sampled, the hosts, recently_active)
//   heartbeat        POST {action: "heartbeat"} on an existing connection of a present member
//   join             POST {action: "join"} with a new connection_id, as one of POOL (20,000)
//                    members of the room who were not present: a user's first join adds the
//                    member (and broadcasts presence:member_added); drawing with replacement, a
//                    user drawn again adds a second connection. Both are counted and printed.
// Each loop has its own slice of users, so no two loops touch the same user's rows.
// Prints requests/s, p50/p99/max, errors (and the first error body), the CPU per request
// (bench/lib/cpu.ts), then each statement's cost inside Postgres (clock_timestamp, one
// connection, as the other benches), and each p99 as a multiple of health's p99 in the same run.
// Target (reported, never asserted): p99 < 15 ms.
// The machine's CPUs are shared by the load client, the gateway and Postgres: run it again with
// CLIENTS=4 for the unsaturated latency (results then go to presence-clients4.json).
// CLIENTS, WARMUP_S, DURATION_S, POOL and DB_POOL_MAX change it.
import postgres from "npm:postgres@3.4.9";
import { cpuLine } from "./lib/cpu.ts";
import {
  figuresLine,
  loadFigures,
  type LoadJob,
  type LoadResult,
  loadSettings,
  type LoadTarget,
  measuredLoad,
} from "./lib/load.ts";
import { p99OverFloor, ratiosLine, summarize, type Timing, writeResults } from "./lib/results.ts";
import { id, seedBigRoom, seedTimed } from "./lib/seed.ts";
import { type RunAs, timeCalls } from "./lib/statement-timing.ts";
import { userToken } from "../local/keys.ts";
import { withThrowawayStack } from "../local/throwaway.ts";

const { warmupMs, durationMs, poolMax } = loadSettings;
const clients = Number(Deno.env.get("CLIENTS") ?? 16);
const pool = Number(Deno.env.get("POOL") ?? 20000);
const present = 10000;
const dbCalls = 2000;
// Users (ids as bench/lib/seed.ts's id(0, n)): 1..10,000 present (user 1 hosts the room),
// 10,001..10,000 + POOL not yet present (the join scenario), then 2,000 more not present for the
// in-database join timing. Every present user has one connection, seedConnection.
const room = id(1, 1);
const poolFirst = present + 1;
const dbJoinFirst = present + pool + 1;
const lastUser = dbJoinFirst + dbCalls - 1;
const seedConnection = "seed-tab-0001";

function seed(sql: postgres.Sql) {
  return seedTimed(
    sql,
    `${lastUser.toLocaleString()} users, one room, ${present.toLocaleString()} present`,
    async () => {
      await seedBigRoom(sql, room, lastUser);
      // Present: one connection each, as presence_join would have left them (set-based, no
      // broadcasts). Times are set by refresh() before every phase.
      await sql`
        insert into private.presence_connections (room_id, user_id, connection_id)
        select ${room}, pg_temp.id(0, n), ${seedConnection} from generate_series(1, ${present}) n`;
      await sql`
        insert into private.presence_members
          (room_id, user_id, info, is_host, connections, last_active)
        select ${room}, pg_temp.id(0, n), jsonb_build_object('name', 'User ' || n), n = 1, 1, now()
        from generate_series(1, ${present}) n`;
      await sql`insert into private.presence_rooms (room_id, total) values (${room}, ${present})`;
    },
    async () =>
      (await sql`
        select (select count(*) from public.room_members where room_id = ${room})::int as members,
               (select count(*) from private.presence_members where room_id = ${room})::int
                 as present,
               (select count(*) from private.presence_connections where room_id = ${room})::int
                 as connections,
               (select total from private.presence_rooms where room_id = ${room}) as total`)[0],
  );
}

/**
 * Connections expire 60 s after their last join or heartbeat, and every presence call for the
 * room sweeps them: before each phase every connection is made fresh (last activity spread over
 * the last 30 s), so no request meets a sweep of thousands of connections the run itself aged.
 * (Real rooms refresh one row per heartbeat; this bench refreshes them all at once.)
 */
async function refresh(sql: postgres.Sql) {
  await sql`
    update private.presence_connections set last_seen_at = clock_timestamp()
    where room_id = ${room}`;
  await sql`
    update private.presence_members
    set last_active = clock_timestamp() - (hashtext(user_id::text) & 31) * interval '1 s'
    where room_id = ${room}`;
  // Without it the indexes keep the previous phases' versions of every row for autovacuum to
  // clear, and the range scans below wade through them: each phase starts clean.
  await sql`vacuum analyze private.presence_connections, private.presence_members`;
}

/** One GET of the room's presence, checked: a summary with the expected total. */
async function checkGet(apiUrl: string, token: string, expected: number) {
  const response = await fetch(`${apiUrl}/functions/v1/presence?room_id=${room}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  let ok = false, summary: Record<string, unknown> = { status: response.status };
  try {
    const body = JSON.parse(text);
    summary = {
      status: response.status,
      type: body.type,
      total: body.total,
      sample: body.sample?.length,
      hosts: body.hosts?.length,
      recently_active: body.recently_active,
      bytes: text.length,
    };
    ok = response.status === 200 && body.type === "summary" && body.total === expected &&
      body.sample?.length === 10 && body.hosts?.length === 1;
  } catch {
    summary.body = text.slice(0, 500);
  }
  console.log(
    `  GET check (expect summary, total ${expected}): ${ok ? "ok" : "MISMATCH"} ${
      JSON.stringify(summary)
    }`,
  );
  return { ok, expected_total: expected, ...summary };
}

const apiPort = 54431, dbPort = 54432;
await withThrowawayStack({ api: apiPort, db: dbPort }, async ({ apiUrl, dbUrl, cluster }) => {
  const sql = postgres(dbUrl, { prepare: false, max: 1, onnotice: () => {} });
  try {
    const seeded = await seed(sql);
    const tokenStarted = performance.now();
    const tokens = new Map<number, string>();
    for (let n = 1; n < dbJoinFirst; n++) tokens.set(n, await userToken(id(0, n)));
    console.log(
      `${tokens.size.toLocaleString()} tokens in ${
        ((performance.now() - tokenStarted) / 1000).toFixed(1)
      } s; ${clients} clients, ${warmupMs / 1000} s warm-up + ${durationMs / 1000} s per ` +
        `scenario; DB_POOL_MAX=${poolMax}; ${navigator.hardwareConcurrency} CPUs`,
    );
    // Loop c's users: n ≡ c (mod clients), of the present ones or of the pool.
    const slice = (first: number, count: number, loop: number): LoadTarget[] =>
      Array.from({ length: count }, (_, i) => first + i)
        .filter((n) => n % clients === loop)
        .map((n) => ({ room, token: tokens.get(n)! }));
    const presentTargets = Array.from(
      { length: present },
      (_, i) => ({ room, token: tokens.get(i + 1)! }),
    );
    // GETs: every loop draws from all present users.
    const getLoops = Array.from({ length: clients }, () => presentTargets);

    const results: Record<string, unknown> = {};
    /** One scenario at CLIENTS loops, every connection fresh first: its figures, with the CPU
     * per request, printed (with `note` on the run) and kept in the results under `name`. */
    const scenario = async (
      name: string,
      job: Pick<LoadJob, "url" | "body" | "loops" | "countBodiesContaining">,
      note: (run: LoadResult) => string = () => "",
    ) => {
      await refresh(sql);
      const { run, cpu } = await measuredLoad(
        { ...job, okStatus: 200, warmupMs, durationMs },
        cluster.dataDir,
      );
      const figures = loadFigures(run);
      results[name] = { ...figures, cpu };
      console.log(figuresLine(name, figures) + note(run));
      console.log(`  ${cpuLine(cpu)}`);
      if (run.firstError) console.log(`  first error: ${run.firstError}`);
      return run;
    };

    // health: the floor (gateway + JWT check + trivial queries) at the same concurrency.
    await scenario("health (floor)", { url: `${apiUrl}/functions/v1/health`, loops: getLoops });

    // GET presence as any present member, checked once before.
    await refresh(sql);
    const getCheck = await checkGet(apiUrl, tokens.get(2)!, present);
    await scenario(
      "GET presence",
      { url: `${apiUrl}/functions/v1/presence?room_id={room}`, loops: getLoops },
      (run) => `  ~${run.meanBytes} B/response`,
    );
    results["GET presence"] = { ...results["GET presence"] as object, check: getCheck };

    // heartbeat: every present user's seeded connection, each loop its own users.
    await scenario("heartbeat", {
      url: `${apiUrl}/functions/v1/presence`,
      body: JSON.stringify({
        action: "heartbeat",
        room_id: "{room}",
        connection_id: seedConnection,
      }),
      loops: Array.from({ length: clients }, (_, c) => slice(1, present, c)),
    });

    // join: a new connection_id every request ({id} = loop-n), as pool users.
    const joins = await scenario(
      "join",
      {
        url: `${apiUrl}/functions/v1/presence`,
        body: JSON.stringify({
          action: "join",
          room_id: "{room}",
          connection_id: "join-{id}",
          user_info: { name: "Bench listener", avatar: "https://example.test/a.png" },
        }),
        loops: Array.from({ length: clients }, (_, c) => slice(poolFirst, pool, c)),
        countBodiesContaining: `"member_added":true`,
      },
      (run) => `  (${run.matching} added a member, ${run.ok - run.matching} a 2nd+ connection)`,
    );
    const joinAdded = joins.matching;
    results["join"] = {
      ...results["join"] as object,
      joins_adding_a_member: joins.matching,
      joins_adding_a_connection_to_a_present_member: joins.ok - joins.matching,
    };
    const [{ total: afterJoins }] = await sql`
      select total from private.presence_rooms where room_id = ${room}`;
    await refresh(sql);
    results["GET after joins"] = await checkGet(apiUrl, tokens.get(2)!, afterJoins);
    const target = Object.entries(results)
      .filter(([k]) => ["GET presence", "heartbeat", "join"].includes(k))
      .map(([k, v]) => `${k} ${(v as { p99_ms: number }).p99_ms.toFixed(1)} ms`);
    console.log(`p99: ${target.join(", ")} (target < 15 ms; joins added ${joinAdded} members)`);
    const overHealth = p99OverFloor(
      Object.fromEntries(
        ["health (floor)", "GET presence", "heartbeat", "join"].map((
          k,
        ) => [k, (results[k] as { p99_ms: number }).p99_ms]),
      ),
      "health (floor)",
    );
    console.log(`p99 ÷ health p99 (same run): ${ratiosLine(overHealth)}`);

    // Where the time goes: the statements inside Postgres, one connection, no HTTP or pool.
    const users = (first: number, count: number) =>
      Array.from({ length: count }, (_, i) => ({ room, user: id(0, first + i) }));
    // The entry points as the functions call them; the parts as `postgres` or, for the rights
    // check, with the caller's settings made first.
    const caller: RunAs = "caller, one statement";
    type Timed = [statement: string, pairs: { room: string; user: string }[], runAs: RunAs];
    /** The room's rows older than 60 s by `column` (table.column of private), counted with a
     * cutoff from clock_timestamp() (`volatile`) or from now(). */
    const staleCount = (column: string, volatile: boolean): Timed => {
      const [table, field] = column.split(".");
      const now = volatile ? "clock_timestamp()" : "now()";
      return [
        `select count(*) from private.${table} t
         where t.room_id = $1 and t.${field} < ${now} - interval '60 seconds'`,
        users(1, 1),
        "postgres",
      ];
    };
    const statements: Record<string, Timed> = {
      "presence_get": [`edge.presence_get($1)`, users(1, present), caller],
      "presence_heartbeat": [
        `edge.presence_heartbeat($1, '${seedConnection}')`,
        users(1, present),
        caller,
      ],
      "presence_join (new member)": [
        `edge.presence_join($1, 'db-join-' || $2, '{"name": "Bench listener"}')`,
        users(dbJoinFirst, dbCalls),
        caller,
      ],
      "presence_join (new conn.)": [
        `edge.presence_join($1, 'db-conn-' || $2, '{"name": "Bench listener"}')`,
        users(2, present - 1),
        caller,
      ],
      "  presence_snapshot": [
        `select private.presence_snapshot($1)`,
        users(1, present),
        "postgres",
      ],
      "  expire_presence": [`select private.expire_presence($1)`, users(1, present), "postgres"],
      "  require_channel_access": [
        `select private.require_channel_access('room:' || $1, 'presence')`,
        users(1, present),
        "caller, settings first",
      ],
      // Both sweeps' cutoffs use clock_timestamp(), which is volatile: no index condition can
      // use it, so each is a scan of the room's every row. The same query with a cutoff that is
      // stable within the statement (now(); a variable in PL/pgSQL), for comparison:
      "  stale conns, clock_timestamp()": staleCount("presence_connections.last_seen_at", true),
      "  stale conns, stable cutoff": staleCount("presence_connections.last_seen_at", false),
      "  inactive members, clock_ts()": staleCount("presence_members.last_active", true),
      "  inactive members, stable": staleCount("presence_members.last_active", false),
    };
    const inDatabase: Record<string, Timing> = {};
    console.log(
      `\nInside Postgres, per call (clock_timestamp, ${dbCalls} calls, one connection, ` +
        `as the member; indented: parts, timed alone):`,
    );
    for (const [label, [statement, pairs, runAs]] of Object.entries(statements)) {
      await refresh(sql); // 2,000 calls take seconds: nobody may turn stale meanwhile
      inDatabase[label.trim()] = summarize(
        await timeCalls(sql, statement, { pairs, calls: dbCalls, runAs }),
      );
      console.log(`  ${label.padEnd(32)} ${JSON.stringify(inDatabase[label.trim()])}`);
    }

    await writeResults(clients === 16 ? "presence" : `presence-clients${clients}`, {
      seeded,
      clients,
      warmup_s: warmupMs / 1000,
      duration_s: durationMs / 1000,
      join_pool: pool,
      db_pool_max: poolMax,
      cpus: navigator.hardwareConcurrency,
      scenarios: results,
      p99_over_health_p99: overHealth,
      in_database: inDatabase,
      target: "p99 < 15 ms for join, heartbeat and GET at 16 clients",
    });
  } finally {
    await sql.end();
  }
});
