// Chat continuity by seq and presence by version, with a fake history / presence endpoint:
// the merge rules of a late join and of a catch-up, without the network.
import assert from "node:assert/strict";
import { RoomChat } from "./chat.ts";
import { ServerClock } from "./clock.ts";
import type { FunctionsHttp } from "./http.ts";
import { Outbox } from "./outbox.ts";
import { RoomPresence } from "./presence.ts";
import { answer, errorAnswer, fakeFunctionsHttp, type Responder } from "./testing/fake_fetch.ts";
import { FakeTimers } from "./testing/fake_timers.ts";
import type { Member, Message } from "./types.ts";

const roomId = "4f9c7c3e-0000-4000-8000-000000000003";

function message(seq: number): Message {
  return {
    id: 1000 + seq,
    seq,
    room_id: roomId,
    user_id: "u",
    client_id: `c${seq}`,
    body: `message ${seq}`,
    created_at: new Date(0).toISOString(),
  };
}
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => message(from + i));

/** The room's chat as history serves it: seq 1..`last` (`missing` never went out). */
function historyOf(last: () => number, missing = new Set<number>()): Responder {
  return (request) => {
    const after = Number(request.url.searchParams.get("after_seq"));
    const limit = Number(request.url.searchParams.get("limit"));
    const items = range(after + 1, Math.min(last(), after + limit))
      .filter((m) => !missing.has(m.seq))
      .map((m) => ({ id: m.id, event: "chat:message", data: m, timestamp: 0 }));
    const more = after + limit < last();
    return answer(200, {
      channel: `room:${roomId}:chat`,
      items,
      next_cursor: more ? "next" : null,
    });
  };
}

function setup(respond: Responder) {
  const timers = new FakeTimers();
  const { http, requests } = fakeFunctionsHttp(respond, timers);
  const outbox = new Outbox({ timers, send: () => Promise.resolve([]) });
  const chat = new RoomChat({ roomId, http, outbox, timers, pageSize: 3 });
  const events: [number[], string][] = [];
  chat.on("messages", (added, { source }) => events.push([added.map((m) => m.seq), source]));
  return { timers, requests, chat, events, http };
}

const seqs = (chat: RoomChat) => chat.messages.map((m) => m.seq);

Deno.test("chat: a late join keeps the snapshot and only the newer live messages", () => {
  const { chat, events, requests } = setup(historyOf(() => 12));
  chat.receive(range(9, 11)); // arrived while room-context was read
  chat.receive(range(12, 12));
  chat.loadSnapshot(range(1, 10));
  assert.deepEqual(seqs(chat), range(1, 12).map((m) => m.seq));
  assert.deepEqual(events, [[range(1, 10).map((m) => m.seq), "snapshot"], [[11, 12], "live"]]);
  assert.equal(requests.length, 0, "no gap, no history read");
});

Deno.test("chat: a seq gap is filled from history?after_seq=, in pages, and each message once", async () => {
  let last = 5;
  const { chat, events, requests, timers } = setup(historyOf(() => last));
  chat.loadSnapshot(range(1, 5));
  last = 12;
  chat.receive([message(11), message(12)]); // 6..10 were missed
  assert.deepEqual(seqs(chat), [1, 2, 3, 4, 5], "what is ahead of the gap waits");
  assert.ok(chat.catchingUp);
  await timers.advance(0);
  assert.deepEqual(seqs(chat), range(1, 12).map((m) => m.seq));
  assert.deepEqual(
    requests.map((r) => r.url.searchParams.get("after_seq")),
    ["5", "8", "12"],
    "pages of 3 from the last seq held, until history says there is no more",
  );
  assert.equal(requests[0].url.searchParams.get("channel"), `room:${roomId}:chat`);
  chat.receive([message(12), message(11)]); // late duplicates
  assert.deepEqual(seqs(chat), range(1, 12).map((m) => m.seq));
  assert.deepEqual(events.slice(1).map(([s, source]) => `${s}:${source}`), [
    "6,7,8:backfill",
    "9,10,11,12:backfill",
  ]);
  assert.ok(!chat.catchingUp);
});

Deno.test("chat: catchUp after a reconnect reads what went out meanwhile", async () => {
  let last = 3;
  const { chat, timers } = setup(historyOf(() => last));
  chat.loadSnapshot(range(1, 3));
  last = 7; // sent while the socket was down
  await chat.catchUp();
  await timers.advance(0);
  assert.deepEqual(seqs(chat), range(1, 7).map((m) => m.seq));
});

Deno.test("chat: a seq that never went out does not stall the chat", async () => {
  const { chat, timers } = setup(historyOf(() => 6, new Set([4])));
  chat.loadSnapshot(range(1, 3));
  chat.receive([message(5), message(6)]);
  await timers.advance(0);
  assert.deepEqual(seqs(chat), [1, 2, 3, 5, 6]);
});

