-- =============================================================================
-- 10-publish: edge.publish, every persisted channel written through its rules, and the queue in
-- the late joiner's snapshot (API.md §3, §4 publish, room-context `queue`).
--
-- Notes:
--  * Callers are set with tests.authenticate_as / pg_temp.as_service, always after
--    tests.clear_authentication(); what landed (realtime.messages, private.*) is read back as
--    postgres, after tests.clear_authentication().
--  * A refused call runs inside throws_ok (or tests.failure), which rolls its statement back
--    the way a failed request's transaction is: "nothing written" is checked on the counts.
--  * realtime.send swallows its own errors, so every broadcast is checked by finding its row in
--    realtime.messages (whose payload gets Realtime's own `id` added).
--  * The whole file is one transaction, so now() is one instant: the rate-limit buckets run on
--    clock_timestamp() and are moved back in time by hand where a test needs time to pass.
--  * tests.keep keeps what edge.publish answered, so answers can be compared after switching
--    users.
--
-- Rooms:  ...0001 queue room (host, dj, listener, anonymous guest)   ...0002 a room whose queue
--         never had a message   ...0003 rate limits   ...0004 batches and ids   ...0005 sizes
-- =============================================================================
begin;
select plan(75);
select tests.allow_edge_calls();

select tests.create_user('publish-host');
select tests.create_user('publish-dj');
select tests.create_user('publish-listener');
select tests.create_user('publish-outsider');
select tests.create_user('publish-guest', true);
select tests.create_user('publish-notified');

insert into public.rooms (id, name, host_id) values
  ('10a00000-0000-4000-8000-000000000001', 'Queue room', tests.uid('publish-host')),
  ('10a00000-0000-4000-8000-000000000002', 'Quiet queue room', tests.uid('publish-host')),
  ('10a00000-0000-4000-8000-000000000003', 'Rate room', tests.uid('publish-host')),
  ('10a00000-0000-4000-8000-000000000004', 'Batch room', tests.uid('publish-host')),
  ('10a00000-0000-4000-8000-000000000005', 'Size room', tests.uid('publish-host'));
insert into public.room_members (room_id, user_id, role) values
  ('10a00000-0000-4000-8000-000000000001', tests.uid('publish-dj'), 'dj'),
  ('10a00000-0000-4000-8000-000000000001', tests.uid('publish-listener'), 'listener'),
  ('10a00000-0000-4000-8000-000000000001', tests.uid('publish-guest'), 'listener'),
  ('10a00000-0000-4000-8000-000000000002', tests.uid('publish-listener'), 'listener'),
  ('10a00000-0000-4000-8000-000000000003', tests.uid('publish-dj'), 'dj');

-- One message of a publish request.
create function pg_temp.message(channel text, event text, payload jsonb, extra jsonb default '{}')
returns jsonb
language sql immutable as $$
  select jsonb_build_object('channel', channel, 'event', event, 'payload', payload) || extra
$$;
-- The messages of a publish answer as (id, event, duplicate), in order.
create function pg_temp.answers(result jsonb) returns text[]
language sql immutable as $$
  select coalesce(array_agg(format('%s %s %s', p ->> 'id', p ->> 'event', p ->> 'duplicate') order by n), '{}')
  from jsonb_array_elements(result -> 'published') with ordinality as t (p, n)
$$;
-- Broadcasts and history rows of a channel (read as postgres).
create function pg_temp.sent(topic text) returns int
language sql stable as $$
  select count(*)::int from realtime.messages m where m.topic = sent.topic and m.extension = 'broadcast'
$$;
create function pg_temp.history_rows(channel text) returns int
language sql stable as $$
  select count(*)::int from private.channel_messages m where m.channel = history_rows.channel
$$;
create function pg_temp.as_service() returns void
language sql as $$
  select tests.act_as('service_role', '{"role": "service_role"}')
$$;
-- Our migrations take EXECUTE away from PUBLIC by default; these are called while acting as the
-- API roles.
grant execute on function pg_temp.message(text, text, jsonb, jsonb), pg_temp.answers(jsonb),
  pg_temp.as_service() to public;


-- -----------------------------------------------------------------------------
-- The host publishes the queue state: broadcast, history, last message, snapshot
-- -----------------------------------------------------------------------------

select tests.authenticate_as('publish-host');
select tests.keep('host', edge.publish(jsonb_build_array(pg_temp.message(
  'room:10a00000-0000-4000-8000-000000000001:queue', 'queue:updated', '{"songs": ["a", "b"], "version": 1}'))));
select tests.clear_authentication();

select is(
  (tests.kept('host') -> 'published' -> 0) - 'id',
  jsonb_build_object('channel', 'room:10a00000-0000-4000-8000-000000000001:queue', 'event', 'queue:updated',
                     'timestamp', private.epoch_ms(now()), 'duplicate', false),
  'the answer gives channel, event, timestamp (epoch ms) and duplicate false');
select is(
  (tests.kept('host') -> 'published' -> 0 ->> 'id'),
  (select id::text from private.channel_messages where channel = 'room:10a00000-0000-4000-8000-000000000001:queue'),
  'without a publisher id, the answer''s id is the message''s number, as text');
select is(
  (select jsonb_agg(jsonb_build_array(m.private, m.event, m.payload - 'id'))
   from realtime.messages m
   where m.topic = 'room:10a00000-0000-4000-8000-000000000001:queue' and m.extension = 'broadcast'),
  '[[true, "queue:updated", {"songs": ["a", "b"], "version": 1}]]'::jsonb,
  'the message is broadcast once on the private channel, as its event with its payload');
select results_eq(
  $$ select id::text, event, data from private.channel_messages
     where channel = 'room:10a00000-0000-4000-8000-000000000001:queue' $$,
  $$ values (tests.kept('host') -> 'published' -> 0 ->> 'id', 'queue:updated'::text,
             '{"songs": ["a", "b"], "version": 1}'::jsonb) $$,
  'the message is kept in the queue''s history');
select results_eq(
  $$ select id::text, event, data from private.channel_last_messages
     where channel = 'room:10a00000-0000-4000-8000-000000000001:queue' $$,
  $$ values (tests.kept('host') -> 'published' -> 0 ->> 'id', 'queue:updated'::text,
             '{"songs": ["a", "b"], "version": 1}'::jsonb) $$,
  'the message is kept as the queue''s last message');

select tests.authenticate_as('publish-listener');
select is(
  edge.channel_history('room:10a00000-0000-4000-8000-000000000001:queue', rewind_items => 1) -> 'items',
  jsonb_build_array(jsonb_build_object(
    'id', (tests.kept('host') -> 'published' -> 0 ->> 'id')::bigint, 'event', 'queue:updated',
    'data', '{"songs": ["a", "b"], "version": 1}'::jsonb, 'timestamp', private.epoch_ms(now()))),
  'a listener''s rewind 1 on the queue serves the published message');
select is(
  edge.room_context('10a00000-0000-4000-8000-000000000001') -> 'queue',
  jsonb_build_object(
    'id', (tests.kept('host') -> 'published' -> 0 ->> 'id')::bigint, 'event', 'queue:updated',
    'data', '{"songs": ["a", "b"], "version": 1}'::jsonb, 'timestamp', private.epoch_ms(now())),
  'room_context''s queue is the last queue message as {id, event, data, timestamp}');
select is(
  edge.room_context('10a00000-0000-4000-8000-000000000002') -> 'queue',
  'null'::jsonb,
  'room_context''s queue is null for a room whose queue has no message');

select tests.clear_authentication();
select tests.authenticate_as('publish-dj');
select tests.keep('dj', edge.publish(jsonb_build_array(pg_temp.message(
  'room:10a00000-0000-4000-8000-000000000001:queue', 'queue:updated', '{"songs": ["b"], "version": 2}'))));
select tests.clear_authentication();

select is(tests.kept('dj') -> 'published' -> 0 ->> 'duplicate', 'false', 'the dj may publish on the queue');
select results_eq(
  $$ select id::text, data from private.channel_last_messages
     where channel = 'room:10a00000-0000-4000-8000-000000000001:queue' $$,
  $$ values (tests.kept('dj') -> 'published' -> 0 ->> 'id', '{"songs": ["b"], "version": 2}'::jsonb) $$,
  'the dj''s message replaces the queue''s last message');
select tests.authenticate_as('publish-listener');
select is(
  edge.room_context('10a00000-0000-4000-8000-000000000001') -> 'queue' -> 'data',
  '{"songs": ["b"], "version": 2}'::jsonb,
  'room_context''s queue follows the latest message');
select is(
  (select jsonb_agg(i -> 'data' order by n)
   from jsonb_array_elements(
     edge.channel_history('room:10a00000-0000-4000-8000-000000000001:queue', direction => 'forwards') -> 'items')
     with ordinality as t (i, n)),
  '[{"songs": ["a", "b"], "version": 1}, {"songs": ["b"], "version": 2}]'::jsonb,
  'the queue''s history keeps both messages, in order');


-- -----------------------------------------------------------------------------
-- Who may publish
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select tests.authenticate_as('publish-listener');
select throws_ok(
  $$ select edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000001:queue",
                             "event": "queue:updated", "payload": {"songs": []}}]') $$,
  'WS403', null,
  'a listener may not publish on the queue');

