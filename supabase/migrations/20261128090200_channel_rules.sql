/**
 * ----
 * Channels: kinds, rules, actions, audiences and capabilities as data (API.md §3)
 * ----
 * A channel name is `<namespace>:<resource id>[:<kind>]`, e.g. `room:{room_id}:chat`. What a
 * channel does (persistence, batching, rate limits, ...) is its rule; who may do what on it is
 * its capabilities. All of them are rows, so changing a policy — or adding a kind, an action or
 * an audience — is an INSERT or an UPDATE, not a change of constraints or code. They live in
 * `private`: clients never read or write them.
 */

/**
 * ----
 * Channel kinds: the channels that exist. `meta` is the namespace's own channel (`room:{id}`).
 * ----
 */
create table private.channel_kinds (
  namespace text not null check (namespace ~ '^[a-z]+$'),
  kind text not null check (kind ~ '^[a-z]+$'),
  description text not null,
  primary key (namespace, kind)
);

insert into private.channel_kinds (namespace, kind, description) values
  ('room', 'meta', 'room meta and presence:member_added / presence:member_removed'),
  ('room', 'chat', 'chat:batch'),
  ('room', 'queue', 'queue events'),
  ('room', 'playback', 'playback:position'),
  ('user', 'activity', 'a user''s activity'),
  ('user', 'notifications', 'a user''s notifications');

/**
 * ----
 * Channel rules, keyed by namespace (`kind = '*'`) with optional per-kind overrides: the rule of
 * a channel is the row for its kind if there is one, else its namespace's row. An override is a
 * whole row, so every rule can be read on its own.
 * ----
 */
create table private.channel_rules (
  namespace text not null,
  kind text not null default '*',
  target text generated always as (
    case when kind = '*' then namespace else namespace || ':*:' || kind end
  ) stored,
  persist_last boolean not null default false,
  -- Where history comes from: nowhere, the messages table (chat), or the channel's published
  -- messages (private.channel_messages), kept for history_retention.
  history text not null default 'none' check (history in ('none', 'messages', 'channel')),
  history_retention interval check (history_retention > interval '0'),
  identified boolean not null default true,
  tls_only boolean not null default false,
  push boolean not null default false,
  batch_interval_ms int check (batch_interval_ms > 0),
  batch_max int check (batch_max > 0),
  conflation_interval_ms int check (conflation_interval_ms > 0),
  conflation_key text,
  -- Largest payload a publish may carry, as JSON text.
  max_payload_bytes int not null default 65536 check (max_payload_bytes > 0),
  -- What a caller may send or publish on one channel: a token bucket (private.take_tokens).
  rate_per_second numeric check (rate_per_second > 0),
  rate_burst int check (rate_burst > 0),
  primary key (namespace, kind),
  constraint channel_rules_retention_check check ((history = 'channel') = (history_retention is not null)),
  -- The messages table holds room chat only.
  constraint channel_rules_messages_history_check
    check (history <> 'messages' or (namespace = 'room' and kind = 'chat')),
  constraint channel_rules_batch_check check ((batch_interval_ms is null) = (batch_max is null)),
  constraint channel_rules_conflation_check check ((conflation_interval_ms is null) = (conflation_key is null)),
  constraint channel_rules_rate_check check ((rate_per_second is null) = (rate_burst is null))
);
comment on table private.channel_rules is
  'What a channel does. target = ''room'' (namespace default) or ''room:*:chat'' (override).';

insert into private.channel_rules
  (namespace, kind, persist_last, history, history_retention, identified, tls_only, push,
   batch_interval_ms, batch_max, conflation_interval_ms, conflation_key, rate_per_second, rate_burst)
values
  ('room', '*',             false, 'none',     null,       true, false, false, null, null, null, null,   null, null),
  ('room', 'chat',          false, 'messages', null,       true, false, true,  100,  200,  null, null,   20,   50),
  ('room', 'queue',         true,  'channel',  '24 hours', true, false, false, null, null, null, null,   10,   20),
  ('room', 'playback',      true,  'none',     null,       true, false, false, null, null, 500,  'room', null, null),
  ('user', 'activity',      false, 'channel',  '24 hours', true, false, false, null, null, null, null,   null, null),
  ('user', 'notifications', true,  'channel',  '72 hours', true, true,  true,  null, null, null, null,   null, null);

