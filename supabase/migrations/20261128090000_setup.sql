/**
 * ----
 * Setup: schemas and default privileges
 * ----
 * Hosted Supabase grants EXECUTE on every new function to PUBLIC and to the API roles. We want
 * the opposite: a function is callable by a client only when its migration grants it, so a
 * helper added later is never exposed by accident.
 */
alter default privileges revoke execute on functions from public;
alter default privileges in schema public revoke execute on functions from anon, authenticated;

/**
 * Internal helpers (rules, security-definer checks, batching) live in `private`, which PostgREST
 * does not expose (config.toml [api] schemas). Only the roles that run policies may use it.
 */
create schema if not exists private;
revoke all on schema private from public;
grant usage on schema private to authenticated, service_role;
