// The server clock estimator and positionMs, with an injected local clock: no network, no waiting.
import assert from "node:assert/strict";
import { ServerClock } from "./clock.ts";
import { RoomPlayback } from "./playback.ts";
import { FakeTimers } from "./testing/fake_timers.ts";
import { between, seededRandom } from "../local/seeded-random.ts";
import type { PlaybackState } from "./types.ts";

/** A local clock the test moves, and a server whose clock is `offset` ahead of it. */
function world(offset: number) {
  let local = 1_000_000;
  return {
    now: () => local,
    advance: (ms: number) => {
      local += ms;
    },
    /** One request: `up` ms to the server, which answers with its clock, `down` ms back. */
    roundTrip(clock: ServerClock, up: number, down: number) {
      const sentAt = local;
      local += up;
      const serverTime = local + offset;
      local += down;
      clock.addSample({ sentAt, serverTime, receivedAt: local });
    },
  };
}

Deno.test("clock: before any sample the offset is 0 and rtt Infinity", () => {
  const clock = new ServerClock({ now: () => 5000 });
  assert.equal(clock.offsetMs, 0);
  assert.equal(clock.rttMs, Infinity);
  assert.equal(clock.synced, false);
  assert.equal(clock.now(), 5000);
});

Deno.test("clock: a symmetric round trip gives the exact offset and its rtt", () => {
  const w = world(-73_500);
  const clock = new ServerClock({ now: w.now });
  w.roundTrip(clock, 40, 40);
  assert.equal(clock.offsetMs, -73_500);
  assert.equal(clock.rttMs, 80);
  assert.equal(clock.now(), w.now() - 73_500);
});

Deno.test("clock: of the recent samples the one with the smallest round trip wins", () => {
  const w = world(10_000);
  const clock = new ServerClock({ now: w.now });
  w.roundTrip(clock, 300, 20); // slow way there: offset off by +140
  assert.equal(clock.offsetMs, 10_140);
  w.roundTrip(clock, 25, 35); // rtt 60, off by -5
  assert.equal(clock.offsetMs, 9995);
  assert.equal(clock.rttMs, 60);
  w.roundTrip(clock, 20, 500); // larger rtt: ignored
  assert.equal(clock.offsetMs, 9995);
  assert.equal(clock.rttMs, 60);
});

Deno.test("clock: typicalRttMs is the median round trip (what the host adds half of)", () => {
  const w = world(0);
  const clock = new ServerClock({ now: w.now });
  assert.equal(clock.typicalRttMs, Infinity);
  w.roundTrip(clock, 10, 10);
  w.roundTrip(clock, 50, 50);
  w.roundTrip(clock, 400, 400);
  assert.equal(clock.rttMs, 20, "the offset uses the smallest");
  assert.equal(clock.typicalRttMs, 100);
  w.roundTrip(clock, 60, 60);
  assert.equal(clock.typicalRttMs, 110);
});

Deno.test("clock: only the last 8 samples count; reset forgets them", () => {
  const w = world(500);
  const clock = new ServerClock({ now: w.now, maxSamples: 8 });
  w.roundTrip(clock, 5, 5); // the best, then pushed out by 8 worse ones
  for (let i = 0; i < 8; i++) w.roundTrip(clock, 50, 70);
  assert.equal(clock.rttMs, 120);
  assert.equal(clock.offsetMs, 490);
  clock.reset();
  assert.equal(clock.synced, false);
  assert.equal(clock.offsetMs, 0);
});

Deno.test("clock: samples older than maxAgeMs give way to newer ones", () => {
  const w = world(0);
  const clock = new ServerClock({ now: w.now, maxAgeMs: 60_000 });
  w.roundTrip(clock, 5, 5);
  w.advance(120_000);
  w.roundTrip(clock, 100, 60);
  assert.equal(clock.rttMs, 160, "the old, better sample has expired");
  assert.equal(clock.offsetMs, 20);
});

