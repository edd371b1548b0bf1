// `npm run bench -- conflation`: the playback conflation window under load. ROOMS (100) rooms,
// each host sending UPDATES_PER_S (60) position-only updates a second (same song, playing,
// seq increasing, position = milliseconds since the start) to POST /functions/v1/playback for
// WARMUP_S (2) + DURATION_S (10) seconds: an open loop, paced over all rooms round robin, at most
// MAX_IN_FLIGHT (256) requests at once (bench/lib/load-worker.ts). Then, from realtime.messages:
//   - playback:position broadcasts per room per second in the measured window (target ≤ 2.1:
//     one per 500 ms conflation interval), and the most any room got in one second
//   - whether every room's final state was delivered: its last playback:position broadcast
//     carries the room's final seq (public.playback_state.seq), as does the persisted last
//     message (history rewind=1)
// 6,000 requests a second may be more than this machine can serve: the rate actually achieved
// is measured and printed (slots the stack fell behind on are skipped, not sent in a burst).
// Targets are reported, never asserted.
import postgres from "npm:postgres@3.4.9";
import { cpuLine } from "./lib/cpu.ts";
import { loadFigures, loadSettings, measuredLoad } from "./lib/load.ts";
import { round, summarize, writeResults } from "./lib/results.ts";
import { createIdFunction, id, seedRooms, seedUsers } from "./lib/seed.ts";
import { type RunAs, timeCalls } from "./lib/statement-timing.ts";
import { userToken } from "../local/keys.ts";
import { throwawaySettings, withThrowawayStack } from "../local/throwaway.ts";

const { warmupMs, durationMs, poolMax } = loadSettings;
const rooms = Number(Deno.env.get("ROOMS") ?? 100);
const updatesPerS = Number(Deno.env.get("UPDATES_PER_S") ?? 60);
const maxInFlight = Number(Deno.env.get("MAX_IN_FLIGHT") ?? 256);
const song = id(2, 1);

/** A SQL timestamp (UTC, without time zone, like realtime.messages.inserted_at) from epoch ms. */
function utc(epochMs: number): string {
  return new Date(epochMs).toISOString().replace("T", " ").replace("Z", "");
}

async function seed(sql: postgres.Sql) {
  await createIdFunction(sql);
  // Room n is hosted by user n; every room is playing song 1 from seq 0, so every update of the
  // run is position-only (conflated), none a song or play/pause change (broadcast at once).
  await seedUsers(sql, [1, rooms]);
  await seedRooms(sql, rooms);
  await sql`
    insert into public.songs (id, title, artist, duration_ms)
    values (${song}, 'A long song', 'Bench', 3600000)`;
  await sql`
    insert into public.playback_state (room_id, song_id, position_ms, is_playing, seq)
    select pg_temp.id(1, n), ${song}, 0, true, 0 from generate_series(1, ${rooms}) n`;
  await sql`vacuum analyze`;
}

