// A Player on an HTMLMediaElement (<audio>, <video>), for `room.playback.attach`. Rate nudges
// keep the pitch (preservesPitch), so ±2 % is not heard as a pitch change.

import type { Player } from "./types.ts";

/** What the adapter uses of an HTMLMediaElement (so it also takes a test double). */
export interface MediaElementLike {
  currentTime: number;
  playbackRate: number;
  paused: boolean;
  src: string;
  preservesPitch?: boolean;
  play(): Promise<void> | void;
  pause(): void;
}

export interface MediaElementPlayerOptions {
  /** The URL of a song; without it, song changes are left to the app (playback.on("state")). */
  srcOf?: (songId: string) => string;
  /** Called when play() is refused (autoplay policy): ask the user for a gesture. */
  onPlayRefused?: (error: unknown) => void;
}

export function mediaElementPlayer(
  element: MediaElementLike,
  { srcOf, onPlayRefused }: MediaElementPlayerOptions = {},
): Player {
  if ("preservesPitch" in element) element.preservesPitch = true;
  const player: Player = {
    positionMs: () => element.currentTime * 1000,
    seek: (ms) => {
      element.currentTime = Math.max(0, ms) / 1000;
    },
    play: () => {
      try {
        const started = element.play();
        if (started && typeof started.catch === "function") {
          started.catch((error) => onPlayRefused?.(error));
        }
      } catch (error) {
        onPlayRefused?.(error);
      }
    },
    pause: () => element.pause(),
    setRate: (rate) => {
      element.playbackRate = rate;
    },
  };
  if (srcOf) {
    player.load = (songId) => {
      if (songId === null) {
        element.pause();
        return;
      }
      const src = srcOf(songId);
      if (element.src === src) return;
      element.src = src;
      // Resolves once the element can seek in the new song.
      const target = element as unknown as EventTarget;
      if (typeof target.addEventListener !== "function") return;
      return new Promise<void>((resolve) => {
        const done = () => {
          target.removeEventListener("loadedmetadata", done);
          target.removeEventListener("error", done);
          resolve();
        };
        target.addEventListener("loadedmetadata", done);
        target.addEventListener("error", done);
      });
    };
  }
  return player;
}