/**
 * ----
 * Actions and audiences: what can be done on a channel, and who a capability names.
 * ----
 */
create table private.channel_actions (
  action text primary key check (action ~ '^[a-z]+$'),
  -- How Supabase Realtime asks for it, through the policies on realtime.messages; null where
  -- only the Edge Functions check it.
  realtime_probe text,
  description text not null
);

insert into private.channel_actions (action, realtime_probe, description) values
  ('subscribe', 'SELECT', 'join the channel and receive its broadcasts'),
  ('publish', 'INSERT broadcast', 'broadcast on it, straight to Realtime or through the publish function'),
  ('presence', 'INSERT presence', 'track presence on it'),
  ('history', null, 'read what its rule kept: history, rewind, room-context'),
  ('send', null, 'send through the backend functions: chat-send, playback');

-- How each audience is matched is private.check_channel's: these rows name the ones it knows.
create table private.channel_audiences (
  audience text primary key check (audience ~ '^[a-z]+$'),
  description text not null
);

insert into private.channel_audiences (audience, description) values
  ('member', 'any member of the room'),
  ('listener', 'a member of the room with role listener'),
  ('dj', 'a member of the room with role dj'),
  ('host', 'a member of the room with role host'),
  ('self', 'the user the channel belongs to'),
  ('service', 'the service_role key');

/**
 * ----
 * Capabilities: which audience may do what on each channel kind.
 * ----
 */
create table private.channel_capabilities (
  namespace text not null,
  kind text not null,
  action text not null references private.channel_actions (action),
  audience text not null references private.channel_audiences (audience),
  primary key (namespace, kind, action, audience),
  foreign key (namespace, kind) references private.channel_kinds (namespace, kind) on delete cascade
);

insert into private.channel_capabilities (namespace, kind, action, audience) values
  ('room', 'meta', 'subscribe', 'member'),
  ('room', 'meta', 'presence', 'member'),
  ('room', 'chat', 'subscribe', 'member'),
  ('room', 'chat', 'history', 'member'),
  ('room', 'chat', 'send', 'member'),
  ('room', 'queue', 'subscribe', 'member'),
  ('room', 'queue', 'history', 'member'),
  ('room', 'queue', 'publish', 'host'),
  ('room', 'queue', 'publish', 'dj'),
  ('room', 'playback', 'subscribe', 'member'),
  ('room', 'playback', 'history', 'member'),
  ('room', 'playback', 'send', 'host'),
  ('user', 'activity', 'subscribe', 'self'),
  ('user', 'activity', 'history', 'self'),
  ('user', 'notifications', 'subscribe', 'self'),
  ('user', 'notifications', 'history', 'self');

-- The service role may do everything on every channel.
insert into private.channel_capabilities (namespace, kind, action, audience)
select k.namespace, k.kind, a.action, 'service'
from private.channel_kinds k
cross join private.channel_actions a;

alter table private.channel_kinds enable row level security;
alter table private.channel_rules enable row level security;
alter table private.channel_actions enable row level security;
alter table private.channel_audiences enable row level security;
alter table private.channel_capabilities enable row level security;
revoke all on private.channel_kinds, private.channel_rules, private.channel_actions,
  private.channel_audiences, private.channel_capabilities from anon, authenticated;

/**
 * ----
 * Parsing a channel and finding its rule
 * ----
 */
create type private.channel as (namespace text, resource_id uuid, kind text);

/**
 * Parses `<namespace>:<uuid>[:<kind>]` (the uuid in canonical lower-case form; no kind = `meta`).
 * Returns null for anything malformed or for a namespace/kind that is not in channel_kinds.
 * PL/pgSQL, like the other per-request helpers, so its plan is kept for the session.
 */
create function private.parse_channel(topic text)
returns private.channel
language plpgsql
stable
set search_path = ''
as $$
declare
  part text[] := regexp_match(
    parse_channel.topic,
    '^([a-z]+):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?::([a-z]+))?$'
  );
