/**
 * ----
 * Publishing and history (API.md §3, §4 history)
 * ----
 * private.publish is the only way the backend broadcasts: it applies the channel's rule
 * (payload size, push, persist all, persist last) and sends through realtime.send on the
 * private channel. public.channel_history serves what the rules persisted.
 *
 * Errors meant for clients are raised with SQLSTATE 'WS' + HTTP status (e.g. WS400, WS403), the
 * contract's error code as the message and a sentence as the detail; the functions turn them
 * into `{"error": {code, message}}` with that status.
 */

/**
 * ----
 * Storage
 * ----
 */
-- One id sequence for everything published, so a channel's items are ordered whichever table
-- keeps them.
create sequence private.channel_message_id;

/** Every message published on a channel whose rule keeps history in 'channel'. */
create table private.channel_messages (
  id bigint primary key default nextval('private.channel_message_id'),
  channel text not null,
  -- The channel kind, so the purge can apply the kind's retention without parsing names.
  namespace text not null,
  kind text not null,
  event text not null,
  data jsonb not null,
  created_at timestamptz not null default now()
);
create index channel_messages_channel_id_idx on private.channel_messages (channel, id);
create index channel_messages_kind_created_at_idx on private.channel_messages (namespace, kind, created_at);

/** The last message of each channel whose rule says persist_last. */
create table private.channel_last_messages (
  channel text primary key,
  id bigint not null,
  event text not null,
  data jsonb not null,
  created_at timestamptz not null
);

/** Published `push` objects, for a push worker to deliver. */
create table private.push_outbox (
  id bigint primary key,
  channel text not null,
  event text not null,
  push jsonb not null,
  created_at timestamptz not null default now(),
  sent_at timestamptz
);
create index push_outbox_unsent_idx on private.push_outbox (id) where sent_at is null;

alter table private.channel_messages enable row level security;
alter table private.channel_last_messages enable row level security;
alter table private.push_outbox enable row level security;
revoke all on private.channel_messages, private.channel_last_messages, private.push_outbox
  from anon, authenticated;

/**
 * ----
 * Shapes shared by every endpoint. Plain SQL without SET clauses, so the planner inlines them
 * into the queries that build JSON for many rows.
 * ----
 */
create function private.epoch_ms(at timestamptz)
returns bigint
language sql
immutable
as $$
  select floor(extract(epoch from at) * 1000)::bigint
$$;

/** API.md's Message. */
create function private.message_json(m public.messages)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object(
    'id', m.id, 'room_id', m.room_id, 'user_id', m.user_id, 'client_id', m.client_id,
    'body', m.body, 'created_at', m.created_at
  )
$$;

