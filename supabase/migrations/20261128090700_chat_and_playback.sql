/**
 * ----
 * chat-send and playback: idempotent chat numbered by seq, conflated playback (API.md §2, §4)
 * ----
 * Writes are stored at once; broadcasting follows the channel's rule, coordinated here so it
 * holds across any number of function instances:
 *   batching (room:*:chat)        senders only insert. A room's flushes queue on its
 *                                 chat_flushes row, read what has committed, and number it on
 *                                 from the room's highest seq in id order: one chat:batch per
 *                                 batching interval (at most batch_max, within the payload
 *                                 limit), and a full batch at any time. A message whose
 *                                 transaction commits late is found by a later flush and gets
 *                                 a later seq, so seq has no holes and no repeats, and a reader
 *                                 that follows seq forwards never skips anything.
 *   conflation (room:*:playback)  a window collects position changes; its flush sends the
 *                                 latest state. A new song or play/pause goes out at once.
 * Who flushes: the function instance that accepted a write, once it has committed
 * (supabase/functions/_shared/windows.ts), and a pg_cron sweeper for instances that died.
 */

/**
 * ----
 * Storage
 * ----
 */

/** One open conflation window per channel: who flushes it, and when. */
create table private.broadcast_windows (
  channel text primary key,
  opened_at timestamptz not null default clock_timestamp(),
  due_at timestamptz not null
);
create index broadcast_windows_due_at_idx on private.broadcast_windows (due_at);

/** One row per room whose chat has been flushed: flushes queue on it, and it says when the
 * last interval batch left. (The last seq is the room's highest in messages.) */
create table private.chat_flushes (
  room_id uuid primary key references public.rooms (id) on delete cascade,
  last_batch_at timestamptz
);

alter table private.broadcast_windows enable row level security;
alter table private.chat_flushes enable row level security;
revoke all on private.broadcast_windows, private.chat_flushes from anon, authenticated;

/**
 * ----
 * Small helpers
 * ----
 */

/** How many of the room's messages wait to go out, counting no further than `up_to`. */
create function private.unsent_chat(room uuid, up_to int)
returns int
language sql
stable
as $$
  select count(*)::int from (
    select 1 from public.messages m where m.room_id = room and m.seq is null limit up_to
  ) as waiting
$$;

/** Milliseconds from now until `at`; 0 when it has passed or is null. */
create function private.ms_until(at timestamptz)
returns int
language sql
stable
as $$
  select coalesce(greatest(0, ceil(extract(epoch from at - clock_timestamp()) * 1000)), 0)::int
$$;

/**
 * Opens the channel's window unless one is open. Returns the milliseconds until it is due if
 * this call opened it (the caller then flushes it), null if it was open already. Either way the
 * row stays locked until the caller's transaction ends, so a flush that starts meanwhile waits
 * and then sees what this transaction wrote: nothing committed is left without a window.
 */
create function private.open_window(channel text, wait interval)
returns int
language plpgsql
security definer
set search_path = ''
as $$
declare
  opened boolean;
begin
  insert into private.broadcast_windows as w (channel, due_at)
  values (open_window.channel, clock_timestamp() + wait)
  on conflict on constraint broadcast_windows_pkey do update set channel = excluded.channel
  returning (w.xmax = 0) into opened;
  return case when opened then ceil(extract(epoch from wait) * 1000)::int end;
end;
$$;

/**
 * ----
 * Flushing
 * ----
 */

/**
 * Sends the room's waiting messages as chat:batch events, numbered on from the room's highest
 * seq: one batch when the interval since the last one has passed (at most batch_max, and
 * no more than fit in the payload limit: the rest waits for the next interval), and at any time
 * a batch of batch_max while that many wait. Returns the milliseconds until it should be called
 * again, or null when nothing is waiting.
 */
