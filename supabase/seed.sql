-- Demo data for the local stack (never run on hosted projects). `supabase db push --include-seed`
-- runs it again whenever it changes, so every insert must be idempotent.

-- Users, with fixed ids so tokens for them can be minted with local/keys.ts `userToken(id)`.
insert into auth.users (id, email, raw_user_meta_data, raw_app_meta_data, role, aud, is_anonymous)
values
  ('5e1ec7ed-0000-4000-8000-000000000001', 'host@whatssound.test', '{"display_name": "Hana (host)"}',
   '{"provider": "email", "providers": ["email"]}', 'authenticated', 'authenticated', false),
  ('5e1ec7ed-0000-4000-8000-000000000002', 'dj@whatssound.test', '{"display_name": "Diego (dj)"}',
   '{"provider": "email", "providers": ["email"]}', 'authenticated', 'authenticated', false),
  ('5e1ec7ed-0000-4000-8000-000000000003', 'listener@whatssound.test', '{"display_name": "Lucía"}',
   '{"provider": "email", "providers": ["email"]}', 'authenticated', 'authenticated', false),
  ('5e1ec7ed-0000-4000-8000-000000000004', null, '{}', '{}', 'authenticated', 'authenticated', true)
on conflict (id) do nothing;
