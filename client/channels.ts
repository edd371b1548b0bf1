// One private Realtime channel that stays joined (CLIENT.md guarantees 2 and 4). realtime-js
// reports SUBSCRIBED again after every rejoin; each one after the first is a moment where
// messages may have been missed, so it is reported as `resumed` for the room to catch up. A
// channel the server closed (an expired token, a revoked right) is removed by realtime-js and
// never comes back on its own: it is opened again, with the session's current token, after
// 1, 2, 5, 10 s. realtime-js rejoins an errored channel itself, but with the token of its last
// join: the token is refreshed first, and a channel that still is not back after
// `stuckAfterMs` while the socket is up is replaced.

import type { RealtimeChannel, SupabaseClient } from "@supabase/supabase-js";
import { Emitter } from "./events.ts";
import { backoffMs, defaultBackoffMs } from "./retry.ts";
import type { TimerHandle, Timers } from "./timers.ts";

export interface ChannelLinkOptions {
  supabase: SupabaseClient;
  topic: string;
  /** Binds the channel's listeners (called for every new channel object). */
  bind: (channel: RealtimeChannel) => void;
  /** Gives Realtime a fresh token before a rejoin. */
  refreshAuth: () => Promise<void>;
  timers: Timers;
  backoff?: readonly number[];
  stuckAfterMs?: number;
}

export interface ChannelLinkEvents extends Record<string, unknown[]> {
  /** Joined; `resumed` when it had been joined before (messages may have been missed). */
  up: [{ resumed: boolean }];
  /** Not joined any more (it will come back by itself). */
  down: [{ status: string; reason: string | null }];
  /** The server refused the join: `reason` is its message (e.g. Unauthorized: …). */
  refused: [{ reason: string }];
}

export class ChannelLink extends Emitter<ChannelLinkEvents> {
  readonly topic: string;
  readonly #options: ChannelLinkOptions;
  #channel: RealtimeChannel | undefined;
  #generation = 0;
  #everUp = false;
  #up = false;
  #attempt = 0;
  #reopenTimer: TimerHandle | undefined;
  #stuckTimer: TimerHandle | undefined;
  #stopped = false;
  #lastReason: string | null = null;

  constructor(options: ChannelLinkOptions) {
    super();
    this.topic = options.topic;
    this.#options = options;
  }

  get joined(): boolean {
    return this.#up;
  }

  /** The realtime-js channel in use. */
  get channel(): RealtimeChannel | undefined {
    return this.#channel;
  }

  /** Subscribes; resolves at the first SUBSCRIBED, rejects if the server refuses the join. */
  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const offUp = this.once("up", () => {
        offRefused();
        resolve();
      });
      const offRefused = this.once("refused", ({ reason }) => {
        offUp();
        reject(new Error(reason));
      });
      this.#subscribe().catch(reject);
    });
  }

  /** Leaves the channel for good. */
  async close(): Promise<void> {
    this.#stopped = true;
    this.#generation++;
    this.#options.timers.clearTimeout(this.#reopenTimer);
    this.#options.timers.clearTimeout(this.#stuckTimer);
    const channel = this.#channel;
    this.#channel = undefined;
    this.#up = false;
    if (channel) await this.#options.supabase.removeChannel(channel).catch(() => {});
  }

  /** The socket is back or the page woke: make sure this channel is (re)joined soon. */
  nudge(): void {
    if (this.#stopped || this.#up) return;
    const channel = this.#channel;
    if (!channel || channel.state === "closed") {
      this.#options.timers.clearTimeout(this.#reopenTimer);
      this.#reopen(0);
    }
  }

  async #subscribe(): Promise<void> {
    const generation = ++this.#generation;
    const { supabase, topic, bind } = this.#options;
    let channel = supabase.channel(topic, { config: { private: true } });
    if (channel.joinedOnce) {
      // supabase-js hands out the channel it holds for a topic: one still leaving. Let it go.
      await supabase.removeChannel(channel).catch(() => {});
      if (generation !== this.#generation || this.#stopped) return;
      channel = supabase.channel(topic, { config: { private: true } });
    }
    this.#channel = channel;
    bind(channel);
    channel.on("system", {}, (message: { status?: string; message?: string }) => {
      if (generation === this.#generation && message?.status === "error") {
        this.#lastReason = message.message ?? null;
      }
    });
    channel.subscribe((status, error) => {
      if (generation !== this.#generation || this.#stopped) return;
      if (status === "SUBSCRIBED") {
        const resumed = this.#everUp;
        this.#everUp = true;
        this.#up = true;
        this.#attempt = 0;
        this.#lastReason = null;
        this.#options.timers.clearTimeout(this.#stuckTimer);
        this.emit("up", { resumed });
        return;
      }
      const reason = error?.message ?? this.#lastReason;
      const wasUp = this.#up;
      this.#up = false;
      if (wasUp || status !== "CLOSED") this.emit("down", { status, reason });
      if (status === "CHANNEL_ERROR" && reason && isRefusal(reason) && !this.#everUp) {
        // A first join refused for rights: the room cannot be joined.
        this.emit("refused", { reason });
        this.#generation++;
        this.#channel = undefined;
        supabase.removeChannel(channel).catch(() => {});
        return;
      }
      // The token may be why (expired while offline or asleep): the next join takes a fresh one.
      this.#options.refreshAuth().catch(() => {});
      if (status === "CLOSED") {
        this.#channel = undefined;
        this.#reopen(backoffMs(this.#attempt++, this.#options.backoff ?? defaultBackoffMs));
      } else {
        this.#watchStuck(channel, generation);
      }
    });
  }

  /** realtime-js retries an errored channel itself; replace it if that does not work out. */
  #watchStuck(channel: RealtimeChannel, generation: number): void {
    const { timers } = this.#options;
    timers.clearTimeout(this.#stuckTimer);
    this.#stuckTimer = timers.setTimeout(() => {
      if (generation !== this.#generation || this.#up || this.#stopped) return;
      if (!this.#options.supabase.realtime.isConnected()) {
        // No socket: channels rejoin when it opens. Look again later.
        this.#watchStuck(channel, generation);
        return;
      }
      this.#generation++;
      this.#channel = undefined;
      this.#options.supabase.removeChannel(channel).catch(() => {}).finally(() => this.#reopen(0));
    }, this.#options.stuckAfterMs ?? 15_000);
  }

  #reopen(delayMs: number): void {
    const { timers } = this.#options;
    timers.clearTimeout(this.#reopenTimer);
    this.#reopenTimer = timers.setTimeout(async () => {
      if (this.#stopped) return;
      await this.#options.refreshAuth().catch(() => {});
      if (!this.#stopped && !this.#up) await this.#subscribe();
    }, delayMs);
  }
}

/** A join refused because of rights, not because of the connection or the token. */
function isRefusal(reason: string): boolean {
  return /Unauthorized|permissions? to read/i.test(reason) && !/expired/i.test(reason);
}