select tests.clear_authentication();
select tests.authenticate_as('publish-outsider');
select throws_ok(
  $$ select edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000001:queue",
                             "event": "queue:updated", "payload": {"songs": []}}]') $$,
  'WS403', null,
  'someone who is not a member may not publish on the queue');

select tests.clear_authentication();
select tests.authenticate_as('publish-guest');
select throws_ok(
  $$ select edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000001:queue",
                             "event": "queue:updated", "payload": {"songs": []}}]') $$,
  'WS403', 'identified_only',
  'an anonymous member may not publish: identified_only');

select tests.clear_authentication();
select tests.authenticate_as('publish-host');
select throws_ok(
  $$ select edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000001:chat",
                             "event": "note", "payload": {"body": "hi"}}]') $$,
  'WS403', null,
  'the host may not publish on the chat channel (chat goes through chat-send)');
select throws_ok(
  $$ select edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000001:playback",
                             "event": "note", "payload": {"position_ms": 0}}]') $$,
  'WS403', null,
  'the host may not publish on the playback channel (playback goes through playback)');
select throws_ok(
  $$ select edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000001",
                             "event": "note", "payload": {"name": "renamed"}}]') $$,
  'WS403', null,
  'the host may not publish on the room meta channel');
select throws_ok(
  format($$ select edge.publish('[{"channel": "user:%s:notifications", "event": "note", "payload": {}}]') $$,
         tests.uid('publish-host')),
  'WS403', null,
  'a user may not publish on their own notifications channel');

