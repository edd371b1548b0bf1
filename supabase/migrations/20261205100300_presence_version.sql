/**
 * ----
 * Presence versions and the heartbeat's server time (API.md §4 presence)
 * ----
 * Each room's presence has a version that goes up by one with every member_added and
 * member_removed; both events carry the version they produced and every snapshot the version it
 * reflects, so a client that loaded a snapshot applies only the events that came after it. The
 * counter sits beside the room's total, on the row those changes already take. A heartbeat
 * answers with the server's clock, which the client library uses to keep time with the room.
 */
alter table private.presence_rooms add column version bigint not null default 0 check (version >= 0);

create or replace function private.presence_snapshot(room uuid)
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

create or replace function private.drop_connection(room uuid, member uuid, connection text)
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

create or replace function edge.presence_join(room_id uuid, connection_id text, user_info json default '{}')
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

create or replace function edge.presence_heartbeat(room_id uuid, connection_id text)
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
