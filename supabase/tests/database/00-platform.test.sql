-- =============================================================================
-- 00-platform: the platform behaves like hosted Supabase.
--
-- Locally this checks local/platform-bootstrap.sql; run against a hosted
-- project it must pass unchanged, so it asserts only hosted behaviour:
-- auth.uid/role/email/jwt, realtime.topic(), realtime.send(), RLS defaults.
--
-- Notes:
--  * Every realtime.send() gets its own topic ('platform-test:<case>') and rows
--    are counted by topic, so policies that later migrations add for other
--    namespaces (room:, user:, ...) cannot interfere.
--  * Payloads are cast to jsonb explicitly: some hosted versions briefly had a
--    realtime.send(bytea, ...) overload, which makes untyped literals ambiguous.
--  * realtime.send() turns errors into WARNINGs; they are silenced here to
--    keep the TAP stream readable. The two cases below that provoke one on
--    purpose name themselves (application_name 'expects-broadcast-warning')
--    so that `npm test`'s check of the database log lets exactly them pass.
--  * On hosted, the rows written here need today's realtime.messages
--    partition, which Realtime creates when it connects to the project.
-- =============================================================================
begin;
select plan(34);

set local client_min_messages = error;

-- Reset all JWT-related settings for this transaction.
create function pg_temp.clear_claims() returns void
language sql as $$
  select set_config('request.jwt.claims', '', true),
         set_config('request.jwt.claim', '', true),
         set_config('request.jwt.claim.sub', '', true),
         set_config('request.jwt.claim.role', '', true),
         set_config('request.jwt.claim.email', '', true);
$$;

-- Claims as PostgREST sets them: one JSON document in request.jwt.claims.
create function pg_temp.set_claims(claims jsonb) returns void
language sql as $$
  select pg_temp.clear_claims();
  select set_config('request.jwt.claims', claims::text, true);
$$;

-- set_config() without echoing its value into the TAP stream.
create function pg_temp.set_local(name text, value text) returns void
language sql as $$
  select set_config(name, value, true);
$$;

create function pg_temp.count_topic(t text) returns bigint
language sql as $$
  select count(*) from realtime.messages where topic = t;
$$;

-- Our migrations take EXECUTE away from PUBLIC by default; these helpers are also called
-- while acting as the API roles.
grant execute on function pg_temp.clear_claims(), pg_temp.set_claims(jsonb),
  pg_temp.set_local(text, text), pg_temp.count_topic(text) to public;


-- -----------------------------------------------------------------------------
-- auth.uid(), auth.role(), auth.email(), auth.jwt()
-- -----------------------------------------------------------------------------

select pg_temp.clear_claims();
select is(auth.uid(),  null::uuid,  'auth.uid() is null without claims');
select is(auth.role(), null::text,  'auth.role() is null without claims');
select is(auth.jwt(),  null::jsonb, 'auth.jwt() is null without claims');

select pg_temp.set_claims(jsonb_build_object(
  'sub', '11111111-1111-4111-8111-111111111111',
  'role', 'authenticated',
  'email', 'platform-test@example.com',
  'is_anonymous', false
));
select is(auth.uid(), '11111111-1111-4111-8111-111111111111'::uuid,
  'auth.uid() reads sub from request.jwt.claims');
select is(auth.role(), 'authenticated', 'auth.role() reads role from request.jwt.claims');
select is(auth.email(), 'platform-test@example.com', 'auth.email() reads email from request.jwt.claims');
select is(auth.jwt() ->> 'is_anonymous', 'false', 'auth.jwt() exposes is_anonymous = false');
select ok((auth.jwt() ->> 'is_anonymous')::boolean is false,
  'the documented restrictive check passes for a permanent user');

select pg_temp.set_claims(jsonb_build_object(
  'sub', '22222222-2222-4222-8222-222222222222',
  'role', 'authenticated',
  'is_anonymous', true
));
select is(auth.jwt() ->> 'is_anonymous', 'true', 'auth.jwt() exposes is_anonymous = true');
select ok(not ((auth.jwt() ->> 'is_anonymous')::boolean is false),
  'the documented restrictive check rejects an anonymous user');

-- Legacy per-claim GUC (what `set local request.jwt.claim.sub = ...` tests use).
select pg_temp.clear_claims();
select pg_temp.set_local('request.jwt.claim.sub', '33333333-3333-4333-8333-333333333333');
select is(auth.uid(), '33333333-3333-4333-8333-333333333333'::uuid,
  'auth.uid() reads the legacy request.jwt.claim.sub');
select pg_temp.clear_claims();


-- -----------------------------------------------------------------------------
-- realtime.topic()
-- -----------------------------------------------------------------------------

select is(realtime.topic(), null::text, 'realtime.topic() is null when unset');

select pg_temp.set_local('realtime.topic', 'platform-test:topic');
select is(realtime.topic(), 'platform-test:topic', 'realtime.topic() returns the realtime.topic setting');

