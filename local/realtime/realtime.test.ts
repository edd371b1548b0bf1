// The project's channels end to end through the test stack's gateway: what the functions commit
// with realtime.send (chat-send's batches, playback's states, the presence function's member
// events) reaches the real supabase-js client on the private channels the app joins, read from
// the WAL by the local Realtime stand-in. The stand-in itself is tested beside its modules:
// authorization, connection (the wire), tokens, broadcast and presence handlers, replay, REST
// broadcast, server.
import assert from "node:assert/strict";
import { closeRealtime, invoke, realtimeClientFor, withDb } from "../test-helpers.ts";
import { castWithRooms, events, joined, received, until, uuidPattern } from "./testing.ts";

const { host, listener, rooms } = await castWithRooms(3);
const [chatRoom, playbackRoom, memberEventsRoom] = rooms;
const [song] = await withDb((sql) =>
  sql`insert into public.songs (title, artist, duration_ms)
      values ('Realtime Song', 'Artist', 180000) returning id`
);

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
