// `npm run bench -- join-probe`: the cost of Supabase Realtime's join check (the read probe of
// realtime.md §2.3) against our RLS on realtime.messages, in a database of 10,000 rooms,
// 100,000 memberships and 1,000,000 chat messages. Prints p50/p99 per probe for a member and a
// non-member, and the plans of every query the policy check runs. Target: p99 < 1 ms, index
// scans only.
import postgres from "npm:postgres@3.4.9";
import { summarize, writeResults } from "./lib/results.ts";
import { id, seedRoomsWithMembers, seedTimed } from "./lib/seed.ts";
import { withThrowawayStack } from "../local/throwaway.ts";

const probesPerCase = Number(Deno.env.get("PROBES") ?? 5000);
const warmup = 500;

function seed(sql: postgres.Sql) {
  return seedTimed(
    sql,
    "20,000 users, 10,000 rooms, 100,000 memberships, 1,000,000 messages",
    async () => {
      await seedRoomsWithMembers(sql, { users: 20000, rooms: 10000, membersFrom: 10001 });
      // All of it gone out (each room's seq 1..100 in id order): no flush sends it during the run.
      await sql`
        insert into public.messages (room_id, user_id, client_id, body, seq, broadcast_at)
        select pg_temp.id(1, 1 + m % 10000), pg_temp.id(0, 1 + m % 10000),
               'bench-' || m, 'message ' || m, (m + 9999) / 10000, now()
        from generate_series(1, 1000000) as m`;
    },
    async () =>
      (await sql`
        select (select count(*) from public.rooms)::int as rooms,
               (select count(*) from public.room_members)::int as memberships,
               (select count(*) from public.messages)::int as messages`)[0],
  );
}

function claimsFor(sub: string) {
  return JSON.stringify({
    sub,
    role: "authenticated",
    aud: "authenticated",
    is_anonymous: false,
    exp: 4e9,
  });
}

/** One read probe, statement by statement as Realtime runs it, on one connection. */
async function probe(sql: postgres.ReservedSql, topic: string, claims: string) {
  const ids = [crypto.randomUUID(), crypto.randomUUID()];
  const now = new Date().toISOString().replace("Z", "");
  const started = performance.now();
  await sql`begin`;
  await sql`
    insert into realtime.messages (id, topic, extension, inserted_at, updated_at)
    values (${ids[0]}, ${topic}, 'broadcast', ${now}, ${now}), (${
    ids[1]
  }, ${topic}, 'presence', ${now}, ${now})`;
  await sql`
    select set_config('role', 'authenticated', true), set_config('realtime.topic', ${topic}, true),
           set_config('request.jwt.claims', ${claims}, true),
           set_config('request.jwt.claim.sub', ${JSON.parse(claims).sub}, true),
           set_config('request.jwt.claim.role', 'authenticated', true),
           set_config('request.headers', '{}', true)`;
  const selectStarted = performance.now();
  const visible = await sql`select m.id from realtime.messages m where m.id in (${ids[0]}, ${
    ids[1]
  })`;
  const selectMs = performance.now() - selectStarted;
  await sql`rollback`;
  return { totalMs: performance.now() - started, selectMs, allowed: visible.length > 0 };
}

/**
 * The same probe run inside Postgres, timed with clock_timestamp(): what the probe costs the
 * database, without the client's round trips. Returns one duration (ms) per probe.
 */
const serverSideProbes = `
  create function pg_temp.time_probes(topic text, claims jsonb, probes int)
  returns double precision[]
  language plpgsql as $$
  declare
    ids uuid[];
    utc_now timestamp;
    started timestamptz;
    visible int;
    durations double precision[] := '{}';
  begin
    for i in 1 .. probes loop
      ids := array[gen_random_uuid(), gen_random_uuid()];
      utc_now := clock_timestamp() at time zone 'utc';
      started := clock_timestamp();
      insert into realtime.messages (id, topic, extension, inserted_at, updated_at)
      values (ids[1], topic, 'broadcast', utc_now, utc_now), (ids[2], topic, 'presence', utc_now, utc_now);
      perform set_config('role', 'authenticated', true), set_config('realtime.topic', topic, true),
              set_config('request.jwt.claims', claims::text, true),
              set_config('request.jwt.claim.sub', claims ->> 'sub', true),
              set_config('request.jwt.claim.role', 'authenticated', true),
              set_config('request.headers', '{}', true);
      select count(*) into visible from realtime.messages m where m.id = any (ids);
      durations := durations || extract(epoch from clock_timestamp() - started) * 1000;
      perform set_config('role', 'none', true); -- back to supabase_admin
      delete from realtime.messages m where m.id = any (ids);
    end loop;
    return durations;
  end;
  $$`;

