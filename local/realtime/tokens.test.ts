// Tokens on Realtime channels, end to end through the test stack's gateway with supabase-js: a
// join's token is verified and refused with Realtime's reasons (tokens.ts); a token sent later
// with setAuth replaces it and has its rights checked again (connection.ts); a token that
// expires while joined closes the channel (channel.ts).
import assert from "node:assert/strict";
import type { RealtimeChannel } from "npm:@supabase/supabase-js@2.119.1";
import { signJwt, userToken } from "../keys.ts";
import { closeRealtime, realtimeClientFor, subscribe } from "../test-helpers.ts";
import {
  castWithRooms,
  joined,
  otherSecret,
  received,
  refusal,
  send,
  sleep,
  until,
  upgrade,
} from "./testing.ts";

const { listener, outsider, rooms } = await castWithRooms(2);
const [accessRoom, refreshRoom] = rooms;

/** Collects the `system` messages of `channel`. */
function systemMessages(channel: RealtimeChannel): { status: string; message: string }[] {
  const got: { status: string; message: string }[] = [];
  channel.on("system", {}, (message) => got.push(message));
  return got;
}

Deno.test("setAuth with a fresh token keeps a private channel past the old token's expiry", async () => {
  const expiresBy = Date.now() + 3000;
  const expiring = await userToken(listener.id, { expiresIn: 3 });
  let token = expiring;
  const client = realtimeClientFor(() => token);
  try {
    const channel = await joined(client, `room:${refreshRoom}:chat`);
    const got = received(channel);
    const system = systemMessages(channel);
    token = listener.token;
    await client.realtime.setAuth(token);
    // The old token's exp passes: a server still holding it would close the channel now.
    await sleep(expiresBy + 1000 - Date.now());
    assert.deepEqual(system, []);
    assert.equal(channel.state, "joined");
    await send(`room:${refreshRoom}:chat`, "after-refresh", { n: 1 });
    await until("a row after the refresh", got, (all) => all.length === 1);
    assert.equal(got[0].event, "after-refresh");
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("setAuth with a non-member's token closes the channel with a system message", async () => {
  let token = listener.token;
  const client = realtimeClientFor(() => token);
  try {
    const topic = `room:${refreshRoom}:chat`;
    const statuses: string[] = [];
    const channel = client.channel(topic, { config: { private: true } });
    const system = systemMessages(channel);
    assert.equal(
      (await subscribe(channel, (status) => statuses.push(status))).status,
      "SUBSCRIBED",
    );

    token = outsider.token;
    await client.realtime.setAuth(token);
    await until("the system message", system, (all) => all.length === 1);
    assert.equal(system[0].status, "error");
    assert.equal(
      system[0].message,
      `You do not have permissions to read from this Channel topic: ${topic}`,
    );
    await until("the channel closes", statuses, (s) => s.includes("CLOSED"));
    assert.equal(channel.state, "closed");
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("a token that expires while joined makes the server close the channel", async () => {
  const client = realtimeClientFor(await userToken(listener.id, { expiresIn: 3 }));
  try {
    const statuses: string[] = [];
    const channel = client.channel(`room:${refreshRoom}:playback`, { config: { private: true } });
    const system = systemMessages(channel);
    assert.equal(
      (await subscribe(channel, (status) => statuses.push(status))).status,
      "SUBSCRIBED",
    );
    await until("the expiry message", system, (all) => all.length === 1, 6000);
    assert.equal(system[0].status, "error");
    assert.match(system[0].message, /^Token has expired \d+ seconds ago$/);
    await until("the channel closes", statuses, (s) => s.includes("CLOSED"));
    assert.equal(channel.state, "closed");
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("join: a forged token and an expired token are refused with Realtime's reasons", async () => {
  const topic = `room:${accessRoom}:chat`;
  const forged = await signJwt({
    sub: listener.id,
    role: "authenticated",
    is_anonymous: false,
    exp: Math.floor(Date.now() / 1000) + 600,
  }, otherSecret);
  assert.equal(
    await refusal(forged, topic),
    "JwtSignatureError: Failed to validate JWT signature",
  );
  const expired = await userToken(listener.id, { expiresIn: -30 });
  assert.match(
    await refusal(expired, topic),
    /^InvalidJWTToken: Token has expired \d+ seconds ago$/,
  );
  // Public channels skip the RLS probe, not the token check.
  assert.match(await refusal(expired, "lobby", false), /^InvalidJWTToken: Token has expired/);
});

Deno.test("join and connect: a signed token whose sub is not a uuid is refused as InvalidJWTToken", async () => {
  // The same check as the functions' (a user token carries a uuid sub): it used to pass, and the
  // RLS probe's auth.uid() failed on it.
  const badSub = await userToken("not-a-uuid");
  assert.equal(
    await refusal(badSub, `room:${accessRoom}:chat`),
    "InvalidJWTToken: The token's sub must be a user id (a uuid).",
  );
  assert.match(await refusal(badSub, "lobby", false), /^InvalidJWTToken: The token's sub/);
  const badFlag = await userToken(listener.id, { is_anonymous: "no" });
  assert.match(await refusal(badFlag, "lobby", false), /^InvalidJWTToken: .*is_anonymous/);
  assert.deepEqual(await upgrade(`?apikey=${badSub}&vsn=2.0.0`), {
    status: 401,
    body: { error: "The token's sub must be a user id (a uuid)." },
  });
});
