// The local Auth stand-in through the gateway, with the real supabase-js auth client: sign-up,
// sign-in, anonymous sign-in, the user, refresh-token rotation, sign-out, the seeded users, and a
// private Realtime subscription that outlives several token refreshes. Tests that need a short
// token lifetime or reuse interval start a gateway of their own on the same database.
import assert from "node:assert/strict";
import {
  type AuthError,
  createClient,
  isAuthApiError,
  isAuthSessionMissingError,
  isAuthWeakPasswordError,
  type Session,
  type SupabaseClient,
} from "npm:@supabase/supabase-js@2.119.1";
import { decodeJwt, type JWTPayload } from "npm:jose@6.2.18";
import { closeDb } from "../../supabase/functions/_shared/db.ts";
import type { AuthSettings } from "./config.ts";
import { signJwt, userToken } from "../keys.ts";
import { startGateway } from "../stack.ts";
import {
  anonKey,
  apiUrl,
  closeRealtime,
  createRoom,
  createUser,
  invoke,
  poll,
  subscribe,
  withDb,
} from "../test-helpers.ts";

const seededPassword = "whatssound-local";
const seededRoom = "5e1ec7ed-0000-4000-8000-00000000b001";
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A supabase-js client that keeps its session in memory and refreshes only when asked. */
function authClient(url = apiUrl): SupabaseClient {
  return createClient(url, anonKey, { auth: { persistSession: false, autoRefreshToken: false } });
}

const newEmail = () => `${crypto.randomUUID()}@auth.test`;

/** Signs up a new user with a password; fails the test unless a session comes back. */
async function signUp(
  client: SupabaseClient,
  email = newEmail(),
  password = "correct horse",
): Promise<{ email: string; password: string; session: Session }> {
  const { data, error } = await client.auth.signUp({ email, password });
  assert.equal(error, null, `sign-up: ${error?.message}`);
  assert.ok(data.session, "sign-up answers a session (addresses are confirmed at once)");
  return { email, password, session: data.session };
}

/** Exchanges `refreshToken` on a client of its own (supabase-js remembers failed tokens). */
async function refresh(refreshToken: string, url = apiUrl) {
  return await authClient(url).auth.refreshSession({ refresh_token: refreshToken });
}

function assertAuthError(error: AuthError | null, status: number, code: string, what: string) {
  assert.ok(isAuthApiError(error), `${what}: expected an AuthApiError, got ${error}`);
  assert.equal(error.status, status, what);
  assert.equal(error.code, code, what);
}

/** `amr`: how the session was signed in, and when (by the token's issue time). */
function assertAmr(claims: JWTPayload, method: string) {
  const amr = claims.amr as { method: string; timestamp: number }[];
  assert.deepEqual(amr.map((entry) => entry.method), [method]);
  assert.ok(amr[0].timestamp <= claims.iat! && amr[0].timestamp >= claims.iat! - 5);
}

