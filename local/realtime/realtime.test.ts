// End to end through the test stack's gateway: the real supabase-js client (its realtime-js and
// phoenix) against the local Realtime stand-in, on both wire protocols. What reaches a socket
// comes from the functions (chat-send, playback, presence), from rows realtime.send commits
// (read from the WAL, so tests poll for them), from client broadcasts and presence, and from
// the REST broadcast endpoint; who may join, publish and track is decided by the project's RLS.
import assert from "node:assert/strict";
import {
  createClient,
  type RealtimeChannel,
  type SupabaseClient,
} from "npm:@supabase/supabase-js@2.119.1";
// realtime-js's own wire decoder (the one supabase-js runs), for reading raw 2.0.0 frames.
import serializer from "npm:@supabase/realtime-js@2.119.1/dist/main/lib/serializer.js";
import { signJwt, userToken } from "../keys.ts";
import { startGateway } from "../stack.ts";
import {
  anonKey,
  apiUrl,
  closeRealtime,
  createCast,
  createRoom,
  fixtureDb,
  invoke,
  poll,
  realtimeClientFor,
  serviceRoleKey,
  subscribe,
  withDb,
} from "../test-helpers.ts";

const setup = fixtureDb();
const { host, listener, dj, outsider, anonymousListener, members } = await createCast(setup);
const chatRoom = await createRoom(setup, host, members);
const accessRoom = await createRoom(setup, host, members);
const playbackRoom = await createRoom(setup, host, members);
const memberEventsRoom = await createRoom(setup, host, members);
const presenceRoom = await createRoom(setup, host, members);
const lazyTrackRoom = await createRoom(setup, host, members);
const replayRoom = await createRoom(setup, host, members);
const refreshRoom = await createRoom(setup, host, members);
const vsnRoom = await createRoom(setup, host, members);
const queueRoom = await createRoom(setup, host, members);
const topicsRoom = await createRoom(setup, host, members);
const restRoom = await createRoom(setup, host, members);
const [song] = await setup`insert into public.songs (title, artist, duration_ms)
                          values ('Realtime Song', 'Artist', 180000) returning id`;
await setup.end();

const otherSecret = "another-secret-that-is-at-least-32-characters-long";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A broadcast as supabase-js hands it to `.on("broadcast", ...)`. */
interface Received {
  type: string;
  event: string;
  // deno-lint-ignore no-explicit-any -- tests read whatever payload came
  payload: any;
  meta?: { id: string };
}

/** Collects what `channel` receives of broadcast `event` ("*": every event). */
function received(channel: RealtimeChannel, event = "*"): Received[] {
  const got: Received[] = [];
  channel.on("broadcast", { event }, (message) => got.push(message as Received));
  return got;
}

/** Collects the `system` messages of `channel`. */
function systemMessages(channel: RealtimeChannel): { status: string; message: string }[] {
  const got: { status: string; message: string }[] = [];
  channel.on("system", {}, (message) => got.push(message));
  return got;
}

/** Waits until `done(list)` holds and fails with the list when it does not within `timeoutMs`. */
async function until<T>(what: string, list: T[], done: (list: T[]) => boolean, timeoutMs = 3000) {
  await poll(() => Promise.resolve(list), done, timeoutMs);
  assert.ok(done(list), `${what}; got ${JSON.stringify(list)}`);
}

/** Waits until `check()` holds and fails with `what` when it does not within `timeoutMs`. */
async function waitFor(what: string, check: () => boolean, timeoutMs = 3000) {
  await poll(() => Promise.resolve(check()), (done) => done, timeoutMs);
  assert.ok(check(), what);
}

const events = (list: Received[]) => list.map((m) => m.event);

/** A channel of `client`, subscribed; fails unless the server accepted the join. */
async function joined(
  client: SupabaseClient,
  topic: string,
  config: Record<string, unknown> = { private: true },
  bind: (channel: RealtimeChannel) => void = () => {},
): Promise<RealtimeChannel> {
  const channel = client.channel(topic, { config });
  bind(channel);
  const { status, error } = await subscribe(channel);
  assert.equal(status, "SUBSCRIBED", `join ${topic}: ${error?.message}`);
  return channel;
}

/** Joins `topic` as `token` and returns the refusal the client reports. */
async function refusal(token: string, topic: string, isPrivate = true): Promise<string> {
  const client = realtimeClientFor(token);
  try {
    const { status, error } = await subscribe(
      client.channel(topic, { config: { private: isPrivate } }),
    );
    assert.equal(status, "CHANNEL_ERROR", `join ${topic} should be refused`);
    return error!.message;
  } finally {
    await closeRealtime(client);
  }
}

/** realtime.send as the backend calls it, committed at once. */
function send(topic: string, event: string, payload: unknown, isPrivate = true) {
  return withDb((sql) =>
    sql`select realtime.send(${sql.json(payload as never)}, ${event}, ${topic}, ${isPrivate})`
  );
}

const ok = (response: unknown) => ({ status: "ok", response });
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// --- Rows from the functions ------------------------------------------------------------------