/** Raises a client error the functions answer with `status` and `code` (see above). */
create function private.raise_client_error(status int, code text, message text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'WS' || status, message = code, detail = message;
end;
$$;

/**
 * private.check_channel for the caller, as a client error when the answer is not 'allowed'.
 * `denied_code` names a refusal where the default (not_a_member / user_id_mismatch) would not fit.
 */
create function private.require_channel_access(topic text, action text, denied_code text default null)
returns void
language plpgsql
stable
set search_path = ''
as $$
declare
  access text := private.check_channel(topic, action);
  refusal text := coalesce(denied_code, case when topic like 'user:%' then 'user_id_mismatch' else 'not_a_member' end);
begin
  case access
    when 'allowed' then
      return;
    when 'invalid_channel' then
      perform private.raise_client_error(400, 'invalid_request', format('%L is not a channel.', topic));
    when 'tls_required' then
      perform private.raise_client_error(403, 'tls_required', 'This channel is only served over HTTPS.');
    when 'identified_only' then
      perform private.raise_client_error(403, 'identified_only',
        'This channel is for signed-in users who are not anonymous.');
    else
      perform private.raise_client_error(403, refusal, case refusal
        when 'not_host' then 'Only the host of the room may do this.'
        when 'user_id_mismatch' then 'This channel belongs to another user.'
        else 'Only members of the room may do this.'
      end);
  end case;
end;
$$;
grant execute on function private.epoch_ms(timestamptz), private.message_json(public.messages),
  private.raise_client_error(int, text, text), private.require_channel_access(text, text, text)
  to authenticated, service_role;

/**
 * ----
 * Publishing
 * ----
 */
create function private.publish(channel text, event text, payload jsonb, push jsonb default null)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  parsed private.channel := private.parse_channel(publish.channel);
  rule private.channel_rules;
  message_id bigint := nextval('private.channel_message_id');
begin
  if parsed is null then
    perform private.raise_client_error(400, 'invalid_request', format('%L is not a channel.', publish.channel));
  end if;
  rule := private.channel_rule(parsed);
  if rule is null then
    perform private.raise_client_error(400, 'invalid_request', format('%L has no channel rule.', publish.channel));
  end if;
  if jsonb_typeof(payload) is distinct from 'object' or event is null or event = '' then
    perform private.raise_client_error(400, 'invalid_request', 'A message needs an event and an object payload.');
  end if;
  if octet_length(payload::text) > rule.max_payload_bytes then
    perform private.raise_client_error(413, 'payload_too_large',
      format('Messages on %s carry at most %s bytes.', rule.target, rule.max_payload_bytes));
  end if;
  if push is not null then
    if not rule.push then
      perform private.raise_client_error(400, 'push_not_enabled',
        format('Push is not enabled on %s channels.', rule.target));
    end if;
    insert into private.push_outbox (id, channel, event, push) values (message_id, publish.channel, publish.event, publish.push);
  end if;
  if rule.history = 'channel' then
    insert into private.channel_messages (id, channel, namespace, kind, event, data)
    values (message_id, publish.channel, parsed.namespace, parsed.kind, publish.event, payload);
  end if;
  if rule.persist_last then
    insert into private.channel_last_messages (channel, id, event, data, created_at)
    values (publish.channel, message_id, publish.event, payload, now())
    on conflict on constraint channel_last_messages_pkey do update
      set id = excluded.id, event = excluded.event, data = excluded.data, created_at = excluded.created_at
      -- Two publishes can commit out of order: the newer message stays the last one.
      where private.channel_last_messages.id < excluded.id;
  end if;
  perform realtime.send(payload, publish.event, publish.channel, true);
  return message_id;
end;
$$;
grant execute on function private.publish(text, text, jsonb, jsonb) to service_role;

/**
 * ----
 * Retention: drop what is older than each kind's history_retention. Scheduled below; callable
 * directly (tests, operators). Returns how many messages it removed.
 * ----
 */
create function private.purge_channel_history()
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  removed bigint := 0;
  batch bigint;
  kind_rule record;
begin
  for kind_rule in
    select k.namespace, k.kind,
           (private.channel_rule(row(k.namespace, null, k.kind)::private.channel)).history_retention as retention
    from private.channel_kinds k
  loop
    delete from private.channel_messages m
    where m.namespace = kind_rule.namespace and m.kind = kind_rule.kind
      and (kind_rule.retention is null or m.created_at < now() - kind_rule.retention);
    get diagnostics batch = row_count;
    removed := removed + batch;
  end loop;
  return removed;
end;
$$;
grant execute on function private.purge_channel_history() to service_role;

-- Supabase Cron (pg_cron), as the Supabase docs enable it.
create extension if not exists pg_cron with schema pg_catalog;
grant usage on schema cron to postgres;
grant all privileges on all tables in schema cron to postgres;
select cron.schedule('purge-channel-history', '*/10 * * * *', 'select private.purge_channel_history()');

/**
 * ----
 * History
 * ----
 * public.channel_history(channel, ...) answers the `history` function: the caller needs the
 * channel's `history` capability (the same audiences as subscribe). Items are keyed by their id
 * (ascending = chronological); a page continues after `after_id` in its direction. Security
 * definer because the persisted messages are in private tables: the check comes first.
 *   rewind_items  the last N (1..100), oldest first
 *   rewind_ms     those of the last N milliseconds (at most 100), oldest first
 * Returns {items: [{id, event, data, timestamp}], has_more}.
 */
create function public.channel_history(
  channel text,
  max_items int default 100,
  direction text default 'backwards',
  start_ms bigint default null,
  end_ms bigint default null,
  after_id bigint default null,
  rewind_items int default null,
  rewind_ms bigint default null
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
  to_time timestamptz := case when end_ms is not null then to_timestamp(end_ms / 1000.0) end;
  forwards boolean := direction = 'forwards';
  items jsonb;
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
     or rewind_ms <= 0 then
    perform private.raise_client_error(400, 'invalid_request', 'A history parameter is out of range.');
  end if;

  -- Rewind: the newest items, then returned oldest first.
  if is_rewind then
    forwards := false;
    after_id := null;
    take := coalesce(rewind_items, 100);
    from_time := case when rewind_ms is not null then clock_timestamp() - rewind_ms * interval '1 millisecond' end;
    to_time := null;
  else
    take := max_items;
  end if;

  -- rewind=1 on a persist_last channel is its kept last message, which outlives any history
  -- retention; so is limit=1 where that is all the channel keeps. (limit=1 on a channel with
  -- history pages through the history instead.)
  if rule.persist_last and take = 1 and not forwards and after_id is null and to_time is null
     and (is_rewind or rule.history = 'none') then
    select coalesce(jsonb_agg(jsonb_build_object(
             'id', l.id, 'event', l.event, 'data', l.data, 'timestamp', private.epoch_ms(l.created_at))), '[]')
    into items
    from private.channel_last_messages l
    where l.channel = channel_history.channel and (from_time is null or l.created_at >= from_time);
    return jsonb_build_object('items', items, 'has_more', false);
  end if;
  if rule.history = 'none' then
    perform private.raise_client_error(400, 'invalid_request',
      format('%s keeps only its last message: ask for rewind=1, or limit=1 without cursor, direction or end.', rule.target));
  end if;

  -- One page in id order (ascending = chronological), read newest first for backwards and
  -- rewind; one item more than asked tells whether another page exists. The direction is
  -- spliced in so that the scan follows the (room_id | channel, id) index. `end` is inclusive
  -- to the millisecond, the precision of the timestamps clients see.
  execute format(
    $query$
      select coalesce(jsonb_agg(page.item order by page.id %6$s), '[]')
      from (
        select m.id, %2$s as item
        from %3$s as m
        where %4$s
          and ($2::bigint is null or m.id %5$s $2)
          and ($3::timestamptz is null or m.created_at >= $3)
          and ($4::timestamptz is null or m.created_at < $4 + interval '1 millisecond')
        order by m.id %1$s
        limit $5
      ) as page
    $query$,
    case when forwards then 'asc' else 'desc' end,
    case rule.history
      when 'messages' then $item$jsonb_build_object('id', m.id, 'event', 'chat:message',
        'data', private.message_json(m), 'timestamp', private.epoch_ms(m.created_at))$item$
      else $item$jsonb_build_object('id', m.id, 'event', m.event, 'data', m.data,
        'timestamp', private.epoch_ms(m.created_at))$item$
    end,
    case rule.history when 'messages' then 'public.messages' else 'private.channel_messages' end,
    -- Chat history is what went out: batches leave in id order, so a forwards page can never
    -- pass a message that is still waiting and skip it.
    case rule.history when 'messages' then 'm.room_id = $1::uuid and m.broadcast_at is not null'
                      else 'm.channel = $1' end,
    case when forwards then '>' else '<' end,
    -- Rewinds are read newest first but returned oldest first.
    case when forwards or is_rewind then 'asc' else 'desc' end
  )
  into items
  using
    case rule.history when 'messages' then parsed.resource_id::text else channel_history.channel end,
    after_id,
    case when rule.history = 'channel'
      then greatest(coalesce(from_time, '-infinity'), now() - rule.history_retention)
      else from_time end,
    to_time,
    take + 1;

  if jsonb_array_length(items) <= take then
    return jsonb_build_object('items', items, 'has_more', false);
  end if;
  if is_rewind then
    -- The extra item is the oldest, so the first.
    return jsonb_build_object('items', items - 0, 'has_more', false);
  end if;
  return jsonb_build_object('items', items - take, 'has_more', true);
end;
$$;
grant execute on function public.channel_history(text, int, text, bigint, bigint, bigint, int, bigint)
  to authenticated, service_role;
