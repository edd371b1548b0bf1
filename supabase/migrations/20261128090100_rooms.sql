/**
 * ----
 * Rooms, members, songs, chat, play history and playback state (API.md §2)
 * ----
 * Clients read through RLS; they write only rooms and memberships. Chat, plays and playback go
 * through the Edge Functions (chat-send, playback), so nothing skips batching, conflation or the
 * broadcast that follows a write. No table is reachable by `anon`. The tables hold the
 * invariants every writer must respect as constraints; the functions' validation is the
 * friendly copy.
 */

/**
 * ----
 * Tables
 * ----
 */
create table public.rooms (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(btrim(name)) between 1 and 100),
  host_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  visibility text not null default 'public' check (visibility in ('public', 'private')),
  created_at timestamptz not null default now()
);
comment on table public.rooms is 'A listening room. Its host is always a member with role host.';

create table public.room_members (
  room_id uuid not null references public.rooms (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('host', 'dj', 'listener')),
  joined_at timestamptz not null default now(),
  primary key (room_id, user_id)
);
comment on table public.room_members is
  'Who belongs to a room. Channel rights (RLS on realtime.messages) are keyed on it.';

create table public.songs (
  id uuid primary key default gen_random_uuid(),
  title text not null,
  artist text not null,
  duration_ms int not null check (duration_ms > 0)
);

/**
 * Chat has no room-wide lock: a sender only inserts, and a message is numbered by `seq` when it
 * goes out (private.flush_chat). Written any way at all, a row without seq waits for its room's
 * next flush.
 */
create table public.messages (
  id bigint generated always as identity primary key,
  room_id uuid not null references public.rooms (id) on delete cascade,
  user_id uuid not null,
  client_id text not null constraint messages_client_id_check check (client_id ~ '^[A-Za-z0-9:_-]{1,64}$'),
  body text not null
    constraint messages_body_check check (length(body) between 1 and 2000 and body !~ '^\s*$'),
  created_at timestamptz not null default now(),
  broadcast_at timestamptz,
  seq bigint constraint messages_seq_check check (seq > 0),
  -- Idempotent publishing: a retried send with the same client_id finds the stored row.
  constraint messages_room_id_client_id_key unique (room_id, client_id),
  -- Also the index chat is read by: a room's newest, or what follows a seq.
  constraint messages_room_id_seq_key unique (room_id, seq),
  constraint messages_sent_check check ((seq is null) = (broadcast_at is null))
);
comment on table public.messages is
  'Chat. Written only by chat-send, which batches the broadcast on room:{id}:chat.';
comment on column public.messages.broadcast_at is 'When the message went out in a chat:batch; null until then.';
comment on column public.messages.seq is
  'The message''s place in its room''s broadcast order: 1, 2, 3, … without holes; null until it goes out.';

create table public.play_history (
  id bigint generated always as identity primary key,
  room_id uuid not null references public.rooms (id) on delete cascade,
  song_id uuid not null references public.songs (id),
  played_at timestamptz not null default now()
);

create table public.playback_state (
  room_id uuid primary key references public.rooms (id) on delete cascade,
  song_id uuid null references public.songs (id),
  position_ms bigint not null check (position_ms >= 0),
  is_playing boolean not null,
  seq bigint not null check (seq >= 0),
  updated_at timestamptz not null default now()
);
comment on table public.playback_state is 'The latest applied player state per room (ordered by seq).';

/**
 * ----
 * Indexes for the queries the app makes (chat in seq order uses messages_room_id_seq_key)
 * ----
 */
-- Chat waiting for its flush, in id order.
create index messages_unsent_idx on public.messages (room_id, id) where seq is null;
-- Newest plays of a room.
create index play_history_room_id_played_at_idx on public.play_history (room_id, played_at desc, id desc);
-- Rooms of a user (members of a room use the primary key).
create index room_members_user_id_idx on public.room_members (user_id, room_id);
create index rooms_host_id_idx on public.rooms (host_id);
create index play_history_song_id_idx on public.play_history (song_id);
create index playback_state_song_id_idx on public.playback_state (song_id);

/**
 * ----
 * Membership rules
 * ----
 */

/**
 * The rooms the caller belongs to. Security definer so policies on room_members can use it
 * without recursing into their own RLS. The helpers that policies call are PL/pgSQL: their plans
 * are kept for the session, where a non-inlined SQL function is planned again at every call.
 */
create function private.my_room_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return query select m.room_id from public.room_members m where m.user_id = auth.uid();
end;
$$;
grant execute on function private.my_room_ids() to authenticated;

/** The caller's role in a room, or null when they are not a member. */
create function private.my_room_role(room uuid)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return (select m.role from public.room_members m
          where m.room_id = my_room_role.room and m.user_id = auth.uid());
end;
$$;
grant execute on function private.my_room_role(uuid) to authenticated;

/** Creating a room makes its host a member with role `host`. */
create function private.add_host_as_member()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.room_members (room_id, user_id, role) values (new.id, new.host_id, 'host');
  return new;
end;
$$;

create trigger rooms_add_host_as_member
after insert on public.rooms
for each row execute function private.add_host_as_member();

/**
 * The host row belongs to the room: it cannot be removed or changed while the room exists, and
 * nobody else can be given the host role. (Deleting the room cascades past this check.)
 */
