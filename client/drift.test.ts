// The drift policy (a pure function) and PlayerSync on a fake player with injected timers.
import assert from "node:assert/strict";
import {
  type Correction,
  decideDrift,
  defaultDriftPolicy,
  type PlaybackTarget,
  PlayerSync,
} from "./drift.ts";
import { FakeTimers } from "./testing/fake_timers.ts";
import type { Player } from "./types.ts";

const playing = { targetMs: 60_000, canSetRate: true, currentRate: 1, playing: true };

Deno.test("policy: under 60 ms nothing; 60–400 ms a rate nudge of at most 2 %; 400 ms and more a seek", () => {
  assert.deepEqual(decideDrift({ ...playing, driftMs: 0 }), { action: "none" });
  assert.deepEqual(decideDrift({ ...playing, driftMs: 59 }), { action: "none" });
  assert.deepEqual(decideDrift({ ...playing, driftMs: -59 }), { action: "none" });
  // Ahead: slow down. Behind: speed up. Capped at ±2 %.
  assert.deepEqual(decideDrift({ ...playing, driftMs: 100 }), { action: "rate", rate: 0.98 });
  assert.deepEqual(decideDrift({ ...playing, driftMs: -100 }), { action: "rate", rate: 1.02 });
  assert.deepEqual(decideDrift({ ...playing, driftMs: 399 }), { action: "rate", rate: 0.98 });
  assert.deepEqual(decideDrift({ ...playing, driftMs: 400 }), { action: "seek", toMs: 60_000 });
  assert.deepEqual(decideDrift({ ...playing, driftMs: -5000 }), { action: "seek", toMs: 60_000 });
});

Deno.test("policy: without a settable rate, 60–200 ms is left alone and 200–400 ms is a seek", () => {
  const noRate = { ...playing, canSetRate: false };
  assert.deepEqual(decideDrift({ ...noRate, driftMs: 150 }), { action: "none" });
  assert.deepEqual(decideDrift({ ...noRate, driftMs: 200 }), { action: "none" });
  assert.deepEqual(decideDrift({ ...noRate, driftMs: 201 }), { action: "seek", toMs: 60_000 });
  assert.deepEqual(decideDrift({ ...noRate, driftMs: -350 }), { action: "seek", toMs: 60_000 });
});

Deno.test("policy: a nudge in progress continues, ends when settled or past the target", () => {
  const slowed = { ...playing, currentRate: 0.98 };
  assert.deepEqual(
    decideDrift({ ...slowed, driftMs: 80 }),
    { action: "none" },
    "same rate: nothing to change",
  );
  assert.deepEqual(
    decideDrift({ ...slowed, driftMs: 45 }),
    { action: "none" },
    "still nudging under 60",
  );
  assert.deepEqual(decideDrift({ ...slowed, driftMs: 19 }), { action: "rate", rate: 1 });
  assert.deepEqual(decideDrift({ ...slowed, driftMs: -30 }), { action: "rate", rate: 1 }, "passed");
  const sped = { ...playing, currentRate: 1.02 };
  assert.deepEqual(decideDrift({ ...sped, driftMs: 10 }), { action: "rate", rate: 1 }, "passed");
  // A small remaining drift closes over one check interval: 24 ms / 1.5 s = 1.6 %.
  assert.deepEqual(decideDrift({ ...sped, driftMs: -24 }), { action: "rate", rate: 1.016 });
});

Deno.test("policy: a paused room is corrected by a seek only, from 60 ms", () => {
  const paused = { ...playing, playing: false };
  assert.deepEqual(decideDrift({ ...paused, driftMs: 50 }), { action: "none" });
  assert.deepEqual(decideDrift({ ...paused, driftMs: 100 }), { action: "seek", toMs: 60_000 });
});