create function private.flush_chat(room uuid, rule private.channel_rules)
returns int
language plpgsql
security definer
set search_path = ''
as $$
declare
  channel text := 'room:' || room || ':chat';
  batch_interval interval := rule.batch_interval_ms * interval '1 millisecond';
  last_seq bigint;
  batched_at timestamptz;
  due boolean;
  full_batch_waits boolean;
  sent int;
  batch jsonb;
begin
  if not private.room_exists(room) then
    return null;
  end if;
  -- Flushes of a room queue here, so batches leave one at a time. Every later statement reads a
  -- new snapshot, taken after this lock: it sees each message committed before the lock.
  insert into private.chat_flushes (room_id) values (room)
  on conflict on constraint chat_flushes_pkey do nothing;
  select f.last_batch_at into batched_at from private.chat_flushes f where f.room_id = room for update;
  -- One backward step on (room_id, seq); max(seq) would read the whole room.
  select coalesce((select m.seq from public.messages m where m.room_id = room and m.seq is not null
                   order by m.seq desc limit 1), 0) into last_seq;
  due := batched_at is null or batched_at + batch_interval <= clock_timestamp();

  loop
    full_batch_waits := private.unsent_chat(room, rule.batch_max) >= rule.batch_max;
    exit when not full_batch_waits and not (due and private.unsent_chat(room, 1) > 0);
    with waiting as (
      select w.m as message, last_seq + row_number() over (order by (w.m).id) as next_seq
      from (select m from public.messages m where m.room_id = room and m.seq is null
            order by m.id limit rule.batch_max) as w
    ),
    -- The payload's size as JSON text so far: `{"messages": []}` plus the items and their ", ".
    sized as (
      select (w.message).id, w.next_seq,
             16 + sum(octet_length(jsonb_set(private.message_json(w.message), '{seq}', to_jsonb(w.next_seq))::text) + 2)
                  over (order by w.next_seq) - 2 as payload_bytes
      from waiting w
    ),
    marked as (
      update public.messages m set seq = s.next_seq, broadcast_at = clock_timestamp()
      from sized s
      where m.id = s.id and (s.payload_bytes <= rule.max_payload_bytes or s.next_seq = last_seq + 1)
      returning m.*
    )
    select count(*), jsonb_agg(private.message_json(row(marked.*)::public.messages) order by marked.seq)
    into sent, batch
    from marked;
    perform private.publish(channel, 'chat:batch', jsonb_build_object('messages', batch));
    last_seq := last_seq + sent;
    if not full_batch_waits then
      -- The interval's batch has gone; what it left waits for the next interval.
      batched_at := clock_timestamp();
      due := false;
    end if;
  end loop;

  update private.chat_flushes f set last_batch_at = batched_at where f.room_id = room;
  if private.unsent_chat(room, 1) = 0 then
    return null;
  end if;
  return private.ms_until(batched_at + batch_interval);
end;
$$;

/** The conflation policy: the room's latest playback state. */
create function private.flush_playback(channel text, room uuid)
returns int
language plpgsql
security definer
set search_path = ''
as $$
declare
  state jsonb;
begin
  select private.playback_json(p, clock_timestamp()) into state
  from public.playback_state p where p.room_id = room;
  if state is null then
    return 0;
  end if;
  perform private.publish(channel, 'playback:position', state);
  return 1;
end;
$$;

/**
 * Flushes a channel's broadcasts: chat (private.flush_chat), or the conflation window of a
 * playback channel once it is due. Returns the milliseconds until the caller should call again,
 * or null when there is nothing left to do. Only one flush can take a window (the delete), so
 * nothing is broadcast twice.
 */
create function private.flush_window(channel text)
returns int
language plpgsql
security definer
set search_path = ''
as $$
declare
  target private.channel_with_rule := private.find_channel(flush_window.channel);
  rule private.channel_rules := target.rule;
  room uuid := (target.channel).resource_id;