select tests.clear_authentication();
select is(pg_temp.sent('room:10a00000-0000-4000-8000-000000000001:queue'), 2,
  'the refused publishes broadcast nothing on the queue');
select is(
  pg_temp.sent('room:10a00000-0000-4000-8000-000000000001:chat') + pg_temp.sent('room:10a00000-0000-4000-8000-000000000001:playback')
    + pg_temp.sent('room:10a00000-0000-4000-8000-000000000001'),
  0,
  'nor on chat, playback or the room meta channel');
select is(pg_temp.history_rows('room:10a00000-0000-4000-8000-000000000001:queue'), 2,
  'and keep nothing in the queue''s history');


-- -----------------------------------------------------------------------------
-- The service role: notifications with push; push only where the rule enables it
-- -----------------------------------------------------------------------------

select pg_temp.as_service();
select tests.keep('notify', edge.publish(jsonb_build_array(pg_temp.message(
  'user:' || tests.uid('publish-notified') || ':notifications', 'notification:followed',
  '{"by": "someone"}', '{"push": {"title": "New follower", "body": "someone follows you"}}'))));
select tests.clear_authentication();

select is(tests.kept('notify') -> 'published' -> 0 ->> 'duplicate', 'false',
  'the service role may publish on a user''s notifications');
select results_eq(
  format($$ select id::text, channel, event, push from private.push_outbox where channel = 'user:%s:notifications' $$,
         tests.uid('publish-notified')),
  format($$ values (tests.kept('notify') -> 'published' -> 0 ->> 'id', 'user:%s:notifications'::text,
                    'notification:followed'::text, '{"title": "New follower", "body": "someone follows you"}'::jsonb) $$,
         tests.uid('publish-notified')),
  'its push lands in the push outbox, under the message''s id');
select is(pg_temp.sent('user:' || tests.uid('publish-notified') || ':notifications'), 1,
  'the notification is broadcast on the user''s channel');

select tests.authenticate_as('publish-notified');
select is(
  edge.channel_history('user:' || tests.uid('publish-notified') || ':notifications') -> 'items',
  jsonb_build_array(jsonb_build_object(
    'id', (tests.kept('notify') -> 'published' -> 0 ->> 'id')::bigint, 'event', 'notification:followed',
    'data', '{"by": "someone"}'::jsonb, 'timestamp', private.epoch_ms(now()))),
  'the user reads the notification back from history');