/** Notices of the benchmark's connection go here while `plans` collects them. */
let noticeSink: ((message: string) => void) | undefined;

/** The plans of the probe's SELECT and of every statement the policy check runs inside it. */
async function plans(sql: postgres.ReservedSql, topic: string, claims: string): Promise<string[]> {
  const logged: string[] = [];
  await sql`begin`;
  await sql`load 'auto_explain'`;
  await sql`select set_config('auto_explain.log_min_duration', '0', true),
                   set_config('auto_explain.log_nested_statements', 'on', true),
                   set_config('auto_explain.log_analyze', 'on', true),
                   set_config('auto_explain.log_timing', 'off', true),
                   set_config('client_min_messages', 'log', true)`;
  await sql`select set_config('role', 'authenticated', true), set_config('realtime.topic', ${topic}, true),
                   set_config('request.jwt.claims', ${claims}, true)`;
  noticeSink = (message) => logged.push(message);
  try {
    await sql`select m.id from realtime.messages m where m.id in (${crypto.randomUUID()})`;
  } finally {
    noticeSink = undefined;
    await sql`rollback`;
  }
  return logged;
}

await withThrowawayStack({ api: 54351, db: 54352 }, async ({ cluster }) => {
  // As Realtime connects: the superuser supabase_admin inserts and removes its probe rows (no
  // other role may delete from realtime.messages) and may load auto_explain.
  const sql = postgres(cluster.adminUrl, {
    prepare: false,
    max: 1,
    onnotice: (notice) => noticeSink?.(String(notice.message)),
  });
  try {
    const seeded = await seed(sql);
    const room = id(1, 0x1234);
    const topic = `room:${room}:chat`;
    const [{ member }] = await sql`
      select user_id as member from public.room_members where room_id = ${room} and role = 'listener' limit 1`;
    const nonMember = id(0, 1); // hosts room 1 only
    const connection = await sql.reserve();
    try {
      await connection.unsafe(serverSideProbes);
      // The client's own cost: one round trip that does nothing.
      const roundTrips: number[] = [];
      for (let i = 0; i < 2000; i++) {
        const started = performance.now();
        await connection`select 1`;
        roundTrips.push(performance.now() - started);
      }
      console.log(
        `Baseline: one empty round trip from this client ${JSON.stringify(summarize(roundTrips))}`,
      );
      const results: Record<string, unknown> = {
        seeded,
        probes_per_case: probesPerCase,
        empty_round_trip: summarize(roundTrips),
      };
      for (
        const [label, user, expected] of [["member", member, true], [
          "non-member",
          nonMember,
          false,
        ]] as const
      ) {
        const claims = claimsFor(user);
        for (let i = 0; i < warmup; i++) await probe(connection, topic, claims);
        const total: number[] = [];
        const select: number[] = [];
        for (let i = 0; i < probesPerCase; i++) {
          const result = await probe(connection, topic, claims);
          if (result.allowed !== expected) {
            throw new Error(`${label}: probe answered ${result.allowed}`);
          }
          total.push(result.totalMs);
          select.push(result.selectMs);
        }
        await connection.unsafe("begin");
        const [{ durations }] = await connection`
        select pg_temp.time_probes(${topic}, ${claims}::jsonb, ${probesPerCase}) as durations`;
        await connection.unsafe("rollback");
        const inDatabase = summarize(durations);
        results[label] = {
          in_database: inDatabase,
          whole_probe_from_client: summarize(total),
          policy_select_from_client: summarize(select),
        };
        console.log(`${label}: probe inside Postgres ${JSON.stringify(inDatabase)}`);
        console.log(
          `${label} (allowed=${expected}): whole probe transaction ${
            JSON.stringify(summarize(total))
          }`,
        );
        console.log(
          `${label}: the policy-checked SELECT alone ${JSON.stringify(summarize(select))}`,
        );
      }
      const memberPlans = await plans(connection, topic, claimsFor(member));
      console.log(
        "\nPlans of the member's probe SELECT and of the statements the policy check runs:\n",
      );
      for (const plan of memberPlans) console.log(plan + "\n");
      const seqScans = memberPlans.filter((plan) => /Seq Scan/.test(plan)).length;
      console.log(`Sequential scans in those plans: ${seqScans}`);
      results.plans = memberPlans;
      results.sequential_scans = seqScans;
      await writeResults("join-probe", results);
    } finally {
      connection.release();
    }
  } finally {
    await sql.end();
  }
});
