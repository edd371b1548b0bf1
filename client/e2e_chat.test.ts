// End to end against the test stack with the real supabase-js and the local Realtime: chat
// continuity (CLIENT.md guarantees 1–4). Each test uses rooms of its own; a "tab" is one
// supabase-js client with one RoomsClient, as one browser tab would have.
import assert from "node:assert/strict";
import { createCast, createRoom, createUser, fixtureDb, withDb } from "../local/test-helpers.ts";
import type { Room } from "./mod.ts";
import {
  assertContiguous,
  seedChat,
  shortToken,
  sleep,
  storedChat,
  until,
  withTabs,
} from "./testing/e2e.ts";

const setup = fixtureDb();
const { host, listener, dj: sender } = await createCast(setup);
const members = [listener, sender];
const rooms: Record<string, string> = {};
for (
  const name of [
    "lateJoin",
    "socketDrop",
    "wake",
    "tokenExpiry",
    "tokenRefresh",
    "lost",
    "burst",
    "offline",
  ]
) {
  rooms[name] = await createRoom(setup, host, members);
}
const outsider = await createUser(setup);
await setup.end();

/** Sends one message every `everyMs` from `room` until stopped; returns what it handed over. */
function keepSending(room: Room, everyMs: number, prefix: string) {
  const sent: string[] = [];
  let running = true;
  const done = (async () => {
    for (let i = 0; running; i++) {
      sent.push(room.chat.send(`${prefix} ${i}`).client_id);
      await sleep(everyMs);
    }
  })();
  return {
    sent,
    async stop() {
      running = false;
      await done;
      await Promise.all(room.chat.pending.map((p) => p.done));
    },
  };
}

/** Waits until every stored message has gone out, then until `room` holds them all. */
async function caughtUp(room: Room, from: number): Promise<number> {
  for (let waited = 0; (await unsentCount(room.id)) > 0; waited += 50) {
    assert.ok(waited < 5000, "stored messages still wait to go out after 5 s");
    await sleep(50);
  }
  const stored = await storedChat(room.id);
  const last = stored.at(-1)!.seq;
  await until(
    `the room holds seq ${from}..${last}`,
    () => room.chat.lastSeq >= last,
    10_000,
    () => ({ lastSeq: room.chat.lastSeq, state: room.state }),
  );
  return last;
}

function unsentCount(room: string): Promise<number> {
  return withDb(async (sql) => {
    const [{ n }] = await sql`select count(*)::int as n from public.messages
                              where room_id = ${room} and seq is null`;
    return n;
  });
}

Deno.test("late join while another user sends: the snapshot and the live messages, no gap, no duplicate", async () => {
  const room = rooms.lateJoin;
  await seedChat(room, sender, 60); // more than the snapshot's 50
  await withTabs([sender, listener], async ([senderTab, late]) => {
    const senderRoom = await senderTab.rooms.join(room, { presence: false });
    const sending = keepSending(senderRoom, 40, "during join");
    await sleep(300);
    // Joins while messages keep going out. Its room-context answer takes 600 ms to come back:
    // what goes out meanwhile arrives live before the snapshot and is not in it.
    late.net.slowAnswer = (name) => (name === "room-context" ? 600 : 0);
    const lateRoom = await late.rooms.join(room);
    const contextCall = late.net.calls.find((c) => c.name === "room-context")!;
    const snapshotLast = (contextCall.response.chat as { seq: number }[]).at(-1)!.seq;
    const heldAtJoin = lateRoom.chat.lastSeq;
    const historyReadsAtJoin = late.net.calls.filter((c) => c.name === "history").length;
    const sources: string[] = [];
    const seen: number[] = [];
    lateRoom.chat.on("messages", (added, { source }) => {
      sources.push(source);
      seen.push(...added.map((m) => m.seq));
    });
    await sleep(700);
    await sending.stop();
    const snapshotFirst = lateRoom.chat.messages[0].seq;
    const last = await caughtUp(lateRoom, snapshotFirst);
    assert.ok(snapshotFirst <= 61, `the snapshot reaches back to seq ${snapshotFirst}`);
    assertContiguous(lateRoom.chat.messages, snapshotFirst, last, "the late joiner's chat");
    // What was emitted after the join: each seq once, ascending.
    assert.deepEqual(seen, [...new Set(seen)].sort((a, b) => a - b));
    assert.ok(sources.includes("live"), `sources: ${sources}`);
    assert.ok(heldAtJoin > snapshotLast, `merged at join: ${snapshotLast} → ${heldAtJoin}`);
    assert.equal(historyReadsAtJoin, 0, "what arrived during the join came from the channel");
    // The messages are the stored ones.
    const stored = await storedChat(room);
    assert.deepEqual(
      lateRoom.chat.messages.map((m) => [m.seq, m.id, m.client_id]),
      stored.filter((m) => m.seq >= snapshotFirst).map((m) => [m.seq, m.id, m.client_id]),
    );
    assert.ok(sending.sent.length >= 20, `${sending.sent.length} sent`);
    assert.equal(lateRoom.state, "live");
  });
});

