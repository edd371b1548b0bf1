// `npm run bench -- ingest`: how many chat messages the stack acknowledges a second, and what
// its batching costs and saves. In one run, on one throwaway cluster:
//   chat-send ×1 / ×10     POST /functions/v1/chat-send with one / ten messages a request,
//                          through the gateway, CLIENTS (32) concurrent loops (closed), each
//                          loop its own user, picking among ROOMS (64) rooms of its scenario
//   naive ×1 / ×10         the same requests to a chat-send without batching: insert +
//                          realtime.send per message in the request's transaction
//                          (bench/ingest/functions/chat-send-naive + bench/ingest/naive.ts),
//                          served by a second gateway in this process (:54403), sharing the
//                          functions' pool and the JWT check
//   pgbench insert         pgbench (run first, the gateways idle), CLIENTS connections, one
//                          single-row insert of the same row shape into public.messages per
//                          transaction: the insert limit of this machine, on the same cluster
//                          and settings (fsync off, local/throwaway.ts)
//   one room, paced        ONE_ROOM_RATE (1,000) one-message requests a second into one room
//                          from ONE_ROOM_USERS (80) users (each under the 20/s rate limit)
// Prints acknowledged messages/s, the ratios to pgbench, and per scenario the broadcasts per
// message and the added delay: for each message, its batch's realtime.messages.inserted_at
// (UTC, without time zone) minus the message's created_at, computed in SQL after the run.
// Targets (reported, never asserted): ×1 ≥ 0.5× pgbench, ×10 > 1.0× pgbench; in the one room,
// broadcasts ≤ 1/20 of messages and added delay p99 < 100 ms (the interval) + 50 ms.
// CLIENTS, ROOMS, WARMUP_S, DURATION_S, ONE_ROOM_RATE, ONE_ROOM_USERS and DB_POOL_MAX change it.
import postgres from "npm:postgres@3.4.9";
import { summarize, writeResults } from "./lib.ts";
import {
  createIdFunction,
  figures,
  id,
  measuredLoad,
  type PostTarget,
  round,
  timeCalls,
} from "./ingest/client.ts";
import { cpuLine, cpuSnapshot, cpuUsed } from "./ingest/cpu.ts";
import { naiveStatements } from "./ingest/naive.ts";
import { createGateway, serveGateway } from "../local/gateway.ts";
import { userToken } from "../local/keys.ts";
import { throwawaySettings, withThrowawayStack } from "../local/throwaway.ts";

const clients = Number(Deno.env.get("CLIENTS") ?? 32);
const roomsPerScenario = Number(Deno.env.get("ROOMS") ?? 64);
const warmupMs = Number(Deno.env.get("WARMUP_S") ?? 2) * 1000;
const durationMs = Number(Deno.env.get("DURATION_S") ?? 10) * 1000;
const oneRoomRate = Number(Deno.env.get("ONE_ROOM_RATE") ?? 1000);
const oneRoomUsers = Number(Deno.env.get("ONE_ROOM_USERS") ?? 80);
const poolMax = Number(Deno.env.get("DB_POOL_MAX") ?? 10);
const naivePort = 54403;
const here = new URL("./ingest/", import.meta.url).pathname;
const pgbench = ["/usr/lib/postgresql/15/bin/pgbench", "pgbench"].find((file) => {
  try {
    return Deno.statSync(file).isFile;
  } catch {
    return false;
  }
}) ?? "pgbench";

// Users: 1..clients send in the throughput scenarios (user 1 hosts their rooms); the one room's
// users are 1001.. (1001 hosts it). Rooms: scenario s has rooms s·ROOMS + 1 .. (s + 1)·ROOMS.
const scenarios = ["chat-send ×1", "chat-send ×10", "naive ×1", "naive ×10", "pgbench insert"];
const roomsOf = (scenario: string) => {
  const s = scenarios.indexOf(scenario);
  return Array.from({ length: roomsPerScenario }, (_, i) => id(1, s * roomsPerScenario + i + 1));
};
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
  const rooms = scenarios.length * roomsPerScenario;
  await sql`
    insert into auth.users (id, email, is_anonymous)
    select pg_temp.id(0, n), 'u' || n || '@bench.test', false
    from (select generate_series(1, ${clients}) union all
          select generate_series(1001, ${1000 + oneRoomUsers})) u (n)`;
  await sql`
    insert into public.rooms (id, name, host_id, visibility)
    select pg_temp.id(1, n), 'Room ' || n, pg_temp.id(0, 1), 'public'
    from generate_series(1, ${rooms}) n`;
  await sql`
    insert into public.room_members (room_id, user_id, role)
    select pg_temp.id(1, n), pg_temp.id(0, u), 'listener'
    from generate_series(1, ${rooms}) n, generate_series(2, ${clients}) u`;
  await sql`
    insert into public.rooms (id, name, host_id, visibility)
    values (${oneRoom}, 'The busy room', pg_temp.id(0, 1001), 'public')`;
  await sql`
    insert into public.room_members (room_id, user_id, role)
    select ${oneRoom}, pg_temp.id(0, u), 'listener'
    from generate_series(1002, ${1000 + oneRoomUsers}) u`;
  for (const statement of naiveStatements) await sql.unsafe(statement);
  await sql`vacuum analyze`;
}

