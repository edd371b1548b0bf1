// The room's queue: the payload of the last message on `room:{id}:queue` (persist last). The
// snapshot (room-context's `queue`) and `history?rewind=1` carry the message's id; a live
// broadcast does not, so ordering is by when things were read: a live message that arrived
// while a snapshot or rewind was being read may or may not be in it, and the rewind is read
// again; one that arrives later is newer than what was read.

import { Emitter } from "./events.ts";
import { type FunctionsHttp, RoomsError } from "./http.ts";
import type { ChannelMessage } from "./types.ts";

export type QueueSource = "snapshot" | "live" | "rewind" | "local";

export interface QueueEvents extends Record<string, unknown[]> {
  state: [Record<string, unknown> | null, { event: string | null; source: QueueSource }];
  error: [RoomsError];
}

export class RoomQueue extends Emitter<QueueEvents> {
  #state: Record<string, unknown> | null = null;
  #event: string | null = null;
  #id: number | string | null = null;
  #ready = false;
  /** Live messages seen so far: a read that saw some arrive meanwhile is read again. */
  #liveCount = 0;
  #early = false;
  readonly #http: FunctionsHttp;
  readonly #channel: string;

  constructor(roomId: string, http: FunctionsHttp) {
    super();
    this.#http = http;
    this.#channel = `room:${roomId}:queue`;
  }

  /** The last queue message's payload, or null. */
  get state(): Record<string, unknown> | null {
    return this.#state;
  }

  /** The event name of that message. */
  get event(): string | null {
    return this.#event;
  }

  /** A broadcast on `room:{id}:queue`. */
  receive(event: string, payload: Record<string, unknown>): void {
    this.#liveCount++;
    if (!this.#ready) {
      this.#early = true;
      return;
    }
    this.#set(payload, event, null, "live");
  }

  /** room-context's `queue`, read after subscribing. */
  async loadSnapshot(message: ChannelMessage | null, liveBefore: number): Promise<void> {
    this.#ready = true;
    this.#set(message?.data ?? null, message?.event ?? null, message?.id ?? null, "snapshot");
    if (this.#early || this.#liveCount !== liveBefore) {
      this.#early = false;
      await this.refresh();
    }
  }

  /** How many live messages have arrived so far (taken before a snapshot read). */
  get liveCount(): number {
    return this.#liveCount;
  }

  /** Reads the last message again (`history?rewind=1`): after a re-subscribe or page wake. */
  async refresh(attempts = 3): Promise<void> {
    for (let i = 0; i < attempts; i++) {
      const before = this.#liveCount;
      let items: ChannelMessage[];
      try {
        ({ data: { items } } = await this.#http.call<{ items: ChannelMessage[] }>("history", {
          query: { channel: this.#channel, rewind: 1 },
        }));
      } catch (error) {
        if (error instanceof RoomsError && error.status === 404) return; // Nothing kept yet.
        if (error instanceof RoomsError && !error.retryable) this.emit("error", error);
        throw error;
      }
      if (this.#liveCount !== before) continue; // Something arrived meanwhile: read again.
      const last = items.at(-1);
      if (!last) return;
      if (this.#id !== null && Number(last.id) < Number(this.#id)) return;
      if (this.#id !== null && String(last.id) === String(this.#id)) return;
      this.#set(last.data, last.event, last.id, "rewind");
      return;
    }
  }

  /** What this client just published (the broadcast follows). */
  setLocal(payload: Record<string, unknown>, event: string): void {
    this.#set(payload, event, null, "local");
  }

  #set(
    payload: Record<string, unknown> | null,
    event: string | null,
    id: number | string | null,
    source: QueueSource,
  ): void {
    this.#state = payload;
    this.#event = event;
    this.#id = id;
    this.emit("state", payload, { event, source });
  }
}
