// What the room is playing and where (CLIENT.md guarantee 5). The state is the host's latest,
// ordered by its `seq`: a state whose seq is not newer than the one held is ignored, wherever
// it came from (snapshot, broadcast, rewind, the host's own answer). `positionMs()` runs the
// position on with the server's clock while playing.

import type { ServerClock } from "./clock.ts";
import { type Correction, type DriftPolicy, PlayerSync } from "./drift.ts";
import { Emitter } from "./events.ts";
import type { Timers } from "./timers.ts";
import type { PlaybackState, Player } from "./types.ts";

export type PlaybackSource = "snapshot" | "live" | "rewind" | "host";

export interface PlaybackEvents extends Record<string, unknown[]> {
  state: [PlaybackState, { source: PlaybackSource; previous: PlaybackState | null }];
  correction: [Correction];
}

export class RoomPlayback extends Emitter<PlaybackEvents> {
  #state: PlaybackState | null = null;
  #updatedAt = 0;
  readonly #clock: ServerClock;
  readonly #timers: Timers;
  readonly #syncs = new Set<PlayerSync>();

  constructor(clock: ServerClock, timers: Timers) {
    super();
    this.#clock = clock;
    this.#timers = timers;
  }

  /** The host's latest state, or null when nothing was ever played here. */
  get state(): PlaybackState | null {
    return this.#state;
  }

  /** Where the song is now, on the server's clock (0 with no state). */
  positionMs(): number {
    const state = this.#state;
    if (!state) return 0;
    if (!state.is_playing) return state.position_ms;
    return Math.max(0, state.position_ms + (this.#clock.now() - this.#updatedAt));
  }

  /**
   * Keeps `player` on the room's position with the drift policy (defaults of CLIENT.md,
   * overridable); returns the function that stops it.
   */
  attach(player: Player, policy?: Partial<DriftPolicy>): () => void {
    const sync = new PlayerSync({
      player,
      policy,
      timers: this.#timers,
      target: () =>
        this.#state && {
          songId: this.#state.song_id,
          playing: this.#state.is_playing,
          positionMs: this.positionMs(),
        },
    });
    sync.on("correction", (correction) => this.emit("correction", correction));
    this.#syncs.add(sync);
    sync.start();
    return () => {
      sync.stop();
      this.#syncs.delete(sync);
    };
  }

  /** Applies a state if it is newer than the one held; returns whether it was. */
  apply(state: PlaybackState | null | undefined, source: PlaybackSource): boolean {
    if (!state || typeof state.seq !== "number") return false;
    if (this.#state && state.seq <= this.#state.seq) return false;
    const previous = this.#state;
    this.#state = state;
    this.#updatedAt = Date.parse(state.updated_at);
    this.emit("state", state, { source, previous });
    for (const sync of this.#syncs) sync.update();
    return true;
  }

  /** Stops every attached player's sync. */
  stop(): void {
    for (const sync of this.#syncs) sync.stop();
    this.#syncs.clear();
  }
}
