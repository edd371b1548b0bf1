/**
 * ----
 * chat-send and playback: idempotent chat, rate limits, and broadcast windows (API.md §4)
 * ----
 * Writes are stored at once; broadcasting is windowed per channel, coordinated here so it holds
 * across any number of function instances. One mechanism, two policies from the channel rule:
 *   batching (room:*:chat)        a window collects messages; its flush sends them as one
 *                                 chat:batch (ascending id, at most batch_max)
 *   conflation (room:*:playback)  a window collects state changes; its flush sends the latest
 * The request that opens a channel's window flushes it when it is due; any later flush and a
 * pg_cron sweeper flush windows whose flusher died.
 */

/**
 * ----
 * Rules and capabilities for sending through the backend
 * ----
 */
alter table private.channel_rules
  add column rate_per_second numeric check (rate_per_second > 0),
  add column rate_burst int check (rate_burst > 0),
  add constraint channel_rules_rate_check check ((rate_per_second is null) = (rate_burst is null));
update private.channel_rules set rate_per_second = 20, rate_burst = 50
where namespace = 'room' and kind = 'chat';

-- `send`: who may send on a channel through the backend functions (chat-send, playback).
alter table private.channel_capabilities drop constraint channel_capabilities_action_check;
alter table private.channel_capabilities add constraint channel_capabilities_action_check
  check (action in ('subscribe', 'publish', 'presence', 'history', 'send'));
insert into private.channel_capabilities (namespace, kind, action, audience) values
  ('room', 'chat', 'send', 'member'),
  ('room', 'playback', 'send', 'host');
insert into private.channel_capabilities (namespace, kind, action, audience)
select namespace, kind, 'send', 'service' from private.channel_kinds;

/**
 * ----
 * Storage
 * ----
 */
-- Chat waiting for its window's flush (messages.broadcast_at is null).
create index messages_waiting_idx on public.messages (room_id, id) where broadcast_at is null;

-- The chat message a push belongs to (pushes published with a message have none).
alter table private.push_outbox add column message_id bigint;

/** One open window per channel: who flushes it, and when. */
create table private.broadcast_windows (
  channel text primary key,
  opened_at timestamptz not null default clock_timestamp(),
  due_at timestamptz not null
);
create index broadcast_windows_due_at_idx on private.broadcast_windows (due_at);

/** Token buckets for rate limits, per channel and user. */
create table private.rate_buckets (
  channel text not null,
  user_id uuid not null,
  tokens double precision not null,
  refilled_at timestamptz not null,
  primary key (channel, user_id)
);

alter table private.broadcast_windows enable row level security;
alter table private.rate_buckets enable row level security;
revoke all on private.broadcast_windows, private.rate_buckets from anon, authenticated;

/**
 * ----
 * Windows
 * ----
 */

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
 * The batching policy: the room's waiting messages, oldest first, as one chat:batch — at most
 * batch_max, and no more than fit in the channel's payload limit (the rest waits for the next
 * window). Set-based: one statement picks, marks and serialises the batch.
 */
create function private.flush_chat(channel text, rule private.channel_rules, room uuid)
returns int
language plpgsql
security definer
set search_path = ''
as $$
declare
  sent int;
  batch jsonb;
begin
  with waiting as (
    select m.id, octet_length(private.message_json(m)::text) as bytes
    from public.messages m
    where m.room_id = room and m.broadcast_at is null
    order by m.id
    limit rule.batch_max
    for update
  ),
  -- The payload's size as JSON text so far: `{"messages": []}` plus the items and their ", ".
  sized as (
    select w.id, 16 + sum(w.bytes + 2) over (order by w.id) - 2 as payload_bytes from waiting w
  ),
  marked as (
    update public.messages m set broadcast_at = clock_timestamp()
    from sized s
    where m.id = s.id
      and (s.payload_bytes <= rule.max_payload_bytes or s.id = (select min(id) from sized))
    returning m.*
  )
  select count(*), jsonb_agg(private.message_json(row(marked.*)::public.messages) order by marked.id)
  into sent, batch
  from marked;
  if sent > 0 then
    perform private.publish(channel, 'chat:batch', jsonb_build_object('messages', batch));
  end if;
  return sent;
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
 * Flushes the channel's window if it is due (or `force`: a full batch waits). Returns the
 * milliseconds until the caller should call again — the window is not due yet, or it was
 * reopened for what is still waiting — or null when there is nothing left to do. Only one flush
 * can take a window (the delete), so nothing is broadcast twice.
 */