select is(
  edge.channel_history('user:' || tests.uid('publish-notified') || ':notifications', rewind_items => 1) -> 'items' -> 0 -> 'data',
  '{"by": "someone"}'::jsonb,
  'and from rewind 1');

select tests.clear_authentication();
select pg_temp.as_service();
select set_config('request.headers', '{"x-forwarded-proto": "http"}', true);
select throws_ok(
  format($$ select edge.publish('[{"channel": "user:%s:notifications", "event": "note", "payload": {}}]') $$,
         tests.uid('publish-notified')),
  'WS403', 'tls_required',
  'notifications are not published over plain HTTP');
select set_config('request.headers', '', true);
select throws_ok(
  $$ select edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000001:queue", "event": "queue:updated",
                            "payload": {"songs": []}, "push": {"title": "Queue changed"}}]') $$,
  'WS400', 'push_not_enabled',
  'push on the queue is refused, even to the service role: push_not_enabled');

select tests.clear_authentication();
select tests.authenticate_as('publish-host');
select throws_ok(
  $$ select edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000001:queue", "event": "queue:updated",
                            "payload": {"songs": []}, "push": {"title": "Queue changed"}}]') $$,
  'WS400', 'push_not_enabled',
  'push on the queue is refused to the host: push_not_enabled');

select tests.clear_authentication();
select is(
  (select count(*)::int from private.push_outbox where channel like 'room:10a00000-0000-4000-8000-000000000001%'),
  0,
  'a refused push leaves nothing in the outbox');
select is(pg_temp.sent('room:10a00000-0000-4000-8000-000000000001:queue'), 2,
  'nor a broadcast on the queue');


-- -----------------------------------------------------------------------------
-- Batches and idempotent ids
-- -----------------------------------------------------------------------------

select tests.authenticate_as('publish-host');
select tests.keep('batch', edge.publish(jsonb_build_array(
  pg_temp.message('room:10a00000-0000-4000-8000-000000000004:queue', 'queue:first', '{"n": 1}'),
  pg_temp.message('room:10a00000-0000-4000-8000-000000000004:queue', 'queue:second', '{"n": 2}'),
  pg_temp.message('room:10a00000-0000-4000-8000-000000000004:queue', 'queue:third', '{"n": 3}'))));
select tests.clear_authentication();

select is(
  (select array_agg(p ->> 'event' order by n)
   from jsonb_array_elements(tests.kept('batch') -> 'published') with ordinality as t (p, n)),
  array['queue:first', 'queue:second', 'queue:third'],
  'a batch is answered in request order');
select is(
  (select array_agg((p ->> 'id')::bigint order by n)
   from jsonb_array_elements(tests.kept('batch') -> 'published') with ordinality as t (p, n)),
  (select array_agg(id order by id) from private.channel_messages
   where channel = 'room:10a00000-0000-4000-8000-000000000004:queue'),
  'its ids are those of the kept messages');
select results_eq(
  $$ select event, data from private.channel_messages
     where channel = 'room:10a00000-0000-4000-8000-000000000004:queue' order by id $$,
  $$ values ('queue:first'::text, '{"n": 1}'::jsonb), ('queue:second', '{"n": 2}'), ('queue:third', '{"n": 3}') $$,
  'the messages are numbered in request order');
select is(
  (select data from private.channel_last_messages where channel = 'room:10a00000-0000-4000-8000-000000000004:queue'),
  '{"n": 3}'::jsonb,
  'the last of a batch is the channel''s last message');
select is(pg_temp.sent('room:10a00000-0000-4000-8000-000000000004:queue'), 3,
  'each message of the batch is broadcast');

select tests.authenticate_as('publish-host');
select tests.keep('with id', edge.publish(jsonb_build_array(pg_temp.message(
  'room:10a00000-0000-4000-8000-000000000004:queue', 'queue:added', '{"song": "original"}', '{"id": "add-song_1:x"}'))));
select tests.clear_authentication();
-- As if the first publish had been five seconds ago: a resend answers with its time, not now.
update private.published_ids set published_at = published_at - interval '5 seconds'
where channel = 'room:10a00000-0000-4000-8000-000000000004:queue' and id = 'add-song_1:x';
select tests.authenticate_as('publish-host');
select tests.keep('resent', edge.publish(jsonb_build_array(pg_temp.message(
  'room:10a00000-0000-4000-8000-000000000004:queue', 'queue:changed', '{"song": "changed"}', '{"id": "add-song_1:x"}'))));
