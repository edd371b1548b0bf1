/**
 * ----
 * History: what the channel rules kept (API.md §4 history, room-context `queue`)
 * ----
 * Chat is read from the messages table once it has gone out, by seq; the other channels from
 * what private.publish kept (private.channel_messages), within their rule's retention; a
 * persist-last channel's last message from private.channel_last_messages, which outlives any
 * retention. Readers need the channel's `history` capability (the same audiences as subscribe).
 */

/**
 * A history item, {id, event, data, timestamp}, whichever table kept it. Plain SQL without SET
 * clauses, so the planner inlines it into the queries that build a page.
 */
create function private.history_item(id bigint, event text, data jsonb, at timestamptz)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object('id', id, 'event', event, 'data', data, 'timestamp', private.epoch_ms(at))
$$;

/** A persist-last channel's kept message as a history item, for callers with its history right;
 * null otherwise. */
create function private.last_message(channel text)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select private.history_item(l.id, l.event, l.data, l.created_at)
  from private.channel_last_messages l
  where l.channel = last_message.channel and private.check_channel(last_message.channel, 'history') = 'allowed'
$$;
grant execute on function private.last_message(text) to authenticated, service_role;

/**
 * edge.channel_history(channel, ...) answers the `history` function. A page continues after
 * `after_key` in its direction; the key is the item's seq on chat channels and its id on the
 * others (both ascending = the order messages went out). Security definer because the persisted
 * messages are in private tables: the check comes first.
 *   after_seq     chat only: the messages with seq after_seq + 1, + 2, …, oldest first
 *   rewind_items  the last N (1..100), oldest first
 *   rewind_ms     those of the last N milliseconds (at most 100), oldest first
 * Returns {items: [{id, event, data, timestamp}], has_more, next_after_key}.
 */
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
  target private.channel_with_rule := private.require_channel(channel_history.channel);
  room uuid := (target.channel).resource_id;
  rule private.channel_rules := target.rule;
  is_rewind boolean := rewind_items is not null or rewind_ms is not null;
  forwards boolean := direction = 'forwards';
  take int := max_items;
  -- The time range [from_time, before_time). `end` is inclusive to the millisecond, the
  -- precision of the timestamps clients see.
  from_time timestamptz := coalesce(to_timestamp(start_ms / 1000.0), '-infinity');
  before_time timestamptz := coalesce(to_timestamp(end_ms / 1000.0) + interval '1 millisecond', 'infinity');
  items jsonb;
  has_more boolean;
begin
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

  -- after_seq: what a chat reader that saw seq N missed, oldest first.
  if after_seq is not null then
    if rule.history <> 'messages' then
      perform private.raise_client_error(400, 'invalid_request', 'after_seq is for chat channels.');
    end if;
    forwards := true;
    after_key := after_seq;
  end if;
  -- Rewind: the newest items (read backwards), returned oldest first.
  if is_rewind then
    forwards := false;
    after_key := null;
    take := coalesce(rewind_items, 100);
    from_time := coalesce(clock_timestamp() - rewind_ms * interval '1 millisecond', '-infinity');
    before_time := 'infinity';
  end if;

  -- rewind=1 on a persist_last channel is its kept last message, which outlives any history
  -- retention; so is limit=1 where that is all the channel keeps. (limit=1 on a channel with
  -- history pages through the history instead.)
  if rule.persist_last and take = 1 and not forwards and after_key is null and before_time = 'infinity'
     and (is_rewind or rule.history = 'none') then
    select coalesce(jsonb_agg(private.history_item(l.id, l.event, l.data, l.created_at)), '[]') into items
    from private.channel_last_messages l
    where l.channel = channel_history.channel and l.created_at >= from_time;
    return jsonb_build_object('items', items, 'has_more', false, 'next_after_key', null);
  end if;
  if rule.history = 'none' then
    perform private.raise_client_error(400, 'invalid_request',
      format('%s keeps only its last message: ask for rewind=1, or limit=1 without cursor, direction or end.', rule.target));
  end if;
  if rule.history = 'channel' then
    from_time := greatest(from_time, now() - rule.history_retention);
  end if;

  -- One page, read along the room's (room_id, seq) or the channel's (channel, id) index in its
  -- direction; one item more than asked tells whether another page exists. Chat is only what
  -- went out (seq set), so a reader following seq forwards never skips a message still waiting.
  if rule.history = 'messages' and forwards then
    select coalesce(jsonb_agg(p.item order by p.seq), '[]') into items from (
      select m.seq, private.history_item(m.id, 'chat:message', private.message_json(m), m.created_at) as item
      from public.messages m
      where m.room_id = room and m.seq > coalesce(after_key, 0)
        and m.created_at >= from_time and m.created_at < before_time
      order by m.seq limit take + 1) as p;
  elsif rule.history = 'messages' then
    select coalesce(jsonb_agg(p.item order by p.seq desc), '[]') into items from (
      select m.seq, private.history_item(m.id, 'chat:message', private.message_json(m), m.created_at) as item
      from public.messages m
      where m.room_id = room and m.seq < coalesce(after_key, 9223372036854775807)
        and m.created_at >= from_time and m.created_at < before_time
      order by m.seq desc limit take + 1) as p;
  elsif forwards then
    select coalesce(jsonb_agg(p.item order by p.id), '[]') into items from (
      select m.id, private.history_item(m.id, m.event, m.data, m.created_at) as item
      from private.channel_messages m
      where m.channel = channel_history.channel and m.id > coalesce(after_key, 0)
        and m.created_at >= from_time and m.created_at < before_time
      order by m.id limit take + 1) as p;
  else
    select coalesce(jsonb_agg(p.item order by p.id desc), '[]') into items from (
      select m.id, private.history_item(m.id, m.event, m.data, m.created_at) as item
      from private.channel_messages m
      where m.channel = channel_history.channel and m.id < coalesce(after_key, 9223372036854775807)
        and m.created_at >= from_time and m.created_at < before_time
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
revoke all on function edge.channel_history(text, int, text, bigint, bigint, bigint, int, bigint, bigint)
  from public, anon, authenticated, service_role;
