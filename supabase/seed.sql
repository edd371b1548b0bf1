-- Demo data for the local stack (never run on hosted projects), loaded when `npm start` creates
-- the database (`supabase db push --include-seed`; `npm run reset` to load a changed seed).
-- Every insert is idempotent all the same.

-- Users, with fixed ids so tokens for them can be minted with local/keys.ts `userToken(id)`.
-- The three people sign in at /auth/v1 with the password `whatssound-local`, hashed with bcrypt
-- as Supabase Auth stores passwords (cost 10); their addresses count as confirmed, as Auth
-- requires for a password sign-in.
insert into auth.users (id, email, encrypted_password, email_confirmed_at, raw_user_meta_data,
                        raw_app_meta_data, role, aud, is_anonymous)
values
  ('5e1ec7ed-0000-4000-8000-000000000001', 'host@whatssound.test',
   extensions.crypt('whatssound-local', extensions.gen_salt('bf', 10)), now(),
   '{"display_name": "Hana (host)"}',
   '{"provider": "email", "providers": ["email"]}', 'authenticated', 'authenticated', false),
  ('5e1ec7ed-0000-4000-8000-000000000002', 'dj@whatssound.test',
   extensions.crypt('whatssound-local', extensions.gen_salt('bf', 10)), now(),
   '{"display_name": "Diego (dj)"}',
   '{"provider": "email", "providers": ["email"]}', 'authenticated', 'authenticated', false),
  ('5e1ec7ed-0000-4000-8000-000000000003', 'listener@whatssound.test',
   extensions.crypt('whatssound-local', extensions.gen_salt('bf', 10)), now(),
   '{"display_name": "Lucía"}',
   '{"provider": "email", "providers": ["email"]}', 'authenticated', 'authenticated', false),
  ('5e1ec7ed-0000-4000-8000-000000000004', null, null, null, '{}', '{}', 'authenticated',
   'authenticated', true)
on conflict (id) do nothing;

-- Songs.
insert into public.songs (id, title, artist, duration_ms) values
  ('5e1ec7ed-0000-4000-8000-00000000a001', 'Bailando en la azotea', 'Los Vecinos', 214000),
  ('5e1ec7ed-0000-4000-8000-00000000a002', 'Midnight Tram', 'Harbour Lights', 187500),
  ('5e1ec7ed-0000-4000-8000-00000000a003', 'Café con sal', 'Marea Baja', 242000),
  ('5e1ec7ed-0000-4000-8000-00000000a004', 'Low Orbit', 'Static Garden', 301000)
on conflict (id) do nothing;

-- A public room (the anonymous user listens in) and a private one. Creating a room makes its
-- host a member with role `host` (trigger), so only the others are added here.
insert into public.rooms (id, name, host_id, visibility) values
  ('5e1ec7ed-0000-4000-8000-00000000b001', 'Sunday vinyl', '5e1ec7ed-0000-4000-8000-000000000001', 'public'),
  ('5e1ec7ed-0000-4000-8000-00000000b002', 'Friends only', '5e1ec7ed-0000-4000-8000-000000000001', 'private')
on conflict (id) do nothing;

insert into public.room_members (room_id, user_id, role) values
  ('5e1ec7ed-0000-4000-8000-00000000b001', '5e1ec7ed-0000-4000-8000-000000000002', 'dj'),
  ('5e1ec7ed-0000-4000-8000-00000000b001', '5e1ec7ed-0000-4000-8000-000000000003', 'listener'),
  ('5e1ec7ed-0000-4000-8000-00000000b001', '5e1ec7ed-0000-4000-8000-000000000004', 'listener'),
  ('5e1ec7ed-0000-4000-8000-00000000b002', '5e1ec7ed-0000-4000-8000-000000000003', 'listener')
on conflict (room_id, user_id) do nothing;

-- As if they had gone out already (seq and broadcast_at set), so a late joiner sees them at once.
insert into public.messages (room_id, user_id, client_id, body, seq, broadcast_at) values
  ('5e1ec7ed-0000-4000-8000-00000000b001', '5e1ec7ed-0000-4000-8000-000000000001', 'seed-1', 'Welcome! First record coming up.', 1, now()),
  ('5e1ec7ed-0000-4000-8000-00000000b001', '5e1ec7ed-0000-4000-8000-000000000003', 'seed-2', '¡Qué buena esta!', 2, now()),
  ('5e1ec7ed-0000-4000-8000-00000000b001', '5e1ec7ed-0000-4000-8000-000000000002', 'seed-3', 'Next one is a deep cut.', 3, now())
on conflict (room_id, client_id) do nothing;

insert into public.play_history (room_id, song_id, played_at)
select '5e1ec7ed-0000-4000-8000-00000000b001', s.song_id, s.played_at
from (values
  ('5e1ec7ed-0000-4000-8000-00000000a001'::uuid, now() - interval '9 minutes'),
  ('5e1ec7ed-0000-4000-8000-00000000a002'::uuid, now() - interval '5 minutes')
) as s (song_id, played_at)
where not exists (
  select 1 from public.play_history h where h.room_id = '5e1ec7ed-0000-4000-8000-00000000b001'
);

insert into public.playback_state (room_id, song_id, position_ms, is_playing, seq, updated_at)
values ('5e1ec7ed-0000-4000-8000-00000000b001', '5e1ec7ed-0000-4000-8000-00000000a002', 61000, true, 1, now())
on conflict (room_id) do nothing;