begin
  if rule.batch_interval_ms is not null then
    return private.flush_chat(room, rule);
  end if;
  delete from private.broadcast_windows w
  where w.channel = flush_window.channel and w.due_at <= clock_timestamp();
  if not found then
    -- A timer can fire a little before the database's clock says the window is due.
    return (select private.ms_until(w.due_at) from private.broadcast_windows w
            where w.channel = flush_window.channel);
  end if;
  if rule.conflation_interval_ms is not null then
    perform private.flush_playback(flush_window.channel, room);
  end if;
  return null;
end;
$$;

/**
 * The sweeper for flushers that died: flushes every due window and every room with chat
 * waiting. Returns how many channels it flushed.
 */
create function private.flush_due_windows(max_windows int default 100)
returns int
language plpgsql
security definer
set search_path = ''
as $$
declare
  due_channel text;
  flushed int := 0;
begin
  for due_channel in
    -- Oldest first, so rooms beyond max_windows are not skipped sweep after sweep.
    select waiting.channel from (
      select w.channel, w.due_at as since from private.broadcast_windows w where w.due_at <= clock_timestamp()
      union all
      select 'room:' || m.room_id || ':chat', min(m.created_at) from public.messages m
      where m.seq is null group by m.room_id
    ) as waiting
    order by waiting.since
    limit max_windows
  loop
    -- One channel that cannot be flushed must not hold up the others.
    begin
      perform private.flush_window(due_channel);
      flushed := flushed + 1;
    exception when others then
      raise warning 'flushing % failed: %', due_channel, sqlerrm;
    end;
  end loop;
  return flushed;
end;
$$;
grant execute on function private.flush_window(text), private.flush_due_windows(int) to service_role;

select cron.schedule('flush-due-windows', '* * * * *', 'select private.flush_due_windows()');

/**
 * ----
 * chat-send
 * ----
 * Stores the messages (idempotent on (room_id, client_id)) as the caller, after the caller's
 * `send` right on room:{id}:chat. Touches nothing shared by the room's other senders. Returns
 *   {accepted: [{client_id, id, created_at, duplicate}], channel, flush_in_ms}
 * flush_in_ms: when the caller should flush the room (private.flush_window) once this has
 * committed — 0 when its interval has passed or a full batch waits.
 */
