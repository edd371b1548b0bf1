-- =============================================================================
-- 02-table-rls: what clients may read and write in the public tables (API.md §2).
--
-- Users act through the tests helpers, with the claims Supabase Auth issues. Fixtures that are
-- not under test (users, a song, chat, plays, playback) are written as postgres.
--
-- Notes:
--  * tests.claims() reads auth.users, so every switch of user goes through
--    tests.clear_authentication() first.
--  * pg_temp.fixture keeps the ids created along the way (users, song, rooms) so the statements
--    run inside throws_ok / results_eq can name them; pg_temp.fx() reads it.
-- =============================================================================
begin;
select plan(50);

create temp table fixture (name text primary key, id uuid not null);
grant select, insert on fixture to public;

create function pg_temp.fx(key text) returns uuid
language sql stable as $$
  select f.id from pg_temp.fixture f where f.name = fx.key
$$;
-- Our migrations take EXECUTE away from PUBLIC by default; this is called while acting as the
-- API roles.
grant execute on function pg_temp.fx(text) to public;

insert into fixture (name, id) values
  ('host', tests.create_user('rls-host')),
  ('listener', tests.create_user('rls-listener')),
  ('dj', tests.create_user('rls-dj')),
  ('outsider', tests.create_user('rls-outsider')),
  ('guest', tests.create_user('rls-guest', true));

with s as (
  insert into public.songs (title, artist, duration_ms) values ('RLS Song', 'RLS Artist', 180000)
  returning id
)
insert into fixture (name, id) select 'song', id from s;


-- -----------------------------------------------------------------------------
-- Creating rooms
-- -----------------------------------------------------------------------------

select tests.authenticate_as('rls-host');

select lives_ok(
  $$ with r as (insert into public.rooms (name) values ('RLS public room') returning id)
     insert into pg_temp.fixture (name, id) select 'public', id from r $$,
  'a permanent user creates a public room they host');
-- With RETURNING, as supabase-js `.insert().select()` does: the host must see the new room
-- before the trigger has made them its member.
select lives_ok(
  $$ with r as (insert into public.rooms (name, visibility) values ('RLS private room', 'private') returning id)
     insert into pg_temp.fixture (name, id) select 'private', id from r $$,
  'a permanent user creates a private room they host and gets it back');

select results_eq(
  $$ select user_id, role from public.room_members where room_id = pg_temp.fx('public') $$,
  $$ values (pg_temp.fx('host'), 'host'::text) $$,
  'creating a public room makes its host a member with role host');
select results_eq(
  $$ select user_id, role from public.room_members where room_id = pg_temp.fx('private') $$,
  $$ values (pg_temp.fx('host'), 'host'::text) $$,
  'creating a private room makes its host a member with role host');

select tests.clear_authentication();
select tests.authenticate_as('rls-guest');

select throws_ok(
  $$ insert into public.rooms (name) values ('Guest room') $$,
  '42501', 'new row violates row-level security policy for table "rooms"',
  'an anonymous user cannot create a room');

select tests.clear_authentication();
select tests.authenticate_as('rls-outsider');

select throws_ok(
  $$ insert into public.rooms (name, host_id) values ('Borrowed room', pg_temp.fx('host')) $$,
  '42501', 'new row violates row-level security policy for table "rooms"',
  'a user cannot create a room hosted by someone else');


-- -----------------------------------------------------------------------------
-- Joining rooms
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select tests.authenticate_as('rls-listener');

select lives_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (pg_temp.fx('public'), auth.uid(), 'listener') $$,
  'a signed-in user joins a public room as a listener');
select is(
  (select role from public.room_members where room_id = pg_temp.fx('public') and user_id = auth.uid()),
  'listener',
  'the new member sees their own membership as listener');
select throws_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (pg_temp.fx('public'), pg_temp.fx('outsider'), 'listener') $$,
  '42501', 'new row violates row-level security policy for table "room_members"',
  'a member cannot add someone else to a public room');

select tests.clear_authentication();
select tests.authenticate_as('rls-outsider');

select throws_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (pg_temp.fx('public'), auth.uid(), 'dj') $$,
  '42501', 'new row violates row-level security policy for table "room_members"',
  'a signed-in user cannot join a public room as dj');
select throws_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (pg_temp.fx('public'), auth.uid(), 'host') $$,
  '23514', 'Only the room''s host has the host role',
  'a signed-in user cannot join a public room as host');
select throws_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (pg_temp.fx('private'), auth.uid(), 'listener') $$,
  '42501', 'new row violates row-level security policy for table "room_members"',
  'a signed-in user cannot join a private room');


