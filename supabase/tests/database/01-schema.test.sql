-- =============================================================================
-- 01-schema: the structure the contract relies on (API.md §2, §3).
--
-- Tables and columns, the chat idempotency key and broadcast order, the indexes behind the app's
-- queries, RLS on every table, grants per API role and the channel check's function settings.
-- Behaviour is in 02-table-rls and 03-channel-rules; the Data API's reach in 09-data-api-boundary.
--
-- Notes:
--  * Privileges are checked with has_table_privilege / has_any_column_privilege, which count
--    grants to PUBLIC and inherited grants as well as direct ones.
--  * Indexes are found by definition, not by name, so a rename does not break the test.
-- =============================================================================
begin;
select plan(43);


-- -----------------------------------------------------------------------------
-- Tables
-- -----------------------------------------------------------------------------

select has_table('public', 'rooms', 'public.rooms exists');
select has_table('public', 'room_members', 'public.room_members exists');
select has_table('public', 'songs', 'public.songs exists');
select has_table('public', 'messages', 'public.messages exists');
select has_table('public', 'play_history', 'public.play_history exists');
select has_table('public', 'playback_state', 'public.playback_state exists');
select has_table('private', 'channel_kinds', 'private.channel_kinds exists');
select has_table('private', 'channel_rules', 'private.channel_rules exists');
select has_table('private', 'channel_capabilities', 'private.channel_capabilities exists');
select has_table('private', 'channel_actions', 'private.channel_actions exists');
select has_table('private', 'channel_audiences', 'private.channel_audiences exists');


-- -----------------------------------------------------------------------------
-- Columns and keys
-- -----------------------------------------------------------------------------

select columns_are('public', 'messages',
  array['id', 'room_id', 'user_id', 'client_id', 'body', 'created_at', 'seq', 'broadcast_at'],
  'public.messages has the contract''s columns (seq included), and when each went out in a chat:batch');
select columns_are('public', 'play_history',
  array['id', 'room_id', 'song_id', 'played_at'],
  'public.play_history has exactly the contract''s columns');

select col_is_pk('public', 'messages', 'id', 'messages.id is the primary key');
select ok(
  (select attidentity = 'a' from pg_attribute
   where attrelid = 'public.messages'::regclass and attname = 'id'),
  'messages.id is generated always as identity');
select col_is_unique('public', 'messages', array['room_id', 'client_id'],
  'messages has a unique key on (room_id, client_id) for idempotent sends');
select col_is_unique('public', 'messages', array['room_id', 'seq'],
  'messages has a unique key on (room_id, seq): no seq twice in a room');
select col_is_pk('public', 'room_members', array['room_id', 'user_id'],
  'room_members is keyed by (room_id, user_id)');
select fk_ok('public', 'room_members', 'room_id', 'public', 'rooms', 'id',
  'room_members.room_id references rooms');
select ok(
  (select confdeltype = 'c' from pg_constraint
   where conrelid = 'public.room_members'::regclass and contype = 'f'
     and confrelid = 'public.rooms'::regclass),
  'room_members are deleted with their room');
select fk_ok('private', 'channel_capabilities', 'action', 'private', 'channel_actions', 'action',
  'a capability''s action is one of channel_actions');
select fk_ok('private', 'channel_capabilities', 'audience', 'private', 'channel_audiences', 'audience',
  'a capability''s audience is one of channel_audiences');


-- -----------------------------------------------------------------------------
-- Indexes behind the app's queries
-- -----------------------------------------------------------------------------

select ok(
  exists (select 1 from pg_indexes
          where schemaname = 'public' and tablename = 'messages'
            and indexdef ~ 'USING btree \(room_id, seq\)'),
  'messages has an index on (room_id, seq) for a room''s chat in broadcast order, newest or after a seq');
select ok(
  exists (select 1 from pg_indexes
          where schemaname = 'public' and tablename = 'messages'
            and indexdef ~ 'USING btree \(room_id, id\) WHERE \(seq IS NULL\)'),
  'messages has an index on (room_id, id) of the unsent messages, for a flush to find what waits');
