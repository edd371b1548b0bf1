import postgres from "npm:postgres@3.4.9";
import type { Claims } from "./auth.ts";
import { HttpError, isErrorCode } from "./errors.ts";

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;
/** What `tx.json()` takes for a list of plain objects. */
export type JsonArray = postgres.JSONValue[];

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
 * Runs `work` in a transaction as the caller, the way PostgREST and Realtime do: the JWT's role
 * and claims, and the request's x-forwarded-proto (for tls_only rules), are set
 * transaction-locally, so RLS, `auth.uid()` and `auth.jwt()` apply.
 */
export function asCaller<T>(
  claims: Claims,
  work: (tx: Tx) => Promise<T>,
  req?: Request,
): Promise<T> {
  const headers = { "x-forwarded-proto": req?.headers.get("x-forwarded-proto") ?? "https" };
  return db().begin(async (tx) => {
    // Not awaited before `work` starts: postgres.js pipelines the settings with the first query
    // of the work (they still run in order), saving a round trip.
    // The API roles' statement_timeout is a login setting, which `role` does not bring: set it.
    const settings = tx`select set_config('role', ${claims.role}, true),
                    set_config('request.jwt.claims', ${JSON.stringify(claims)}, true),
                    set_config('request.headers', ${JSON.stringify(headers)}, true),
                    set_config('statement_timeout', '8s', true)`.execute();
    const [, result] = await Promise.all([settings, work(tx)]);
    return result;
  }) as Promise<T>;
}

/**
 * A client error raised in SQL (private.raise_client_error: SQLSTATE 'WS' + HTTP status, the
 * contract's code as message, a sentence as detail), as an HttpError; undefined otherwise.
 */
export function clientErrorFromSql(error: unknown): HttpError | undefined {
  const { code, message, detail, hint } = error as {
    code?: unknown;
    message?: string;
    detail?: string;
    hint?: string;
  };
  const match = typeof code === "string" ? /^WS(\d{3})$/.exec(code) : null;
  if (!match || !message || !isErrorCode(message)) return undefined;
  // A 429 carries the seconds to wait in its hint.
  const headers: Record<string, string> = message === "rate_limited" && hint
    ? { "Retry-After": hint }
    : {};
  return new HttpError(Number(match[1]), message, detail ?? message, undefined, headers);
}

// The database is down, restarting, full, overloaded or gave up on a query (timeout, deadlock,
// lock wait), as postgres.js and Postgres report it: 503 `unavailable`, worth a retry, not a 500.
const unreachableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
  "57014", // query_canceled (statement_timeout)
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "55P03", // lock_not_available
]);

export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = String((error as { code?: unknown }).code ?? "");
  return unreachableCodes.has(code) || code.startsWith("08") || code.startsWith("53") ||
    error.name === "ConnectionRefused" || error.message.includes("Connection refused");
}

export function databaseUnavailable(): HttpError {
  return new HttpError(
    503,
    "unavailable",
    "The database cannot be reached; try again shortly.",
    undefined,
    {
      "Retry-After": "5",
    },
  );
}