-- -----------------------------------------------------------------------------
-- The host manages members; roles are the host's to change
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select tests.authenticate_as('rls-host');

select lives_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (pg_temp.fx('private'), pg_temp.fx('dj'), 'listener') $$,
  'the host adds a member to their private room');
select results_eq(
  $$ update public.room_members set role = 'dj'
     where room_id = pg_temp.fx('private') and user_id = pg_temp.fx('dj')
     returning role $$,
  $$ values ('dj'::text) $$,
  'the host makes a member of their room a dj');

select throws_ok(
  $$ delete from public.room_members where room_id = pg_temp.fx('public') and user_id = auth.uid() $$,
  '23514', 'The host''s membership cannot be changed or removed',
  'the host''s own membership cannot be deleted');
select throws_ok(
  $$ update public.room_members set role = 'dj'
     where room_id = pg_temp.fx('public') and user_id = auth.uid() $$,
  '23514', 'The host''s membership cannot be changed or removed',
  'the host cannot demote themself');
select throws_ok(
  $$ update public.room_members set role = 'host'
     where room_id = pg_temp.fx('private') and user_id = pg_temp.fx('dj') $$,
  '23514', 'Only the room''s host has the host role',
  'the host cannot give a member the host role');
select throws_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (pg_temp.fx('private'), pg_temp.fx('outsider'), 'host') $$,
  '23514', 'Only the room''s host has the host role',
  'the host cannot add a second host');

select tests.clear_authentication();
select tests.authenticate_as('rls-dj');

select is_empty(
  $$ update public.room_members set role = 'listener'
     where room_id = pg_temp.fx('private') returning user_id $$,
  'a dj''s update of the roles of their room changes nothing');
select is_empty(
  $$ delete from public.room_members
     where room_id = pg_temp.fx('private') and user_id = pg_temp.fx('host') returning user_id $$,
  'a dj cannot remove the host from their room');

select tests.clear_authentication();
select tests.authenticate_as('rls-listener');

select is_empty(
  $$ update public.room_members set role = 'dj'
     where room_id = pg_temp.fx('public') and user_id = auth.uid() returning user_id $$,
  'a listener cannot promote themself');

select tests.clear_authentication();

select results_eq(
  $$ select r.name, u.name, m.role
     from public.room_members m
     join pg_temp.fixture r on r.id = m.room_id
     join pg_temp.fixture u on u.id = m.user_id
     order by 1, 2 $$,
  $$ values ('private', 'dj', 'dj'), ('private', 'host', 'host'),
            ('public', 'host', 'host'), ('public', 'listener', 'listener') $$,
  'the refused changes left every membership as it was');


-- -----------------------------------------------------------------------------
-- Reading rooms and their data
-- -----------------------------------------------------------------------------

insert into public.messages (room_id, user_id, client_id, body)
values (pg_temp.fx('public'), pg_temp.fx('listener'), 'rls-1', 'hello room');
insert into public.play_history (room_id, song_id) values (pg_temp.fx('public'), pg_temp.fx('song'));
insert into public.playback_state (room_id, song_id, position_ms, is_playing, seq)
values (pg_temp.fx('public'), pg_temp.fx('song'), 1000, true, 1);

select tests.authenticate_as('rls-listener');

select results_eq(
  $$ select body from public.messages where room_id = pg_temp.fx('public') $$,
  $$ values ('hello room'::text) $$,
  'a member reads their room''s chat');
select results_eq(
  $$ select song_id from public.play_history where room_id = pg_temp.fx('public') $$,
  $$ values (pg_temp.fx('song')) $$,
  'a member reads their room''s play history');
select results_eq(
  $$ select song_id, position_ms, is_playing from public.playback_state where room_id = pg_temp.fx('public') $$,
  $$ values (pg_temp.fx('song'), 1000::bigint, true) $$,
  'a member reads their room''s playback state');

select tests.clear_authentication();
select tests.authenticate_as('rls-outsider');

select is((select count(*) from public.messages), 0::bigint,
  'a non-member reads no chat');
select is((select count(*) from public.play_history), 0::bigint,
  'a non-member reads no play history');
select is((select count(*) from public.playback_state), 0::bigint,
  'a non-member reads no playback state');
select is((select count(*) from public.room_members), 0::bigint,
  'a non-member sees no memberships, even of a public room');

select is_empty(
  $$ select id from public.rooms where id = pg_temp.fx('private') $$,
  'a private room is invisible to a non-member');
