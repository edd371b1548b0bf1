-- =============================================================================
-- 08-presence: edge.presence_join / presence_heartbeat / presence_leave / presence_get, the
-- sweeper private.expire_presence, the snapshot private.presence_snapshot and the room's presence
-- version (API.md §4 presence).
--
-- Notes:
--  * Callers are set with tests.authenticate_as, always after tests.clear_authentication() (the
--    helpers read auth.users); answers are kept with tests.keep and checked as postgres.
--  * Broadcasts are rows in realtime.messages on room:{id}, found by topic and event; realtime.send
--    adds an `id` to every payload, so payloads are compared without it.
--  * Expiry is simulated by moving last_seen_at / last_active into the past as postgres: no test
--    waits on the clock.
--  * The 100 / 101 members of the big room are written straight into private.presence_* as
--    postgres (set-based, so without presence events or versions); the host and the 101st member
--    join for real.
--
-- Rooms:  ...0001 three tabs, errors   ...0002 expiry   ...0003 100 / 101 members
-- =============================================================================
begin;
select plan(56);
select tests.allow_edge_calls();

select tests.create_user('presence-host');
select tests.create_user('presence-member');
select tests.create_user('presence-sleeper');
select tests.create_user('presence-dozer');
select tests.create_user('presence-outsider');
select tests.create_user('presence-guest', true);
select tests.create_user('presence-last');
do $$ begin perform tests.create_user('presence-bulk-' || i) from generate_series(1, 99) as i; end $$;

insert into public.rooms (id, name, host_id) values
  ('08c00000-0000-4000-8000-000000000001', 'Presence room', tests.uid('presence-host')),
  ('08c00000-0000-4000-8000-000000000002', 'Sleepy room', tests.uid('presence-host')),
  ('08c00000-0000-4000-8000-000000000003', 'Crowded room', tests.uid('presence-host'));
insert into public.room_members (room_id, user_id, role) values
  ('08c00000-0000-4000-8000-000000000001', tests.uid('presence-member'), 'listener'),
  ('08c00000-0000-4000-8000-000000000001', tests.uid('presence-guest'), 'listener'),
  ('08c00000-0000-4000-8000-000000000002', tests.uid('presence-member'), 'listener'),
  ('08c00000-0000-4000-8000-000000000002', tests.uid('presence-sleeper'), 'listener'),
  ('08c00000-0000-4000-8000-000000000002', tests.uid('presence-dozer'), 'listener'),
  ('08c00000-0000-4000-8000-000000000003', tests.uid('presence-last'), 'listener');
insert into public.room_members (room_id, user_id, role)
select '08c00000-0000-4000-8000-000000000003', u.id, 'listener'
from auth.users u where u.raw_user_meta_data ->> 'test_identifier' like 'presence-bulk-%';

-- The presence broadcasts `event` of a room, without realtime's id (every row of a transaction has
-- the same inserted_at, so they are ordered by their payload).
create function pg_temp.broadcasts(room uuid, event text) returns jsonb
language sql stable as $$
  select coalesce(jsonb_agg(r.payload - 'id' order by r.payload::text), '[]')
  from realtime.messages r
  where r.topic = 'room:' || room and r.event = broadcasts.event
$$;
-- The versions carried by the member_added and member_removed broadcasts of a room, ascending.
create function pg_temp.versions(room uuid) returns int[]
language sql stable as $$
  select coalesce(array_agg((r.payload ->> 'version')::int order by (r.payload ->> 'version')::int), '{}')
  from realtime.messages r
  where r.topic = 'room:' || room and r.event in ('presence:member_added', 'presence:member_removed')
$$;
-- Our migrations take EXECUTE away from PUBLIC by default; these are called while acting as the
-- API roles.
grant execute on function pg_temp.broadcasts(uuid, text), pg_temp.versions(uuid) to public;


-- -----------------------------------------------------------------------------
-- Three tabs of one user: one member, announced once on the first join and the last leave
-- -----------------------------------------------------------------------------

select tests.authenticate_as('presence-member');
select tests.keep('join-1',
  edge.presence_join('08c00000-0000-4000-8000-000000000001', 'tab-one-1', '{"name": "Member"}'));
select tests.keep('join-2',
  edge.presence_join('08c00000-0000-4000-8000-000000000001', 'tab-two-2', '{"name": "Member"}'));
select tests.keep('join-3',
  edge.presence_join('08c00000-0000-4000-8000-000000000001', 'tab-three-3', '{"name": "Member"}'));
