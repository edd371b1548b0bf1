// The host's side (CLIENT.md guarantee 7). A player reports many times a second; `playback`
// gets at most one call per 500 ms with the latest report, while a song change or play / pause
// goes at once (right after a call in flight: calls are one at a time, so states arrive in
// order). `seq` comes from the server's clock, so it keeps increasing across reloads and
// devices, and never falls behind a stored state. Failures are retried like chat: the latest
// report, after Retry-After or 1, 2, 5, 10 s. The queue is published through `publish`, with an
// id that makes a retry safe.

import type { ServerClock } from "./clock.ts";
import { Emitter } from "./events.ts";
import { type FunctionsHttp, RoomsError } from "./http.ts";
import type { RoomPlayback } from "./playback.ts";
import type { RoomQueue } from "./queue.ts";
import { backoffMs } from "./retry.ts";
import { sleep, type TimerHandle, type Timers } from "./timers.ts";
import type { PlaybackState } from "./types.ts";

export interface PlaybackHostOptions {
  roomId: string;
  http: FunctionsHttp;
  clock: ServerClock;
  timers: Timers;
  playback: RoomPlayback;
  queue: RoomQueue;
  /** At most one position call per this many ms (500: the backend's conflation window). */
  minIntervalMs?: number;
  backoff?: readonly number[];
  /** The event setQueue publishes (default "queue:state"). */
  queueEvent?: string;
}

export interface HostEvents extends Record<string, unknown[]> {
  /** A playback call was answered. */
  sent: [{ state: PlaybackState; applied: boolean; seq: number }];
  /** A report the backend refused (not retried). */
  error: [RoomsError];
}

interface Report {
  songId: string | null;
  positionMs: number;
  isPlaying: boolean;
  /** Local time of the report. */
  at: number;
}

export interface Published {
  id: string;
  channel: string;
  event: string;
  timestamp: number;
  duplicate: boolean;
}

export class PlaybackHost extends Emitter<HostEvents> {
  readonly #options: PlaybackHostOptions;
  #latest: Report | null = null;
  #lastSent: Report | null = null;
  #urgent = false;
  #sending = false;
  #lastCallAt = -Infinity;
  #retryAt = 0;
  #failures = 0;
  #lastSeq = 0;
  #timer: TimerHandle | undefined;
  #stopped = false;
  #idle: (() => void)[] = [];
  #queueChain: Promise<unknown> = Promise.resolve();
  readonly #stop = new AbortController();

  constructor(options: PlaybackHostOptions) {
    super();
    this.#options = options;
    this.#lastSeq = options.playback.state?.seq ?? 0;
  }

  /** The seq of the last call. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** The player's state now; call it as often as the player ticks. */
  report(songId: string | null, positionMs: number, isPlaying: boolean): void {
    if (this.#stopped) return;
    const base = this.#lastSent;
    this.#latest = {
      songId,
      positionMs: Math.max(0, Math.round(positionMs)),
      isPlaying,
      at: this.#options.clock.localNow(),
    };
    if (!base || base.songId !== songId || base.isPlaying !== isPlaying) this.#urgent = true;
    this.#schedule();
  }

