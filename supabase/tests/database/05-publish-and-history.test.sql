-- =============================================================================
-- 05-publish-and-history: private.publish applies a channel's rule and broadcasts;
-- edge.channel_history serves what the rules kept (API.md §3, §4 history).
--
-- Notes:
--  * private.publish is the backend's (postgres / service_role) and runs as postgres here.
--    realtime.send swallows its own errors, so every broadcast is checked by finding its row in
--    realtime.messages.
--  * edge.channel_history is called as the API roles (tests.authenticate_as), always after
--    tests.clear_authentication() (the helpers read auth.users, which the API roles cannot).
--  * Fixtures that are not under test (users, rooms, chat) are written as postgres. Chat is
--    written as a flush leaves it (seq and broadcast_at set; 07 tests the flush): history serves
--    only what went out. Chat ids come from an identity column, so they are found again by
--    client_id.
--  * tests.keep keeps the ids private.publish returned and the history pages read as a member,
--    so they can be compared after switching users.
--
-- Rooms:  ...0001 main room (publish, chat pages, after_seq, queue, playback)
--         ...0002 chat with fixed times
--         ...0003 chat for rewind by time                             ...0004 105 recent messages
--         ...0005 chat at the edges of a time range
-- =============================================================================
begin;
select plan(69);
select tests.allow_edge_calls();

select tests.create_user('history-host');
select tests.create_user('history-listener');
select tests.create_user('history-outsider');
select tests.create_user('history-guest', true);
select tests.create_user('history-owner');

insert into public.rooms (id, name, host_id) values
  ('05a00000-0000-4000-8000-000000000001', 'History room', tests.uid('history-host')),
  ('05a00000-0000-4000-8000-000000000002', 'History times room', tests.uid('history-host')),
  ('05a00000-0000-4000-8000-000000000003', 'History rewind room', tests.uid('history-host')),
  ('05a00000-0000-4000-8000-000000000004', 'History busy room', tests.uid('history-host')),
  ('05a00000-0000-4000-8000-000000000005', 'History edges room', tests.uid('history-host'));
insert into public.room_members (room_id, user_id, role)
select room_id::uuid, tests.uid(who), 'listener'
from (values ('05a00000-0000-4000-8000-000000000001'), ('05a00000-0000-4000-8000-000000000002'),
             ('05a00000-0000-4000-8000-000000000003'), ('05a00000-0000-4000-8000-000000000004'),
             ('05a00000-0000-4000-8000-000000000005')) as r (room_id)
cross join (values ('history-listener'), ('history-guest')) as u (who);

-- The client_ids of a history answer's items, in order.
create function pg_temp.client_ids(result jsonb) returns text[]
language sql immutable as $$
  select tests.field_of_each(result -> 'items', 'data', 'client_id')
$$;
-- Our migrations take EXECUTE away from PUBLIC by default; this is called while acting as the
-- API roles.
grant execute on function pg_temp.client_ids(jsonb) to public;


-- -----------------------------------------------------------------------------
-- private.publish
-- -----------------------------------------------------------------------------

select tests.keep('queue 1',
  private.publish('room:05a00000-0000-4000-8000-000000000001:queue', 'queue:added', '{"song": "first"}'));

select ok(tests.kept('queue 1')::bigint is not null, 'publish returns the id of the message');
select is(
  (select count(*)::int from realtime.messages m
   where m.topic = 'room:05a00000-0000-4000-8000-000000000001:queue' and m.event = 'queue:added'
     and m.private and m.extension = 'broadcast'
     and m.payload ->> 'song' = 'first' and m.payload ->> 'id' is not null),
  1,
  'publish broadcasts on the private channel: the row lands in realtime.messages with an id in its payload');
select results_eq(
  $$ select id, channel, event, data from private.channel_messages
     where channel = 'room:05a00000-0000-4000-8000-000000000001:queue' $$,
  $$ values (tests.kept('queue 1')::bigint, 'room:05a00000-0000-4000-8000-000000000001:queue'::text,
             'queue:added'::text, '{"song": "first"}'::jsonb) $$,
  'a message on a queue channel is kept in its history');
select results_eq(
  $$ select id, event, data from private.channel_last_messages
     where channel = 'room:05a00000-0000-4000-8000-000000000001:queue' $$,
  $$ values (tests.kept('queue 1')::bigint, 'queue:added'::text, '{"song": "first"}'::jsonb) $$,
  'a message on a queue channel is kept as its last message');

