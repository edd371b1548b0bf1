-- =============================================================================
-- 11-hosted-roles: the migrations run, and the project works, with the privileges hosted
-- Supabase gives them (reference/hosted-fidelity.md).
--
-- On hosted, `postgres` is no superuser and `supabase db push` runs every migration as it. A
-- migration that only a superuser may run (altering a realtime or auth table, writing
-- cron.job, creating an event trigger) passes against a cluster where postgres is a superuser
-- and fails on the real project. These checks fail when the migrations or the tests ran as a
-- superuser, and when what the functions do as postgres stops producing its rows (realtime.send
-- turns a refused insert into a WARNING, not an error).
--
-- Notes:
--  * pg_prove connects as postgres, as `supabase test db` does; every test file runs as it.
--  * The refusals are hosted's; each is checked in a savepoint so the next one still runs.
-- =============================================================================
begin;
select plan(24);


-- -----------------------------------------------------------------------------
-- postgres as hosted makes it
-- -----------------------------------------------------------------------------

select is(current_user::text, 'postgres', 'the tests run as postgres');
select is(
  (select row(rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolreplication, rolbypassrls)::text
   from pg_roles where rolname = 'postgres'),
  '(f,t,t,t,t,t)',
  'postgres is NOSUPERUSER CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS');
select is(
  (select array_agg(rolname::text order by rolname) from pg_roles where rolsuper),
  array['supabase_admin'],
  'supabase_admin is the only superuser');
select is(
  (select pg_get_userbyid(datdba)::text from pg_database where datname = current_database()),
  'postgres',
  'postgres owns the database');
select ok(
  pg_has_role('postgres', 'anon', 'member') and pg_has_role('postgres', 'authenticated', 'member')
    and pg_has_role('postgres', 'service_role', 'member')
    and pg_has_role('postgres', 'pg_read_all_data', 'member')
    and pg_has_role('postgres', 'pg_signal_backend', 'member'),
  'postgres is a member of the API roles, pg_read_all_data and pg_signal_backend');
select ok(
  not pg_has_role('postgres', 'supabase_auth_admin', 'member')
    and not pg_has_role('postgres', 'supabase_realtime_admin', 'member')
    and not pg_has_role('postgres', 'supabase_admin', 'member'),
  'postgres is not a member of the platform''s admin roles');


-- -----------------------------------------------------------------------------
-- The migrations ran as postgres (as `supabase db push` runs them on hosted)
-- -----------------------------------------------------------------------------

select is_empty(
  $$ select format('%s %s owned by %s', kind, name, owner) from (
       select 'relation' as kind, c.oid::regclass::text as name, pg_get_userbyid(c.relowner) as owner
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname in ('public', 'private', 'edge')
       union all
       select 'function', p.oid::regprocedure::text, pg_get_userbyid(p.proowner)
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname in ('public', 'private', 'edge')
       union all
       select 'schema', n.nspname::text, pg_get_userbyid(n.nspowner)
       from pg_namespace n where n.nspname in ('private', 'edge', 'supabase_migrations')
     ) objects
     where owner <> 'postgres' $$,
  'every table, function and schema the migrations made belongs to postgres');
select is(
  (select pg_get_userbyid(c.relowner)::text from pg_class c
   where c.oid = 'supabase_migrations.schema_migrations'::regclass),
  'postgres',
  'the CLI recorded the migrations as postgres');
select is_empty(
  $$ select jobname from cron.job where username <> 'postgres' $$,
  'the migrations'' pg_cron jobs run as postgres');
select cmp_ok(
  (select count(*)::int from cron.job where username = 'postgres'), '>=', 4,
  'the migrations scheduled their pg_cron jobs');
select cmp_ok(
  (select count(*)::int from pg_policies where schemaname = 'realtime' and tablename = 'messages'),
  '>=', 3,
  'the migrations'' policies on realtime.messages are in place');


-- -----------------------------------------------------------------------------
-- What hosted refuses postgres
-- -----------------------------------------------------------------------------

select throws_ok(
  $$ alter table realtime.messages add column extra int $$, '42501', null,
  'postgres may not alter realtime.messages');
select throws_ok(
  $$ create index on realtime.messages (topic) $$, '42501', null,
  'postgres may not index realtime.messages');
select throws_ok(
  $$ delete from realtime.messages where false $$, '42501', null,
  'nobody may delete from realtime.messages');
select throws_ok(
  $$ create table auth.extra (id int) $$, '42501', null,
  'postgres may not create objects in the auth schema');
select throws_ok(
  $$ alter table auth.users add column extra int $$, '42501', null,
  'postgres may not alter auth.users');
select throws_ok(
  $$ update cron.job set active = false where false $$, '42501', null,
  'postgres may not write cron.job directly');
select throws_ok(
  $$ create event trigger hosted_roles_check on ddl_command_end execute function pg_catalog.now() $$,
  '42501', null,
  'postgres may not create event triggers');
select throws_ok(
  $$ alter role anon bypassrls $$, '42501', null,
  'postgres may not give a role BYPASSRLS');

-- Policies on realtime.messages are what hosted does allow (supautils' policy grants).
select lives_ok(
  $$ create policy "hosted roles check" on realtime.messages for select to authenticated
       using (false) $$,
  'postgres may create a policy on realtime.messages');
select ok(
  not pg_has_role('postgres', 'supabase_realtime_admin', 'member'),
  'and is no member of supabase_realtime_admin afterwards');


-- -----------------------------------------------------------------------------
-- What the functions do as postgres produces its rows
-- -----------------------------------------------------------------------------

select tests.create_user('hosted-roles-host');
insert into public.rooms (id, name, host_id) values
  ('11a00000-0000-4000-8000-000000000001', 'Hosted roles room', tests.uid('hosted-roles-host'));

-- The statement supabase/functions/_shared/db.ts sends: the caller's role and claims taken in a
-- materialized CTE, then the entry point (no grant on `edge` for the API roles is needed).
select is(
  (with caller as materialized (
     select set_config('role', 'authenticated', true),
            set_config('request.jwt.claims', tests.claims('hosted-roles-host')::text, true),
            set_config('request.headers', '{"x-forwarded-proto": "https"}', true)
   )
   select jsonb_array_length(edge.publish(jsonb_build_array(jsonb_build_object(
     'channel', 'room:11a00000-0000-4000-8000-000000000001:queue',
     'event', 'queue:hosted-roles',
     'payload', jsonb_build_object('songs', '[]'::jsonb)))) -> 'published')
   from caller),
  1,
  'a host publishes on the queue through the functions'' statement');
select tests.clear_authentication();
select is(
  (select count(*)::int from realtime.messages
   where topic = 'room:11a00000-0000-4000-8000-000000000001:queue'
     and event = 'queue:hosted-roles' and private),
  1,
  'the publish wrote its broadcast row (realtime.send as postgres did not fail silently)');
select ok(
  to_regclass(format('realtime.messages_%s', to_char(now() at time zone 'utc', 'YYYY_MM_DD'))) is not null
    and to_regclass(format('realtime.messages_%s',
      to_char(now() at time zone 'utc' + interval '3 days', 'YYYY_MM_DD'))) is not null,
  'the partitions of today to today + 3 exist (Realtime''s janitor made them)');

select * from finish();
rollback;
