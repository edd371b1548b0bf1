// What one statement costs inside Postgres, without the pool, round trips or HTTP: timed there
// with clock_timestamp(), as the caller where the functions or PostgREST would run it so.
import type postgres from "npm:postgres@3.4.9";
import type { Claims } from "../../supabase/functions/_shared/auth.ts";
import { callerQuery, type Sql } from "../../supabase/functions/_shared/db.ts";

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
 * What one statement costs inside Postgres: `calls` calls on `sql`'s (single) connection, each
 * planned anew (EXECUTE, like the functions' unnamed statements), timed with clock_timestamp();
 * no pool, no round trips, no HTTP. Call i runs with
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
