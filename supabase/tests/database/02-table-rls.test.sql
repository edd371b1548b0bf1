-- =============================================================================
-- 02-table-rls: what clients may read and write in the public tables (API.md §2).
--
-- Users act through the tests helpers, with the claims Supabase Auth issues. Fixtures that are
-- not under test (users, a song, chat, plays, playback) are written as postgres.
--
-- Notes:
--  * tests.claims() reads auth.users, so every switch of user goes through
--    tests.clear_authentication() first.
--  * tests.keep keeps the ids created along the way (users, song, rooms) so the statements run
--    inside throws_ok / results_eq can name them; tests.kept_id() reads them.
-- =============================================================================
begin;
select plan(50);

select tests.keep('host', tests.create_user('rls-host'));
select tests.keep('listener', tests.create_user('rls-listener'));
select tests.keep('dj', tests.create_user('rls-dj'));
select tests.keep('outsider', tests.create_user('rls-outsider'));
select tests.keep('guest', tests.create_user('rls-guest', true));

with s as (
  insert into public.songs (title, artist, duration_ms) values ('RLS Song', 'RLS Artist', 180000)
  returning id
)
select tests.keep('song', id) from s;


-- -----------------------------------------------------------------------------
-- Creating rooms
-- -----------------------------------------------------------------------------

select tests.authenticate_as('rls-host');

select lives_ok(
  $$ with r as (insert into public.rooms (name) values ('RLS public room') returning id)
     select tests.keep('public', id) from r $$,
  'a permanent user creates a public room they host');
-- With RETURNING, as supabase-js `.insert().select()` does: the host must see the new room
-- before the trigger has made them its member.
select lives_ok(
  $$ with r as (insert into public.rooms (name, visibility) values ('RLS private room', 'private') returning id)
     select tests.keep('private', id) from r $$,
  'a permanent user creates a private room they host and gets it back');

select results_eq(
  $$ select user_id, role from public.room_members where room_id = tests.kept_id('public') $$,
  $$ values (tests.kept_id('host'), 'host'::text) $$,
  'creating a public room makes its host a member with role host');
select results_eq(
  $$ select user_id, role from public.room_members where room_id = tests.kept_id('private') $$,
  $$ values (tests.kept_id('host'), 'host'::text) $$,
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
  $$ insert into public.rooms (name, host_id) values ('Borrowed room', tests.kept_id('host')) $$,
  '42501', 'new row violates row-level security policy for table "rooms"',
  'a user cannot create a room hosted by someone else');


-- -----------------------------------------------------------------------------
-- Joining rooms
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select tests.authenticate_as('rls-listener');

select lives_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (tests.kept_id('public'), auth.uid(), 'listener') $$,
  'a signed-in user joins a public room as a listener');
select is(
  (select role from public.room_members where room_id = tests.kept_id('public') and user_id = auth.uid()),
  'listener',
  'the new member sees their own membership as listener');
select throws_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (tests.kept_id('public'), tests.kept_id('outsider'), 'listener') $$,
  '42501', 'new row violates row-level security policy for table "room_members"',
  'a member cannot add someone else to a public room');

select tests.clear_authentication();
select tests.authenticate_as('rls-outsider');

select throws_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (tests.kept_id('public'), auth.uid(), 'dj') $$,
  '42501', 'new row violates row-level security policy for table "room_members"',
  'a signed-in user cannot join a public room as dj');
select throws_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (tests.kept_id('public'), auth.uid(), 'host') $$,
  '23514', 'Only the room''s host has the host role',
  'a signed-in user cannot join a public room as host');
select throws_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (tests.kept_id('private'), auth.uid(), 'listener') $$,
  '42501', 'new row violates row-level security policy for table "room_members"',
  'a signed-in user cannot join a private room');


-- -----------------------------------------------------------------------------
-- The host manages members; roles are the host's to change
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select tests.authenticate_as('rls-host');

select lives_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (tests.kept_id('private'), tests.kept_id('dj'), 'listener') $$,
  'the host adds a member to their private room');
select results_eq(
  $$ update public.room_members set role = 'dj'
     where room_id = tests.kept_id('private') and user_id = tests.kept_id('dj')
     returning role $$,
  $$ values ('dj'::text) $$,
  'the host makes a member of their room a dj');

select throws_ok(
  $$ delete from public.room_members where room_id = tests.kept_id('public') and user_id = auth.uid() $$,
  '23514', 'The host''s membership cannot be changed or removed',
  'the host''s own membership cannot be deleted');
select throws_ok(
  $$ update public.room_members set role = 'dj'
     where room_id = tests.kept_id('public') and user_id = auth.uid() $$,
  '23514', 'The host''s membership cannot be changed or removed',
  'the host cannot demote themself');
select throws_ok(
  $$ update public.room_members set role = 'host'
     where room_id = tests.kept_id('private') and user_id = tests.kept_id('dj') $$,
  '23514', 'Only the room''s host has the host role',
  'the host cannot give a member the host role');
select throws_ok(
  $$ insert into public.room_members (room_id, user_id, role)
     values (tests.kept_id('private'), tests.kept_id('outsider'), 'host') $$,
  '23514', 'Only the room''s host has the host role',
  'the host cannot add a second host');