  /** Resolves once the latest report has been answered (or given up on). */
  flush(): Promise<void> {
    if (!this.#latest && !this.#sending) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Publishes the queue state on `room:{id}:queue` (persisted, so late joiners get it). Calls
   * leave in order; a retry carries the same id, so it is never published twice.
   */
  setQueue(
    payload: Record<string, unknown>,
    options: { event?: string; id?: string } = {},
  ): Promise<Published> {
    const event = options.event ?? this.#options.queueEvent ?? "queue:state";
    const id = options.id ?? `queue-${crypto.randomUUID()}`;
    const run = this.#queueChain.then(() => this.#publishQueue(payload, event, id));
    this.#queueChain = run.catch(() => {});
    return run;
  }

  stop(): void {
    this.#stopped = true;
    this.#stop.abort();
    this.#options.timers.clearTimeout(this.#timer);
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  async #publishQueue(
    payload: Record<string, unknown>,
    event: string,
    id: string,
  ): Promise<Published> {
    const { http, roomId, timers } = this.#options;
    for (let failures = 0;; failures++) {
      if (this.#stopped) throw new RoomsError(0, "left", "The room was left.");
      try {
        const { data } = await http.call<{ published: Published[] }>("publish", {
          body: { channel: `room:${roomId}:queue`, event, payload, id },
        });
        this.#options.queue.setLocal(payload, event);
        return data.published[0];
      } catch (error) {
        if (!(error instanceof RoomsError) || !error.retryable) throw error;
        await sleep(
          timers,
          error.retryAfterMs ?? backoffMs(failures, this.#options.backoff),
          this.#stop.signal,
        );
      }
    }
  }

  #schedule(): void {
    const { timers } = this.#options;
    timers.clearTimeout(this.#timer);
    if (this.#stopped || this.#sending || !this.#latest) return;
    const now = timers.now();
    const due = Math.max(
      this.#retryAt,
      this.#urgent ? now : this.#lastCallAt + (this.#options.minIntervalMs ?? 500),
    );
    if (due <= now) {
      this.#send();
      return;
    }
    this.#timer = timers.setTimeout(() => this.#schedule(), due - now);
  }

  async #send(): Promise<void> {
    const { http, clock, timers, roomId, playback } = this.#options;
    const report = this.#latest!;
    this.#latest = null;
    this.#urgent = false;
    this.#sending = true;
    this.#lastCallAt = timers.now();
    // Where the player is when the call reaches the server (which stamps updated_at then): run
    // on since the report, plus the way there (half a typical round trip).
    const oneWay = Number.isFinite(clock.typicalRttMs) ? clock.typicalRttMs / 2 : 0;
    const positionMs = report.isPlaying
      ? Math.round(report.positionMs + (clock.localNow() - report.at) + oneWay)
      : report.positionMs;
    const seq = Math.max(this.#lastSeq + 1, Math.floor(clock.now()));
    this.#lastSeq = seq;
    const previousSent = this.#lastSent;
    this.#lastSent = report;
    try {
      const answer = await http.call<{ applied: boolean; state: PlaybackState }>("playback", {
        body: {
          room_id: roomId,
          song_id: report.songId,
          position_ms: positionMs,
          is_playing: report.isPlaying,
          seq,
        },
      });
      this.#failures = 0;
      this.#retryAt = 0;
      const { applied, state } = answer.data;
      clock.addSample({
        sentAt: answer.sentAt,
        serverTime: state.server_time,
        receivedAt: answer.receivedAt,
      });
      playback.apply(state, "host");
      if (!applied && state.seq >= seq) {
        // A newer seq is stored (another device of the host): go on from it, and send again.
        this.#lastSeq = state.seq;
        this.#lastSent = previousSent;
        if (!this.#latest) this.#latest = report;
        this.#urgent = true;
      }
      this.emit("sent", { state, applied, seq });
    } catch (error) {
      const failure = error instanceof RoomsError
        ? error
        : new RoomsError(0, "network_error", String(error));
      if (failure.retryable && !this.#stopped) {
        // Try again with the newest report there is by then.
        this.#lastSent = previousSent;
        if (!this.#latest) this.#latest = report;
        if (
          !previousSent || previousSent.songId !== report.songId ||
          previousSent.isPlaying !== report.isPlaying
        ) {
          this.#urgent = true;
        }
        this.#retryAt = timers.now() +
          (failure.retryAfterMs ?? backoffMs(this.#failures++, this.#options.backoff));
      } else if (!this.#stopped) {
        this.emit("error", failure);
      }
    } finally {
      this.#sending = false;
      if (!this.#latest) { for (const resolve of this.#idle.splice(0)) resolve(); }
      this.#schedule();
    }
  }
}
