// Presence end to end through the test stack's gateway with supabase-js (presence-handler.ts,
// with presence.ts and the registry's fan-out): track and untrack, presence_state and
// presence_diff, two tabs of one user, a socket that goes away; on private room channels the
// project's RLS decides who may track, at the track for a channel joined without presence.
import assert from "node:assert/strict";
import type { RealtimeChannel } from "npm:@supabase/supabase-js@2.119.1";
import { closeRealtime, realtimeClientFor } from "../test-helpers.ts";
import { castWithRooms, joined, until, waitFor } from "./testing.ts";

const { host, listener, outsider, rooms } = await castWithRooms(2);
const [presenceRoom, lazyTrackRoom] = rooms;

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
