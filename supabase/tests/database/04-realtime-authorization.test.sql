-- RLS on realtime.messages, checked the way Supabase Realtime checks it (tests.realtime_can_read /
-- tests.realtime_can_write): every audience × every channel kind × subscribe / publish / presence,
-- then malformed and unknown topics, then a rule flip.
begin;
select plan(134);

-- Fixture: a public room with a host, a dj, a listener and an anonymous listener; an outsider;
-- two users for the user:* channels.
select tests.create_user('host');
select tests.create_user('dj');
select tests.create_user('listener');
select tests.create_user('anonymous listener', true);
select tests.create_user('outsider');
select tests.create_user('owner');
select tests.create_user('anonymous owner', true);

insert into public.rooms (id, name, host_id, visibility)
values ('7e570000-0000-4000-8000-000000000001', 'Matrix room', tests.uid('host'), 'public');
insert into public.room_members (room_id, user_id, role) values
  ('7e570000-0000-4000-8000-000000000001', tests.uid('dj'), 'dj'),
  ('7e570000-0000-4000-8000-000000000001', tests.uid('listener'), 'listener'),
  ('7e570000-0000-4000-8000-000000000001', tests.uid('anonymous listener'), 'listener');

create temporary table audiences (audience text primary key, role text, claims jsonb);
insert into audiences values
  ('anon key', 'anon', '{"role": "anon"}'),
  ('anonymous listener', 'authenticated', tests.claims('anonymous listener')),
  ('outsider', 'authenticated', tests.claims('outsider')),
  ('listener', 'authenticated', tests.claims('listener')),
  ('dj', 'authenticated', tests.claims('dj')),
  ('host', 'authenticated', tests.claims('host')),
  ('owner', 'authenticated', tests.claims('owner')),
  ('anonymous owner', 'authenticated', tests.claims('anonymous owner')),
  ('service_role', 'service_role', '{"role": "service_role"}');

-- The expected rights (API.md §3). For user:* channels the channel belongs to `owner`, or to
-- `anonymous owner` for that audience (identified channels refuse anonymous users even on
-- their own channel).
create temporary table expected (audience text, channel text, subscribe boolean, publish boolean, presence boolean);
insert into expected values
  ('anon key',           'room',          false, false, false),
  ('anon key',           'room:chat',     false, false, false),
  ('anon key',           'room:queue',    false, false, false),
  ('anon key',           'room:playback', false, false, false),
  ('anonymous listener', 'room',          false, false, false),
  ('anonymous listener', 'room:chat',     false, false, false),
  ('anonymous listener', 'room:queue',    false, false, false),
  ('anonymous listener', 'room:playback', false, false, false),
  ('outsider',           'room',          false, false, false),
  ('outsider',           'room:chat',     false, false, false),
  ('outsider',           'room:queue',    false, false, false),
  ('outsider',           'room:playback', false, false, false),
  ('listener',           'room',          true,  false, true),
  ('listener',           'room:chat',     true,  false, false),
  ('listener',           'room:queue',    true,  false, false),
  ('listener',           'room:playback', true,  false, false),
  ('dj',                 'room',          true,  false, true),
  ('dj',                 'room:chat',     true,  false, false),
  ('dj',                 'room:queue',    true,  true,  false),
  ('dj',                 'room:playback', true,  false, false),
  ('host',               'room',          true,  false, true),
  ('host',               'room:chat',     true,  false, false),
  ('host',               'room:queue',    true,  true,  false),
  ('host',               'room:playback', true,  false, false),
  ('service_role',       'room',          true,  true,  true),
  ('service_role',       'room:chat',     true,  true,  true),
  ('service_role',       'room:queue',    true,  true,  true),
  ('service_role',       'room:playback', true,  true,  true),
  ('anon key',           'user:activity',      false, false, false),
  ('anon key',           'user:notifications', false, false, false),
  ('anonymous owner',    'user:activity',      false, false, false),
  ('anonymous owner',    'user:notifications', false, false, false),
  ('owner',              'user:activity',      true,  false, false),
  ('owner',              'user:notifications', true,  false, false),
  ('outsider',           'user:activity',      false, false, false),
  ('outsider',           'user:notifications', false, false, false),
  ('service_role',       'user:activity',      true,  true,  true),
  ('service_role',       'user:notifications', true,  true,  true);

