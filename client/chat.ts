// The room's chat (CLIENT.md guarantees 1–3). `messages` holds every message that went out
// while the room was joined, once each, in seq order: the room's seq is contiguous (1, 2, 3, …),
// so a message whose seq is not the next one reveals a gap, which `history?after_seq=` fills
// (state catching_up). Messages ahead of a gap wait until it is filled. Sending goes through the
// outbox.

import { Emitter } from "./events.ts";
import { type FunctionsHttp, RoomsError } from "./http.ts";
import type { Outbox, PendingMessage } from "./outbox.ts";
import { backoffMs } from "./retry.ts";
import { sleep, type Timers } from "./timers.ts";
import type { Message } from "./types.ts";

export type MessagesSource = "snapshot" | "live" | "backfill" | "older";

export interface ChatEvents extends Record<string, unknown[]> {
  /** Messages added to `messages`: at the end, or at the start when `source` is "older". */
  messages: [Message[], { source: MessagesSource }];
  /** `pending` changed. */
  pending: [PendingMessage[]];
  /** A catch-up started (true) or ended (false). */
  catching_up: [boolean];
  /** Something the room cannot fix by retrying (e.g. a refused history read). */
  error: [RoomsError];
}

interface HistoryPage {
  items: { id: number; event: string; data: Message; timestamp: number }[];
  next_cursor: string | null;
}

export interface RoomChatOptions {
  roomId: string;
  http: FunctionsHttp;
  outbox: Outbox;
  timers: Timers;
  backoff?: readonly number[];
  /** Messages per history request while catching up (1..1000). */
  pageSize?: number;
}

const maxBodyLength = 2000;

export class RoomChat extends Emitter<ChatEvents> {
  /** Every message since the snapshot (and older ones loaded), ascending seq, each once. */
  readonly messages: Message[] = [];
  readonly #options: RoomChatOptions;
  readonly #channel: string;
  #lastSeq = 0;
  #ready = false;
  #early: Message[] = [];
  #ahead = new Map<number, Message>();
  #catchingUp: Promise<void> | null = null;
  #again = false;
  #stop = new AbortController();

  constructor(options: RoomChatOptions) {
    super();
    this.#options = options;
    this.#channel = `room:${options.roomId}:chat`;
    options.outbox.on("change", (pending) => this.emit("pending", pending));
  }

  /** Messages handed to `send` and not sent yet (failed ones until retried or discarded). */
  get pending(): PendingMessage[] {
    return this.#options.outbox.pending;
  }