Deno.test("the listener's socket dropped and restored while someone sends: every message once, in seq order", async () => {
  const room = rooms.socketDrop;
  await withTabs([sender, listener], async ([senderTab, listenerTab]) => {
    const senderRoom = await senderTab.rooms.join(room, { presence: false });
    const listenerRoom = await listenerTab.rooms.join(room);
    const states: string[] = [];
    listenerRoom.on("state", (state) => states.push(state));
    const sending = keepSending(senderRoom, 50, "across a drop");
    await sleep(400);
    // The network drops the socket (not a clean disconnect: realtime-js reconnects by itself).
    const socket = (listenerTab.supabase.realtime as unknown as {
      socketAdapter: { getSocket(): { conn: WebSocket | null } };
    }).socketAdapter.getSocket();
    socket.conn?.close();
    await until("the room notices", () => listenerRoom.state === "offline", 3000);
    await sleep(1500);
    await until("rejoined", () => listenerRoom.state === "live", 10_000, () => states);
    await sleep(300);
    await sending.stop();
    const last = await caughtUp(listenerRoom, 1);
    assertContiguous(listenerRoom.chat.messages, 1, last, "the listener's chat");
    assert.ok(states.includes("catching_up"), `states: ${states}`);
    assert.equal(states.at(-1), "live");
    assert.equal(listenerRoom.chat.messages.length, (await storedChat(room)).length);
  });
});

Deno.test("a page that slept (socket closed, timers stopped) catches up when it wakes", async () => {
  const room = rooms.wake;
  await withTabs([sender, listener], async ([senderTab, listenerTab]) => {
    const senderRoom = await senderTab.rooms.join(room, { presence: false });
    const listenerRoom = await listenerTab.rooms.join(room, { presence: false });
    senderRoom.chat.send("before the sleep");
    await until("the first message", () => listenerRoom.chat.messages.length === 1);
    // The page is frozen: its socket closes cleanly and nothing reconnects it.
    await listenerTab.supabase.realtime.disconnect();
    await until("offline", () => listenerRoom.state === "offline");
    for (let i = 0; i < 5; i++) senderRoom.chat.send(`while asleep ${i}`);
    await Promise.all(senderRoom.chat.pending.map((p) => p.done));
    await sleep(500);
    assert.equal(listenerRoom.chat.messages.length, 1, "nothing arrives while asleep");
    // The page wakes (here: the browser's `online` event).
    listenerTab.window.dispatchEvent(new Event("online"));
    const last = await caughtUp(listenerRoom, 1);
    assert.equal(last, 6);
    assertContiguous(listenerRoom.chat.messages, 1, 6, "after the wake");
    await until("live", () => listenerRoom.state === "live");
  });
});

Deno.test("a channel closed for an expired token is rejoined with a fresh one, without losing messages", async () => {
  const room = rooms.tokenExpiry;
  await withTabs([sender, listener], async ([senderTab, listenerTab]) => {
    // The session's token expires in 3 s and the app cannot refresh it (offline, asleep).
    listenerTab.token = await shortToken(listener, 3);
    const senderRoom = await senderTab.rooms.join(room, { presence: false });
    const listenerRoom = await listenerTab.rooms.join(room, { presence: false });
    const states: string[] = [];
    listenerRoom.on("state", (state) => states.push(state));
    await until("Realtime closes the channels", () => listenerRoom.state === "offline", 8000);
    // Sent while the channels are closed.
    for (let i = 0; i < 4; i++) senderRoom.chat.send(`while closed ${i}`);
    await Promise.all(senderRoom.chat.pending.map((p) => p.done));
    await sleep(1500); // rejoins with the expired token are refused meanwhile
    assert.equal(listenerRoom.state, "offline");
    // The session gets a fresh token: the next rejoin takes it.
    listenerTab.token = listener.token;
    await until("rejoined", () => listenerRoom.state === "live", 15_000, () => states);
    senderRoom.chat.send("after the rejoin");
    await Promise.all(senderRoom.chat.pending.map((p) => p.done));
    const last = await caughtUp(listenerRoom, 1);
    assertContiguous(listenerRoom.chat.messages, 1, last, "across the expiry");
    assert.equal(last, 5);
    assert.equal(listenerTab.supabase.realtime.accessTokenValue, listener.token);
  });
});

