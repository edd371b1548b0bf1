// End to end against the test stack with the real supabase-js and the local Realtime: presence
// (CLIENT.md guarantee 8), the host's reports and the listeners' playback (5–7), the queue, and
// leaving. A "tab" is one supabase-js client with one RoomsClient.
import assert from "node:assert/strict";
import { createCast, createRoom, fixtureDb, withDb } from "../local/test-helpers.ts";
import type { Member, Player, Room } from "./mod.ts";
import { sleep, until, withTabs } from "./testing/e2e.ts";

const setup = fixtureDb();
const { host, listener, dj } = await createCast(setup);
const members = [listener, [dj, "dj"] as [typeof dj, "dj"]];
const rooms: Record<string, string> = {};
for (const name of ["twoTabs", "expiry", "pageHide", "host", "queue", "leave"]) {
  rooms[name] = await createRoom(setup, host, members);
}
const [songA, songB] = await setup`insert into public.songs (title, artist, duration_ms)
                                   values ('Song A', 'Artist', 200000), ('Song B', 'Artist', 200000)
                                   returning id`;
await setup.end();

const userIds = (room: Room) => room.presence.members?.list.map((m) => m.user_id).sort() ?? [];

/** Records the presence events a room sees. */
function presenceLog(room: Room) {
  const log: string[] = [];
  room.presence.on("member_added", (m) => log.push(`+${m.user_id}`));
  room.presence.on("member_removed", (m) => log.push(`-${m.user_id}`));
  return log;
}

Deno.test("two joins of one user (two tabs): one member, counted once everywhere; gone with the last tab", async () => {
  const room = rooms.twoTabs;
  await withTabs([host, listener, listener], async ([hostTab, tab1, tab2]) => {
    const watcher = await hostTab.rooms.join(room, { presence: { info: { name: "Host" } } });
    const log = presenceLog(watcher);
    const first = await tab1.rooms.join(room, { presence: { info: { name: "Lucía" } } });
    const second = await tab2.rooms.join(room, { presence: { info: { name: "Lucía" } } });
    assert.notEqual(
      first.presence.connectionId,
      second.presence.connectionId,
      "one connection per join",
    );
    await until("the host sees the listener", () => watcher.presence.members?.count === 2);
    await sleep(500);
    assert.deepEqual(log, [`+${listener.id}`], "member_added once, not once per tab");
    for (const r of [watcher, first, second]) {
      assert.equal(r.presence.members?.count, 2);
      assert.deepEqual(userIds(r), [host.id, listener.id].sort());
    }
    assert.equal(second.presence.me?.user_id, listener.id);
    assert.deepEqual(second.presence.me?.info, { name: "Lucía" });
    await watcher.presence.refresh();
    const entry = watcher.presence.members!.list.find((m: Member) => m.user_id === listener.id)!;
    assert.equal(entry.connections, 2);

    await first.leave();
    assert.equal(first.state, "left");
    await sleep(500);
    assert.deepEqual(log, [`+${listener.id}`], "one tab left: still here");
    assert.equal(watcher.presence.members?.count, 2);
    assert.ok(
      tab1.net.calls.some((c) =>
        c.name === "presence" && c.request.action === "leave" && c.keepalive
      ),
    );

    await second.leave();
    await until("the last tab left", () => watcher.presence.members?.count === 1);
    assert.deepEqual(log, [`+${listener.id}`, `-${listener.id}`]);
    assert.deepEqual(userIds(watcher), [host.id]);
  });
});