select tests.keep('queue 2',
  private.publish('room:05a00000-0000-4000-8000-000000000001:queue', 'queue:removed', '{"song": "second"}'));

select ok(tests.kept('queue 2')::bigint > tests.kept('queue 1')::bigint,
  'a later message gets a greater id');
select results_eq(
  $$ select id, event, data from private.channel_last_messages
     where channel = 'room:05a00000-0000-4000-8000-000000000001:queue' $$,
  $$ values (tests.kept('queue 2')::bigint, 'queue:removed'::text, '{"song": "second"}'::jsonb) $$,
  'a second message on a queue channel replaces its last message');
select results_eq(
  $$ select id from private.channel_messages
     where channel = 'room:05a00000-0000-4000-8000-000000000001:queue' order by id $$,
  $$ values (tests.kept('queue 1')::bigint), (tests.kept('queue 2')::bigint) $$,
  'both messages on the queue channel stay in its history');

-- Playback: persist_last, no history.
select tests.keep('playback 1',
  private.publish('room:05a00000-0000-4000-8000-000000000001:playback', 'playback:position',
                  '{"position_ms": 1000, "seq": 1}'));
select tests.keep('playback 2',
  private.publish('room:05a00000-0000-4000-8000-000000000001:playback', 'playback:position',
                  '{"position_ms": 2000, "seq": 2}'));

select results_eq(
  $$ select id, event, data from private.channel_last_messages
     where channel = 'room:05a00000-0000-4000-8000-000000000001:playback' $$,
  $$ values (tests.kept('playback 2')::bigint, 'playback:position'::text,
             '{"position_ms": 2000, "seq": 2}'::jsonb) $$,
  'a playback channel keeps its last message');
select is_empty(
  $$ select 1 from private.channel_messages where channel = 'room:05a00000-0000-4000-8000-000000000001:playback' $$,
  'a playback channel keeps no history');
select is(
  (select count(*)::int from realtime.messages m
   where m.topic = 'room:05a00000-0000-4000-8000-000000000001:playback' and m.event = 'playback:position'),
  2,
  'every playback message is broadcast');

-- Meta: nothing persisted, still broadcast.
select tests.keep('meta',
  private.publish('room:05a00000-0000-4000-8000-000000000001', 'presence:member_added',
                  '{"user_id": "someone", "total": 1}'));

select ok(
  not exists (select 1 from private.channel_messages where channel = 'room:05a00000-0000-4000-8000-000000000001')
  and not exists (select 1 from private.channel_last_messages where channel = 'room:05a00000-0000-4000-8000-000000000001'),
  'a message on the room meta channel is not persisted');
select is(
  (select count(*)::int from realtime.messages m
   where m.topic = 'room:05a00000-0000-4000-8000-000000000001' and m.event = 'presence:member_added'
     and m.private and m.extension = 'broadcast' and m.payload ->> 'total' = '1'),
  1,
  'a message on the room meta channel is still broadcast');

-- Push.
select tests.keep('chat push',
  private.publish('room:05a00000-0000-4000-8000-000000000001:chat', 'chat:batch',
                  '{"messages": []}', '{"title": "New message"}'));

select results_eq(
  $$ select id, channel, event, push, sent_at from private.push_outbox where id = tests.kept('chat push')::bigint $$,
  $$ values (tests.kept('chat push')::bigint, 'room:05a00000-0000-4000-8000-000000000001:chat'::text,
             'chat:batch'::text, '{"title": "New message"}'::jsonb, null::timestamptz) $$,
  'a push on a chat channel goes to the push outbox, unsent');
select throws_ok(
  $$ select private.publish('room:05a00000-0000-4000-8000-000000000001:queue', 'queue:added',
                            '{"song": "pushed"}', '{"title": "Queue"}') $$,
  'WS400', 'push_not_enabled',
  'a push on a queue channel is refused with push_not_enabled');

-- Payload size: at most the rule's max_payload_bytes, as JSON text (`{"b": "` + body + `"}`).
select lives_ok(
  format($$ select private.publish('room:05a00000-0000-4000-8000-000000000001:queue', 'queue:exact',
                                   jsonb_build_object('b', repeat('x', %s))) $$,
         (select max_payload_bytes - 9 from private.channel_rules where namespace = 'room' and kind = 'queue')),
  'a payload of exactly max_payload_bytes is published');