create temporary view probes as
select e.audience, e.channel, a.role, a.claims, checks.action, checks.allowed,
       case
         when e.channel = 'room' then 'room:7e570000-0000-4000-8000-000000000001'
         when e.channel like 'room:%' then 'room:7e570000-0000-4000-8000-000000000001:' || split_part(e.channel, ':', 2)
         else 'user:' || tests.uid(case when e.audience = 'anonymous owner' then 'anonymous owner' else 'owner' end)
              || ':' || split_part(e.channel, ':', 2)
       end as topic
from expected e
join audiences a using (audience)
cross join lateral (values ('subscribe', e.subscribe), ('publish', e.publish), ('presence', e.presence))
  as checks (action, allowed);

-- 38 audience/channel pairs × 3 actions = 114 assertions.
select is(
  case action
    when 'subscribe' then tests.realtime_can_read(topic, role, claims)
    when 'publish' then tests.realtime_can_write(topic, 'broadcast', role, claims)
    else tests.realtime_can_write(topic, 'presence', role, claims)
  end,
  allowed,
  format('%s %s %s %s', audience, case when allowed then 'may' else 'may not' end, action, channel)
)
from probes
order by channel, audience, action;

-- Malformed and unknown channel names are refused even to a member of the room (13).
select is(
  tests.realtime_can_read(topic, 'authenticated', tests.claims('host')),
  false,
  format('the host may not subscribe to %L', topic)
)
from (values
  ('ROOM:7e570000-0000-4000-8000-000000000001'),
  ('room:7E570000-0000-4000-8000-000000000001'),
  ('room:7e570000-0000-4000-8000-00000000001'),
  ('room:not-a-uuid'),
  ('room:7e570000-0000-4000-8000-000000000001:chat:extra'),
  ('room:7e570000-0000-4000-8000-000000000001:lyrics'),
  ('room:7e570000-0000-4000-8000-000000000001:'),
  ('rooms:7e570000-0000-4000-8000-000000000001'),
  ('lobby:7e570000-0000-4000-8000-000000000001'),
  ('realtime:room:7e570000-0000-4000-8000-000000000001'),
  (' room:7e570000-0000-4000-8000-000000000001'),
  ('room'),
  ('')
) as bad (topic);

select is(
  tests.realtime_can_read(null, 'authenticated', tests.claims('host')),
  false,
  'the host may not subscribe without a topic'
);

-- A user:{id} channel without a kind does not exist.
select is(
  tests.realtime_can_read('user:' || tests.uid('owner'), 'authenticated', tests.claims('owner')),
  false,
  'a user may not subscribe to user:{id} without a kind'
);

-- Rules are data: turning `identified` off for room:*:chat lets the anonymous member in there,
-- and only there; non-members stay out.
update private.channel_rules set identified = false where namespace = 'room' and kind = 'chat';

select is(
  tests.realtime_can_read('room:7e570000-0000-4000-8000-000000000001:chat', 'authenticated', tests.claims('anonymous listener')),
  true,
  'with identified off, an anonymous member may subscribe to room chat'
);
select is(
  tests.realtime_can_read('room:7e570000-0000-4000-8000-000000000001', 'authenticated', tests.claims('anonymous listener')),
  false,
  'with identified off for chat only, the anonymous member still may not subscribe to room meta'
);
select is(
  tests.realtime_can_read('room:7e570000-0000-4000-8000-000000000001:chat', 'authenticated', tests.claims('outsider')),
  false,
  'with identified off, a non-member still may not subscribe to room chat'
);

-- Capabilities are data too: letting listeners publish on the queue takes one row.
insert into private.channel_capabilities (namespace, kind, action, audience)
values ('room', 'queue', 'publish', 'listener');
select is(
  tests.realtime_can_write('room:7e570000-0000-4000-8000-000000000001:queue', 'broadcast', 'authenticated', tests.claims('listener')),
  true,
  'a capability row lets listeners publish on the queue'
);

-- Leaving the room takes the rights away at the next check.
delete from public.room_members
where room_id = '7e570000-0000-4000-8000-000000000001' and user_id = tests.uid('listener');
select is(
  tests.realtime_can_read('room:7e570000-0000-4000-8000-000000000001', 'authenticated', tests.claims('listener')),
  false,
  'a former member may not subscribe'
);

select * from finish();
rollback;
