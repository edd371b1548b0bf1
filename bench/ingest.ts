// `npm run bench -- ingest`: how many chat messages the stack acknowledges a second, what each
// costs Postgres, and what batching saves. In one run, on one throwaway cluster:
//   pgbench insert         pgbench (run first, the gateways idle), CLIENTS connections, one
//                          single-row insert of the same row shape into public.messages per
//                          transaction: the insert limit of this machine, on the same cluster
//                          and settings (fsync off, local/throwaway.ts); its rows are deleted
//                          afterwards, as they would wait to go out like any chat
//   chat-send ×1 / ×10     POST /functions/v1/chat-send with one / ten messages a request,
//                          through the gateway, CLIENTS (32) concurrent loops (closed), each
//                          loop its own user, picking among ROOMS (64) rooms of its scenario
//   chat-send ×1, one room the same 32 loops and users, all into ONE room: what a hot room takes
//   naive ×1 / ×10         the same requests to a chat-send without batching: insert +
//                          realtime.send per message in the request's transaction
//                          (bench/naive/functions/chat-send-naive + bench/naive/sql.ts),
//                          served by a second gateway in this process (:54403), sharing the
//                          functions' pool and the JWT check
//   round trips            chat-send ×1 and ×10 once more, ROUND_TRIP_REQUESTS (200) requests one
//                          at a time, with the functions' pools reconnected through a proxy that
//                          reads the wire protocol (bench/ingest/round-trips.ts): a round trip is
//                          what the pool sends while no answer is outstanding, so pipelined
//                          statements share one. Window flushes (after the response) are counted
//                          apart.
//   in Postgres alone      pgbench running exactly what the proxy saw the pool send for one
//                          one-message chat-send (statements, parameters, their order; a round
//                          trip of several statements as a pipeline; unnamed statements,
//                          -M extended), as the caller: the role, the token's claims and
//                          request.headers that request set. Per call only the arguments change:
//                          the claims name the connection's user (PG_CLIENTS (8) connections,
//                          each its own user), the room is drawn, the message is new. Into ONE
//                          room, then spread over 64 rooms; one more connection flushes, every
//                          FLUSH_EVERY_MS (20) ms, each room with chat waiting whose interval has
//                          passed or where a full batch waits, as the functions' timers do
//                          (supabase/functions/_shared/windows.ts).
//   one room, paced        ONE_ROOM_RATE (1,000) one-message requests a second into one room
//                          from ONE_ROOM_USERS (80) users
// Rate limit: room chat allows a user 20 messages/s (bursts of 50) per room; 32 users in one room
// at what this machine reaches would meet it, so for this run (only) the room:*:chat rule allows
// 1,000,000/s: take_tokens still runs and writes its bucket, it never refuses.
// Prints acknowledged messages/s; Postgres CPU per message (all postgres processes of the window:
// backends, the walsender decoding WAL for the Realtime stand-in, WAL writer, autovacuum, ...,
// from /proc, bench/lib/cpu.ts); the ratios one room / 64 rooms and to pgbench; per scenario
// the broadcasts per message and the added delay: for each message, its batch's
// realtime.messages.inserted_at (UTC, without time zone) minus the message's created_at,
// computed in SQL after the run.
// Targets (issue 11; reported, never asserted): one room ≥ 0.9× 64 rooms, through HTTP and in
// Postgres alone; Postgres CPU per 1-message request ≤ 1,000 µs, per message at ×10 ≤ 250 µs;
// chat-send ×1 ≥ 0.10× pgbench, ×10 ≥ 0.6×; in the paced room ≤ 1/20 broadcasts per message
// and added delay p99 < 150 ms.
// CLIENTS, ROOMS, WARMUP_S, DURATION_S, ONE_ROOM_RATE, ONE_ROOM_USERS, PG_CLIENTS,
// FLUSH_EVERY_MS, ROUND_TRIP_REQUESTS and DB_POOL_MAX change it.
import postgres from "npm:postgres@3.4.9";
import { cpuLine } from "./lib/cpu.ts";
import { loadFigures, loadSettings, type LoadTarget, measuredLoad } from "./lib/load.ts";
import { ratiosLine, round, summarize, writeResults } from "./lib/results.ts";
import { createIdFunction, id, pgbenchId, seedUsers } from "./lib/seed.ts";
import { type RunAs, timeCalls } from "./lib/statement-timing.ts";
import { serveNaiveGateway } from "./naive/gateway.ts";
import { naiveStatements } from "./naive/sql.ts";
import {
  connectionUser,
  drawRoom,
  oneMessage,
  type PgbenchResult,
  runPgbench,
} from "./ingest/pgbench.ts";
import {
  pgbenchScriptOf,
  type RoundTrip,
  roundTripsPerRequest,
  startRoundTripCounter,
} from "./ingest/round-trips.ts";
import { closeDb } from "../supabase/functions/_shared/db.ts";
import { userToken } from "../local/keys.ts";
import { throwawaySettings, withThrowawayStack } from "../local/throwaway.ts";