Deno.test("a silent connection expires (member_removed); its heartbeat then gets 404 and joins again", async () => {
  const room = rooms.expiry;
  // A tab whose heartbeat does not come (a frozen page): only the first quick ones.
  await withTabs([host, [listener, { heartbeatMs: 600_000 }]], async ([hostTab, silentTab]) => {
    const watcher = await hostTab.rooms.join(room);
    const log = presenceLog(watcher);
    const silent = await silentTab.rooms.join(room);
    await until("joined", () => watcher.presence.members?.count === 2);
    await sleep(2500); // the first quick heartbeats (clock samples) are done
    const heartbeats = silentTab.net.calls.filter((c) => c.request.action === "heartbeat").length;
    // 60 s without a heartbeat, without waiting them: its last sign of life moves back, then the
    // sweep that pg_cron runs every minute.
    const dropped = await withDb(async (sql) => {
      await sql`update private.presence_connections set last_seen_at = now() - interval '61 seconds'
                where room_id = ${room} and user_id = ${listener.id}`;
      const [{ n }] = await sql`select private.expire_presence(${room}) as n`;
      return n;
    });
    assert.equal(dropped, 1);
    await until("the host sees it leave", () => watcher.presence.members?.count === 1);
    assert.deepEqual(log, [`+${listener.id}`, `-${listener.id}`]);
    assert.equal(
      silentTab.net.calls.filter((c) => c.request.action === "heartbeat").length,
      heartbeats,
    );

    // The page comes back: a heartbeat now, answered 404, so it joins again.
    silentTab.window.dispatchEvent(new Event("online"));
    await until("back", () => watcher.presence.members?.count === 2);
    const calls = silentTab.net.calls.filter((c) => c.name === "presence").slice(-2);
    assert.deepEqual(calls.map((c) => [c.request.action, c.status]), [["heartbeat", 404], [
      "join",
      200,
    ]]);
    assert.deepEqual(log, [`+${listener.id}`, `-${listener.id}`, `+${listener.id}`]);
    assert.equal(silent.presence.members?.count, 2);
  });
});

Deno.test("page hide leaves presence with a keepalive request; page show joins again", async () => {
  const room = rooms.pageHide;
  await withTabs([host, dj], async ([hostTab, tab]) => {
    const watcher = await hostTab.rooms.join(room);
    await tab.rooms.join(room);
    await until("joined", () => watcher.presence.members?.count === 2);
    tab.window.dispatchEvent(new Event("pagehide"));
    await until("hidden: gone", () => watcher.presence.members?.count === 1);
    const leave = tab.net.calls.find((c) => c.request.action === "leave")!;
    assert.equal(leave.keepalive, true);
    tab.window.dispatchEvent(new Event("pageshow"));
    await until("shown: back", () => watcher.presence.members?.count === 2);
  });
});

/** A player that plays in real time; records what it was told. */
function fakePlayer() {
  let position = 0;
  let since = Date.now();
  let playing = false;
  const calls: string[] = [];
  const run = () => {
    const now = Date.now();
    if (playing) position += now - since;
    since = now;
  };
  const player: Player & { calls: string[]; song: string | null } = {
    calls,
    song: null,
    positionMs: () => (run(), position),
    seek: (ms) => {
      run();
      position = ms;
      calls.push("seek");
    },
    play: () => {
      run();
      playing = true;
      calls.push("play");
    },
    pause: () => {
      run();
      playing = false;
      calls.push("pause");
    },
    setRate: () => calls.push("rate"),
    load: (songId) => {
      player.song = songId;
      calls.push(`load ${songId}`);
    },
  };
  return player;
}