Deno.test("clock: a one-way message bounds the offset from below and fixes a skewed estimate", () => {
  const offset = 2000;
  const w = world(offset);
  const clock = new ServerClock({ now: w.now });
  w.roundTrip(clock, 10, 190); // estimate offset - 90
  assert.equal(clock.offsetMs, offset - 90);
  // A broadcast sent at server time S arrives 30 ms later: offset >= S - arrival = offset - 30.
  const serverTime = w.now() + offset;
  w.advance(30);
  clock.addOneWay(serverTime, w.now());
  assert.equal(clock.offsetMs, offset - 30);
  // A slower one changes nothing (its bound is lower).
  const later = w.now() + offset;
  w.advance(120);
  clock.addOneWay(later, w.now());
  assert.equal(clock.offsetMs, offset - 30);
});

Deno.test("clock: one-way delays of 20–200 ms with symmetric jitter: error within a few ms", () => {
  const random = seededRandom(7);
  for (let run = 0; run < 50; run++) {
    const offset = Math.round(between(random, -3_600_000, 3_600_000));
    const w = world(offset);
    const clock = new ServerClock({ now: w.now });
    const base = between(random, 20, 200); // this client's typical one-way delay
    for (let i = 0; i < 8; i++) {
      const jitter = () => Math.max(0, base + between(random, -15, 15) + 40 * random() ** 8);
      w.roundTrip(clock, jitter(), jitter());
      w.advance(1000);
    }
    const error = Math.abs(clock.now() - (w.now() + offset));
    assert.ok(error < 30, `run ${run}: error ${error} ms (base ${base} ms)`);
  }
});

Deno.test("clock: samples with a negative round trip or non-numbers are ignored", () => {
  const clock = new ServerClock({ now: () => 0 });
  clock.addSample({ sentAt: 10, serverTime: 100, receivedAt: 5 });
  clock.addSample({ sentAt: 0, serverTime: Number.NaN, receivedAt: 5 });
  assert.equal(clock.synced, false);
});

function state(seq: number, fields: Partial<PlaybackState> = {}): PlaybackState {
  return {
    room_id: "r",
    song_id: "song-1",
    position_ms: 10_000,
    is_playing: true,
    seq,
    updated_at: new Date(1_800_000_000_000).toISOString(),
    server_time: 1_800_000_000_000,
    ...fields,
  };
}

Deno.test("positionMs: runs on with the server's clock while playing, stands still when paused", async () => {
  const timers = new FakeTimers(1_800_000_000_000 - 5000); // local is 5 s behind the server
  const clock = new ServerClock({ now: () => timers.now() });
  clock.addSample({
    sentAt: timers.now(),
    serverTime: timers.now() + 5000,
    receivedAt: timers.now(),
  });
  const playback = new RoomPlayback(clock, timers);
  assert.equal(playback.positionMs(), 0, "no state yet");
  assert.ok(playback.apply(state(1), "snapshot"));
  assert.equal(playback.positionMs(), 10_000);
  await timers.advance(2500);
  assert.equal(playback.positionMs(), 12_500);
  assert.ok(playback.apply(state(2, { is_playing: false, position_ms: 12_600 }), "live"));
  await timers.advance(1000);
  assert.equal(playback.positionMs(), 12_600);
});

Deno.test("playback: a state whose seq is not newer is ignored, wherever it comes from", () => {
  const timers = new FakeTimers();
  const playback = new RoomPlayback(new ServerClock({ now: () => timers.now() }), timers);
  const seen: number[] = [];
  playback.on("state", (s) => seen.push(s.seq));
  assert.ok(playback.apply(state(5), "live"));
  assert.ok(!playback.apply(state(5, { position_ms: 1 }), "snapshot"));
  assert.ok(!playback.apply(state(3), "rewind"));
  assert.ok(playback.apply(state(6), "host"));
  assert.ok(!playback.apply(null, "snapshot"));
  assert.deepEqual(seen, [5, 6]);
  assert.equal(playback.state?.position_ms, 10_000);
});