select throws_ok(
  format($$ select private.publish('room:05a00000-0000-4000-8000-000000000001:queue', 'queue:too-big',
                                   jsonb_build_object('b', repeat('x', %s))) $$,
         (select max_payload_bytes - 8 from private.channel_rules where namespace = 'room' and kind = 'queue')),
  'WS413', 'payload_too_large',
  'a payload one byte over max_payload_bytes is refused with payload_too_large');
select is_empty(
  $$ select 1 from private.channel_messages where event = 'queue:too-big' $$,
  'a refused payload is not kept in the history');
select is_empty(
  $$ select 1 from realtime.messages where event = 'queue:too-big' $$,
  'a refused payload is not broadcast');

select throws_ok(
  $$ select private.publish('room:05a00000-0000-4000-8000-000000000001:queue', 'queue:added', '[1, 2]') $$,
  'WS400', 'invalid_request',
  'an array payload is refused');
select throws_ok(
  $$ select private.publish('room:05a00000-0000-4000-8000-000000000001:queue', 'queue:added', '"text"') $$,
  'WS400', 'invalid_request',
  'a scalar payload is refused');
select throws_ok(
  $$ select private.publish('room:05a00000-0000-4000-8000-000000000001:queue', '', '{}') $$,
  'WS400', 'invalid_request',
  'a message without an event is refused');
select throws_ok(
  $$ select private.publish('room:not-a-uuid:queue', 'queue:added', '{}') $$,
  'WS400', 'invalid_request',
  'a malformed channel is refused');
select throws_ok(
  $$ select private.publish('room:05a00000-0000-4000-8000-000000000001:lyrics', 'lyrics:line', '{}') $$,
  'WS400', 'invalid_request',
  'a channel of an unknown kind is refused');

select tests.authenticate_as('history-host');
select throws_ok(
  $$ select private.publish('room:05a00000-0000-4000-8000-000000000001:queue', 'queue:added', '{}') $$,
  '42501', null,
  'a signed-in user, even the host, cannot execute private.publish');
select tests.clear_authentication();


-- -----------------------------------------------------------------------------
-- Chat history (the messages table): order by seq, limits, pages
-- -----------------------------------------------------------------------------

insert into public.messages (room_id, user_id, client_id, body, seq, broadcast_at)
select '05a00000-0000-4000-8000-000000000001', tests.uid('history-host'), 'page-' || n, 'Message ' || n, n, now()
from generate_series(1, 5) as n;

select tests.authenticate_as('history-listener');

select is(
  pg_temp.client_ids(edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat')),
  array['page-5', 'page-4', 'page-3', 'page-2', 'page-1'],
  'chat history goes backwards, newest first, by default');
select is(
  pg_temp.client_ids(edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', direction => 'forwards')),
  array['page-1', 'page-2', 'page-3', 'page-4', 'page-5'],
  'chat history forwards is oldest first');

-- Backwards in pages of 2, with messages going out between the pages.
select tests.keep('back 1',
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', max_items => 2));

select tests.clear_authentication();
insert into public.messages (room_id, user_id, client_id, body, seq, broadcast_at)
values ('05a00000-0000-4000-8000-000000000001', tests.uid('history-host'), 'page-6', 'Message 6', 6, now());
select tests.authenticate_as('history-listener');

select tests.keep('back 2',
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', max_items => 2,
                       after_key => (tests.kept('back 1') ->> 'next_after_key')::bigint));

select tests.clear_authentication();
insert into public.messages (room_id, user_id, client_id, body, seq, broadcast_at)
values ('05a00000-0000-4000-8000-000000000001', tests.uid('history-host'), 'page-7', 'Message 7', 7, now());
select tests.authenticate_as('history-listener');

select tests.keep('back 3',
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', max_items => 2,
                       after_key => (tests.kept('back 2') ->> 'next_after_key')::bigint));

select is(pg_temp.client_ids(tests.kept('back 1')), array['page-5', 'page-4'],
  'a backwards page holds at most max_items, newest first');
select is(tests.kept('back 1') -> 'has_more', 'true'::jsonb,
  'has_more is true when older messages exist');
select is(tests.kept('back 1') -> 'next_after_key', '4'::jsonb,
  'a chat page''s next_after_key is the seq of its last item');
select is(
  pg_temp.client_ids(tests.kept('back 1')) || pg_temp.client_ids(tests.kept('back 2'))
    || pg_temp.client_ids(tests.kept('back 3')),
  array['page-5', 'page-4', 'page-3', 'page-2', 'page-1'],
  'backwards pages continue after next_after_key: no message twice, none skipped, new ones not mixed in');
select is(tests.kept('back 2') -> 'has_more', 'true'::jsonb,
  'has_more stays true on a middle page');
select is(
  jsonb_build_object('has_more', tests.kept('back 3') -> 'has_more', 'next_after_key', tests.kept('back 3') -> 'next_after_key'),
  '{"has_more": false, "next_after_key": null}'::jsonb,
  'the last page has has_more false and no next_after_key');

-- Forwards in pages of 3, with messages going out between the pages.
select tests.keep('fwd 1',
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', max_items => 3,
                       direction => 'forwards'));