select tests.clear_authentication();

select is(
  array[(tests.kept('join-1') ->> 'member_added')::boolean, (tests.kept('join-2') ->> 'member_added')::boolean,
        (tests.kept('join-3') ->> 'member_added')::boolean],
  array[true, false, false],
  'member_added is true only for the first tab');
select is(
  array[(tests.kept('join-1') -> 'me' ->> 'connections')::int, (tests.kept('join-2') -> 'me' ->> 'connections')::int,
        (tests.kept('join-3') -> 'me' ->> 'connections')::int],
  array[1, 2, 3],
  'me.connections counts the tabs: 1, 2, 3');
select is(
  tests.kept('join-3') -> 'me',
  (select private.member_json(m) from private.presence_members m
   where m.room_id = '08c00000-0000-4000-8000-000000000001' and m.user_id = tests.uid('presence-member')),
  'me is the stored Member');
select is(
  (select array_agg(k order by k) from jsonb_object_keys(tests.kept('join-3') -> 'me') as k),
  array['connections', 'info', 'is_host', 'last_active', 'user_id'],
  'a Member is {user_id, info, is_host, connections, last_active}');
select is(
  jsonb_build_object('user_id', tests.kept('join-3') -> 'me' -> 'user_id', 'info', tests.kept('join-3') -> 'me' -> 'info',
                     'is_host', tests.kept('join-3') -> 'me' -> 'is_host'),
  jsonb_build_object('user_id', tests.uid('presence-member'), 'info', '{"name": "Member"}'::jsonb, 'is_host', false),
  'me carries the caller, their user_info and is_host false for a listener');
select is(
  tests.kept('join-3') -> 'presence',
  jsonb_build_object('type', 'detailed', 'version', 1, 'total', 1,
                     'members', jsonb_build_array(tests.kept('join-3') -> 'me')),
  'the join answers the room''s Presence: detailed, version 1, total 1, the one member');
select is(
  pg_temp.broadcasts('08c00000-0000-4000-8000-000000000001', 'presence:member_added'),
  jsonb_build_array(jsonb_build_object('user_id', tests.uid('presence-member'), 'info', '{"name": "Member"}'::jsonb,
                                       'is_host', false, 'total', 1, 'version', 1)),
  'exactly one presence:member_added {user_id, info, is_host, total, version} for three tabs: version 1');
select is(
  (select count(*)::int from private.presence_connections c
   where c.room_id = '08c00000-0000-4000-8000-000000000001' and c.user_id = tests.uid('presence-member')),
  3,
  'three connections are stored');

-- Joining again with a connection_id that is already there refreshes it.
select tests.authenticate_as('presence-member');
select tests.keep('rejoin',
  edge.presence_join('08c00000-0000-4000-8000-000000000001', 'tab-one-1', '{"name": "Renamed"}'));
select tests.clear_authentication();
select is(
  jsonb_build_object('member_added', tests.kept('rejoin') -> 'member_added',
                     'connections', tests.kept('rejoin') -> 'me' -> 'connections',
                     'stored', (select count(*) from private.presence_connections c
                                where c.room_id = '08c00000-0000-4000-8000-000000000001'
                                  and c.user_id = tests.uid('presence-member'))),
  '{"member_added": false, "connections": 3, "stored": 3}'::jsonb,
  're-joining with an existing connection_id adds no connection');
select is(tests.kept('rejoin') -> 'me' -> 'info', '{"name": "Renamed"}'::jsonb,
  're-joining updates the member''s info');
select is(
  jsonb_build_array(tests.kept('join-1') -> 'presence' -> 'version', tests.kept('join-2') -> 'presence' -> 'version',
                    tests.kept('join-3') -> 'presence' -> 'version', tests.kept('rejoin') -> 'presence' -> 'version'),
  '[1, 1, 1, 1]'::jsonb,
  'a second or third tab of a member, or a re-join, leaves the version where the first join put it');

-- Heartbeat.
select tests.authenticate_as('presence-member');
select tests.keep('heartbeat',
  edge.presence_heartbeat('08c00000-0000-4000-8000-000000000001', 'tab-two-2'));
select tests.clear_authentication();
select is(
  (select array_agg(k order by k) from jsonb_object_keys(tests.kept('heartbeat')) as k),
  array['expires_at', 'server_time'],
  'heartbeat answers {expires_at, server_time}');