create function private.protect_host_membership()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  room_host uuid;
begin
  select r.host_id into room_host from public.rooms r
  where r.id = coalesce(new.room_id, old.room_id);
  -- The room, or the member's user, is being deleted (a cascade): nothing to protect.
  if room_host is null
     or (tg_op = 'DELETE' and not exists (select 1 from auth.users u where u.id = old.user_id)) then
    return coalesce(new, old);
  end if;
  if tg_op in ('UPDATE', 'DELETE') and old.user_id = room_host then
    raise exception 'The host''s membership cannot be changed or removed'
      using errcode = 'check_violation';
  end if;
  if tg_op in ('INSERT', 'UPDATE') and new.role = 'host' and new.user_id is distinct from room_host then
    raise exception 'Only the room''s host has the host role' using errcode = 'check_violation';
  end if;
  return coalesce(new, old);
end;
$$;

create trigger room_members_protect_host
before insert or update or delete on public.room_members
for each row execute function private.protect_host_membership();

/**
 * ----
 * Grants: hosted Supabase grants everything in public to the API roles by default; take it back
 * and give each role only what it uses.
 * ----
 */
revoke all on public.rooms, public.room_members, public.songs, public.messages,
  public.play_history, public.playback_state from anon, authenticated;
revoke all on sequence public.messages_id_seq, public.play_history_id_seq from anon, authenticated;

grant select, delete on public.rooms to authenticated;
grant insert (name, visibility, host_id), update (name, visibility) on public.rooms to authenticated;
grant select, delete on public.room_members to authenticated;
grant insert (room_id, user_id, role), update (role) on public.room_members to authenticated;
grant select on public.songs, public.messages, public.play_history, public.playback_state
  to authenticated;

alter table public.rooms enable row level security;
alter table public.room_members enable row level security;
alter table public.songs enable row level security;
alter table public.messages enable row level security;
alter table public.play_history enable row level security;
alter table public.playback_state enable row level security;

/**
 * ----
 * Policies: one command and one audience each
 * ----
 */
-- host_id too, not only membership: the host's member row is added by an AFTER trigger, and
-- `insert ... returning` (supabase-js `.insert().select()`) checks this policy before it runs.
create policy "Signed-in users see public rooms and their own"
on public.rooms for select to authenticated
using (
  visibility = 'public'
  or host_id = (select auth.uid())
  or id in (select private.my_room_ids())
);

create policy "Permanent users create rooms they host"
on public.rooms for insert to authenticated
with check (
  host_id = (select auth.uid())
  and ((select auth.jwt()) ->> 'is_anonymous')::boolean is false
);

create policy "Hosts update their rooms"
on public.rooms for update to authenticated
using (host_id = (select auth.uid()))
with check (host_id = (select auth.uid()));

create policy "Hosts delete their rooms"
on public.rooms for delete to authenticated
using (host_id = (select auth.uid()));

create policy "Members see the members of their rooms"
on public.room_members for select to authenticated
using (room_id in (select private.my_room_ids()));

create policy "Users join public rooms as listeners"
on public.room_members for insert to authenticated
with check (
  user_id = (select auth.uid())
  and role = 'listener'
  and exists (select 1 from public.rooms r where r.id = room_id and r.visibility = 'public')
);

create policy "Hosts add members to their rooms"
on public.room_members for insert to authenticated
with check ((select private.my_room_role(room_id)) = 'host');

create policy "Hosts change the roles of their rooms' members"
on public.room_members for update to authenticated
using ((select private.my_room_role(room_id)) = 'host')
with check ((select private.my_room_role(room_id)) = 'host');

create policy "Hosts remove members from their rooms"
on public.room_members for delete to authenticated
using ((select private.my_room_role(room_id)) = 'host');

create policy "Members leave rooms"
on public.room_members for delete to authenticated
using (user_id = (select auth.uid()));

create policy "Signed-in users browse the song catalogue"
on public.songs for select to authenticated
using (true);

create policy "Members read their rooms' chat"
on public.messages for select to authenticated
using (room_id in (select private.my_room_ids()));

create policy "Members read their rooms' play history"
on public.play_history for select to authenticated
using (room_id in (select private.my_room_ids()));

create policy "Members read their rooms' playback state"
on public.playback_state for select to authenticated
using (room_id in (select private.my_room_ids()));

/**
 * ----
 * Shapes of API.md §4. Plain SQL without SET clauses, so the planner inlines them into the
 * queries that build JSON for many rows.
 * ----
 */

/** API.md's Message. */
create function private.message_json(m public.messages)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object(
    'id', m.id, 'seq', m.seq, 'room_id', m.room_id, 'user_id', m.user_id,
    'client_id', m.client_id, 'body', m.body, 'created_at', m.created_at
  )
$$;

/** API.md's PlaybackState, with the server's clock so a client can place the position. */
create function private.playback_json(p public.playback_state, server_time timestamptz)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object(
    'room_id', p.room_id, 'song_id', p.song_id, 'position_ms', p.position_ms,
    'is_playing', p.is_playing, 'seq', p.seq, 'updated_at', p.updated_at,
    'server_time', private.epoch_ms(server_time)
  )
$$;
grant execute on function private.message_json(public.messages),
  private.playback_json(public.playback_state, timestamptz) to authenticated, service_role;

/**
 * ----
 * Room or 404: every entry point about one room answers room_not_found for a room that does not
 * exist, before it judges the caller's rights (which would say 403).
 * ----
 */

/** Whether a room exists, whoever may see it. */
create function private.room_exists(room uuid)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return exists (select 1 from public.rooms r where r.id = room_exists.room);
end;
$$;

/** 404 room_not_found unless the room exists. */
create function private.require_room(room uuid)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  if not private.room_exists(require_room.room) then
    perform private.raise_client_error(404, 'room_not_found', 'There is no such room.');
  end if;
end;
$$;
grant execute on function private.room_exists(uuid), private.require_room(uuid) to authenticated, service_role;
