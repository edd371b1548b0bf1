// Helpers for the Deno tests that run against the test stack (`npm test` sets the environment):
// a direct database connection for fixtures, users with real tokens, and the real supabase-js
// client acting as them.
import assert from "node:assert/strict";
import {
  createClient,
  FunctionsHttpError,
  type REALTIME_SUBSCRIBE_STATES,
  type RealtimeChannel,
  type SupabaseClient,
} from "npm:@supabase/supabase-js@2.119.1";
import postgres from "npm:postgres@3.4.9";
import type { Claims } from "../supabase/functions/_shared/auth.ts";
import { userToken } from "./keys.ts";

export const apiUrl = Deno.env.get("SUPABASE_URL")!;
export const anonKey = Deno.env.get("SUPABASE_ANON_KEY")!;
export const serviceRoleKey = Deno.env.get("SUPABASE_SERVICE_ROLE_KEY")!;

/** A superuser connection for setting up fixtures; close it with `await sql.end()`. */
export function fixtureDb(): postgres.Sql {
  return postgres(Deno.env.get("SUPABASE_DB_URL")!, { max: 2, onnotice: () => {} });
}

export interface TestUser {
  id: string;
  token: string;
  client: SupabaseClient;
}

/** The real supabase-js client, signed in with `token` (the anon key when there is none). */
export function clientFor(token = anonKey): SupabaseClient {
  return createClient(apiUrl, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { headers: { Authorization: `Bearer ${token}` } },
  });
}

/**
 * The real supabase-js client as a signed-in app holds it: `token` is its session (a function
 * is asked again at every connect, join and heartbeat, as supabase-js asks its auth client), so
 * function calls and the Realtime connection both use it. `clientFor`'s Authorization header
 * never reaches Realtime, which joins with the session's `access_token`. `vsn` picks the wire
 * protocol (supabase-js defaults to 2.0.0); `timeout` bounds joins and pushes (10 s by default);
 * `url` is another gateway's than the test stack's.
 */
export function realtimeClientFor(
  token: string | (() => string) = anonKey,
  { vsn, timeout, url = apiUrl }: { vsn?: "1.0.0" | "2.0.0"; timeout?: number; url?: string } = {},
): SupabaseClient {
  const session = typeof token === "string" ? () => token : token;
  return createClient(url, anonKey, {
    accessToken: () => Promise.resolve(session()),
    realtime: { vsn, timeout },
  });
}

/**
 * Subscribes `channel` and resolves with the first status supabase-js reports: SUBSCRIBED, or
 * CHANNEL_ERROR with the server's reason as the error's message, TIMED_OUT or CLOSED; every
 * status, later ones included, also goes to `onStatus`. supabase-js asks for the session's
 * token asynchronously, so a channel subscribed in the tick its client was made would join with
 * the API key; the token is fetched first, as it has long been in an app that subscribes later.
 */
export async function subscribe(
  channel: RealtimeChannel,
  onStatus: (status: `${REALTIME_SUBSCRIBE_STATES}`) => void = () => {},
): Promise<{ status: `${REALTIME_SUBSCRIBE_STATES}`; error?: Error }> {
  await channel.socket.setAuth();
  return new Promise((resolve) => {
    channel.subscribe((status, error) => {
      onStatus(status);
      resolve({ status, error });
    });
  });
}

/**
 * A private channel of `token`'s own supabase-js client (through the gateway at `url`), subscribed,
 * collecting its broadcasts of `event` ("*": every event) in the order received; fails unless
 * the join was accepted. `close()` closes the client.
 */
export async function listenPrivate<Payload = Record<string, unknown>>(
  token: string,
  topic: string,
  { event = "*", url = apiUrl }: { event?: string; url?: string } = {},
): Promise<{ received: { event: string; payload: Payload }[]; close: () => Promise<void> }> {
  const client = realtimeClientFor(token, { url });
  const received: { event: string; payload: Payload }[] = [];
  const channel = client.channel(topic, { config: { private: true } })
    .on("broadcast", { event }, ({ event, payload }) => received.push({ event, payload }));
  const { status, error } = await subscribe(channel);
  if (status !== "SUBSCRIBED") {
    await closeRealtime(client);
    assert.fail(`join ${topic}: ${status} ${error?.message}`);
  }
  return { received, close: () => closeRealtime(client) };
}

