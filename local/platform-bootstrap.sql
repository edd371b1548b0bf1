-- =============================================================================
-- local/platform-bootstrap.sql
--
-- What hosted Supabase has and a vanilla PostgreSQL 15 cluster lacks, so that
-- supabase/migrations/* and supabase/tests/database/* run unchanged against
-- the Docker-free local stack.
--
-- Run as the superuser `postgres` on database `postgres` at every start:
--   psql -v ON_ERROR_STOP=1 -U postgres -d postgres -f local/platform-bootstrap.sql
--
-- It MUST stay idempotent: every statement either checks for existence first,
-- uses IF NOT EXISTS / CREATE OR REPLACE, or is a grant/setting that is a no-op
-- when already in place. A second run changes nothing meaningful.
--
-- Sources of truth: shared/reference/supabase-conventions.md §2-3 (roles,
-- auth.*) and shared/reference/realtime.md §1-2 (realtime schema). Names match
-- hosted exactly; ownership differs only where a hosted-only admin role
-- (supabase_admin, supabase_auth_admin) would be needed (see notes inline).
--
-- This file is local-only. Never ship it as a migration: on hosted Supabase
-- every object below already exists and is owned by platform roles.
-- =============================================================================

\set ON_ERROR_STOP on
set client_min_messages = warning;


-- =============================================================================
-- 1. Roles
--
-- Hosted today: anon, authenticated and service_role started as NOINHERIT and
-- were switched to INHERIT by supabase/postgres 20230529180330. authenticator
-- is the LOGIN role PostgREST uses; it stays NOINHERIT and only SET ROLEs.
-- Attributes are re-asserted with ALTER on every run so a drifted local role
-- is pulled back to the hosted shape.
-- =============================================================================

do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
  -- Owner of the realtime objects (Realtime migration 20240401105812).
  if not exists (select from pg_roles where rolname = 'supabase_realtime_admin') then
    create role supabase_realtime_admin nologin noinherit;
  end if;
end
$$;

alter role anon                    nologin inherit;
alter role authenticated           nologin inherit;
alter role service_role            nologin inherit bypassrls;
alter role authenticator           login   noinherit;
alter role supabase_realtime_admin nologin noinherit;

-- Memberships: authenticator may become any API role (PostgREST, Realtime
-- authorization); postgres is a member too so tests can `set local role ...`.
-- Checked first so reruns stay silent instead of emitting "already a member".
do $$
declare
  m record;
begin
  for m in
    select r.role_name, g.member_name
    from unnest(array['anon', 'authenticated', 'service_role']) as r(role_name)
    cross join unnest(array['authenticator', 'postgres']) as g(member_name)
  loop
    -- pg_auth_members, not pg_has_role(): the latter is always true for a
    -- superuser, which would skip the explicit grant to postgres.
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


-- =============================================================================
-- 2. Schema `extensions` (+ pgTAP)
--
-- Hosted installs extensions into `extensions`, not `public`, and puts that
-- schema on the search_path of postgres and the API roles. pg_prove connects
-- as postgres, so this is what makes plan()/ok()/... resolve unqualified.
-- =============================================================================

create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;

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
-- Hosted: owned by supabase_auth_admin. Locally the superuser owns it; nothing
-- in the project should depend on who owns auth objects.
-- =============================================================================

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

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


-- =============================================================================
-- 5. Schema `realtime` (what the Realtime server's tenant migrations create
--    when it first connects; realtime.md §1)
--
-- Only the broadcast-from-database surface: realtime.messages, topic(),
-- send(). Postgres Changes objects (subscription, apply_rls, ...) are not
-- recreated.
-- =============================================================================

create schema if not exists realtime;
grant usage on schema realtime to postgres, anon, authenticated, service_role;

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


-- realtime.create_local_partitions(): LOCAL-ONLY stand-in.
--
-- On hosted, the Realtime server itself creates the daily partitions
-- realtime.messages_YYYY_MM_DD for yesterday .. today+3 (UTC) every time it
-- connects to the project database, owned by supabase_realtime_admin. With no
-- Realtime server attached to this cluster nobody would, and every insert
-- (including realtime.send) would fail with 23514 "no partition found".
-- This function does the same job; the bootstrap calls it on every start.
-- It is not part of hosted Supabase, so it is owned by the superuser and the
-- API roles cannot execute it. Migrations and app code must not call it.
create or replace function realtime.create_local_partitions()
returns void
language plpgsql
set search_path = ''
as $$
declare
  -- Realtime works in UTC dates; don't depend on the session TimeZone.
  today date := (now() at time zone 'utc')::date;
  day   date;
  part  text;
begin
  for offset_days in -1 .. 3 loop
    day  := today + offset_days;
    part := 'messages_' || to_char(day, 'YYYY_MM_DD');
    if to_regclass(format('realtime.%I', part)) is null then
      execute format(
        'create table realtime.%I partition of realtime.messages for values from (%L) to (%L)',
        part, day::timestamp, (day + 1)::timestamp
      );
      execute format('alter table realtime.%I owner to supabase_realtime_admin', part);
    end if;
  end loop;
end;
$$;
comment on function realtime.create_local_partitions() is
  'LOCAL ONLY (platform-bootstrap.sql): creates the daily realtime.messages partitions that the Realtime server creates on connect on hosted Supabase.';
revoke all on function realtime.create_local_partitions() from public;

-- perform (not select) keeps the psql output free of a dummy result row.
do $$ begin perform realtime.create_local_partitions(); end $$;
