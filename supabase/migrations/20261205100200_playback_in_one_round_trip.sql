/**
 * ----
 * playback: a new song or play/pause is broadcast by the request itself (API.md §4 playback)
 * ----
 * Before, the function flushed the room's window after the commit, a second round trip before
 * the host's answer. Now set_playback broadcasts such a change in its own transaction. Order is
 * kept by taking the room's window row before the state, as flushes do (private.flush_window
 * deletes the window, then reads the state): a flush that started first is waited for, and one
 * that starts later waits for this call and reads its state, so an older state never goes out
 * after a newer one. Positions still go through the conflation window.
 */
create or replace function edge.set_playback(room_id uuid, song_id uuid, position_ms bigint, is_playing boolean, seq bigint)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  playback_channel text := 'room:' || set_playback.room_id || ':playback';
  rule private.channel_rules;
  flush_in_ms int;
  previous public.playback_state;
  current public.playback_state;
begin
  if not private.room_exists(set_playback.room_id) then
    perform private.raise_client_error(404, 'room_not_found', 'There is no such room.');
  end if;
  -- Members who are not the host get not_host; everyone else what the room channel says.
  perform private.require_channel_access(playback_channel, 'subscribe');
  perform private.require_channel_access(playback_channel, 'send', 'not_host');
  if position_ms is null or position_ms < 0 or seq is null or seq < 0 or is_playing is null then
    perform private.raise_client_error(400, 'invalid_request', 'position_ms and seq are whole numbers >= 0.');
  end if;
  if song_id is not null and not exists (select 1 from public.songs s where s.id = set_playback.song_id) then
    perform private.raise_client_error(400, 'invalid_request', 'There is no such song.');
  end if;
  rule := private.channel_rule(private.parse_channel(playback_channel));

  -- The window, then the state (see above).
  flush_in_ms := private.open_window(playback_channel, rule.conflation_interval_ms * interval '1 millisecond');
  select * into previous from public.playback_state p where p.room_id = set_playback.room_id for update;
  if previous.room_id is not null and set_playback.seq <= previous.seq then
    if flush_in_ms is not null then
      -- Opened for nothing: no state of this call is waiting.
      delete from private.broadcast_windows w where w.channel = playback_channel;
    end if;
    return jsonb_build_object('applied', false, 'state', private.playback_json(previous, clock_timestamp()),
                              'channel', playback_channel, 'flush_in_ms', null);
  end if;
  insert into public.playback_state as p (room_id, song_id, position_ms, is_playing, seq, updated_at)
  values (set_playback.room_id, set_playback.song_id, set_playback.position_ms, set_playback.is_playing,
          set_playback.seq, clock_timestamp())
  on conflict on constraint playback_state_pkey do update
    set song_id = excluded.song_id, position_ms = excluded.position_ms, is_playing = excluded.is_playing,
        seq = excluded.seq, updated_at = excluded.updated_at
  returning p.* into current;

  if previous.room_id is null or previous.song_id is distinct from current.song_id
     or previous.is_playing is distinct from current.is_playing then
    -- At once, and the window with it: this is the latest state.
    delete from private.broadcast_windows w where w.channel = playback_channel;
    perform private.flush_playback(playback_channel, set_playback.room_id);
    flush_in_ms := null;
  end if;
  return jsonb_build_object('applied', true, 'state', private.playback_json(current, clock_timestamp()),
                            'channel', playback_channel, 'flush_in_ms', flush_in_ms);
end;
$$;