Deno.test("policy: every threshold is configurable; seekLeadMs moves a seek's target", () => {
  const policy = {
    ...defaultDriftPolicy,
    ignoreBelowMs: 10,
    seekFromMs: 100,
    maxRateChange: 0.05,
    seekLeadMs: 30,
  };
  assert.deepEqual(decideDrift({ ...playing, driftMs: 20 }, policy), {
    action: "rate",
    rate: 0.9867,
  });
  assert.deepEqual(decideDrift({ ...playing, driftMs: 300 }, policy), {
    action: "seek",
    toMs: 60_030,
  });
});

/** A player whose clock runs at its own rate on the fake timers. */
class FakePlayer implements Player {
  position = 0;
  rate = 1;
  playing = false;
  calls: string[] = [];
  #timers: FakeTimers;
  #at: number;
  constructor(timers: FakeTimers) {
    this.#timers = timers;
    this.#at = timers.now();
  }
  #run() {
    const now = this.#timers.now();
    if (this.playing) this.position += (now - this.#at) * this.rate;
    this.#at = now;
  }
  positionMs() {
    this.#run();
    return this.position;
  }
  seek(ms: number) {
    this.#run();
    this.position = ms;
    this.calls.push(`seek ${Math.round(ms)}`);
  }
  play() {
    this.#run();
    this.playing = true;
    this.calls.push("play");
  }
  pause() {
    this.#run();
    this.playing = false;
    this.calls.push("pause");
  }
  setRate(rate: number) {
    this.#run();
    this.rate = rate;
    this.calls.push(`rate ${rate}`);
  }
}

/** A room whose position runs on the fake timers. */
function room(timers: FakeTimers, songId = "a", startMs = 30_000) {
  const t0 = timers.now();
  const target: PlaybackTarget & { since: number } = {
    songId,
    playing: true,
    positionMs: startMs,
    since: t0,
  };
  return {
    target,
    read: (): PlaybackTarget => ({
      songId: target.songId,
      playing: target.playing,
      positionMs: target.playing
        ? target.positionMs + timers.now() - target.since
        : target.positionMs,
    }),
    set(fields: Partial<PlaybackTarget>) {
      Object.assign(target, this.read(), fields, { since: timers.now() });
    },
  };
}

/** A FakePlayer and a room on the same fake timers, the player kept in sync with the room (once
 * started), and the corrections that made. */
function syncedPlayer() {
  const timers = new FakeTimers();
  const player = new FakePlayer(timers);
  const r = room(timers);
  const sync = new PlayerSync({ player, target: r.read, timers });
  const corrections: Correction[] = [];
  sync.on("correction", (c) => corrections.push(c));
  return { timers, player, r, sync, corrections };
}

Deno.test("sync: attaching seeks to the room and plays; then drift is checked at most every 1.5 s", async () => {
  const { timers, player, sync, corrections } = syncedPlayer();
  let reads = 0;
  const positionMs = player.positionMs.bind(player);
  player.positionMs = () => (reads++, positionMs());
  sync.start();
  assert.deepEqual(player.calls, ["seek 30000", "play"]);
  assert.deepEqual(corrections.map((c) => [c.kind, c.reason]), [["seek", "attach"], [
    "play",
    "attach",
  ]]);
  reads = 0;
  for (let i = 0; i < 20; i++) sync.check(); // asked often: only what is due runs
  assert.equal(reads, 0, "checked right after attaching: not yet due");
  await timers.advance(6000);
  assert.equal(reads, 4, "one check per 1.5 s");
  assert.equal(corrections.length, 2, "in sync: nothing to correct");
  sync.stop();
});

Deno.test("sync: a player 150 ms ahead is slowed by 2 %, then put back to rate 1 once in sync", async () => {
  const { timers, player, r, sync, corrections } = syncedPlayer();
  sync.start();
  player.position += 150; // drifted ahead
  await timers.advance(1500);
  assert.equal(player.rate, 0.98);
  assert.equal(corrections.at(-1)?.kind, "rate");
  assert.equal(Math.round(corrections.at(-1)!.driftMs!), 150);
  // 2 % of 1.5 s is 30 ms a check: 150 ms takes 5 checks, then the rate goes back to 1.
  await timers.advance(1500 * 6);
  assert.equal(player.rate, 1);
  assert.equal(corrections.at(-1)?.reason, "settled");
  assert.ok(Math.abs(player.positionMs() - r.read().positionMs) < 20);
  assert.ok(!player.calls.slice(2).some((c) => c.startsWith("seek")), "no seek for a small drift");
  sync.stop();
});

