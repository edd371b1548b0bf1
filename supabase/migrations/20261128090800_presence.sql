/**
 * ----
 * Presence: users, not connections; no member cap (API.md §4 presence)
 * ----
 * A connection is one tab or device (connection_id); a member is a user with at least one live
 * connection. The first connection of a user announces presence:member_added on room:{id}, the
 * last one to leave or expire presence:member_removed. Deciding "first" and "last" is serialised
 * on the member's row, so concurrent tabs give exactly one of each. Connections expire 60 s
 * after their last join or heartbeat (a sweeper, and every presence call for the room).
 * A room's total is kept as a counter, so a snapshot of a big room reads only what it shows.
 * Beside it, each room's presence has a version that goes up by one with every member_added and
 * member_removed; both events carry the version they produced and every snapshot the version it
 * reflects, so a client that loaded a snapshot applies only the events that came after it.
 */

create table private.presence_connections (
  room_id uuid not null references public.rooms (id) on delete cascade,
  user_id uuid not null,
  connection_id text not null,
  joined_at timestamptz not null default clock_timestamp(),
  last_seen_at timestamptz not null default clock_timestamp(),
  primary key (room_id, user_id, connection_id)
);
create index presence_connections_expiry_idx on private.presence_connections (room_id, last_seen_at);
create index presence_connections_last_seen_idx on private.presence_connections (last_seen_at);

create table private.presence_members (
  room_id uuid not null references public.rooms (id) on delete cascade,
  user_id uuid not null,
  info jsonb not null default '{}',
  is_host boolean not null,
  connections int not null check (connections > 0),
  last_active timestamptz not null,
  primary key (room_id, user_id)
);
create index presence_members_recent_idx on private.presence_members (room_id, last_active desc);
create index presence_members_hosts_idx on private.presence_members (room_id) where is_host;

-- The counters sit on the row every member_added and member_removed already takes.
create table private.presence_rooms (
  room_id uuid primary key references public.rooms (id) on delete cascade,
  total int not null check (total >= 0),
  version bigint not null default 0 check (version >= 0)
);

alter table private.presence_connections enable row level security;
alter table private.presence_members enable row level security;
alter table private.presence_rooms enable row level security;
revoke all on private.presence_connections, private.presence_members, private.presence_rooms
  from anon, authenticated;

/** API.md's Member. */
create function private.member_json(m private.presence_members)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object('user_id', m.user_id, 'info', m.info, 'is_host', m.is_host,
                            'connections', m.connections, 'last_active', m.last_active)
$$;

/**
 * API.md's Presence for a room: every member up to 100 (hosts first, then the most recently
 * active); above that a summary — the hosts, a sample of 10 in that order, and how many were
 * active in the last 60 s — read from the counter and the indexes, not from every member.
 */
