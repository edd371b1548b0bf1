// The token keeper with a stand-in for supabase-js's realtime client and auth, and fake time:
// Realtime gets the token before anything joins, again shortly before it expires, and on every
// auth refresh; function calls ask supabase-js for the token each time.
import assert from "node:assert/strict";
import type { SupabaseClient } from "@supabase/supabase-js";
import { decodeJwt, TokenKeeper } from "./auth.ts";
import { FakeTimers } from "./testing/fake_timers.ts";

function jwt(claims: Record<string, unknown>): string {
  const encode = (value: unknown) =>
    btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify(value))))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `${encode({ alg: "HS256", typ: "JWT" })}.${encode(claims)}.signature`;
}

/** What TokenKeeper uses of a SupabaseClient: realtime's token handling and auth events. */
function fakeSupabase(session: () => string, withAuth = true) {
  const calls: string[] = [];
  let listener: ((event: string, session: { access_token: string } | null) => void) | null = null;
  const realtime = {
    accessTokenValue: null as string | null,
    accessToken: () => Promise.resolve(session()),
    setAuth(token?: string) {
      const value = token ?? session();
      calls.push(`setAuth ${decodeJwt(value)?.exp ?? value}${token ? " (given)" : ""}`);
      realtime.accessTokenValue = value;
      return Promise.resolve();
    },
  };
  const auth = withAuth
    ? {
      onAuthStateChange(callback: typeof listener) {
        listener = callback;
        return { data: { subscription: { unsubscribe: () => void (listener = null) } } };
      },
    }
    : new Proxy({}, {
      get() {
        throw new Error("accessing supabase.auth is not possible with the accessToken option");
      },
    });
  return {
    supabase: { realtime, auth } as unknown as SupabaseClient,
    calls,
    emit: (event: string, token: string) => listener?.(event, { access_token: token }),
    get listening() {
      return listener !== null;
    },
  };
}

const seconds = (timers: FakeTimers) => Math.floor(timers.now() / 1000);

/**
 * A started TokenKeeper on fake time, over a fake supabase-js whose session holds a token of
 * user "u" issued now for `lifetimeS`; tests replace `session.token` as supabase-js's refresh
 * would.
 */
async function startedKeeper(lifetimeS: number) {
  const timers = new FakeTimers();
  const now = seconds(timers);
  const session = { token: jwt({ sub: "u", iat: now, exp: now + lifetimeS }) };
  const fake = fakeSupabase(() => session.token);
  const keeper = new TokenKeeper({ supabase: fake.supabase, timers });
  await keeper.start();
  return { timers, now, session, fake, keeper };
}

Deno.test("decodeJwt reads a token's claims (base64url), and null for anything else", () => {
  assert.deepEqual(decodeJwt(jwt({ sub: "u-1", exp: 5, name: "Lucía ✓" })), {
    sub: "u-1",
    exp: 5,
    name: "Lucía ✓",
  });
  assert.equal(decodeJwt("not a token"), null);
  assert.equal(decodeJwt(null), null);
  assert.equal(decodeJwt("a.!!!.c"), null);
});

Deno.test("tokens: set before anything joins, asked again a minute before exp, then each new one", async () => {
  const { timers, now, session, fake, keeper } = await startedKeeper(3600);
  assert.deepEqual(fake.calls, [`setAuth ${now + 3600}`]);
  assert.equal(keeper.userId(), "u");
  assert.equal(await keeper.token(), session.token);
  // The session was refreshed meanwhile (a new token from supabase-js's getSession).
  session.token = jwt({ sub: "u", iat: now + 3000, exp: now + 7200 });
  await timers.advance(3539_000);
  assert.equal(fake.calls.length, 1, "not yet");
  await timers.advance(2000);
  assert.deepEqual(fake.calls.slice(1), [`setAuth ${now + 7200}`], "60 s before exp");
  keeper.stop();
  await timers.advance(7200_000);
  assert.equal(fake.calls.length, 2, "stopped: no more");
});

Deno.test("tokens: a short token is asked again at 3/4 of its life, then every few seconds until a new one comes", async () => {
  const { timers, now, session, fake, keeper } = await startedKeeper(4);
  await timers.advance(3000);
  assert.equal(fake.calls.length, 2, "at 3 s of 4");
  await timers.advance(500);
  assert.equal(fake.calls.length, 3, "still the same token: again in half the time left");
  session.token = jwt({ sub: "u", iat: now + 3, exp: now + 3603 });
  await timers.advance(300);
  assert.equal(fake.calls.at(-1), `setAuth ${now + 3603}`);
  const count = fake.calls.length;
  await timers.advance(60_000);
  assert.equal(fake.calls.length, count, "the new one lasts an hour");
  keeper.stop();
});

Deno.test("tokens: supabase.auth's refresh events reach Realtime at once", async () => {
  const { now, fake, keeper } = await startedKeeper(3600);
  assert.ok(fake.listening);
  const refreshed = jwt({ sub: "u", iat: now + 10, exp: now + 3610 });
  fake.emit("TOKEN_REFRESHED", refreshed);
  assert.equal(fake.calls.at(-1), `setAuth ${now + 3610} (given)`);
  fake.emit("TOKEN_REFRESHED", refreshed); // the same one again: nothing to do
  assert.equal(fake.calls.length, 2);
  keeper.stop();
  assert.ok(!fake.listening, "stop unsubscribes");
});

Deno.test("tokens: with supabase-js's accessToken option (auth unavailable) it still works", async () => {
  const timers = new FakeTimers();
  const now = seconds(timers);
  const fake = fakeSupabase(
    () => jwt({ sub: "app-user", iat: now, exp: now + 600 }),
    false,
  );
  const keeper = new TokenKeeper({ supabase: fake.supabase, timers });
  await keeper.start();
  assert.equal(keeper.userId(), "app-user");
  assert.equal(decodeJwt(await keeper.token())?.sub, "app-user");
  keeper.stop();
});