select pg_temp.set_local('realtime.topic', '');
select is(realtime.topic(), null::text, 'realtime.topic() turns an empty setting into null');


-- -----------------------------------------------------------------------------
-- realtime.send() as postgres (bypasses RLS on hosted and locally)
-- -----------------------------------------------------------------------------

select realtime.send('{"body": "hello"}'::jsonb, 'platform-test-event', 'platform-test:send-default');

select is(pg_temp.count_topic('platform-test:send-default'), 1::bigint,
  'send() writes exactly one row');
select results_eq(
  $$ select event, private, extension from realtime.messages where topic = 'platform-test:send-default' $$,
  $$ values ('platform-test-event'::text, true, 'broadcast'::text) $$,
  'send() writes event, private = true by default, extension = broadcast');
select is(
  (select payload ->> 'id' from realtime.messages where topic = 'platform-test:send-default'),
  (select id::text         from realtime.messages where topic = 'platform-test:send-default'),
  'send() injects the row id into payload.id');
select is(
  (select payload ->> 'body' from realtime.messages where topic = 'platform-test:send-default'),
  'hello',
  'send() keeps the rest of the payload');
select is(realtime.topic(), 'platform-test:send-default',
  'send() leaves realtime.topic() set to its topic for the rest of the transaction');

select realtime.send('{"body": "public"}'::jsonb, 'platform-test-event', 'platform-test:send-public', false);
select results_eq(
  $$ select private from realtime.messages where topic = 'platform-test:send-public' $$,
  $$ values (false) $$,
  'send(..., private => false) writes a public row');

-- A payload that already has an id keeps it; the row still gets its own uuid.
select realtime.send(
  '{"id": "44444444-4444-4444-8444-444444444444", "body": "own id"}'::jsonb,
  'platform-test-event', 'platform-test:send-own-id');
select is(pg_temp.count_topic('platform-test:send-own-id'), 1::bigint,
  'send() with a payload id writes one row');
select is(
  (select payload from realtime.messages where topic = 'platform-test:send-own-id'),
  '{"id": "44444444-4444-4444-8444-444444444444", "body": "own id"}'::jsonb,
  'send() leaves a payload that has an id unchanged');
select isnt(
  (select id from realtime.messages where topic = 'platform-test:send-own-id'),
  '44444444-4444-4444-8444-444444444444'::uuid,
  'the row id is generated, not taken from payload.id');

-- A NULL payload stays NULL.
select realtime.send(null::jsonb, 'platform-test-event', 'platform-test:send-null');
select results_eq(
  $$ select payload is null from realtime.messages where topic = 'platform-test:send-null' $$,
  $$ values (true) $$,
  'send() with a null payload writes one row with a null payload');

-- A non-object payload makes the id injection fail; the error is swallowed.
set local application_name = 'expects-broadcast-warning';
select lives_ok(
  $$ select realtime.send('[1, 2, 3]'::jsonb, 'platform-test-event', 'platform-test:send-array') $$,
  'send() with an array payload does not raise');
select is(pg_temp.count_topic('platform-test:send-array'), 0::bigint,
  'send() with an array payload writes nothing');
reset application_name;

select ok(
  not (select prosecdef from pg_proc
       where oid = 'realtime.send(jsonb, text, text, boolean)'::regprocedure),
  'realtime.send() is not security definer');


-- -----------------------------------------------------------------------------
-- realtime.send() as an authenticated user on a topic no policy allows
-- -----------------------------------------------------------------------------

set local application_name = 'expects-broadcast-warning';
set local role authenticated;
select pg_temp.set_claims(jsonb_build_object(
  'sub', '55555555-5555-4555-8555-555555555555',
  'role', 'authenticated',
  'is_anonymous', false
));

select lives_ok(
  $$ select realtime.send('{"body": "nope"}'::jsonb, 'platform-test-event', 'platform-test:denied') $$,
  'send() as authenticated on a denied topic does not raise');

reset role;
reset application_name;
select pg_temp.clear_claims();

select is(pg_temp.count_topic('platform-test:denied'), 0::bigint,
  'send() as authenticated on a denied topic writes nothing');


-- -----------------------------------------------------------------------------
-- RLS and grants
-- -----------------------------------------------------------------------------

select ok((select relrowsecurity from pg_class where oid = 'realtime.messages'::regclass),
  'RLS is enabled on realtime.messages');
select ok((select relrowsecurity from pg_class where oid = 'auth.users'::regclass),
  'RLS is enabled on auth.users');

set local role anon;
select throws_ok(
  $$ select count(*) from auth.users $$,
  '42501', null,
  'anon cannot select from auth.users');
reset role;

select ok(
  (select rolbypassrls from pg_roles where rolname = 'service_role'),
  'service_role bypasses RLS');
select ok(
  pg_has_role('authenticator', 'anon', 'member')
  and pg_has_role('authenticator', 'authenticated', 'member')
  and pg_has_role('authenticator', 'service_role', 'member'),
  'authenticator can switch to anon, authenticated and service_role');


select * from finish();
rollback;
