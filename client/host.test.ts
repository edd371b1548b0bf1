// The host's report conflation with an injected fetch and fake time: a player reporting 60
// times a second makes at most 2 playback calls a second, a song change or play / pause goes at
// once, seq keeps increasing (across a reload too), failures are retried.
import assert from "node:assert/strict";
import { ServerClock } from "./clock.ts";
import { PlaybackHost } from "./host.ts";
import { RoomPlayback } from "./playback.ts";
import { RoomQueue } from "./queue.ts";
import {
  answer,
  errorAnswer,
  fakeFunctionsHttp,
  type RecordedRequest,
  type Responder,
} from "./testing/fake_fetch.ts";
import { FakeTimers } from "./testing/fake_timers.ts";
import type { PlaybackState } from "./types.ts";

const roomId = "4f9c7c3e-0000-4000-8000-000000000002";
const songA = "00000000-0000-4000-8000-00000000000a";
const songB = "00000000-0000-4000-8000-00000000000b";

/** The playback function: applies a state when its seq is newer (as edge.set_playback does). */
function playbackServer(timers: FakeTimers, serverAhead = 0) {
  let stored: PlaybackState | null = null;
  return {
    get stored() {
      return stored;
    },
    set(state: PlaybackState) {
      stored = state;
    },
    respond(request: RecordedRequest): Response {
      const { song_id, position_ms, is_playing, seq } = request.body;
      const now = timers.now() + serverAhead;
      if (stored && seq <= stored.seq) {
        return answer(202, { applied: false, state: { ...stored, server_time: now } });
      }
      stored = {
        room_id: roomId,
        song_id,
        position_ms,
        is_playing,
        seq,
        updated_at: new Date(now).toISOString(),
        server_time: now,
      };
      return answer(202, { applied: true, state: stored });
    },
  };
}

function setup(
  respond: Responder,
  timers = new FakeTimers(),
  initial: PlaybackState | null = null,
) {
  const { http, requests } = fakeFunctionsHttp(respond, timers);
  const clock = new ServerClock({ now: () => timers.now() });
  const playback = new RoomPlayback(clock, timers);
  playback.apply(initial, "snapshot");
  const queue = new RoomQueue(roomId, http);
  const host = new PlaybackHost({ roomId, http, clock, timers, playback, queue });
  return { timers, requests, host, playback, clock, queue };
}

const playbackCalls = (requests: RecordedRequest[]) =>
  requests.filter((r) => r.url.pathname.endsWith("/playback"));

Deno.test("host: 60 reports a second for 3 s: at most 2 calls a second, song change at once, seq increasing", async () => {
  const timers = new FakeTimers();
  const server = playbackServer(timers);
  const { requests, host } = setup((r) => server.respond(r), timers);
  const start = timers.now();
  let position = 0;
  let song = songA;
  let changedAt = 0;
  for (let tick = 0; tick < 180; tick++) {
    if (tick === 95) {
      song = songB; // the player moves to the next song
      position = 0;
      changedAt = timers.now();
    }
    host.report(song, position, true);
    await timers.advance(1000 / 60);
    position += 1000 / 60;
  }
  const flushed = host.flush();
  await timers.advance(1000);
  await flushed;
  const calls = playbackCalls(requests);
  const times = calls.map((c) => c.at - start);
  // At most 2 calls in any second, not counting the song change's own call.
  const positionCalls = calls.filter((c) => c.at !== changedAt);
  for (let i = 2; i < positionCalls.length; i++) {
    assert.ok(
      positionCalls[i].at - positionCalls[i - 2].at >= 1000,
      `3 calls within a second: ${times}`,
    );
  }
  for (let i = 1; i < positionCalls.length; i++) {
    const gap = positionCalls[i].at - positionCalls[i - 1].at;
    assert.ok(
      gap >= 500 || positionCalls[i - 1].at === changedAt,
      `calls ${gap} ms apart: ${times}`,
    );
  }
  assert.ok(calls.length >= 6 && calls.length <= 8, `${calls.length} calls: ${times}`);
  // The song change left in the tick it was reported.
  const change = calls.find((c) => c.body.song_id === songB)!;
  assert.equal(change.at, changedAt);
  assert.equal(change.body.position_ms, 0);
  // seq strictly increasing; the server applied every call.
  const seqs = calls.map((c) => c.body.seq);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `seq ${seqs}`);
  assert.equal(server.stored?.seq, seqs.at(-1));
  assert.equal(server.stored?.song_id, songB);
});

