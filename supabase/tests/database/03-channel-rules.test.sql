-- =============================================================================
-- 03-channel-rules: channel names, rules and the channel check (API.md §3).
--
-- private.parse_channel turns a name into (namespace, resource_id, kind); private.channel_rule
-- picks a channel's rule (its kind's override, else its namespace's row); private.find_channel
-- and private.require_channel do both; private.check_channel answers 'allowed', 'denied',
-- 'identified_only' or 'invalid_channel' for the caller of the current transaction, from the
-- capabilities, whose actions and audiences are rows too. The RLS policies on realtime.messages
-- that use it are in their own file.
--
-- Notes:
--  * check_channel reads auth.jwt() / auth.uid(), i.e. request.jwt.claims: callers are set with
--    tests.authenticate_as / tests.act_as, always after tests.clear_authentication() (the
--    helpers read auth.users, which the API roles cannot).
--  * tests.keep keeps the ids of the users and the room; tests.kept_id() reads them and
--    pg_temp.topic() builds a channel name from them.
-- =============================================================================
begin;
select plan(59);

-- `<namespace>:<id kept under key>[:<kind>]`
create function pg_temp.topic(namespace text, key text, kind text default null) returns text
language sql stable as $$
  select topic.namespace || ':' || tests.kept_id(topic.key) || coalesce(':' || topic.kind, '')
$$;

-- Our migrations take EXECUTE away from PUBLIC by default; this is called while acting as the
-- API roles.
grant execute on function pg_temp.topic(text, text, text) to public;

select tests.keep('host', tests.create_user('rules-host'));
select tests.keep('dj', tests.create_user('rules-dj'));
select tests.keep('listener', tests.create_user('rules-listener'));
select tests.keep('guest', tests.create_user('rules-guest', true));
select tests.keep('outsider', tests.create_user('rules-outsider'));

with r as (
  insert into public.rooms (name, host_id) values ('Rules room', tests.kept_id('host')) returning id
)
select tests.keep('room', id) from r;

insert into public.room_members (room_id, user_id, role) values
  (tests.kept_id('room'), tests.kept_id('dj'), 'dj'),
  (tests.kept_id('room'), tests.kept_id('listener'), 'listener'),
  (tests.kept_id('room'), tests.kept_id('guest'), 'listener');


-- -----------------------------------------------------------------------------
-- private.parse_channel
-- -----------------------------------------------------------------------------

select is(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f'),
  row('room', '8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f', 'meta')::private.channel,
  'room:{id} parses to the room''s meta channel');
select is(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:chat'),
  row('room', '8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f', 'chat')::private.channel,
  'room:{id}:chat parses to (room, id, chat)');
select is(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:queue'),
  row('room', '8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f', 'queue')::private.channel,
  'room:{id}:queue parses to (room, id, queue)');
select is(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:playback'),
  row('room', '8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f', 'playback')::private.channel,
  'room:{id}:playback parses to (room, id, playback)');
select is(private.parse_channel('user:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:activity'),
  row('user', '8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f', 'activity')::private.channel,
  'user:{id}:activity parses to (user, id, activity)');
select is(private.parse_channel('user:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:notifications'),
  row('user', '8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f', 'notifications')::private.channel,
  'user:{id}:notifications parses to (user, id, notifications)');

select is(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10:chat'), null::private.channel,
  'a name whose id is not a uuid does not parse');
select is(private.parse_channel('room:8C1F6A4E-3B2D-4C5E-9F10-1A2B3C4D5E6F:chat'), null::private.channel,
  'a name whose uuid is upper case does not parse');
select is(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:chat:extra'), null::private.channel,
  'a name with an extra segment does not parse');
select is(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:lyrics'), null::private.channel,
  'a name with an unknown kind does not parse');
select is(private.parse_channel('band:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:chat'), null::private.channel,
  'a name in an unknown namespace does not parse');
select is(private.parse_channel('user:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f'), null::private.channel,
  'user:{id} without a kind does not parse (the user namespace has no meta channel)');
select is(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:meta'), null::private.channel,
  'room:{id}:meta is not a second name for room:{id}');
select is(private.parse_channel(''), null::private.channel,
  'the empty string does not parse');
select is(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:'), null::private.channel,
  'a name with a trailing colon does not parse');
select is(private.parse_channel('realtime:room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:chat'), null::private.channel,
  'a name with a leading realtime: prefix does not parse');
select is(private.parse_channel(null), null::private.channel,
  'null does not parse');


-- -----------------------------------------------------------------------------
-- private.channel_rule
-- -----------------------------------------------------------------------------