select ok(
  jsonb_typeof(tests.kept('heartbeat') -> 'server_time') = 'number'
  and (tests.kept('heartbeat') ->> 'server_time')::bigint
      between private.epoch_ms(now()) and private.epoch_ms(clock_timestamp()),
  'server_time is the server''s clock at the heartbeat, in epoch ms');
select ok(
  (tests.kept('heartbeat') ->> 'expires_at')::timestamptz between now() + interval '60 seconds'
                                                               and clock_timestamp() + interval '60 seconds',
  'expires_at is now + 60 s');
select is(
  (select jsonb_build_object('last_active', m.last_active, 'last_seen_at', c.last_seen_at)
   from private.presence_members m
   join private.presence_connections c on c.room_id = m.room_id and c.user_id = m.user_id and c.connection_id = 'tab-two-2'
   where m.room_id = '08c00000-0000-4000-8000-000000000001' and m.user_id = tests.uid('presence-member')),
  jsonb_build_object('last_active', (tests.kept('heartbeat') ->> 'expires_at')::timestamptz - interval '60 seconds',
                     'last_seen_at', (tests.kept('heartbeat') ->> 'expires_at')::timestamptz - interval '60 seconds'),
  'heartbeat refreshes the connection''s last_seen_at and the member''s last_active');
select tests.authenticate_as('presence-member');
select throws_ok(
  $$ select edge.presence_heartbeat('08c00000-0000-4000-8000-000000000001', 'tab-never-seen') $$,
  'WS404', 'not_found',
  'heartbeat of a connection that never joined: 404 not_found');
select tests.clear_authentication();

-- Leaves.
select tests.authenticate_as('presence-member');
select tests.keep('leave-1',
  edge.presence_leave('08c00000-0000-4000-8000-000000000001', 'tab-one-1'));
select tests.keep('leave-2',
  edge.presence_leave('08c00000-0000-4000-8000-000000000001', 'tab-two-2'));
select tests.clear_authentication();
select is(
  jsonb_build_array(tests.kept('leave-1'), tests.kept('leave-2')),
  '[{"member_removed": false}, {"member_removed": false}]'::jsonb,
  'the first two tabs to leave do not remove the member');
select is(
  jsonb_build_object('removed', pg_temp.broadcasts('08c00000-0000-4000-8000-000000000001', 'presence:member_removed'),
                     'connections', (select m.connections from private.presence_members m
                                     where m.room_id = '08c00000-0000-4000-8000-000000000001'
                                       and m.user_id = tests.uid('presence-member'))),
  '{"removed": [], "connections": 1}'::jsonb,
  'no presence:member_removed while a tab is left; the member has one connection');
select tests.authenticate_as('presence-member');
select tests.keep('leave-3',
  edge.presence_leave('08c00000-0000-4000-8000-000000000001', 'tab-three-3'));
select tests.keep('leave-again',
  edge.presence_leave('08c00000-0000-4000-8000-000000000001', 'tab-three-3'));
select tests.clear_authentication();
select is(tests.kept('leave-3'), '{"member_removed": true}'::jsonb,
  'the last tab to leave removes the member');
select is(
  pg_temp.broadcasts('08c00000-0000-4000-8000-000000000001', 'presence:member_removed'),
  jsonb_build_array(jsonb_build_object('user_id', tests.uid('presence-member'), 'total', 0, 'version', 2)),
  'exactly one presence:member_removed {user_id, total, version}: the last leave makes version 2');
select is(tests.kept('leave-again'), '{"member_removed": false}'::jsonb,
  'leaving with a connection that is gone: member_removed false');
select is(
  jsonb_build_object(
    'members', (select count(*) from private.presence_members m where m.room_id = '08c00000-0000-4000-8000-000000000001'),
    'connections', (select count(*) from private.presence_connections c where c.room_id = '08c00000-0000-4000-8000-000000000001'),
    'total', (select r.total from private.presence_rooms r where r.room_id = '08c00000-0000-4000-8000-000000000001')),
  '{"members": 0, "connections": 0, "total": 0}'::jsonb,
  'nothing is left of the member, and the room''s total is 0');
select is(
  jsonb_build_object('events', to_jsonb(pg_temp.versions('08c00000-0000-4000-8000-000000000001')),
                     'snapshot', private.presence_snapshot('08c00000-0000-4000-8000-000000000001') -> 'version'),
  '{"events": [1, 2], "snapshot": 2}'::jsonb,
  'one version per member_added / member_removed, and the snapshot carries the last event''s');