select tests.clear_authentication();
insert into public.messages (room_id, user_id, client_id, body, seq, broadcast_at)
values ('05a00000-0000-4000-8000-000000000001', tests.uid('history-host'), 'page-8', 'Message 8', 8, now());
select tests.authenticate_as('history-listener');

select tests.keep('fwd 2',
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', max_items => 3,
                       direction => 'forwards',
                       after_key => (tests.kept('fwd 1') ->> 'next_after_key')::bigint));

select tests.clear_authentication();
insert into public.messages (room_id, user_id, client_id, body, seq, broadcast_at)
values ('05a00000-0000-4000-8000-000000000001', tests.uid('history-host'), 'page-9', 'Message 9', 9, now());
select tests.authenticate_as('history-listener');

select tests.keep('fwd 3',
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', max_items => 3,
                       direction => 'forwards',
                       after_key => (tests.kept('fwd 2') ->> 'next_after_key')::bigint));

select is(pg_temp.client_ids(tests.kept('fwd 1')), array['page-1', 'page-2', 'page-3'],
  'a forwards page holds at most max_items, oldest first');
select is(
  pg_temp.client_ids(tests.kept('fwd 1')) || pg_temp.client_ids(tests.kept('fwd 2'))
    || pg_temp.client_ids(tests.kept('fwd 3')),
  array['page-1', 'page-2', 'page-3', 'page-4', 'page-5', 'page-6', 'page-7', 'page-8', 'page-9'],
  'forwards pages continue after next_after_key and reach the messages that went out meanwhile, each once');
select is(
  array[tests.kept('fwd 1') -> 'has_more', tests.kept('fwd 2') -> 'has_more', tests.kept('fwd 3') -> 'has_more'],
  array['true'::jsonb, 'true'::jsonb, 'false'::jsonb],
  'forwards, has_more is true until the last page');

select is(
  pg_temp.client_ids(edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', rewind_items => 3)),
  array['page-7', 'page-8', 'page-9'],
  'rewind_items gives the last N, oldest first');


-- -----------------------------------------------------------------------------
-- Chat history after_seq: exactly what a client that saw seq N missed
-- -----------------------------------------------------------------------------

-- page-10 is stored but waits for its batch: no seq yet.
select tests.clear_authentication();
insert into public.messages (room_id, user_id, client_id, body)
values ('05a00000-0000-4000-8000-000000000001', tests.uid('history-host'), 'page-10', 'Message 10');
select tests.authenticate_as('history-listener');

select tests.keep('after 6',
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', after_seq => 6));
select tests.keep('seq 1',
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', after_seq => 0, max_items => 4));
select tests.keep('seq 2',
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', max_items => 4,
                       after_seq => (tests.kept('seq 1') ->> 'next_after_key')::bigint));
select tests.keep('seq 3',
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', max_items => 4,
                       after_seq => (tests.kept('seq 2') ->> 'next_after_key')::bigint));

select is(
  pg_temp.client_ids(tests.kept('after 6')),
  array['page-7', 'page-8', 'page-9'],
  'after_seq 6 gives seq 7, 8, 9, oldest first, and not the message still waiting for its batch');
select is(
  jsonb_build_object('has_more', tests.kept('after 6') -> 'has_more', 'next_after_key', tests.kept('after 6') -> 'next_after_key'),
  '{"has_more": false, "next_after_key": null}'::jsonb,
  'after_seq up to the newest message that went out: has_more false, no next_after_key');
select is(
  pg_temp.client_ids(tests.kept('seq 1')) || pg_temp.client_ids(tests.kept('seq 2'))
    || pg_temp.client_ids(tests.kept('seq 3')),
  array['page-1', 'page-2', 'page-3', 'page-4', 'page-5', 'page-6', 'page-7', 'page-8', 'page-9'],
  'after_seq pages of max_items, each from the last one''s next_after_key: every message once, in seq order');
select is(
  jsonb_build_array(tests.kept('seq 1') -> 'has_more', tests.kept('seq 1') -> 'next_after_key',
                    tests.kept('seq 2') -> 'has_more', tests.kept('seq 2') -> 'next_after_key',
                    tests.kept('seq 3') -> 'has_more', tests.kept('seq 3') -> 'next_after_key'),
  '[true, 4, true, 8, false, null]'::jsonb,
  'after_seq pages: has_more and next_after_key (the last seq of the page) until the last page');
select is(
  pg_temp.client_ids(edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', after_seq => 6,
                                          direction => 'backwards')),
  array['page-7', 'page-8', 'page-9'],
  'after_seq reads forwards, oldest first, whatever the direction');
