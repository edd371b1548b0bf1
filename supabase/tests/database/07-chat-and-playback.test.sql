-- =============================================================================
-- 07-chat-and-playback: edge.send_chat (chat-send) and the flushes that number and send chat,
-- edge.set_playback (playback) and its conflation window, and their rate limits (API.md §2-§4).
--
-- Notes:
--  * send_chat / set_playback run as the caller (tests.authenticate_as, always after
--    tests.clear_authentication(): the helpers read auth.users); their answers are kept with
--    tests.keep so they can be checked as postgres afterwards (tests.kept).
--  * The flushers (private.flush_window, private.flush_due_windows) are the backend's and run as
--    postgres. The chat batch interval is a minute in this file, so that no interval passes
--    while it runs; pg_temp.interval_passed moves a room's last batch a minute back. A playback
--    window is made due with an UPDATE of its due_at. No test waits on the clock.
--  * Broadcasts are rows in realtime.messages, found by topic and event. realtime.send adds an
--    `id` to every payload; the rule's max_payload_bytes applies to the payload without it.
--  * A message whose transaction commits late took its id before messages that went out ahead
--    of it: simulated by taking an id from the identity first and writing the row with it
--    (overriding system value) once the others have gone out.
--  * Fixtures that are not under test (users, rooms, songs, chat that is already waiting) are
--    written as postgres. Changes to channel rules are undone before the next section, except
--    the batch interval.
--
-- Rooms:  ...0001 chat: send, duplicates, push, flush, interval, errors, invariants
--         ...0002 250 waiting messages                 ...0003 batches cut by max_payload_bytes
--         ...0004 the sweeper                          ...0005 rate limit
--         ...0006 playback                             ...0007 a message that commits late
-- =============================================================================
begin;
select plan(86);
select tests.allow_edge_calls();

select tests.create_user('chat-host');
select tests.create_user('chat-member');
select tests.create_user('chat-outsider');
select tests.create_user('chat-guest', true);
select tests.create_user('chat-busy');
select tests.create_user('chat-limited');

insert into public.rooms (id, name, host_id) values
  ('07c00000-0000-4000-8000-000000000001', 'Chat room', tests.uid('chat-host')),
  ('07c00000-0000-4000-8000-000000000002', 'Busy chat room', tests.uid('chat-host')),
  ('07c00000-0000-4000-8000-000000000003', 'Long chat room', tests.uid('chat-host')),
  ('07c00000-0000-4000-8000-000000000004', 'Abandoned chat room', tests.uid('chat-host')),
  ('07c00000-0000-4000-8000-000000000005', 'Rate limited room', tests.uid('chat-host')),
  ('07c00000-0000-4000-8000-000000000006', 'Playback room', tests.uid('chat-host')),
  ('07c00000-0000-4000-8000-000000000007', 'Late chat room', tests.uid('chat-host'));
insert into public.room_members (room_id, user_id, role)
select room_id::uuid, tests.uid(who), 'listener'
from (values ('07c00000-0000-4000-8000-000000000001'), ('07c00000-0000-4000-8000-000000000002'),
             ('07c00000-0000-4000-8000-000000000003'), ('07c00000-0000-4000-8000-000000000004'),
             ('07c00000-0000-4000-8000-000000000006'), ('07c00000-0000-4000-8000-000000000007')) as r (room_id)
cross join (values ('chat-member'), ('chat-guest')) as u (who);
insert into public.room_members (room_id, user_id, role) values
  ('07c00000-0000-4000-8000-000000000002', tests.uid('chat-busy'), 'listener'),
  ('07c00000-0000-4000-8000-000000000005', tests.uid('chat-limited'), 'listener');

insert into public.songs (id, title, artist, duration_ms) values
  ('07c0c0de-0000-4000-8000-000000000001', 'Window Song', 'The Batches', 200000),
  ('07c0c0de-0000-4000-8000-000000000002', 'Conflation Blues', 'The Batches', 180000);

-- A minute between a room's interval batches (100 ms in the rule) for the whole file.
update private.channel_rules set batch_interval_ms = 60000 where namespace = 'room' and kind = 'chat';

-- `n` chat messages {client_id: prefix-i, body: 'Message i'}, as send_chat takes them.
create function pg_temp.chat(prefix text, n int) returns jsonb
language sql immutable as $$
  select jsonb_agg(jsonb_build_object('client_id', prefix || '-' || i, 'body', 'Message ' || i) order by i)
  from generate_series(1, n) as i
$$;
-- Our migrations take EXECUTE away from PUBLIC by default; this is called while acting as the
-- API roles.
grant execute on function pg_temp.chat(text, int) to public;

-- The chat:batch broadcasts of a room, without realtime's id, ordered by their first message's
-- seq (every row of a transaction has the same inserted_at).
create function pg_temp.batches(room uuid) returns jsonb
language sql stable as $$
  select coalesce(jsonb_agg(r.payload - 'id' order by (r.payload -> 'messages' -> 0 ->> 'seq')::bigint), '[]')
  from realtime.messages r
  where r.topic = 'room:' || room || ':chat' and r.event = 'chat:batch'
$$;
-- The seqs of a room's batches, batch after batch, each in its own order: 1..N when every
-- batch is ascending, continues where the one before ended, and no seq is missing or repeated.
create function pg_temp.broadcast_seqs(room uuid) returns int[]
language sql stable as $$
  select coalesce(array_agg((m.item ->> 'seq')::int order by b.n, m.n), '{}')
  from jsonb_array_elements(pg_temp.batches(room)) with ordinality as b (batch, n)
  cross join jsonb_array_elements(b.batch -> 'messages') with ordinality as m (item, n)
$$;
-- How many of a room's messages wait for their batch (no seq yet).
create function pg_temp.unsent(room uuid) returns int
language sql stable as $$
  select count(*)::int from public.messages m where m.room_id = room and m.seq is null
