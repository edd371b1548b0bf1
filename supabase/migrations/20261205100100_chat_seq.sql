/**
 * ----
 * Chat without a room-wide lock, numbered by `seq` as it goes out (API.md §2, §4 chat-send)
 * ----
 * Before: every sender took its room's window row and held it until commit, so that a flush
 * waited for them and batches left in id order. One room was one queue.
 * Now senders only insert. A message is numbered when it goes out: the flush of a room takes the
 * room's chat_flushes row (flushes queue there, senders never touch it), reads what has committed
 * since, and numbers it on from the room's highest seq in id order. A message whose transaction commits
 * late is simply found by a later flush and gets a later seq, so seq has no holes and no
 * repeats, and a reader that follows seq forwards never skips anything.
 * Batches: at most one per room per batching interval (chat_flushes.last_batch_at), plus a
 * full batch (batch_max waiting) at any time. Who flushes: the function instance that accepted
 * a message, once it has committed (supabase/functions/_shared/windows.ts), and the pg_cron
 * sweeper for instances that died.
 */

/**
 * ----
 * Storage
 * ----
 */
alter table public.messages
  add column seq bigint,
  add constraint messages_seq_check check (seq > 0),
  add constraint messages_room_id_seq_key unique (room_id, seq),
  -- The invariants every writer respects, not only chat-send's validation.
  add constraint messages_client_id_check check (client_id ~ '^[A-Za-z0-9:_-]{1,64}$'),
  add constraint messages_body_check check (length(body) between 1 and 2000 and body !~ '^\s*$');
comment on column public.messages.seq is
  'The message''s place in its room''s broadcast order: 1, 2, 3, … without holes; null until it goes out.';

-- Chat written any way at all is broadcast: a row without seq waits for its room's next flush.
alter table public.messages alter column broadcast_at drop default;
comment on column public.messages.broadcast_at is 'When the message went out in a chat:batch; null until then.';

-- What went out before seq existed is numbered in id order, the order it went out in.
update public.messages m set seq = numbered.seq
from (
  select n.id, row_number() over (partition by n.room_id order by n.id) as seq
  from public.messages n where n.broadcast_at is not null
) as numbered
where m.id = numbered.id;
alter table public.messages
  add constraint messages_sent_check check ((seq is null) = (broadcast_at is null));

-- Chat is read by seq now (the unique (room_id, seq) index); waiting chat by id.
drop index public.messages_waiting_idx, public.messages_room_id_id_idx;
create index messages_unsent_idx on public.messages (room_id, id) where seq is null;

/** One row per room whose chat has been flushed: flushes queue on it, and it says when the
 * last interval batch left. (The last seq is the room's highest in messages.) */
create table private.chat_flushes (
  room_id uuid primary key references public.rooms (id) on delete cascade,
  last_batch_at timestamptz
);
alter table private.chat_flushes enable row level security;
revoke all on private.chat_flushes from anon, authenticated;

/**
 * ----
 * Shapes and small helpers
 * ----
 */

/** API.md's Message. */
create or replace function private.message_json(m public.messages)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object(
    'id', m.id, 'seq', m.seq, 'room_id', m.room_id, 'user_id', m.user_id,
    'client_id', m.client_id, 'body', m.body, 'created_at', m.created_at
  )
$$;

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
 * ----
 * Flushing a room's chat
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
  parsed private.channel := private.parse_channel(flush_window.channel);
  rule private.channel_rules := private.channel_rule(parsed);
begin
  if rule.batch_interval_ms is not null then
    return private.flush_chat(parsed.resource_id, rule);
  end if;
  delete from private.broadcast_windows w
  where w.channel = flush_window.channel and w.due_at <= clock_timestamp();
  if not found then
    -- A timer can fire a little before the database's clock says the window is due.
    return (select private.ms_until(w.due_at) from private.broadcast_windows w
            where w.channel = flush_window.channel);
  end if;
  if rule.conflation_interval_ms is not null then
    perform private.flush_playback(flush_window.channel, parsed.resource_id);
  end if;
  return null;