-- -----------------------------------------------------------------------------
-- Expiry: 60 s without a join or heartbeat
-- -----------------------------------------------------------------------------

select tests.authenticate_as('presence-sleeper');
select tests.keep('sleep-1',
  edge.presence_join('08c00000-0000-4000-8000-000000000002', 'sleep-tab-1'));
select tests.keep('sleep-2',
  edge.presence_join('08c00000-0000-4000-8000-000000000002', 'sleep-tab-2'));
select tests.clear_authentication();
select tests.authenticate_as('presence-dozer');
select tests.keep('doze-1',
  edge.presence_join('08c00000-0000-4000-8000-000000000002', 'doze-tab-1'));
select tests.clear_authentication();

update private.presence_connections set last_seen_at = clock_timestamp() - interval '61 seconds'
where room_id = '08c00000-0000-4000-8000-000000000002' and connection_id = 'sleep-tab-1';
select is(private.expire_presence(), 1, 'the sweeper drops a connection not seen for 61 s');
select is(
  jsonb_build_object('removed', pg_temp.broadcasts('08c00000-0000-4000-8000-000000000002', 'presence:member_removed'),
                     'connections', (select m.connections from private.presence_members m
                                     where m.room_id = '08c00000-0000-4000-8000-000000000002'
                                       and m.user_id = tests.uid('presence-sleeper'))),
  '{"removed": [], "connections": 1}'::jsonb,
  'an expired tab that was not the last: no member_removed, one connection left');
update private.presence_connections set last_seen_at = clock_timestamp() - interval '59 seconds'
where room_id = '08c00000-0000-4000-8000-000000000002' and connection_id = 'sleep-tab-2';
select is(private.expire_presence('08c00000-0000-4000-8000-000000000002'), 0,
  'a connection seen 59 s ago is kept');

-- Stale but not swept yet: heartbeat refuses it.
update private.presence_connections set last_seen_at = clock_timestamp() - interval '61 seconds'
where room_id = '08c00000-0000-4000-8000-000000000002' and connection_id = 'sleep-tab-2';
select tests.authenticate_as('presence-sleeper');
select throws_ok(
  $$ select edge.presence_heartbeat('08c00000-0000-4000-8000-000000000002', 'sleep-tab-2') $$,
  'WS404', 'not_found',
  'heartbeat of an expired connection: 404 not_found');
select tests.clear_authentication();

select is(private.expire_presence('08c00000-0000-4000-8000-000000000002'), 1,
  'the sweeper drops the last stale tab');
select is(
  pg_temp.broadcasts('08c00000-0000-4000-8000-000000000002', 'presence:member_removed'),
  jsonb_build_array(jsonb_build_object('user_id', tests.uid('presence-sleeper'), 'total', 1, 'version', 3)),
  'the expiry of a member''s last connection announces presence:member_removed with the new total and version');
select is(
  (select count(*)::int from private.presence_members m
   where m.room_id = '08c00000-0000-4000-8000-000000000002' and m.user_id = tests.uid('presence-sleeper')),
  0,
  'the expired member is gone');

-- Any presence call for the room sweeps it too.
update private.presence_connections set last_seen_at = clock_timestamp() - interval '61 seconds'
where room_id = '08c00000-0000-4000-8000-000000000002' and connection_id = 'doze-tab-1';
select tests.authenticate_as('presence-member');
select tests.keep('swept', edge.presence_get('08c00000-0000-4000-8000-000000000002'));
select tests.clear_authentication();
select is(tests.kept('swept'), '{"type": "detailed", "version": 4, "total": 0, "members": []}'::jsonb,
  'presence_get sweeps the room first: the stale member is not in its answer, whose version is the sweep''s');
select ok(
  jsonb_array_length(pg_temp.broadcasts('08c00000-0000-4000-8000-000000000002', 'presence:member_removed')) = 2
  and pg_temp.broadcasts('08c00000-0000-4000-8000-000000000002', 'presence:member_removed')
      @> jsonb_build_array(jsonb_build_object('user_id', tests.uid('presence-dozer'), 'total', 0, 'version', 4)),
  'the sweep by a presence call announces presence:member_removed');
select is(pg_temp.versions('08c00000-0000-4000-8000-000000000002'), array[1, 2, 3, 4],
  'two joins and two expiries: versions 1, 2, 3, 4, none skipped or repeated (an expired tab that was not the last counts none)');


