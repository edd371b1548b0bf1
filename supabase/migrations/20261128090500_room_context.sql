/**
 * ----
 * The late joiner's snapshot (API.md §4 room-context)
 * ----
 * One call, one statement: the room, its newest chat (oldest first), its newest plays with their
 * songs, the playback state and presence, all built as JSON inside Postgres. Security invoker,
 * so the caller's RLS applies to every row it reads.
 */

/** API.md's PlaybackState, with the server's clock so a client can place the position. */
create function private.playback_json(p public.playback_state, server_time timestamptz)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object(
    'room_id', p.room_id, 'song_id', p.song_id, 'position_ms', p.position_ms,
    'is_playing', p.is_playing, 'seq', p.seq, 'updated_at', p.updated_at,
    'server_time', private.epoch_ms(server_time)
  )
$$;
grant execute on function private.playback_json(public.playback_state, timestamptz)
  to authenticated, service_role;

/** Whether a room exists, whoever may see it: tells 404 from 403. */
create function private.room_exists(room uuid)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return exists (select 1 from public.rooms r where r.id = room_exists.room);
end;
$$;
grant execute on function private.room_exists(uuid) to authenticated, service_role;

create function public.room_context(room_id uuid, chat_limit int default 50, history_limit int default 10)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  if chat_limit is null or chat_limit not between 1 and 200
     or history_limit is null or history_limit not between 1 and 50 then
    perform private.raise_client_error(400, 'invalid_request',
      'chat_limit must be 1..200 and history_limit 1..50.');
  end if;
  if not private.room_exists(room_context.room_id) then
    perform private.raise_client_error(404, 'room_not_found', 'There is no such room.');
  end if;
  -- The rights of the room's own channel (room:{id}): members only, identified only.
  perform private.require_channel_access('room:' || room_context.room_id, 'subscribe');

  return jsonb_build_object(
    'room', (
      select jsonb_build_object('id', r.id, 'name', r.name, 'host_id', r.host_id, 'visibility', r.visibility)
      from public.rooms r where r.id = room_context.room_id
    ),
    'chat', (
      select coalesce(jsonb_agg(private.message_json(m) order by m.id), '[]')
      from (
        select * from public.messages m
        where m.room_id = room_context.room_id
        order by m.id desc
        limit chat_limit
      ) m
    ),
    'history', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'id', h.id, 'played_at', h.played_at,
               -- Looked up by primary key per play: a join would scan the whole catalogue.
               'song', (select jsonb_build_object('id', s.id, 'title', s.title, 'artist', s.artist,
                                                  'duration_ms', s.duration_ms)
                        from public.songs s where s.id = h.song_id))
             order by h.played_at desc, h.id desc), '[]')
      from (
        select * from public.play_history h
        where h.room_id = room_context.room_id
        order by h.played_at desc, h.id desc
        limit history_limit
      ) h
    ),
    'playback', (
      select private.playback_json(p, clock_timestamp()) from public.playback_state p
      where p.room_id = room_context.room_id
    ),
    -- Defined with the presence tables (20261128090700_presence.sql).
    'presence', private.presence_snapshot(room_context.room_id),
    'server_time', private.epoch_ms(clock_timestamp())
  );
end;
$$;
grant execute on function public.room_context(uuid, int, int) to authenticated, service_role;