create function private.flush_window(channel text, force boolean default false)
returns int
language plpgsql
security definer
set search_path = ''
as $$
declare
  parsed private.channel := private.parse_channel(flush_window.channel);
  rule private.channel_rules := private.channel_rule(parsed);
  not_yet_due timestamptz;
begin
  delete from private.broadcast_windows w
  where w.channel = flush_window.channel and (force or w.due_at <= clock_timestamp());
  if not found then
    -- A timer can fire a little before the database's clock says the window is due.
    select w.due_at into not_yet_due from private.broadcast_windows w where w.channel = flush_window.channel;
    return ceil(extract(epoch from not_yet_due - clock_timestamp()) * 1000)::int;
  end if;
  if rule.batch_interval_ms is not null then
    perform private.flush_chat(flush_window.channel, rule, parsed.resource_id);
    if exists (select 1 from public.messages m
               where m.room_id = parsed.resource_id and m.broadcast_at is null) then
      return private.open_window(flush_window.channel, rule.batch_interval_ms * interval '1 millisecond');
    end if;
  elsif rule.conflation_interval_ms is not null then
    perform private.flush_playback(flush_window.channel, parsed.resource_id);
  end if;
  return null;
end;
$$;

/** Flushes every window that is due: the sweeper for flushers that died. Returns how many. */
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
    select w.channel from private.broadcast_windows w
    where w.due_at <= clock_timestamp()
    order by w.due_at
    limit max_windows
  loop
    -- One window that cannot be flushed must not hold up the others.
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
grant execute on function private.flush_window(text, boolean), private.flush_due_windows(int)
  to service_role;

select cron.schedule('flush-due-windows', '* * * * *', 'select private.flush_due_windows()');

/**
 * ----
 * Rate limits
 * ----
 */

/** Takes `cost` tokens from the caller's bucket on the channel, or raises 429 with a retry time. */
create function private.take_tokens(channel text, rule private.channel_rules, cost int)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := auth.uid();
  available double precision;
begin
  if rule.rate_per_second is null or caller is null then
    return;
  end if;
  insert into private.rate_buckets as b (channel, user_id, tokens, refilled_at)
  values (take_tokens.channel, caller, rule.rate_burst, clock_timestamp())
  on conflict on constraint rate_buckets_pkey do update
    set tokens = least(rule.rate_burst::double precision,
                       b.tokens + extract(epoch from clock_timestamp() - b.refilled_at) * rule.rate_per_second),
        refilled_at = clock_timestamp()
  returning b.tokens into available;
  if available < cost then
    raise exception using errcode = 'WS429', message = 'rate_limited',
      detail = format('Sending is limited to %s messages a second (bursts of %s).', rule.rate_per_second, rule.rate_burst),
      hint = ceil((cost - available) / rule.rate_per_second)::text;
  end if;
  update private.rate_buckets b set tokens = b.tokens - cost
  where b.channel = take_tokens.channel and b.user_id = caller;
end;
$$;

/**
 * ----
 * chat-send
 * ----
 * Stores the messages (idempotent on (room_id, client_id)) as the caller, after the caller's
 * `send` right on room:{id}:chat, and opens the chat window. Returns
 *   {accepted: [{client_id, id, created_at, duplicate}], channel, flush_in_ms, flush_now}
 * flush_in_ms: this call opened the window and must flush it then; flush_now: a full batch waits.
 */