select ok(
  exists (select 1 from pg_indexes
          where schemaname = 'public' and tablename = 'play_history'
            and indexdef ~ 'USING btree \(room_id, played_at DESC[,)]'),
  'play_history has an index on (room_id, played_at desc, ...) for a room''s newest plays');
select ok(
  exists (select 1 from pg_indexes
          where schemaname = 'public' and tablename = 'room_members'
            and indexdef ~ 'USING btree \(user_id[,)]'),
  'room_members has an index led by user_id for a user''s rooms');


-- -----------------------------------------------------------------------------
-- Row level security
-- -----------------------------------------------------------------------------

select is_empty(
  $$ select c.oid::regclass::text
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname in ('public', 'private') and c.relkind in ('r', 'p')
       and not c.relrowsecurity $$,
  'every table in public and private has RLS enabled');


-- -----------------------------------------------------------------------------
-- Grants
-- -----------------------------------------------------------------------------

select is_empty(
  $$ select c.oid::regclass::text
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname in ('public', 'private') and c.relkind in ('r', 'p', 'v', 'm', 'f')
       and (has_table_privilege('anon', c.oid,
              'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
            or has_any_column_privilege('anon', c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')) $$,
  'anon has no privilege on any table or view in public or private');
select ok(not has_schema_privilege('anon', 'private', 'USAGE'),
  'anon cannot use the private schema');

select table_privs_are('public', 'messages', 'authenticated', array['SELECT'],
  'authenticated may only select from messages');
select table_privs_are('public', 'play_history', 'authenticated', array['SELECT'],
  'authenticated may only select from play_history');
select table_privs_are('public', 'playback_state', 'authenticated', array['SELECT'],
  'authenticated may only select from playback_state');
select table_privs_are('public', 'songs', 'authenticated', array['SELECT'],
  'authenticated may only select from songs');
select is_empty(
  $$ select c.relname::text
     from pg_class c
     where c.oid in ('public.messages'::regclass, 'public.play_history'::regclass,
                     'public.playback_state'::regclass, 'public.songs'::regclass)
       and has_any_column_privilege('authenticated', c.oid, 'INSERT, UPDATE') $$,
  'authenticated cannot insert or update any column of messages, play_history, playback_state or songs');
select is_empty(
  $$ select c.oid::regclass::text
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'private' and c.relkind in ('r', 'p')
       and (has_table_privilege('authenticated', c.oid,
              'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
            or has_any_column_privilege('authenticated', c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')) $$,
  'authenticated has no privilege on any table in private');


-- -----------------------------------------------------------------------------
-- Functions
-- -----------------------------------------------------------------------------

select ok(not has_function_privilege('anon', 'private.check_channel(text, text)', 'EXECUTE'),
  'anon cannot execute private.check_channel');
select ok(has_function_privilege('authenticated', 'private.check_channel(text, text)', 'EXECUTE'),
  'authenticated can execute private.check_channel');
select ok(has_function_privilege('service_role', 'private.check_channel(text, text)', 'EXECUTE'),
  'service_role can execute private.check_channel');
select is_empty(
  $$ select p.oid::regprocedure::text
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'private' and has_function_privilege('anon', p.oid, 'EXECUTE') $$,
  'anon cannot execute any function in private');

select ok(
  (select prosecdef from pg_proc where oid = 'private.check_channel(text, text)'::regprocedure),
  'private.check_channel is security definer');
select ok(
  (select 'search_path=""' = any (proconfig) from pg_proc
   where oid = 'private.check_channel(text, text)'::regprocedure),
  'private.check_channel runs with an empty search_path');
select is_empty(
  $$ select p.oid::regprocedure::text
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname in ('public', 'private', 'edge') and p.prosecdef
       and not exists (select 1 from unnest(p.proconfig) as s where s like 'search_path=%') $$,
  'every security definer function in public, private and edge pins its search_path');


select ok(
  not has_sequence_privilege('authenticated', 'public.messages_id_seq', 'usage,update')
  and not has_sequence_privilege('anon', 'public.messages_id_seq', 'usage,update')
  and not has_sequence_privilege('authenticated', 'public.play_history_id_seq', 'usage,update'),
  'clients cannot use or move the id sequences');

select * from finish();
rollback;
