// Unit tests of the registry (hub.ts) with stand-in subscribers: who a broadcast reaches, and
// where presence changes go.
import assert from "node:assert/strict";
import { Hub, type Subscriber } from "./hub.ts";
import type { PresenceDiff } from "./presence.ts";
import type { OutgoingBroadcast } from "./protocol.ts";

/** A subscriber that keeps what it is sent. */
function subscriber(topic: string, isPrivate: boolean, presenceKey: string = crypto.randomUUID()) {
  const delivered: OutgoingBroadcast[] = [];
  const diffs: PresenceDiff[] = [];
  const channel: Subscriber = {
    topic,
    isPrivate,
    presenceKey,
    deliver: (broadcast) => delivered.push(broadcast),
    pushPresenceDiff: (diff) => diffs.push(diff),
  };
  return { channel, delivered, diffs };
}

const payload = { json: "{}" };

Deno.test("Hub: a broadcast reaches its topic's subscribers, private and public apart, all but the one excepted", () => {
  const hub = new Hub();
  const [sender, reader, publicReader, elsewhere] = [
    subscriber("room", true),
    subscriber("room", true),
    subscriber("room", false),
    subscriber("other", true),
  ];
  for (const { channel } of [sender, reader, publicReader, elsewhere]) hub.subscribe(channel);

  hub.broadcast({ topic: "room", isPrivate: true, event: "e", payload, except: sender.channel });
  assert.equal(sender.delivered.length, 0, "the excepted sender");
  assert.equal(publicReader.delivered.length, 0, "the public channel of the topic");
  assert.equal(elsewhere.delivered.length, 0, "another topic");
  const [outgoing] = reader.delivered;
  assert.equal(reader.delivered.length, 1);
  assert.deepEqual([outgoing.joinTopic, outgoing.event, outgoing.meta], [
    "realtime:room",
    "e",
    undefined,
  ]);

  hub.broadcast({ topic: "room", isPrivate: false, event: "p", payload, meta: { id: "1" } });
  assert.deepEqual(publicReader.delivered.map((b) => [b.event, b.meta]), [["p", { id: "1" }]]);
  assert.equal(reader.delivered.length, 1);

  hub.unsubscribe(reader.channel);
  hub.broadcast({ topic: "room", isPrivate: true, event: "after", payload });
  assert.equal(reader.delivered.length, 1, "unsubscribed");
  assert.deepEqual(sender.delivered.map((b) => b.event), ["after"]);
});

Deno.test("Hub: presence diffs go to the topic's subscribers; leaving untracks", () => {
  const hub = new Hub();
  const [tracker, watcher, publicWatcher] = [
    subscriber("room", true, "user-1"),
    subscriber("room", true),
    subscriber("room", false),
  ];
  for (const { channel } of [tracker, watcher, publicWatcher]) hub.subscribe(channel);

  hub.track(tracker.channel, { name: "Ana" });
  assert.equal(tracker.diffs.length, 1, "the tracker too");
  assert.deepEqual(watcher.diffs, tracker.diffs);
  const [meta] = watcher.diffs[0].joins["user-1"].metas;
  assert.equal(meta.name, "Ana");
  assert.deepEqual(publicWatcher.diffs, [], "public presence is another topic's");
  const state = hub.presenceState(watcher.channel);
  assert.deepEqual(Object.keys(state), ["user-1"]);
  assert.deepEqual(state["user-1"], { metas: [meta] });
  assert.deepEqual(Object.keys(hub.presenceState(publicWatcher.channel)), []);

  hub.unsubscribe(tracker.channel);
  const [, leave] = watcher.diffs;
  assert.deepEqual(Object.keys(leave.joins), []);
  assert.deepEqual(leave.leaves["user-1"], { metas: [meta] });
  assert.deepEqual(Object.keys(hub.presenceState(watcher.channel)), []);
});
