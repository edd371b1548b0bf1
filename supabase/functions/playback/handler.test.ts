// End to end through the test stack's gateway with the real supabase-js client. Broadcasts are
// read back as the rows private.publish writes to realtime.messages (topic room:{id}:playback,
// event playback:position), and where their order matters as a subscriber receives them;
// conflated positions are flushed by the gateway after the response.
import assert from "node:assert/strict";
import { callerQuery } from "../_shared/db.ts";
import {
  claimsOf,
  clientFor,
  createCastAndRooms,
  expectError,
  expectInvalidRequest,
  fixtureDb,
  holdTransaction,
  invoke,
  listenPrivate,
  lockWaiters,
  poll,
  withDb,
} from "../../../local/test-helpers.ts";
import type { PlaybackState } from "../../../client/types.ts";

const { host, listener, dj, outsider, anonymousListener, rooms } = await createCastAndRooms(6);
const [immediateRoom, burstRoom, staleRoom, accessRoom, persistRoom, raceRoom] = rooms;
const [songA, songB] = await withDb(async (sql) =>
  (await sql`insert into public.songs (title, artist, duration_ms)
             values ('Song A', 'Artist', 180000), ('Song B', 'Artist', 200000)
             returning id`).map((row) => row.id as string)
);

/** The playback:position broadcasts of a room, in the order they were written. */
function broadcasts(room: string): Promise<(PlaybackState & { id?: string })[]> {
  return withDb(async (sql) => {
    const rows = await sql`select payload from realtime.messages
                           where topic = ${`room:${room}:playback`} and event = 'playback:position'
                           order by inserted_at, updated_at`;
    return rows.map((r) => r.payload);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Update = {
  room_id: string;
  song_id: string | null;
  position_ms: number;
  is_playing: boolean;
  seq: number;
};

function play(room: string, seq: number, position_ms: number, more: Partial<Update> = {}) {
  return { room_id: room, song_id: songA, position_ms, is_playing: true, seq, ...more };
}

function send(update: unknown, client = host.client) {
  return invoke(client, "playback", update);
}

/** Drops what is not part of the state itself (server_time, realtime's id). */
function core(state: Partial<PlaybackState> & { id?: string }) {
  const { server_time: _time, id: _id, ...rest } = state;
  return rest;
}

Deno.test("the host's state is applied (202) and the first state, play/pause and song changes go out at once", async () => {
  const before = Date.now();
  const first = await send(play(immediateRoom, 1, 0));
  assert.equal(first.status, 202, JSON.stringify(first.body));
  assert.equal(first.body.applied, true);
  const state = first.body.state as PlaybackState;
  assert.deepEqual(Object.keys(state).sort(), [
    "is_playing",
    "position_ms",
    "room_id",
    "seq",
    "server_time",
    "song_id",
    "updated_at",
  ]);
  assert.deepEqual(
    [state.room_id, state.song_id, state.position_ms, state.is_playing, state.seq],
    [immediateRoom, songA, 0, true, 1],
  );
  assert.equal(typeof state.server_time, "number");
  assert.ok(state.server_time >= before - 1000 && state.server_time <= Date.now() + 1000);
  assert.ok(!Number.isNaN(Date.parse(state.updated_at)));
  // Published in the request's own transaction: there as soon as the 202 is.
  let sent = await broadcasts(immediateRoom);
  assert.equal(sent.length, 1);
  assert.deepEqual(core(sent[0]), core(state));
  assert.equal(typeof sent[0].server_time, "number");

  const changes: [string, Partial<Update>][] = [
    ["pause", { is_playing: false }],
    ["play", { is_playing: true }],
    ["another song", { song_id: songB }],
    ["no song", { song_id: null, is_playing: false }],
  ];
  for (const [i, [what, change]] of changes.entries()) {
    const seq = i + 2;
    const response = await send(play(immediateRoom, seq, 1000 * seq, change));
    assert.equal(response.status, 202, `${what}: ${JSON.stringify(response.body)}`);
    assert.equal(response.body.applied, true, what);
    sent = await broadcasts(immediateRoom);
    assert.equal(sent.length, seq, `${what} is broadcast at once`);
    assert.deepEqual(core(sent.at(-1)!), core(response.body.state), what);
  }
  const stored = await withDb((sql) =>
    sql`select song_id, position_ms, is_playing, seq from public.playback_state
        where room_id = ${immediateRoom}`
  );
  assert.deepEqual(
    stored.map((r) => [r.song_id, Number(r.position_ms), r.is_playing, Number(r.seq)]),
    [[null, 5000, false, 5]],
  );
});

Deno.test("30 rapid position updates are conflated, and the last state always goes out", async () => {
  const first = await send(play(burstRoom, 1, 0));
  assert.equal(first.status, 202, JSON.stringify(first.body));
  assert.equal((await broadcasts(burstRoom)).length, 1);

  const started = Date.now();
  for (let seq = 2; seq <= 31; seq++) {
    const response = await send(play(burstRoom, seq, seq * 100));
    assert.equal(response.status, 202, JSON.stringify(response.body));
    assert.equal(response.body.applied, true);
    assert.equal(response.body.state.seq, seq);
  }
  const elapsed = Date.now() - started;

  const sent = await poll(() => broadcasts(burstRoom), (all) => all.at(-1)?.seq === 31);
  const conflated = sent.slice(1);
  assert.equal(conflated.at(-1)?.seq, 31, "the final state is broadcast");
  assert.equal(conflated.at(-1)?.position_ms, 3100);
  assert.equal(conflated.at(-1)?.is_playing, true);
  // At most one per 500 ms window: two while a burst of < 500 ms lasts.
  const allowed = Math.ceil(elapsed / 500) + 1;
  assert.ok(
    conflated.length >= 1 && conflated.length <= allowed,
    `${conflated.length} broadcasts for 30 updates in ${elapsed} ms (at most ${allowed})`,
  );
  const seqs = conflated.map((s) => s.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "conflated states only move forward");
  // Nothing more goes out once the window has closed.
  await sleep(700);
  assert.equal((await broadcasts(burstRoom)).length, sent.length);

  // A pause in the middle of positions is broadcast at once, by the request itself, and closes
  // the window the position opened: the position's flush, when its timer fires, sends nothing
  // older after it.
  assert.equal((await send(play(burstRoom, 32, 3200))).status, 202);
  const paused = await send(play(burstRoom, 33, 3300, { is_playing: false }));
  assert.equal(paused.status, 202);
  const afterPause = await broadcasts(burstRoom);
  assert.equal(afterPause.at(-1)?.seq, 33, "the pause is broadcast at once");
  assert.equal(afterPause.at(-1)?.is_playing, false);
  await sleep(700);
  const settled = await broadcasts(burstRoom);
  assert.equal(settled.at(-1)?.seq, 33, `the pause stays the last (${settled.map((s) => s.seq)})`);
});

Deno.test("a stale seq is not applied: 202 applied:false with the stored state, nothing sent", async () => {
  const stored = await send(play(staleRoom, 5, 5000));
  assert.equal(stored.status, 202);
  const sentBefore = (await broadcasts(staleRoom)).length;
  for (const seq of [5, 4, 0]) {
    const response = await send(play(staleRoom, seq, 9999, { is_playing: false, song_id: songB }));
    assert.equal(response.status, 202, JSON.stringify(response.body));
    assert.equal(response.body.applied, false, `seq ${seq}`);
    assert.deepEqual(core(response.body.state), core(stored.body.state), `seq ${seq}`);
    assert.equal(typeof response.body.state.server_time, "number");
  }
  await sleep(700);
  assert.equal((await broadcasts(staleRoom)).length, sentBefore);
  const rows = await withDb((sql) =>
    sql`select position_ms, is_playing, seq from public.playback_state where room_id = ${staleRoom}`
  );
  assert.deepEqual(rows.map((r) => [Number(r.position_ms), r.is_playing, Number(r.seq)]), [
    [5000, true, 5],
  ]);
});

Deno.test("who may set playback: the host only, and the room must exist", async () => {
  const update = play(accessRoom, 1, 0);
  await expectError(send(update, listener.client), 403, "not_host", "listener");
  await expectError(send(update, dj.client), 403, "not_host", "dj");
  await expectError(send(update, anonymousListener.client), 403, "identified_only", "anonymous");
  await expectError(send(update, clientFor()), 403, "identified_only", "anon key");
  await expectError(
    send(play(crypto.randomUUID(), 1, 0)),
    404,
    "room_not_found",
    "no such room",
  );
  const rows = await withDb((sql) =>
    sql`select 1 from public.playback_state where room_id = ${accessRoom}`
  );
  assert.equal(rows.length, 0, "nothing refused is stored");
  assert.equal((await broadcasts(accessRoom)).length, 0);
});

Deno.test("an outsider is 403 not_a_member", async () => {
  await expectError(send(play(accessRoom, 1, 0), outsider.client), 403, "not_a_member", "outsider");
});

Deno.test("invalid states are 400 invalid_request", async () => {
  const valid = play(accessRoom, 1, 0);
  const { is_playing: _playing, ...withoutIsPlaying } = valid;
  const { song_id: _song, ...withoutSong } = valid;
  const cases: [string, unknown][] = [
    ["negative position_ms", { ...valid, position_ms: -1 }],
    ["fractional position_ms", { ...valid, position_ms: 1.5 }],
    ["position_ms as a string", { ...valid, position_ms: "10" }],
    ["non-integer seq", { ...valid, seq: 1.5 }],
    ["negative seq", { ...valid, seq: -1 }],
    ["missing is_playing", withoutIsPlaying],
    ["is_playing not a boolean", { ...valid, is_playing: "yes" }],
    ["bad song_id", { ...valid, song_id: "not-a-uuid" }],
    ["missing song_id", withoutSong],
    ["bad room_id", { ...valid, room_id: "nope" }],
    ["a JSON array", [valid]],
  ];
  for (const [what, body] of cases) await expectInvalidRequest(send(body), what);
  await expectError(send("not JSON"), 400, "invalid_request", "not JSON");
  await expectError(
    send({ ...valid, song_id: crypto.randomUUID() }),
    400,
    "invalid_request",
    "a song that does not exist",
  );
  assert.equal((await broadcasts(accessRoom)).length, 0);
});

Deno.test("tokens and methods: 401 without a token, 405 for GET", async () => {
  const noToken = await fetch(`${Deno.env.get("SUPABASE_URL")}/functions/v1/playback`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(play(accessRoom, 1, 0)),
  });
  assert.equal(noToken.status, 401);
  assert.equal((await noToken.json()).error.code, "not_authenticated");
  await expectError(invoke(host.client, "playback"), 405, "method_not_allowed", "GET");
});

type Item = { id: number; event: string; data: PlaybackState; timestamp: number };

Deno.test("persist_last: history rewind=1 returns the last broadcast state", async () => {
  const rewind = () =>
    invoke(listener.client, `history?channel=room:${persistRoom}:playback&rewind=1`);
  await send(play(persistRoom, 1, 0));
  const position = await send(play(persistRoom, 2, 2500));
  assert.equal(position.status, 202);
  const sent = await poll(() => broadcasts(persistRoom), (all) => all.at(-1)?.seq === 2);
  assert.equal(sent.at(-1)?.seq, 2, "the conflated position went out");
  let last = await rewind();
  assert.equal(last.status, 200, JSON.stringify(last.body));
  let items = last.body.items as Item[];
  assert.equal(items.length, 1);
  assert.equal(items[0].event, "playback:position");
  assert.deepEqual(core(items[0].data), core(sent.at(-1)!));
  assert.equal(items[0].data.position_ms, 2500);

  const paused = await send(play(persistRoom, 3, 2600, { is_playing: false }));
  assert.equal(paused.status, 202);
  last = await rewind();
  items = last.body.items as Item[];
  assert.deepEqual(core(items[0].data), core(paused.body.state));
});

/** Opens the room's conflation window for a minute, so that no request opens it and nobody but
 * the test flushes it. */
function openWindow(channel: string) {
  return withDb((sql) => sql`select private.open_window(${channel}, interval '1 minute')`);
}

/** Makes the room's open window due now. */
function makeDue(channel: string) {
  return withDb((sql) =>
    sql`update private.broadcast_windows set due_at = clock_timestamp() - interval '1 second'
        where channel = ${channel}`
  );
}

Deno.test("a window flush racing a pause never leaves the older state as the last broadcast", async () => {
  const channel = `room:${raceRoom}:playback`;
  const subscriber = await listenPrivate<PlaybackState>(
    listener.token,
    channel,
    { event: "playback:position" },
  );
  try {
    const seqsReceived = () => subscriber.received.map(({ payload }) => payload.seq);
    assert.equal((await send(play(raceRoom, 1, 0))).status, 202);

    // 1. The pause's transaction is open when the due window's flush starts: the flush waits for
    // it (the pause took the window), and then finds the window gone with the pause.
    await openWindow(channel);
    assert.equal((await send(play(raceRoom, 2, 1000))).status, 202);
    await makeDue(channel);
    const pause = await holdTransaction(async (tx) => {
      const [{ result }] = await callerQuery(
        tx,
        claimsOf(host),
        (sql) => sql`edge.set_playback(${raceRoom}, ${songA}, 1500, false, 3)`,
      );
      assert.equal(result.applied, true);
    });
    const flusher = fixtureDb();
    try {
      const flushing = flusher`select private.flush_window(${channel})`.execute();
      await lockWaiters(1);
      await pause.commit();
      await flushing;
    } finally {
      await pause.close();
      await flusher.end();
    }
    let sent = await broadcasts(raceRoom);
    assert.deepEqual(
      sent.map((s) => s.seq),
      [1, 3],
      "the position waiting in the window is dropped",
    );

    // 2. The window's flush is open, with the position it read, when the host pauses: the pause
    // waits for it and goes out after it.
    assert.equal((await send(play(raceRoom, 4, 2000))).status, 202);
    await openWindow(channel);
    assert.equal((await send(play(raceRoom, 5, 3000))).status, 202);
    await makeDue(channel);
    const flush = await holdTransaction((tx) => tx`select private.flush_window(${channel})`);
    let pausing: ReturnType<typeof send> | undefined;
    try {
      pausing = send(play(raceRoom, 6, 3500, { is_playing: false }));
      await lockWaiters(1);
      await flush.commit();
      const paused = await pausing;
      assert.equal(paused.status, 202, JSON.stringify(paused.body));
      assert.equal(paused.body.applied, true);
    } finally {
      await pausing?.catch(() => {});
      await flush.close();
    }
    sent = await broadcasts(raceRoom);
    assert.deepEqual(sent.map((s) => s.seq), [1, 3, 4, 5, 6]);

    // What subscribers receive, in order, ends with the newest state, and so does persist_last.
    await poll(() => Promise.resolve(seqsReceived().at(-1)), (seq) => seq === 6, 3000);
    assert.deepEqual(seqsReceived(), [1, 3, 4, 5, 6], "received in order");
    const last = await invoke(host.client, `history?channel=${channel}&rewind=1`);
    assert.equal(last.status, 200);
    assert.equal(last.body.items[0].data.seq, 6, "persist_last holds the newest state");
    assert.equal(last.body.items[0].data.is_playing, false);
  } finally {
    await subscriber.close();
  }
});