-- -----------------------------------------------------------------------------
-- Snapshots: detailed up to 100 members, a summary above
-- -----------------------------------------------------------------------------

select tests.authenticate_as('presence-host');
select tests.keep('host-join',
  edge.presence_join('08c00000-0000-4000-8000-000000000003', 'host-tab-1', '{"name": "Host"}'));
select tests.clear_authentication();
select is(
  jsonb_build_object('member_added', tests.kept('host-join') -> 'member_added',
                     'is_host', tests.kept('host-join') -> 'me' -> 'is_host'),
  '{"member_added": true, "is_host": true}'::jsonb,
  'the host joins as a host');
select is(
  pg_temp.broadcasts('08c00000-0000-4000-8000-000000000003', 'presence:member_added'),
  jsonb_build_array(jsonb_build_object('user_id', tests.uid('presence-host'), 'info', '{"name": "Host"}'::jsonb,
                                       'is_host', true, 'total', 1, 'version', 1)),
  'presence:member_added says is_host true for the host');

-- The host was active 30 s ago, before everybody else: hosts still come first.
update private.presence_members set last_active = clock_timestamp() - interval '30 seconds'
where room_id = '08c00000-0000-4000-8000-000000000003';
update private.presence_connections set last_seen_at = clock_timestamp() - interval '30 seconds'
where room_id = '08c00000-0000-4000-8000-000000000003';
-- 99 listeners, listener i seen i / 2 seconds ago (all within the minute).
insert into private.presence_connections (room_id, user_id, connection_id, last_seen_at)
select '08c00000-0000-4000-8000-000000000003', tests.uid('presence-bulk-' || i), 'bulk-tab-' || i,
       clock_timestamp() - make_interval(secs => i * 0.5)
from generate_series(1, 99) as i;
insert into private.presence_members (room_id, user_id, info, is_host, connections, last_active)
select '08c00000-0000-4000-8000-000000000003', tests.uid('presence-bulk-' || i), jsonb_build_object('n', i), false, 1,
       clock_timestamp() - make_interval(secs => i * 0.5)
from generate_series(1, 99) as i;
update private.presence_rooms set total = total + 99 where room_id = '08c00000-0000-4000-8000-000000000003';

select tests.authenticate_as('presence-last');
select tests.keep('at-100', edge.presence_get('08c00000-0000-4000-8000-000000000003'));
select tests.clear_authentication();
select is(
  jsonb_build_object('type', tests.kept('at-100') -> 'type', 'total', tests.kept('at-100') -> 'total',
                     'members', jsonb_array_length(tests.kept('at-100') -> 'members')),
  '{"type": "detailed", "total": 100, "members": 100}'::jsonb,
  'at exactly 100 members the snapshot is detailed, with every member');
select is(
  tests.field_of_each(tests.kept('at-100') -> 'members', 'user_id')::uuid[],
  (select array_agg(m.user_id order by m.is_host desc, m.last_active desc, m.user_id)
   from private.presence_members m where m.room_id = '08c00000-0000-4000-8000-000000000003'),
  'detailed members: the host first, then the most recently active');

select tests.authenticate_as('presence-last');
select tests.keep('at-101',
  edge.presence_join('08c00000-0000-4000-8000-000000000003', 'last-tab-1', '{"name": "Last"}'));
select tests.clear_authentication();
select is(tests.kept('at-101') -> 'member_added', 'true'::jsonb, 'the 101st member joins: no member cap');
select is(
  (select array_agg(k order by k) from jsonb_object_keys(tests.kept('at-101') -> 'presence') as k),
  array['hosts', 'recently_active', 'sample', 'total', 'type', 'version'],
  'at 101 members the snapshot is {type, version, total, sample, hosts, recently_active}');
select is(
  jsonb_build_object('type', tests.kept('at-101') -> 'presence' -> 'type',
                     'total', tests.kept('at-101') -> 'presence' -> 'total',
                     'recently_active', tests.kept('at-101') -> 'presence' -> 'recently_active'),
  '{"type": "summary", "total": 101, "recently_active": 101}'::jsonb,
  'a summary of 101 members, all of them recently active');
select is(
  tests.field_of_each(tests.kept('at-101') -> 'presence' -> 'sample', 'user_id')::uuid[],
  array[tests.uid('presence-host'), tests.uid('presence-last')]
    || (select array_agg(tests.uid('presence-bulk-' || i) order by i) from generate_series(1, 8) as i),
  'the sample is 10 members: the host first, then the most recently active');
