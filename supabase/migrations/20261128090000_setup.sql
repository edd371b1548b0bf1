/**
 * ----
 * Setup: schemas, default privileges, pg_cron, and what every endpoint shares
 * ----
 * The later migrations build on this file only through what it defines: two schemas, the
 * privileges new functions get, Supabase Cron, the way SQL reports a client's error, and the
 * clock clients see.
 */

/**
 * ----
 * Default privileges
 * ----
 * Hosted Supabase grants EXECUTE on every new function to PUBLIC and to the API roles. We want
 * the opposite: a function is callable by a client only when its migration grants it, so a
 * helper added later is never exposed by accident.
 */
alter default privileges revoke execute on functions from public;
alter default privileges in schema public revoke execute on functions from anon, authenticated;

/**
 * ----
 * Schemas
 * ----
 * Internal helpers (rules, security-definer checks, batching) live in `private`, which PostgREST
 * does not expose (config.toml [api] schemas). Only the roles that run policies may use it.
 */
create schema if not exists private;
revoke all on schema private from public;
grant usage on schema private to authenticated, service_role;

/**
 * The Edge Functions' SQL entry points (chat-send, playback, presence, room-context, history,
 * publish) live in `edge`: in `public` with EXECUTE for `authenticated` they would also be
 * reachable at /rest/v1/rpc/…, where a chat message would skip the function's flush. PostgREST
 * does not expose `edge` and no API role may use it: the functions connect as `postgres` and take
 * the caller's role and claims inside the one statement that runs the entry point
 * (supabase/functions/_shared/db.ts), so the EXECUTE check is made for `postgres` and RLS and
 * auth.uid() for the caller.
 */
create schema edge;
comment on schema edge is
  'SQL entry points of the Edge Functions. Not exposed by the Data API; no API role may use it.';
revoke all on schema edge from public;

/**
 * ----
 * Supabase Cron (pg_cron), as the Supabase docs enable it: the sweepers and purges of the later
 * files are its jobs.
 * ----
 */
create extension if not exists pg_cron with schema pg_catalog;
grant usage on schema cron to postgres;
grant all privileges on all tables in schema cron to postgres;

/**
 * ----
 * What every endpoint shares
 * ----
 */

/**
 * Raises a client error: SQLSTATE 'WS' + HTTP status (e.g. WS400, WS403), the contract's error
 * code as the message and a sentence as the detail. The functions answer it as
 * `{"error": {code, message}}` with that status.
 */
create function private.raise_client_error(status int, code text, message text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'WS' || status, message = code, detail = message;
end;
$$;

/**
 * A time as clients see it, in epoch milliseconds. Plain SQL without SET clauses, like the JSON
 * shapes built on it, so the planner inlines it into queries that build JSON for many rows.
 */
create function private.epoch_ms(at timestamptz)
returns bigint
language sql
immutable
as $$
  select floor(extract(epoch from at) * 1000)::bigint
$$;

grant execute on function private.raise_client_error(int, text, text), private.epoch_ms(timestamptz)
  to authenticated, service_role;