end;
$$;

/**
 * The sweeper for flushers that died: flushes every due window and every room with chat
 * waiting. Returns how many channels it flushed.
 */
create or replace function private.flush_due_windows(max_windows int default 100)
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

drop function private.flush_window(text, boolean);
drop function private.flush_chat(text, private.channel_rules, uuid);
grant execute on function private.flush_window(text) to service_role;

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
create or replace function edge.send_chat(room_id uuid, messages jsonb)
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
  if not private.room_exists(send_chat.room_id) then
    perform private.raise_client_error(404, 'room_not_found', 'There is no such room.');
  end if;
  perform private.require_channel_access(channel, 'send');
  if caller is null then
    perform private.raise_client_error(403, 'identified_only', 'Chat messages are sent by users.');
  end if;
  rule := private.channel_rule(private.parse_channel(channel));
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

/**
 * ----
 * Reading chat: only what went out, in seq order
 * ----
 */

/** A history item of room:{id}:chat. */
create function private.chat_history_item(m public.messages)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object('id', m.id, 'event', 'chat:message', 'data', private.message_json(m),
                            'timestamp', private.epoch_ms(m.created_at))
$$;

/** A history item of a channel that keeps history in private.channel_messages. */
create function private.channel_history_item(m private.channel_messages)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object('id', m.id, 'event', m.event, 'data', m.data,
                            'timestamp', private.epoch_ms(m.created_at))
$$;

/**
 * edge.channel_history(channel, ...) answers the `history` function: the caller needs the
 * channel's `history` capability (the same audiences as subscribe). A page continues after
 * `after_key` in its direction; the key is the item's seq on chat channels and its id on the
 * others (both ascending = the order messages went out). Security definer because the persisted
 * messages are in private tables: the check comes first.
 *   after_seq     chat only: the messages with seq after_seq + 1, + 2, …, oldest first
 *   rewind_items  the last N (1..100), oldest first
 *   rewind_ms     those of the last N milliseconds (at most 100), oldest first
 * Returns {items: [{id, event, data, timestamp}], has_more, next_after_key}.
 */
drop function edge.channel_history(text, int, text, bigint, bigint, bigint, int, bigint);
create function edge.channel_history(
  channel text,
  max_items int default 100,
  direction text default 'backwards',
  start_ms bigint default null,
  end_ms bigint default null,
  after_key bigint default null,
  rewind_items int default null,
  rewind_ms bigint default null,
  after_seq bigint default null
)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  parsed private.channel := private.parse_channel(channel_history.channel);
  rule private.channel_rules;
  is_rewind boolean := rewind_items is not null or rewind_ms is not null;
  take int;
  from_time timestamptz := case when start_ms is not null then to_timestamp(start_ms / 1000.0) end;
  -- `end` is inclusive to the millisecond, the precision of the timestamps clients see.
  before_time timestamptz := case when end_ms is not null then to_timestamp(end_ms / 1000.0) + interval '1 millisecond' end;
  forwards boolean := direction = 'forwards';
  items jsonb;
  has_more boolean;
