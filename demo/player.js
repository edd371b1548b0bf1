// A simulated player: a position clock with the Player interface of the client library
// (positionMs, seek, play, pause, setRate, load), so that `room.playback.attach` keeps it in step
// with the host exactly as it would an <audio> element (mediaElementPlayer). No sound plays.

export class SimulatedPlayer {
  /** The song loaded (the room's song id), or null. */
  songId = null;
  rate = 1;
  #baseMs = 0;
  /** performance.now() when the clock last started or was re-based, or null while paused. */
  #since = null;

  get playing() {
    return this.#since !== null;
  }

  positionMs() {
    if (this.#since === null) return this.#baseMs;
    return this.#baseMs + (performance.now() - this.#since) * this.rate;
  }

  seek(ms) {
    this.#baseMs = Math.max(0, ms);
    if (this.#since !== null) this.#since = performance.now();
  }

  play() {
    if (this.#since === null) this.#since = performance.now();
  }

  pause() {
    if (this.#since === null) return;
    this.#baseMs = this.positionMs();
    this.#since = null;
  }

  setRate(rate) {
    this.#rebase();
    this.rate = rate;
  }

  load(songId) {
    this.songId = songId;
    this.#baseMs = 0;
    if (this.#since !== null) this.#since = performance.now();
  }

  #rebase() {
    if (this.#since === null) return;
    this.#baseMs = this.positionMs();
    this.#since = performance.now();
  }
}
