/**
 * ----
 * The Edge Functions' SQL entry points, out of the Data API's reach (API.md §4)
 * ----
 * chat-send, playback, presence, room-context and history each call one SQL function. In
 * `public` with EXECUTE for `authenticated` they were also reachable at /rest/v1/rpc/…, where a
 * chat message skipped the function's flush and waited up to a minute for the sweeper. They now
 * live in `edge`, a schema PostgREST does not expose (config.toml [api] schemas), and no API role
 * may use it or execute them: the functions connect as `postgres` and take the caller's role and
 * claims inside the one statement that runs the entry point (supabase/functions/_shared/db.ts),
 * so the EXECUTE check is made for `postgres` and RLS and auth.uid() for the caller.
 */
create schema edge;
comment on schema edge is
  'SQL entry points of the Edge Functions. Not exposed by the Data API; no API role may use it.';
revoke all on schema edge from public;

alter function public.send_chat(uuid, jsonb) set schema edge;
alter function public.set_playback(uuid, uuid, bigint, boolean, bigint) set schema edge;
alter function public.presence_join(uuid, text, json) set schema edge;
alter function public.presence_heartbeat(uuid, text) set schema edge;
alter function public.presence_leave(uuid, text) set schema edge;
alter function public.presence_get(uuid) set schema edge;
alter function public.room_context(uuid, int, int) set schema edge;
alter function public.channel_history(text, int, text, bigint, bigint, bigint, int, bigint) set schema edge;

revoke all on all functions in schema edge from public, anon, authenticated, service_role;