await withThrowawayStack({ api: 54411, db: 54412 }, async ({ apiUrl, dbUrl, cluster }) => {
  const sql = postgres(dbUrl, { prepare: false, max: 1, onnotice: () => {} });
  try {
    await seed(sql);
    const targets = await Promise.all(
      Array.from({ length: rooms }, async (_, i) => ({
        room: id(1, i + 1),
        token: await userToken(id(0, i + 1)),
      })),
    );
    const ratePerS = rooms * updatesPerS;
    const settings = Object.entries(throwawaySettings).map(([k, v]) => `${k}=${v}`).join(", ");
    console.log(
      `${rooms} rooms × ${updatesPerS} updates/s = ${ratePerS} requests/s asked for, ` +
        `${warmupMs / 1000} s warm-up + ${durationMs / 1000} s, ` +
        `at most ${maxInFlight} in flight; ` +
        `DB_POOL_MAX=${poolMax}; ${navigator.hardwareConcurrency} CPUs; cluster: ${settings}`,
    );

    const { run, cpu } = await measuredLoad({
      url: `${apiUrl}/functions/v1/playback`,
      body: JSON.stringify({
        room_id: "{room}",
        song_id: song,
        position_ms: "{elapsed_ms}",
        is_playing: true,
        seq: "{seq}",
      }).replace(/"(\{elapsed_ms\}|\{seq\})"/g, "$1"),
      paced: { ratePerS, targets, maxInFlight },
      okStatus: 202,
      warmupMs,
      durationMs,
      countBodiesContaining: `"applied":false`,
    }, cluster.dataDir);
    // Let the last windows (500 ms) flush.
    for (let i = 0; i < 100; i++) {
      const [{ open }] = await sql`select count(*)::int as open from private.broadcast_windows`;
      if (open === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const figs = loadFigures(run);
    const seconds = durationMs / 1000;
    const achieved = round(run.sent / seconds);
    const applied = run.ok - run.matching;
    console.log(
      `\nAchieved: ${achieved} requests/s sent (${round((achieved / ratePerS) * 100)}% of ` +
        `${ratePerS}; ${run.missed} slots skipped), ` +
        `${round(achieved / rooms)} updates/s per room; ` +
        `${figs.acknowledged_units_per_s}/s acknowledged, ${run.matching} of them not applied ` +
        `(an older seq overtaken in flight); request p50 ${figs.p50_ms.toFixed(1)} ms ` +
        `p99 ${figs.p99_ms.toFixed(1)} ms max ${figs.max_ms.toFixed(1)} ms, errors ${figs.errors}`,
    );
    console.log(`  ${cpuLine(cpu)}`);
    if (run.firstError) console.log(`  first error: ${run.firstError}`);

    const roomIds = targets.map((t) => t.room);
    const topics = roomIds.map((room) => `room:${room}:playback`);
    const from = utc(run.windowStartEpochMs), to = utc(run.windowEndEpochMs);
    // inserted_at is a UTC timestamp without time zone: the window's bounds are given the same way.
    const perRoom = await sql<
      { room: string; in_window: number; busiest_second: number; all_broadcasts: number }[]
    >`
      with b as (
        select m.topic, m.inserted_at from realtime.messages m
        where m.topic = any(${topics}::text[]) and m.event = 'playback:position'
      ), buckets as (
        select topic, floor(extract(epoch from inserted_at - ${from}::timestamp)) as second,
               count(*) as n
        from b where inserted_at >= ${from}::timestamp and inserted_at < ${to}::timestamp
        group by 1, 2
      )
      select t.topic as room,
             (select count(*) from b where b.topic = t.topic and b.inserted_at >= ${from}::timestamp
                and b.inserted_at < ${to}::timestamp)::int as in_window,
             coalesce((select max(n) from buckets where buckets.topic = t.topic), 0)::int
               as busiest_second,
             (select count(*) from b where b.topic = t.topic)::int as all_broadcasts
      from unnest(${topics}::text[]) as t (topic)`;
    const rates = perRoom.map((r) => r.in_window / seconds);
    const meanRate = rates.reduce((a, b) => a + b, 0) / rates.length;
    const maxRate = Math.max(...rates);
    const busiest = Math.max(...perRoom.map((r) => r.busiest_second));
    const broadcastsInWindow = perRoom.reduce((a, r) => a + r.in_window, 0);

    // How late the flushes come: the gap between a room's consecutive broadcasts (one interval,
    // 500 ms, when flushes are on time and updates keep coming), and how old the state is when
    // it goes out (its updated_at to the broadcast's inserted_at).
    const [timing] = await sql`
      with b as (
        select m.topic, m.inserted_at,
               (m.payload ->> 'updated_at')::timestamptz at time zone 'UTC' as updated_at,
               lag(m.inserted_at) over (partition by m.topic order by m.inserted_at) as previous
        from realtime.messages m
        where m.topic = any(${topics}::text[]) and m.event = 'playback:position'
          and m.inserted_at >= ${from}::timestamp and m.inserted_at < ${to}::timestamp
      )
      select percentile_cont(0.5) within group (order by extract(epoch from inserted_at - previous))
               * 1000 as gap_p50,
             percentile_cont(0.99) within group (order by extract(epoch from inserted_at - previous))
               * 1000 as gap_p99,
             percentile_cont(0.5) within group (order by extract(epoch from inserted_at - updated_at))
               * 1000 as age_p50,
             percentile_cont(0.99) within group (order by extract(epoch from inserted_at - updated_at))
               * 1000 as age_p99
      from b`;
    const gaps = {
      gap_between_broadcasts_p50_ms: round(timing.gap_p50 ?? NaN),
      gap_between_broadcasts_p99_ms: round(timing.gap_p99 ?? NaN),
      state_age_at_broadcast_p50_ms: round(timing.age_p50 ?? NaN),
      state_age_at_broadcast_p99_ms: round(timing.age_p99 ?? NaN),
    };

    const finals = await sql<
      {
        room: string;
        final_seq: string;
        last_broadcast_seq: string | null;
        persisted_seq: string | null;
      }[]
    >`
      select p.room_id::text as room, p.seq::text as final_seq,
             (select m.payload ->> 'seq' from realtime.messages m
              where m.topic = 'room:' || p.room_id || ':playback' and m.event = 'playback:position'
              order by m.inserted_at desc, (m.payload ->> 'seq')::bigint desc limit 1)
               as last_broadcast_seq,
             (select l.data ->> 'seq' from private.channel_last_messages l
              where l.channel = 'room:' || p.room_id || ':playback') as persisted_seq
      from public.playback_state p where p.room_id = any(${roomIds}::uuid[])`;
    const delivered = finals.filter((f) => f.last_broadcast_seq === f.final_seq).length;
    const persisted = finals.filter((f) => f.persisted_seq === f.final_seq).length;
    const finalIsLastSent = finals.filter((f) => Number(f.final_seq) === run.lastSeq[f.room])
      .length;
    const missing = finals.filter((f) => f.last_broadcast_seq !== f.final_seq).slice(0, 5);

    console.log(
      `\nplayback:position broadcasts in the ${seconds} s window: ${broadcastsInWindow} for ` +
        `${applied} applied updates sent in it ` +
        `(${round(applied / Math.max(1, broadcastsInWindow))} per broadcast); ` +
        `per room per second: mean ${meanRate.toFixed(2)}, max ${maxRate.toFixed(2)} ` +
        `(target ≤ 2.1); most in any one second for a room: ${busiest}`,
    );
    console.log(
      `  gap between a room's broadcasts p50 ${gaps.gap_between_broadcasts_p50_ms} ms, p99 ` +
        `${gaps.gap_between_broadcasts_p99_ms} ms (the interval is 500 ms); state age when ` +
        `broadcast (updated_at → inserted_at) p50 ${gaps.state_age_at_broadcast_p50_ms} ms, p99 ` +
        `${gaps.state_age_at_broadcast_p99_ms} ms`,
    );
    console.log(
      `Final state delivered (last playback:position carries the room's final seq): ` +
        `${delivered}/${rooms} rooms; persisted last message too: ${persisted}/${rooms}; ` +
        `final seq = last seq sent: ${finalIsLastSent}/${rooms}`,
    );
    if (missing.length) console.log(`  not delivered, e.g.: ${JSON.stringify(missing)}`);

    // Where the time goes, after the checks above (these calls move every room's state on):
    // set_playback and a flush of a due window inside Postgres, as in bench/ingest.ts.
    const pairs = targets.map((t, i) => ({ room: t.room, user: id(0, i + 1) }));
    const statements: Record<string, [string, RunAs, number]> = {
      "set_playback": [
        `edge.set_playback($1, '${song}', $2, true, 1000000000 + $2)`,
        "caller, one statement",
        Math.max(1000, rooms),
      ],
      "flush_window": [
        `select private.flush_window('room:' || $1 || ':playback')`,
        "postgres",
        rooms,
      ],
    };
    const inDatabase: Record<string, unknown> = {};
    console.log(`\nInside Postgres, per call (clock_timestamp, one connection):`);
    for (const [label, [statement, runAs, calls]] of Object.entries(statements)) {
      // The windows set_playback opened, due now: each flush sends its room's state.
      if (label === "flush_window") {
        await sql`update private.broadcast_windows set due_at = clock_timestamp()`;
      }
      inDatabase[label] = summarize(await timeCalls(sql, statement, { pairs, calls, runAs }));
      console.log(`  ${label.padEnd(14)} ${calls} calls ${JSON.stringify(inDatabase[label])}`);
    }

    await writeResults("conflation", {
      rooms,
      updates_per_s_per_room_asked: updatesPerS,
      requests_per_s_asked: ratePerS,
      warmup_s: warmupMs / 1000,
      duration_s: seconds,
      max_in_flight: maxInFlight,
      db_pool_max: poolMax,
      cpus: navigator.hardwareConcurrency,
      cluster_settings: throwawaySettings,
      achieved: {
        requests_per_s_sent: achieved,
        share_of_asked: round(achieved / ratePerS, 3),
        updates_per_s_per_room: round(achieved / rooms, 1),
        skipped_slots: run.missed,
        not_applied_overtaken: run.matching,
        ...figs,
      },
      cpu,
      broadcasts: {
        in_window: broadcastsInWindow,
        per_room_per_s_mean: round(meanRate, 3),
        per_room_per_s_max: round(maxRate, 3),
        busiest_second_any_room: busiest,
        ...gaps,
        target_per_room_per_s: "<= 2.1",
      },
      final_state: {
        rooms_delivered: delivered,
        rooms_persisted_last: persisted,
        rooms_final_seq_is_last_sent: finalIsLastSent,
        not_delivered_examples: missing,
      },
      in_database: inDatabase,
    });
  } finally {
    await sql.end();
  }
});