begin
  -- `meta` is only ever implied: `room:{id}:meta` is not a second name for `room:{id}`.
  if part is null or part[3] = 'meta' or not exists (
    select 1 from private.channel_kinds k
    where k.namespace = part[1] and k.kind = coalesce(part[3], 'meta')
  ) then
    return null;
  end if;
  return row(part[1], part[2]::uuid, coalesce(part[3], 'meta'))::private.channel;
end;
$$;

/** The rule of a parsed channel: its kind's override, else its namespace's row. */
create function private.channel_rule(channel private.channel)
returns private.channel_rules
language plpgsql
stable
set search_path = ''
as $$
declare
  rule private.channel_rules;
begin
  select r.* into rule from private.channel_rules r
  where r.namespace = (channel).namespace and r.kind in ((channel).kind, '*')
  order by r.kind = '*'
  limit 1;
  return rule;
end;
$$;

/** A channel and its rule, as one value: what the callers of the two functions below need. */
create type private.channel_with_rule as (channel private.channel, rule private.channel_rules);

/** The channel named `topic` and its rule; its rule is null when `topic` is not a channel. */
create function private.find_channel(topic text)
returns private.channel_with_rule
language plpgsql
stable
set search_path = ''
as $$
declare
  channel private.channel := private.parse_channel(find_channel.topic);
begin
  return row(channel, private.channel_rule(channel))::private.channel_with_rule;
end;
$$;

/** The channel named `topic` and its rule, or 400 invalid_request when it is not a channel. */
create function private.require_channel(topic text)
returns private.channel_with_rule
language plpgsql
stable
set search_path = ''
as $$
declare
  lookup private.channel_with_rule := private.find_channel(require_channel.topic);
begin
  if lookup.channel is null then
    perform private.raise_client_error(400, 'invalid_request', format('%L is not a channel.', topic));
  elsif lookup.rule is null then
    perform private.raise_client_error(400, 'invalid_request', format('%L has no channel rule.', topic));
  end if;
  return lookup;
end;
$$;

/**
 * ----
 * The channel check: may the caller (role and claims of the current transaction, as Realtime and
 * the functions set them) do `action` on `topic`? One security-definer helper used by the RLS
 * policies on realtime.messages and by the Edge Functions, so both enforce the same thing.
 * Returns 'allowed', or why not: 'invalid_channel', 'tls_required', 'identified_only' or 'denied'.
 * tls_only is judged from `request.headers` (x-forwarded-proto), which Realtime and the
 * functions set like PostgREST does.
 * ----
 */
create function private.check_channel(topic text, action text)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  claims jsonb := coalesce(auth.jwt(), '{}'::jsonb);
  caller uuid := auth.uid();
  lookup private.channel_with_rule := private.find_channel(check_channel.topic);
  channel private.channel := lookup.channel;
  rule private.channel_rules := lookup.rule;
  member_role text;
begin
  if rule is null then
    return 'invalid_channel';
  end if;
  if rule.tls_only
     and nullif(current_setting('request.headers', true), '')::jsonb ->> 'x-forwarded-proto' = 'http' then
    return 'tls_required';
  end if;
  if claims ->> 'role' = 'service_role' then
    return case when exists (
      select 1 from private.channel_capabilities c
      where c.namespace = channel.namespace and c.kind = channel.kind
        and c.action = check_channel.action and c.audience = 'service'
    ) then 'allowed' else 'denied' end;
  end if;
  -- Identified: signed in (a sub) and not an anonymous user; a missing claim counts as anonymous.
  if rule.identified and (caller is null or (claims ->> 'is_anonymous')::boolean is not false) then
    return 'identified_only';
  end if;
  if caller is null then
    return 'denied';
  end if;
  if channel.namespace = 'room' then
    select m.role into member_role from public.room_members m
    where m.room_id = channel.resource_id and m.user_id = caller;
  end if;
  return case when exists (
    select 1 from private.channel_capabilities c
    where c.namespace = channel.namespace and c.kind = channel.kind
      and c.action = check_channel.action
      and (
        (c.audience = 'member' and member_role is not null)
        or c.audience = member_role
        or (c.audience = 'self' and channel.namespace = 'user' and channel.resource_id = caller)
      )
  ) then 'allowed' else 'denied' end;
end;
$$;
grant execute on function private.check_channel(text, text) to authenticated, service_role;

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
grant execute on function private.require_channel_access(text, text, text) to authenticated, service_role;
