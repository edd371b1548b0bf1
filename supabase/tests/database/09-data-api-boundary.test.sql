-- =============================================================================
-- 09-data-api-boundary: what the Data API (PostgREST, /rest/v1/rpc/...) can call (API.md §4
-- chat-send: the SQL behind the functions is not callable through the Data API).
--
-- The Edge Functions connect as postgres and take the caller's role inside the statement that
-- runs their entry point, so those entry points live in `edge`, a schema PostgREST does not
-- expose, with no rights for any API role. Chat, playback and presence are written through the
-- functions only: a chat message sent through /rest/v1/rpc/ would skip the function's flush.
--
-- Notes:
--  * The real grants are checked: this file does not call tests.allow_edge_calls().
--  * The exposed schemas are config.toml's [api] schemas that exist here (graphql_public is
--    Supabase's, and absent locally). Privileges are checked with has_*_privilege, which count
--    grants to PUBLIC and through role membership as well as direct ones.
--  * Every check lists what breaks it, so a failure names the function or role.
-- =============================================================================
begin;
select plan(14);


-- -----------------------------------------------------------------------------
-- Nothing in an exposed schema is callable by a client
-- -----------------------------------------------------------------------------

select is_empty(
  $$ select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname in ('public', 'graphql_public') and has_function_privilege('anon', p.oid, 'EXECUTE') $$,
  'no function in a schema the Data API exposes is executable by anon');
select is_empty(
  $$ select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname in ('public', 'graphql_public') and has_function_privilege('authenticated', p.oid, 'EXECUTE') $$,
  'no function in a schema the Data API exposes is executable by authenticated');


-- -----------------------------------------------------------------------------
-- edge: the entry points, out of every API role's reach
-- -----------------------------------------------------------------------------

select has_schema('edge', 'the schema edge holds the Edge Functions'' SQL entry points');
select is_empty(
  $$ select r.role from pg_namespace n
     cross join unnest(array['anon', 'authenticated', 'service_role']) as r (role)
     where n.nspname = 'edge' and has_schema_privilege(r.role, n.oid, 'USAGE') $$,
  'anon, authenticated and service_role have no USAGE on edge');
select is_empty(
  $$ select r.role || ': ' || p.oid::regprocedure::text from pg_proc p
     join pg_namespace n on n.oid = p.pronamespace
     cross join unnest(array['anon', 'authenticated', 'service_role']) as r (role)
     where n.nspname = 'edge' and has_function_privilege(r.role, p.oid, 'EXECUTE') $$,
  'anon, authenticated and service_role may execute no function in edge');

-- The calls of supabase/functions/*/handler.ts.
select has_function('edge', 'send_chat', array['uuid', 'jsonb'],
  'chat-send''s entry point edge.send_chat(room_id, messages) exists');
select has_function('edge', 'set_playback', array['uuid', 'uuid', 'bigint', 'boolean', 'bigint'],
  'playback''s entry point edge.set_playback(room_id, song_id, position_ms, is_playing, seq) exists');
select has_function('edge', 'presence_join', array['uuid', 'text', 'json'],
  'presence''s join entry point edge.presence_join(room_id, connection_id, user_info) exists');
select has_function('edge', 'presence_heartbeat', array['uuid', 'text'],
  'presence''s heartbeat entry point edge.presence_heartbeat(room_id, connection_id) exists');
select has_function('edge', 'presence_leave', array['uuid', 'text'],
  'presence''s leave entry point edge.presence_leave(room_id, connection_id) exists');
select has_function('edge', 'presence_get', array['uuid'],
  'presence''s GET entry point edge.presence_get(room_id) exists');
select has_function('edge', 'room_context', array['uuid', 'integer', 'integer'],
  'room-context''s entry point edge.room_context(room_id, chat_limit, history_limit) exists');
select has_function('edge', 'channel_history',
  array['text', 'integer', 'text', 'bigint', 'bigint', 'bigint', 'integer', 'bigint', 'bigint'],
  'history''s entry point edge.channel_history(channel, max_items, direction, start_ms, end_ms, after_key, rewind_items, rewind_ms, after_seq) exists');
select has_function('edge', 'publish', array['jsonb'],
  'publish''s entry point edge.publish(messages) exists');

select * from finish();
rollback;