select tests.keep('other channel', edge.publish(jsonb_build_array(pg_temp.message(
  'room:10a00000-0000-4000-8000-000000000001:queue', 'queue:added', '{"song": "elsewhere"}', '{"id": "add-song_1:x"}'))));
select tests.clear_authentication();

select is(
  (tests.kept('with id') -> 'published' -> 0) - 'timestamp',
  '{"id": "add-song_1:x", "channel": "room:10a00000-0000-4000-8000-000000000004:queue", "event": "queue:added",
    "duplicate": false}'::jsonb,
  'a message with an id is answered with that id');
select is(
  tests.kept('resent') -> 'published' -> 0,
  jsonb_build_object('id', 'add-song_1:x', 'channel', 'room:10a00000-0000-4000-8000-000000000004:queue',
                     'event', 'queue:added', 'duplicate', true,
                     'timestamp', private.epoch_ms(now() - interval '5 seconds')),
  'a resent id answers duplicate true with the first publish''s event and timestamp');
select is(
  (select count(*)::int from private.channel_messages
   where channel = 'room:10a00000-0000-4000-8000-000000000004:queue' and data ? 'song'),
  1,
  'a resent id is not kept twice');
select is(
  (select array_agg(m.payload ->> 'song') from realtime.messages m
   where m.topic = 'room:10a00000-0000-4000-8000-000000000004:queue' and m.payload ? 'song'),
  array['original'],
  'nor broadcast twice');
select is(
  (select data from private.channel_last_messages where channel = 'room:10a00000-0000-4000-8000-000000000004:queue'),
  '{"song": "original"}'::jsonb,
  'nor does it replace the last message');
select is(
  pg_temp.answers(tests.kept('other channel')),
  array['add-song_1:x queue:added false'],
  'the same id on another channel is a new message');
select is(
  (select array_agg(m.payload ->> 'song') from realtime.messages m
   where m.topic = 'room:10a00000-0000-4000-8000-000000000001:queue' and m.payload ? 'song'),
  array['elsewhere'],
  'and is broadcast on that channel');

select tests.authenticate_as('publish-host');
select tests.keep('mixed', edge.publish(jsonb_build_array(
  pg_temp.message('room:10a00000-0000-4000-8000-000000000004:queue', 'queue:a', '{"mixed": 1}', '{"id": "mixed-1"}'),
  pg_temp.message('room:10a00000-0000-4000-8000-000000000004:queue', 'queue:b', '{"mixed": 2}', '{"id": "add-song_1:x"}'),
  pg_temp.message('room:10a00000-0000-4000-8000-000000000004:queue', 'queue:c', '{"mixed": 3}', '{"id": "mixed-1"}'),
  pg_temp.message('room:10a00000-0000-4000-8000-000000000004:queue', 'queue:d', '{"mixed": 4}'))));
select tests.clear_authentication();

select is(
  pg_temp.answers(tests.kept('mixed')),
  array['mixed-1 queue:a false', 'add-song_1:x queue:added true', 'mixed-1 queue:a true',
        (select id::text from private.channel_messages where data = '{"mixed": 4}') || ' queue:d false'],
  'in a batch, resent ids (earlier or within the batch) are duplicates and the others are published, in order');
select results_eq(
  $$ select data from private.channel_messages where channel = 'room:10a00000-0000-4000-8000-000000000004:queue'
     and data ? 'mixed' order by id $$,
  $$ values ('{"mixed": 1}'::jsonb), ('{"mixed": 4}') $$,
  'only the new messages of that batch are kept');


-- -----------------------------------------------------------------------------
-- All or nothing: a batch failing in its third message writes nothing
-- -----------------------------------------------------------------------------

select tests.authenticate_as('publish-host');
select throws_ok(
  $$ select edge.publish('[
       {"channel": "room:10a00000-0000-4000-8000-000000000004:queue", "event": "queue:x", "payload": {"all": 1}, "id": "all-1"},
       {"channel": "room:10a00000-0000-4000-8000-000000000004:queue", "event": "queue:x", "payload": {"all": 2}},
       {"channel": "room:10a00000-0000-4000-8000-000000000004:queue", "event": "chat:batch", "payload": {"all": 3}}]') $$,
  'WS400', 'invalid_request',
  'a batch whose third message has a reserved event is refused');
