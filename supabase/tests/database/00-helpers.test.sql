-- Test helpers, installed once (committed, not rolled back) before the other files run, in a
-- `tests` schema of their own: create users, act as them with the claims Supabase Auth issues,
-- and probe realtime.messages exactly the way Supabase Realtime authorizes a channel
-- (shared/reference/realtime.md §2).
select plan(2);

create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

/** A user in auth.users, found again by its identifier. */
create or replace function tests.create_user(identifier text, is_anonymous boolean default false)
returns uuid
language sql
as $$
  insert into auth.users (id, email, raw_user_meta_data, raw_app_meta_data, role, aud, is_anonymous)
  values (
    gen_random_uuid(),
    case when create_user.is_anonymous then null else identifier || '@tests.whatssound.test' end,
    jsonb_build_object('test_identifier', identifier),
    '{}'::jsonb,
    'authenticated',
    'authenticated',
    create_user.is_anonymous
  )
  returning id
$$;

-- Security definer (like claims below) so they work while acting as an API role, which cannot
-- read auth.users.
create or replace function tests.uid(identifier text)
returns uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  found uuid;
begin
  select u.id into found from auth.users u where u.raw_user_meta_data ->> 'test_identifier' = identifier;
  if found is null then
    raise exception 'No test user %', identifier;
  end if;
  return found;
end;
$$;

/** The claims of a user's access token, shaped as Supabase Auth issues them. */
create or replace function tests.claims(identifier text)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'sub', u.id,
    'role', 'authenticated',
    'aud', 'authenticated',
    'email', coalesce(u.email, ''),
    'is_anonymous', u.is_anonymous,
    'exp', extract(epoch from now() + interval '1 hour')::bigint
  )
  from auth.users u where u.id = tests.uid(identifier)
$$;

/** Acts as `role` with `claims` for the rest of the transaction, as PostgREST does. */
create or replace function tests.act_as(role text, claims jsonb)
returns void
language sql
as $$
  select set_config('request.jwt.claims', coalesce(claims::text, ''), true),
         set_config('role', role, true)
$$;

create or replace function tests.authenticate_as(identifier text)
returns void
language sql
as $$
  select tests.act_as('authenticated', tests.claims(identifier))
$$;

/** Back to the connecting role (postgres), without claims. */
create or replace function tests.clear_authentication()
returns void
language sql
as $$
  select set_config('role', 'postgres', true), set_config('request.jwt.claims', '', true)
$$;

/** Realtime's per-transaction settings (set_conn_config). */
create or replace function tests.set_realtime_context(topic text, role text, claims jsonb)
returns void
language sql
as $$
  select set_config('role', role, true),
         set_config('realtime.topic', coalesce(topic, ''), true),
         set_config('request.jwt.claims', coalesce(claims::text, ''), true),
         set_config('request.jwt.claim.sub', coalesce(claims ->> 'sub', ''), true),
         set_config('request.jwt.claim.role', role, true),
         set_config('request.headers', '{}', true)
$$;

/**
 * Realtime's read check at channel join: probe rows (one per extension) inserted as Realtime's
 * own database user, then the caller's role, claims and topic set locally, then a SELECT of the
 * probes. The join is allowed when any probe is visible. Realtime rolls its transaction back;
 * here a subtransaction does (nobody may DELETE from realtime.messages, postgres included), and
 * takes the role and settings back with it.
 */
create or replace function tests.realtime_can_read(topic text, role text, claims jsonb)
returns boolean
language plpgsql
as $$
declare
  probes uuid[] := array[gen_random_uuid(), gen_random_uuid()];
  utc_now timestamp := now() at time zone 'utc';
  visible int;
begin
  begin
    insert into realtime.messages (id, topic, extension, inserted_at, updated_at)
    values (probes[1], coalesce(realtime_can_read.topic, ''), 'broadcast', utc_now, utc_now),
           (probes[2], coalesce(realtime_can_read.topic, ''), 'presence', utc_now, utc_now);
    perform tests.set_realtime_context(realtime_can_read.topic, realtime_can_read.role, claims);
    select count(*) into visible from realtime.messages m where m.id = any (probes);
    raise exception using errcode = 'TPRBK';
  exception when sqlstate 'TPRBK' then
    null;
  end;
  return visible > 0;