/** Waits until every broadcast window is flushed (at most 10 s). */
async function drain(sql: postgres.Sql) {
  for (let i = 0; i < 100; i++) {
    const [{ open }] = await sql`select count(*)::int as open from private.broadcast_windows`;
    if (open === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.log("  (windows still open after 10 s)");
}

/**
 * What the rooms' chat channels broadcast, for every message stored in them: broadcasts per
 * message, whether each was broadcast exactly once, and the added delay (ms) from the message's
 * created_at to its broadcast's inserted_at (the flush transaction's start).
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
           max(delay_ms) as max
    from delays`;
  return {
    messages: row.messages,
    broadcasts: row.broadcasts,
    chat_batch_broadcasts: row.batches,
    broadcasts_per_message: row.messages ? round(row.broadcasts / row.messages, 4) : null,
    messages_per_broadcast: row.broadcasts ? round(row.messages / row.broadcasts, 1) : null,
    never_broadcast: row.messages - row.delivered,
    broadcast_twice: row.broadcast_items - row.distinct_items,
    added_delay_p50_ms: row.p50 === null ? null : round(row.p50, 1),
    added_delay_p99_ms: row.p99 === null ? null : round(row.p99, 1),
    added_delay_max_ms: row.max === null ? null : round(Number(row.max), 1),
  };
}

/** pgbench: one single-row insert per transaction into the pgbench scenario's rooms. */
async function runPgbench(dbUrl: string, dir: string, seconds: number) {
  const first = scenarios.indexOf("pgbench insert") * roomsPerScenario + 1;
  const script = `${dir}/ingest-insert.sql`;
  // The row chat-send stores (send_chat: waiting for its window, broadcast_at null; the same
  // ON CONFLICT), into rooms that are never flushed. Ids as the seed's pg_temp.id().
  await Deno.writeTextFile(
    script,
    `\\set r random(${first}, ${first + roomsPerScenario - 1})
\\set u random(1, ${clients})
\\set n random(1, 1000000000000)
insert into public.messages (room_id, user_id, client_id, body, broadcast_at)
values (('10000000-0000-4000-8000-' || lpad(to_hex(cast(:r as int)), 12, '0'))::uuid,
        ('00000000-0000-4000-8000-' || lpad(to_hex(cast(:u as int)), 12, '0'))::uuid,
        'pgb-' || :client_id || '-' || :n, 'message ' || :n || ': what a track, who is this?', null)
on conflict on constraint messages_room_id_client_id_key do nothing;
`,
  );
  const args = [
    "-n",
    "-M",
    "prepared",
    "-c",
    String(clients),
    "-j",
    String(Math.min(clients, navigator.hardwareConcurrency)),
    "-T",
    String(seconds),
    "-f",
    script,
    dbUrl,
  ];
  // The CPU used while it runs, its connections open (their backends are gone at the end).
  const child = new Deno.Command(pgbench, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .spawn();
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  await sleep(500);
  const before = cpuSnapshot();
  await sleep(Math.max(0, seconds * 1000 - 800));
  const after = cpuSnapshot();
  const output = await child.output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(text);
  const latency = /latency average = ([\d.]+) ms/.exec(text);
  const failed = /number of failed transactions: (\d+)/.exec(text);
  if (output.code !== 0 || !tps) throw new Error(`pgbench failed:\n${text}`);
  return {
    command: `pgbench ${args.slice(0, -1).join(" ")} <db>`,
    inserts_per_s: round(Number(tps[1])),
    latency_average_ms: latency ? Number(latency[1]) : null,
    failed_transactions: failed ? Number(failed[1]) : 0,
    // pgbench's own CPU is in rest_of_machine.
    cpu: tps ? cpuUsed(before, after, (Number(tps[1]) * (after.at - before.at)) / 1000) : null,
  };
}

await withThrowawayStack({ api: 54401, db: 54402 }, async ({ apiUrl, dbUrl, env }) => {
  const sql = postgres(dbUrl, { prepare: false, max: 1, onnotice: () => {} });
  const naiveServer = serveGateway(
    await createGateway({ functionsDir: `${here}functions`, configPath: `${here}config.toml` }),
    naivePort,
    (line) =>
      Deno.writeTextFileSync(`${env.TEST_CLUSTER_DIR}/naive-gateway.log`, line + "\n", {
        append: true,
      }),
  );
  try {
    await seed(sql);
    const tokens = new Map<number, string>();
    for (const n of [...Array(clients).keys()].map((i) => i + 1)) {
      tokens.set(n, await userToken(id(0, n)));
    }
    for (let n = 1001; n <= 1000 + oneRoomUsers; n++) tokens.set(n, await userToken(id(0, n)));
    const cluster = Object.entries(throwawaySettings).map(([k, v]) => `${k}=${v}`).join(", ");
    console.log(
      `${clients} clients (each its own user), ${roomsPerScenario} rooms per scenario, ` +
        `${warmupMs / 1000} s warm-up + ${durationMs / 1000} s per scenario; ` +
        `DB_POOL_MAX=${poolMax}; ${navigator.hardwareConcurrency} CPUs; cluster: ${cluster}`,
    );

    // pgbench first, on the same cluster (same settings, so the comparison is fair), while the
    // gateways are idle: a warm-up run, then the measured one.
    await runPgbench(dbUrl, env.TEST_CLUSTER_DIR, Math.max(1, warmupMs / 1000));
    const bench = await runPgbench(dbUrl, env.TEST_CLUSTER_DIR, durationMs / 1000);
    console.log(
      `\npgbench insert      ${bench.inserts_per_s.toFixed(1).padStart(8)} inserts/s  ` +
        `(latency avg ${bench.latency_average_ms} ms, ${clients} connections, -M prepared; ` +
        `the same cluster, ${cluster}: not a durable-to-disk figure, the same footing as the ` +
        `gateway's)\n  ${bench.cpu ? cpuLine(bench.cpu, "insert") : ""} (pgbench's own in rest)`,
    );

    const urls = {
      "chat-send": `${apiUrl}/functions/v1/chat-send`,
      "naive": `http://127.0.0.1:${naivePort}/functions/v1/chat-send-naive`,
    };
    const results: Record<string, unknown> = {};
    const messagesPerS: Record<string, number> = {};
    for (const scenario of scenarios.slice(0, 4)) {
      const perRequest = scenario.endsWith("×10") ? 10 : 1;
      const rooms = roomsOf(scenario);
      const loops: PostTarget[][] = Array.from(
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
      });
      await drain(sql);
      const figs = figures(run, perRequest);
      messagesPerS[scenario] = figs.acknowledged_units_per_s;
      const sent = await broadcastFigures(sql, rooms);
      results[scenario] = {
        messages_per_request: perRequest,
        ...figs,
        acknowledged_messages_per_s: figs.acknowledged_units_per_s,
        over_pgbench: round(figs.acknowledged_units_per_s / bench.inserts_per_s, 2),
        broadcasts_whole_run: sent,
        cpu,
      };
      console.log(
        `${scenario.padEnd(18)} ${figs.acknowledged_units_per_s.toFixed(1).padStart(8)} msgs/s  ` +
          `${figs.requests_per_s.toFixed(1).padStart(7)} req/s  ` +
          `p50 ${figs.p50_ms.toFixed(1)} ms  p99 ${figs.p99_ms.toFixed(1)} ms  ` +
          `errors ${figs.errors}  ` +
          `${sent.messages_per_broadcast} msgs/broadcast  added delay p50 ` +
          `${sent.added_delay_p50_ms} ms p99 ${sent.added_delay_p99_ms} ms` +
          (sent.never_broadcast || sent.broadcast_twice
            ? `  (never broadcast ${sent.never_broadcast}, twice ${sent.broadcast_twice})`
            : ""),
      );
      console.log(`  ${cpuLine(cpu)}`);
      if (run.firstError) console.log(`  first error: ${run.firstError}`);
    }
    const ratio = (a: number, b: number) => round(a / b, 2);
    const ratios = {
      "chat-send ×1 / pgbench": ratio(messagesPerS["chat-send ×1"], bench.inserts_per_s),
      "chat-send ×10 / pgbench": ratio(messagesPerS["chat-send ×10"], bench.inserts_per_s),
      "naive ×1 / pgbench": ratio(messagesPerS["naive ×1"], bench.inserts_per_s),
      "naive ×10 / pgbench": ratio(messagesPerS["naive ×10"], bench.inserts_per_s),
      "chat-send ×1 / naive ×1": ratio(messagesPerS["chat-send ×1"], messagesPerS["naive ×1"]),
      "chat-send ×10 / naive ×10": ratio(messagesPerS["chat-send ×10"], messagesPerS["naive ×10"]),
    };
    console.log(
      `\nRatios (acknowledged messages/s): ` +
        Object.entries(ratios).map(([k, v]) => `${k} ${v.toFixed(2)}×`).join(", ") +
        `\n  targets: chat-send ×1 ≥ 0.5× pgbench, chat-send ×10 > 1.0× pgbench`,
    );

    // One busy room, paced: ONE_ROOM_RATE one-message requests a second, round robin over the
    // room's users so that each stays under its rate limit.
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
    });
    await drain(sql);
    const pacedFigs = figures(paced);
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
        `never broadcast ${oneRoomSent.never_broadcast}, twice ${oneRoomSent.broadcast_twice}`,
    );
    console.log(
      `  added delay (created_at → batch inserted_at): p50 ${oneRoomSent.added_delay_p50_ms} ms, ` +
        `p99 ${oneRoomSent.added_delay_p99_ms} ms, max ${oneRoomSent.added_delay_max_ms} ms ` +
        `(target p99 < 150 ms)`,
    );

    // Where the time goes: each path's statement inside Postgres, in the chat-send ×1 rooms (all
    // flushed by now) as distinct (user, room) pairs, so no call meets a rate limit. Last: the
    // windows these calls open are left to the sweeper.
    const pairs = roomsOf("chat-send ×1").flatMap((room) =>
      [...Array(clients).keys()].map((c) => ({ room, user: id(0, c + 1) }))
    );
    const text = `'message ' || $2 || '-' || j || ': what a track, who is this?'`;
    const user1 = id(0, 1);
    const messages = (tag: string, n: number) =>
      `(select jsonb_agg(jsonb_build_object('client_id', '${tag}-' || $2 || '-' || j, 'body', ${text}))
        from generate_series(0, ${n - 1}) j)`;
    const statements: Record<string, [string, boolean]> = {
      "send_chat ×1": [`select public.send_chat($1, ${messages("db1", 1)})`, true],
      "send_chat ×10": [`select public.send_chat($1, ${messages("db10", 10)})`, true],
      "naive ×1": [`select bench.send_chat_naive($1, ${messages("dbn1", 1)})`, true],
      "naive ×10": [`select bench.send_chat_naive($1, ${messages("dbn10", 10)})`, true],
      "pgbench's insert": [
        `insert into public.messages (room_id, user_id, client_id, body, broadcast_at)
         values ($1, '${user1}', 'dbi-' || $2,
                 'message ' || $2 || ': what a track, who is this?', null)
         on conflict on constraint messages_room_id_client_id_key do nothing`,
        false,
      ],
      "flush_window (200)": [
        `select private.flush_window('room:' || $1 || ':chat', true)`,
        false,
      ],
    };
    const inDatabase: Record<string, unknown> = {};
    const calls = Math.min(1000, pairs.length);
    // The rooms all the calls above wrote to (each has ~380 messages waiting by then): one
    // forced flush each sends a full chat:batch of 200.
    const fullRooms = pairs.slice(0, calls - (calls % clients)).filter((_, i) => i % clients === 0);
    console.log(
      `\nInside Postgres, per call (clock_timestamp, ${calls} calls, one connection; ` +
        `flush_window: ${fullRooms.length} forced flushes of a full 200-message batch):`,
    );
    for (const [label, [statement, asCaller]] of Object.entries(statements)) {
      const flush = label.startsWith("flush");
      const durations = await timeCalls(sql, statement, {
        pairs: flush ? fullRooms : pairs,
        calls: flush ? fullRooms.length : calls,
        asCaller,
      });
      inDatabase[label] = summarize(durations);
      console.log(`  ${label.padEnd(20)} ${JSON.stringify(inDatabase[label])}`);
    }

    await writeResults("ingest", {
      clients,
      rooms_per_scenario: roomsPerScenario,
      warmup_s: warmupMs / 1000,
      duration_s: durationMs / 1000,
      db_pool_max: poolMax,
      cpus: navigator.hardwareConcurrency,
      cluster_settings: throwawaySettings,
      naive_path: "bench-only handler (bench/ingest/functions/chat-send-naive) behind a second " +
        "gateway in this process: send_chat's checks and insert, realtime.send per message",
      pgbench: bench,
      scenarios: results,
      ratios,
      one_room: oneRoomResult,
      in_database: inDatabase,
      targets: {
        "chat-send ×1 / pgbench": ">= 0.5",
        "chat-send ×10 / pgbench": "> 1.0",
        one_room_broadcasts_per_message: "<= 0.05",
        one_room_added_delay_p99_ms: "< 150",
      },
    });
  } finally {
    await naiveServer.shutdown();
    await sql.end();
  }
});
