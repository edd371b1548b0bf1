// What the benchmarks share: the POST load client in a Worker (bench/ingest/load.ts), readable
// seed ids, turning a load result into figures, and timing statements inside Postgres.
import type postgres from "npm:postgres@3.4.9";
import type { Claims } from "../../supabase/functions/_shared/auth.ts";
import { callerQuery, type Sql } from "../../supabase/functions/_shared/db.ts";
import { summarize } from "../lib.ts";
import { cpuSnapshot, cpuUsed } from "./cpu.ts";
import type { PostJob, PostResult } from "./load.ts";

export type { PostJob, PostResult, PostTarget } from "./load.ts";

/** Runs one job in a fresh Worker and returns what it measured. */
export function postLoad(job: PostJob): Promise<PostResult> {
  const worker = new Worker(new URL("./load.ts", import.meta.url).href, { type: "module" });
  return new Promise<PostResult>((resolve, reject) => {
    worker.onmessage = (event) => resolve(event.data);
    worker.onerror = (event) => reject(event.error ?? new Error(event.message));
    worker.postMessage(job);
  }).finally(() => worker.terminate());
}

/**
 * postLoad, with the CPU used in the measured window (from the end of the warm-up until the
 * load client is done), per acknowledged request.
 */
export async function measuredLoad(job: PostJob) {
  const done = postLoad(job);
  const start = new Promise<ReturnType<typeof cpuSnapshot>>((resolve) =>
    setTimeout(() => resolve(cpuSnapshot()), job.warmupMs)
  );
  const run = await done;
  const cpu = cpuUsed(await start, cpuSnapshot(), run.ok);
  return { run, cpu };
}