create function public.send_chat(room_id uuid, messages jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  channel text := 'room:' || send_chat.room_id || ':chat';
  rule private.channel_rules;
  caller uuid := auth.uid();
  message jsonb;
  stored public.messages;
  duplicate boolean;
  accepted jsonb := '[]';
  flush_in_ms int;
begin
  if not private.room_exists(send_chat.room_id) then
    perform private.raise_client_error(404, 'room_not_found', 'There is no such room.');
  end if;
  perform private.require_channel_access(channel, 'send');
  if caller is null then
    perform private.raise_client_error(403, 'identified_only', 'Chat messages are sent by users.');
  end if;
  rule := private.channel_rule(private.parse_channel(channel));
  -- The function validates first; this guards direct RPC calls.
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
  -- The window first: while this transaction holds it, a flush waits for these messages, so
  -- batches go out in id order across batches too.
  flush_in_ms := private.open_window(channel, rule.batch_interval_ms * interval '1 millisecond');

  for message in select value from jsonb_array_elements(messages) loop
    insert into public.messages as m (room_id, user_id, client_id, body, broadcast_at)
    values (send_chat.room_id, caller, message ->> 'client_id', message ->> 'body', null)
    on conflict on constraint messages_room_id_client_id_key do nothing
    returning m.* into stored;
    duplicate := stored.id is null;
    if duplicate then
      -- Stored before (a retry), perhaps by a transaction that just committed: return that one.
      select m.* into stored from public.messages m
      where m.room_id = send_chat.room_id and m.client_id = message ->> 'client_id';
    elsif message ? 'push' then
      insert into private.push_outbox (id, channel, event, push, message_id)
      values (nextval('private.channel_message_id'), channel, 'chat:message', message -> 'push', stored.id);
    end if;
    accepted := accepted || jsonb_build_object(
      'client_id', stored.client_id, 'id', stored.id, 'created_at', stored.created_at, 'duplicate', duplicate);
    stored := null;
  end loop;

  return jsonb_build_object(
    'accepted', accepted,
    'channel', channel,
    'flush_in_ms', flush_in_ms,
    'flush_now', (select count(*) >= rule.batch_max from (
      select 1 from public.messages m
      where m.room_id = send_chat.room_id and m.broadcast_at is null
      limit rule.batch_max) waiting)
  );
end;
$$;
grant execute on function public.send_chat(uuid, jsonb) to authenticated, service_role;

/**
 * ----
 * playback
 * ----
 * Applies the host's player state if its seq is newer than the stored one, then broadcasts: at
 * once when the song or play/pause changed (flush_now: the caller flushes right after commit),
 * otherwise through the conflation window. Returns
 *   {applied, state: PlaybackState, channel, flush_in_ms, flush_now}
 */
create function public.set_playback(room_id uuid, song_id uuid, position_ms bigint, is_playing boolean, seq bigint)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  channel text := 'room:' || set_playback.room_id || ':playback';
  rule private.channel_rules;
  previous public.playback_state;
  current public.playback_state;
  flush_in_ms int;
  flush_now boolean := false;
begin
  if not private.room_exists(set_playback.room_id) then
    perform private.raise_client_error(404, 'room_not_found', 'There is no such room.');
  end if;
  -- Members who are not the host get not_host; everyone else what the room channel says.
  perform private.require_channel_access(channel, 'subscribe');
  perform private.require_channel_access(channel, 'send', 'not_host');
  if position_ms is null or position_ms < 0 or seq is null or seq < 0 or is_playing is null then
    perform private.raise_client_error(400, 'invalid_request', 'position_ms and seq are whole numbers >= 0.');
  end if;
  if song_id is not null and not exists (select 1 from public.songs s where s.id = set_playback.song_id) then
    perform private.raise_client_error(400, 'invalid_request', 'There is no such song.');
  end if;
  rule := private.channel_rule(private.parse_channel(channel));

  select * into previous from public.playback_state p where p.room_id = set_playback.room_id for update;
  if previous.room_id is not null and set_playback.seq <= previous.seq then
    return jsonb_build_object('applied', false, 'state', private.playback_json(previous, clock_timestamp()),
                              'channel', channel, 'flush_in_ms', null, 'flush_now', false);
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
    -- At once, but still through the window, so every playback broadcast is a flush and flushes
    -- are serialised by the window row: an older state can never go out after a newer one.
    insert into private.broadcast_windows as w (channel, due_at) values (channel, clock_timestamp())
    on conflict on constraint broadcast_windows_pkey do update set due_at = excluded.due_at;
    flush_now := true;
  else
    flush_in_ms := private.open_window(channel, rule.conflation_interval_ms * interval '1 millisecond');
  end if;
  return jsonb_build_object('applied', true, 'state', private.playback_json(current, clock_timestamp()),
                            'channel', channel, 'flush_in_ms', flush_in_ms, 'flush_now', flush_now);
end;
$$;
grant execute on function public.set_playback(uuid, uuid, bigint, boolean, bigint) to authenticated, service_role;