/** Leaves every channel of each client and closes its socket (Deno's sanitizers want it). */
export async function closeRealtime(...clients: SupabaseClient[]): Promise<void> {
  for (const client of clients) {
    await client.removeAllChannels();
    await client.realtime.disconnect();
  }
}

export async function createUser(sql: postgres.Sql, { anonymous = false } = {}): Promise<TestUser> {
  const id = crypto.randomUUID();
  await sql`insert into auth.users (id, email, is_anonymous)
            values (${id}, ${anonymous ? null : `${id}@e2e.test`}, ${anonymous})`;
  const token = await userToken(id, { isAnonymous: anonymous });
  return { id, token, client: clientFor(token) };
}

/** The people most tests need: a host, a listener, a dj, someone from outside, an anonymous
 * user, and `members` (listener, dj as dj, the anonymous user) to pass to createRoom. */
export async function createCast(sql: postgres.Sql) {
  const host = await createUser(sql);
  const listener = await createUser(sql);
  const dj = await createUser(sql);
  const outsider = await createUser(sql);
  const anonymousListener = await createUser(sql, { anonymous: true });
  const members: (TestUser | [TestUser, "dj" | "listener"])[] = [
    listener,
    [dj, "dj"],
    anonymousListener,
  ];
  return { host, listener, dj, outsider, anonymousListener, members };
}

/** createCast's people, and `count` rooms hosted by the host with the cast's members; made on a
 * fixture connection of their own. */
export function createCastAndRooms(count: number) {
  return withDb(async (sql) => {
    const cast = await createCast(sql);
    const rooms: string[] = [];
    for (let i = 0; i < count; i++) rooms.push(await createRoom(sql, cast.host, cast.members));
    return { ...cast, rooms };
  });
}

/** A room hosted by `host`, with `members` added as listeners (or the role given). */
export async function createRoom(
  sql: postgres.Sql,
  host: TestUser,
  members: (TestUser | [TestUser, "dj" | "listener"])[] = [],
  visibility: "public" | "private" = "public",
): Promise<string> {
  const [{ id }] = await sql`insert into public.rooms (name, host_id, visibility)
                             values ('E2E room', ${host.id}, ${visibility}) returning id`;
  for (const member of members) {
    const [user, role] = Array.isArray(member) ? member : [member, "listener"];
    await sql`insert into public.room_members (room_id, user_id, role) values (${id}, ${user.id}, ${role})`;
  }
  return id;
}

/**
 * Calls a function with supabase-js (GET with a query string, or POST with a JSON body) and
 * returns the HTTP status and the parsed body, errors included.
 */
export async function invoke(
  client: SupabaseClient,
  path: string,
  body?: unknown,
  // deno-lint-ignore no-explicit-any -- tests read whatever JSON came back, errors included
): Promise<{ status: number; body: any; headers: Headers }> {
  const { data, error, response } = await client.functions.invoke(path, {
    method: body === undefined ? "GET" : "POST",
    body: body as Record<string, unknown> | undefined,
  });
  if (error instanceof FunctionsHttpError) {
    const failed = error.context as Response;
    return { status: failed.status, body: await failed.json(), headers: failed.headers };
  }
  if (error) throw error;
  return { status: response!.status, body: data, headers: response!.headers };
}

/** Runs `work` on a fixture connection of its own, closed before the test ends (Deno's
 * sanitizers want what a test opens closed within it). */
export async function withDb<T>(work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = fixtureDb();
  try {
    return await work(sql);
  } finally {
    await sql.end();
  }
}

/** Polls `read` until `done` holds (or `timeoutMs` passes) and returns the last reading. */
export async function poll<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 2000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!done(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    value = await read();
  }
  return value;
}

/** Asserts that a call answered the contract's error: `status`, `code` and a message, and (when
 * the response's headers are given) CORS, which every response carries. */