select is(
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', after_seq => 9) -> 'items',
  '[]'::jsonb,
  'after_seq at the newest seq that went out: nothing to fetch yet');
select throws_ok(
  $$ select edge.channel_history('room:05a00000-0000-4000-8000-000000000001:queue', after_seq => 0) $$,
  'WS400', 'invalid_request',
  'after_seq on a channel that is not chat is refused');
select throws_ok(
  $$ select edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', after_seq => -1) $$,
  'WS400', 'invalid_request',
  'a negative after_seq is refused');


-- -----------------------------------------------------------------------------
-- Chat history: time ranges, rewind, item shape
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
insert into public.messages (room_id, user_id, client_id, body, created_at, seq, broadcast_at)
select '05a00000-0000-4000-8000-000000000002', tests.uid('history-host'), 'time-' || n, 'At minute ' || n,
       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 minute', n, now()
from generate_series(1, 5) as n;
insert into public.messages (room_id, user_id, client_id, body, created_at, seq, broadcast_at)
select '05a00000-0000-4000-8000-000000000003', tests.uid('history-host'), 'rewind-' || n, 'Rewind ' || n,
       now() - ago, n, now()
from (values (1, interval '10 minutes'), (2, interval '5 minutes'), (3, interval '30 seconds'),
             (4, interval '20 seconds'), (5, interval '10 seconds')) as t (n, ago);
insert into public.messages (room_id, user_id, client_id, body, created_at, seq, broadcast_at)
select '05a00000-0000-4000-8000-000000000004', tests.uid('history-host'), 'busy-' || n, 'Busy ' || n,
       now() - (106 - n) * interval '100 milliseconds', n, now()
from generate_series(1, 105) as n;
-- Timestamps reach clients in whole milliseconds: one at 00:04:00.0009 shows as 00:04:00.000.
insert into public.messages (room_id, user_id, client_id, body, created_at, seq, broadcast_at)
select '05a00000-0000-4000-8000-000000000005', tests.uid('history-host'), client_id, client_id, at, n, now()
from (values (1, 'edge-before', timestamptz '2026-01-01 00:01:59.999+00'),
             (2, 'edge-start', timestamptz '2026-01-01 00:02:00+00'),
             (3, 'edge-end', timestamptz '2026-01-01 00:04:00.0009+00'),
             (4, 'edge-after', timestamptz '2026-01-01 00:04:00.001+00')) as t (n, client_id, at);
select tests.authenticate_as('history-listener');

select is(
  pg_temp.client_ids(edge.channel_history('room:05a00000-0000-4000-8000-000000000002:chat',
    start_ms => private.epoch_ms('2026-01-01 00:02:00+00'), end_ms => private.epoch_ms('2026-01-01 00:04:00+00'))),
  array['time-4', 'time-3', 'time-2'],
  'start_ms and end_ms are inclusive (backwards)');
select is(
  pg_temp.client_ids(edge.channel_history('room:05a00000-0000-4000-8000-000000000002:chat', direction => 'forwards',
    start_ms => private.epoch_ms('2026-01-01 00:02:00+00'), end_ms => private.epoch_ms('2026-01-01 00:04:00+00'))),
  array['time-2', 'time-3', 'time-4'],
  'start_ms and end_ms are inclusive (forwards)');