select throws_ok(
  $$ select edge.publish('[
       {"channel": "room:10a00000-0000-4000-8000-000000000004:queue", "event": "queue:x", "payload": {"all": 1}, "id": "all-1"},
       {"channel": "room:10a00000-0000-4000-8000-000000000004:queue", "event": "queue:x", "payload": {"all": 2}},
       {"channel": "room:10a00000-0000-4000-8000-000000000004:chat", "event": "queue:x", "payload": {"all": 3}}]') $$,
  'WS403', null,
  'a batch whose third message is on a channel the caller may not publish on is refused');
select throws_ok(
  $$ select edge.publish(jsonb_build_array(
       pg_temp.message('room:10a00000-0000-4000-8000-000000000004:queue', 'queue:x', '{"all": 1}', '{"id": "all-1"}'),
       pg_temp.message('room:10a00000-0000-4000-8000-000000000004:queue', 'queue:x', '{"all": 2}'),
       pg_temp.message('room:10a00000-0000-4000-8000-000000000004:queue', 'queue:x',
                       jsonb_build_object('all', repeat('x', 70000))))) $$,
  'WS413', 'payload_too_large',
  'a batch whose third message is too large is refused');
select tests.clear_authentication();

select is(
  (select count(*)::int from private.channel_messages where data ? 'all')
    + (select count(*)::int from realtime.messages m where m.payload ? 'all')
    + (select count(*)::int from private.channel_last_messages where data ? 'all'),
  0,
  'nothing of the first two messages is kept or broadcast');
select is_empty(
  $$ select 1 from private.published_ids where id = 'all-1' $$,
  'nor is the first message''s id taken');