Deno.test("a token refreshed before it expires reaches Realtime in time: the channels never close", async () => {
  const room = rooms.tokenRefresh;
  await withTabs([listener], async ([listenerTab]) => {
    const expiring = await shortToken(listener, 4);
    listenerTab.token = expiring;
    const listenerRoom = await listenerTab.rooms.join(room, { presence: false });
    const states: string[] = [];
    listenerRoom.on("state", (state) => states.push(state));
    // The app's auth refreshes the session a second later (as supabase.auth does before exp).
    await sleep(1000);
    listenerTab.token = await shortToken(listener, 3600);
    await sleep(5000); // past the first token's exp
    assert.deepEqual(states, [], "no channel went down");
    assert.equal(listenerRoom.state, "live");
    assert.notEqual(listenerTab.supabase.realtime.accessTokenValue, expiring);
  });
});

Deno.test("a chat-send whose answer is lost after the commit: one stored message, the retry answers duplicate", async () => {
  const room = rooms.lost;
  let lost = 0;
  await withTabs([sender], async ([tab]) => {
    tab.net.intercept = (name) => (name === "chat-send" && lost++ === 0 ? "lose" : undefined);
    const joined = await tab.rooms.join(room, { presence: false });
    const message = joined.chat.send("exactly once");
    const id = await message.done;
    const sends = tab.net.calls.filter((c) => c.name === "chat-send");
    assert.equal(sends.length, 2, "the lost answer made it retry");
    assert.equal(sends[0].status, 202, "the first request was stored");
    assert.equal(sends[0].request.messages[0].client_id, message.client_id);
    assert.equal(sends[1].request.messages[0].client_id, message.client_id);
    assert.equal(sends[1].response.accepted[0].duplicate, true);
    assert.equal(sends[1].response.accepted[0].id, id);
    assert.ok(sends[1].at - sends[0].at >= 900, "after the first backoff step");
    const rows = await withDb((sql) =>
      sql`select id from public.messages where room_id = ${room} and client_id = ${message.client_id}`
    );
    assert.deepEqual(rows.map((r) => Number(r.id)), [id]);
    await until("it goes out once", () => joined.chat.messages.length === 1);
    await sleep(300);
    assert.deepEqual(joined.chat.messages.map((m) => m.id), [id]);
  });
});

Deno.test("a 429 burst: 120 messages at once are all sent, in order, after Retry-After", async () => {
  const room = rooms.burst;
  await withTabs([sender], async ([tab]) => {
    const joined = await tab.rooms.join(room, { presence: false });
    const sent = Array.from({ length: 120 }, (_, i) => joined.chat.send(`burst ${i}`));
    const ids = await Promise.all(sent.map((m) => m.done));
    const calls = tab.net.calls.filter((c) => c.name === "chat-send");
    const limited = calls.filter((c) => c.status === 429);
    assert.ok(limited.length >= 1, `429s: ${calls.map((c) => c.status)}`);
    for (const call of limited) {
      const next = calls[calls.indexOf(call) + 1];
      assert.deepEqual(next.request.messages, call.request.messages, "the same messages again");
    }
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "stored in the order sent");
    const last = await caughtUp(joined, 1);
    assert.equal(last, 120);
    assert.deepEqual(joined.chat.messages.map((m) => m.client_id), sent.map((m) => m.client_id));
    assert.deepEqual(joined.chat.pending, []);
  });
});

Deno.test("offline: sends queue in order and leave when the network is back", async () => {
  const room = rooms.offline;
  await withTabs([sender], async ([tab]) => {
    const joined = await tab.rooms.join(room, { presence: false });
    tab.net.offline = (name) => name === "chat-send";
    const queued = ["uno", "dos", "tres"].map((body) => joined.chat.send(body));
    await sleep(1500); // a try and a retry, both failing
    assert.ok(tab.net.calls.filter((c) => c.name === "chat-send").length >= 2);
    assert.deepEqual(queued.map((m) => m.status), ["queued", "queued", "queued"]);
    assert.deepEqual(joined.chat.pending.map((m) => m.body), ["uno", "dos", "tres"]);
    tab.net.offline = false;
    tab.window.dispatchEvent(new Event("online"));
    const ids = await Promise.all(queued.map((m) => m.done));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    await caughtUp(joined, 1);
    assert.deepEqual(joined.chat.messages.map((m) => m.body), ["uno", "dos", "tres"]);
    const sends = tab.net.calls.filter((c) => c.name === "chat-send" && c.status === 202);
    assert.equal(sends.length, 1, "one request once back");
  });
});

Deno.test("join refusal: a non-member's channels are refused, the join rejects with not_a_member", async () => {
  await withTabs([outsider], async ([tab]) => {
    await assert.rejects(
      tab.rooms.join(rooms.lateJoin),
      (e: unknown) => (e as { code?: string }).code === "not_a_member",
    );
    assert.equal(tab.supabase.realtime.getChannels().length, 0, "no channel left behind");
  });
});