Deno.test("sync: 600 ms behind is a seek; without setRate 300 ms is a seek and 100 ms is left", async () => {
  const { timers, player, r, sync } = syncedPlayer();
  sync.start();
  player.position -= 600;
  await timers.advance(1500);
  assert.equal(player.calls.at(-1), `seek ${r.read().positionMs}`);
  sync.stop();

  const plain = new FakePlayer(timers);
  const noRate: Player = {
    positionMs: () => plain.positionMs(),
    seek: (ms) => plain.seek(ms),
    play: () => plain.play(),
    pause: () => plain.pause(),
  };
  const sync2 = new PlayerSync({ player: noRate, target: r.read, timers });
  sync2.start();
  const before = plain.calls.length;
  plain.position += 100;
  await timers.advance(1500);
  assert.equal(plain.calls.length, before, "100 ms without a rate: left alone");
  plain.position += 200;
  await timers.advance(1500);
  assert.equal(plain.calls.at(-1), `seek ${r.read().positionMs}`);
  sync2.stop();
});

Deno.test("sync: a song change and play / pause apply at once, not at the next check", async () => {
  const timers = new FakeTimers();
  const player = new FakePlayer(timers);
  const loads: (string | null)[] = [];
  const withLoad: Player = Object.assign(player, {
    load: (id: string | null) => void loads.push(id),
  });
  const r = room(timers);
  const sync = new PlayerSync({ player: withLoad, target: r.read, timers });
  const corrections: Correction[] = [];
  sync.on("correction", (c) => corrections.push(c));
  sync.start();
  assert.deepEqual(loads, ["a"]);
  await timers.advance(300);
  r.set({ playing: false });
  sync.update();
  assert.equal(player.playing, false, "paused at once");
  assert.deepEqual(corrections.at(-1)?.kind, "pause");
  r.set({ songId: "b", positionMs: 0, playing: true });
  sync.update();
  assert.deepEqual(loads, ["a", "b"]);
  assert.equal(player.calls.at(-2), "seek 0");
  assert.equal(player.calls.at(-1), "play");
  assert.deepEqual(corrections.slice(-3).map((c) => [c.kind, c.reason]), [
    ["load", "song_change"],
    ["seek", "song_change"],
    ["play", "song_change"],
  ]);
  // A position-only change is not applied at once.
  const calls = player.calls.length;
  r.set({ positionMs: 5 });
  sync.update();
  assert.equal(player.calls.length, calls);
  sync.stop();
});

Deno.test("sync: a load that takes time seeks to where the room is once it is done", async () => {
  const timers = new FakeTimers();
  const player = new FakePlayer(timers);
  let loaded!: () => void;
  const slow: Player = Object.assign(player, {
    load: () => new Promise<void>((resolve) => (loaded = resolve)),
  });
  const r = room(timers, "a", 1000);
  const sync = new PlayerSync({ player: slow, target: r.read, timers });
  sync.start();
  assert.deepEqual(player.calls, [], "waits for the song");
  await timers.advance(700);
  loaded();
  await timers.advance(0);
  assert.deepEqual(player.calls, ["seek 1700", "play"]);
  sync.stop();
});

Deno.test("sync: stop puts a nudged rate back to 1 and checks no more", async () => {
  const { timers, player, sync } = syncedPlayer();
  sync.start();
  player.position -= 100;
  await timers.advance(1500);
  assert.equal(player.rate, 1.02);
  sync.stop();
  assert.equal(player.rate, 1);
  const calls = player.calls.length;
  player.position -= 1000;
  await timers.advance(10_000);
  assert.equal(player.calls.length, calls);
  assert.equal(timers.pending, 0);
});
