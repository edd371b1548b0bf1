// Who may join which channel, end to end through the test stack's gateway with supabase-js: the
// read probe at join (authorization.ts) lets the project's RLS policies on realtime.messages
// decide, as Realtime does: members on room channels, owners on their user channels, nobody on
// channels without a rule, and tls_only channels not over plain HTTP.
import assert from "node:assert/strict";
import { createClient } from "npm:@supabase/supabase-js@2.119.1";
import {
  anonKey,
  apiUrl,
  closeRealtime,
  realtimeClientFor,
  serviceRoleKey,
  subscribe,
} from "../test-helpers.ts";
import { startGateway } from "../stack.ts";
import { castWithRooms, joined, refusal } from "./testing.ts";

const { host, listener, dj, outsider, anonymousListener, rooms } = await castWithRooms(1);
const [accessRoom] = rooms;

Deno.test("join refusals: non-members, anonymous users, the anon key, other users' channels", async () => {
  const unauthorized = (topic: string) =>
    `Unauthorized: You do not have permissions to read from this Channel topic: ${topic}`;
  for (const kind of ["", ":chat", ":queue", ":playback"]) {
    const topic = `room:${accessRoom}${kind}`;
    assert.equal(await refusal(outsider.token, topic), unauthorized(topic), "non-member");
    // Room channels are identified-only: an anonymous user is refused though a member.
    assert.equal(await refusal(anonymousListener.token, topic), unauthorized(topic), "anonymous");
    assert.equal(await refusal(anonKey, topic), unauthorized(topic), "the anon key");
  }
  for (const kind of ["notifications", "activity"]) {
    const topic = `user:${listener.id}:${kind}`;
    assert.equal(await refusal(outsider.token, topic), unauthorized(topic), "another user");
    assert.equal(await refusal(anonKey, topic), unauthorized(topic), "the anon key");
  }
  for (const topic of ["lobby:1", "room:not-a-uuid", `room:${accessRoom}:secret`]) {
    assert.equal(await refusal(host.token, topic), unauthorized(topic), "unknown channel");
  }
});

Deno.test("join grants: members on room channels, owners on their user channels, the service role", async () => {
  const clients = [host, listener, dj, outsider].map((user) => realtimeClientFor(user.token));
  const [hostClient, listenerClient, djClient, outsiderClient] = clients;
  const service = realtimeClientFor(serviceRoleKey);
  try {
    for (const kind of ["", ":chat", ":queue", ":playback"]) {
      for (const client of [hostClient, listenerClient, djClient, service]) {
        await joined(client, `room:${accessRoom}${kind}`);
      }
    }
    await joined(listenerClient, `user:${listener.id}:notifications`);
    await joined(listenerClient, `user:${listener.id}:activity`);
    await joined(outsiderClient, `user:${outsider.id}:notifications`);
    // A public channel of the same name is not the private one: Realtime does not check it.
    await joined(outsiderClient, `room:${accessRoom}:chat`, { private: false });
  } finally {
    await closeRealtime(...clients, service);
  }
});

/** A WebSocket whose upgrade request says it came over plain HTTP, as a proxy would. */
class PlainHttpWebSocket extends WebSocket {
  constructor(url: string | URL) {
    super(url, { headers: { "x-forwarded-proto": "http" } });
  }
}

Deno.test("tls_only: over a plain-HTTP upgrade the owner may not join user:{id}:notifications", async () => {
  const plain = createClient(apiUrl, anonKey, {
    accessToken: () => Promise.resolve(listener.token),
    realtime: { transport: PlainHttpWebSocket },
  });
  try {
    const topic = `user:${listener.id}:notifications`;
    const { status, error } = await subscribe(plain.channel(topic, { config: { private: true } }));
    assert.equal(status, "CHANNEL_ERROR");
    assert.equal(
      error?.message,
      `Unauthorized: You do not have permissions to read from this Channel topic: ${topic}`,
    );
    // Channels without tls_only do not mind.
    await joined(plain, `user:${listener.id}:activity`);
  } finally {
    await closeRealtime(plain);
  }
});

Deno.test("a private join on a topic with a NUL is refused as Unauthorized, with no failed probe", async () => {
  // Postgres text holds no NUL: the probe row's insert used to fail, logged as a failed
  // authorization. A gateway of this process, so that what it logs is seen.
  const logged: unknown[][] = [];
  const originalError = console.error;
  console.error = (...args: unknown[]) => logged.push(args);
  const gateway = await startGateway(Deno.env.get("SUPABASE_DB_URL")!, 0, () => {});
  const client = createClient(gateway.url, anonKey, {
    accessToken: () => Promise.resolve(listener.token),
  });
  try {
    const topic = `room:${accessRoom}:chat\u0000`;
    const { status, error } = await subscribe(client.channel(topic, { config: { private: true } }));
    assert.equal(status, "CHANNEL_ERROR");
    assert.match(error!.message, /^Unauthorized: You do not have permissions to read/);
  } finally {
    await closeRealtime(client);
    await gateway.shutdown();
    console.error = originalError;
  }
  assert.deepEqual(logged, []);
});
