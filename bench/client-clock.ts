// `npm run bench -- client-clock`: how far a listener's `room.playback.positionMs()` is from the
// host's player, with simulated network delays (CLIENT.md benchmark "Clock"). No stack: the
// client's own ServerClock and RoomPlayback run on a simulated clock, as in the app:
// - the host and each listener have local clocks off from the server's by up to ±1 h, and
//   estimate the offset from 8 round trips (room-context, then heartbeats at 1 s, 2 s, 20 s, …),
//   each way taking a client's base one-way delay (20–200 ms) plus jitter;
// - the host reports its player's position; the call reaches the server one way later, which
//   stores it with updated_at = arrival; the host adds half its measured round trip (host.ts);
// - the listener gets the state by broadcast (a one-way bound for its clock too) and reads
//   positionMs() at random moments; the error is that minus the host player's true position.
// Cases: symmetric jitter (each way drawn from the same distribution; target p99 < 30 ms),
// asymmetric (the way up slower than the way down by up to 60 ms), and heavy-tailed jitter.
// TRIALS (2000) and READS (20 per trial) change it. Figures are printed and written, not asserted.
import { ServerClock } from "../client/clock.ts";
import { RoomPlayback } from "../client/playback.ts";
import type { Timers } from "../client/timers.ts";
import { between, seededRandom } from "../local/seeded-random.ts";
import { summarize, timingLine, writeResults } from "./lib/results.ts";

const trials = Number(Deno.env.get("TRIALS") ?? 2000);
const reads = Number(Deno.env.get("READS") ?? 20);

interface Case {
  name: string;
  /** One way's delay for a client whose base delay is `base`. */
  delay: (random: () => number, base: number, way: "up" | "down", skew: number) => number;
}

const cases: Case[] = [
  {
    name: "symmetric jitter (±20 ms uniform, each way alike)",
    delay: (random, base) => base + between(random, -20, 20),
  },
  {
    name: "heavy-tailed jitter (±10 ms, plus up to 300 ms 5 % of the time, each way alike)",
    delay: (random, base) =>
      base + between(random, -10, 10) + (random() < 0.05 ? between(random, 0, 300) : 0),
  },
  {
    name: "asymmetric (the way up slower by 0–60 ms, ±20 ms jitter)",
    delay: (random, base, way, skew) => base + (way === "up" ? skew : 0) + between(random, -20, 20),
  },
];

/** True time (= the server's clock), moved by the simulation; nothing is scheduled on it. */
class World implements Timers {
  constructor(public t: number) {}
  now = () => this.t;
  setTimeout = (): number => {
    throw new Error("not scheduled in this simulation");
  };
  clearTimeout = () => {};
}

/** One simulated participant: its local clock (a fixed offset from true time) and estimator. */
function participant(random: () => number, world: World, c: Case) {
  const localOffset = Math.round(between(random, -3_600_000, 3_600_000));
  const base = between(random, 20, 200);
  const skew = between(random, 0, 60);
  const local = () => world.now() + localOffset;
  const clock = new ServerClock({ now: local });
  const up = () => Math.max(1, c.delay(random, base, "up", skew));
  const down = () => Math.max(1, c.delay(random, base, "down", skew));
  return { clock, local, up, down, base };
}

function roundTrip(p: ReturnType<typeof participant>, world: World) {
  // Server time is true time (world.now()); the server answers as soon as the request arrives.
  const sentAt = p.local();
  const arrive = world.now() + p.up();
  const serverTime = arrive;
  const receivedAt = arrive + p.down() + (p.local() - world.now());
  p.clock.addSample({ sentAt, serverTime, receivedAt });
}

function runCase(c: Case, seed: number) {
  const random = seededRandom(seed);
  const errors: number[] = [];
  const clockErrors: number[] = [];
  for (let trial = 0; trial < trials; trial++) {
    const world = new World(1_800_000_000_000 + trial * 100_000_000);
    const host = participant(random, world, c);
    const listener = participant(random, world, c);
    // The samples of a join: room-context, heartbeats at +1 s, +2 s, then every 20 s.
    const sampleTimes = [0, 1000, 2000, 22_000, 42_000, 62_000, 82_000, 102_000];
    const joinedAt = world.t;
    for (const at of sampleTimes) {
      world.t = joinedAt + at;
      roundTrip(host, world);
      roundTrip(listener, world);
    }
    // The host's player started the song at true time songStart; it reports now.
    const songStart = world.now() - Math.round(between(random, 0, 120_000));
    const reportedAt = world.now();
    const hostPosition = reportedAt - songStart;
    const oneWayEstimate = host.clock.typicalRttMs / 2; // as host.ts does
    const arrival = reportedAt + host.up();
    const playback = new RoomPlayback(listener.clock, world);
    const state = {
      room_id: "r",
      song_id: "s",
      position_ms: Math.round(hostPosition + oneWayEstimate),
      is_playing: true,
      seq: 1,
      updated_at: new Date(arrival).toISOString(),
      server_time: arrival,
    };
    // The broadcast reaches the listener one way later: a lower bound for its clock.
    const delivered = arrival + listener.down();
    listener.clock.addOneWay(state.server_time, delivered + (listener.local() - world.now()));
    playback.apply(state, "live");
    for (let i = 0; i < reads; i++) {
      // A read at a true time within 20 s after the state arrived.
      world.t = delivered + between(random, 0, 20_000);
      errors.push(Math.abs(playback.positionMs() - (world.t - songStart)));
      clockErrors.push(Math.abs(listener.clock.now() - world.t));
    }
  }
  return { errors: summarize(errors), clockErrors: summarize(clockErrors) };
}

const results: Record<string, unknown> = { trials, reads_per_trial: reads };
console.log(
  `positionMs() error against the host's player: ${trials} host/listener pairs, ${reads} reads each,`,
);
console.log("one-way base delays 20–200 ms per client, clocks off by up to ±1 h\n");
for (const [i, c] of cases.entries()) {
  const { errors, clockErrors } = runCase(c, 1000 + i);
  console.log(c.name);
  console.log(`  position error       ${timingLine(errors)}`);
  console.log(`  listener clock error ${timingLine(clockErrors)}`);
  results[c.name] = { position_error: errors, listener_clock_error: clockErrors };
}
console.log("\nTarget (CLIENT.md): p99 under 30 ms with symmetric jitter.");
await writeResults("client-clock", results);
