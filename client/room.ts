// A joined room: its four private channels, the late-join merge, the catch-ups and the state.
//
// Join (CLIENT.md guarantee 1): subscribe to room:{id}, :chat, :playback and :queue first, then
// read room-context, then merge; what arrived live meanwhile is kept only when newer than the
// snapshot (chat by seq, playback by seq, presence by version, queue by read order).
// Afterwards every moment where messages may have been missed — a channel joined again, a seq
// gap, the page waking — is followed by a catch-up (state "catching_up"): chat from
// history?after_seq=, playback and queue from rewind=1, presence by joining again.

import type { RealtimeChannel, SupabaseClient } from "@supabase/supabase-js";
import type { TokenKeeper } from "./auth.ts";
import { ChannelLink } from "./channels.ts";
import { RoomChat } from "./chat.ts";
import { ServerClock } from "./clock.ts";
import { Emitter } from "./events.ts";
import { PlaybackHost } from "./host.ts";
import { type Answer, type FunctionsHttp, RoomsError } from "./http.ts";
import { type PageEventSource, PageLifecycle, type WakeReason } from "./lifecycle.ts";
import { type Accepted, Outbox, type OutboxStorage } from "./outbox.ts";
import { RoomPlayback } from "./playback.ts";
import { RoomPresence } from "./presence.ts";
import { RoomQueue } from "./queue.ts";
import { retrying } from "./retry.ts";
import { sleep, type Timers } from "./timers.ts";
import type {
  Message,
  PlaybackState,
  PlayedSong,
  RoomContext,
  RoomInfo,
  RoomState,
} from "./types.ts";

export interface JoinOptions {
  /** Join presence with this user_info (the default, with `{}`), or `false` to only watch. */
  presence?: false | { info?: Record<string, unknown> };
  /** Messages in the snapshot (1..200, default 50). */
  chatLimit?: number;
  /** Plays in the snapshot's history (1..50, default 10). */
  historyLimit?: number;
  /** Keeps unsent chat across reloads (overrides the client's). */
  storage?: OutboxStorage;
  /** Give up joining after this long (default 30 s). */
  timeoutMs?: number;
}

export interface RoomEvents extends Record<string, unknown[]> {
  state: [RoomState, { previous: RoomState }];
  /** Any other broadcast on room:{id} (room meta). */
  meta: [string, Record<string, unknown>];
  /** Something the room could not fix by retrying. */
  error: [RoomsError];
}

/** What a room needs from its RoomsClient. */
export interface RoomContextDeps {
  supabase: SupabaseClient;
  http: FunctionsHttp;
  auth: TokenKeeper;
  timers: Timers;
  page: { window: PageEventSource | null; document: PageEventSource | null };
  backoff?: readonly number[];
  storage?: OutboxStorage;
  stuckAfterMs?: number;
  heartbeatMs?: number;
  onLeft: (room: Room) => void;
}

type Topic = "room" | "chat" | "playback" | "queue";

export class Room extends Emitter<RoomEvents> {
  readonly id: string;
  /** The room (room-context's `room`). */
  info: RoomInfo | null = null;
  /** The newest plays (room-context's `history`, newest first). */
  history: PlayedSong[] = [];
  readonly clock: ServerClock;
  readonly chat: RoomChat;
  readonly playback: RoomPlayback;
  readonly presence: RoomPresence;
  readonly queue: RoomQueue;
  /** The host's controls when the signed-in user hosts this room, else null. */
  host: PlaybackHost | null = null;

  readonly #deps: RoomContextDeps;
  readonly #outbox: Outbox;
  readonly #links: Record<Topic, ChannelLink>;
  readonly #lifecycle: PageLifecycle;
  readonly #stop = new AbortController();
  #state: RoomState = "joining";
  #joined = false;
  #left = false;
  #catchUps = 0;
  #resumedDuringJoin = new Set<Topic>();