begin
  if parsed is null then
    perform private.raise_client_error(400, 'invalid_request', format('%L is not a channel.', channel_history.channel));
  end if;
  rule := private.channel_rule(parsed);
  if rule.history = 'none' and not rule.persist_last then
    perform private.raise_client_error(404, 'not_found', format('Messages on %s are not kept.', rule.target));
  end if;
  perform private.require_channel_access(channel_history.channel, 'history');
  if direction is null or direction not in ('backwards', 'forwards')
     or max_items is null or max_items not between 1 and 1000
     or rewind_items not between 1 and 100
     or rewind_ms <= 0
     or after_seq < 0 then
    perform private.raise_client_error(400, 'invalid_request', 'A history parameter is out of range.');
  end if;
  if after_seq is not null then
    if rule.history <> 'messages' then
      perform private.raise_client_error(400, 'invalid_request', 'after_seq is for chat channels.');
    end if;
    forwards := true;
    after_key := after_seq;
  end if;

  -- Rewind: the newest items, then returned oldest first.
  if is_rewind then
    forwards := false;
    after_key := null;
    take := coalesce(rewind_items, 100);
    from_time := case when rewind_ms is not null then clock_timestamp() - rewind_ms * interval '1 millisecond' end;
    before_time := null;
  else
    take := max_items;
  end if;

  -- rewind=1 on a persist_last channel is its kept last message, which outlives any history
  -- retention; so is limit=1 where that is all the channel keeps. (limit=1 on a channel with
  -- history pages through the history instead.)
  if rule.persist_last and take = 1 and not forwards and after_key is null and before_time is null
     and (is_rewind or rule.history = 'none') then
    select coalesce(jsonb_agg(jsonb_build_object(
             'id', l.id, 'event', l.event, 'data', l.data, 'timestamp', private.epoch_ms(l.created_at))), '[]')
    into items
    from private.channel_last_messages l
    where l.channel = channel_history.channel and (from_time is null or l.created_at >= from_time);
    return jsonb_build_object('items', items, 'has_more', false, 'next_after_key', null);
  end if;
  if rule.history = 'none' then
    perform private.raise_client_error(400, 'invalid_request',
      format('%s keeps only its last message: ask for rewind=1, or limit=1 without cursor, direction or end.', rule.target));
  end if;
  if rule.history = 'channel' then
    from_time := greatest(coalesce(from_time, '-infinity'), now() - rule.history_retention);
  end if;

  -- One page, read along the (room_id, seq) or (channel, id) index in its direction; one item
  -- more than asked tells whether another page exists. Chat is only what went out (seq set).
  if rule.history = 'messages' and forwards then
    select coalesce(jsonb_agg(p.item order by p.seq), '[]') into items
    from (select m.seq, private.chat_history_item(m) as item from public.messages m
          where m.room_id = parsed.resource_id and m.seq > coalesce(after_key, 0)
            and (from_time is null or m.created_at >= from_time)
            and (before_time is null or m.created_at < before_time)
          order by m.seq limit take + 1) as p;
  elsif rule.history = 'messages' then
    select coalesce(jsonb_agg(p.item order by p.seq desc), '[]') into items
    from (select m.seq, private.chat_history_item(m) as item from public.messages m
          where m.room_id = parsed.resource_id and m.seq < coalesce(after_key, 9223372036854775807)
            and (from_time is null or m.created_at >= from_time)
            and (before_time is null or m.created_at < before_time)
          order by m.seq desc limit take + 1) as p;
  elsif forwards then
    select coalesce(jsonb_agg(p.item order by p.id), '[]') into items
    from (select m.id, private.channel_history_item(m) as item from private.channel_messages m
          where m.channel = channel_history.channel and m.id > coalesce(after_key, 0)
            and m.created_at >= from_time
            and (before_time is null or m.created_at < before_time)
          order by m.id limit take + 1) as p;
  else
    select coalesce(jsonb_agg(p.item order by p.id desc), '[]') into items
    from (select m.id, private.channel_history_item(m) as item from private.channel_messages m
          where m.channel = channel_history.channel and m.id < coalesce(after_key, 9223372036854775807)
            and m.created_at >= from_time
            and (before_time is null or m.created_at < before_time)
          order by m.id desc limit take + 1) as p;
  end if;

  has_more := jsonb_array_length(items) > take;
  items := items - take;
  if is_rewind then
    return jsonb_build_object('items', (select coalesce(jsonb_agg(i.item order by i.position desc), '[]')
                                        from jsonb_array_elements(items) with ordinality as i (item, position)),
                              'has_more', false, 'next_after_key', null);
  end if;
  return jsonb_build_object(
    'items', items,
    'has_more', has_more,
    'next_after_key', case when not has_more then null
                           when rule.history = 'messages' then items -> -1 -> 'data' -> 'seq'
                           else items -> -1 -> 'id' end
  );
end;
$$;

revoke all on all functions in schema edge from public, anon, authenticated, service_role;