create function edge.send_chat(room_id uuid, messages jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  channel text := 'room:' || send_chat.room_id || ':chat';
  rule private.channel_rules;
  caller uuid := auth.uid();
  inserted text[];
  accepted jsonb;
begin
  perform private.require_room(send_chat.room_id);
  perform private.require_channel_access(channel, 'send');
  if caller is null then
    perform private.raise_client_error(403, 'identified_only', 'Chat messages are sent by users.');
  end if;
  rule := (private.require_channel(channel)).rule;
  -- The function validates first; this gives the same answer to any other caller.
  if jsonb_typeof(messages) is distinct from 'array' or jsonb_array_length(messages) not between 1 and 50
     or exists (
       select 1 from jsonb_array_elements(messages) as m (message)
       where jsonb_typeof(m.message) <> 'object'
          or jsonb_typeof(m.message -> 'client_id') is distinct from 'string'
          or jsonb_typeof(m.message -> 'body') is distinct from 'string'
          or coalesce(m.message ->> 'client_id', '') !~ '^[A-Za-z0-9:_-]{1,64}$'
          or coalesce(length(m.message ->> 'body'), 0) not between 1 and 2000
          or m.message ->> 'body' ~ '^\s*$'
          or (m.message ? 'push' and jsonb_typeof(m.message -> 'push') <> 'object')) then
    perform private.raise_client_error(400, 'invalid_request',
      'Send 1 to 50 messages, each with a client_id and a body of 1 to 2000 characters.');
  end if;
  if not rule.push and exists (select 1 from jsonb_array_elements(messages) as m (message) where m.message ? 'push') then
    perform private.raise_client_error(400, 'push_not_enabled', 'Push is not enabled on this channel.');
  end if;
  perform private.take_tokens(channel, rule, jsonb_array_length(messages));

  -- One insert for the request, in request order; a client_id stored before (a retry, or a
  -- concurrent duplicate, which this waits for) is skipped.
  with request as (
    select r.message ->> 'client_id' as client_id, r.message ->> 'body' as body, r.message -> 'push' as push,
           r.position
    from jsonb_array_elements(messages) with ordinality as r (message, position)
  ),
  stored as (
    insert into public.messages as m (room_id, user_id, client_id, body)
    select send_chat.room_id, caller, r.client_id, r.body from request r order by r.position
    on conflict on constraint messages_room_id_client_id_key do nothing
    returning m.id, m.client_id
  ),
  pushed as (
    insert into private.push_outbox (id, channel, event, push, message_id)
    select nextval('private.channel_message_id'), channel, 'chat:message', r.push, s.id
    from stored s
    join lateral (select * from request r where r.client_id = s.client_id order by r.position limit 1) r on true
    where r.push is not null
  )
  select coalesce(array_agg(s.client_id), '{}') into inserted from stored s;

  -- A new statement, so it also sees what a concurrent duplicate committed. The first mention
  -- of a client_id this request stored is new; every other mention is a duplicate.
  select jsonb_agg(jsonb_build_object(
           'client_id', m.client_id, 'id', m.id, 'created_at', m.created_at,
           'duplicate', not (r.first_mention and r.client_id = any (inserted)))
         order by r.position)
  into accepted
  from (select e.message ->> 'client_id' as client_id, e.position,
               e.position = min(e.position) over (partition by e.message ->> 'client_id') as first_mention
        from jsonb_array_elements(messages) with ordinality as e (message, position)) as r
  -- Lateral, so each is one lookup in (room_id, client_id) rather than a join over the room.
  cross join lateral (select m.* from public.messages m
                      where m.room_id = send_chat.room_id and m.client_id = r.client_id) as m;

  return jsonb_build_object(
    'accepted', accepted,
    'channel', channel,
    'flush_in_ms', case
      when private.unsent_chat(send_chat.room_id, rule.batch_max) >= rule.batch_max then 0
      else private.ms_until((select f.last_batch_at + rule.batch_interval_ms * interval '1 millisecond'
                             from private.chat_flushes f where f.room_id = send_chat.room_id))
    end
  );
end;
$$;
revoke all on function edge.send_chat(uuid, jsonb) from public, anon, authenticated, service_role;

/**
 * ----
 * playback
 * ----
 * Applies the host's player state if its seq is newer than the stored one. A new song or
 * play/pause is broadcast by the call itself, in its own transaction; positions go through the
 * conflation window. Order is kept by taking the room's window row before the state, as flushes
 * do (private.flush_window deletes the window, then reads the state): a flush that started first
 * is waited for, and one that starts later waits for this call and reads its state, so an older
 * state never goes out after a newer one. Returns
 *   {applied, state: PlaybackState, channel, flush_in_ms}
 */
create function edge.set_playback(room_id uuid, song_id uuid, position_ms bigint, is_playing boolean, seq bigint)
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
  perform private.require_room(set_playback.room_id);
  -- Members who are not the host get not_host; everyone else what the room channel says.
  perform private.require_channel_access(playback_channel, 'subscribe');
  perform private.require_channel_access(playback_channel, 'send', 'not_host');
  if position_ms is null or position_ms < 0 or seq is null or seq < 0 or is_playing is null then
    perform private.raise_client_error(400, 'invalid_request', 'position_ms and seq are whole numbers >= 0.');
  end if;
  if song_id is not null and not exists (select 1 from public.songs s where s.id = set_playback.song_id) then
    perform private.raise_client_error(400, 'invalid_request', 'There is no such song.');
  end if;
  rule := (private.require_channel(playback_channel)).rule;

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
revoke all on function edge.set_playback(uuid, uuid, bigint, boolean, bigint)
  from public, anon, authenticated, service_role;
