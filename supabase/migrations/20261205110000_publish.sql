/**
 * ----
 * publish: every persisted channel written through its rules (API.md §4 publish)
 * ----
 * A client's direct Realtime broadcast reaches subscribers but is not kept: the channel rules
 * (history, persist last, push, payload limit) apply only to what goes through private.publish.
 * edge.publish is that path for clients and app servers: the caller's `publish` capability on
 * the channel (host and dj on the queue, service_role anywhere), the identified and TLS rules,
 * a rate limit per caller and channel from the rule, event names outside the backend's own
 * prefixes, and idempotent message ids. A batch is one transaction: all of it or none.
 */

update private.channel_rules set rate_per_second = 10, rate_burst = 20
where namespace = 'room' and kind = 'queue';

/** Message ids given by publishers, remembered for 24 hours so a resend is not published twice. */
create table private.published_ids (
  channel text not null,
  id text not null check (id ~ '^[A-Za-z0-9:_-]{1,64}$'),
  event text not null,
  -- Set in the same transaction, once the message has its number.
  message_id bigint,
  published_at timestamptz not null default now(),
  primary key (channel, id)
);
create index published_ids_published_at_idx on private.published_ids (published_at);
alter table private.published_ids enable row level security;
revoke all on private.published_ids from anon, authenticated;

select cron.schedule('purge-published-ids', '*/10 * * * *',
  $$delete from private.published_ids where published_at < now() - interval '24 hours'$$);

/**
 * Publishes `messages` ([{channel, event, payload, push?, id?}], 1..50) in order, as the caller.
 * Returns {published: [{id, channel, event, timestamp, duplicate}]}: `id` is the publisher's id,
 * or the message's number as text when it gave none.
 */
create function edge.publish(messages jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  message jsonb;
  target text;
  event_name text;
  given_id text;
  earlier private.published_ids;
  published_id bigint;
  published jsonb := '[]';
begin
  if jsonb_typeof(messages) is distinct from 'array' or jsonb_array_length(messages) not between 1 and 50 then
    perform private.raise_client_error(400, 'invalid_request', 'Publish 1 to 50 messages.');
  end if;
  for message in select m.value from jsonb_array_elements(messages) as m loop
    if jsonb_typeof(message) <> 'object'
       or jsonb_typeof(message -> 'channel') is distinct from 'string'
       or jsonb_typeof(message -> 'event') is distinct from 'string'
       or jsonb_typeof(message -> 'payload') is distinct from 'object'
       or (message ? 'push' and jsonb_typeof(message -> 'push') <> 'object')
       or (message ? 'id' and (jsonb_typeof(message -> 'id') <> 'string'
                               or message ->> 'id' !~ '^[A-Za-z0-9:_-]{1,64}$')) then
      perform private.raise_client_error(400, 'invalid_request',
        'A message is {channel, event, payload: object, push?: object, id?: 1 to 64 of A-Z a-z 0-9 : _ -}.');
    end if;
    target := message ->> 'channel';
    event_name := message ->> 'event';
    given_id := message ->> 'id';
    if event_name !~ '^[A-Za-z0-9:_.-]{1,100}$' or event_name ~ '^(chat|playback|presence):' then
      perform private.raise_client_error(400, 'invalid_request',
        'An event is 1 to 100 of A-Z a-z 0-9 : _ . - and does not start with chat:, playback: or presence:.');
    end if;
    perform private.require_channel_access(target, 'publish');
    -- Chat and playback have their own functions (batching, seq, conflation): nobody publishes
    -- on them here, not even service_role.
    if (select r.batch_interval_ms is not null or r.conflation_interval_ms is not null
        from private.channel_rule(private.parse_channel(target)) r) then
      perform private.raise_client_error(403, 'not_a_member',
        'Chat and playback are sent through chat-send and playback, not published.');
    end if;

    if given_id is not null then
      -- Claims the id (waiting for a concurrent publisher of the same one); a new statement then
      -- sees what that publisher committed.
      insert into private.published_ids as p (channel, id, event)
      values (target, given_id, event_name)
      on conflict on constraint published_ids_pkey do nothing;
      if not found then
        select p.* into earlier from private.published_ids p
        where p.channel = target and p.id = given_id;
        published := published || jsonb_build_object('id', given_id, 'channel', target, 'event', earlier.event,
          'timestamp', private.epoch_ms(earlier.published_at), 'duplicate', true);
        continue;
      end if;
    end if;

    perform private.take_tokens(target, private.channel_rule(private.parse_channel(target)), 1);
    published_id := private.publish(target, event_name, message -> 'payload', message -> 'push');
    if given_id is not null then
      update private.published_ids p set message_id = published_id where p.channel = target and p.id = given_id;
    end if;
    published := published || jsonb_build_object('id', coalesce(given_id, published_id::text), 'channel', target,
      'event', event_name, 'timestamp', private.epoch_ms(now()), 'duplicate', false);
  end loop;
  return jsonb_build_object('published', published);
end;
$$;
revoke all on function edge.publish(jsonb) from public, anon, authenticated, service_role;

/**
 * ----
 * The late joiner's snapshot: chat that went out, by seq (20261205100100_chat_seq.sql), and the
 * queue
 * ----
 */

/** A persist-last channel's kept message as {id, event, data, timestamp}, for callers with its
 * history right; null otherwise. */
create function private.last_message(channel text)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object('id', l.id, 'event', l.event, 'data', l.data, 'timestamp', private.epoch_ms(l.created_at))
  from private.channel_last_messages l
  where l.channel = last_message.channel and private.check_channel(last_message.channel, 'history') = 'allowed'
$$;
grant execute on function private.last_message(text) to authenticated, service_role;

create or replace function edge.room_context(room_id uuid, chat_limit int default 50, history_limit int default 10)
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