/** Ids readable by kind and number, as in bench/late-joiner.ts: 0 users, 1 rooms, 2 songs. */
export function id(kind: number, n: number): string {
  return `${kind}0000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}

/** The same ids in SQL, as pg_temp.id(kind, n) on `sql`'s (single) connection. */
export async function createIdFunction(sql: postgres.Sql): Promise<void> {
  await sql`
    create function pg_temp.id(kind int, n int) returns uuid language sql immutable as
    $$ select (kind || '0000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid $$`;
}

/** Users id(0, 1..users) and one public room hosted by user 1 with everyone else as listeners
 * (creates pg_temp.id on `sql`'s single connection). */
export async function seedBigRoom(sql: postgres.Sql, room: string, users: number): Promise<void> {
  await createIdFunction(sql);
  await sql`
    insert into auth.users (id, email, is_anonymous)
    select pg_temp.id(0, n), 'u' || n || '@bench.test', false from generate_series(1, ${users}) n`;
  // The trigger adds the host's membership.
  await sql`
    insert into public.rooms (id, name, host_id, visibility)
    values (${room}, 'The big room', pg_temp.id(0, 1), 'public')`;
  await sql`
    insert into public.room_members (room_id, user_id, role)
    select ${room}, pg_temp.id(0, n), 'listener' from generate_series(2, ${users}) n`;
}

/**
 * The statement supabase/functions/_shared/db.ts runs for asCaller(claims, call): made by its
 * callerQuery, so it is the functions' own text, with `call` (an entry point call such as
 * `edge.presence_get($1)`, its parameters $1 and $2) and the caller's settings as parameters $3
 * (role), $4 (claims) and $5 (request.headers).
 */
export function callerStatement(call: string): string {
  const role = "\u0000role", claims = { role } as unknown as Claims, entryPoint = { call };
  const recorded = callerQuery(
    ((strings: TemplateStringsArray, ...values: unknown[]) => ({
      strings,
      values,
    })) as unknown as Sql,
    claims,
    () => entryPoint as unknown as ReturnType<typeof callerQuery>,
  ) as unknown as { strings: string[]; values: unknown[] };
  const settings = recorded.values.filter((v) => v !== role && v !== JSON.stringify(claims));
  if (settings.length !== 2 || !settings.includes(entryPoint)) {
    throw new Error("db.ts callerQuery has changed shape: update callerStatement");
  }
  const parameter = (value: unknown) =>
    value === entryPoint
      ? call
      : value === role
      ? "$3"
      : value === JSON.stringify(claims)
      ? "$4"
      : "$5";
  return recorded.strings.reduce((text, piece, i) =>
    text + parameter(recorded.values[i - 1]) + piece
  );
}

/**
 * How bench code runs a statement it times: as `postgres`; as the caller the way PostgREST runs a
 * request (role, claims and request.headers set first, then the statement, so that RLS plans for
 * the caller: for table reads); or as the caller in the functions' one statement (callerStatement:
 * `statement` is then the entry point call, e.g. `edge.presence_get($1)`).
 */
export type RunAs = "postgres" | "caller, settings first" | "caller, one statement";

/**
 * What one statement costs inside Postgres, as bench/late-joiner.ts times it: `calls` calls on
 * `sql`'s (single) connection, each planned anew (EXECUTE, like the functions' unnamed
 * statements), timed with clock_timestamp(); no pool, no round trips, no HTTP. Call i runs with
 * $1 = the room of pairs[(i - 1) % pairs.length] and $2 = i, `runAs` that pair's user (claims
 * {sub, role: authenticated, is_anonymous: false}). One transaction; what the calls write is
 * kept. Returns the duration of each call in ms.
 */
export async function timeCalls(
  sql: postgres.Sql,
  statement: string,
  { pairs, calls, runAs }: {
    pairs: { room: string; user: string }[];
    calls: number;
    runAs: RunAs;
  },
): Promise<number[]> {
  const rooms = pairs.map((p) => p.room), users = pairs.map((p) => p.user);
  await sql`
    create or replace function pg_temp.time_calls(
      statement text, rooms uuid[], users uuid[], calls int, run_as text)
    returns double precision[]
    language plpgsql as $$
    declare
      room uuid;
      claims text;
      headers text := '{"x-forwarded-proto":"https"}';
      started timestamptz;
      durations double precision[] := '{}';
    begin
      for i in 1 .. calls loop
        room := rooms[1 + (i - 1) % array_length(rooms, 1)];
        claims := json_build_object('sub', users[1 + (i - 1) % array_length(users, 1)],
                                    'role', 'authenticated', 'is_anonymous', false)::text;
        if run_as = 'caller, settings first' then
          perform set_config('role', 'authenticated', true),
                  set_config('request.jwt.claims', claims, true),
                  set_config('request.headers', headers, true);
        end if;
        started := clock_timestamp();
        if run_as = 'caller, one statement' then
          execute statement using room, i, 'authenticated'::text, claims, headers;
        else
          execute statement using room, i;
        end if;
        durations := durations || extract(epoch from clock_timestamp() - started) * 1000;
        perform set_config('role', 'postgres', true);
      end loop;
      return durations;
    end;
    $$`;
  const text = runAs === "caller, one statement" ? callerStatement(statement) : statement;
  const [{ durations }] = await sql`
    select pg_temp.time_calls(${text}, ${rooms}::uuid[], ${users}::uuid[], ${calls},
                              ${runAs}) as durations`;
  return durations;
}

/** A SQL timestamp (UTC, without time zone, like realtime.messages.inserted_at) from epoch ms. */
export function utc(epochMs: number): string {
  return new Date(epochMs).toISOString().replace("T", " ").replace("Z", "");
}

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** The figures of one run, with `units` (e.g. messages) per acknowledged request. */
export function figures(run: PostResult, unitsPerRequest = 1) {
  const timing = summarize(run.samplesMs);
  const seconds = run.elapsedMs / 1000;
  return {
    requests: run.sent,
    acknowledged: run.ok,
    requests_per_s: round(run.sent / seconds),
    acknowledged_units_per_s: round((run.ok * unitsPerRequest) / seconds),
    p50_ms: timing.p50_ms,
    p99_ms: timing.p99_ms,
    max_ms: timing.max_ms,
    errors: run.errors,
    statuses: run.statuses,
    first_error: run.firstError ?? null,
  };
}
