/**
 * ----
 * Publishing: every broadcast through its channel's rule (API.md §3, §4 publish)
 * ----
 * private.publish is the only way the backend broadcasts: it applies the channel's rule
 * (payload size, push, persist all, persist last) and sends through realtime.send on the
 * private channel. edge.publish is that path for clients and app servers.
 *
 * A client's direct Realtime broadcast reaches subscribers but is not kept: the channel rules
 * apply only to what goes through private.publish.
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
  sent_at timestamptz,
  -- The chat message a push belongs to (chat-send's pushes; those published with a message have none).
  message_id bigint
);
create index push_outbox_unsent_idx on private.push_outbox (id) where sent_at is null;

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

alter table private.channel_messages enable row level security;
alter table private.channel_last_messages enable row level security;
alter table private.push_outbox enable row level security;
alter table private.published_ids enable row level security;
revoke all on private.channel_messages, private.channel_last_messages, private.push_outbox,
  private.published_ids from anon, authenticated;

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
  target private.channel_with_rule := private.require_channel(publish.channel);
  parsed private.channel := target.channel;
  rule private.channel_rules := target.rule;
  message_id bigint := nextval('private.channel_message_id');
begin
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
 * Retention: Supabase Cron drops what is older than each kind's history_retention, and the
 * publishers' ids after 24 hours. The purge is callable directly too (tests, operators); it
 * returns how many messages it removed.
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

select cron.schedule('purge-channel-history', '*/10 * * * *', 'select private.purge_channel_history()');
select cron.schedule('purge-published-ids', '*/10 * * * *',
  $$delete from private.published_ids where published_at < now() - interval '24 hours'$$);

/**
 * ----
 * publish (the function): what a caller publishes, through the same rules
 * ----
 * Publishes `messages` ([{channel, event, payload, push?, id?}], 1..50) in order, as the caller:
 * the caller's `publish` capability on the channel (host and dj on the queue, service_role
 * anywhere), the identified and TLS rules, a rate limit per caller and channel from the rule,
 * event names outside the backend's own prefixes, and idempotent message ids. A batch is one
 * transaction: all of it or none. Returns {published: [{id, channel, event, timestamp,
 * duplicate}]}: `id` is the publisher's id, or the message's number as text when it gave none.
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
  rule private.channel_rules;
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
    rule := (private.require_channel(target)).rule;
    -- Chat and playback have their own functions (batching, seq, conflation): nobody publishes
    -- on them here, not even service_role.
    if rule.batch_interval_ms is not null or rule.conflation_interval_ms is not null then
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

    perform private.take_tokens(target, rule, 1);
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
-- Reached only through the Edge Function (see the edge schema in the setup migration).
revoke all on function edge.publish(jsonb) from public, anon, authenticated, service_role;