Deno.test("chat: catch-up failures are retried with backoff; a refusal is an error event", async () => {
  let calls = 0;
  const { chat, timers } = setup((r) => {
    calls++;
    if (calls <= 2) return errorAnswer(503, "unavailable");
    return historyOf(() => 4)(r, calls);
  });
  chat.loadSnapshot(range(1, 2));
  chat.receive([message(4)]);
  await timers.advance(999);
  assert.equal(calls, 1);
  await timers.advance(2001);
  assert.deepEqual(seqs(chat), [1, 2, 3, 4]);

  const refused = setup(() => errorAnswer(403, "not_a_member"));
  const errors: string[] = [];
  refused.chat.on("error", (e) => errors.push(e.code));
  refused.chat.loadSnapshot(range(1, 2));
  refused.chat.receive([message(4)]);
  await refused.timers.advance(0);
  assert.deepEqual(errors, ["not_a_member"]);
});

Deno.test("chat: loadOlder prepends the messages before the oldest held", async () => {
  const { chat, events, requests, timers } = setup(historyOf(() => 100));
  chat.loadSnapshot(range(51, 100));
  const older = await chat.loadOlder(20);
  await timers.advance(0);
  assert.deepEqual(older.map((m) => m.seq), range(31, 50).map((m) => m.seq));
  assert.deepEqual(seqs(chat), range(31, 100).map((m) => m.seq));
  assert.equal(requests.at(-1)!.url.searchParams.get("after_seq"), "30");
  assert.deepEqual(events.at(-1)?.[1], "older");
  await chat.loadOlder(100);
  assert.equal(chat.messages[0].seq, 1);
  assert.deepEqual(await chat.loadOlder(), []);
});

/** The room's presence, kept from snapshots and events only (no join of its own). */
function presenceOf(http: FunctionsHttp, timers: FakeTimers): RoomPresence {
  return new RoomPresence({
    roomId,
    http,
    clock: new ServerClock({ now: () => timers.now() }),
    timers,
    enabled: false,
  });
}

function member(user_id: string, is_host = false): Member {
  return { user_id, info: {}, is_host, connections: 1, last_active: new Date(0).toISOString() };
}

Deno.test("presence: events apply after the snapshot by version; a skipped version reads it again", async () => {
  let snapshot = {
    type: "detailed" as const,
    version: 7,
    total: 3,
    members: [member("a", true), member("b"), member("c")],
  };
  const { http, timers, requests } = setup(() => answer(200, snapshot));
  const presence = presenceOf(http, timers);
  const log: string[] = [];
  presence.on("member_added", (m) => log.push(`+${m.user_id}`));
  presence.on("member_removed", (m) => log.push(`-${m.user_id}`));
  presence.on("sync", (m) => log.push(`sync ${m.version}`));
  // Arrived during the join: 5 is older than the snapshot, 6 is in it, 8 follows it.
  presence.receive("presence:member_removed", { user_id: "x", total: 2, version: 5 });
  presence.receive("presence:member_added", { user_id: "c", total: 3, version: 6 });
  presence.receive("presence:member_added", { user_id: "d", info: { n: 1 }, total: 4, version: 8 });
  presence.loadSnapshot({
    type: "detailed",
    version: 7,
    total: 3,
    members: [member("a", true), member("b"), member("c")],
  });
  assert.deepEqual(log, ["sync 7", "+d"]);
  assert.equal(presence.members?.count, 4);
  assert.deepEqual(presence.members?.list.map((m) => m.user_id), ["a", "b", "c", "d"]);
  assert.deepEqual(presence.members?.hosts.map((m) => m.user_id), ["a"]);
  presence.receive("presence:member_removed", { user_id: "b", total: 3, version: 9 });
  presence.receive("presence:member_removed", { user_id: "b", total: 3, version: 9 }); // again
  assert.deepEqual(presence.members?.list.map((m) => m.user_id), ["a", "c", "d"]);
  // Version 10 is missed: 11 makes it read the snapshot again.
  snapshot = { type: "detailed", version: 11, total: 2, members: [member("a", true), member("e")] };
  presence.receive("presence:member_added", { user_id: "e", total: 3, version: 11 });
  await timers.advance(0);
  assert.equal(requests.at(-1)!.url.searchParams.get("room_id"), roomId);
  assert.deepEqual(log.slice(2), ["-b", "sync 11"]);
  assert.equal(presence.members?.count, 2);
  assert.deepEqual(presence.members?.list.map((m) => m.user_id), ["a", "e"]);
  // An older snapshot (a slow read) does not go back.
  presence.loadSnapshot({ type: "detailed", version: 10, total: 9, members: [] });
  assert.equal(presence.members?.version, 11);
});

Deno.test("presence: above 100 users the summary's count follows the events", () => {
  const { http, timers } = setup(() => answer(200, {}));
  const presence = presenceOf(http, timers);
  presence.loadSnapshot({
    type: "summary",
    version: 300,
    total: 150,
    sample: [member("h", true), member("s1")],
    hosts: [member("h", true)],
    recently_active: 140,
  });
  assert.equal(presence.members?.type, "summary");
  assert.equal(presence.members?.count, 150);
  assert.equal(presence.members?.recentlyActive, 140);
  presence.receive("presence:member_added", { user_id: "n", total: 151, version: 301 });
  presence.receive("presence:member_removed", { user_id: "s1", total: 150, version: 302 });
  assert.equal(presence.members?.count, 150);
  assert.deepEqual(presence.members?.list.map((m) => m.user_id), ["n", "h"]);
});
