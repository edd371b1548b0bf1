// Keeping a player on the room's position (CLIENT.md guarantee 6). `decideDrift` is the policy,
// a pure function of the measured drift; `PlayerSync` applies it to a player at most every
// `checkEveryMs`, and applies a song change and play / pause at once. Defaults follow
// jellyfin-web's SyncPlay (rate nudges from 60 ms, a seek from 400 ms, checks at most every
// 1.5 s), with the rate kept within ±2 %, under which a pitch change is hard to hear.

import { Emitter } from "./events.ts";
import type { TimerHandle, Timers } from "./timers.ts";
import type { Player } from "./types.ts";

export interface DriftPolicy {
  /** Drift below this is left alone. */
  ignoreBelowMs: number;
  /** Drift at or above this is corrected by a seek. */
  seekFromMs: number;
  /** Without a settable rate, drift above this (and under seekFromMs) is corrected by a seek. */
  seekWithoutRateAboveMs: number;
  /** The largest playback-rate change of a nudge (0.02 = ±2 %). */
  maxRateChange: number;
  /** A nudge ends once the drift is under this (or changes sign). */
  settleBelowMs: number;
  /** Corrections are checked at most this often. */
  checkEveryMs: number;
  /** Added to a seek's target, for players that take a while to seek. */
  seekLeadMs: number;
}

export const defaultDriftPolicy: DriftPolicy = {
  ignoreBelowMs: 60,
  seekFromMs: 400,
  seekWithoutRateAboveMs: 200,
  maxRateChange: 0.02,
  settleBelowMs: 20,
  checkEveryMs: 1500,
  seekLeadMs: 0,
};

export type DriftDecision =
  | { action: "none" }
  | { action: "rate"; rate: number }
  | { action: "seek"; toMs: number };

export interface DriftInput {
  /** player position − room position: positive when the player is ahead. */
  driftMs: number;
  /** Where the room is now. */
  targetMs: number;
  /** Whether the player can change its rate. */
  canSetRate: boolean;
  /** The rate the player is at now (1 when not nudged). */
  currentRate: number;
  /** Whether the room is playing (a paused room is only ever corrected by a seek). */
  playing: boolean;
}

/** What to do about a measured drift. */
export function decideDrift(
  input: DriftInput,
  policy: DriftPolicy = defaultDriftPolicy,
): DriftDecision {
  const { driftMs, targetMs, canSetRate, currentRate, playing } = input;
  const size = Math.abs(driftMs);
  const nudging = currentRate !== 1;
  const seek = (): DriftDecision => ({
    action: "seek",
    toMs: Math.max(0, targetMs + (playing ? policy.seekLeadMs : 0)),
  });

  if (size >= policy.seekFromMs) return seek();
  if (!playing) return size >= policy.ignoreBelowMs ? seek() : { action: "none" };

  if (nudging) {
    // The nudge in progress: stop it once close enough or past the target, else adjust it.
    const pushingAhead = currentRate > 1;
    const passed = pushingAhead ? driftMs >= 0 : driftMs <= 0;
    if (size < policy.settleBelowMs || passed) return { action: "rate", rate: 1 };
  } else if (size < policy.ignoreBelowMs) {
    return { action: "none" };
  }

  if (canSetRate) {
    // Close the gap over the next check interval, within the allowed rate change.
    const change = Math.min(policy.maxRateChange, size / policy.checkEveryMs);
    const rate = round(driftMs > 0 ? 1 - change : 1 + change);
    return rate === currentRate ? { action: "none" } : { action: "rate", rate };
  }
  return size > policy.seekWithoutRateAboveMs ? seek() : { action: "none" };
}

function round(rate: number): number {
  return Math.round(rate * 10_000) / 10_000;
}

/** What the room says the player should do now. */
export interface PlaybackTarget {
  songId: string | null;
  playing: boolean;
  positionMs: number;
}

/** A change `PlayerSync` made to the player. */
export interface Correction {
  kind: "load" | "play" | "pause" | "seek" | "rate";
  /** player − room before the correction (null for a song change). */
  driftMs: number | null;
  targetMs: number;
  songId: string | null;
  /** For "seek": where to; for "rate": the new rate. */
  toMs?: number;
  rate?: number;
  reason: "song_change" | "play_pause" | "drift" | "settled" | "attach";
}

export interface PlayerSyncOptions {
  player: Player;
  /** Where the room is; null while there is no playback state. */
  target: () => PlaybackTarget | null;
  policy?: Partial<DriftPolicy>;
  timers: Timers;
}

/**
 * Keeps one player on the room: `update()` after every applied playback state (a song change or
 * play / pause is applied at once), and a timer checks the drift every `checkEveryMs`.
 */
