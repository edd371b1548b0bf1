// End to end through the test stack's gateway with the real supabase-js client. Broadcasts are
// read back as the rows private.publish writes to realtime.messages (topic room:{id}:playback,
// event playback:position); conflated positions are flushed by the gateway after the response.
import assert from "node:assert/strict";
import {
  actAs,
  clientFor,
  createCast,
  createRoom,
  expectError,
  fixtureDb,
  invoke,
  poll,
  withDb,
} from "../../../local/testing.ts";

const setup = fixtureDb();
const { host, listener, dj, outsider, anonymousListener, members } = await createCast(setup);
const immediateRoom = await createRoom(setup, host, members);
const burstRoom = await createRoom(setup, host, members);
const staleRoom = await createRoom(setup, host, members);
const accessRoom = await createRoom(setup, host, members);
const persistRoom = await createRoom(setup, host, members);
const raceRoom = await createRoom(setup, host, members);
const [songA, songB] = (await setup`insert into public.songs (title, artist, duration_ms)
                                    values ('Song A', 'Artist', 180000), ('Song B', 'Artist', 200000)
                                    returning id`).map((row) => row.id as string);
await setup.end();

interface PlaybackState {
  room_id: string;
  song_id: string | null;
  position_ms: number;
  is_playing: boolean;
  seq: number;
  updated_at: string;
  server_time: number;
}

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

  // A pause in the middle of positions is still broadcast at once.
  await send(play(burstRoom, 32, 3200));
  const paused = await send(play(burstRoom, 33, 3300, { is_playing: false }));
  assert.equal(paused.status, 202);
  const afterPause = await broadcasts(burstRoom);
  assert.ok(afterPause.some((s) => s.seq === 33 && s.is_playing === false), "pause is at once");
  const settled = await poll(
    () => broadcasts(burstRoom),
    (all) => all.length > afterPause.length,
    1500,
  );
  assert.equal(settled.at(-1)?.seq, 33, "the window's flush sends the latest state");
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
  for (const [what, body] of cases) {
    const error = await expectError(send(body), 400, "invalid_request", what);
    assert.ok(Array.isArray(error.details) && error.details.length > 0, `${what}: details`);
  }
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

/** Waits until `count` backends wait on a lock. */
async function lockWaiters(count: number) {
  const waiting = await poll(
    () =>
      withDb(async (sql) => {
        const [{ n }] = await sql`select count(*)::int as n from pg_stat_activity
                                  where wait_event_type = 'Lock' and datname = current_database()`;
        return n as number;
      }),
    (n) => n >= count,
  );
  assert.ok(waiting >= count, `${count} backend(s) waiting on a lock`);
}

Deno.test("a window flush racing a pause does not leave the older state as the last broadcast", async () => {
  const channel = `room:${raceRoom}:playback`;
  assert.equal((await send(play(raceRoom, 1, 0))).status, 202);
  // A conflation window that is open (and far from due, so only this test flushes it), with a
  // position waiting in it.
  await withDb((sql) => sql`select private.open_window(${channel}, interval '1 minute')`);
  assert.equal((await send(play(raceRoom, 2, 1000))).status, 202);

  // The host pauses (seq 3); while that request's transaction is still open, the window's flush
  // runs. Both are played on fixture connections, which fixes their order.
  const pauser = fixtureDb();
  const flusher = fixtureDb();
  try {
    let commit!: () => void;
    const committed = new Promise<void>((resolve) => (commit = resolve));
    let applied!: () => void;
    const pausedInTransaction = new Promise<void>((resolve) => (applied = resolve));
    const pause = pauser.begin(async (tx) => {
      await actAs(tx, host);
      const [{ result }] =
        await tx`select public.set_playback(${raceRoom}, ${songA}, 1500, false, 3)
                                    as result`;
      assert.equal(result.applied, true);
      applied();
      await committed;
    });
    await Promise.race([pausedInTransaction, pause]);
    const flushing = flusher`select private.flush_window(${channel}, true)`.execute();
    // As things stand the flush waits for the pause's transaction (on the persist_last row).
    await lockWaiters(1).catch(() => {});
    commit();
    await pause;
    await flushing;
  } finally {
    await pauser.end();
    await flusher.end();
  }

  const sent = await broadcasts(raceRoom);
  assert.equal(
    sent.at(-1)?.seq,
    3,
    `the last broadcast is the paused state (seqs: ${sent.map((s) => s.seq)})`,
  );
  const last = await invoke(host.client, `history?channel=${channel}&rewind=1`);
  assert.equal(last.status, 200);
  assert.equal(last.body.items[0].data.seq, 3, "persist_last holds the newest state");
  assert.equal(last.body.items[0].data.is_playing, false);
});