select tests.authenticate_as('publish-host');
select is(
  pg_temp.answers(edge.publish('[
    {"channel": "room:10a00000-0000-4000-8000-000000000004:queue", "event": "queue:x", "payload": {"all": 1}, "id": "all-1"}]')),
  array['all-1 queue:x false'],
  'so the corrected batch publishes it, not as a duplicate');


-- -----------------------------------------------------------------------------
-- Event names and message shapes
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select pg_temp.as_service();
select is(
  (select array_agg(e order by e) from unnest(array['chat:batch', 'chat:message', 'playback:position',
                                                   'presence:member_added', 'presence:x']) as e
   where tests.failure(format(
     $$ select edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000005", "event": %s, "payload": {}}]') $$,
     to_jsonb(e))) ->> 'code' = 'WS400'),
  array['chat:batch', 'chat:message', 'playback:position', 'presence:member_added', 'presence:x'],
  'the chat:, playback: and presence: prefixes are the backend''s: WS400, even for the service role');
select is(
  (select array_agg(e order by e) from unnest(array['', 'has space', 'slash/y', 'tab	x', 'é', 'quote"x',
                                                   repeat('a', 101)]) as e
   where tests.failure(format(
     $$ select edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000005:queue", "event": %s, "payload": {}}]') $$,
     to_jsonb(e))) ->> 'code' = 'WS400'),
  (select array_agg(e order by e) from unnest(array['', 'has space', 'slash/y', 'tab	x', 'é', 'quote"x',
                                                   repeat('a', 101)]) as e),
  'an event outside 1 to 100 of A-Z a-z 0-9 : _ . - is WS400');
select is(
  pg_temp.answers(edge.publish(jsonb_build_array(
    pg_temp.message('room:10a00000-0000-4000-8000-000000000005:queue', repeat('a', 100), '{}', '{"id": "event-100"}'),
    pg_temp.message('room:10a00000-0000-4000-8000-000000000005:queue', 'Queue.v2:item_added-1', '{}', '{"id": "event-mixed"}'),
    pg_temp.message('room:10a00000-0000-4000-8000-000000000005:queue', 'chatter', '{}', '{"id": "event-chatter"}')))),
  array['event-100 ' || repeat('a', 100) || ' false', 'event-mixed Queue.v2:item_added-1 false',
        'event-chatter chatter false'],
  'events of 100 characters, of every allowed character, or merely starting with "chat" are published');
select is(
  (select array_agg(bad order by bad) from unnest(array[
     '[]', '{}', 'null', '"x"',
     (select jsonb_agg(pg_temp.message('room:10a00000-0000-4000-8000-000000000005:queue', 'e', '{}'))::text
      from generate_series(1, 51)),
     '[1]', '[{"event": "e", "payload": {}}]',
     '[{"channel": "room:10a00000-0000-4000-8000-000000000005:queue", "payload": {}}]',
     '[{"channel": "room:10a00000-0000-4000-8000-000000000005:queue", "event": "e"}]',
     '[{"channel": "room:10a00000-0000-4000-8000-000000000005:queue", "event": "e", "payload": [1]}]',
     '[{"channel": "room:10a00000-0000-4000-8000-000000000005:queue", "event": "e", "payload": "x"}]',
     '[{"channel": "room:10a00000-0000-4000-8000-000000000005:queue", "event": 5, "payload": {}}]',
     '[{"channel": "room:10a00000-0000-4000-8000-000000000005:queue", "event": "e", "payload": {}, "id": "has space"}]',
     '[{"channel": "room:10a00000-0000-4000-8000-000000000005:queue", "event": "e", "payload": {}, "id": ""}]',
     '[{"channel": "room:10a00000-0000-4000-8000-000000000005:queue", "event": "e", "payload": {}, "id": 7}]',
     format('[{"channel": "room:10a00000-0000-4000-8000-000000000005:queue", "event": "e", "payload": {}, "id": "%s"}]',
            repeat('i', 65)),
     '[{"channel": "room:10a00000-0000-4000-8000-000000000005:queue", "event": "e", "payload": {}, "push": "x"}]',
     '[{"channel": "room:nope:queue", "event": "e", "payload": {}}]',
     '[{"channel": "room:10A00000-0000-4000-8000-000000000005:queue", "event": "e", "payload": {}}]',
     '[{"channel": "room:10a00000-0000-4000-8000-000000000005:lyrics", "event": "e", "payload": {}}]']) as bad
   where tests.failure(format('select edge.publish(%L)', bad)) ->> 'message' is distinct from 'invalid_request'),
  null,
  'every malformed request (not 1..50 messages, a message without channel, event or object payload, a bad id or push, a channel that does not parse) is WS400 invalid_request');
select tests.clear_authentication();
select is(pg_temp.history_rows('room:10a00000-0000-4000-8000-000000000005:queue'), 3,
  'of all of those, only the three valid events were kept');


-- -----------------------------------------------------------------------------
-- Payload limit: the rule's max_payload_bytes (64 KiB), the payload as JSON text
-- -----------------------------------------------------------------------------

select tests.authenticate_as('publish-host');
-- {"blob": "…"} is 12 bytes plus the string as JSON text.
select lives_ok(
  $$ select tests.keep('at limit', edge.publish(jsonb_build_array(pg_temp.message(
       'room:10a00000-0000-4000-8000-000000000005:queue', 'queue:big',
       jsonb_build_object('blob', repeat('x', 65536 - 12)), '{"id": "at-limit"}')))) $$,
  'a payload of exactly the rule''s limit is accepted');
select is(pg_temp.answers(tests.kept('at limit')), array['at-limit queue:big false'],
  'and published');
select throws_ok(
  format($$ select edge.publish(jsonb_build_array(
              pg_temp.message('room:10a00000-0000-4000-8000-000000000005:queue', 'queue:small', '{"small": true}'),
              pg_temp.message('room:10a00000-0000-4000-8000-000000000005:queue', 'queue:big',
                              jsonb_build_object('blob', repeat('x', %s))))) $$, 65536 - 12 + 1),
  'WS413', 'payload_too_large',
  'one byte more is WS413 payload_too_large');
select tests.clear_authentication();
select is(
  (select count(*)::int from private.channel_messages where channel = 'room:10a00000-0000-4000-8000-000000000005:queue'
     and event in ('queue:small', 'queue:big'))
    + (select count(*)::int from realtime.messages m where m.topic = 'room:10a00000-0000-4000-8000-000000000005:queue'
         and m.event in ('queue:small', 'queue:big')),
  2,
  'nothing of the refused batch is kept or broadcast (only the message at the limit is)');
select pg_temp.as_service();
select throws_ok(
  format($$ select edge.publish(jsonb_build_array(pg_temp.message('user:%s:notifications', 'note',
                                  jsonb_build_object('blob', repeat('x', 70000))))) $$, tests.uid('publish-notified')),
  'WS413', 'payload_too_large',
  'the service role is held to the payload limit too');


-- -----------------------------------------------------------------------------
-- Rate limit: the queue's rule, 10 a second with bursts of 20, per caller and channel
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select tests.authenticate_as('publish-host');
select is(
  jsonb_array_length(edge.publish((select jsonb_agg(pg_temp.message(
    'room:10a00000-0000-4000-8000-000000000003:queue', 'queue:burst', jsonb_build_object('n', n), jsonb_build_object('id', 'burst-' || n)))
    from generate_series(1, 20) as n)) -> 'published'),
  20,
  'a burst of 20 on the queue is published');
select tests.keep('limited',
  tests.failure($$ select edge.publish((select jsonb_agg(pg_temp.message(
    'room:10a00000-0000-4000-8000-000000000003:queue', 'queue:over', jsonb_build_object('n', n)))
    from generate_series(1, 10) as n)) $$));
select is(
  tests.kept('limited') - 'hint',
  '{"code": "WS429", "message": "rate_limited"}'::jsonb,
  'the next ten within the second are WS429 rate_limited');
select matches(tests.kept('limited') ->> 'hint', '^[1-9][0-9]*$',
  'with a retry hint in whole seconds');
select lives_ok(
  $$ select tests.keep('resent while limited', edge.publish(
       '[{"channel": "room:10a00000-0000-4000-8000-000000000003:queue", "event": "queue:burst",
          "payload": {"n": 20}, "id": "burst-20"}]')) $$,
  'a resent id is not refused while the caller is limited');
select is(pg_temp.answers(tests.kept('resent while limited')), array['burst-20 queue:burst true'],
  'it answers duplicate: a retry learns its message went out');
select is(
  jsonb_array_length(edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000004:queue",
                                     "event": "queue:other", "payload": {}}]') -> 'published'),
  1,
  'the limit is per channel: the host may still publish on another room''s queue');