export class PlayerSync extends Emitter<{ correction: [Correction] }> {
  readonly policy: DriftPolicy;
  readonly #player: Player;
  readonly #target: () => PlaybackTarget | null;
  readonly #timers: Timers;
  #timer: TimerHandle | undefined;
  #rate = 1;
  #songId: string | null | undefined = undefined;
  #playing: boolean | undefined = undefined;
  #lastCheckAt = -Infinity;
  #stopped = false;
  #loading = false;

  constructor({ player, target, policy, timers }: PlayerSyncOptions) {
    super();
    this.#player = player;
    this.#target = target;
    this.#timers = timers;
    this.policy = { ...defaultDriftPolicy, ...policy };
  }

  /** Starts keeping the player in sync. */
  start(): void {
    this.update("attach");
    this.#schedule();
  }

  /** Stops; a nudged rate goes back to 1. */
  stop(): void {
    this.#stopped = true;
    this.#timers.clearTimeout(this.#timer);
    if (this.#rate !== 1) this.#setRate(1);
  }

  /** The room's state changed: apply a song change or play / pause at once. */
  update(reason: "attach" | "state" = "state"): void {
    if (this.#stopped || this.#loading) return;
    const target = this.#target();
    if (!target) return;
    const songChanged = this.#songId === undefined || target.songId !== this.#songId;
    const playChanged = target.playing !== this.#playing;
    if (!songChanged && !playChanged) return;
    if (songChanged) {
      this.#songId = target.songId;
      if (this.#player.load) {
        const loading = this.#player.load(target.songId);
        this.#emit({
          kind: "load",
          driftMs: null,
          reason: reason === "attach" ? "attach" : "song_change",
        }, target);
        if (loading instanceof Promise) {
          // Seek and play once the song is there, to where the room is by then.
          this.#loading = true;
          this.#playing = target.playing;
          const settle = () => {
            this.#loading = false;
            this.#settleAfterLoad();
          };
          loading.then(settle, settle);
          return;
        }
      }
    }
    this.#apply(
      target,
      songChanged ? (reason === "attach" ? "attach" : "song_change") : "play_pause",
    );
  }

  /** Checks the drift now if the last check was at least `checkEveryMs` ago. */
  check(force = false): void {
    if (this.#stopped) return;
    const now = this.#timers.now();
    if (!force && now - this.#lastCheckAt < this.policy.checkEveryMs) return;
    this.#lastCheckAt = now;
    const target = this.#target();
    if (!target || target.songId !== this.#songId || this.#loading) return;
    const driftMs = this.#player.positionMs() - target.positionMs;
    const decision = decideDrift({
      driftMs,
      targetMs: target.positionMs,
      canSetRate: typeof this.#player.setRate === "function",
      currentRate: this.#rate,
      playing: target.playing,
    }, this.policy);
    if (decision.action === "seek") {
      if (this.#rate !== 1) this.#setRate(1);
      this.#player.seek(decision.toMs);
      this.#emit({ kind: "seek", driftMs, toMs: decision.toMs, reason: "drift" }, target);
    } else if (decision.action === "rate") {
      this.#setRate(decision.rate);
      this.#emit({
        kind: "rate",
        driftMs,
        rate: decision.rate,
        reason: decision.rate === 1 ? "settled" : "drift",
      }, target);
    }
  }

  #settleAfterLoad(): void {
    const target = this.#target();
    if (!target || this.#stopped) return;
    // The song changed again while this one loaded: load that one.
    if (target.songId !== this.#songId) return this.update();
    this.#apply(target, "song_change");
  }

  #apply(target: PlaybackTarget, reason: Correction["reason"]): void {
    if (this.#rate !== 1) this.#setRate(1);
    const driftMs = this.#player.positionMs() - target.positionMs;
    const toMs = Math.max(0, target.positionMs + (target.playing ? this.policy.seekLeadMs : 0));
    if (reason !== "play_pause" || Math.abs(driftMs) >= this.policy.ignoreBelowMs) {
      this.#player.seek(toMs);
      this.#emit({ kind: "seek", driftMs, toMs, reason }, target);
    }
    this.#playing = target.playing;
    if (target.playing) this.#player.play();
    else this.#player.pause();
    this.#emit({ kind: target.playing ? "play" : "pause", driftMs, reason }, target);
    this.#lastCheckAt = this.#timers.now();
  }

  #setRate(rate: number): void {
    this.#rate = rate;
    this.#player.setRate?.(rate);
  }

  #emit(
    correction: Omit<Correction, "targetMs" | "songId">,
    target: PlaybackTarget,
  ): void {
    this.emit("correction", { ...correction, targetMs: target.positionMs, songId: target.songId });
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = this.#timers.setTimeout(() => {
      this.check();
      this.#schedule();
    }, this.policy.checkEveryMs);
  }
}
