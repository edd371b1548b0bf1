/**
 * ----
 * The late joiner's snapshot (API.md §4 room-context)
 * ----
 * One call, one statement: the room, its newest chat that went out (oldest first, by seq), its
 * newest plays with their songs, the playback state, presence and the queue (the last message
 * kept on room:{id}:queue), all built as JSON inside Postgres from the pieces the earlier files
 * define. Security invoker, so the caller's RLS applies to every row it reads.
 */
create function edge.room_context(room_id uuid, chat_limit int default 50, history_limit int default 10)
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
  perform private.require_room(room_context.room_id);
  -- The rights of the room's own channel (room:{id}): members only, identified only.
  perform private.require_channel_access('room:' || room_context.room_id, 'subscribe');

  return jsonb_build_object(
    'room', (
      select jsonb_build_object('id', r.id, 'name', r.name, 'host_id', r.host_id, 'visibility', r.visibility)
      from public.rooms r where r.id = room_context.room_id
    ),
    'chat', (
      select coalesce(jsonb_agg(private.message_json(m) order by m.seq), '[]')
      from (
        select * from public.messages m
        where m.room_id = room_context.room_id and m.seq is not null
        order by m.seq desc
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
    'presence', private.presence_snapshot(room_context.room_id),
    'queue', private.last_message('room:' || room_context.room_id || ':queue'),
    'server_time', private.epoch_ms(clock_timestamp())
  );
end;
$$;
revoke all on function edge.room_context(uuid, int, int) from public, anon, authenticated, service_role;