select is(
  pg_temp.client_ids(edge.channel_history('room:05a00000-0000-4000-8000-000000000005:chat', direction => 'forwards',
    start_ms => private.epoch_ms('2026-01-01 00:02:00+00'), end_ms => private.epoch_ms('2026-01-01 00:04:00+00'))),
  array['edge-start', 'edge-end'],
  'start_ms and end_ms are inclusive to the millisecond and exclude the next one on either side');
select is(
  pg_temp.client_ids(edge.channel_history('room:05a00000-0000-4000-8000-000000000002:chat', rewind_items => 10)),
  array['time-1', 'time-2', 'time-3', 'time-4', 'time-5'],
  'rewind_items larger than the history gives all of it, oldest first');
select is(
  pg_temp.client_ids(edge.channel_history('room:05a00000-0000-4000-8000-000000000003:chat', rewind_ms => 60000)),
  array['rewind-3', 'rewind-4', 'rewind-5'],
  'rewind_ms gives the messages within that time, oldest first');
select is(
  pg_temp.client_ids(edge.channel_history('room:05a00000-0000-4000-8000-000000000004:chat', rewind_ms => 60000)),
  (select array_agg('busy-' || n order by n) from generate_series(6, 105) as n),
  'rewind_ms gives at most 100, the newest, oldest first');

select is(
  edge.channel_history('room:05a00000-0000-4000-8000-000000000002:chat', max_items => 1) -> 'items' -> 0,
  (select jsonb_build_object(
     'id', m.id, 'event', 'chat:message',
     'data', jsonb_build_object('id', m.id, 'seq', 5, 'room_id', m.room_id, 'user_id', m.user_id,
                                'client_id', m.client_id, 'body', m.body, 'created_at', m.created_at),
     'timestamp', extract(epoch from timestamptz '2026-01-01 00:05:00+00')::bigint * 1000)
   from public.messages m where m.client_id = 'time-5'),
  'a chat item is {id, event: chat:message, data: the Message with its seq, timestamp in epoch ms}');


-- -----------------------------------------------------------------------------
-- Channel history (private.channel_messages): queue, retention, persist_last only
-- -----------------------------------------------------------------------------

select is(
  (select jsonb_agg(jsonb_build_object('event', i -> 'event', 'data', i -> 'data'))
   from jsonb_array_elements(
     edge.channel_history('room:05a00000-0000-4000-8000-000000000001:queue', direction => 'forwards') -> 'items') as i
   where i ->> 'event' in ('queue:added', 'queue:removed')),
  '[{"event": "queue:added", "data": {"song": "first"}}, {"event": "queue:removed", "data": {"song": "second"}}]'::jsonb,
  'queue history items carry their event and payload');
select is(
  (edge.channel_history('room:05a00000-0000-4000-8000-000000000001:queue', direction => 'forwards')
     -> 'items' -> 0 ->> 'id')::bigint,
  tests.kept('queue 1')::bigint,
  'a queue item''s id is the id publish returned');

-- Retention: queue history is kept 24 h.
select tests.clear_authentication();
select tests.keep('old',
  private.publish('room:05a00000-0000-4000-8000-000000000003:queue', 'queue:added', '{"song": "old"}'));
select tests.keep('recent 1',
  private.publish('room:05a00000-0000-4000-8000-000000000003:queue', 'queue:added', '{"song": "recent 1"}'));
select tests.keep('recent 2',
  private.publish('room:05a00000-0000-4000-8000-000000000003:queue', 'queue:added', '{"song": "recent 2"}'));
update private.channel_messages set created_at = now() - interval '25 hours' where id = tests.kept('old')::bigint;
select tests.authenticate_as('history-listener');

select is(
  (select array_agg((i ->> 'id')::bigint order by n)
   from jsonb_array_elements(
     edge.channel_history('room:05a00000-0000-4000-8000-000000000003:queue', direction => 'forwards') -> 'items')
     with ordinality as t (i, n)),
  array[tests.kept('recent 1')::bigint, tests.kept('recent 2')::bigint],
  'a queue message older than 24 h is not served');

select tests.clear_authentication();
select is(private.purge_channel_history(), 1::bigint,
  'the purge removes the one message past its retention and says so');