select results_eq(
  $$ select name from public.rooms where id = pg_temp.fx('public') $$,
  $$ values ('RLS public room'::text) $$,
  'a public room is visible to any signed-in user');
select results_eq(
  $$ select title from public.songs where id = pg_temp.fx('song') $$,
  $$ values ('RLS Song'::text) $$,
  'songs are readable by signed-in users');
select is_empty(
  $$ update public.rooms set name = 'Hijacked' where id = pg_temp.fx('public') returning id $$,
  'a user cannot rename a room they do not host');
select is_empty(
  $$ delete from public.rooms where id = pg_temp.fx('public') returning id $$,
  'a user cannot delete a room they do not host');

select tests.clear_authentication();
select tests.authenticate_as('rls-dj');

select results_eq(
  $$ select name from public.rooms where id = pg_temp.fx('private') $$,
  $$ values ('RLS private room'::text) $$,
  'a private room is visible to its members');


-- -----------------------------------------------------------------------------
-- Clients never write chat, plays, playback or songs
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select tests.authenticate_as('rls-listener');

select throws_ok(
  $$ insert into public.messages (room_id, user_id, client_id, body)
     values (pg_temp.fx('public'), auth.uid(), 'rls-2', 'direct') $$,
  '42501', 'permission denied for table messages',
  'a member cannot insert chat directly');
select throws_ok(
  $$ insert into public.play_history (room_id, song_id) values (pg_temp.fx('public'), pg_temp.fx('song')) $$,
  '42501', 'permission denied for table play_history',
  'a member cannot insert play history');
select throws_ok(
  $$ insert into public.playback_state (room_id, song_id, position_ms, is_playing, seq)
     values (pg_temp.fx('public'), null, 0, false, 2) $$,
  '42501', 'permission denied for table playback_state',
  'a member cannot insert playback state');
select throws_ok(
  $$ insert into public.songs (title, artist, duration_ms) values ('Mine', 'Me', 1000) $$,
  '42501', 'permission denied for table songs',
  'a signed-in user cannot add songs');


-- -----------------------------------------------------------------------------
-- anon reaches no table
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select tests.act_as('anon', '{"role": "anon"}'::jsonb);

select throws_ok($$ select * from public.rooms $$, '42501', 'permission denied for table rooms',
  'anon cannot select from rooms');
select throws_ok($$ select * from public.room_members $$, '42501', 'permission denied for table room_members',
  'anon cannot select from room_members');
select throws_ok($$ select * from public.songs $$, '42501', 'permission denied for table songs',
  'anon cannot select from songs');
select throws_ok($$ select * from public.messages $$, '42501', 'permission denied for table messages',
  'anon cannot select from messages');
select throws_ok($$ select * from public.play_history $$, '42501', 'permission denied for table play_history',
  'anon cannot select from play_history');
select throws_ok($$ select * from public.playback_state $$, '42501', 'permission denied for table playback_state',
  'anon cannot select from playback_state');


-- -----------------------------------------------------------------------------
-- Leaving and deleting
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select tests.authenticate_as('rls-listener');

select results_eq(
  $$ delete from public.room_members
     where room_id = pg_temp.fx('public') and user_id = auth.uid() returning role $$,
  $$ values ('listener'::text) $$,
  'a member leaves a room by deleting their own membership');

select tests.clear_authentication();
select tests.authenticate_as('rls-host');

select results_eq(
  $$ delete from public.rooms where id = pg_temp.fx('private') returning name $$,
  $$ values ('RLS private room'::text) $$,
  'the host deletes their room');

select tests.clear_authentication();

select is(
  (select count(*) from public.room_members where room_id = pg_temp.fx('private')),
  0::bigint,
  'deleting a room deletes its memberships, the host''s included');


-- Deleting a host's account (as Supabase Auth does) removes their rooms and memberships, whatever
-- order the two cascades run in. Cascade triggers fire in name order, and the names follow
-- creation: recreating rooms' key to auth.users makes its cascade run after room_members' one,
-- when the host's membership is deleted while the room still exists.
alter table public.rooms drop constraint rooms_host_id_fkey;
alter table public.rooms add constraint rooms_host_id_fkey
  foreign key (host_id) references auth.users (id) on delete cascade;
select lives_ok(
  $$ delete from auth.users where id = pg_temp.fx('host') $$,
  'a user who hosts rooms can be deleted');
select is(
  (select count(*) from public.room_members where user_id = pg_temp.fx('host')),
  0::bigint,
  'the deleted host has no memberships left');

select * from finish();
rollback;
