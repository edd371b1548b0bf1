// What a failed database call means for the client: an error the SQL raised on purpose (the
// client's mistake, with the contract's status and code), or a database that cannot answer now
// (503, worth a retry). Anything else is our bug.
import { HttpError, isErrorCode } from "./errors.ts";

/**
 * A client error raised in SQL (private.raise_client_error: SQLSTATE 'WS' + HTTP status, the
 * contract's code as message, a sentence as detail), or a write refused by a table's CHECK
 * constraint (the tables' own copy of the input rules), as an HttpError; undefined otherwise.
 */
export function clientErrorFromSql(error: unknown): HttpError | undefined {
  const { code, message, detail, hint, constraint_name } = error as {
    code?: unknown;
    message?: string;
    detail?: string;
    hint?: string;
    constraint_name?: string;
  };
  if (code === "23514") {
    return new HttpError(400, "invalid_request", "The request breaks a rule of the stored data.", {
      details: { constraint: constraint_name },
    });
  }
  const match = typeof code === "string" ? /^WS(\d{3})$/.exec(code) : null;
  if (!match || !message || !isErrorCode(message)) return undefined;
  // A 429 carries the seconds to wait in its hint.
  const headers: Record<string, string> = message === "rate_limited" && hint
    ? { "Retry-After": hint }
    : {};
  return new HttpError(Number(match[1]), message, detail ?? message, { headers });
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
  "EPIPE", // the server closed the socket as a query was written (shutting down)
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
  return new HttpError(503, "unavailable", "The database cannot be reached; try again shortly.", {
    headers: { "Retry-After": "5" },
  });
}