$$;
-- As if the room's last interval batch left a minute ago: its next one may go.
create function pg_temp.interval_passed(room uuid) returns void
language sql as $$
  update private.chat_flushes f set last_batch_at = f.last_batch_at - interval '1 minute' where f.room_id = room
$$;
-- The playback:position broadcasts of a room.
create function pg_temp.playback_broadcasts(room uuid) returns int
language sql stable as $$
  select count(*)::int from realtime.messages r
  where r.topic = 'room:' || room || ':playback' and r.event = 'playback:position'
$$;
-- The bytes of {messages: the first n messages waiting in a room}, numbered on from the room's
-- highest seq, as flush_chat would publish them.
create function pg_temp.waiting_payload_bytes(room uuid, n int) returns int
language sql stable as $$
  select octet_length(jsonb_build_object('messages',
           jsonb_agg(private.message_json(w.m) || jsonb_build_object('seq', w.seq) order by w.seq))::text)
  from (select m, (select coalesce(max(s.seq), 0) from public.messages s where s.room_id = room)
                  + row_number() over (order by m.id) as seq
        from public.messages m where m.room_id = room and m.seq is null order by m.id limit n) as w
$$;


-- -----------------------------------------------------------------------------
-- send_chat as a member: stored at once, sent later
-- -----------------------------------------------------------------------------