select tests.clear_authentication();
select tests.authenticate_as('rls-dj');

select is_empty(
  $$ update public.room_members set role = 'listener'
     where room_id = tests.kept_id('private') returning user_id $$,
  'a dj''s update of the roles of their room changes nothing');
select is_empty(
  $$ delete from public.room_members
     where room_id = tests.kept_id('private') and user_id = tests.kept_id('host') returning user_id $$,
  'a dj cannot remove the host from their room');

select tests.clear_authentication();
select tests.authenticate_as('rls-listener');

select is_empty(
  $$ update public.room_members set role = 'dj'
     where room_id = tests.kept_id('public') and user_id = auth.uid() returning user_id $$,
  'a listener cannot promote themself');

select tests.clear_authentication();

select results_eq(
  $$ select r.name, u.name, m.role
     from public.room_members m
     join tests.kept_values r on r.value = to_jsonb(m.room_id)
     join tests.kept_values u on u.value = to_jsonb(m.user_id)
     order by 1, 2 $$,
  $$ values ('private', 'dj', 'dj'), ('private', 'host', 'host'),
            ('public', 'host', 'host'), ('public', 'listener', 'listener') $$,
  'the refused changes left every membership as it was');


-- -----------------------------------------------------------------------------
-- Reading rooms and their data
-- -----------------------------------------------------------------------------

insert into public.messages (room_id, user_id, client_id, body)
values (tests.kept_id('public'), tests.kept_id('listener'), 'rls-1', 'hello room');
insert into public.play_history (room_id, song_id) values (tests.kept_id('public'), tests.kept_id('song'));
insert into public.playback_state (room_id, song_id, position_ms, is_playing, seq)
values (tests.kept_id('public'), tests.kept_id('song'), 1000, true, 1);

select tests.authenticate_as('rls-listener');

select results_eq(
  $$ select body from public.messages where room_id = tests.kept_id('public') $$,
  $$ values ('hello room'::text) $$,
  'a member reads their room''s chat');
select results_eq(
  $$ select song_id from public.play_history where room_id = tests.kept_id('public') $$,
  $$ values (tests.kept_id('song')) $$,
  'a member reads their room''s play history');
select results_eq(
  $$ select song_id, position_ms, is_playing from public.playback_state where room_id = tests.kept_id('public') $$,
  $$ values (tests.kept_id('song'), 1000::bigint, true) $$,
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
  $$ select id from public.rooms where id = tests.kept_id('private') $$,
  'a private room is invisible to a non-member');
select results_eq(
  $$ select name from public.rooms where id = tests.kept_id('public') $$,
  $$ values ('RLS public room'::text) $$,
  'a public room is visible to any signed-in user');
select results_eq(
  $$ select title from public.songs where id = tests.kept_id('song') $$,
  $$ values ('RLS Song'::text) $$,
  'songs are readable by signed-in users');
select is_empty(
  $$ update public.rooms set name = 'Hijacked' where id = tests.kept_id('public') returning id $$,
  'a user cannot rename a room they do not host');
select is_empty(
  $$ delete from public.rooms where id = tests.kept_id('public') returning id $$,
  'a user cannot delete a room they do not host');

select tests.clear_authentication();
select tests.authenticate_as('rls-dj');

select results_eq(
  $$ select name from public.rooms where id = tests.kept_id('private') $$,
  $$ values ('RLS private room'::text) $$,
  'a private room is visible to its members');


-- -----------------------------------------------------------------------------
-- Clients never write chat, plays, playback or songs
-- -----------------------------------------------------------------------------

select tests.clear_authentication();
select tests.authenticate_as('rls-listener');

select throws_ok(
  $$ insert into public.messages (room_id, user_id, client_id, body)
     values (tests.kept_id('public'), auth.uid(), 'rls-2', 'direct') $$,
  '42501', 'permission denied for table messages',
  'a member cannot insert chat directly');
select throws_ok(
  $$ insert into public.play_history (room_id, song_id) values (tests.kept_id('public'), tests.kept_id('song')) $$,
  '42501', 'permission denied for table play_history',
  'a member cannot insert play history');
select throws_ok(
  $$ insert into public.playback_state (room_id, song_id, position_ms, is_playing, seq)
     values (tests.kept_id('public'), null, 0, false, 2) $$,
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
     where room_id = tests.kept_id('public') and user_id = auth.uid() returning role $$,
  $$ values ('listener'::text) $$,
  'a member leaves a room by deleting their own membership');

select tests.clear_authentication();
select tests.authenticate_as('rls-host');

select results_eq(
  $$ delete from public.rooms where id = tests.kept_id('private') returning name $$,
  $$ values ('RLS private room'::text) $$,
  'the host deletes their room');

select tests.clear_authentication();

select is(
  (select count(*) from public.room_members where room_id = tests.kept_id('private')),
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
  $$ delete from auth.users where id = tests.kept_id('host') $$,
  'a user who hosts rooms can be deleted');
select is(
  (select count(*) from public.room_members where user_id = tests.kept_id('host')),
  0::bigint,
  'the deleted host has no memberships left');

select * from finish();
rollback;