select is(
  tests.kept('at-101') -> 'presence' -> 'hosts',
  (select jsonb_agg(private.member_json(m)) from private.presence_members m
   where m.room_id = '08c00000-0000-4000-8000-000000000003' and m.user_id = tests.uid('presence-host')),
  'the summary lists the hosts as Members');
select is(
  (select count(*)::int from realtime.messages r
   where r.topic = 'room:08c00000-0000-4000-8000-000000000003' and r.event = 'presence:member_added'
     and r.payload ->> 'user_id' = tests.uid('presence-last')::text and (r.payload ->> 'total')::int = 101
     and (r.payload ->> 'version')::int = 2),
  1,
  'the 101st member is announced with total 101 and the next version, 2');
select is(tests.kept('at-101') -> 'presence' -> 'version', '2'::jsonb,
  'a summary carries the version of the last event');

select tests.authenticate_as('presence-last');
select tests.keep('context', edge.room_context('08c00000-0000-4000-8000-000000000003'));
select tests.keep('get-101', edge.presence_get('08c00000-0000-4000-8000-000000000003'));
select tests.clear_authentication();
select is(tests.kept('context') -> 'presence', tests.kept('get-101'),
  'room_context''s presence is presence_get''s');

-- Five members last active 61..65 s ago, not swept yet: not recently active.
update private.presence_members m set last_active = clock_timestamp() - interval '65 seconds'
where m.room_id = '08c00000-0000-4000-8000-000000000003'
  and m.user_id in (select tests.uid('presence-bulk-' || i) from generate_series(95, 99) as i);
select is(
  jsonb_build_object('total', private.presence_snapshot('08c00000-0000-4000-8000-000000000003') -> 'total',
                     'recently_active', private.presence_snapshot('08c00000-0000-4000-8000-000000000003') -> 'recently_active'),
  '{"total": 101, "recently_active": 96}'::jsonb,
  'recently_active is the total minus the members not active in the last 60 s');


-- -----------------------------------------------------------------------------
-- Refusals
-- -----------------------------------------------------------------------------

select tests.authenticate_as('presence-outsider');
select throws_ok(
  $$ select edge.presence_join('08c00000-0000-4000-8000-000000000001', 'outsider-1') $$,
  'WS403', 'not_a_member',
  'a non-member cannot join presence');
select throws_ok(
  $$ select edge.presence_get('08c00000-0000-4000-8000-000000000001') $$,
  'WS403', 'not_a_member',
  'a non-member cannot read presence');
select tests.clear_authentication();

select tests.authenticate_as('presence-guest');
select throws_ok(
  $$ select edge.presence_join('08c00000-0000-4000-8000-000000000001', 'guest-tab-1') $$,
  'WS403', 'identified_only',
  'an anonymous member cannot join presence');
select tests.clear_authentication();

select tests.authenticate_as('presence-member');
select throws_ok(
  $$ select edge.presence_join('08c00000-0000-4000-8000-0000000000ff', 'nowhere-1') $$,
  'WS404', 'room_not_found',
  'presence in a room that does not exist: room_not_found');
select throws_ok(
  $$ select edge.presence_join('08c00000-0000-4000-8000-000000000001', 'seven-7') $$,
  'WS400', 'invalid_request',
  'a connection_id of 7 characters is refused');
select throws_ok(
  $$ select edge.presence_join('08c00000-0000-4000-8000-000000000001', repeat('c', 65)) $$,
  'WS400', 'invalid_request',
  'a connection_id of 65 characters is refused');
select throws_ok(
  $$ select edge.presence_join('08c00000-0000-4000-8000-000000000001', 'with space') $$,
  'WS400', 'invalid_request',
  'a connection_id with a space is refused');
select throws_ok(
  $$ select edge.presence_join('08c00000-0000-4000-8000-000000000001', 'big-info-1',
                                 json_build_object('bio', repeat('x', 1100))) $$,
  'WS413', 'user_info_too_large',
  'user_info over 1024 bytes: 413 user_info_too_large');
select throws_ok(
  $$ select edge.presence_join('08c00000-0000-4000-8000-000000000001', 'array-info-1', '["not", "an", "object"]') $$,
  'WS400', 'invalid_request',
  'user_info that is not an object is refused');
select tests.clear_authentication();
select is(
  (select count(*)::int from private.presence_connections c
   where c.room_id = '08c00000-0000-4000-8000-000000000001'),
  0,
  'no refused join stored a connection');

select * from finish();
rollback;
