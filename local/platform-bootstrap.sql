-- =============================================================================
-- local/platform-bootstrap.sql
--
-- What hosted Supabase has and a vanilla PostgreSQL 15 cluster lacks, so that
-- supabase/migrations/* and supabase/tests/database/* run unchanged against
-- the Docker-free local stack, with the privileges they would have there.
--
-- Run as the superuser `supabase_admin` (the cluster's bootstrap user, as on
-- hosted) on database `postgres` at every start:
--   psql -v ON_ERROR_STOP=1 -U supabase_admin -d postgres -f local/platform-bootstrap.sql
--
-- It MUST stay idempotent: every statement either checks for existence first,
-- uses IF NOT EXISTS / CREATE OR REPLACE, or is a grant/setting that is a no-op
-- when already in place. A second run changes nothing meaningful.
--
-- Sources of truth: shared/reference/hosted-fidelity.md (roles, owners,
-- grants, pg_cron, how `db push` connects), supabase-conventions.md §2-3
-- (auth.*) and realtime.md §1-2 (realtime schema). Names, attributes, owners
-- and grants match hosted; where a hosted mechanism (supautils) cannot be
-- reproduced in plain SQL, a narrow stand-in says so inline (section 7).
--
-- This file is local-only. Never ship it as a migration: on hosted Supabase
-- every object below already exists and is owned by platform roles.
-- =============================================================================

\set ON_ERROR_STOP on
set client_min_messages = warning;


-- =============================================================================
-- 1. Roles
--
-- `supabase_admin` is the only superuser (it is the cluster's bootstrap user).
-- `postgres` is what hosted demotes it to (10000000000000_demote-postgres.sql):
-- NOSUPERUSER CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS, owner of the
-- database, member of the API roles, pg_read_all_data, pg_signal_backend and
-- supabase_superuser, and NOT of the platform admins (auth, realtime).
-- anon, authenticated and service_role started as NOINHERIT and were switched
-- to INHERIT by supabase/postgres 20230529180330. authenticator is the LOGIN
-- role PostgREST uses; it stays NOINHERIT and only SET ROLEs.
-- Attributes are re-asserted with ALTER on every run so a drifted local role
-- is pulled back to the hosted shape. Local passwords are all `postgres`.
-- =============================================================================

do $$
declare
  r record;
begin
  for r in
    select * from (values
      ('postgres',                'login'),
      ('anon',                    'nologin'),
      ('authenticated',           'nologin'),
      ('service_role',            'nologin'),
      ('authenticator',           'login    noinherit'),
      ('supabase_superuser',      'nologin'),
      ('supabase_auth_admin',     'login    noinherit'),
      ('supabase_realtime_admin', 'login    noinherit')
    ) as roles(name, attributes)
  loop
    if not exists (select from pg_roles where rolname = r.name) then
      execute format('create role %I %s', r.name, r.attributes);
    end if;
  end loop;
end
$$;

alter role postgres  login inherit nosuperuser createdb createrole replication bypassrls
  password 'postgres';
alter role anon                    nologin inherit;
alter role authenticated           nologin inherit;
alter role service_role            nologin inherit bypassrls;
alter role authenticator           login   noinherit password 'postgres';
alter role supabase_superuser      nologin;
alter role supabase_auth_admin     login   noinherit createrole noreplication password 'postgres';
alter role supabase_realtime_admin login   noinherit createrole replication;

alter database postgres owner to postgres;

-- Memberships. Checked first so reruns stay silent instead of emitting
-- "already a member".
do $$
declare
  m record;
begin
  for m in
    select * from (values
      ('anon', 'authenticator'), ('authenticated', 'authenticator'), ('service_role', 'authenticator'),
      ('anon', 'postgres'), ('authenticated', 'postgres'), ('service_role', 'postgres'),
      ('pg_read_all_data', 'postgres'), ('pg_signal_backend', 'postgres'),
      ('supabase_superuser', 'postgres'),
      ('anon', 'supabase_realtime_admin'), ('authenticated', 'supabase_realtime_admin'),
      ('service_role', 'supabase_realtime_admin')
    ) as memberships(role_name, member_name)
  loop
    if not exists (select from pg_auth_members am
                   where am.roleid = m.role_name::regrole
                     and am.member = m.member_name::regrole) then
      execute format('grant %I to %I', m.role_name, m.member_name);
    end if;
  end loop;
end
$$;

-- Per-role timeouts as hosted sets them (supabase/postgres init + migrations).
alter role anon          set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';
alter role supabase_auth_admin set search_path = auth;


-- =============================================================================
-- 2. Schema `extensions` (+ pgTAP)
--
-- Hosted installs extensions into `extensions`, not `public`, and puts that
-- schema on the search_path of postgres and the API roles. pg_prove connects
-- as postgres, so this is what makes plan()/ok()/... resolve unqualified.
-- The schema and its extensions belong to supabase_admin, as on hosted.
-- supabase_auth_admin's USAGE is local only: the Auth stand-in hashes
-- passwords with pgcrypto (GoTrue does it in Go).
-- =============================================================================

create schema if not exists extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
grant usage on schema extensions to supabase_auth_admin;

create extension if not exists pgtap       with schema extensions;
-- Enabled by default on hosted projects; cheap to mirror.
create extension if not exists pgcrypto    with schema extensions;
create extension if not exists "uuid-ossp" with schema extensions;

-- Takes effect for new sessions (pg_prove opens its own connection).
alter role postgres      set search_path = "$user", public, extensions;
alter role anon          set search_path = "$user", public, extensions;
alter role authenticated set search_path = "$user", public, extensions;
alter role service_role  set search_path = "$user", public, extensions;


-- =============================================================================
-- 3. Schema `public`
--
-- Hosted grants USAGE to the API roles and, through default privileges, ALL
-- on every new table/function/sequence that postgres creates. That is why
-- every migration must `revoke` explicitly and grant back only what is needed;
-- mirroring it here keeps local tests honest about that.
-- =============================================================================

grant usage on schema public to anon, authenticated, service_role;

alter default privileges for role postgres in schema public
  grant all on tables    to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to anon, authenticated, service_role;


-- =============================================================================
-- 4. Schema `auth` (the subset GoTrue creates that migrations/policies use)
--
-- As on hosted: the schema belongs to supabase_admin, its tables, types and
-- functions to supabase_auth_admin (GoTrue creates them, and the local Auth
-- stand-in connects as it); postgres has ALL on the tables but may not create
-- anything in the schema. Ownership is handed over at the end of the section.
-- =============================================================================

create schema if not exists auth;
grant usage on schema auth to postgres, anon, authenticated, service_role;
grant usage, create on schema auth to supabase_auth_admin;

-- auth.users: the columns application code and tests touch, with hosted
-- types/defaults. GoTrue adds many more (tokens, confirmation fields, ...);
-- add them here only when something needs them.
create table if not exists auth.users (
  instance_id          uuid,
  id                   uuid        not null primary key,
  aud                  varchar(255),
  role                 varchar(255),
  email                varchar(255),
  encrypted_password   varchar(255),
  email_confirmed_at   timestamptz,
  last_sign_in_at      timestamptz,
  raw_app_meta_data    jsonb,
  raw_user_meta_data   jsonb,
  created_at           timestamptz default now(),
  updated_at           timestamptz default now(),
  phone                text        default null,
  phone_confirmed_at   timestamptz,
  is_sso_user          boolean     not null default false,
  deleted_at           timestamptz,
  is_anonymous         boolean     not null default false
);

-- Same uniqueness as hosted, so seed/test data that would collide there
-- collides here too.
do $$
begin
  if not exists (select from pg_constraint
                 where conrelid = 'auth.users'::regclass and conname = 'users_phone_key') then
    alter table auth.users add constraint users_phone_key unique (phone);
  end if;
end
$$;
create unique index if not exists users_email_partial_key
  on auth.users (email) where (is_sso_user = false);
create index if not exists users_is_anonymous_idx
  on auth.users (is_anonymous);

-- Hosted enables RLS on every auth table and grants nothing on auth.users to
-- anon/authenticated: reading it as an API role fails with 42501.
alter table auth.users enable row level security;
revoke all on table auth.users from anon, authenticated;

-- auth.uid()/role()/email()/jwt() as GoTrue's own migrations define them
-- (20220224000811, 20220531120530): each reads the legacy per-claim GUC first
-- and falls back to the JSON claims that PostgREST/Realtime set in
-- `request.jwt.claims`. EXECUTE stays with PUBLIC, as on hosted.
create or replace function auth.uid()
returns uuid
language sql
stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;
comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';

create or replace function auth.role()
returns text
language sql
stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;
comment on function auth.role() is 'Deprecated. Use auth.jwt() -> ''role'' instead.';

create or replace function auth.email()
returns text
language sql
stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;
comment on function auth.email() is 'Deprecated. Use auth.jwt() -> ''email'' instead.';

create or replace function auth.jwt()
returns jsonb
language sql
stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

-- Sessions and refresh tokens, as GoTrue's migrations shape them (00_init_auth_schema,
-- 20210927181326, 20220811173540, 20221003041400, 20221114143122, 20231027141322), for the
-- local Auth stand-in (local/auth/): one row per signed-in session, one per refresh token of
-- it (`parent` = the token it was exchanged for), and how the session was authenticated (the
-- `amr` claim). Deleting a user or a session deletes what hangs off it. Only the columns the
-- stand-in uses; hosted has a few more.
do $$
begin
  if not exists (select from pg_type
                 where typname = 'aal_level' and typnamespace = 'auth'::regnamespace) then
    create type auth.aal_level as enum ('aal1', 'aal2', 'aal3');
  end if;
end
$$;

create table if not exists auth.sessions (
  id           uuid        not null primary key,
  user_id      uuid        not null references auth.users (id) on delete cascade,
  created_at   timestamptz,
  updated_at   timestamptz,
  aal          auth.aal_level,
  not_after    timestamptz,
  refreshed_at timestamp,
  user_agent   text,
  ip           inet
);
create index if not exists sessions_user_id_idx on auth.sessions (user_id);

create table if not exists auth.refresh_tokens (
  instance_id uuid,
  id          bigserial    not null primary key,
  token       varchar(255) constraint refresh_tokens_token_unique unique,
  user_id     varchar(255),
  revoked     boolean,
  created_at  timestamptz,
  updated_at  timestamptz,
  parent      varchar(255),
  session_id  uuid         references auth.sessions (id) on delete cascade
);
create index if not exists refresh_tokens_parent_idx on auth.refresh_tokens (parent);
create index if not exists refresh_tokens_session_id_revoked_idx
  on auth.refresh_tokens (session_id, revoked);

create table if not exists auth.mfa_amr_claims (
  session_id            uuid        not null references auth.sessions (id) on delete cascade,
  created_at            timestamptz not null,
  updated_at            timestamptz not null,
  authentication_method text        not null,
  id                    uuid        not null primary key,
  constraint mfa_amr_claims_session_id_authentication_method_pkey
    unique (session_id, authentication_method)
);

alter table auth.sessions       enable row level security;
alter table auth.refresh_tokens enable row level security;
alter table auth.mfa_amr_claims enable row level security;
revoke all on table auth.sessions, auth.refresh_tokens, auth.mfa_amr_claims
  from anon, authenticated;

-- Owners and postgres's rights, as on hosted.
alter table auth.users          owner to supabase_auth_admin;
alter table auth.sessions       owner to supabase_auth_admin;
alter table auth.refresh_tokens owner to supabase_auth_admin;
alter table auth.mfa_amr_claims owner to supabase_auth_admin;
alter type auth.aal_level       owner to supabase_auth_admin;
alter function auth.uid()       owner to supabase_auth_admin;
alter function auth.role()      owner to supabase_auth_admin;
alter function auth.email()     owner to supabase_auth_admin;
alter function auth.jwt()       owner to supabase_auth_admin;
grant all on table auth.users, auth.sessions, auth.refresh_tokens, auth.mfa_amr_claims
  to postgres;
grant all on sequence auth.refresh_tokens_id_seq to postgres;


-- =============================================================================
-- 5. Schema `realtime` (what the Realtime server's tenant migrations create
--    when it first connects; realtime.md §1)
--
-- Only the broadcast-from-database surface: realtime.messages, topic(),
-- send(). Postgres Changes objects (subscription, apply_rls, ...) are not
-- recreated.
-- =============================================================================

-- The schema belongs to supabase_admin; postgres may use it (with grant
-- option) but not create in it (Realtime 20260707120000).
create schema if not exists realtime;
grant usage on schema realtime to postgres with grant option;
grant usage on schema realtime to anon, authenticated, service_role, supabase_realtime_admin;

-- realtime.messages, final shape (§1.1). Column order matters for anything
-- that does `select *` or positional inserts, so it follows hosted exactly.
-- Timestamps are `timestamp` without time zone and hold UTC.
create table if not exists realtime.messages (
  topic          text      not null,
  extension      text      not null,
  payload        jsonb,
  event          text,
  private        boolean   default false,
  updated_at     timestamp not null default now(),
  inserted_at    timestamp not null default now(),
  id             uuid      not null default gen_random_uuid(),
  binary_payload bytea,
  primary key (id, inserted_at)
) partition by range (inserted_at);

-- Hosted adds this NOT VALID (Realtime 20260514120000); CREATE TABLE cannot,
-- so it is added separately, once.
do $$
begin
  if not exists (select from pg_constraint
                 where conrelid = 'realtime.messages'::regclass
                   and conname = 'messages_payload_exclusive') then
    alter table realtime.messages
      add constraint messages_payload_exclusive
      check (payload is null or binary_payload is null) not valid;
  end if;
end
$$;

-- Replay index (Realtime 20250905041441), hosted name.
create index if not exists messages_inserted_at_topic_index
  on realtime.messages (inserted_at desc, topic)
  where extension = 'broadcast' and private is true;

alter table realtime.messages owner to supabase_realtime_admin;

-- RLS on, and deliberately NO policies: deny-all for every role without
-- BYPASSRLS until project migrations add policies (§1.2).
alter table realtime.messages enable row level security;

-- No DELETE anywhere, as hosted. Grants go on the parent only: hosted never
-- grants the API roles anything on the daily partitions (which have no RLS
-- of their own), so neither do we.
grant select, insert, update on realtime.messages
  to postgres, anon, authenticated, service_role;


-- realtime.topic() (§1.3): the sub-topic of the channel being authorized, or
-- the topic realtime.send() is writing to; NULL when unset or empty.
create or replace function realtime.topic()
returns text
language sql
stable
as $$
  select nullif(current_setting('realtime.topic', true), '')::text
$$;
alter function realtime.topic() owner to supabase_realtime_admin;


-- realtime.send() (§1.4), current hosted behaviour:
--  * runs with the CALLER's rights (not security definer), so the caller's
--    INSERT policies on realtime.messages decide;
--  * stamps the row's uuid into payload.id unless the payload already has a
--    top-level `id`;
--  * SET LOCAL realtime.topic so policies using realtime.topic() see the
--    target topic (it persists for the rest of the transaction only if the
--    insert succeeded, because the inner block is a subtransaction);
--  * never raises: any error becomes a WARNING and the call returns.
create or replace function realtime.send(
  payload jsonb,
  event   text,
  topic   text,
  private boolean default true
)
returns void
language plpgsql
as $$
declare
  message_id uuid;
  message_payload jsonb;
begin
  begin
    message_id := gen_random_uuid();

    if payload ? 'id' then
      message_payload := payload;
    else
      -- Raises for arrays/scalars; NULL stays NULL.
      message_payload := jsonb_set(payload, '{id}', to_jsonb(message_id));
    end if;

    execute format('set local realtime.topic to %L', topic);

    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (message_id, message_payload, event, topic, private, 'broadcast');
  exception
    when others then
      raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
  end;
end;
$$;
alter function realtime.send(jsonb, text, text, boolean) owner to supabase_realtime_admin;

-- Hosted: EXECUTE on all realtime functions to the API roles (plus PUBLIC's
-- default, which no migration revokes).
grant execute on function realtime.topic()                            to postgres, anon, authenticated, service_role;
grant execute on function realtime.send(jsonb, text, text, boolean) to postgres, anon, authenticated, service_role;


-- The daily partitions of realtime.messages are not made here: as on hosted,
-- the Realtime server makes them when it connects and from its janitor
-- (local/realtime/janitor.ts in the local stand-in).


-- =============================================================================
-- 6. pg_cron (Supabase Cron)
--
-- Hosted: created by supabase_admin in pg_catalog (through supautils); postgres
-- gets USAGE on schema cron and ALL on its tables, functions and sequences,
-- each with grant option, except cron.job, where it keeps SELECT only:
-- `cron.schedule` works, writing cron.job directly does not. A migration's own
-- `create extension if not exists pg_cron` then finds it in place.
-- =============================================================================

create extension if not exists pg_cron with schema pg_catalog;
grant usage on schema cron to postgres with grant option;
grant all on all tables    in schema cron to postgres with grant option;
grant all on all functions in schema cron to postgres with grant option;
grant all on all sequences in schema cron to postgres with grant option;
revoke all on table cron.job from postgres;
grant select on table cron.job to postgres with grant option;


-- =============================================================================
-- 7. Stand-in for supautils' policy grants (local only)
--
-- Hosted lets postgres CREATE / ALTER / DROP POLICY on realtime.messages
-- although supabase_realtime_admin owns it: supautils (a C extension, not
-- available here) runs those commands with the owner's rights, and only
-- those. These event triggers do the same for a policy command issued by a
-- postgres session: supabase_realtime_admin is granted to postgres when the
-- command starts and revoked when it ends (a failed command rolls the grant
-- back with its transaction). Every other command on realtime objects — ALTER
-- TABLE, CREATE INDEX, CREATE TRIGGER — still fails as it does on hosted.
-- =============================================================================

create schema if not exists supautils_stand_in;
revoke all on schema supautils_stand_in from public;

create or replace function supautils_stand_in.policy_command_start()
returns event_trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if pg_has_role(session_user, 'postgres', 'member')
     and not (select rolsuper from pg_catalog.pg_roles where rolname = session_user) then
    grant supabase_realtime_admin to postgres;
  end if;
end;
$$;

create or replace function supautils_stand_in.policy_command_end()
returns event_trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if pg_has_role('postgres', 'supabase_realtime_admin', 'member') then
    revoke supabase_realtime_admin from postgres;
  end if;
end;
$$;

do $$
begin
  if not exists (select from pg_event_trigger where evtname = 'supautils_policy_command_start') then
    create event trigger supautils_policy_command_start on ddl_command_start
      when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
      execute function supautils_stand_in.policy_command_start();
  end if;
  if not exists (select from pg_event_trigger where evtname = 'supautils_policy_command_end') then
    create event trigger supautils_policy_command_end on ddl_command_end
      when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
      execute function supautils_stand_in.policy_command_end();
  end if;
end
$$;


-- =============================================================================
-- 8. The login role `supabase db push` uses
--
-- Against a hosted project the CLI logs in as a temporary cli_login_* role and
-- runs `SET SESSION ROLE postgres`, so migrations run as postgres without
-- postgres's own role settings (its search_path with `extensions` does not
-- apply). The local stack pushes as this role, whose login setting does the
-- same SET ROLE.
-- =============================================================================

do $$
begin
  if not exists (select from pg_roles where rolname = 'cli_login_postgres') then
    create role cli_login_postgres login noinherit;
  end if;
  if not exists (select from pg_auth_members
                 where roleid = 'postgres'::regrole and member = 'cli_login_postgres'::regrole) then
    grant postgres to cli_login_postgres;
  end if;
end
$$;
alter role cli_login_postgres login noinherit nosuperuser password 'postgres';
alter role cli_login_postgres set role = 'postgres';