select is((private.channel_rule(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f'))).target,
  'room', 'the room meta channel follows the room namespace''s rule');
select is((private.channel_rule(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:chat'))).target,
  'room:*:chat', 'room chat follows the room:*:chat override');
select is((private.channel_rule(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:queue'))).target,
  'room:*:queue', 'the room queue follows the room:*:queue override');
select is((private.channel_rule(private.parse_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:playback'))).target,
  'room:*:playback', 'room playback follows the room:*:playback override');
select is((private.channel_rule(private.parse_channel('user:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:activity'))).target,
  'user:*:activity', 'user activity follows the user:*:activity override');
select is((private.channel_rule(private.parse_channel('user:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:notifications'))).target,
  'user:*:notifications', 'user notifications follow the user:*:notifications override');


-- -----------------------------------------------------------------------------
-- The default rules of API.md §3
-- -----------------------------------------------------------------------------

select results_eq(
  $$ select target, persist_last, history, history_retention, identified, tls_only, push,
            batch_interval_ms, batch_max, conflation_interval_ms, conflation_key
     from private.channel_rules
     order by target collate "C" $$,
  $$ values
       ('room'::text,            false, 'none'::text, null::interval,       true, false, false, null::int, null::int, null::int, null::text),
       ('room:*:chat',           false, 'messages',   null,                 true, false, true,  100,       200,       null,      null),
       ('room:*:playback',       true,  'none',       null,                 true, false, false, null,      null,      500,       'room'),
       ('room:*:queue',          true,  'channel',    interval '24 hours',  true, false, false, null,      null,      null,      null),
       ('user:*:activity',       false, 'channel',    interval '24 hours',  true, false, false, null,      null,      null,      null),
       ('user:*:notifications',  true,  'channel',    interval '72 hours',  true, true,  true,  null,      null,      null,      null) $$,
  'the channel rules are exactly the defaults of API.md §3');


-- -----------------------------------------------------------------------------
-- private.check_channel, as the caller of the transaction
-- -----------------------------------------------------------------------------

select tests.authenticate_as('rules-listener');

select is(private.check_channel(pg_temp.topic('room', 'room', 'chat'), 'subscribe'), 'allowed',
  'a member may subscribe to the room''s chat');
select is(private.check_channel(pg_temp.topic('room', 'room'), 'presence'), 'allowed',
  'a member may enter presence on the room''s meta channel');
select is(private.check_channel(pg_temp.topic('room', 'room', 'chat'), 'publish'), 'denied',
  'a member may not publish on the room''s chat');
select is(private.check_channel(pg_temp.topic('room', 'room', 'queue'), 'publish'), 'denied',
  'a listener may not publish on the room''s queue');
select is(private.check_channel('room:not-a-room:chat', 'subscribe'), 'invalid_channel',
  'a malformed topic is an invalid channel');
select is(private.check_channel(pg_temp.topic('band', 'room', 'chat'), 'subscribe'), 'invalid_channel',
  'a topic in an unknown namespace is an invalid channel');
select is(private.check_channel(pg_temp.topic('user', 'listener', 'notifications'), 'subscribe'), 'allowed',
  'a user may subscribe to their own notifications');
select is(private.check_channel(pg_temp.topic('user', 'outsider', 'notifications'), 'subscribe'), 'denied',
  'a user may not subscribe to someone else''s notifications');
select is(private.check_channel(pg_temp.topic('user', 'listener', 'notifications'), 'publish'), 'denied',
  'a user may not publish on their own notifications');

select tests.clear_authentication();
select tests.authenticate_as('rules-outsider');

select is(private.check_channel(pg_temp.topic('room', 'room', 'chat'), 'subscribe'), 'denied',
  'a non-member may not subscribe to the room''s chat');

select tests.clear_authentication();
select tests.authenticate_as('rules-guest');

select is(private.check_channel(pg_temp.topic('room', 'room', 'chat'), 'subscribe'), 'identified_only',
  'an anonymous member gets identified_only on the room''s chat');

select tests.clear_authentication();
select tests.act_as('authenticated', '{"role": "authenticated", "is_anonymous": false}'::jsonb);

select is(private.check_channel(pg_temp.topic('room', 'room', 'chat'), 'subscribe'), 'identified_only',
  'claims without sub get identified_only');

select tests.clear_authentication();
select tests.authenticate_as('rules-host');

select is(private.check_channel(pg_temp.topic('room', 'room', 'queue'), 'publish'), 'allowed',
  'the host may publish on the room''s queue');
select is(private.check_channel(pg_temp.topic('room', 'room', 'playback'), 'publish'), 'denied',
  'the host may not publish on the room''s playback channel (it goes through the playback function)');

select tests.clear_authentication();
select tests.authenticate_as('rules-dj');

select is(private.check_channel(pg_temp.topic('room', 'room', 'queue'), 'publish'), 'allowed',
  'a dj may publish on the room''s queue');

select tests.clear_authentication();
select tests.act_as('service_role', '{"role": "service_role"}'::jsonb);

select is(private.check_channel(pg_temp.topic('room', 'room', 'chat'), 'subscribe'), 'allowed',
  'service_role may subscribe to any room''s chat');
select is(private.check_channel(pg_temp.topic('room', 'room', 'chat'), 'publish'), 'allowed',
  'service_role may publish on any room''s chat');
select is(private.check_channel(pg_temp.topic('user', 'outsider', 'notifications'), 'publish'), 'allowed',
  'service_role may publish on any user''s notifications');
select is(private.check_channel('room:not-a-room:chat', 'subscribe'), 'invalid_channel',
  'a malformed topic is an invalid channel for service_role too');

-- tls_only (user:*:notifications) is judged from request.headers, as Realtime and the functions
-- set it.
select tests.clear_authentication();
select tests.authenticate_as('rules-listener');
select set_config('request.headers', '{"x-forwarded-proto": "http"}', true);
select is(private.check_channel(pg_temp.topic('user', 'listener', 'notifications'), 'subscribe'), 'tls_required',
  'a tls_only channel refuses a plain-http request');
select is(private.check_channel(pg_temp.topic('user', 'listener', 'activity'), 'subscribe'), 'allowed',
  'a channel without tls_only accepts a plain-http request');
select set_config('request.headers', '{"x-forwarded-proto": "https"}', true);
select is(private.check_channel(pg_temp.topic('user', 'listener', 'notifications'), 'subscribe'), 'allowed',
  'a tls_only channel accepts an https request');
select set_config('request.headers', '', true);

select tests.clear_authentication();
select tests.act_as('anon', '{"role": "anon"}'::jsonb);

select throws_ok(
  $$ select private.check_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:chat', 'subscribe') $$,
  '42501', null,
  'the anon role cannot call the channel check at all');

select tests.clear_authentication();
select throws_ok(
  $$ update private.channel_rules set history = 'messages', history_retention = null
     where namespace = 'user' and kind = 'activity' $$,
  '23514', null,
  'only room chat can take its history from the messages table');


-- -----------------------------------------------------------------------------
-- private.find_channel and private.require_channel: a channel with its rule
-- -----------------------------------------------------------------------------

select is(((private.find_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:chat')).rule).target, 'room:*:chat',
  'find_channel gives the channel''s rule');
select ok((private.find_channel('room:8c1f6a4e-3b2d-4c5e-9f10:chat')).rule is null,
  'find_channel gives no rule for a name that is not a channel');
select is(((private.require_channel('user:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:activity')).channel).resource_id,
  '8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f'::uuid,
  'require_channel gives the parsed channel');
select throws_ok(
  $$ select private.require_channel('room:8c1f6a4e-3b2d-4c5e-9f10-1a2b3c4d5e6f:lyrics') $$,
  'WS400', 'invalid_request',
  'require_channel refuses a name that is not a channel: 400 invalid_request');


-- -----------------------------------------------------------------------------
-- Actions and audiences are data, like channel kinds
-- -----------------------------------------------------------------------------

select results_eq(
  $$ select action from private.channel_actions order by action collate "C" $$,
  $$ values ('history'::text), ('presence'), ('publish'), ('send'), ('subscribe') $$,
  'the actions are subscribe, publish, presence, history and send');
select results_eq(
  $$ select audience from private.channel_audiences order by audience collate "C" $$,
  $$ values ('dj'::text), ('host'), ('listener'), ('member'), ('self'), ('service') $$,
  'the audiences are member, listener, dj, host, self and service');
select is(
  (select count(*)::int from private.channel_capabilities where audience = 'service'),
  (select count(*)::int from private.channel_kinds) * (select count(*)::int from private.channel_actions),
  'the service role may do every action on every channel kind');
select throws_ok(
  $$ insert into private.channel_capabilities (namespace, kind, action, audience)
     values ('room', 'chat', 'moderate', 'host') $$,
  '23503', null,
  'a capability for an action that is not in channel_actions is refused');
select throws_ok(
  $$ insert into private.channel_capabilities (namespace, kind, action, audience)
     values ('room', 'chat', 'subscribe', 'guest') $$,
  '23503', null,
  'a capability for an audience that is not in channel_audiences is refused');

-- A new action takes two rows, no change of constraint or code: the action and who may do it.
insert into private.channel_actions (action, description) values ('moderate', 'hide chat messages');
insert into private.channel_capabilities (namespace, kind, action, audience) values ('room', 'chat', 'moderate', 'host');

select tests.authenticate_as('rules-host');
select is(private.check_channel(pg_temp.topic('room', 'room', 'chat'), 'moderate'), 'allowed',
  'a new action is allowed to the audience its capability names');
select tests.clear_authentication();
select tests.authenticate_as('rules-listener');
select is(private.check_channel(pg_temp.topic('room', 'room', 'chat'), 'moderate'), 'denied',
  'and to nobody else');
select tests.clear_authentication();

select * from finish();
rollback;