Deno.test("the host reports 60 times a second: at most 2 calls a second, the song change at once, seq increasing; listeners follow", async () => {
  const room = rooms.host;
  await withTabs([host, listener], async ([hostTab, listenerTab]) => {
    const hostRoom = await hostTab.rooms.join(room, { presence: false });
    const listenerRoom = await listenerTab.rooms.join(room);
    assert.ok(hostRoom.host, "the host gets the host controls");
    assert.equal(listenerRoom.host, null, "a listener does not");
    const player = fakePlayer();
    const detach = listenerRoom.playback.attach(player);
    const corrections: string[] = [];
    listenerRoom.playback.on("correction", (c) => corrections.push(`${c.kind}:${c.reason}`));

    // The host's player: song A from 0, then song B after 1.5 s, 60 reports a second for 3 s.
    const start = Date.now();
    let changedAt = 0;
    let song = songA.id;
    let songStart = start;
    while (Date.now() - start < 3000) {
      if (!changedAt && Date.now() - start >= 1500) {
        song = songB.id;
        songStart = Date.now();
        changedAt = Date.now();
      }
      hostRoom.host!.report(song, Date.now() - songStart, true);
      await sleep(1000 / 60);
    }
    await hostRoom.host!.flush();
    const calls = hostTab.net.calls.filter((c) => c.name === "playback");
    const change = calls.find((c) => c.request.song_id === songB.id)!;
    assert.ok(
      change.at - changedAt < 100,
      `the song change left ${change.at - changedAt} ms after it`,
    );
    const positionCalls = calls.filter((c) => c !== change);
    for (let i = 2; i < positionCalls.length; i++) {
      assert.ok(
        positionCalls[i].at - positionCalls[i - 2].at >= 980,
        `3 calls within a second: ${calls.map((c) => c.at - start)}`,
      );
    }
    assert.ok(calls.length <= 8, `${calls.length} calls in 3 s`);
    const seqs = calls.map((c) => c.request.seq);
    assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `seq ${seqs}`);
    assert.ok(calls.every((c) => c.status === 202 && c.response.applied), "every call applied");

    // The listener: the stored state, song B, and a player that followed it.
    const [stored] = await withDb((sql) =>
      sql`select song_id, seq from public.playback_state where room_id = ${room}`
    );
    assert.equal(stored.song_id, songB.id);
    await until(
      "the listener has the last state",
      () => listenerRoom.playback.state?.seq === Number(stored.seq),
    );
    assert.equal(listenerRoom.playback.state?.song_id, songB.id);
    assert.equal(player.song, songB.id);
    assert.ok(corrections.includes("load:song_change"), `corrections: ${corrections}`);
    const truth = Date.now() - songStart;
    const heard = listenerRoom.playback.positionMs();
    assert.ok(Math.abs(heard - truth) < 300, `listener at ${heard} ms, host at ${truth} ms`);
    assert.ok(Math.abs(player.positionMs() - truth) < 300, `player at ${player.positionMs()}`);
    assert.ok(
      Math.abs(listenerRoom.clock.offsetMs) < 100,
      `clock offset ${listenerRoom.clock.offsetMs}`,
    );
    assert.ok(Number.isFinite(listenerRoom.clock.rttMs));

    // Pause goes at once, and the listener's player pauses.
    hostRoom.host!.report(songB.id, Date.now() - songStart, false);
    await until("paused", () => listenerRoom.playback.state?.is_playing === false);
    await until("the player paused", () => player.calls.at(-1) === "pause");
    detach();
  });
});

Deno.test("the queue: the host publishes it, listeners get it live, a late joiner in its snapshot", async () => {
  const room = rooms.queue;
  await withTabs([host, listener, dj], async ([hostTab, listenerTab, lateTab]) => {
    const hostRoom = await hostTab.rooms.join(room, { presence: false });
    const listenerRoom = await listenerTab.rooms.join(room, { presence: false });
    assert.equal(listenerRoom.queue.state, null);
    const updates: unknown[] = [];
    listenerRoom.queue.on("state", (state, { source }) => updates.push([state, source]));
    const queue = { songs: [songA.id, songB.id] };
    const published = await hostRoom.host!.setQueue(queue);
    assert.equal(published.duplicate, false);
    await until("the listener has it", () => listenerRoom.queue.state !== null);
    assert.deepEqual(
      listenerRoom.queue.state,
      queue,
      "the payload as published, without Realtime's id",
    );
    assert.equal(listenerRoom.queue.event, "queue:state");
    assert.deepEqual(updates, [[queue, "live"]]);

    const late = await lateTab.rooms.join(room, { presence: false });
    assert.deepEqual(late.queue.state, queue);
    const next = { songs: [songB.id] };
    await hostRoom.host!.setQueue(next);
    await until(
      "the late joiner gets the next one",
      () => late.queue.state?.songs?.toString() === songB.id,
    );
  });
});

Deno.test("leave: state left, channels gone, presence left; the room can be joined again", async () => {
  const room = rooms.leave;
  await withTabs([listener], async ([tab]) => {
    const first = await tab.rooms.join(room);
    assert.equal(await tab.rooms.join(room), first, "joining a joined room gives that room");
    const states: string[] = [];
    first.on("state", (s) => states.push(s));
    await first.leave();
    assert.deepEqual(states, ["left"]);
    assert.equal(tab.supabase.realtime.getChannels().length, 0);
    const [{ n }] = await withDb((sql) =>
      sql`select count(*)::int as n from private.presence_connections where room_id = ${room}`
    );
    assert.equal(n, 0);
    const again = await tab.rooms.join(room);
    assert.notEqual(again, first);
    assert.equal(again.state, "live");
    assert.equal(again.presence.members?.count, 1);
  });
});