/** A raw call, for what supabase-js hides: the exact bodies and the API key check. */
async function raw(
  path: string,
  { body, headers = {}, method = body === undefined ? "GET" : "POST", url = apiUrl }: {
    body?: unknown;
    headers?: Record<string, string>;
    method?: string;
    url?: string;
  } = {},
) {
  const response = await fetch(`${url}/auth/v1${path}`, {
    method,
    headers: { apikey: anonKey, "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text ? JSON.parse(text) : null,
  };
}

/** A room hosted by a new user, with `memberId` as a listener. */
function roomWith(memberId: string): Promise<string> {
  return withDb(async (sql) => {
    const room = await createRoom(sql, await createUser(sql));
    await sql`insert into public.room_members (room_id, user_id, role)
              values (${room}, ${memberId}, 'listener')`;
    return room;
  });
}

/** Runs `work` against a gateway of its own (Auth, Realtime and the functions, on the test
 * database) with the given Auth settings. */
async function withGateway<T>(
  auth: Partial<AuthSettings>,
  work: (url: string) => Promise<T>,
): Promise<T> {
  const gateway = await startGateway(Deno.env.get("SUPABASE_DB_URL")!, 0, () => {}, { auth });
  try {
    return await work(gateway.url);
  } finally {
    await gateway.shutdown();
    // The functions it served opened this process's pools.
    await closeDb();
  }
}

// --- Sign-up and sign-in ----------------------------------------------------------------------

Deno.test("sign-up then sign-in with the password: sessions and tokens shaped as Supabase Auth's", async () => {
  const client = authClient();
  const email = newEmail();
  const { data: signedUp, error } = await client.auth.signUp({
    email,
    password: "correct horse",
    options: { data: { display_name: "Ada" } },
  });
  assert.equal(error, null);
  const session = signedUp.session!;
  const user = signedUp.user!;
  assert.match(user.id, uuidPattern);
  assert.equal(user.email, email);
  assert.equal(user.aud, "authenticated");
  assert.equal(user.role, "authenticated");
  assert.equal(user.is_anonymous, false);
  assert.deepEqual(user.app_metadata, { provider: "email", providers: ["email"] });
  assert.deepEqual(user.user_metadata, { display_name: "Ada" });
  assert.ok(user.email_confirmed_at && user.confirmed_at && user.last_sign_in_at);
  assert.equal(session.token_type, "bearer");
  assert.equal(session.expires_in, 3600);
  assert.equal(typeof session.refresh_token, "string");

  const claims = decodeJwt(session.access_token);
  assert.deepEqual(Object.keys(claims), [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "email",
    "phone",
    "app_metadata",
    "user_metadata",
    "role",
    "aal",
    "amr",
    "session_id",
    "is_anonymous",
  ]);
  assert.equal(claims.iss, `${apiUrl}/auth/v1`);
  assert.equal(claims.sub, user.id);
  assert.equal(claims.aud, "authenticated");
  assert.equal(claims.role, "authenticated");
  assert.equal(claims.email, email);
  assert.equal(claims.phone, "");
  assert.equal(claims.is_anonymous, false);
  assert.equal(claims.aal, "aal1");
  assertAmr(claims, "password");
  assert.deepEqual(claims.user_metadata, { display_name: "Ada" });
  assert.match(String(claims.session_id), uuidPattern);
  assert.equal(claims.exp, claims.iat! + 3600);
  assert.equal(session.expires_at, claims.exp);

  // Addresses are matched whatever their case; each sign-in is a session of its own.
  const { data: signedIn, error: signInError } = await authClient().auth.signInWithPassword({
    email: email.toUpperCase(),
    password: "correct horse",
  });
  assert.equal(signInError, null);
  assert.equal(signedIn.user.id, user.id);
  const second = decodeJwt(signedIn.session.access_token);
  assert.notEqual(second.session_id, claims.session_id);
  assert.notEqual(signedIn.session.refresh_token, session.refresh_token);

  await withDb(async (sql) => {
    const [stored] = await sql`select encrypted_password from auth.users where id = ${user.id}`;
    assert.match(stored.encrypted_password, /^\$2a\$10\$.{53}$/, "a bcrypt hash, cost 10");
    const sessions = await sql`select id from auth.sessions where user_id = ${user.id}`;
    assert.deepEqual(
      sessions.map((s) => s.id).sort(),
      [claims.session_id, second.session_id].sort(),
    );
  });
});

Deno.test("a wrong password or an unknown address is 400 invalid_credentials", async () => {
  const { email } = await signUp(authClient());
  for (
    const [what, credentials] of [
      ["wrong password", { email, password: "not the password" }],
      ["unknown address", { email: newEmail(), password: "correct horse" }],
    ] as const
  ) {
    const { data, error } = await authClient().auth.signInWithPassword(credentials);
    assertAuthError(error, 400, "invalid_credentials", what);
    assert.equal(error!.message, "Invalid login credentials");
    assert.equal(data.session, null);
  }
  // A user without a password (made by hand, as the tests' users are) never signs in.
  const passwordless = await withDb((sql) => createUser(sql));
  const { error } = await authClient().auth.signInWithPassword({
    email: `${passwordless.id}@e2e.test`,
    password: "",
  });
  assertAuthError(error, 400, "invalid_credentials", "no password");
});

Deno.test("signing up with a taken address is 422 user_already_exists, whatever its case", async () => {
  const { email } = await signUp(authClient());
  for (const again of [email, email.toUpperCase()]) {
    const { data, error } = await authClient().auth.signUp({
      email: again,
      password: "another one",
    });
    assertAuthError(error, 422, "user_already_exists", again);
    assert.equal(error!.message, "User already registered");
    assert.equal(data.user, null);
  }
  // Two at once: one user, one refusal.
  const racing = newEmail();
  const results = await Promise.all(
    [1, 2].map(() => authClient().auth.signUp({ email: racing, password: "correct horse" })),
  );
  assert.equal(results.filter((r) => r.error === null).length, 1);
  assertAuthError(results.find((r) => r.error)!.error, 422, "user_already_exists", "race");
});

Deno.test("sign-up refusals: weak or missing password, bad address, phone, malformed bodies", async () => {
  const client = authClient();
  const weak = await client.auth.signUp({ email: newEmail(), password: "12345" });
  assert.ok(isAuthWeakPasswordError(weak.error));
  assert.equal(weak.error.status, 422);
  assert.equal(weak.error.code, "weak_password");
  assert.deepEqual(weak.error.reasons, ["length"]);

  const missing = await client.auth.signUp({ email: newEmail(), password: "" });
  assertAuthError(missing.error, 400, "validation_failed", "no password");
  const badAddress = await client.auth.signUp({ email: "not an address", password: "secret1" });
  assertAuthError(badAddress.error, 400, "email_address_invalid", "bad address");
  const phone = await client.auth.signUp({ phone: "+15550100", password: "secret1" });
  assertAuthError(phone.error, 400, "phone_provider_disabled", "phone");

  for (const body of ["{not json", "[]", JSON.stringify({ email: 5, password: "secret1" })]) {
    const { status, body: answer } = await raw("/signup", {
      body,
      headers: { "x-supabase-api-version": "2024-01-01" },
    });
    assert.equal(status, 400, body);
    assert.equal(answer.code, "bad_json", body);
  }
  const nul = await raw("/signup", { body: { email: newEmail(), password: "secret\u0000one" } });
  assert.equal(nul.status, 400);
  const tooLong = await raw("/signup", { body: { email: newEmail(), password: "x".repeat(73) } });
  assert.equal(tooLong.status, 400);
});

Deno.test("sign-up metadata jsonb cannot hold is 400 validation_failed, not 500", async () => {
  // A lone surrogate or nesting deep enough to overflow jsonb's parser used to fail the insert.
  const deep = `{"a":${"[".repeat(10_000)}${"]".repeat(10_000)}}`;
  for (const data of ['{"a":"\\ud800"}', '{"a\\u0000":1}', deep]) {
    const { status, body } = await raw("/signup", {
      body: `{"email":"${newEmail()}","password":"secret1","data":${data}}`,
      headers: { "x-supabase-api-version": "2024-01-01" },
    });
    assert.equal(status, 400, data.slice(0, 20));
    assert.equal(body.code, "validation_failed", data.slice(0, 20));
  }
  // 31 levels are fine: they come back in the user's metadata, and in a token the functions take.
  const nested = (levels: number) =>
    JSON.parse('{"a":' + "[".repeat(levels - 1) + "]".repeat(levels - 1) + "}");
  const tooDeep = await raw("/signup", {
    body: { email: newEmail(), password: "secret1", data: nested(32) },
  });
  assert.equal(tooDeep.status, 400);
  const { status, body } = await raw("/signup", {
    body: { email: newEmail(), password: "secret1", data: nested(31) },
  });
  assert.equal(status, 200);
  assert.deepEqual(body.user.user_metadata, nested(31));
  const health = await fetch(`${apiUrl}/functions/v1/health`, {
    headers: { authorization: `Bearer ${body.access_token}` },
  });
  assert.equal(health.status, 200);
  await health.body?.cancel();
});

Deno.test("errors come in Supabase Auth's shapes: dated, initial, OAuth, and the API key check", async () => {
  const credentials = { email: newEmail(), password: "wrong password" };
  const dated = await raw("/token?grant_type=password", {
    body: credentials,
    headers: { "x-supabase-api-version": "2024-01-01" },
  });
  assert.equal(dated.status, 400);
  assert.deepEqual(dated.body, {
    code: "invalid_credentials",
    message: "Invalid login credentials",
  });
  assert.equal(dated.headers.get("x-supabase-api-version"), "2024-01-01");
  assert.equal(dated.headers.get("x-sb-error-code"), "invalid_credentials");

  const initial = await raw("/token?grant_type=password", { body: credentials });
  assert.deepEqual(initial.body, {
    code: 400,
    error_code: "invalid_credentials",
    msg: "Invalid login credentials",
  });
  assert.equal(initial.headers.get("x-supabase-api-version"), null);

  const oauth = await raw("/token?grant_type=refresh_token", { body: {} });
  assert.equal(oauth.status, 400);
  assert.deepEqual(oauth.body, {
    error: "invalid_request",
    error_description: "refresh_token required",
  });
  const unknownGrant = await raw("/token?grant_type=magic", { body: {} });
  assert.equal(unknownGrant.status, 400);

  const noKey = await raw("/user", { headers: { apikey: "" } });
  assert.equal(noKey.status, 401);
  assert.deepEqual(noKey.body, { message: "No API key found in request" });
  const badKey = await raw("/user", { headers: { apikey: "sb_nope" } });
  assert.equal(badKey.status, 401);
  assert.deepEqual(badKey.body, { message: "Invalid API key" });
  // The key may come in the query string too; preflights and the key set need none.
  const keyInQuery = await raw(`/user?apikey=${anonKey}`, { headers: { apikey: "" } });
  assert.equal(keyInQuery.status, 401);
  assert.equal(keyInQuery.body.error_code, "no_authorization");
  const preflight = await fetch(`${apiUrl}/auth/v1/token`, { method: "OPTIONS" });
  await preflight.body?.cancel();
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
  assert.match(preflight.headers.get("access-control-allow-headers")!, /x-supabase-api-version/);
  const jwks = await raw("/.well-known/jwks.json", { headers: { apikey: "" } });
  assert.deepEqual(jwks.body, { keys: [] });

  const unknown = await raw("/otp", { body: {} });
  assert.equal(unknown.status, 404);
  const wrongMethod = await raw("/signup");
  assert.equal(wrongMethod.status, 405);
});

// --- Anonymous users --------------------------------------------------------------------------

Deno.test("anonymous sign-in: is_anonymous true, and identified-only channels refuse it", async () => {
  const client = createClient(apiUrl, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  try {
    const { data, error } = await client.auth.signInAnonymously({
      options: { data: { display_name: "Guest" } },
    });
    assert.equal(error, null);
    const user = data.user!;
    assert.equal(user.is_anonymous, true);
    assert.equal(user.email, "");
    assert.deepEqual(user.app_metadata, {});
    const claims = decodeJwt(data.session!.access_token);
    assert.equal(claims.is_anonymous, true);
    assert.equal(claims.role, "authenticated");
    assert.equal(claims.email, "");
    assertAmr(claims, "anonymous");
    assert.deepEqual(claims.user_metadata, { display_name: "Guest" });

    const { data: me } = await client.auth.getUser();
    assert.equal(me.user?.id, user.id);
    assert.equal(me.user?.is_anonymous, true);

    // A member of a room, yet refused by its identified-only channels, on every path.
    const room = await roomWith(user.id);
    const send = await invoke(client, "chat-send", {
      room_id: room,
      messages: [{ client_id: "anon-1", body: "hello?" }],
    });
    assert.equal(send.status, 403);
    assert.equal(send.body.error.code, "identified_only");
    const topic = `room:${room}:chat`;
    const joined = await subscribe(client.channel(topic, { config: { private: true } }));
    assert.equal(joined.status, "CHANNEL_ERROR");
    assert.equal(
      joined.error?.message,
      `Unauthorized: You do not have permissions to read from this Channel topic: ${topic}`,
    );
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("config: sign-ups and anonymous sign-ins can be turned off, as config.toml does", async () => {
  await withGateway({ signupEnabled: false, anonymousSignInsEnabled: false }, async (url) => {
    const client = authClient(url);
    const anonymous = await client.auth.signInAnonymously();
    assertAuthError(anonymous.error, 422, "anonymous_provider_disabled", "anonymous");
    const signUp = await client.auth.signUp({ email: newEmail(), password: "correct horse" });
    assertAuthError(signUp.error, 422, "signup_disabled", "sign-up");
    // Existing users still sign in.
    const { error } = await client.auth.signInWithPassword({
      email: "listener@whatssound.test",
      password: seededPassword,
    });
    assert.equal(error, null);
  });
});

// --- The user -----------------------------------------------------------------------------------

Deno.test("getUser: the signed-in user; tokens without a user, a sub or a valid signature are refused", async () => {
  const client = authClient();
  const { email, session } = await signUp(client);
  const { data, error } = await client.auth.getUser();
  assert.equal(error, null);
  assert.equal(data.user?.email, email);
  assert.equal(data.user?.id, decodeJwt(session.access_token).sub);

  const { error: anonKeyError } = await authClient().auth.getUser(anonKey);
  assertAuthError(anonKeyError, 403, "bad_jwt", "the anon key has no sub");
  const { error: noUser } = await authClient().auth.getUser(
    await userToken(crypto.randomUUID()),
  );
  assertAuthError(noUser, 403, "user_not_found", "no such user");
  const expired = await signJwt({
    ...decodeJwt(session.access_token),
    exp: Math.floor(Date.now() / 1000) - 10,
  });
  const { error: expiredError } = await authClient().auth.getUser(expired);
  assertAuthError(expiredError, 403, "bad_jwt", "expired");
  assert.match(expiredError!.message, /token is expired/);
  const forged = await signJwt(
    decodeJwt(session.access_token),
    "another-secret-that-is-at-least-32-characters-long",
  );
  const { error: forgedError } = await authClient().auth.getUser(forged);
  assertAuthError(forgedError, 403, "bad_jwt", "forged");
  const missing = await raw("/user", { headers: { authorization: "" } });
  assert.equal(missing.status, 401);
  assert.equal(missing.body.error_code, "no_authorization");
});

// --- Refresh tokens -----------------------------------------------------------------------------

Deno.test("refresh rotation: a new token each time; the previous one replays within the interval, not after", async () => {
  const reuseIntervalS = 3;
  await withGateway({ refreshTokenReuseIntervalS: reuseIntervalS }, async (url) => {
    const { session } = await signUp(authClient(url));
    const sessionId = decodeJwt(session.access_token).session_id;
    const first = await refresh(session.refresh_token, url);
    assert.equal(first.error, null);
    const second = await refresh(first.data.session!.refresh_token, url);
    assert.equal(second.error, null);
    const issued = [session, first.data.session!, second.data.session!].map((s) => s.refresh_token);
    assert.equal(new Set(issued).size, 3, "each refresh returns a new refresh token");
    for (const s of [first.data.session!, second.data.session!]) {
      assert.equal(decodeJwt(s.access_token).session_id, sessionId, "the same session");
    }
    const rotatedAt = Date.now();

    // The previous token, again within the interval: the session's current token, no new one.
    for (let i = 0; i < 2; i++) {
      const replay = await refresh(first.data.session!.refresh_token, url);
      assert.equal(replay.error, null, `replay ${i}`);
      assert.equal(replay.data.session!.refresh_token, second.data.session!.refresh_token);
      assert.equal(decodeJwt(replay.data.session!.access_token).session_id, sessionId);
    }
    await withDb(async (sql) => {
      const tokens = await sql`select token, revoked, parent from auth.refresh_tokens
                               where session_id = ${sessionId as string} order by id`;
      assert.deepEqual(tokens.map((t) => [t.token, t.revoked, t.parent]), [
        [issued[0], true, null],
        [issued[1], true, issued[0]],
        [issued[2], false, issued[1]],
      ]);
    });

    // After the interval the same replay is reuse: the whole session ends.
    await sleep(rotatedAt + reuseIntervalS * 1000 + 500 - Date.now());
    const late = await refresh(first.data.session!.refresh_token, url);
    assertAuthError(late.error, 400, "refresh_token_already_used", "replay after the interval");
    assert.equal(late.error!.message, "Invalid Refresh Token: Already Used");
    const current = await refresh(second.data.session!.refresh_token, url);
    assertAuthError(current.error, 400, "refresh_token_not_found", "the current token is gone");
    const { error } = await authClient(url).auth.getUser(second.data.session!.access_token);
    assert.ok(isAuthSessionMissingError(error), `the session is gone: ${error}`);
    const answer = await raw("/user", {
      url,
      headers: { authorization: `Bearer ${second.data.session!.access_token}` },
    });
    assert.equal(answer.status, 403);
    assert.equal(answer.body.error_code, "session_not_found");
  });
});

Deno.test("refresh rotation: presenting an older revoked token ends the session at once", async () => {
  const { session } = await signUp(authClient());
  const first = await refresh(session.refresh_token);
  const second = await refresh(first.data.session!.refresh_token);
  assert.equal(second.error, null);
  // Two steps behind, well within the reuse interval: reuse all the same.
  const old = await refresh(session.refresh_token);
  assertAuthError(old.error, 400, "refresh_token_already_used", "an older token");
  const current = await refresh(second.data.session!.refresh_token);
  assertAuthError(current.error, 400, "refresh_token_not_found", "after reuse");
  const unknown = await refresh("never-issued");
  assertAuthError(unknown.error, 400, "refresh_token_not_found", "an unknown token");
  await withDb(async (sql) => {
    const [{ n }] = await sql`select count(*)::int as n from auth.sessions
                              where id = ${decodeJwt(session.access_token).session_id as string}`;
    assert.equal(n, 0);
  });
});

Deno.test("concurrent refreshes with one token all get the same new token", async () => {
  const { session } = await signUp(authClient());
  const results = await Promise.all(
    Array.from({ length: 5 }, () => refresh(session.refresh_token)),
  );
  for (const { error } of results) assert.equal(error, null);
  assert.equal(new Set(results.map((r) => r.data.session!.refresh_token)).size, 1);
  assert.notEqual(results[0].data.session!.refresh_token, session.refresh_token);
});

// --- Sign-out -----------------------------------------------------------------------------------

Deno.test("sign-out revokes refresh tokens: scope local, others and global", async () => {
  const { email, password } = await signUp(authClient());
  const signIn = async () => {
    const client = authClient();
    const { data, error } = await client.auth.signInWithPassword({ email, password });
    assert.equal(error, null);
    return { client, session: data.session! };
  };
  const [a, b, c] = [await signIn(), await signIn(), await signIn()];

  // others: every session but the caller's.
  assert.equal((await a.client.auth.signOut({ scope: "others" })).error, null);
  assertAuthError(
    (await refresh(b.session.refresh_token)).error,
    400,
    "refresh_token_not_found",
    "b after others",
  );
  const aRefreshed = await refresh(a.session.refresh_token);
  assert.equal(aRefreshed.error, null, "a keeps its session");

  // local: the caller's session only; supabase-js forgets it too.
  const d = await signIn();
  assert.equal((await d.client.auth.signOut({ scope: "local" })).error, null);
  assert.equal((await d.client.auth.getSession()).data.session, null);
  assertAuthError(
    (await refresh(d.session.refresh_token)).error,
    400,
    "refresh_token_not_found",
    "d after local",
  );
  assert.equal((await refresh(aRefreshed.data.session!.refresh_token)).error, null);

  // global (the default): every session of the user.
  const e = await signIn();
  assert.equal((await e.client.auth.signOut()).error, null);
  for (const [what, token] of [["a", a.session], ["c", c.session], ["e", e.session]] as const) {
    const { error } = await authClient().auth.getUser(token.access_token);
    assert.ok(isAuthSessionMissingError(error), `${what}'s access token no longer names a session`);
  }
  await withDb(async (sql) => {
    const [{ n }] = await sql`select count(*)::int as n from auth.sessions s
                              join auth.users u on u.id = s.user_id where u.email = ${email}`;
    assert.equal(n, 0);
  });
  const f = await signIn();
  const bad = await raw("/logout?scope=everywhere", {
    body: {},
    headers: { authorization: `Bearer ${f.session.access_token}` },
  });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error_code, "validation_failed");
});

// --- The seeded users ---------------------------------------------------------------------------

Deno.test("the seeded users sign in with whatssound-local and their tokens open the seeded room", async () => {
  for (
    const [email, role] of [
      ["host@whatssound.test", "host"],
      ["dj@whatssound.test", "dj"],
      ["listener@whatssound.test", "listener"],
    ]
  ) {
    const client = authClient();
    const { data, error } = await client.auth.signInWithPassword({
      email,
      password: seededPassword,
    });
    assert.equal(error, null, `${email}: ${error?.message}`);
    assert.equal(data.user.email, email);
    assert.equal(typeof data.user.user_metadata.display_name, "string");
    const context = await invoke(client, `room-context?room_id=${seededRoom}`);
    assert.equal(context.status, 200, `${email}: ${JSON.stringify(context.body)}`);
    assert.equal(context.body.room.id, seededRoom);
    assert.ok(context.body.chat.length >= 3, "the seeded chat");
    assert.equal(context.body.room.host_id === data.user.id, role === "host");
    const { error: wrong } = await authClient().auth.signInWithPassword({
      email,
      password: "whatssound",
    });
    assertAuthError(wrong, 400, "invalid_credentials", `${email} with a wrong password`);
  }
});

// --- Realtime across refreshes ------------------------------------------------------------------

Deno.test("a private channel outlives several token refreshes without losing a message", async () => {
  const ttlS = 4;
  await withGateway({ accessTokenTtlS: ttlS }, async (url) => {
    // An app's client: the session in supabase-js, refreshed by it; Realtime asks for the token
    // at every heartbeat, so the heartbeat must come round within the token's lifetime.
    const client = createClient(url, anonKey, {
      auth: { persistSession: false, autoRefreshToken: true },
      realtime: { heartbeatIntervalMs: 1000 },
    });
    const accessTokens: string[] = [];
    const { data: listener } = client.auth.onAuthStateChange((event, session) => {
      if (event === "TOKEN_REFRESHED" && session) accessTokens.push(session.access_token);
    });
    try {
      const { session } = await signUp(client);
      assert.equal(session.expires_in, ttlS);
      const userId = decodeJwt(session.access_token).sub!;
      const room = await roomWith(userId);

      const topic = `room:${room}:chat`;
      const channel = client.channel(topic, { config: { private: true } });
      const received: { seq: number; client_id: string }[] = [];
      channel.on("broadcast", { event: "chat:batch" }, ({ payload }) => {
        received.push(...payload.messages);
      });
      const statuses: string[] = [];
      const joined = await subscribe(channel, (status) => statuses.push(status));
      assert.equal(joined.status, "SUBSCRIBED", joined.error?.message);

      // Send for more than three token lifetimes, through chat-send with the current token.
      const started = Date.now();
      const sent: string[] = [];
      for (let i = 0; Date.now() - started < 3 * ttlS * 1000; i++) {
        const clientId = `refresh-${i}`;
        const answer = await invoke(client, "chat-send", {
          room_id: room,
          messages: [{ client_id: clientId, body: `message ${i}` }],
        });
        assert.equal(answer.status, 202, JSON.stringify(answer.body));
        sent.push(clientId);
        await sleep(600);
      }
      await poll(() => Promise.resolve(received.length), (n) => n >= sent.length, 3000);

      assert.deepEqual(received.map((m) => m.client_id), sent, "every message, once, in order");
      assert.deepEqual(received.map((m) => m.seq), sent.map((_, i) => i + 1));
      assert.deepEqual(statuses, ["SUBSCRIBED"], "the channel never closed or errored");
      assert.equal(channel.state, "joined");
      assert.ok(accessTokens.length >= 3, `refreshed ${accessTokens.length} times`);
      const sessions = new Set(accessTokens.map((token) => decodeJwt(token).session_id));
      assert.deepEqual([...sessions], [decodeJwt(session.access_token).session_id]);
      assert.ok(
        decodeJwt(session.access_token).exp! * 1000 < Date.now() - ttlS * 1000,
        "the first token expired long before the end",
      );
    } finally {
      listener.subscription.unsubscribe();
      await closeRealtime(client);
      await client.auth.dispose();
    }
  });
});