  /** The highest seq up to which `messages` has no gap. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  get catchingUp(): boolean {
    return this.#catchingUp !== null;
  }

  /**
   * Sends a message: it is queued at once and leaves with the next request (several sends in
   * one tick leave together). Invalid bodies fail at once with `invalid_request`.
   */
  send(body: string, options: { push?: Record<string, unknown> } = {}): PendingMessage {
    if (
      typeof body !== "string" || body.length < 1 || body.length > maxBodyLength ||
      body.trim() === ""
    ) {
      return this.#options.outbox.refuse(
        { body },
        new RoomsError(
          400,
          "invalid_request",
          "A message body is 1 to 2000 characters, not blank.",
        ),
      );
    }
    return this.#options.outbox.enqueue({ body, ...(options.push ? { push: options.push } : {}) });
  }

  /** Sends a failed message again with its client_id; returns the new PendingMessage. */
  retry(message: PendingMessage): PendingMessage | null {
    return this.#options.outbox.retry(message);
  }

  /** Forgets a failed (or still queued) message. */
  discard(message: PendingMessage): boolean {
    return this.#options.outbox.discard(message);
  }

  /** Loads up to `count` messages older than the oldest one held; returns them (oldest first). */
  async loadOlder(count = 50): Promise<Message[]> {
    const first = this.messages[0]?.seq;
    if (first === undefined || first <= 1) return [];
    const want = Math.max(1, Math.min(1000, Math.floor(count)));
    const after = Math.max(0, first - 1 - want);
    const { data } = await this.#options.http.call<HistoryPage>("history", {
      query: { channel: this.#channel, after_seq: after, limit: first - 1 - after },
    });
    const oldest = this.messages[0]?.seq ?? first;
    const older = data.items.map((item) => item.data).filter((m) => m.seq < oldest)
      .sort((a, b) => a.seq - b.seq);
    if (older.length > 0) {
      this.messages.unshift(...older);
      this.emit("messages", older, { source: "older" });
    }
    return older;
  }

  /** A `chat:batch` from the channel. */
  receive(messages: Message[]): void {
    if (!Array.isArray(messages)) return;
    if (!this.#ready) {
      this.#early.push(...messages);
      return;
    }
    this.#accept(messages, "live");
  }

  /** room-context's chat (the newest messages); what arrived live meanwhile is merged by seq. */
  loadSnapshot(messages: Message[]): void {
    const sorted = [...messages].sort((a, b) => a.seq - b.seq);
    this.messages.splice(0, this.messages.length, ...sorted);
    this.#lastSeq = sorted.at(-1)?.seq ?? 0;
    this.#ready = true;
    this.emit("messages", sorted, { source: "snapshot" });
    const early = this.#early;
    this.#early = [];
    if (early.length > 0) this.#accept(early, "live");
  }

  /**
   * Fetches what went out after `lastSeq` (after a re-subscribe, a gap, a page wake). One runs
   * at a time; asking during one runs another after it.
   */
  catchUp(): Promise<void> {
    if (!this.#ready) return Promise.resolve();
    if (this.#catchingUp) {
      this.#again = true;
      return this.#catchingUp;
    }
    this.emit("catching_up", true);
    this.#catchingUp = (async () => {
      try {
        do {
          this.#again = false;
          await this.#fetchMissing();
        } while (this.#again && !this.#stop.signal.aborted);
      } finally {
        this.#catchingUp = null;
        this.emit("catching_up", false);
      }
    })();
    return this.#catchingUp;
  }

  stop(): void {
    this.#stop.abort();
  }

  async #fetchMissing(): Promise<void> {
    const { http, timers, pageSize = 1000 } = this.#options;
    let failures = 0;
    for (;;) {
      if (this.#stop.signal.aborted) return;
      let page: HistoryPage;
      const from = this.#lastSeq;
      try {
        ({ data: page } = await http.call<HistoryPage>("history", {
          query: { channel: this.#channel, after_seq: from, limit: pageSize },
        }));
      } catch (error) {
        if (!(error instanceof RoomsError) || !error.retryable) {
          this.emit(
            "error",
            error instanceof RoomsError ? error : new RoomsError(0, "unexpected", String(error)),
          );
          return;
        }
        await sleep(
          timers,
          error.retryAfterMs ?? backoffMs(failures++, this.#options.backoff),
          this.#stop.signal,
        );
        continue;
      }
      failures = 0;
      const items = page.items.map((item) => item.data);
      if (items.length > 0) this.#accept(items, "backfill", false);
      if (page.next_cursor !== null && items.length > 0) continue;
      if (this.#ahead.size === 0) return;
      if (this.#lastSeq > from) continue; // Progress, and something still waits: read on.
      // History has nothing between lastSeq and what waits: that seq never went out. Move on.
      this.#lastSeq = Math.min(...this.#ahead.keys()) - 1;
      this.#accept([], "backfill", false);
    }
  }

  /** Adds what follows `lastSeq` without a gap; keeps what is further ahead for later. */
  #accept(messages: Message[], source: MessagesSource, fillGaps = true): void {
    for (const message of messages) {
      if (typeof message?.seq !== "number") continue;
      if (message.seq > this.#lastSeq && !this.#ahead.has(message.seq)) {
        this.#ahead.set(message.seq, message);
      }
    }
    const added: Message[] = [];
    for (
      let next = this.#ahead.get(this.#lastSeq + 1);
      next;
      next = this.#ahead.get(this.#lastSeq + 1)
    ) {
      this.#ahead.delete(next.seq);
      this.#lastSeq = next.seq;
      added.push(next);
    }
    if (added.length > 0) {
      this.messages.push(...added);
      this.emit("messages", added, { source });
    }
    if (fillGaps && this.#ahead.size > 0) this.catchUp().catch(() => {});
  }
}