const { warmupMs, durationMs, poolMax } = loadSettings;
const clients = Number(Deno.env.get("CLIENTS") ?? 32);
const roomsPerScenario = Number(Deno.env.get("ROOMS") ?? 64);
const oneRoomRate = Number(Deno.env.get("ONE_ROOM_RATE") ?? 1000);
const oneRoomUsers = Number(Deno.env.get("ONE_ROOM_USERS") ?? 80);
const pgClients = Number(Deno.env.get("PG_CLIENTS") ?? 8);
const flushEveryMs = Number(Deno.env.get("FLUSH_EVERY_MS") ?? 20);
const roundTripRequests = Number(Deno.env.get("ROUND_TRIP_REQUESTS") ?? 200);
const naivePort = 54403;
const roundTripPort = 54404;

// Rooms: each set its own, numbered in this order (id(1, n)), hosted by user 1 with users
// 2..CLIENTS as listeners. The paced room is id(1, 100000), hosted by user 1001 with users
// 1002..1000 + ONE_ROOM_USERS as listeners.
const roomSets: [string, number][] = [
  ["pgbench insert", roomsPerScenario],
  ["chat-send ×1", roomsPerScenario],
  ["chat-send ×1, one room", 1],
  ["chat-send ×10", roomsPerScenario],
  ["naive ×1", roomsPerScenario],
  ["naive ×10", roomsPerScenario],
  ["Postgres alone, 64 rooms", roomsPerScenario],
  ["Postgres alone, one room", 1],
];
const firstRoom: Record<string, number> = {};
let roomCount = 0;
for (const [name, count] of roomSets) {
  firstRoom[name] = roomCount + 1;
  roomCount += count;
}
const roomsOf = (set: string) =>
  Array.from(
    { length: roomSets.find(([name]) => name === set)![1] },
    (_, i) => id(1, firstRoom[set] + i),
  );
const oneRoom = id(1, 100000);
const body = (perRequest: number) =>
  JSON.stringify({
    room_id: "{room}",
    messages: Array.from({ length: perRequest }, (_, i) => ({
      client_id: `{id}-${i}`,
      body: `message {id}-${i}: what a track, who is this?`,
    })),
  });

async function seed(sql: postgres.Sql) {
  await createIdFunction(sql);
  await seedUsers(sql, [1, clients], [1001, 1000 + oneRoomUsers]);
  await sql`
    insert into public.rooms (id, name, host_id, visibility)
    select pg_temp.id(1, n), 'Room ' || n, pg_temp.id(0, 1), 'public'
    from generate_series(1, ${roomCount}) n`;
  await sql`
    insert into public.room_members (room_id, user_id, role)
    select pg_temp.id(1, n), pg_temp.id(0, u), 'listener'
    from generate_series(1, ${roomCount}) n, generate_series(2, ${clients}) u`;
  await sql`
    insert into public.rooms (id, name, host_id, visibility)
    values (${oneRoom}, 'The busy room', pg_temp.id(0, 1001), 'public')`;
  await sql`
    insert into public.room_members (room_id, user_id, role)
    select ${oneRoom}, pg_temp.id(0, u), 'listener'
    from generate_series(1002, ${1000 + oneRoomUsers}) u`;
  // See the header: the same work per message, never a 429.
  await sql`
    update private.channel_rules set rate_per_second = 1000000, rate_burst = 1000000
    where namespace = 'room' and kind = 'chat'`;
  for (const statement of naiveStatements) await sql.unsafe(statement);
  await sql`vacuum analyze`;
}

/**
 * Waits until every stored message has gone out (seq set), at most 10 s. With `sweep`, flushes
 * rooms itself, as the sweeper would: after pgbench, whose calls leave no timers behind.
 */
