-- =============================================================================
-- 06-room-context: the late joiner's snapshot, edge.room_context (API.md §4 room-context).
--
-- Notes:
--  * Callers are set with tests.authenticate_as / tests.act_as, always after
--    tests.clear_authentication() (the helpers read auth.users, which the API roles cannot).
--  * Fixtures (users, rooms, songs, chat, plays, playback) are written as postgres. Chat that
--    went out is written as a flush leaves it (seq and broadcast_at set; 07 tests the flush).
--  * Snapshots taken as a user are kept with tests.keep and read back with tests.kept.
--
-- Rooms:  ...0001 a public room with chat, plays and playback   ...0002 an empty private room
-- =============================================================================
begin;
select plan(23);
select tests.allow_edge_calls();

select tests.create_user('context-host');
select tests.create_user('context-listener');
select tests.create_user('context-outsider');
select tests.create_user('context-guest', true);

insert into public.rooms (id, name, host_id, visibility) values
  ('06c00000-0000-4000-8000-000000000001', 'Context room', tests.uid('context-host'), 'public'),
  ('06c00000-0000-4000-8000-000000000002', 'Quiet room', tests.uid('context-host'), 'private');
insert into public.room_members (room_id, user_id, role) values
  ('06c00000-0000-4000-8000-000000000001', tests.uid('context-listener'), 'listener'),
  ('06c00000-0000-4000-8000-000000000001', tests.uid('context-guest'), 'listener');

insert into public.songs (id, title, artist, duration_ms) values
  ('06c0c0de-0000-4000-8000-000000000001', 'First Song', 'First Artist', 181000),
  ('06c0c0de-0000-4000-8000-000000000002', 'Second Song', 'Second Artist', 202000),
  ('06c0c0de-0000-4000-8000-000000000003', 'Third Song', 'Third Artist', 223000);

-- Seven messages went out as seq 1..7; the last of them has the lowest id (its transaction took
-- an id first and committed after the others). One more is stored and waits for its batch.
insert into public.messages (room_id, user_id, client_id, body, seq, broadcast_at)
select '06c00000-0000-4000-8000-000000000001', tests.uid('context-host'), 'context-' || n, 'Message ' || n, n, now()
from (values (7), (1), (2), (3), (4), (5), (6)) as t (n);
insert into public.messages (room_id, user_id, client_id, body)
values ('06c00000-0000-4000-8000-000000000001', tests.uid('context-host'), 'context-waiting', 'Not sent yet');

-- Plays inserted out of order: the newest is by played_at.
insert into public.play_history (room_id, song_id, played_at) values
  ('06c00000-0000-4000-8000-000000000001', '06c0c0de-0000-4000-8000-000000000001', now() - interval '40 minutes'),
  ('06c00000-0000-4000-8000-000000000001', '06c0c0de-0000-4000-8000-000000000003', now() - interval '5 minutes'),
  ('06c00000-0000-4000-8000-000000000001', '06c0c0de-0000-4000-8000-000000000002', now() - interval '30 minutes'),
  ('06c00000-0000-4000-8000-000000000001', '06c0c0de-0000-4000-8000-000000000001', now() - interval '15 minutes');

insert into public.playback_state (room_id, song_id, position_ms, is_playing, seq, updated_at) values
  ('06c00000-0000-4000-8000-000000000001', '06c0c0de-0000-4000-8000-000000000003', 42000, true, 7,
   '2026-11-28 09:00:00+00');


-- -----------------------------------------------------------------------------
-- A member's snapshot
-- -----------------------------------------------------------------------------

select tests.authenticate_as('context-listener');
select tests.keep('member',
  edge.room_context('06c00000-0000-4000-8000-000000000001', chat_limit => 5, history_limit => 3));

select is(
  tests.kept('member') -> 'room',
  jsonb_build_object('id', '06c00000-0000-4000-8000-000000000001', 'name', 'Context room',
                     'host_id', tests.uid('context-host'), 'visibility', 'public'),
  'the snapshot has the room: id, name, host_id, visibility');
select is(
  (select array_agg(m ->> 'client_id' order by n)
   from jsonb_array_elements(tests.kept('member') -> 'chat') with ordinality as t (m, n)),
  array['context-3', 'context-4', 'context-5', 'context-6', 'context-7'],
  'chat is the newest chat_limit messages that went out, oldest first by seq (not by id)');
select is(
  tests.kept('member') -> 'chat' -> -1,
  (select jsonb_build_object('id', m.id, 'seq', 7, 'room_id', m.room_id, 'user_id', m.user_id,
                             'client_id', m.client_id, 'body', m.body, 'created_at', m.created_at)
   from public.messages m where m.client_id = 'context-7'),
  'a chat item is a Message: id, seq, room_id, user_id, client_id, body, created_at');
select is(
  (select array_agg((m ->> 'seq')::int order by n)
   from jsonb_array_elements(edge.room_context('06c00000-0000-4000-8000-000000000001') -> 'chat')
        with ordinality as t (m, n)),
  array[1, 2, 3, 4, 5, 6, 7],
  'by default chat holds up to 50 messages: all seven that went out, not the one waiting for its batch');