select tests.clear_authentication();
select tests.authenticate_as('publish-dj');
select is(
  jsonb_array_length(edge.publish((select jsonb_agg(pg_temp.message(
    'room:10a00000-0000-4000-8000-000000000003:queue', 'queue:dj', jsonb_build_object('n', n)))
    from generate_series(1, 20) as n)) -> 'published'),
  20,
  'the limit is per caller: the dj has a burst of their own on the same queue');

select tests.clear_authentication();
select is(
  (select count(*)::int from private.channel_messages where channel = 'room:10a00000-0000-4000-8000-000000000003:queue'
     and event = 'queue:over')
    + (select count(*)::int from realtime.messages m where m.topic = 'room:10a00000-0000-4000-8000-000000000003:queue'
         and m.event = 'queue:over'),
  0,
  'nothing of the limited batch is kept or broadcast');
-- The host's bucket, emptied a second ago: ten tokens now, not eleven.
update private.rate_buckets set tokens = 0, refilled_at = clock_timestamp() - interval '1 second'
where channel = 'room:10a00000-0000-4000-8000-000000000003:queue' and user_id = tests.uid('publish-host');
select tests.authenticate_as('publish-host');
select is(
  tests.failure($$ select edge.publish((select jsonb_agg(pg_temp.message(
    'room:10a00000-0000-4000-8000-000000000003:queue', 'queue:refilled', jsonb_build_object('n', n)))
    from generate_series(1, 11) as n)) $$) ->> 'code',
  'WS429',
  'a second later, eleven are too many');
select is(
  jsonb_array_length(edge.publish((select jsonb_agg(pg_temp.message(
    'room:10a00000-0000-4000-8000-000000000003:queue', 'queue:refilled', jsonb_build_object('n', n)))
    from generate_series(1, 10) as n)) -> 'published'),
  10,
  'and ten are published: the bucket refills at 10 a second');

select tests.clear_authentication();
select pg_temp.as_service();
select is(
  jsonb_array_length(edge.publish((select jsonb_agg(pg_temp.message(
    'room:10a00000-0000-4000-8000-000000000003:queue', 'queue:service', jsonb_build_object('n', n)))
    from generate_series(1, 50) as n)) -> 'published'),
  50,
  'the service role is not rate limited');

-- Chat and playback have their own functions: not even the service role publishes on them.
select pg_temp.as_service();
select throws_ok(
  $$ select edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000001:playback",
                             "event": "note", "payload": {"position_ms": 0}}]') $$,
  'WS403', null,
  'the service role may not publish on a playback channel (it would replace the kept state)');
select throws_ok(
  $$ select edge.publish('[{"channel": "room:10a00000-0000-4000-8000-000000000001:chat",
                             "event": "note", "payload": {"body": "hi"}}]') $$,
  'WS403', null,
  'the service role may not publish on a chat channel (chat is numbered by seq)');

select tests.clear_authentication();
select * from finish();
rollback;