select tests.authenticate_as('chat-member');
select tests.keep('first', edge.send_chat('07c00000-0000-4000-8000-000000000001', '[
     {"client_id": "first-b", "body": "Hello"},
     {"client_id": "first-a", "body": "World", "push": {"title": "New message"}}
   ]'));
select tests.keep('second', edge.send_chat('07c00000-0000-4000-8000-000000000001', '[
     {"client_id": "second-a", "body": "Third"},
     {"client_id": "first-b", "body": "Hello again"},
     {"client_id": "second-a", "body": "Third again"}
   ]'));
select tests.clear_authentication();

select is(
  tests.kept('first') -> 'accepted',
  (select jsonb_agg(jsonb_build_object('client_id', m.client_id, 'id', m.id, 'created_at', m.created_at,
                                       'duplicate', false) order by m.id)
   from public.messages m where m.room_id = '07c00000-0000-4000-8000-000000000001'
     and m.client_id in ('first-b', 'first-a')),
  'send_chat answers {client_id, id, created_at, duplicate: false} for each stored message');
select is(tests.field_of_each(tests.kept('first') -> 'accepted', 'client_id'), array['first-b', 'first-a'],
  'accepted is in request order');
select tests.authenticate_as('chat-member');
select is(
  edge.channel_history('room:07c00000-0000-4000-8000-000000000001:chat') -> 'items',
  '[]'::jsonb,
  'chat waiting for its batch is not in history yet (history is what went out)');
select tests.clear_authentication();
select results_eq(
  $$ select client_id, body, user_id, seq, broadcast_at from public.messages
     where room_id = '07c00000-0000-4000-8000-000000000001' order by id $$,
  $$ values ('first-b'::text, 'Hello'::text, tests.uid('chat-member'), null::bigint, null::timestamptz),
            ('first-a', 'World', tests.uid('chat-member'), null, null),
            ('second-a', 'Third', tests.uid('chat-member'), null, null) $$,
  'the messages are stored once each, as the caller, waiting for their batch (no seq, broadcast_at null)');
select is(
  jsonb_build_object('keys', (select jsonb_agg(k order by k) from jsonb_object_keys(tests.kept('first')) as k),
                     'channel', tests.kept('first') -> 'channel'),
  '{"keys": ["accepted", "channel", "flush_in_ms"], "channel": "room:07c00000-0000-4000-8000-000000000001:chat"}'::jsonb,
  'send_chat answers {accepted, channel, flush_in_ms}: the channel the caller flushes');
select is(
  jsonb_build_array(tests.kept('first') -> 'flush_in_ms', tests.kept('second') -> 'flush_in_ms'),
  '[0, 0]'::jsonb,
  'in a room that has had no batch yet, every call is told to flush at once (flush_in_ms 0)');
select is(tests.kept('second') -> 'accepted' -> 1, (tests.kept('first') -> 'accepted' -> 0) || '{"duplicate": true}',
  'a resent client_id answers the stored message (same id, created_at) with duplicate true');
select is(tests.kept('second') -> 'accepted' -> 2, (tests.kept('second') -> 'accepted' -> 0) || '{"duplicate": true}',
  'a client_id twice in one request: the second is a duplicate of the first');
select results_eq(
  $$ select channel, event, push, message_id from private.push_outbox
     where channel = 'room:07c00000-0000-4000-8000-000000000001:chat' $$,
  $$ values ('room:07c00000-0000-4000-8000-000000000001:chat'::text, 'chat:message'::text,
             '{"title": "New message"}'::jsonb, (tests.kept('first') -> 'accepted' -> 1 ->> 'id')::bigint) $$,
  'a message''s push goes to the push outbox with the message''s id, once');

insert into public.messages (room_id, user_id, client_id, body)
values ('07c00000-0000-4000-8000-000000000001', tests.uid('chat-host'), 'direct-1', 'Written directly');
select ok(
  (select seq is null and broadcast_at is null from public.messages where client_id = 'direct-1'),
  'a message written without send_chat waits for the next flush like any other (no seq, broadcast_at null)');


-- -----------------------------------------------------------------------------
-- Flushing chat: what waits goes out numbered seq 1, 2, 3, ...
-- -----------------------------------------------------------------------------

select tests.keep('flush 1',
  private.flush_window('room:07c00000-0000-4000-8000-000000000001:chat'));

select is(tests.kept('flush 1'), null,
  'a flush that sends everything waiting returns null: nothing to call it again for');
select is(jsonb_array_length(pg_temp.batches('07c00000-0000-4000-8000-000000000001')), 1,
  'the flush sends exactly one chat:batch on room:{id}:chat');
select is(
  pg_temp.batches('07c00000-0000-4000-8000-000000000001') -> 0,
  jsonb_build_object('messages', (
    select jsonb_agg(jsonb_build_object('id', m.id, 'seq', m.position, 'room_id', m.room_id, 'user_id', m.user_id,
                                        'client_id', m.client_id, 'body', m.body, 'created_at', m.created_at)
                     order by m.position)
    from (select n.*, row_number() over (order by n.id) as position
          from public.messages n where n.room_id = '07c00000-0000-4000-8000-000000000001') as m)),
  'the batch is {messages: every waiting Message, the one written directly too, as seq 1..4 in the order they were stored}');
select results_eq(
  $$ select client_id, seq, broadcast_at is not null from public.messages
     where room_id = '07c00000-0000-4000-8000-000000000001' order by id $$,
  $$ values ('first-b'::text, 1::bigint, true), ('first-a', 2, true), ('second-a', 3, true), ('direct-1', 4, true) $$,
  'each message keeps the seq it went out with, and when it went out (broadcast_at)');
select pg_temp.interval_passed('07c00000-0000-4000-8000-000000000001');
select tests.keep('flush again',
  private.flush_window('room:07c00000-0000-4000-8000-000000000001:chat'));
select is(
  jsonb_build_array(tests.kept('flush again'), jsonb_array_length(pg_temp.batches('07c00000-0000-4000-8000-000000000001'))),
  '[null, 1]'::jsonb,
  'a flush with nothing waiting sends nothing and returns null, even once the interval has passed');

-- A retry after the broadcast.
select tests.authenticate_as('chat-member');
select tests.keep('resend',
  edge.send_chat('07c00000-0000-4000-8000-000000000001', '[{"client_id": "first-a", "body": "World"}]'));
select tests.clear_authentication();
select pg_temp.interval_passed('07c00000-0000-4000-8000-000000000001');
select private.flush_window('room:07c00000-0000-4000-8000-000000000001:chat');

select is(
  jsonb_build_object('accepted', tests.kept('resend') -> 'accepted',
                     'batches', jsonb_array_length(pg_temp.batches('07c00000-0000-4000-8000-000000000001'))),
  jsonb_build_object('accepted', jsonb_build_array((tests.kept('first') -> 'accepted' -> 1) || '{"duplicate": true}'),
                     'batches', 1),
  'a resend after the broadcast is a duplicate and is never broadcast again');


-- -----------------------------------------------------------------------------
-- The batching interval: one batch per room per interval
-- -----------------------------------------------------------------------------

-- The resend's flush found nothing to send: the room's last batch is still the first one, and
-- its interval has passed.
select tests.authenticate_as('chat-member');
select tests.keep('after',
  edge.send_chat('07c00000-0000-4000-8000-000000000001', '[{"client_id": "interval-1", "body": "Now"}]'));
select tests.clear_authentication();
select tests.keep('in time',
  private.flush_window('room:07c00000-0000-4000-8000-000000000001:chat'));

select is(tests.kept('after') -> 'flush_in_ms', '0'::jsonb,
  'once the room''s interval has passed send_chat is told to flush at once (flush_in_ms 0)');
select is(
  jsonb_build_array(
    tests.kept('in time'),
    tests.field_of_each(pg_temp.batches('07c00000-0000-4000-8000-000000000001') -> 1 -> 'messages', 'client_id'),
    pg_temp.batches('07c00000-0000-4000-8000-000000000001') -> 1 -> 'messages' -> 0 -> 'seq'),
  '[null, ["interval-1"], 5]'::jsonb,
  'the flush sends it in a second batch, as seq 5: on from where the first batch ended');

select tests.authenticate_as('chat-member');
select tests.keep('within',
  edge.send_chat('07c00000-0000-4000-8000-000000000001', '[{"client_id": "interval-2", "body": "Soon"}]'));
select tests.clear_authentication();
select tests.keep('too soon',
  private.flush_window('room:07c00000-0000-4000-8000-000000000001:chat'));

select ok((tests.kept('within') ->> 'flush_in_ms')::int between 50000 and 60000,
  'within the room''s interval send_chat is told when it ends (flush_in_ms: what is left of the minute)');
select ok(
  (tests.kept('too soon') #>> '{}')::int between 50000 and 60000
  and jsonb_array_length(pg_temp.batches('07c00000-0000-4000-8000-000000000001')) = 2
  and pg_temp.unsent('07c00000-0000-4000-8000-000000000001') = 1,
  'a second flush within the interval sends nothing and returns the milliseconds left');

select pg_temp.interval_passed('07c00000-0000-4000-8000-000000000001');
select tests.keep('next interval',
  private.flush_window('room:07c00000-0000-4000-8000-000000000001:chat'));
select is(
  jsonb_build_array(
    tests.kept('next interval'),
    tests.field_of_each(pg_temp.batches('07c00000-0000-4000-8000-000000000001') -> 2 -> 'messages', 'client_id'),
    pg_temp.broadcast_seqs('07c00000-0000-4000-8000-000000000001')),
  '[null, ["interval-2"], [1, 2, 3, 4, 5, 6]]'::jsonb,
  'once the interval has passed the next flush sends it as seq 6: three batches, seq 1..6 without a hole');


-- -----------------------------------------------------------------------------
-- send_chat refusals
-- -----------------------------------------------------------------------------

select tests.authenticate_as('chat-outsider');
select throws_ok(
  $$ select edge.send_chat('07c00000-0000-4000-8000-000000000001', '[{"client_id": "outsider-1", "body": "Hi"}]') $$,
  'WS403', 'not_a_member',
  'a non-member cannot send chat');
select tests.clear_authentication();

select tests.authenticate_as('chat-guest');
select throws_ok(
  $$ select edge.send_chat('07c00000-0000-4000-8000-000000000001', '[{"client_id": "guest-1", "body": "Hi"}]') $$,
  'WS403', 'identified_only',
  'an anonymous member cannot send chat');
select tests.clear_authentication();

select tests.act_as('service_role', '{"role": "service_role"}');
select throws_ok(
  $$ select edge.send_chat('07c00000-0000-4000-8000-000000000001', '[{"client_id": "service-1", "body": "Hi"}]') $$,
  'WS403', 'identified_only',
  'the service role without a user cannot send chat (a message needs an author)');
select tests.clear_authentication();

select tests.authenticate_as('chat-member');
select throws_ok(
  $$ select edge.send_chat('07c00000-0000-4000-8000-0000000000ff', '[{"client_id": "nowhere-1", "body": "Hi"}]') $$,
  'WS404', 'room_not_found',
  'chat to a room that does not exist: room_not_found');
select throws_ok(
  $$ select edge.send_chat('07c00000-0000-4000-8000-000000000001', '[]') $$,
  'WS400', 'invalid_request',
  'an empty list of messages is refused');
select throws_ok(
  $$ select edge.send_chat('07c00000-0000-4000-8000-000000000001', pg_temp.chat('too-many', 51)) $$,
  'WS400', 'invalid_request',
  '51 messages in one request are refused');
select throws_ok(
  $$ select edge.send_chat('07c00000-0000-4000-8000-000000000001',
       '[{"client_id": "blank-1", "body": "fine"}, {"client_id": "blank-2", "body": " \t\n "}]') $$,
  'WS400', 'invalid_request',
  'a blank body is refused');
select throws_ok(
  format($$ select edge.send_chat('07c00000-0000-4000-8000-000000000001', %L) $$,
         jsonb_build_array(jsonb_build_object('client_id', 'long-body', 'body', repeat('x', 2001)))),
  'WS400', 'invalid_request',
  'a body of 2001 characters is refused');
select throws_ok(
  $$ select edge.send_chat('07c00000-0000-4000-8000-000000000001', '[{"client_id": "bad id!", "body": "Hi"}]') $$,
  'WS400', 'invalid_request',
  'a client_id outside [A-Za-z0-9:_-] is refused');
select throws_ok(
  $$ select edge.send_chat('07c00000-0000-4000-8000-000000000001', '[{"client_id": "element-1", "body": "Hi"}, "Hi"]') $$,
  'WS400', 'invalid_request',
  'a message that is not an object is refused');
select throws_ok(
  $$ select edge.send_chat('07c00000-0000-4000-8000-000000000001', '{"client_id": "object-1", "body": "Hi"}') $$,
  'WS400', 'invalid_request',
  'messages that are not an array are refused');
select tests.clear_authentication();

update private.channel_rules set push = false where namespace = 'room' and kind = 'chat';
select tests.authenticate_as('chat-member');
select throws_ok(
  $$ select edge.send_chat('07c00000-0000-4000-8000-000000000001',
       '[{"client_id": "pushed-1", "body": "Hi", "push": {"title": "Hi"}}]') $$,
  'WS400', 'push_not_enabled',
  'a push where the chat rule does not allow it is refused with push_not_enabled');
select tests.clear_authentication();
update private.channel_rules set push = true where namespace = 'room' and kind = 'chat';

select is(
  (select array_agg(client_id order by id) from public.messages where room_id = '07c00000-0000-4000-8000-000000000001'),
  array['first-b', 'first-a', 'second-a', 'direct-1', 'interval-1', 'interval-2'],
  'nothing from a refused request is stored');


-- -----------------------------------------------------------------------------
-- The table's invariants, for every writer (not only send_chat's validation)
-- -----------------------------------------------------------------------------

select throws_ok(
  $$ insert into public.messages (room_id, user_id, client_id, body)
     values ('07c00000-0000-4000-8000-000000000001', tests.uid('chat-host'), 'bad id!', 'Hi') $$,
  '23514', 'new row for relation "messages" violates check constraint "messages_client_id_check"',
  'a client_id outside [A-Za-z0-9:_-] is refused by the table');
select throws_ok(
  format($$ insert into public.messages (room_id, user_id, client_id, body)
            values ('07c00000-0000-4000-8000-000000000001', tests.uid('chat-host'), %L, 'Hi') $$, repeat('k', 65)),
  '23514', 'new row for relation "messages" violates check constraint "messages_client_id_check"',
  'a client_id of 65 characters is refused by the table');
select throws_ok(
  $$ insert into public.messages (room_id, user_id, client_id, body)
     values ('07c00000-0000-4000-8000-000000000001', tests.uid('chat-host'), 'blank-direct', E' \t\n ') $$,
  '23514', 'new row for relation "messages" violates check constraint "messages_body_check"',
  'a blank body is refused by the table');
select throws_ok(
  format($$ insert into public.messages (room_id, user_id, client_id, body)
            values ('07c00000-0000-4000-8000-000000000001', tests.uid('chat-host'), 'long-direct', %L) $$, repeat('x', 2001)),
  '23514', 'new row for relation "messages" violates check constraint "messages_body_check"',
  'a body of 2001 characters is refused by the table');
select throws_ok(
  $$ insert into public.messages (room_id, user_id, client_id, body, seq, broadcast_at)
     values ('07c00000-0000-4000-8000-000000000001', tests.uid('chat-host'), 'seq-zero', 'Hi', 0, now()) $$,
  '23514', 'new row for relation "messages" violates check constraint "messages_seq_check"',
  'seq 0 is refused: a room''s seqs start at 1');
select throws_ok(
  $$ insert into public.messages (room_id, user_id, client_id, body, seq)
     values ('07c00000-0000-4000-8000-000000000001', tests.uid('chat-host'), 'seq-unsent', 'Hi', 7) $$,
  '23514', 'new row for relation "messages" violates check constraint "messages_sent_check"',
  'a seq without broadcast_at is refused: a message has a seq exactly when it went out');
select throws_ok(
  $$ insert into public.messages (room_id, user_id, client_id, body, seq, broadcast_at)
     values ('07c00000-0000-4000-8000-000000000001', tests.uid('chat-host'), 'seq-again', 'Hi', 6, now()) $$,
  '23505', 'duplicate key value violates unique constraint "messages_room_id_seq_key"',
  'a seq the room has already used is refused');


-- -----------------------------------------------------------------------------
-- Full batches: 250 waiting messages within the interval
-- -----------------------------------------------------------------------------

-- The room's last interval batch left a moment ago.
insert into private.chat_flushes (room_id, last_batch_at) values ('07c00000-0000-4000-8000-000000000002', clock_timestamp());
insert into public.messages (room_id, user_id, client_id, body)
select '07c00000-0000-4000-8000-000000000002', tests.uid('chat-busy'), 'busy-' || lpad(n::text, 3, '0'), 'Busy ' || n
from generate_series(1, 198) as n;
select tests.authenticate_as('chat-busy');
select tests.keep('busy 199',
  edge.send_chat('07c00000-0000-4000-8000-000000000002', '[{"client_id": "busy-199", "body": "Busy 199"}]'));
select tests.keep('busy 200',
  edge.send_chat('07c00000-0000-4000-8000-000000000002', '[{"client_id": "busy-200", "body": "Busy 200"}]'));
select tests.clear_authentication();

select is(
  jsonb_build_array((tests.kept('busy 199') ->> 'flush_in_ms')::int between 50000 and 60000,
                    tests.kept('busy 200') -> 'flush_in_ms'),
  '[true, 0]'::jsonb,
  'within the interval send_chat waits for it with 199 waiting, and is told to flush at once (0) when 200 (batch_max) are');

insert into public.messages (room_id, user_id, client_id, body)
select '07c00000-0000-4000-8000-000000000002', tests.uid('chat-busy'), 'busy-' || n, 'Busy ' || n
from generate_series(201, 250) as n;
select tests.keep('busy flush 1',
  private.flush_window('room:07c00000-0000-4000-8000-000000000002:chat'));

select is(
  tests.field_of_each(pg_temp.batches('07c00000-0000-4000-8000-000000000002') -> 0 -> 'messages', 'client_id'),
  (select array_agg(client_id order by id) from (
     select * from public.messages where room_id = '07c00000-0000-4000-8000-000000000002' order by id limit 200) as m),
  'within the interval a flush with 250 waiting sends a full batch at once: the 200 oldest (batch_max)');
select ok(
  (tests.kept('busy flush 1') #>> '{}')::int between 1 and 60000
  and jsonb_array_length(pg_temp.batches('07c00000-0000-4000-8000-000000000002')) = 1
  and pg_temp.unsent('07c00000-0000-4000-8000-000000000002') = 50,
  'the other 50 wait for the interval, and the flush says how long that is');

select pg_temp.interval_passed('07c00000-0000-4000-8000-000000000002');
select is(private.flush_window('room:07c00000-0000-4000-8000-000000000002:chat'), null::int,
  'once the interval has passed the next flush leaves nothing over');
select is(
  (select array_agg(jsonb_array_length(b -> 'messages') order by n)
   from jsonb_array_elements(pg_temp.batches('07c00000-0000-4000-8000-000000000002')) with ordinality as t (b, n)),
  array[200, 50],
  'it sends the remaining 50 in a second batch');
select is(
  tests.field_of_each(pg_temp.batches('07c00000-0000-4000-8000-000000000002') -> 1 -> 'messages', 'client_id'),
  (select array_agg('busy-' || n order by n) from generate_series(201, 250) as n),
  'the second batch is the newest 50: every message went out exactly once');
select is(
  pg_temp.broadcast_seqs('07c00000-0000-4000-8000-000000000002'),
  (select array_agg(n) from generate_series(1, 250) as n),
  'the two batches carry seq 1..250: each ascending, the second on from where the first ended, no hole, no repeat');


-- -----------------------------------------------------------------------------
-- Batches within max_payload_bytes
-- -----------------------------------------------------------------------------

create temp table saved_chat_rule as
select * from private.channel_rules where namespace = 'room' and kind = 'chat';

insert into public.messages (room_id, user_id, client_id, body)
select '07c00000-0000-4000-8000-000000000003', tests.uid('chat-member'), 'long-' || lpad(n::text, 2, '0'), repeat('y', 150)
from generate_series(1, 40) as n;
select tests.authenticate_as('chat-member');
select tests.keep('long 41', edge.send_chat('07c00000-0000-4000-8000-000000000003',
                             jsonb_build_array(jsonb_build_object('client_id', 'long-41', 'body', repeat('y', 150)))));
select tests.clear_authentication();

-- Room for 5 messages and a little more, not for 6.
update private.channel_rules
set max_payload_bytes = pg_temp.waiting_payload_bytes('07c00000-0000-4000-8000-000000000003', 5) + 40
where namespace = 'room' and kind = 'chat';
select tests.keep('cut flush 1',
  private.flush_window('room:07c00000-0000-4000-8000-000000000003:chat'));

select is(
  tests.field_of_each(pg_temp.batches('07c00000-0000-4000-8000-000000000003') -> 0 -> 'messages', 'client_id'),
  array['long-01', 'long-02', 'long-03', 'long-04', 'long-05'],
  'a batch is cut at the last message that fits in max_payload_bytes');
select ok(
  octet_length((pg_temp.batches('07c00000-0000-4000-8000-000000000003') -> 0)::text)
    <= (select max_payload_bytes from private.channel_rules where namespace = 'room' and kind = 'chat'),
  'the batch is within max_payload_bytes');
select ok(
  (tests.kept('cut flush 1') #>> '{}')::int between 50000 and 60000
  and pg_temp.unsent('07c00000-0000-4000-8000-000000000003') = 36,
  'what does not fit waits for the next interval, and the flush says how long that is');

-- At the edge: the 21 oldest waiting messages are one byte too many, 20 fit.
update private.channel_rules
set max_payload_bytes = pg_temp.waiting_payload_bytes('07c00000-0000-4000-8000-000000000003', 21) - 1
where namespace = 'room' and kind = 'chat';
select pg_temp.interval_passed('07c00000-0000-4000-8000-000000000003');
select lives_ok(
  $$ select private.flush_window('room:07c00000-0000-4000-8000-000000000003:chat') $$,
  'a flush whose 21st message would exceed max_payload_bytes by one byte succeeds');
select is(
  (select array_agg(jsonb_array_length(b -> 'messages') order by n)
   from jsonb_array_elements(pg_temp.batches('07c00000-0000-4000-8000-000000000003')) with ordinality as t (b, n)),
  array[5, 20],
  'that batch holds the 20 messages that fit');

update private.channel_rules r set max_payload_bytes = s.max_payload_bytes
from saved_chat_rule s where r.namespace = s.namespace and r.kind = s.kind;
select pg_temp.interval_passed('07c00000-0000-4000-8000-000000000003');
select tests.keep('cut flush 3',
  private.flush_window('room:07c00000-0000-4000-8000-000000000003:chat'));
select is(
  jsonb_build_array(tests.kept('cut flush 3'), pg_temp.unsent('07c00000-0000-4000-8000-000000000003')),
  '[null, 0]'::jsonb,
  'with the usual limit the next interval''s batch takes the rest');
select is(
  pg_temp.broadcast_seqs('07c00000-0000-4000-8000-000000000003'),
  (select array_agg(n) from generate_series(1, 41) as n),
  'the three cut batches carry seq 1..41: each ascending, each on from the last, no hole, no repeat');


-- -----------------------------------------------------------------------------
-- A message that commits late goes out later, with a later seq
-- -----------------------------------------------------------------------------

-- The late sender's insert takes its id now, before the messages below are stored.
select tests.keep('late id', nextval(pg_get_serial_sequence('public.messages', 'id')));
select tests.authenticate_as('chat-member');
select tests.keep('on time',
  edge.send_chat('07c00000-0000-4000-8000-000000000007', pg_temp.chat('on-time', 2)));
select tests.clear_authentication();
select private.flush_window('room:07c00000-0000-4000-8000-000000000007:chat');

-- It commits after that batch went out; another message follows.
insert into public.messages (id, room_id, user_id, client_id, body) overriding system value
values (tests.kept('late id')::bigint, '07c00000-0000-4000-8000-000000000007',
        tests.uid('chat-member'), 'late-1', 'Committed late');
select tests.authenticate_as('chat-member');
select tests.keep('after late',
  edge.send_chat('07c00000-0000-4000-8000-000000000007', '[{"client_id": "on-time-3", "body": "After"}]'));
select tests.clear_authentication();
select pg_temp.interval_passed('07c00000-0000-4000-8000-000000000007');
select private.flush_window('room:07c00000-0000-4000-8000-000000000007:chat');

select results_eq(
  $$ select client_id, seq, id < (select min(id) from public.messages
                                  where room_id = '07c00000-0000-4000-8000-000000000007' and client_id <> 'late-1')
     from public.messages where room_id = '07c00000-0000-4000-8000-000000000007' order by seq $$,
  $$ values ('on-time-1'::text, 1::bigint, false), ('on-time-2', 2, false), ('late-1', 3, true), ('on-time-3', 4, false) $$,
  'the late message, with the lowest id, gets the next seq after those already out (3), not a place among them');
select is(
  jsonb_build_array(
    tests.field_of_each(pg_temp.batches('07c00000-0000-4000-8000-000000000007') -> 0 -> 'messages', 'client_id'),
    tests.field_of_each(pg_temp.batches('07c00000-0000-4000-8000-000000000007') -> 1 -> 'messages', 'client_id'),
    pg_temp.broadcast_seqs('07c00000-0000-4000-8000-000000000007')),
  '[["on-time-1", "on-time-2"], ["late-1", "on-time-3"], [1, 2, 3, 4]]'::jsonb,
  'it goes out in the next batch, which continues at seq 3');
select tests.authenticate_as('chat-member');
select is(
  (select array_agg(i.item -> 'data' ->> 'client_id' order by i.n)
   from jsonb_array_elements(edge.channel_history('room:07c00000-0000-4000-8000-000000000007:chat', after_seq => 2) -> 'items')
        with ordinality as i (item, n)),
  array['late-1', 'on-time-3'],
  'a reader that saw seq 2 finds the late message with after_seq 2: nothing is skipped going forwards');
select tests.clear_authentication();


-- -----------------------------------------------------------------------------
-- The sweeper: rooms whose flusher never ran
-- -----------------------------------------------------------------------------

select tests.authenticate_as('chat-member');
select tests.keep('edge', edge.send_chat('07c00000-0000-4000-8000-000000000004',
             jsonb_build_array(jsonb_build_object('client_id', repeat('k', 64), 'body', repeat('x', 2000)))));
select tests.clear_authentication();
insert into public.messages (room_id, user_id, client_id, body)
values ('07c00000-0000-4000-8000-000000000004', tests.uid('chat-host'), 'direct-4', 'Written directly');

select is(tests.kept('edge') -> 'accepted' -> 0 -> 'duplicate', 'false'::jsonb,
  'a client_id of 64 characters and a body of 2000 are accepted');

-- The request died before its flush, and nobody flushes a message written directly.
select is(private.flush_due_windows(), 1,
  'flush_due_windows flushes the one room with chat waiting and counts it');
select is(
  pg_temp.batches('07c00000-0000-4000-8000-000000000004') -> 0 -> 'messages' @> jsonb_build_array(
    jsonb_build_object('client_id', repeat('k', 64), 'seq', 1), jsonb_build_object('client_id', 'direct-4', 'seq', 2)),
  true,
  'the abandoned messages go out in a chat:batch as seq 1 and 2');
select is(pg_temp.unsent('07c00000-0000-4000-8000-000000000004'), 0,
  'the sweeper leaves nothing of the room waiting');
select is(private.flush_due_windows(), 0, 'with no chat waiting and no window due the sweeper flushes nothing');


-- -----------------------------------------------------------------------------
-- Rate limit: 20 a second, bursts of 50, per user and channel
-- -----------------------------------------------------------------------------

select tests.authenticate_as('chat-limited');
select tests.keep('burst',
  edge.send_chat('07c00000-0000-4000-8000-000000000005', pg_temp.chat('rate', 50)));
select throws_ok(
  $$ select edge.send_chat('07c00000-0000-4000-8000-000000000005', '[{"client_id": "rate-extra", "body": "One more"}]') $$,
  'WS429', 'rate_limited',
  'one message more right after a burst of 50 is refused with rate_limited');
select tests.keep('limited', tests.failure(
  $$ select edge.send_chat('07c00000-0000-4000-8000-000000000005', '[{"client_id": "rate-extra-2", "body": "And another"}]') $$));
select tests.clear_authentication();

select is(jsonb_array_length(tests.kept('burst') -> 'accepted'), 50, 'a burst of 50 messages is accepted');
select matches(format('%s %s %s', tests.kept('limited') ->> 'code', tests.kept('limited') ->> 'message',
                      tests.kept('limited') ->> 'hint'), '^WS429 rate_limited [1-9][0-9]*$',
  'the refusal''s HINT is a whole number of seconds to wait (for Retry-After)');
select is(
  (select array[count(*), count(*) filter (where client_id like 'rate-extra%')]::int[]
   from public.messages where room_id = '07c00000-0000-4000-8000-000000000005'),
  array[50, 0],
  'nothing from a refused request is stored');


-- -----------------------------------------------------------------------------
-- set_playback
-- -----------------------------------------------------------------------------

select tests.authenticate_as('chat-host');
select tests.keep('play 1',
  edge.set_playback('07c00000-0000-4000-8000-000000000006', '07c0c0de-0000-4000-8000-000000000001', 0, true, 1));
select tests.clear_authentication();

select is(
  jsonb_build_object('keys', (select jsonb_agg(k order by k) from jsonb_object_keys(tests.kept('play 1')) as k),
                     'applied', tests.kept('play 1') -> 'applied', 'flush_in_ms', tests.kept('play 1') -> 'flush_in_ms',
                     'channel', tests.kept('play 1') -> 'channel'),
  '{"keys": ["applied", "channel", "flush_in_ms", "state"], "applied": true, "flush_in_ms": null,
    "channel": "room:07c00000-0000-4000-8000-000000000006:playback"}'::jsonb,
  'the host''s first state is applied and leaves nothing to flush: set_playback answers {applied, state, channel, flush_in_ms: null}');
select is(
  (select jsonb_agg(payload - 'id' - 'server_time') from realtime.messages
   where topic = 'room:07c00000-0000-4000-8000-000000000006:playback' and event = 'playback:position'),
  jsonb_build_array((tests.kept('play 1') -> 'state') - 'server_time'),
  'the call itself broadcasts the first state: one playback:position with the state');

select tests.authenticate_as('chat-host');
select tests.keep('play 2',
  edge.set_playback('07c00000-0000-4000-8000-000000000006', '07c0c0de-0000-4000-8000-000000000001', 5000, true, 2));
select tests.keep('play 3',
  edge.set_playback('07c00000-0000-4000-8000-000000000006', '07c0c0de-0000-4000-8000-000000000001', 6000, true, 3));
select tests.clear_authentication();

select is(
  jsonb_build_object('applied', tests.kept('play 2') -> 'applied', 'flush_in_ms', tests.kept('play 2') -> 'flush_in_ms'),
  '{"applied": true, "flush_in_ms": 500}'::jsonb,
  'a position-only change is applied and opens the conflation window (flush_in_ms 500)');
select is(
  jsonb_build_object('applied', tests.kept('play 3') -> 'applied', 'flush_in_ms', tests.kept('play 3') -> 'flush_in_ms'),
  '{"applied": true, "flush_in_ms": null}'::jsonb,
  'another position change while the window is open is applied and does not open another');
select is(pg_temp.playback_broadcasts('07c00000-0000-4000-8000-000000000006'), 1,
  'position-only changes are not broadcast at once');
select results_eq(
  $$ select song_id, position_ms, is_playing, seq from public.playback_state
     where room_id = '07c00000-0000-4000-8000-000000000006' $$,
  $$ values ('07c0c0de-0000-4000-8000-000000000001'::uuid, 6000::bigint, true, 3::bigint) $$,
  'the stored state is the latest applied one');

update private.broadcast_windows set due_at = clock_timestamp() - interval '1 second'
where channel = 'room:07c00000-0000-4000-8000-000000000006:playback';
select is(private.flush_window('room:07c00000-0000-4000-8000-000000000006:playback'), null::int,
  'flushing the due playback window leaves nothing over');
select is(pg_temp.playback_broadcasts('07c00000-0000-4000-8000-000000000006'), 2,
  'the flush sends exactly one playback:position');
select is(
  (select payload - 'id' - 'server_time' from realtime.messages
   where topic = 'room:07c00000-0000-4000-8000-000000000006:playback' and payload ->> 'seq' = '3'),
  (select jsonb_build_object('room_id', p.room_id, 'song_id', p.song_id, 'position_ms', p.position_ms,
                             'is_playing', p.is_playing, 'seq', p.seq, 'updated_at', p.updated_at)
   from public.playback_state p where p.room_id = '07c00000-0000-4000-8000-000000000006'),
  'the flushed state is the latest: seq 3, position 6000');
select ok(
  (select jsonb_typeof(payload -> 'server_time') = 'number'
          and (payload ->> 'server_time')::bigint >= private.epoch_ms((payload ->> 'updated_at')::timestamptz)
   from realtime.messages
   where topic = 'room:07c00000-0000-4000-8000-000000000006:playback' and payload ->> 'seq' = '3'),
  'the flushed state carries server_time in epoch ms, at the flush');

-- A position change opens a window; a pause follows before it is due.
select tests.authenticate_as('chat-host');
select tests.keep('play 4',
  edge.set_playback('07c00000-0000-4000-8000-000000000006', '07c0c0de-0000-4000-8000-000000000001', 6200, true, 4));
select tests.keep('play pause',
  edge.set_playback('07c00000-0000-4000-8000-000000000006', '07c0c0de-0000-4000-8000-000000000001', 6500, false, 5));
select tests.clear_authentication();
select is(
  jsonb_build_array(tests.kept('play 4') -> 'flush_in_ms', tests.kept('play pause') -> 'flush_in_ms',
                    pg_temp.playback_broadcasts('07c00000-0000-4000-8000-000000000006'),
                    (select count(*) from realtime.messages where topic = 'room:07c00000-0000-4000-8000-000000000006:playback'
                       and payload ->> 'seq' = '5' and payload ->> 'is_playing' = 'false'),
                    exists (select 1 from private.broadcast_windows
                            where channel = 'room:07c00000-0000-4000-8000-000000000006:playback')),
  '[500, null, 3, 1, false]'::jsonb,
  'a pause is broadcast at once by the call and closes the open window: the older position never goes out after it');

select tests.authenticate_as('chat-host');
select tests.keep('play song',
  edge.set_playback('07c00000-0000-4000-8000-000000000006', '07c0c0de-0000-4000-8000-000000000002', 0, false, 6));
select tests.clear_authentication();
select is(
  jsonb_build_array(tests.kept('play song') -> 'flush_in_ms', pg_temp.playback_broadcasts('07c00000-0000-4000-8000-000000000006'),
    (select count(*) from realtime.messages where topic = 'room:07c00000-0000-4000-8000-000000000006:playback'
       and payload ->> 'song_id' = '07c0c0de-0000-4000-8000-000000000002' and payload ->> 'seq' = '6')),
  '[null, 4, 1]'::jsonb,
  'a change of song is broadcast at once by the call');

select tests.authenticate_as('chat-host');
select tests.keep('play stale',
  edge.set_playback('07c00000-0000-4000-8000-000000000006', '07c0c0de-0000-4000-8000-000000000001', 999, true, 6));
select tests.clear_authentication();
select is(
  jsonb_build_object('applied', tests.kept('play stale') -> 'applied', 'flush_in_ms', tests.kept('play stale') -> 'flush_in_ms',
                     'state', (tests.kept('play stale') -> 'state') - 'server_time'),
  jsonb_build_object('applied', false, 'flush_in_ms', null, 'state', (tests.kept('play song') -> 'state') - 'server_time'),
  'a stale seq (not above the stored one) is not applied and answers the stored state');
select ok(
  (select song_id = '07c0c0de-0000-4000-8000-000000000002' and position_ms = 0 and not is_playing and seq = 6
   from public.playback_state where room_id = '07c00000-0000-4000-8000-000000000006')
  and pg_temp.playback_broadcasts('07c00000-0000-4000-8000-000000000006') = 4
  and not exists (select 1 from private.broadcast_windows where channel = 'room:07c00000-0000-4000-8000-000000000006:playback'),
  'a stale seq changes nothing, broadcasts nothing and leaves no window');

select tests.authenticate_as('chat-member');
select throws_ok(
  $$ select edge.set_playback('07c00000-0000-4000-8000-000000000006', '07c0c0de-0000-4000-8000-000000000001', 7000, true, 7) $$,
  'WS403', 'not_host',
  'a member who is not the host cannot set playback: not_host');
select tests.clear_authentication();

select tests.authenticate_as('chat-outsider');
select throws_ok(
  $$ select edge.set_playback('07c00000-0000-4000-8000-000000000006', '07c0c0de-0000-4000-8000-000000000001', 7000, true, 7) $$,
  'WS403', null,
  'a non-member cannot set playback');
select tests.clear_authentication();

select tests.authenticate_as('chat-host');
select throws_ok(
  $$ select edge.set_playback('07c00000-0000-4000-8000-000000000006', '07c0c0de-0000-4000-8000-0000000000ff', 0, true, 7) $$,
  'WS400', 'invalid_request',
  'an unknown song is refused');
select throws_ok(
  $$ select edge.set_playback('07c00000-0000-4000-8000-0000000000ff', '07c0c0de-0000-4000-8000-000000000001', 0, true, 7) $$,
  'WS404', 'room_not_found',
  'playback in a room that does not exist: room_not_found');
select tests.clear_authentication();

select tests.authenticate_as('chat-member');
select tests.keep('playback rewind',
  edge.channel_history('room:07c00000-0000-4000-8000-000000000006:playback', rewind_items => 1));
select tests.clear_authentication();
select is(
  (select jsonb_agg(jsonb_build_object('event', i -> 'event', 'data', i -> 'data'))
   from jsonb_array_elements(tests.kept('playback rewind') -> 'items') as i),
  (select jsonb_build_array(jsonb_build_object('event', 'playback:position', 'data', payload - 'id'))
   from realtime.messages where topic = 'room:07c00000-0000-4000-8000-000000000006:playback' and payload ->> 'seq' = '6'),
  'rewind 1 on the playback channel gives the last broadcast state');

select * from finish();
rollback;
