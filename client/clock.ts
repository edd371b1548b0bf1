// The server's clock as seen from here, NTP style. Each HTTP answer that carries `server_time`
// is a sample: the request left at local t0, the answer arrived at t3, so the server read its
// clock about half way: offset = server_time − (t0 + t3) / 2, uncertain by at most rtt / 2.
// Of the recent samples the one with the smallest round trip is the least uncertain, so that
// is the one used (jellyfin's TimeSync keeps 8). A broadcast carrying `server_time` travelled
// one way only: it cannot give the offset, but it bounds it from below (the message cannot
// arrive before it was sent), which corrects an estimate skewed by a slow way back.

export interface ClockSample {
  /** Local time the request left. */
  sentAt: number;
  /** The server's clock in its answer (epoch ms). */
  serverTime: number;
  /** Local time the answer arrived. */
  receivedAt: number;
}

export interface ServerClockOptions {
  /** Local wall clock (epoch ms). */
  now?: () => number;
  /** How many recent round-trip samples to choose from. */
  maxSamples?: number;
  /** Samples (and one-way bounds) older than this are forgotten. */
  maxAgeMs?: number;
}

interface Kept {
  offset: number;
  rtt: number;
  at: number;
}

export class ServerClock {
  readonly #now: () => number;
  readonly #maxSamples: number;
  readonly #maxAgeMs: number;
  #samples: Kept[] = [];
  #lowerBounds: { bound: number; at: number }[] = [];
  #offset = 0;
  #rtt = Number.POSITIVE_INFINITY;

  constructor(
    { now = () => Date.now(), maxSamples = 8, maxAgeMs = 10 * 60_000 }: ServerClockOptions = {},
  ) {
    this.#now = now;
    this.#maxSamples = maxSamples;
    this.#maxAgeMs = maxAgeMs;
  }

  /** server time − local time, in ms (0 until the first sample). */
  get offsetMs(): number {
    return this.#offset;
  }

  /** The round trip of the sample in use (Infinity until the first sample). */
  get rttMs(): number {
    return this.#rtt;
  }

  /**
   * The median round trip of the recent samples: what a request typically takes, so half of it
   * predicts the way there (the smallest round trip, best for the offset, is biased low for that).
   */
  get typicalRttMs(): number {
    if (this.#samples.length === 0) return Number.POSITIVE_INFINITY;
    const sorted = this.#samples.map((s) => s.rtt).sort((a, b) => a - b);
    const middle = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  }

  /** Whether at least one round-trip sample is in use. */
  get synced(): boolean {
    return this.#samples.length > 0;
  }

  /** The server's clock now, epoch ms, as estimated here. */
  now(): number {
    return this.#now() + this.#offset;
  }

  /** Local time now (the clock this estimator was given). */
  localNow(): number {
    return this.#now();
  }

  /** A round trip that carried the server's clock. */
  addSample({ sentAt, serverTime, receivedAt }: ClockSample): void {
    if (![sentAt, serverTime, receivedAt].every(Number.isFinite) || receivedAt < sentAt) return;
    this.#samples.push({
      offset: serverTime - (sentAt + receivedAt) / 2,
      rtt: receivedAt - sentAt,
      at: receivedAt,
    });
    if (this.#samples.length > this.#maxSamples) this.#samples.shift();
    this.#update();
  }

  /** A message sent at `serverTime` (server clock) that arrived here at `receivedAt`. */
  addOneWay(serverTime: number, receivedAt: number): void {
    if (!Number.isFinite(serverTime) || !Number.isFinite(receivedAt)) return;
    this.#lowerBounds.push({ bound: serverTime - receivedAt, at: receivedAt });
    if (this.#lowerBounds.length > this.#maxSamples) this.#lowerBounds.shift();
    this.#update();
  }

  /** Forgets every sample: after the page slept or the local clock jumped. */
  reset(): void {
    this.#samples = [];
    this.#lowerBounds = [];
    this.#offset = 0;
    this.#rtt = Number.POSITIVE_INFINITY;
  }

  #update(): void {
    const oldest = this.#now() - this.#maxAgeMs;
    // Keep the newest sample even when old: an old estimate beats none.
    this.#samples = this.#samples.filter((s, i, all) => s.at >= oldest || i === all.length - 1);
    this.#lowerBounds = this.#lowerBounds.filter((b) => b.at >= oldest);
    const best = this.#samples.reduce<Kept | undefined>(
      (min, s) => (min === undefined || s.rtt < min.rtt ? s : min),
      undefined,
    );
    const bound = this.#lowerBounds.reduce((max, b) => Math.max(max, b.bound), -Infinity);
    if (best) {
      this.#offset = Math.max(best.offset, bound);
      this.#rtt = best.rtt;
    } else if (Number.isFinite(bound)) {
      // Only one-way messages so far: the bound is the best guess there is.
      this.#offset = bound;
    }
  }
}
