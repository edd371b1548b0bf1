import postgres from "npm:postgres@3.4.9";
import type { Claims } from "./auth.ts";

export type Sql = postgres.Sql;
/** What `tx.json()` takes for a list of plain objects. */
export type JsonArray = postgres.JSONValue[];
/** One call of an SQL entry point, written with the `sql` it is given:
 * (sql) => sql`edge.presence_get(${roomId})`. */
export type EntryPointCall<S extends Sql | postgres.TransactionSql = Sql> = (
  sql: S,
) => postgres.PendingQuery<postgres.Row[]>;

let pool: Sql | undefined;
let backgroundPool: Sql | undefined;

function openPool(max: number): Sql {
  const url = Deno.env.get("SUPABASE_DB_URL");
  if (!url) throw new Error("SUPABASE_DB_URL is not set");
  return postgres(url, {
    prepare: false,
    max,
    connect_timeout: 5,
    idle_timeout: 30,
    // Reconnect soon after a failed attempt: postgres.js's default backoff grows to ~20 s, so
    // after a database restart requests waited that long for a connection instead of getting
    // a quick 503 during the outage and a quick answer after it.
    backoff: (attempt: number) => Math.min(0.05 * 2 ** attempt, 0.5),
    // The API roles' statement_timeout is a login setting, which taking their role in a
    // statement does not bring: the pool's connections get it when they open.
    connection: { statement_timeout: 8000 },
    onnotice: () => {},
  });
}

/**
 * The process-wide connection pool to SUPABASE_DB_URL. `prepare: false` because hosted
 * functions reach Postgres through Supavisor's transaction pooler, which cannot keep
 * prepared statements. The connection runs as `postgres`: use `asCaller` for user work.
 */
export function db(): Sql {
  pool ??= openPool(Number(Deno.env.get("DB_POOL_MAX") ?? 10));
  return pool;
}

/** A small pool of its own for work after the response (window flushes), so that it never
 * queues behind requests when they fill the main pool. */
export function backgroundDb(): Sql {
  backgroundPool ??= openPool(2);
  return backgroundPool;
}

/** Closes the pools (tests and the local gateway on shutdown). */
export async function closeDb(): Promise<void> {
  const open = [pool, backgroundPool];
  pool = backgroundPool = undefined;
  await Promise.all(open.map((p) => p?.end({ timeout: 1 })));
}

/**
 * Runs one SQL call (an `edge.*` entry point) as the caller, the way PostgREST and Realtime do:
 * the JWT's role and claims, and the request's x-forwarded-proto (for tls_only rules), are set
 * for this transaction only, so RLS, `auth.uid()` and `auth.jwt()` apply. One statement, run in
 * its own transaction: one network round trip, and nothing held between statements. The
 * settings come from a materialized CTE, so they are made before the call is evaluated; EXECUTE
 * on the entry point is checked for the connection's role when the statement starts, which is
 * why the API roles need no grant on `edge`. For the same reason `call` must be a function call:
 * a table read written inline would be planned and checked as postgres, before the role is taken.
 * The entry point answers one value (jsonb, which comes back parsed): `Result` is its type, as
 * the caller declares it next to the call (unknown unless it does).
 */
export async function asCaller<Result = unknown>(
  claims: Claims,
  call: EntryPointCall,
  req?: Request,
): Promise<Result> {
  const [{ result }] = await callerQuery(db(), claims, call, req);
  return result as Result;
}

/** asCaller's statement on a given connection or transaction (tests hold one open with it). */
export function callerQuery<S extends Sql | postgres.TransactionSql>(
  sql: S,
  claims: Claims,
  call: EntryPointCall<S>,
  req?: Request,
): postgres.PendingQuery<postgres.Row[]> {
  const headers = { "x-forwarded-proto": req?.headers.get("x-forwarded-proto") ?? "https" };
  return sql`
    with caller as materialized (
      select set_config('role', ${claims.role}, true),
             set_config('request.jwt.claims', ${JSON.stringify(claims)}, true),
             set_config('request.headers', ${JSON.stringify(headers)}, true)
    )
    select ${call(sql)} as result from caller`;
}