create function private.presence_snapshot(room uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  counts private.presence_rooms := (select r from private.presence_rooms r where r.room_id = room);
  total int := coalesce(counts.total, 0);
  version bigint := coalesce(counts.version, 0);
  -- Fixed before the query so that the index reads only the inactive members.
  inactive_before timestamptz := clock_timestamp() - interval '60 seconds';
begin
  if total <= 100 then
    return jsonb_build_object('type', 'detailed', 'version', version, 'total', total, 'members', (
      select coalesce(jsonb_agg(private.member_json(m) order by m.is_host desc, m.last_active desc, m.user_id), '[]')
      from private.presence_members m where m.room_id = room));
  end if;
  return jsonb_build_object(
    'type', 'summary',
    'version', version,
    'total', total,
    'sample', (
      select jsonb_agg(private.member_json(s) order by s.is_host desc, s.last_active desc, s.user_id)
      from (
        (select * from private.presence_members m where m.room_id = room and m.is_host limit 10)
        union
        (select * from private.presence_members m where m.room_id = room
         order by m.last_active desc limit 10)
        order by is_host desc, last_active desc, user_id
        limit 10
      ) s),
    'hosts', (
      select coalesce(jsonb_agg(private.member_json(m) order by m.last_active desc), '[]')
      from private.presence_members m where m.room_id = room and m.is_host),
    -- Everyone but the few not seen for 60 s that no sweep has removed yet.
    'recently_active', total - (
      select count(*) from private.presence_members m
      where m.room_id = room and m.last_active < inactive_before)
  );
end;
$$;
grant execute on function private.presence_snapshot(uuid) to authenticated, service_role;

/**
 * Removes one connection; when it was its user's last, the member too, and announces
 * presence:member_removed. Returns whether the member was removed.
 */
create function private.drop_connection(room uuid, member uuid, connection text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  remaining int;
  counts private.presence_rooms;
begin
  delete from private.presence_connections c
  where c.room_id = room and c.user_id = member and c.connection_id = connection;
  if not found then
    return false;
  end if;
  -- Serialised on the member's row, which joins take too: of two last tabs leaving at once the
  -- second finds one connection left and removes the member; a tab joining meanwhile is counted.
  select m.connections into remaining from private.presence_members m
  where m.room_id = room and m.user_id = member
  for update;
  if remaining is null then
    return false;
  elsif remaining > 1 then
    update private.presence_members m set connections = m.connections - 1
    where m.room_id = room and m.user_id = member;
    return false;
  end if;
  delete from private.presence_members m where m.room_id = room and m.user_id = member;
  update private.presence_rooms r set total = r.total - 1, version = r.version + 1
  where r.room_id = room
  returning r.* into counts;
  perform private.publish('room:' || room, 'presence:member_removed',
    jsonb_build_object('user_id', member, 'total', counts.total, 'version', counts.version));
  return true;
end;
$$;

/**
 * Drops every connection not seen for 60 s (of one room, or of all), with the member_removed
 * announcements that follow. Returns how many connections it dropped.
 */
create function private.expire_presence(room uuid default null)
returns int
language plpgsql
security definer
set search_path = ''
as $$
declare
  -- A value fixed before the query, unlike clock_timestamp() inside it, so the index can
  -- narrow the scan to the stale rows instead of reading the whole room.
  cutoff timestamptz := clock_timestamp() - interval '60 seconds';
  stale record;
  dropped int := 0;
begin
  if room is null then
    return coalesce((
      select sum(private.expire_presence(r.room_id))
      from (select distinct c.room_id from private.presence_connections c where c.last_seen_at < cutoff) r
    ), 0);
  end if;
  for stale in
    select c.room_id, c.user_id, c.connection_id from private.presence_connections c
    where c.room_id = room and c.last_seen_at < cutoff
    order by c.user_id
    for update skip locked
  loop
    perform private.drop_connection(stale.room_id, stale.user_id, stale.connection_id);
    dropped := dropped + 1;
  end loop;
  return dropped;
end;
$$;
grant execute on function private.expire_presence(uuid) to service_role;

select cron.schedule('expire-presence', '* * * * *', 'select private.expire_presence()');

/** The caller's presence in a room must be allowed: room exists, presence right on room:{id}. */
create function private.require_presence_access(room uuid, action text)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  perform private.require_room(room);
  perform private.require_channel_access('room:' || room, action);
  if auth.uid() is null then
    perform private.raise_client_error(403, 'identified_only', 'Presence is for signed-in users.');
  end if;
end;
$$;

/**
 * ----
 * presence (the function's entry points)
 * ----
 */

/**
 * join: adds (or refreshes) the caller's connection. Returns
 *   {member_added, me: Member, presence: Presence}
 */
create function edge.presence_join(room_id uuid, connection_id text, user_info json default '{}')
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := auth.uid();
  info jsonb;
  new_connection boolean;
  added boolean := false;
  me private.presence_members;
  counts private.presence_rooms;
begin
  perform private.require_presence_access(presence_join.room_id, 'presence');
  if presence_join.connection_id is null or presence_join.connection_id !~ '^[A-Za-z0-9_-]{8,64}$'
     or json_typeof(coalesce(user_info, '{}')) <> 'object' then
    perform private.raise_client_error(400, 'invalid_request',
      'connection_id is 8 to 64 of A-Z a-z 0-9 _ -, and user_info an object.');
  end if;
  -- `json`, not jsonb, keeps the text as sent, so this is the size of the JSON the client sent.
  if octet_length(coalesce(user_info, '{}')::text) > 1024 then
    perform private.raise_client_error(413, 'user_info_too_large', 'user_info is at most 1024 bytes as JSON.');
  end if;
  info := coalesce(user_info, '{}')::jsonb;
  perform private.expire_presence(presence_join.room_id);

  insert into private.presence_connections as c (room_id, user_id, connection_id)
  values (presence_join.room_id, caller, presence_join.connection_id)
  on conflict on constraint presence_connections_pkey do update set last_seen_at = clock_timestamp()
  returning (c.xmax = 0) into new_connection;

  -- The member row serialises this user's connections: exactly one join sees it inserted.
  insert into private.presence_members as m (room_id, user_id, info, is_host, connections, last_active)
  values (presence_join.room_id, caller, info,
          exists (select 1 from public.rooms r where r.id = presence_join.room_id and r.host_id = caller),
          1, clock_timestamp())
  on conflict on constraint presence_members_pkey do update
    set connections = m.connections + case when new_connection then 1 else 0 end,
        info = excluded.info, last_active = excluded.last_active
  returning (m.xmax = 0), m.* into added, me.room_id, me.user_id, me.info, me.is_host, me.connections, me.last_active;

  if added then
    insert into private.presence_rooms as r (room_id, total, version) values (presence_join.room_id, 1, 1)
    on conflict on constraint presence_rooms_pkey do update set total = r.total + 1, version = r.version + 1
    returning r.* into counts;
    perform private.publish('room:' || presence_join.room_id, 'presence:member_added',
      jsonb_build_object('user_id', caller, 'info', me.info, 'is_host', me.is_host, 'total', counts.total,
                         'version', counts.version));
  end if;
  return jsonb_build_object('member_added', added, 'me', private.member_json(me),
                            'presence', private.presence_snapshot(presence_join.room_id));
end;
$$;

/**
 * heartbeat: keeps the caller's connection alive. Returns {expires_at, server_time} — the
 * server's clock, which the client library keeps time with the room by; 404 once it has expired.
 */
create function edge.presence_heartbeat(room_id uuid, connection_id text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := auth.uid();
  seen timestamptz;
begin
  perform private.require_presence_access(presence_heartbeat.room_id, 'presence');
  perform private.expire_presence(presence_heartbeat.room_id);
  update private.presence_connections c set last_seen_at = clock_timestamp()
  where c.room_id = presence_heartbeat.room_id and c.user_id = caller
    and c.connection_id = presence_heartbeat.connection_id
  returning c.last_seen_at into seen;
  if seen is null then
    perform private.raise_client_error(404, 'not_found', 'No such connection: it left or expired; join again.');
  end if;
  update private.presence_members m set last_active = seen
  where m.room_id = presence_heartbeat.room_id and m.user_id = caller;
  return jsonb_build_object('expires_at', seen + interval '60 seconds',
                            'server_time', private.epoch_ms(clock_timestamp()));
end;
$$;

/** leave: drops the caller's connection. Returns {member_removed}. */
create function edge.presence_leave(room_id uuid, connection_id text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.require_presence_access(presence_leave.room_id, 'presence');
  perform private.expire_presence(presence_leave.room_id);
  return jsonb_build_object('member_removed',
    private.drop_connection(presence_leave.room_id, auth.uid(), presence_leave.connection_id));
end;
$$;

/** GET presence: the room's Presence, for its subscribers. */
create function edge.presence_get(room_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.require_presence_access(presence_get.room_id, 'subscribe');
  perform private.expire_presence(presence_get.room_id);
  return private.presence_snapshot(presence_get.room_id);
end;
$$;

revoke all on function edge.presence_join(uuid, text, json), edge.presence_heartbeat(uuid, text),
  edge.presence_leave(uuid, text), edge.presence_get(uuid) from public, anon, authenticated, service_role;