end;
$$;

/**
 * Realtime's write check, at the first broadcast (extension 'broadcast') or presence track
 * (extension 'presence'): an INSERT as the caller; an RLS refusal (42501) means no.
 */
create or replace function tests.realtime_can_write(topic text, extension text, role text, claims jsonb)
returns boolean
language plpgsql
as $$
declare
  utc_now timestamp := now() at time zone 'utc';
  allowed boolean;
begin
  begin
    perform tests.set_realtime_context(realtime_can_write.topic, realtime_can_write.role, claims);
    begin
      insert into realtime.messages (topic, extension, inserted_at, updated_at)
      values (realtime_can_write.topic, realtime_can_write.extension, utc_now, utc_now);
      allowed := true;
    exception when insufficient_privilege then
      allowed := false;
    end;
    -- Nothing written stays, as in read's probe.
    raise exception using errcode = 'TPRBK';
  exception when sqlstate 'TPRBK' then
    null;
  end;
  return allowed;
end;
$$;

/**
 * The Edge Functions call edge.* as postgres and take the caller's role inside that statement
 * (supabase/functions/_shared/db.ts), so the API roles have no rights on `edge`. A test acts as
 * the role first and calls after: it grants them what that needs, for its own transaction only
 * (every test file rolls back). 09-data-api-boundary checks the real grants without this.
 */
create or replace function tests.allow_edge_calls()
returns void
language sql
as $$
  grant usage on schema edge to anon, authenticated, service_role;
  grant execute on all functions in schema edge to anon, authenticated, service_role;
$$;

/**
 * What a test keeps by name to check later: what an entry point answered while the test acted as
 * a user (checked afterwards as postgres, or by another user), ids it made along the way, history
 * pages it continues from. A table of the tests schema, so each file's rows go with its rollback;
 * the API roles write it too, because tests keep answers while acting as them.
 */
create table if not exists tests.kept_values (name text primary key, value jsonb);
grant select, insert on tests.kept_values to anon, authenticated, service_role;

/** Keeps `value` (any type, as JSON) under `name`. */
create or replace function tests.keep(name text, value anyelement)
returns void
language sql
as $$
  insert into tests.kept_values (name, value) values (keep.name, to_jsonb(keep.value))
$$;

/** What was kept under `name`, as JSON (null when nothing was). */
create or replace function tests.kept(name text)
returns jsonb
language sql
stable
as $$
  select k.value from tests.kept_values k where k.name = kept.name
$$;

/** A uuid kept under `name`. */
create or replace function tests.kept_id(name text)
returns uuid
language sql
stable
as $$
  select (tests.kept(name) #>> '{}')::uuid
$$;

/** The value at `path` in each item of a JSON array, in order, as text: the client_ids of a
 * page, the user_ids of a member list. */
create or replace function tests.field_of_each(items jsonb, variadic path text[])
returns text[]
language sql
immutable
as $$
  select coalesce(array_agg(i.item #>> path order by i.position), '{}')
  from jsonb_array_elements(items) with ordinality as i (item, position)
$$;

/**
 * How a statement failed — {code: its SQLSTATE, message, hint} — or null when it did not. Like
 * throws_ok it runs the statement in a subtransaction, so what the statement wrote is rolled back
 * the way a failed request's transaction is.
 */
create or replace function tests.failure(statement text)
returns jsonb
language plpgsql
as $$
declare
  state text;
  error_message text;
  error_hint text;
begin
  execute statement;
  return null;
exception when others then
  get stacked diagnostics state = returned_sqlstate, error_message = message_text, error_hint = pg_exception_hint;
  return jsonb_build_object('code', state, 'message', error_message, 'hint', error_hint);
end;
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;

-- The probe helpers must tell an allowed join from a refused one, or every matrix built on
-- them proves nothing: service_role bypasses RLS, the anon role has no policy at all.
select is(tests.realtime_can_read('helpers-check:probe', 'service_role', '{"role": "service_role"}'), true,
  'the read probe sees its probe rows as a role that bypasses RLS');
select is(tests.realtime_can_read('helpers-check:probe', 'anon', '{"role": "anon"}'), false,
  'the read probe sees nothing as a role without a policy');