Deno.test("host: the position sent runs on from the report to the call", async () => {
  const timers = new FakeTimers();
  const server = playbackServer(timers);
  const { requests, host } = setup((r) => server.respond(r), timers);
  host.report(songA, 10_000, true); // at once (first report)
  await timers.advance(100);
  host.report(songA, 10_100, true); // conflated: leaves 500 ms after the first call
  await timers.advance(1000);
  const calls = playbackCalls(requests);
  assert.equal(calls.length, 2);
  assert.equal(calls[1].at - calls[0].at, 500);
  // Reported at +100 ms, sent at +500 ms: 400 ms later, plus half the measured round trip (0 here).
  assert.equal(calls[1].body.position_ms, 10_500);
  host.report(songA, 10_700, false); // pause: at once, and the position as reported
  await timers.advance(0);
  assert.equal(playbackCalls(requests).at(-1)!.body.position_ms, 10_700);
  assert.equal(playbackCalls(requests).at(-1)!.body.is_playing, false);
});

Deno.test("host: seq comes from the server's clock, so a reloaded page goes on above the old one", async () => {
  const timers = new FakeTimers();
  const server = playbackServer(timers, 3_600_000); // the server's clock is an hour ahead
  const first = setup((r) => server.respond(r), timers);
  first.clock.addSample({
    sentAt: timers.now(),
    serverTime: timers.now() + 3_600_000,
    receivedAt: timers.now(),
  });
  first.host.report(songA, 0, true);
  await timers.advance(10);
  const firstSeq = playbackCalls(first.requests)[0].body.seq;
  assert.ok(Math.abs(firstSeq - (timers.now() + 3_600_000)) < 50, "about the server's clock");
  first.host.stop();

  // A reload: a new host whose clock has not been sampled yet still goes above the stored seq.
  await timers.advance(1000);
  const second = setup((r) => server.respond(r), timers, server.stored);
  second.host.report(songA, 1000, true);
  await timers.advance(10);
  const calls = playbackCalls(second.requests);
  assert.ok(calls[0].body.seq > firstSeq, `${calls[0].body.seq} > ${firstSeq}`);
  assert.equal(server.stored?.position_ms, 1000);
});

Deno.test("host: applied: false (a newer seq stored elsewhere) is sent again above it", async () => {
  const timers = new FakeTimers();
  const server = playbackServer(timers);
  const { requests, host } = setup((r) => server.respond(r), timers);
  server.set({
    room_id: roomId,
    song_id: songA,
    position_ms: 5,
    is_playing: true,
    seq: timers.now() + 10_000_000, // another device of the host, far ahead
    updated_at: new Date(timers.now()).toISOString(),
    server_time: timers.now(),
  });
  host.report(songB, 0, true);
  await timers.advance(10);
  const calls = playbackCalls(requests);
  assert.equal(calls.length, 2);
  assert.equal(calls[1].body.seq, server.stored!.seq);
  assert.equal(server.stored?.song_id, songB);
});

Deno.test("host: 503 and network errors are retried with the latest report", async () => {
  const timers = new FakeTimers();
  const server = playbackServer(timers);
  const { requests, host } = setup((r, i) => {
    if (i === 0) return errorAnswer(503, "unavailable", { "Retry-After": "2" });
    if (i === 1) throw new TypeError("network down");
    return server.respond(r);
  }, timers);
  const start = timers.now();
  host.report(songA, 0, true);
  await timers.advance(500);
  host.report(songA, 500, true);
  await timers.advance(5000);
  const calls = playbackCalls(requests);
  assert.deepEqual(calls.map((c) => c.at - start), [0, 2000, 3000]);
  assert.ok(calls[2].body.seq > calls[1].body.seq);
  assert.equal(server.stored?.song_id, songA);
});

Deno.test("host: a refused report (403) is not retried and is an error event", async () => {
  const timers = new FakeTimers();
  const { requests, host } = setup(() => errorAnswer(403, "not_host"), timers);
  const errors: string[] = [];
  host.on("error", (e) => errors.push(e.code));
  host.report(songA, 0, true);
  await timers.advance(30_000);
  assert.equal(playbackCalls(requests).length, 1);
  assert.deepEqual(errors, ["not_host"]);
});

Deno.test("host: setQueue publishes with an id, retries with the same id, and sets the queue", async () => {
  const timers = new FakeTimers();
  const { requests, host, queue } = setup((r, i) => {
    if (i === 0) throw new TypeError("lost");
    return answer(202, {
      published: [{
        id: r.body.id,
        channel: r.body.channel,
        event: r.body.event,
        timestamp: 1,
        duplicate: i > 1,
      }],
    });
  }, timers);
  const done = host.setQueue({ songs: [songA, songB] });
  await timers.advance(1000);
  const published = await done;
  const calls = requests.filter((r) => r.url.pathname.endsWith("/publish"));
  assert.equal(calls.length, 2);
  assert.equal(calls[0].body.id, calls[1].body.id);
  assert.deepEqual(calls[1].body, {
    channel: `room:${roomId}:queue`,
    event: "queue:state",
    payload: { songs: [songA, songB] },
    id: calls[0].body.id,
  });
  assert.equal(published.id, calls[0].body.id);
  assert.deepEqual(queue.state, { songs: [songA, songB] });
  assert.equal(queue.event, "queue:state");
});