select is(
  (select array_agg(h -> 'song' ->> 'title' order by n)
   from jsonb_array_elements(tests.kept('member') -> 'history') with ordinality as t (h, n)),
  array['Third Song', 'First Song', 'Second Song'],
  'history is the newest history_limit plays, newest first');
select is(
  tests.kept('member') -> 'history' -> 0,
  (select jsonb_build_object('id', h.id, 'played_at', h.played_at,
            'song', '{"id": "06c0c0de-0000-4000-8000-000000000003", "title": "Third Song",
                      "artist": "Third Artist", "duration_ms": 223000}'::jsonb)
   from public.play_history h
   where h.room_id = '06c00000-0000-4000-8000-000000000001' and h.song_id = '06c0c0de-0000-4000-8000-000000000003'),
  'a play is {id, played_at, song: {id, title, artist, duration_ms}}');
select is(
  (tests.kept('member') -> 'playback') - 'server_time',
  jsonb_build_object('room_id', '06c00000-0000-4000-8000-000000000001',
                     'song_id', '06c0c0de-0000-4000-8000-000000000003', 'position_ms', 42000,
                     'is_playing', true, 'seq', 7, 'updated_at', timestamptz '2026-11-28 09:00:00+00'),
  'playback is the room''s playback state');
select ok(
  jsonb_typeof(tests.kept('member') -> 'playback' -> 'server_time') = 'number'
  and abs((tests.kept('member') -> 'playback' ->> 'server_time')::numeric
          - extract(epoch from clock_timestamp()) * 1000) < 60000,
  'playback carries server_time, the server''s clock in epoch ms');
select is(
  tests.kept('member') -> 'presence',
  '{"type": "detailed", "version": 0, "total": 0, "members": []}'::jsonb,
  'presence is a detailed snapshot with nobody present, at version 0');
select ok(
  jsonb_typeof(tests.kept('member') -> 'server_time') = 'number'
  and abs((tests.kept('member') ->> 'server_time')::numeric
          - extract(epoch from clock_timestamp()) * 1000) < 60000,
  'the snapshot carries server_time in epoch ms');

select tests.clear_authentication();
select tests.authenticate_as('context-host');
select tests.keep('quiet', edge.room_context('06c00000-0000-4000-8000-000000000002'));

select is(tests.kept('quiet') -> 'playback', 'null'::jsonb,
  'playback is null in a room without a playback state');
select is(
  jsonb_build_array(tests.kept('quiet') -> 'chat', tests.kept('quiet') -> 'history'),
  '[[], []]'::jsonb,
  'a room without chat or plays has empty chat and history');
select lives_ok(
  $$ select edge.room_context('06c00000-0000-4000-8000-000000000001', chat_limit => 200, history_limit => 50) $$,
  'chat_limit 200 and history_limit 50 are accepted');


-- -----------------------------------------------------------------------------
-- Refusals
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select tests.authenticate_as('context-outsider');
select throws_ok(
  $$ select edge.room_context('06c00000-0000-4000-8000-000000000001') $$,
  'WS403', 'not_a_member',
  'a non-member gets no snapshot of a public room');
select throws_ok(
  $$ select edge.room_context('06c00000-0000-4000-8000-0000000000ff') $$,
  'WS404', 'room_not_found',
  'an unknown room is room_not_found');

select tests.clear_authentication();
select tests.authenticate_as('context-guest');
select throws_ok(
  $$ select edge.room_context('06c00000-0000-4000-8000-000000000001') $$,
  'WS403', 'identified_only',
  'an anonymous member gets no snapshot');

select tests.clear_authentication();
select tests.authenticate_as('context-listener');
select throws_ok(
  $$ select edge.room_context('06c00000-0000-4000-8000-000000000001', chat_limit => 0) $$,
  'WS400', 'invalid_request', 'chat_limit 0 is refused');
select throws_ok(
  $$ select edge.room_context('06c00000-0000-4000-8000-000000000001', chat_limit => 201) $$,
  'WS400', 'invalid_request', 'chat_limit 201 is refused');
select throws_ok(
  $$ select edge.room_context('06c00000-0000-4000-8000-000000000001', history_limit => 0) $$,
  'WS400', 'invalid_request', 'history_limit 0 is refused');
select throws_ok(
  $$ select edge.room_context('06c00000-0000-4000-8000-000000000001', history_limit => 51) $$,
  'WS400', 'invalid_request', 'history_limit 51 is refused');


-- -----------------------------------------------------------------------------
-- Security invoker; the service role
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select is(
  (select prosecdef from pg_proc where oid = 'edge.room_context(uuid, int, int)'::regprocedure),
  false,
  'room_context runs as security invoker, so the caller''s RLS applies');

select tests.act_as('service_role', '{"role": "service_role"}');
select is(
  edge.room_context('06c00000-0000-4000-8000-000000000002') -> 'room' ->> 'name',
  'Quiet room',
  'the service role gets the snapshot of a private room it is no member of');
select is(
  jsonb_array_length(edge.room_context('06c00000-0000-4000-8000-000000000001', chat_limit => 5) -> 'chat'),
  5,
  'the service role gets the chat of any room');
select tests.clear_authentication();

select * from finish();
rollback;