Deno.test("a member on private room:{id}:chat receives the chat:batch of what chat-send accepted", async () => {
  const client = realtimeClientFor(listener.token);
  try {
    const channel = await joined(client, `room:${chatRoom}:chat`);
    const batches = received(channel, "chat:batch");
    const messages = ["one", "two", "three"].map((body) => ({
      client_id: `rt-${body}-${crypto.randomUUID().slice(0, 8)}`,
      body: `Hello ${body} ✓`,
    }));
    const sent = await invoke(listener.client, "chat-send", { room_id: chatRoom, messages });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const accepted: { id: number; client_id: string }[] = sent.body.accepted;

    await until(
      "every accepted message in a chat:batch",
      batches,
      (all) => all.flatMap((b) => b.payload.messages).length >= accepted.length,
    );
    for (const batch of batches) {
      assert.equal(batch.type, "broadcast");
      assert.equal(batch.event, "chat:batch");
      assert.match(batch.meta?.id ?? "", uuidPattern, "meta.id is the row's id");
      assert.equal(
        batch.payload.id,
        batch.meta!.id,
        "realtime.send puts the row id in the payload",
      );
    }
    const delivered = batches.flatMap((b) => b.payload.messages);
    assert.deepEqual(
      delivered.map((m) => [m.seq, m.id, m.client_id, m.body, m.user_id, m.room_id]),
      accepted.map((a, i) => [i + 1, a.id, a.client_id, messages[i].body, listener.id, chatRoom]),
      "each accepted message once, numbered 1, 2, 3 in the room, as stored",
    );
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("a listener on room:{id}:playback receives the host's PlaybackState, the final one included", async () => {
  const client = realtimeClientFor(listener.token);
  try {
    const channel = await joined(client, `room:${playbackRoom}:playback`);
    const states = received(channel, "playback:position");
    const updates = [0, 1000, 2000, 3000, 4000, 5000].map((position, i) => ({
      room_id: playbackRoom,
      song_id: song.id,
      position_ms: position,
      is_playing: true,
      seq: i + 1,
    }));
    for (const update of updates) {
      const r = await invoke(host.client, "playback", update);
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.equal(r.body.applied, true);
    }

    await until("the final state", states, (all) => all.at(-1)?.payload.seq === 6, 5000);
    for (const { payload, meta } of states) {
      assert.equal(payload.room_id, playbackRoom);
      assert.equal(payload.song_id, song.id);
      assert.equal(payload.is_playing, true);
      assert.equal(typeof payload.updated_at, "string");
      assert.equal(typeof payload.server_time, "number");
      assert.equal(payload.position_ms, (payload.seq - 1) * 1000, "a state as the host sent it");
      assert.match(meta?.id ?? "", uuidPattern);
    }
    const seqs = states.map((m) => m.payload.seq);
    assert.ok(seqs.every((seq, i) => i === 0 || seqs[i - 1] < seq), `newer states only: ${seqs}`);
    assert.equal(seqs[0], 1, "the start of play goes out at once");
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("a subscriber on private room:{id} receives member_added and member_removed with the versions snapshots carry", async () => {
  const client = realtimeClientFor(host.token);
  try {
    const channel = await joined(client, `room:${memberEventsRoom}`);
    const got = received(channel);
    const snapshot = await invoke(host.client, `presence?room_id=${memberEventsRoom}`);
    assert.equal(snapshot.status, 200, JSON.stringify(snapshot.body));
    const version: number = snapshot.body.version;
    const presence = (action: string, tab: string) =>
      invoke(listener.client, "presence", {
        action,
        room_id: memberEventsRoom,
        connection_id: `rt-presence-${tab}`,
        ...(action === "join" ? { user_id: listener.id, user_info: { name: "Lis" } } : {}),
      });

    const firstTab = await presence("join", "tab-1");
    assert.equal(firstTab.status, 200, JSON.stringify(firstTab.body));
    assert.equal(
      firstTab.body.presence.version,
      version + 1,
      "the join's snapshot has its version",
    );
    await until("member_added", got, (all) => all.length >= 1);
    assert.equal(got[0].event, "presence:member_added");
    assert.deepEqual({ ...got[0].payload, id: undefined }, {
      user_id: listener.id,
      info: { name: "Lis" },
      is_host: false,
      total: 1,
      version: version + 1,
      id: undefined,
    });

    // A second tab of the same user joins and the first leaves: no event, no new version.
    const secondTab = await presence("join", "tab-2");
    assert.equal(secondTab.body.member_added, false);
    assert.equal(secondTab.body.presence.version, version + 1);
    assert.deepEqual((await presence("leave", "tab-1")).body, { member_removed: false });

    const lastTab = await presence("leave", "tab-2");
    assert.deepEqual([lastTab.status, lastTab.body], [200, { member_removed: true }]);
    await until("member_removed", got, (all) => all.length >= 2);
    // Delivered in commit order: nothing came between the two events.
    assert.deepEqual(events(got), ["presence:member_added", "presence:member_removed"]);
    assert.deepEqual({ ...got[1].payload, id: undefined }, {
      user_id: listener.id,
      total: 0,
      version: version + 2,
      id: undefined,
    });
    const after = await invoke(host.client, `presence?room_id=${memberEventsRoom}`);
    assert.equal(after.body.version, got[1].payload.version, "the snapshot is at the last event");
  } finally {
    await closeRealtime(client);
  }
});

// --- Who may join -----------------------------------------------------------------------------

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

// --- Presence ---------------------------------------------------------------------------------

Deno.test("presence on private room:{id}: members track and see each other; untrack, leave and a closed socket remove them", async () => {
  const hostClient = realtimeClientFor(host.token);
  const listenerClient = realtimeClientFor(listener.token);
  const secondTab = realtimeClientFor(listener.token);
  const topic = `room:${presenceRoom}`;
  try {
    const watch = (user: typeof host) => {
      const joins: string[] = [];
      const leaves: string[] = [];
      return {
        joins,
        leaves,
        config: { private: true, presence: { key: user.id } },
        bind: (channel: RealtimeChannel) => {
          channel.on("presence", { event: "join" }, ({ key }) => joins.push(key));
          channel.on("presence", { event: "leave" }, ({ key }) => leaves.push(key));
        },
      };
    };
    const hostSeen = watch(host);
    const hostChannel = await joined(hostClient, topic, hostSeen.config, hostSeen.bind);
    assert.equal(await hostChannel.track({ name: "Host" }), "ok");
    await until("the host sees itself", hostSeen.joins, (keys) => keys.includes(host.id));

    // A later joiner gets who is there in presence_state.
    const listenerSeen = watch(listener);
    const listenerChannel = await joined(
      listenerClient,
      topic,
      listenerSeen.config,
      listenerSeen.bind,
    );
    await until("the host in the joiner's state", listenerSeen.joins, (k) => k.includes(host.id));
    assert.equal(await listenerChannel.track({ name: "Listener" }), "ok");
    await until("the host sees the listener", hostSeen.joins, (k) => k.includes(listener.id));
    for (const channel of [hostChannel, listenerChannel]) {
      const state = channel.presenceState<{ name: string }>();
      assert.deepEqual(Object.keys(state).sort(), [host.id, listener.id].sort());
      assert.equal(state[listener.id][0].name, "Listener");
      assert.equal(state[host.id][0].name, "Host");
      assert.equal(typeof state[host.id][0].presence_ref, "string");
    }

    assert.equal(await listenerChannel.untrack(), "ok");
    await until("untrack is a leave", hostSeen.leaves, (keys) => keys.includes(listener.id));
    assert.deepEqual(Object.keys(hostChannel.presenceState()), [host.id]);

    // Two tabs of one user: one key with two metas; each tab's leave takes its own meta.
    assert.equal(await listenerChannel.track({ name: "Tab 1" }), "ok");
    const tab2 = await joined(secondTab, topic, {
      private: true,
      presence: { key: listener.id, enabled: true },
    });
    assert.equal(await tab2.track({ name: "Tab 2" }), "ok");
    const tabs = () =>
      (hostChannel.presenceState<{ name: string }>()[listener.id] ?? []).map((m) => m.name).sort();
    await waitFor("both tabs", () => tabs().join() === "Tab 1,Tab 2");
    assert.equal(await listenerClient.removeChannel(listenerChannel), "ok");
    await waitFor("leaving the channel leaves its tab", () => tabs().join() === "Tab 2");
    // A socket that goes away without leaving takes its presence with it.
    await secondTab.realtime.disconnect();
    await waitFor("the closed socket's tab leaves", () => tabs().length === 0);
    assert.deepEqual(Object.keys(hostChannel.presenceState()), [host.id]);
  } finally {
    await closeRealtime(hostClient, listenerClient, secondTab);
  }
});

Deno.test("presence on room:{id}:chat is nobody's: a member's track gets an error reply", async () => {
  const client = realtimeClientFor(listener.token);
  try {
    const channel = await joined(
      client,
      `room:${presenceRoom}:chat`,
      { private: true, presence: { key: listener.id, enabled: true } },
    );
    assert.equal(await channel.track({ name: "Listener" }), "error");
    assert.deepEqual(channel.presenceState(), {});
    // The refusal is cached for the channel, as Realtime caches its write check.
    assert.equal(await channel.track({ name: "Listener" }), "error");
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("a member may track on private room:{id} joined without presence; it is checked at the track", async () => {
  const hostClient = realtimeClientFor(host.token);
  const listenerClient = realtimeClientFor(listener.token);
  const outsiderClient = realtimeClientFor(outsider.token);
  try {
    const joins: string[] = [];
    const topic = `room:${lazyTrackRoom}`;
    await joined(hostClient, topic, { private: true }, (channel) => {
      channel.on("presence", { event: "join" }, ({ key }) => joins.push(key));
    });
    // No presence listener and presence.enabled false: the join probed broadcast only.
    const announcer = await joined(listenerClient, topic, {
      private: true,
      presence: { key: listener.id },
    });
    assert.equal(await announcer.track({ name: "Listener" }), "ok");
    await until("the host sees the late tracker", joins, (keys) => keys.includes(listener.id));
    // Its presence read is checked at the track; from then on it is sent presence too.
    await waitFor(
      "the tracker gets presence_state",
      () => Object.keys(announcer.presenceState()).includes(listener.id),
    );
    // A refused tracker cannot even join the room's channel; on its own user channel, where
    // presence is nobody's, the track is refused at the track.
    const own = await joined(outsiderClient, `user:${outsider.id}:activity`);
    assert.equal(await own.track({ name: "Outsider" }), "error");
  } finally {
    await closeRealtime(hostClient, listenerClient, outsiderClient);
  }
});

// --- Tokens -----------------------------------------------------------------------------------

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

// --- Both wire protocols ----------------------------------------------------------------------

for (const vsn of ["1.0.0", "2.0.0"] as const) {
  const otherVsn = vsn === "1.0.0" ? "2.0.0" : "1.0.0";
  Deno.test(`vsn ${vsn}: realtime.send rows and client broadcasts (self, ack) reach private subscribers`, async () => {
    const hostClient = realtimeClientFor(host.token, { vsn });
    const listenerClient = realtimeClientFor(listener.token, { vsn: otherVsn });
    const topic = `room:${vsnRoom}:queue`;
    try {
      assert.match(hostClient.realtime.endpointURL(), new RegExp(`vsn=${vsn}`));
      const hostChannel = await joined(hostClient, topic, {
        private: true,
        broadcast: { self: true, ack: true },
      });
      const hostGot = received(hostChannel);
      const listenerGot = received(await joined(listenerClient, topic));

      const row = { song: "Ünïcødé ♫", nested: { list: [1, 2.5, null, true] } };
      await send(topic, `queue:row:${vsn}`, row);
      for (const got of [hostGot, listenerGot]) {
        await until("the row", got, (all) => all.length === 1);
        assert.equal(got[0].type, "broadcast");
        assert.equal(got[0].event, `queue:row:${vsn}`);
        assert.match(got[0].meta?.id ?? "", uuidPattern);
        assert.deepEqual(got[0].payload, { ...row, id: got[0].meta!.id });
      }

      const pushed = { from: "host", at: 42, text: "emoji 🎶" };
      assert.equal(
        await hostChannel.send({ type: "broadcast", event: `queue:push:${vsn}`, payload: pushed }),
        "ok",
        "acknowledged",
      );
      for (const got of [hostGot, listenerGot]) {
        await until("the client broadcast", got, (all) => all.length === 2);
        assert.deepEqual(got[1], {
          type: "broadcast",
          event: `queue:push:${vsn}`,
          payload: pushed,
        });
      }
    } finally {
      await closeRealtime(hostClient, listenerClient);
    }
  });
}

// --- Client broadcast rights, public and private topics ---------------------------------------

Deno.test("private room:{id}:queue: host and dj publish, a listener's broadcast is dropped silently", async () => {
  const topic = `room:${queueRoom}:queue`;
  const config = { private: true, broadcast: { ack: true } };
  const [hostClient, djClient, listenerClient] = [host, dj, listener].map((u) =>
    realtimeClientFor(u.token)
  );
  try {
    const hostChannel = await joined(hostClient, topic, config);
    const djChannel = await joined(djClient, topic, config);
    const listenerChannel = await joined(listenerClient, topic, config);
    const [hostGot, djGot, listenerGot] = [hostChannel, djChannel, listenerChannel].map((c) =>
      received(c)
    );

    // No write right: no delivery and no reply, so the acknowledged send times out.
    assert.equal(
      await listenerChannel.send(
        { type: "broadcast", event: "queue:forbidden", payload: { by: "listener" } },
        { timeout: 500 },
      ),
      "timed out",
    );
    assert.equal(
      await hostChannel.send({ type: "broadcast", event: "queue:host", payload: { by: "host" } }),
      "ok",
    );
    assert.equal(
      await djChannel.send({ type: "broadcast", event: "queue:dj", payload: { by: "dj" } }),
      "ok",
    );
    await until("host and dj", listenerGot, (all) => all.length === 2);
    await until("the dj's", hostGot, (all) => all.length === 1);
    await until("the host's", djGot, (all) => all.length === 1);
    assert.deepEqual(events(listenerGot), ["queue:host", "queue:dj"]);
    assert.deepEqual(events(hostGot), ["queue:dj"], "self is off by default");
    assert.deepEqual(events(djGot), ["queue:host"]);
  } finally {
    await closeRealtime(hostClient, djClient, listenerClient);
  }
});

Deno.test("public and private channels of one topic are separate, for rows and client broadcasts", async () => {
  const topic = `room:${topicsRoom}:queue`;
  const [publicSender, publicReceiver] = [outsider, listener].map((u) =>
    realtimeClientFor(u.token)
  );
  const [privateSender, privateReceiver] = [host, dj].map((u) => realtimeClientFor(u.token));
  try {
    // Acknowledged sends: the server has fanned a broadcast out before it replies, so whatever
    // leaks reaches a receiver before the rows written afterwards.
    const broadcast = { ack: true };
    const publicChannel = await joined(publicSender, topic, { private: false, broadcast });
    const privateChannel = await joined(privateSender, topic, { private: true, broadcast });
    const publicGot = received(await joined(publicReceiver, topic, { private: false }));
    const privateGot = received(await joined(privateReceiver, topic, { private: true }));

    await send(topic, "row:public-1", { n: 1 }, false);
    await send(topic, "row:private-1", { n: 2 }, true);
    assert.equal(
      await publicChannel.send({ type: "broadcast", event: "push:public", payload: {} }),
      "ok",
    );
    assert.equal(
      await privateChannel.send({ type: "broadcast", event: "push:private", payload: {} }),
      "ok",
    );
    await send(topic, "row:public-2", { n: 3 }, false);
    await send(topic, "row:private-2", { n: 4 }, true);
    await until("the public rows", publicGot, (all) => events(all).includes("row:public-2"));
    await until("the private rows", privateGot, (all) => events(all).includes("row:private-2"));
    // Rows arrive after the WAL is read, so a push may overtake the first row; the last row still
    // comes after anything that could leak.
    assert.deepEqual(events(publicGot).sort(), ["push:public", "row:public-1", "row:public-2"]);
    assert.deepEqual(events(privateGot).sort(), ["push:private", "row:private-1", "row:private-2"]);
  } finally {
    await closeRealtime(publicSender, publicReceiver, privateSender, privateReceiver);
  }
});

Deno.test("vsn 2.0.0: binary payloads reach 2.0.0 subscribers as bytes, and no 1.0.0 subscriber", async () => {
  const topic = `binary-${crypto.randomUUID()}`;
  const sender = realtimeClientFor(anonKey, { vsn: "2.0.0" });
  const v2 = realtimeClientFor(anonKey, { vsn: "2.0.0" });
  const v1 = realtimeClientFor(anonKey, { vsn: "1.0.0" });
  try {
    const channel = await joined(sender, topic, { private: false, broadcast: { ack: true } });
    const v2Got = received(await joined(v2, topic, { private: false }));
    const v1Got = received(await joined(v1, topic, { private: false }));
    const bytes = new Uint8Array([0, 1, 2, 253, 254, 255]);
    assert.equal(
      await channel.send({ type: "broadcast", event: "bytes", payload: bytes.buffer }),
      "ok",
    );
    await send(topic, "after-bytes", { n: 1 }, false);
    await until("the row after", v2Got, (all) => all.length === 2);
    await until("the row after", v1Got, (all) => all.length === 1);
    assert.equal(v2Got[0].event, "bytes");
    assert.deepEqual(new Uint8Array(v2Got[0].payload), bytes);
    assert.deepEqual(events(v1Got), ["after-bytes"]);
  } finally {
    await closeRealtime(sender, v2, v1);
  }
});

// --- Security at connect and join -------------------------------------------------------------

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

/** Sends a WebSocket upgrade request by hand and reads the HTTP answer (status, JSON body). */
async function upgrade(query: string): Promise<{ status: number; body: unknown }> {
  const { hostname, port } = new URL(apiUrl);
  const connection = await Deno.connect({ hostname, port: Number(port) });
  try {
    const request = [
      `GET /realtime/v1/websocket${query} HTTP/1.1`,
      `Host: ${hostname}:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Version: 13",
      `Sec-WebSocket-Key: ${btoa("whatssound-test!")}`,
      "",
      "",
    ].join("\r\n");
    await connection.write(new TextEncoder().encode(request));
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(4096);
    let text = "";
    for (;;) {
      const n = await connection.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) continue;
      const head = text.slice(0, end);
      if (/^HTTP\/1\.1 101/.test(head)) break;
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (new TextEncoder().encode(text.slice(end + 4)).length >= length) break;
    }
    const [head, body] = [text.slice(0, text.indexOf("\r\n\r\n")), text.split("\r\n\r\n")[1]];
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
    return { status, body: status === 101 || !body ? undefined : JSON.parse(body) };
  } finally {
    connection.close();
  }
}

Deno.test("connect: no API key is 401, a bad one 401, an unknown vsn 403, a good one upgrades", async () => {
  assert.deepEqual(await upgrade("?vsn=2.0.0"), {
    status: 401,
    body: { error: "API key is missing" },
  });
  const forged = await signJwt({ role: "anon", exp: 2000000000 }, otherSecret);
  const bad = await upgrade(`?apikey=${forged}&vsn=2.0.0`);
  assert.equal(bad.status, 401);
  assert.equal(typeof (bad.body as { error?: unknown }).error, "string");
  const expired = await upgrade(`?apikey=${await userToken(listener.id, { expiresIn: -5 })}`);
  assert.deepEqual(expired, { status: 401, body: { error: "Token has expired" } });
  assert.deepEqual(await upgrade(`?apikey=${anonKey}&vsn=3.0.0`), { status: 403, body: undefined });
  assert.deepEqual(await upgrade(`?apikey=${anonKey}&vsn=1.0.0`), {
    status: 101,
    body: undefined,
  });
  assert.deepEqual(await upgrade(`?apikey=${anonKey}`), { status: 101, body: undefined });
});

/** A bare WebSocket speaking `vsn`: text frames as parsed JSON, binary ones as realtime-js
 * decodes them. */
const realtimeJs = new serializer.default();

/** A client broadcast as realtime-js puts it on a 2.0.0 socket: a binary kind 3 frame. */
function broadcastPush(
  joinRef: string,
  ref: string,
  topic: string,
  event: string,
  payload: unknown,
) {
  let frame: Uint8Array | undefined;
  realtimeJs.encode(
    {
      join_ref: joinRef,
      ref,
      topic,
      event: "broadcast",
      payload: { type: "broadcast", event, payload },
    },
    (encoded: string | ArrayBuffer) => frame = new Uint8Array(encoded as ArrayBuffer),
  );
  return frame!;
}

async function rawSocket(vsn: "1.0.0" | "2.0.0") {
  const url = `${apiUrl.replace(/^http/, "ws")}/realtime/v1/websocket?apikey=${anonKey}&vsn=${vsn}`;
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const frames: unknown[] = [];
  ws.onmessage = ({ data }) =>
    typeof data === "string" ? frames.push(JSON.parse(data)) : realtimeJs.decode(
      data,
      (frame: unknown) => frames.push(frame),
    );
  const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  return {
    frames,
    closed,
    send: (frame: unknown) =>
      ws.send(
        typeof frame === "string" || frame instanceof Uint8Array ? frame : JSON.stringify(frame),
      ),
    close: async () => {
      ws.close();
      await closed;
    },
  };
}

Deno.test("vsn 1.0.0 on the wire: heartbeat, join, a row, an unmatched push, leave, a bad frame", async () => {
  const raw = await rawSocket("1.0.0");
  try {
    const topic = `raw-v1-${crypto.randomUUID()}`;
    const joinTopic = `realtime:${topic}`;
    raw.send({ topic: "phoenix", event: "heartbeat", payload: {}, ref: "1" });
    raw.send({
      topic: joinTopic,
      event: "phx_join",
      payload: { config: {} },
      ref: "2",
      join_ref: "2",
    });
    await until("two replies", raw.frames, (all) => all.length === 2);
    // The 1.0.0 serializer sends no join_ref.
    assert.deepEqual(raw.frames, [
      { topic: "phoenix", event: "phx_reply", payload: { status: "ok", response: {} }, ref: "1" },
      {
        topic: joinTopic,
        event: "phx_reply",
        payload: { status: "ok", response: { postgres_changes: [] } },
        ref: "2",
      },
    ]);
    await send(topic, "row", { a: 1 }, false);
    await until("the row", raw.frames, (all) => all.length === 3);
    // deno-lint-ignore no-explicit-any -- a frame as it came
    const row = raw.frames[2] as any;
    assert.deepEqual(row, {
      topic: joinTopic,
      event: "broadcast",
      payload: {
        type: "broadcast",
        event: "row",
        payload: { a: 1, id: row.payload.meta.id },
        meta: { id: row.payload.meta.id },
      },
      ref: null,
    });
    raw.send({ topic: "realtime:elsewhere", event: "broadcast", payload: {}, ref: "3" });
    raw.send({ topic: joinTopic, event: "phx_leave", payload: {}, ref: "4", join_ref: "2" });
    await until("three more frames", raw.frames, (all) => all.length === 6);
    assert.deepEqual(raw.frames.slice(3), [
      {
        topic: "realtime:elsewhere",
        event: "phx_reply",
        payload: { status: "error", response: { reason: "unmatched topic" } },
        ref: "3",
      },
      { topic: joinTopic, event: "phx_reply", payload: { status: "ok", response: {} }, ref: "4" },
      { topic: joinTopic, event: "phx_close", payload: {}, ref: "2" },
    ]);
    raw.send(["2", "5", joinTopic, "phx_join", {}]);
    await raw.closed;
  } finally {
    await raw.close();
  }
});

Deno.test("vsn 2.0.0 on the wire: array frames, binary broadcasts both ways, leave, a bad frame", async () => {
  const raw = await rawSocket("2.0.0");
  try {
    const topic = `raw-v2-${crypto.randomUUID()}`;
    const joinTopic = `realtime:${topic}`;
    raw.send([null, "1", "phoenix", "heartbeat", {}]);
    const config = { broadcast: { self: true, ack: true } };
    raw.send(["2", "2", joinTopic, "phx_join", { config }]);
    await until("two replies", raw.frames, (all) => all.length === 2);
    assert.deepEqual(raw.frames, [
      [null, "1", "phoenix", "phx_reply", ok({})],
      ["2", "2", joinTopic, "phx_reply", ok({ postgres_changes: [] })],
    ]);
    await send(topic, "row", { a: "ä" }, false);
    await until("the row", raw.frames, (all) => all.length === 3);
    // A binary kind 4 frame, decoded by realtime-js.
    // deno-lint-ignore no-explicit-any -- a frame as it came
    const row = raw.frames[2] as any;
    assert.deepEqual(row, {
      join_ref: null,
      ref: null,
      topic: joinTopic,
      event: "broadcast",
      payload: {
        type: "broadcast",
        event: "row",
        payload: { a: "ä", id: row.payload.meta?.id },
        meta: { id: row.payload.meta?.id },
      },
    });

    // A kind 3 push marked JSON whose bytes are not JSON is dropped (no reply, no delivery);
    // a good one is delivered (self) and acknowledged.
    const notJson = broadcastPush(
      "2",
      "3",
      joinTopic,
      "bad",
      new TextEncoder().encode("{no").buffer,
    );
    notJson[6] = 1;
    raw.send(notJson);
    raw.send(broadcastPush("2", "4", joinTopic, "good", { b: [1] }));
    await until("the good push and its ack", raw.frames, (all) => all.length === 5);
    assert.deepEqual(raw.frames.slice(3), [
      {
        join_ref: null,
        ref: null,
        topic: joinTopic,
        event: "broadcast",
        payload: { type: "broadcast", event: "good", payload: { b: [1] } },
      },
      ["2", "4", joinTopic, "phx_reply", ok({})],
    ]);

    raw.send(["2", "5", joinTopic, "phx_leave", {}]);
    await until("two more frames", raw.frames, (all) => all.length === 7);
    assert.deepEqual(raw.frames.slice(5), [
      ["2", "5", joinTopic, "phx_reply", ok({})],
      ["2", "2", joinTopic, "phx_close", {}],
    ]);
    // A 1.0.0 object is not a 2.0.0 frame: the socket is dropped.
    raw.send({ topic: joinTopic, event: "phx_join", payload: {}, ref: "4", join_ref: "4" });
    await raw.closed;
  } finally {
    await raw.close();
  }
});

// --- REST broadcast ---------------------------------------------------------------------------

const restUrl = `${apiUrl}/realtime/v1/api/broadcast`;

function restBroadcast(body: unknown, headers: Record<string, string> = {}) {
  return fetch(restUrl, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}`, apikey: anonKey });

Deno.test("REST broadcast: 202 and delivered, meta.id only when an id is given", async () => {
  const client = realtimeClientFor(outsider.token);
  try {
    const topic = `rest-public-${crypto.randomUUID()}`;
    const got = received(await joined(client, topic, { private: false }));
    const response = await restBroadcast({
      messages: [
        { topic, event: "plain", payload: { a: 1 } },
        { topic, event: "with-id", payload: { b: [2] }, id: "client-chosen-id" },
        { topic: `${topic}-elsewhere`, event: "elsewhere", payload: {} },
      ],
    }, bearer(serviceRoleKey));
    assert.equal(response.status, 202);
    assert.equal(await response.text(), "");
    await until("both messages", got, (all) => all.length === 2);
    assert.deepEqual(got, [
      { type: "broadcast", event: "plain", payload: { a: 1 } },
      {
        type: "broadcast",
        event: "with-id",
        payload: { b: [2] },
        meta: { id: "client-chosen-id" },
      },
    ]);

    // The apikey header alone authenticates too.
    const byKey = await restBroadcast(
      { messages: [{ topic, event: "by-apikey", payload: {} }] },
      { apikey: anonKey },
    );
    assert.equal(byKey.status, 202);
    await byKey.body?.cancel();
    await until("the apikey's message", got, (all) => all.length === 3);
    assert.equal(got[2].event, "by-apikey");
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("REST broadcast: a payload keeps a key named __proto__", async () => {
  // z.record rebuilt the payload key by key, which drops __proto__ (it sets the copy's prototype).
  const client = realtimeClientFor(outsider.token);
  try {
    const topic = `rest-proto-${crypto.randomUUID()}`;
    const got = received(await joined(client, topic, { private: false }));
    const payload = JSON.parse('{"__proto__": {"x": 1}, "constructor": 2, "a": 1}');
    const response = await restBroadcast(
      { messages: [{ topic, event: "proto", payload }] },
      bearer(serviceRoleKey),
    );
    assert.equal(response.status, 202);
    await response.body?.cancel();
    await until("the message", got, (all) => all.length === 1);
    assert.deepEqual(got[0].payload, payload);
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("REST broadcast: 401 Unauthorized without a token or with a bad one", async () => {
  const message = { messages: [{ topic: "rest-401", event: "e", payload: {} }] };
  const forged = await signJwt({ role: "service_role", exp: 2000000000 }, otherSecret);
  const attempts: Record<string, string>[] = [
    {},
    { authorization: `Bearer ${forged}` },
    // A bad bearer does not fall back to a good apikey.
    { authorization: `Bearer ${forged}`, apikey: anonKey },
    { authorization: `Bearer ${await userToken(listener.id, { expiresIn: -5 })}` },
    { apikey: "not-a-jwt" },
  ];
  for (const headers of attempts) {
    const response = await restBroadcast(message, headers);
    assert.equal(response.status, 401, JSON.stringify(headers));
    assert.deepEqual(await response.json(), { message: "Unauthorized" });
  }
});

Deno.test("REST broadcast: 422 with Realtime's error shape for bad messages", async () => {
  for (
    const body of [
      "{not json",
      {},
      { messages: [] },
      { messages: [{ topic: "t", event: "e", payload: "not an object" }] },
      { messages: [{ topic: "t", payload: {} }] },
      { messages: [{ topic: "t", event: "e", payload: {} }, { event: "e", payload: {} }] },
    ]
  ) {
    const response = await restBroadcast(body, bearer(serviceRoleKey));
    assert.equal(response.status, 422, JSON.stringify(body));
    const { errors } = await response.json();
    assert.ok(Array.isArray(errors?.messages), JSON.stringify(errors));
    assert.ok(errors.messages.length > 0);
  }
});

Deno.test("REST broadcast: a private message is delivered only from a caller with write rights", async () => {
  const client = realtimeClientFor(dj.token);
  try {
    const topic = `room:${restRoom}:queue`;
    const got = received(await joined(client, topic));
    const message = (event: string) => ({
      messages: [{ topic, event, payload: { event }, private: true }],
    });
    for (
      const [token, event] of [
        [listener.token, "from-listener"],
        [outsider.token, "from-outsider"],
        [anonymousListener.token, "from-anonymous"],
        [anonKey, "from-anon-key"],
      ]
    ) {
      const refused = await restBroadcast(message(event), bearer(token));
      assert.equal(refused.status, 202, "dropped silently");
      await refused.body?.cancel();
    }
    for (const [token, event] of [[host.token, "from-host"], [serviceRoleKey, "from-service"]]) {
      const accepted = await restBroadcast(message(event), bearer(token));
      assert.equal(accepted.status, 202);
      await accepted.body?.cancel();
    }
    await until("the permitted messages", got, (all) => all.length >= 2);
    assert.deepEqual(events(got), ["from-host", "from-service"]);
    // A public message of the same topic does not reach the private channel either.
    const publicOne = await restBroadcast(
      { messages: [{ topic, event: "public", payload: {} }, ...message("last").messages] },
      bearer(serviceRoleKey),
    );
    await publicOne.body?.cancel();
    await until("the last one", got, (all) => all.length >= 3);
    assert.deepEqual(events(got), ["from-host", "from-service", "last"]);
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("REST single endpoint (channel.httpSend): the write check, bytes, 422 for a non-object", async () => {
  const topic = `room:${restRoom}:queue`;
  const [receiver, hostClient, listenerClient] = [dj, host, listener].map((u) =>
    realtimeClientFor(u.token)
  );
  const bytesReceiver = realtimeClientFor(anonKey, { vsn: "2.0.0" });
  try {
    const got = received(await joined(receiver, topic));
    // httpSend needs no subscription; it sends the session's token once the client has it.
    for (const client of [hostClient, listenerClient]) await client.realtime.setAuth();
    const httpSend = (client: SupabaseClient, event: string) =>
      client.channel(topic, { config: { private: true } }).httpSend(event, { event });
    assert.deepEqual(await httpSend(listenerClient, "from-listener"), { success: true });
    assert.deepEqual(await httpSend(hostClient, "from-host"), { success: true });
    await until("the host's message", got, (all) => all.length >= 1);
    assert.deepEqual(got, [{
      type: "broadcast",
      event: "from-host",
      payload: { event: "from-host" },
    }]);

    const publicTopic = `rest-bytes-${crypto.randomUUID()}`;
    const bytesGot = received(await joined(bytesReceiver, publicTopic, { private: false }));
    const bytes = new Uint8Array([1, 2, 3, 0, 255]);
    const sent = await bytesReceiver.channel(publicTopic).httpSend("bytes", bytes.buffer);
    assert.deepEqual(sent, { success: true });
    await until("the bytes", bytesGot, (all) => all.length === 1);
    assert.equal(bytesGot[0].event, "bytes");
    assert.deepEqual(new Uint8Array(bytesGot[0].payload), bytes);

    for (const body of ["[1, 2]", '"text"', "not json"]) {
      const response = await fetch(`${restUrl}/${publicTopic}/events/e`, {
        method: "POST",
        headers: { "content-type": "application/json", ...bearer(serviceRoleKey) },
        body,
      });
      assert.equal(response.status, 422, body);
      assert.ok(Array.isArray((await response.json()).errors?.messages), body);
    }
  } finally {
    await closeRealtime(receiver, hostClient, listenerClient, bytesReceiver);
  }
});

// --- Replay -----------------------------------------------------------------------------------

Deno.test("replay: a private join with config.broadcast.replay gets the newest rows since, oldest first, once", async () => {
  const client = realtimeClientFor(listener.token);
  const outsiderClient = realtimeClientFor(outsider.token);
  const topic = `room:${replayRoom}:queue`;
  try {
    await send(topic, "queue:old", { n: 0 });
    await sleep(20);
    const since = Date.now();
    for (const n of [1, 2, 3]) await send(topic, "queue:item", { n });
    await send(topic, "queue:public", { n: 9 }, false); // not a private row: never replayed

    const channel = await joined(client, topic, {
      private: true,
      broadcast: { replay: { since, limit: 2 } },
    });
    const got = received(channel);
    await until("two replayed rows", got, (all) => all.length === 2);
    assert.deepEqual(got.map((m) => m.payload.n), [2, 3]);
    for (const m of got) {
      assert.equal(m.event, "queue:item");
      assert.equal((m.meta as { replayed?: boolean }).replayed, true);
      assert.match(m.meta!.id, uuidPattern);
    }
    await send(topic, "queue:item", { n: 4 });
    await until("the next row live", got, (all) => all.length === 3);
    assert.equal(got[2].payload.n, 4);
    assert.equal((got[2].meta as { replayed?: boolean }).replayed, undefined);

    // Replay needs the read right like any private join.
    const { status, error } = await subscribe(
      outsiderClient.channel(topic, {
        config: { private: true, broadcast: { replay: { since, limit: 2 } } },
      }),
    );
    assert.equal(status, "CHANNEL_ERROR");
    assert.match(error!.message, /^Unauthorized: /);
  } finally {
    await closeRealtime(client, outsiderClient);
  }
});

Deno.test("replay on a public channel is refused with UnableToReplayMessages", async () => {
  const raw = await rawSocket("1.0.0");
  try {
    const joinTopic = `realtime:replay-${crypto.randomUUID()}`;
    raw.send({
      topic: joinTopic,
      event: "phx_join",
      payload: { config: { broadcast: { replay: { since: 0 } } } },
      ref: "1",
      join_ref: "1",
    });
    await waitFor("the join reply", () => raw.frames.length === 1);
    const [reply] = raw.frames as { payload: { status: string; response: { reason: string } } }[];
    assert.equal(reply.payload.status, "error");
    assert.match(reply.payload.response.reason, /^UnableToReplayMessages: /);
  } finally {
    await raw.close();
  }
});

Deno.test("replay with a since that is no date is refused with UnableToReplayMessages, not answered then lost", async () => {
  // since = 1e300 used to be answered ok, then fail in Postgres (timestamp out of range).
  const client = realtimeClientFor(listener.token);
  try {
    for (const since of [1e300, -1e300, 1.5, "yesterday", 253_402_300_800_000]) {
      const { status, error } = await subscribe(
        client.channel(`room:${replayRoom}:queue`, {
          config: { private: true, broadcast: { replay: { since: since as number } } },
        }),
      );
      assert.equal(status, "CHANNEL_ERROR", String(since));
      assert.equal(error!.message, "UnableToReplayMessages: Replay params are not valid");
      await client.removeAllChannels();
    }
    // The furthest date there is replays nothing, and the channel lives.
    const { status } = await subscribe(
      client.channel(`room:${replayRoom}:queue`, {
        config: { private: true, broadcast: { replay: { since: 253_402_300_799_999 } } },
      }),
    );
    assert.equal(status, "SUBSCRIBED");
  } finally {
    await closeRealtime(client);
  }
});

// --- Input that must not break the stand-in ---------------------------------------------------

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
    const topic = `room:${chatRoom}:chat\u0000`;
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

Deno.test("an event name too long for a binary frame still reaches 2.0.0 and 1.0.0 subscribers", async () => {
  const v2 = realtimeClientFor(anonKey, { vsn: "2.0.0" });
  const v1 = realtimeClientFor(anonKey, { vsn: "1.0.0" });
  const topic = `long-${crypto.randomUUID()}`;
  const event = "e".repeat(300);
  try {
    const got2 = received(await joined(v2, topic, { private: false }));
    const got1 = received(await joined(v1, topic, { private: false }));
    await send(topic, event, { a: 1 }, false);
    const rest = await fetch(`${apiUrl}/realtime/v1/api/broadcast`, {
      method: "POST",
      headers: { apikey: anonKey, "content-type": "application/json" },
      body: JSON.stringify({
        messages: [{ topic, event: "e", payload: { b: 2 }, id: "x".repeat(300) }],
      }),
    });
    assert.equal(rest.status, 202);
    await rest.body?.cancel();
    for (const got of [got2, got1]) {
      await until("the row and the REST message", got, (all) => all.length === 2);
      assert.deepEqual(got.map((m) => m.event).sort(), ["e", event].sort());
    }
    // The gateway is still serving.
    const health = await fetch(`${apiUrl}/functions/v1/health`, {
      headers: { authorization: `Bearer ${anonKey}` },
    });
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await closeRealtime(v2, v1);
  }
});

Deno.test("presence keys named like Object.prototype members work", async () => {
  const first = realtimeClientFor();
  const second = realtimeClientFor();
  const topic = `keys-${crypto.randomUUID()}`;
  try {
    for (const key of ["toString", "__proto__", "constructor"]) {
      const channel = await joined(first, `${topic}-${key}`, {
        private: false,
        presence: { key, enabled: true },
      });
      assert.equal(await channel.track({ key }), "ok");
      const watcher = await joined(second, `${topic}-${key}`, {
        private: false,
        presence: { key: "watcher", enabled: true },
      });
      await waitFor(
        `presence_state with the key ${key}`,
        () => Object.hasOwn(watcher.presenceState(), key),
      );
    }
  } finally {
    await closeRealtime(first, second);
  }
});

Deno.test("malformed HTTP to /realtime/v1 gets a 4xx, never a 5xx", async () => {
  const badPath = await fetch(`${apiUrl}/realtime/v1/api/broadcast/%E0%A4%A/events/e`, {
    method: "POST",
    headers: { apikey: anonKey, "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(badPath.status, 422);
  assert.ok((await badPath.json()).errors.messages.length > 0);
  // Upgrade: websocket without the rest of the handshake.
  const halfUpgrade = await fetch(
    `${apiUrl}/realtime/v1/websocket?apikey=${anonKey}&vsn=2.0.0`,
    { headers: { upgrade: "websocket" } },
  );
  assert.equal(halfUpgrade.status, 400);
  await halfUpgrade.body?.cancel();
  const preflight = await fetch(`${apiUrl}/realtime/v1/api/broadcast`, { method: "OPTIONS" });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
  await preflight.body?.cancel();
});