async function drain(sql: postgres.Sql, { sweep = false } = {}) {
  for (let i = 0; i < 100; i++) {
    const [{ waiting }] = await sql`
      select exists (select 1 from public.messages m where m.seq is null) as waiting`;
    if (!waiting) return;
    if (sweep) await sql`select private.flush_due_windows()`;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.log("  (messages still waiting after 10 s)");
}

/**
 * What the rooms' chat channels broadcast, for every message stored in them: broadcasts per
 * message, whether each was broadcast exactly once and numbered without holes, and the added
 * delay (ms) from the message's created_at to its broadcast's inserted_at (the flush
 * transaction's start).
 */
async function broadcastFigures(sql: postgres.Sql, rooms: string[]) {
  const topics = rooms.map((room) => `room:${room}:chat`);
  const [row] = await sql`
    with broadcasts as (
      select rm.inserted_at, rm.event, rm.payload from realtime.messages rm
      where rm.topic = any(${topics}::text[]) and rm.event in ('chat:batch', 'chat:message')
    ), items as (
      select b.inserted_at, (e.item ->> 'id')::bigint as id
      from broadcasts b
      cross join lateral jsonb_array_elements(case when b.event = 'chat:batch'
        then b.payload -> 'messages' else jsonb_build_array(b.payload) end) as e (item)
    ), delays as (
      select m.id, extract(epoch from i.inserted_at - (m.created_at at time zone 'UTC')) * 1000
               as delay_ms
      from public.messages m left join items i on i.id = m.id
      where m.room_id = any(${rooms}::uuid[])
    )
    select (select count(*) from broadcasts)::int as broadcasts,
           (select count(*) from broadcasts where event = 'chat:batch')::int as batches,
           (select count(*) from items)::int as broadcast_items,
           (select count(distinct id) from items)::int as distinct_items,
           count(*)::int as messages,
           count(delay_ms)::int as delivered,
           percentile_cont(0.5) within group (order by delay_ms) as p50,
           percentile_cont(0.99) within group (order by delay_ms) as p99,
           max(delay_ms) as max,
           (select coalesce(sum(n.last - n.numbered), 0)::int from (
              select max(m.seq) as last, count(m.seq) as numbered from public.messages m
              where m.room_id = any(${rooms}::uuid[]) group by m.room_id) as n) as seq_holes
    from delays`;
  return {
    messages: row.messages,
    broadcasts: row.broadcasts,
    chat_batch_broadcasts: row.batches,
    broadcasts_per_message: row.messages ? round(row.broadcasts / row.messages, 4) : null,
    messages_per_broadcast: row.messages && row.broadcasts
      ? round(row.messages / row.broadcasts, 1)
      : null,
    never_broadcast: row.messages - row.delivered,
    // Per room, seq 1..N numbers N messages: the highest seq minus how many have one.
    seq_holes: row.seq_holes,
    broadcast_twice: row.broadcast_items - row.distinct_items,
    added_delay_p50_ms: row.p50 === null ? null : round(row.p50, 1),
    added_delay_p99_ms: row.p99 === null ? null : round(row.p99, 1),
    added_delay_max_ms: row.max === null ? null : round(Number(row.max), 1),
  };
}

/** pgbench's insert: the row chat-send stores (seq null: waiting to go out; the same ON
 * CONFLICT), into rooms of its own. */
const insertScript = () =>
  drawRoom(firstRoom["pgbench insert"], roomsPerScenario) +
  `\\set u random(1, ${clients})
insert into public.messages (room_id, user_id, client_id, body)
values (${pgbenchId(1, ":r")}, ${pgbenchId(0, ":u")},
        'pgb-' || :client_id || '-' || :n, 'message ' || :n || ': what a track, who is this?')
on conflict on constraint messages_room_id_client_id_key do nothing;
`;

/**
 * pgbench's script for a one-message chat-send into the rooms of `set`: what the functions' pool
 * sent Postgres for one such request (`trips`, seen by the round-trip proxy), with its arguments
 * made per call: the claims it sent, as the connection's user; a room of the set; a new message.
 * Its other parameters (the role, request.headers, ...) are pgbench variables with the values
 * sent, returned as `variables`.
 */
function sendChatScript(set: string, trips: RoundTrip[], typeNames: Map<number, string>) {
  const variables: Record<string, string> = {};
  const argument = (value: string | null) => {
    if (value === null) return "null";
    if (/^[0-9a-f-]{36}$/.test(value)) return pgbenchId(1, ":r"); // the only id passed alone
    const json = value.startsWith("{") || value.startsWith("[") ? JSON.parse(value) : undefined;
    if (Array.isArray(json)) return oneMessage;
    if (typeof json?.sub === "string") {
      variables.claims_template = value.replaceAll(json.sub, "{sub}");
      return `replace(:claims_template, '{sub}', ${connectionUser}::text)`;
    }
    const name = `arg${Object.keys(variables).length + 1}`;
    variables[name] = value;
    return `:${name}`;
  };
  const script = drawRoom(firstRoom[set], roomsOf(set).length) +
    pgbenchScriptOf(trips, argument, (oid) => typeNames.get(oid) ?? "text");
  return { script, variables };
}

/** The flusher beside it: what the functions' timers do (supabase/functions/_shared/windows.ts),
 * flushing each room with chat waiting once its interval has passed or a full batch waits.
 * (':' || 'chat': pgbench would read :chat as a variable.) */
const flusherScript = `select private.flush_window('room:' || w.room_id || ':' || 'chat')
from (select distinct m.room_id from public.messages m where m.seq is null) as w
cross join (select * from private.channel_rules where namespace = 'room' and kind = 'chat') as r
left join private.chat_flushes f on f.room_id = w.room_id
where f.last_batch_at is null
   or f.last_batch_at + r.batch_interval_ms * interval '1 millisecond' <= clock_timestamp()
   or private.unsent_chat(w.room_id, r.batch_max) >= r.batch_max;
\\sleep ${flushEveryMs} ms
`;

await withThrowawayStack({ api: 54401, db: 54402 }, async ({ apiUrl, dbUrl, cluster }) => {
  const sql = postgres(dbUrl, { prepare: false, max: 1, onnotice: () => {} });
  const naiveServer = await serveNaiveGateway(naivePort, cluster.dir);
  const roundTrips = startRoundTripCounter(dbUrl, roundTripPort);
  try {
    await seed(sql);
    const tokens = new Map<number, string>();
    for (const n of [...Array(clients).keys()].map((i) => i + 1)) {
      tokens.set(n, await userToken(id(0, n)));
    }
    for (let n = 1001; n <= 1000 + oneRoomUsers; n++) tokens.set(n, await userToken(id(0, n)));
    const settings = Object.entries(throwawaySettings).map(([k, v]) => `${k}=${v}`).join(", ");
    console.log(
      `${clients} clients (each its own user), ${roomsPerScenario} rooms per scenario, ` +
        `${warmupMs / 1000} s warm-up + ${durationMs / 1000} s per scenario; ` +
        `DB_POOL_MAX=${poolMax}; ${navigator.hardwareConcurrency} CPUs; cluster: ${settings}; ` +
        `room chat's rate limit raised to 1,000,000/s for the run`,
    );
    const ratio = (a: number, b: number) => round(a / b, 2);
    // The insert as pgbench does best (prepared); chat-send's statements as the functions send
    // them (unnamed), with the windows' flusher beside them.
    const pgbenchInsert = (seconds: number) =>
      runPgbench({
        cluster,
        name: "insert",
        script: insertScript(),
        clients,
        seconds,
        protocol: "prepared",
      });
    const pgbenchSendChat = (
      set: string,
      { script, variables }: ReturnType<typeof sendChatScript>,
      seconds: number,
    ) =>
      runPgbench({
        cluster,
        name: set.endsWith("one room") ? "send-chat-one-room" : "send-chat-64-rooms",
        script,
        variables,
        clients: pgClients,
        seconds,
        protocol: "extended",
        alongside: { name: "flusher", script: flusherScript },
      });

    // pgbench first, on the same cluster (same settings, so the comparison is fair), while the
    // gateways are idle: a warm-up run, then the measured one.
    await pgbenchInsert(Math.max(1, warmupMs / 1000));
    const insert = await pgbenchInsert(durationMs / 1000);
    // Its rows wait to go out like any chat: gone before the sweeper would send them meanwhile.
    await sql`delete from public.messages where room_id = any(${
      roomsOf("pgbench insert")
    }::uuid[])`;
    await sql`vacuum analyze public.messages`;
    console.log(
      `\npgbench insert      ${insert.calls_per_s.toFixed(1).padStart(8)} inserts/s  ` +
        `(latency avg ${insert.latency_average_ms} ms, ${clients} connections, -M prepared; ` +
        `the same cluster, ${settings}: not a durable-to-disk figure, the same footing as the ` +
        `gateway's)\n  ${cpuLine(insert.cpu, "insert")} (pgbench's own in rest)`,
    );

    const urls = {
      "chat-send": `${apiUrl}/functions/v1/chat-send`,
      "naive": `http://127.0.0.1:${naivePort}/functions/v1/chat-send-naive`,
    };
    const results: Record<string, unknown> = {};
    const messagesPerS: Record<string, number> = {};
    const postgresUsPerMessage: Record<string, number | null> = {};
    for (const scenario of roomSets.map(([name]) => name).slice(1, 6)) {
      const perRequest = scenario.endsWith("×10") ? 10 : 1;
      const rooms = roomsOf(scenario);
      const loops: LoadTarget[][] = Array.from(
        { length: clients },
        (_, c) => rooms.map((room) => ({ room, token: tokens.get(c + 1)! })),
      );
      const { run, cpu } = await measuredLoad({
        url: scenario.startsWith("naive") ? urls.naive : urls["chat-send"],
        body: body(perRequest),
        loops,
        okStatus: 202,
        warmupMs,
        durationMs,
      }, cluster.dataDir);
      await drain(sql);
      const figs = loadFigures(run, perRequest);
      messagesPerS[scenario] = figs.acknowledged_units_per_s;
      const perRequestUs = cpu.cpu_us_per_unit.postgres;
      postgresUsPerMessage[scenario] = perRequestUs === null
        ? null
        : round(perRequestUs / perRequest);
      const sent = await broadcastFigures(sql, rooms);
      const holes = scenario.startsWith("naive") ? 0 : sent.seq_holes; // naive numbers nothing
      results[scenario] = {
        messages_per_request: perRequest,
        ...figs,
        acknowledged_messages_per_s: figs.acknowledged_units_per_s,
        over_pgbench: ratio(figs.acknowledged_units_per_s, insert.calls_per_s),
        postgres_cpu_us_per_message: postgresUsPerMessage[scenario],
        broadcasts_whole_run: sent,
        cpu,
      };
      console.log(
        `${scenario.padEnd(22)} ${figs.acknowledged_units_per_s.toFixed(1).padStart(8)} msgs/s  ` +
          `${figs.requests_per_s.toFixed(1).padStart(7)} req/s  ` +
          `p50 ${figs.p50_ms.toFixed(1)} ms  p99 ${figs.p99_ms.toFixed(1)} ms  ` +
          `errors ${figs.errors}  ` +
          `${sent.messages_per_broadcast} msgs/broadcast  added delay p50 ` +
          `${sent.added_delay_p50_ms} ms p99 ${sent.added_delay_p99_ms} ms` +
          (sent.never_broadcast || sent.broadcast_twice || holes
            ? `  (never broadcast ${sent.never_broadcast}, twice ${sent.broadcast_twice}, ` +
              `seq holes ${holes})`
            : ""),
      );
      console.log(
        `  ${cpuLine(cpu)}; Postgres per message ${postgresUsPerMessage[scenario]} µs`,
      );
      if (run.firstError) console.log(`  first error: ${run.firstError}`);
    }
    const ratios = {
      "chat-send ×1 one room / 64 rooms": ratio(
        messagesPerS["chat-send ×1, one room"],
        messagesPerS["chat-send ×1"],
      ),
      "chat-send ×1 / pgbench": ratio(messagesPerS["chat-send ×1"], insert.calls_per_s),
      "chat-send ×10 / pgbench": ratio(messagesPerS["chat-send ×10"], insert.calls_per_s),
      "naive ×1 / pgbench": ratio(messagesPerS["naive ×1"], insert.calls_per_s),
      "naive ×10 / pgbench": ratio(messagesPerS["naive ×10"], insert.calls_per_s),
      "chat-send ×1 / naive ×1": ratio(messagesPerS["chat-send ×1"], messagesPerS["naive ×1"]),
      "chat-send ×10 / naive ×10": ratio(messagesPerS["chat-send ×10"], messagesPerS["naive ×10"]),
    };
    console.log(
      `\nRatios (acknowledged messages/s): ` +
        ratiosLine(ratios) +
        `\n  targets: one room ≥ 0.9× 64 rooms, chat-send ×1 ≥ 0.10× pgbench, ×10 ≥ 0.6× pgbench`,
    );
    console.log(
      `Postgres CPU per message: chat-send ×1 ${postgresUsPerMessage["chat-send ×1"]} µs ` +
        `(target ≤ 1000 per 1-message request), ×10 ${postgresUsPerMessage["chat-send ×10"]} µs ` +
        `(target ≤ 250), one room ×1 ${postgresUsPerMessage["chat-send ×1, one room"]} µs; ` +
        `pgbench insert ${insert.cpu.cpu_us_per_unit.postgres} µs`,
    );

    // Round trips: the functions' pools reconnect through the counting proxy, requests go one at
    // a time, and the windows they open are flushed before the count is read.
    const roundTripResults: Record<string, ReturnType<typeof roundTripsPerRequest>> = {};
    let oneRequest: RoundTrip[] = []; // what one one-message request sent: pgbench's script
    console.log(
      `\nRound trips between the functions' pool and Postgres (${roundTripRequests} requests ` +
        `one at a time, through a proxy reading the wire protocol):`,
    );
    await closeDb();
    Deno.env.set("SUPABASE_DB_URL", roundTrips.url);
    try {
      for (const perRequest of [1, 10]) {
        const rooms = roomsOf(`chat-send ×${perRequest}`);
        const send = (n: number, tag: string) =>
          fetch(urls["chat-send"], {
            method: "POST",
            headers: {
              Authorization: `Bearer ${tokens.get(1 + (n % clients))}`,
              "Content-Type": "application/json",
            },
            body: body(perRequest).replaceAll("{room}", rooms[n % rooms.length])
              .replaceAll("{id}", `rt${perRequest}-${tag}-${n}`),
          }).then((response) => response.text());
        for (let n = 0; n < 10; n++) await send(n, "warm"); // connections, caches
        await drain(sql);
        roundTrips.reset();
        for (let n = 0; n < roundTripRequests; n++) {
          await send(n, "counted");
          if (n === 0 && perRequest === 1) oneRequest = [...roundTrips.trips];
        }
        await drain(sql);
        await new Promise((resolve) => setTimeout(resolve, 200)); // the last flush's answer
        const counted = roundTripsPerRequest(roundTrips.trips, roundTripRequests);
        roundTripResults[`chat-send ×${perRequest}`] = counted;
        console.log(
          `  chat-send ×${perRequest}: ${counted.round_trips_per_request} round trips per request ` +
            `(${counted.statements_per_request} statements); window flushes after the ` +
            `response: ${counted.flush_round_trips_per_request} round trips per request`,
        );
        for (const [kind, n] of Object.entries(counted.by_kind)) console.log(`    ${n} × ${kind}`);
      }
    } finally {
      await closeDb();
      Deno.env.set("SUPABASE_DB_URL", dbUrl);
    }

    // In Postgres alone: what that request sent, one room against 64 rooms, PG_CLIENTS users.
    const oids = [...new Set(oneRequest.flat().flatMap((step) => step.statement.types))];
    const typeNames = new Map(
      (await sql<{ oid: number; name: string }[]>`
        select oid::int as oid, format_type(oid, null) as name from pg_type
        where oid = any(${oids}::oid[])`).map(({ oid, name }) => [oid, name]),
    );
    const scripts = Object.fromEntries(
      ["Postgres alone, 64 rooms", "Postgres alone, one room"].map((
        set,
      ) => [set, sendChatScript(set, oneRequest, typeNames)]),
    );
    console.log(
      `\nIn Postgres alone: pgbench, ${pgClients} connections (each its own user) + 1 flushing ` +
        `due rooms every ${flushEveryMs} ms, running what one chat-send ×1 request sent ` +
        `(variables: ${Object.keys(scripts["Postgres alone, one room"].variables).join(", ")}):\n` +
        scripts["Postgres alone, one room"].script.replace(/^/gm, "    ").trimEnd(),
    );
    await pgbenchSendChat(
      "Postgres alone, 64 rooms",
      scripts["Postgres alone, 64 rooms"],
      Math.max(1, warmupMs / 1000),
    );
    await drain(sql, { sweep: true });
    const inPostgres: Record<string, PgbenchResult> = {};
    const inPostgresBroadcasts: Record<string, Awaited<ReturnType<typeof broadcastFigures>>> = {};
    for (const [set, script] of Object.entries(scripts)) {
      inPostgres[set] = await pgbenchSendChat(set, script, durationMs / 1000);
      await drain(sql, { sweep: true });
      const run = inPostgres[set];
      const sent = await broadcastFigures(sql, roomsOf(set));
      inPostgresBroadcasts[set] = sent;
      console.log(
        `${set.padEnd(26)} ${run.calls_per_s.toFixed(1).padStart(8)} calls/s  (latency avg ` +
          `${run.latency_average_ms} ms, failed ${run.failed_transactions}; stored ` +
          `${sent.messages} messages, ${sent.messages_per_broadcast} msgs/broadcast, never ` +
          `broadcast ${sent.never_broadcast}, twice ${sent.broadcast_twice}, seq holes ` +
          `${sent.seq_holes})\n  ` +
          `${cpuLine(run.cpu, "call")} (pgbench's own in rest)`,
      );
    }
    const pgOneRoomRatio = ratio(
      inPostgres["Postgres alone, one room"].calls_per_s,
      inPostgres["Postgres alone, 64 rooms"].calls_per_s,
    );
    console.log(
      `  ${pgClients} connections + 1 flusher; one room / 64 rooms: ${
        pgOneRoomRatio.toFixed(2)
      }× ` +
        `(target ≥ 0.9×); ${inPostgres["Postgres alone, 64 rooms"].command}`,
    );

    // One busy room, paced: ONE_ROOM_RATE one-message requests a second, round robin over the
    // room's users.
    const oneRoomTargets = Array.from(
      { length: oneRoomUsers },
      (_, i) => ({ room: oneRoom, token: tokens.get(1001 + i)! }),
    );
    const { run: paced, cpu: pacedCpu } = await measuredLoad({
      url: urls["chat-send"],
      body: body(1),
      paced: { ratePerS: oneRoomRate, targets: oneRoomTargets, maxInFlight: 256 },
      okStatus: 202,
      warmupMs,
      durationMs,
    }, cluster.dataDir);
    await drain(sql);
    const pacedFigs = loadFigures(paced);
    const oneRoomSent = await broadcastFigures(sql, [oneRoom]);
    const achieved = round(paced.sent / (durationMs / 1000));
    const oneRoomResult = {
      users: oneRoomUsers,
      target_messages_per_s: oneRoomRate,
      sent_per_s: achieved,
      skipped_slots: paced.missed,
      ...pacedFigs,
      acknowledged_messages_per_s: pacedFigs.acknowledged_units_per_s,
      // Over the whole run (warm-up included): every message stored in the room.
      broadcasts_whole_run: oneRoomSent,
      cpu: pacedCpu,
    };
    console.log(
      `\nOne room, paced at ${oneRoomRate} msgs/s from ${oneRoomUsers} users: sent ${achieved}/s ` +
        `(${paced.missed} slots skipped), acknowledged ${pacedFigs.acknowledged_units_per_s}/s, ` +
        `request p50 ${pacedFigs.p50_ms.toFixed(1)} ms p99 ${pacedFigs.p99_ms.toFixed(1)} ms, ` +
        `errors ${pacedFigs.errors}`,
    );
    console.log(`  ${cpuLine(pacedCpu)}`);
    if (paced.firstError) console.log(`  first error: ${paced.firstError}`);
    console.log(
      `  ${oneRoomSent.broadcasts} chat:batch for ${oneRoomSent.messages} messages: ` +
        `${oneRoomSent.broadcasts_per_message} broadcasts/message = 1/${oneRoomSent.messages_per_broadcast} (target ≤ 1/20); ` +
        `never broadcast ${oneRoomSent.never_broadcast}, twice ${oneRoomSent.broadcast_twice}, ` +
        `seq holes ${oneRoomSent.seq_holes}`,
    );
    console.log(
      `  added delay (created_at → batch inserted_at): p50 ${oneRoomSent.added_delay_p50_ms} ms, ` +
        `p99 ${oneRoomSent.added_delay_p99_ms} ms, max ${oneRoomSent.added_delay_max_ms} ms ` +
        `(target p99 < 150 ms)`,
    );

    // Where the time goes: each path's statement inside Postgres, in the chat-send ×1 rooms (all
    // flushed by now) as distinct (user, room) pairs. Last: the windows these calls open are
    // left to the sweeper.
    const pairs = roomsOf("chat-send ×1").flatMap((room) =>
      [...Array(clients).keys()].map((c) => ({ room, user: id(0, c + 1) }))
    );
    const text = `'message ' || $2 || '-' || j || ': what a track, who is this?'`;
    const user1 = id(0, 1);
    const messages = (tag: string, n: number) =>
      `(select jsonb_agg(jsonb_build_object('client_id', '${tag}-' || $2 || '-' || j, 'body', ${text}))
        from generate_series(0, ${n - 1}) j)`;
    const statements: Record<string, [string, RunAs]> = {
      "send_chat ×1": [`edge.send_chat($1, ${messages("db1", 1)})`, "caller, one statement"],
      "send_chat ×10": [`edge.send_chat($1, ${messages("db10", 10)})`, "caller, one statement"],
      "naive ×1": [`bench.send_chat_naive($1, ${messages("dbn1", 1)})`, "caller, one statement"],
      "naive ×10": [`bench.send_chat_naive($1, ${messages("dbn10", 10)})`, "caller, one statement"],
      "pgbench's insert": [
        `insert into public.messages (room_id, user_id, client_id, body)
         values ($1, '${user1}', 'dbi-' || $2, 'message ' || $2 || ': what a track, who is this?')
         on conflict on constraint messages_room_id_client_id_key do nothing`,
        "postgres",
      ],
      "flush_window": [`select private.flush_window('room:' || $1 || ':chat')`, "postgres"],
    };
    const inDatabase: Record<string, unknown> = {};
    const calls = Math.min(1000, pairs.length);
    // The rooms all the calls above wrote to (each has ~380 messages waiting by then): one flush
    // each sends a full chat:batch of 200, and the rest as the interval's batch when it is due.
    const fullRooms = pairs.slice(0, calls - (calls % clients)).filter((_, i) => i % clients === 0);
    console.log(
      `\nInside Postgres, per call (clock_timestamp, ${calls} calls, one connection; ` +
        `flush_window: ${fullRooms.length} flushes of ~380 waiting messages):`,
    );
    for (const [label, [statement, runAs]] of Object.entries(statements)) {
      const flush = label.startsWith("flush");
      const durations = await timeCalls(sql, statement, {
        pairs: flush ? fullRooms : pairs,
        calls: flush ? fullRooms.length : calls,
        runAs,
      });
      inDatabase[label] = summarize(durations);
      console.log(`  ${label.padEnd(20)} ${JSON.stringify(inDatabase[label])}`);
    }
    // A flush as in the 64-room scenarios, where a batch holds a few messages: five waiting in
    // each room of the ×10 scenario (whose last batch left long ago: due).
    const dueRooms = roomsOf("chat-send ×10");
    await timeCalls(sql, `edge.send_chat($1, ${messages("dbf", 1)})`, {
      pairs: dueRooms.flatMap((room) => [1, 2, 3, 4, 5].map((n) => ({ room, user: id(0, n) }))),
      calls: dueRooms.length * 5,
      runAs: "caller, one statement",
    });
    inDatabase["flush_window (5)"] = summarize(
      await timeCalls(sql, statements["flush_window"][0], {
        pairs: dueRooms.map((room) => ({ room, user: user1 })),
        calls: dueRooms.length,
        runAs: "postgres",
      }),
    );
    console.log(
      `  ${"flush_window (5)".padEnd(20)} ${JSON.stringify(inDatabase["flush_window (5)"])} ` +
        `(${dueRooms.length} rooms, five messages waiting in each)`,
    );

    await writeResults("ingest", {
      clients,
      rooms_per_scenario: roomsPerScenario,
      warmup_s: warmupMs / 1000,
      duration_s: durationMs / 1000,
      db_pool_max: poolMax,
      cpus: navigator.hardwareConcurrency,
      cluster_settings: throwawaySettings,
      room_chat_rate_limit: "raised to 1,000,000/s for the run",
      naive_path: "bench-only handler (bench/naive/functions/chat-send-naive) behind a second " +
        "gateway in this process: send_chat's checks and insert, realtime.send per message",
      pgbench_insert: insert,
      scenarios: results,
      ratios,
      postgres_cpu_us_per_message: postgresUsPerMessage,
      round_trips: roundTripResults,
      in_postgres_alone: {
        connections: pgClients,
        flush_every_ms: flushEveryMs,
        runs: inPostgres,
        broadcasts_whole_run: inPostgresBroadcasts,
        one_room_over_64_rooms: pgOneRoomRatio,
        cpu_per_call: Object.fromEntries(
          Object.entries(inPostgres).map(([k, v]) => [k, v.cpu.cpu_us_per_unit.postgres]),
        ),
      },
      one_room: oneRoomResult,
      in_database: inDatabase,
      targets: {
        "one room / 64 rooms (HTTP and in Postgres alone)": ">= 0.9",
        "postgres cpu per 1-message request (µs)": "<= 1000",
        "postgres cpu per message at ×10 (µs)": "<= 250",
        "chat-send ×1 / pgbench": ">= 0.10",
        "chat-send ×10 / pgbench": ">= 0.6",
        one_room_broadcasts_per_message: "<= 0.05",
        one_room_added_delay_p99_ms: "< 150",
      },
    });
  } finally {
    await roundTrips.close();
    await naiveServer.shutdown();
    await sql.end();
  }
});