  constructor(id: string, deps: RoomContextDeps, options: JoinOptions) {
    super();
    this.id = id;
    this.#deps = deps;
    const { http, timers, backoff } = deps;
    this.clock = new ServerClock({ now: () => timers.now() });
    this.#outbox = new Outbox({
      timers,
      backoff,
      storage: options.storage ?? deps.storage,
      storageKey: `${id}`,
      refreshAuth: () => deps.auth.refresh(),
      send: async (messages) =>
        (await http.call<{ accepted: Accepted[] }>("chat-send", {
          body: { room_id: id, messages },
        }))
          .data.accepted,
    });
    this.chat = new RoomChat({ roomId: id, http, outbox: this.#outbox, timers, backoff });
    this.chat.on("catching_up", (on) => this.#catchingUp(on ? 1 : -1));
    this.chat.on("error", (error) => this.emit("error", error));
    this.playback = new RoomPlayback(this.clock, timers);
    this.presence = new RoomPresence({
      roomId: id,
      http,
      clock: this.clock,
      timers,
      enabled: options.presence !== false,
      info: options.presence ? options.presence.info : undefined,
      heartbeatMs: deps.heartbeatMs,
      backoff,
    });
    this.presence.on("error", (error) => this.emit("error", error));
    this.queue = new RoomQueue(id, http);
    this.queue.on("error", (error) => this.emit("error", error));
    this.#links = {
      room: this.#link(
        `room:${id}`,
        (channel) =>
          channel.on("broadcast", { event: "*" }, ({ event, payload, meta }) => {
            const data = withoutRealtimeId(payload, meta);
            if (event.startsWith("presence:")) this.presence.receive(event, data);
            else this.emit("meta", event, data);
          }),
      ),
      chat: this.#link(
        `room:${id}:chat`,
        (channel) =>
          channel.on("broadcast", { event: "chat:batch" }, ({ payload }) => {
            this.chat.receive((payload as { messages?: Message[] })?.messages ?? []);
          }),
      ),
      playback: this.#link(
        `room:${id}:playback`,
        (channel) =>
          channel.on("broadcast", { event: "playback:position" }, ({ payload, meta }) => {
            const state = withoutRealtimeId(payload, meta) as unknown as PlaybackState;
            this.clock.addOneWay(state.server_time, timers.now());
            this.playback.apply(state, "live");
          }),
      ),
      queue: this.#link(
        `room:${id}:queue`,
        (channel) =>
          channel.on("broadcast", { event: "*" }, ({ event, payload, meta }) => {
            this.queue.receive(event, withoutRealtimeId(payload, meta));
          }),
      ),
    };
    for (const [topic, link] of Object.entries(this.#links) as [Topic, ChannelLink][]) {
      link.on("up", ({ resumed }) => {
        if (resumed) this.#catchUp(topic);
        this.#updateState();
      });
      link.on("down", () => this.#updateState());
    }
    this.#lifecycle = new PageLifecycle({ timers, ...deps.page });
    this.#lifecycle.on("wake", (reason) => this.#wake(reason));
    this.#lifecycle.on("hide", () => this.presence.hide());
    this.#lifecycle.on("show", () => {
      this.presence.show().catch(() => {});
    });
  }

  /** "joining" | "live" | "catching_up" | "offline" | "left" */
  get state(): RoomState {
    return this.#state;
  }

  /** Joins: subscribe, then snapshot, then merge. Used by RoomsClient.join. */
  async join(options: JoinOptions): Promise<void> {
    const { http, timers, auth } = this.#deps;
    const timeoutMs = options.timeoutMs ?? 30_000;
    let timer: ReturnType<Timers["setTimeout"]> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = timers.setTimeout(
        () => reject(new RoomsError(0, "timeout", `Joining the room took over ${timeoutMs} ms.`)),
        timeoutMs,
      );
    });
    timedOut.catch(() => {});
    try {
      await Promise.race([this.#join(options, http, auth), timedOut]);
    } catch (error) {
      await this.#teardown();
      throw error;
    } finally {
      timers.clearTimeout(timer);
    }
  }

  /**
   * Leaves: waits up to `flushTimeoutMs` for chat still being sent, leaves presence (a
   * keepalive request) and the channels. Unsent messages fail with `left` (a storage adapter
   * keeps them for the next join).
   */
  async leave({ flushTimeoutMs = 5000 }: { flushTimeoutMs?: number } = {}): Promise<void> {
    if (this.#left) return;
    if (this.#joined) await this.#outbox.idle(flushTimeoutMs);
    await this.#teardown();
  }

  async #join(options: JoinOptions, http: FunctionsHttp, auth: TokenKeeper): Promise<void> {
    // Realtime must have the session's token before the first join, or it joins as anon.
    await auth.start();
    try {
      await Promise.all(Object.values(this.#links).map((link) => link.open()));
    } catch (error) {
      throw new RoomsError(
        403,
        "not_a_member",
        `Realtime refused the room's channels: ${error instanceof Error ? error.message : error}`,
      );
    }
    this.#checkNotLeft();

    const queueLiveBefore = this.queue.liveCount;
    const answer = await this.#retrying(() =>
      http.call<RoomContext>("room-context", {
        query: {
          room_id: this.id,
          chat_limit: options.chatLimit,
          history_limit: options.historyLimit,
        },
      })
    );
    this.#checkNotLeft();
    const context = answer.data;
    this.#sample(answer, context.server_time);
    this.info = context.room;
    this.history = context.history ?? [];
    this.chat.loadSnapshot(context.chat ?? []);
    this.playback.apply(context.playback, "snapshot");
    this.presence.loadSnapshot(context.presence);
    await this.queue.loadSnapshot(context.queue ?? null, queueLiveBefore).catch(() => {});
    this.#checkNotLeft();

    if (context.room.host_id === auth.userId()) {
      this.host = new PlaybackHost({
        roomId: this.id,
        http,
        clock: this.clock,
        timers: this.#deps.timers,
        playback: this.playback,
        queue: this.queue,
        backoff: this.#deps.backoff,
      });
      this.host.on("error", (error) => this.emit("error", error));
    }
    await this.presence.start().catch(() => {});
    this.#checkNotLeft();
    await this.#outbox.start();
    this.#checkNotLeft();
    this.#lifecycle.start();
    this.#joined = true;
    for (const topic of this.#resumedDuringJoin) this.#catchUp(topic);
    this.#resumedDuringJoin.clear();
    this.#updateState();
  }

  /** Stops a join that was given up on (timeout, leave) at its next step. */
  #checkNotLeft(): void {
    if (this.#stop.signal.aborted) throw new RoomsError(0, "left", "The room was left.");
  }

  #link(topic: string, bind: (channel: RealtimeChannel) => void): ChannelLink {
    const { supabase, timers, auth, backoff, stuckAfterMs } = this.#deps;
    return new ChannelLink({
      supabase,
      topic,
      bind,
      timers,
      backoff,
      stuckAfterMs,
      refreshAuth: () => auth.refresh(),
    });
  }

  /** After a channel was joined again: read what it may have missed. */
  #catchUp(topic: Topic): void {
    if (this.#left) return;
    if (!this.#joined) {
      // Joined again while the join is still merging: catch up once it is done.
      this.#resumedDuringJoin.add(topic);
      return;
    }
    if (topic === "chat") {
      this.chat.catchUp().catch(() => {});
    } else if (topic === "playback") {
      this.#track(this.#refreshPlayback());
    } else if (topic === "queue") {
      this.#track(this.#retrying(() => this.queue.refresh()));
    } else {
      // Joining again answers with the snapshot (and brings back a connection that expired).
      this.#track(
        this.presence.join().then(() => {
          if (!this.presence.me) return this.presence.refresh();
        }),
      );
    }
  }

  #wake(reason: WakeReason): void {
    if (!this.#joined || this.#left) return;
    const { supabase, auth } = this.#deps;
    if (reason === "timer_gap" || reason === "resume") {
      // The local clock may have moved while the page slept: take new samples.
      if (this.presence.me) this.clock.reset();
    }
    auth.refresh().catch(() => {}).finally(() => {
      if (!supabase.realtime.isConnected()) supabase.realtime.connect();
      for (const link of Object.values(this.#links)) link.nudge();
    });
    this.chat.catchUp().catch(() => {});
    this.#track(this.#refreshPlayback());
    this.#track(this.#retrying(() => this.queue.refresh()));
    this.#track(this.presence.heartbeat());
    this.#outbox.retryNow();
  }

  async #refreshPlayback(): Promise<void> {
    const answer = await this.#retrying(() =>
      this.#deps.http.call<{ items: { data: PlaybackState }[] }>("history", {
        query: { channel: `room:${this.id}:playback`, rewind: 1 },
      }).catch((error) => {
        if (error instanceof RoomsError && error.status === 404) return null;
        throw error;
      })
    );
    const last = answer?.data.items.at(-1)?.data;
    if (last) this.playback.apply(last, "rewind");
  }

  /** Runs `attempt`, retrying transient failures with the backoff until the room is left. */
  #retrying<T>(attempt: () => Promise<T>): Promise<T> {
    const { timers, backoff } = this.#deps;
    return retrying(attempt, {
      sleep: (ms, signal) => sleep(timers, ms, signal),
      signal: this.#stop.signal,
      schedule: backoff,
      isRetryable: (error) =>
        error instanceof RoomsError && error.retryable
          ? { retryAfterMs: error.retryAfterMs }
          : false,
    });
  }

  /** Counts a catch-up for the state while it runs. */
  #track(work: Promise<unknown>): void {
    this.#catchingUp(1);
    work.catch((error) => {
      if (error instanceof RoomsError && !error.retryable && !this.#left) this.emit("error", error);
    }).finally(() => this.#catchingUp(-1));
  }

  #catchingUp(change: number): void {
    this.#catchUps += change;
    this.#updateState();
  }

  #sample(answer: Answer<unknown>, serverTime: number): void {
    this.clock.addSample({ sentAt: answer.sentAt, serverTime, receivedAt: answer.receivedAt });
  }

  #updateState(): void {
    const next: RoomState = this.#left
      ? "left"
      : !this.#joined
      ? "joining"
      : Object.values(this.#links).some((link) => !link.joined)
      ? "offline"
      : this.#catchUps > 0
      ? "catching_up"
      : "live";
    if (next === this.#state) return;
    const previous = this.#state;
    this.#state = next;
    this.emit("state", next, { previous });
  }

  async #teardown(): Promise<void> {
    if (this.#left) return;
    this.#left = true;
    this.#stop.abort();
    this.#outbox.stop(new RoomsError(0, "left", "The room was left before the message was sent."));
    this.host?.stop();
    this.chat.stop();
    this.playback.stop();
    this.#lifecycle.stop();
    await this.presence.leave();
    await Promise.all(Object.values(this.#links).map((link) => link.close()));
    this.#updateState();
    this.#deps.onLeft(this);
  }
}

/**
 * realtime.send adds the row's uuid to a payload that has no `id`; it is Realtime's, not the
 * message's, and is dropped when it equals `meta.id`.
 */
function withoutRealtimeId(payload: unknown, meta: unknown): Record<string, unknown> {
  const data = (payload ?? {}) as Record<string, unknown>;
  const metaId = (meta as { id?: unknown } | undefined)?.id;
  if (metaId === undefined || data.id !== metaId) return data;
  const { id: _id, ...rest } = data;
  return rest;
}