export async function expectError(
  response: Promise<
    { status: number; body: { error?: Record<string, unknown> }; headers?: Headers }
  >,
  status: number,
  code: string,
  what: string,
): Promise<Record<string, unknown>> {
  const { status: got, body, headers } = await response;
  assert.equal(got, status, `${what}: ${JSON.stringify(body)}`);
  assert.equal(body.error?.code, code, what);
  assert.equal(typeof body.error?.message, "string", what);
  if (headers) assert.equal(headers.get("access-control-allow-origin"), "*", `${what}: CORS`);
  return body.error!;
}

/** Asserts that a call was refused as invalid: 400 invalid_request, with the validation issues
 * as details. */
export async function expectInvalidRequest(
  response: Parameters<typeof expectError>[0],
  what: string,
): Promise<void> {
  const error = await expectError(response, 400, "invalid_request", what);
  assert.ok(Array.isArray(error.details) && error.details.length > 0, `${what}: details`);
}

/** Asserts that a call was refused by the rate limit: 429 rate_limited, with a whole number of
 * seconds to wait in Retry-After. */
export async function expectRateLimited(
  response: Promise<
    { status: number; body: { error?: Record<string, unknown> }; headers: Headers }
  >,
  what: string,
): Promise<void> {
  const answered = await response;
  await expectError(Promise.resolve(answered), 429, "rate_limited", what);
  const retryAfter = answered.headers.get("retry-after");
  assert.match(retryAfter ?? "", /^[1-9]\d*$/, `${what}: Retry-After ${retryAfter}`);
}

/** The fields of a chat message (API.md Message), sorted. */
export const messageFields = ["body", "client_id", "created_at", "id", "room_id", "seq", "user_id"];

/** The claims of `user`'s token, for `callerQuery` (supabase/functions/_shared/db.ts) in tests
 * that hold a caller's transaction open themselves to fix the order of events. */
export function claimsOf(user: TestUser): Claims {
  return {
    sub: user.id,
    role: "authenticated",
    is_anonymous: false,
    exp: Math.floor(Date.now() / 1000) + 3600,
  };
}

/**
 * Runs `work` in a transaction on a fixture connection of its own and keeps the transaction open,
 * for tests that fix the order of events around it. Resolves once `work` is done, with its
 * result, `commit` (ends the transaction; rejects if it failed) and `close` (ends it whatever
 * happened and closes the connection: call it in `finally`).
 */
export async function holdTransaction<T>(
  work: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<{ result: T; commit: () => Promise<void>; close: () => Promise<void> }> {
  const sql = fixtureDb();
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let markDone!: (result: T) => void;
  const done = new Promise<T>((resolve) => (markDone = resolve));
  const transaction = sql.begin(async (tx) => {
    markDone(await work(tx));
    await released;
  });
  const close = async () => {
    release();
    await transaction.catch(() => {});
    await sql.end();
  };
  try {
    // `transaction` settles before `done` only when `work` fails.
    const result = await Promise.race([done, transaction.then(() => done)]);
    return {
      result,
      commit: async () => {
        release();
        await transaction;
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Waits until at least `count` backends of the database wait on a lock; fails if they do not. */
export async function lockWaiters(count: number): Promise<void> {
  const waiting = await poll(
    () =>
      withDb(async (sql) => {
        const [{ n }] = await sql`select count(*)::int as n from pg_stat_activity
                                  where wait_event_type = 'Lock' and datname = current_database()`;
        return n as number;
      }),
    (n) => n >= count,
    3000,
  );
  assert.ok(waiting >= count, `${count} backend(s) waiting on a lock, saw ${waiting}`);
}

/**
 * Sends what waits in a room's chat, as the function instance that accepted it would: calls
 * private.flush_window until it answers null (nothing waits), waiting the milliseconds it asks
 * for in between (the room's batching interval). For chat written straight into the table.
 */
export async function flushChat(sql: postgres.Sql, room: string): Promise<void> {
  for (;;) {
    const [{ next }] = await sql`select private.flush_window(${`room:${room}:chat`}) as next`;
    if (next === null) return;
    await new Promise((resolve) => setTimeout(resolve, next));
  }
}