select results_eq(
  $$ select id from private.channel_messages where channel = 'room:05a00000-0000-4000-8000-000000000003:queue' order by id $$,
  $$ values (tests.kept('recent 1')::bigint), (tests.kept('recent 2')::bigint) $$,
  'the purge keeps the messages within their retention');

-- Playback keeps only its last message.
select tests.authenticate_as('history-listener');
select is(
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:playback', rewind_items => 1) -> 'items',
  jsonb_build_array(jsonb_build_object(
    'id', tests.kept('playback 2')::bigint, 'event', 'playback:position',
    'data', '{"position_ms": 2000, "seq": 2}'::jsonb, 'timestamp', private.epoch_ms(now()))),
  'rewind_items 1 on a playback channel gives its last published state');
select is(
  edge.channel_history('room:05a00000-0000-4000-8000-000000000001:playback', max_items => 1),
  jsonb_build_object('items', jsonb_build_array(jsonb_build_object(
    'id', tests.kept('playback 2')::bigint, 'event', 'playback:position',
    'data', '{"position_ms": 2000, "seq": 2}'::jsonb, 'timestamp', private.epoch_ms(now()))),
    'has_more', false, 'next_after_key', null),
  'max_items 1 on a playback channel gives its last published state');
select throws_ok(
  $$ select edge.channel_history('room:05a00000-0000-4000-8000-000000000001:playback', max_items => 2) $$,
  'WS400', 'invalid_request',
  'a playback channel answers only for its last message');
select throws_ok(
  $$ select edge.channel_history('room:05a00000-0000-4000-8000-000000000001') $$,
  'WS404', 'not_found',
  'the room meta channel keeps nothing: not_found');


-- -----------------------------------------------------------------------------
-- Who may read history
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select tests.keep('activity',
  private.publish('user:' || tests.uid('history-owner') || ':activity', 'activity:played',
                  '{"song": "mine"}'));
select tests.authenticate_as('history-owner');

select is(
  edge.channel_history('user:' || tests.uid('history-owner') || ':activity') -> 'items' -> 0 -> 'data',
  '{"song": "mine"}'::jsonb,
  'a user reads the history of their own activity channel');

select tests.clear_authentication();
select tests.authenticate_as('history-outsider');
select throws_ok(
  $$ select edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat') $$,
  'WS403', 'not_a_member',
  'a non-member cannot read a room''s chat history');
select throws_ok(
  format($$ select edge.channel_history('user:%s:activity') $$, tests.uid('history-owner')),
  'WS403', 'user_id_mismatch',
  'a user cannot read someone else''s activity history');

select tests.clear_authentication();
select tests.authenticate_as('history-guest');
select throws_ok(
  $$ select edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat') $$,
  'WS403', 'identified_only',
  'an anonymous member cannot read chat history');

select tests.clear_authentication();
select tests.authenticate_as('history-owner');
select set_config('request.headers', '{"x-forwarded-proto": "http"}', true);
select throws_ok(
  format($$ select edge.channel_history('user:%s:notifications') $$, tests.uid('history-owner')),
  'WS403', 'tls_required',
  'notifications history is not served over plain HTTP, even to their owner');
select set_config('request.headers', '', true);

select throws_ok(
  $$ select edge.channel_history('room:05A00000-0000-4000-8000-000000000001:chat') $$,
  'WS400', 'invalid_request',
  'a malformed channel is refused');

select tests.authenticate_as('history-listener');
select throws_ok(
  $$ select edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', max_items => null) $$,
  'WS400', 'invalid_request',
  'a null limit is refused, not read as no limit');
select throws_ok(
  $$ select edge.channel_history('room:05a00000-0000-4000-8000-000000000001:chat', direction => null) $$,
  'WS400', 'invalid_request',
  'a null direction is refused');

select tests.clear_authentication();

-- Publishes can commit out of order; the last message must stay the newest one.
insert into private.channel_last_messages (channel, id, event, data, created_at)
values ('room:05a00000-0000-4000-8000-000000000005:playback', 9000000000, 'playback:position',
        '{"seq": 999}', now());
select private.publish('room:05a00000-0000-4000-8000-000000000005:playback', 'playback:position', '{"seq": 1}');
select is(
  (select data ->> 'seq' from private.channel_last_messages
   where channel = 'room:05a00000-0000-4000-8000-000000000005:playback'),
  '999',
  'a publish that commits after a newer one does not replace the last message');

select * from finish();
rollback;
