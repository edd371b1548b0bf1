// Chat's outbox (CLIENT.md guarantee 3): nothing handed to `send` is lost while the page lives.
// Each message gets its client_id once; requests leave one at a time, in order, up to 50
// messages (and under the 64 KiB body limit) each. Network errors, 408, 429 and 5xx are retried
// with the same client_ids — after Retry-After when the server gave one, else after 1, 2, 5,
// 10 s — and the backend's idempotency makes a retry of something already stored answer
// `duplicate: true`, which counts as sent. Other 4xx fail the messages with the contract's
// error. An optional storage adapter keeps what is unsent across reloads.

import { Emitter } from "./events.ts";
import { RoomsError } from "./http.ts";
import { backoffMs, defaultBackoffMs } from "./retry.ts";
import { sleep, type Timers } from "./timers.ts";

export type PendingStatus = "queued" | "sending" | "sent" | "failed";

/** A message handed to `room.chat.send`, until it is stored (or refused). */
export interface PendingMessage {
  readonly client_id: string;
  readonly body: string;
  readonly push?: Record<string, unknown>;
  readonly status: PendingStatus;
  /** Resolves with the stored message's id; rejects with a RoomsError when it failed. */
  readonly done: Promise<number>;
  /** The stored message's id once sent. */
  readonly id: number | null;
  /** Why it failed. */
  readonly error: RoomsError | null;
  /** Requests that carried it so far. */
  readonly attempts: number;
}

/** What the storage adapter keeps per room: the unsent messages, in order. */
export interface StoredMessage {
  client_id: string;
  body: string;
  push?: Record<string, unknown>;
}

/** Keeps unsent messages across reloads (e.g. `webStorageOutbox(localStorage)`). */
export interface OutboxStorage {
  load(key: string): StoredMessage[] | null | Promise<StoredMessage[] | null>;
  save(key: string, messages: StoredMessage[]): void | Promise<void>;
}

/** An OutboxStorage on a Web Storage object (localStorage, sessionStorage). */
export function webStorageOutbox(storage: Storage, prefix = "whatssound:outbox:"): OutboxStorage {
  return {
    load(key) {
      try {
        const text = storage.getItem(prefix + key);
        return text ? JSON.parse(text) as StoredMessage[] : null;
      } catch {
        return null;
      }
    },
    save(key, messages) {
      try {
        if (messages.length === 0) storage.removeItem(prefix + key);
        else storage.setItem(prefix + key, JSON.stringify(messages));
      } catch {
        // Storage full or unavailable: the queue still lives in memory.
      }
    },
  };
}

/** One entry of chat-send's answer. */
export interface Accepted {
  client_id: string;
  id: number;
  created_at: string;
  duplicate: boolean;
}

export interface OutboxOptions {
  /** Sends messages (chat-send); resolves with `accepted`, throws a RoomsError. */
  send: (messages: StoredMessage[]) => Promise<Accepted[]>;
  timers: Timers;
  /** Asked before a retry of a request that got 401, once per request. */
  refreshAuth?: () => Promise<void>;
  storage?: OutboxStorage;
  storageKey?: string;
  backoff?: readonly number[];
  maxPerRequest?: number;
  maxRequestBytes?: number;
  /** Makes client_ids (a UUID by default). */
  newClientId?: () => string;
}

interface Entry extends PendingMessage {
  status: PendingStatus;
  id: number | null;
  error: RoomsError | null;
  attempts: number;
  resolve(id: number): void;
  reject(error: RoomsError): void;
}

export interface OutboxEvents extends Record<string, unknown[]> {
  /** The pending list changed (a status, an addition, a removal). */
  change: [PendingMessage[]];
  sent: [PendingMessage[], { duplicates: number }];
  failed: [PendingMessage[], RoomsError];
  /** A request failed and will be tried again in `delayMs`. */
  retry: [{ error: RoomsError; delayMs: number; messages: number }];
}

const encoder = new TextEncoder();
// `{"room_id":"<36>","messages":[]}` and a margin.
const envelopeBytes = 128;

export class Outbox extends Emitter<OutboxEvents> {
  readonly #options: OutboxOptions;
  readonly #backoff: readonly number[];
  #entries: Entry[] = [];
  #running = false;
  #stopped = false;
  #stopError: RoomsError | null = null;
  #failures = 0;
  #retryAt = 0;
  #retryAfterNetworkError = false;
  #wake = new AbortController();
  #idle: (() => void)[] = [];
  #loaded: Promise<void>;
  #started = false;

  constructor(options: OutboxOptions) {
    super();
    this.#options = options;
    this.#backoff = options.backoff ?? defaultBackoffMs;
    this.#loaded = this.#load();
  }

  /** Messages not sent yet: queued, sending, and failed ones until retried or discarded. */
  get pending(): PendingMessage[] {
    return this.#entries.filter((e) => e.status !== "sent");
  }

  /** Starts sending (after what the storage adapter kept, which goes first). */
  start(): Promise<void> {
    this.#started = true;
    return this.#loaded.then(() => this.#kick());
  }

  /** Reads what the storage adapter kept; it goes before anything sent since. */
  #load(): Promise<void> {
    const { storage, storageKey } = this.#options;
    if (!storage || storageKey === undefined) return Promise.resolve();
    return Promise.resolve()
      .then(() => storage.load(storageKey))
      .then((kept) => {
        const known = new Set(this.#entries.map((e) => e.client_id));
        const restored = (Array.isArray(kept) ? kept : []).filter((m) =>
          typeof m?.client_id === "string" && typeof m.body === "string" && !known.has(m.client_id)
        ).map((m) => this.#entry(m));
        if (restored.length > 0) {
          this.#entries.unshift(...restored);
          this.#changed();
        }
      }, () => {});
  }

  /** Queues a message; it leaves with the next request. */
  enqueue(
    message: { body: string; push?: Record<string, unknown>; client_id?: string },
  ): PendingMessage {
    const entry = this.#entry({
      client_id: message.client_id ?? (this.#options.newClientId ?? newClientId)(),
      body: message.body,
      ...(message.push ? { push: message.push } : {}),
    });
    this.#entries.push(entry);
    this.#changed();
    // Sends made in the same tick leave in one request.
    queueMicrotask(() => this.#kick());
    return entry;
  }

  /** A message refused before it was sent (invalid input): failed at once. */
  refuse(
    message: { body: string; push?: Record<string, unknown> },
    error: RoomsError,
  ): PendingMessage {
    const entry = this.#entry({ client_id: newClientId(), body: String(message.body) });
    this.#entries.push(entry);
    this.#fail([entry], error);
    return entry;
  }

  /** Sends a failed message again, with its client_id: the new PendingMessage. */
  retry(message: PendingMessage): PendingMessage | null {
    const index = this.#entries.findIndex((e) => e === message && e.status === "failed");
    if (index === -1) return null;
    this.#entries.splice(index, 1);
    return this.enqueue(message);
  }

  /** Drops a failed or queued (not sending) message. */
  discard(message: PendingMessage): boolean {
    const index = this.#entries.findIndex((e) =>
      e === message && (e.status === "failed" || e.status === "queued")
    );
    if (index === -1) return false;
    const [entry] = this.#entries.splice(index, 1);
    if (entry.status === "queued") {
      entry.status = "failed";
      entry.error = new RoomsError(0, "discarded", "The message was discarded before it was sent.");
      entry.reject(entry.error);
    }
    this.#changed();
    return true;
  }

  /** Tries again now instead of waiting out a network error's backoff (online, page wake). */
  retryNow(): void {
    if (this.#retryAfterNetworkError) {
      this.#retryAt = 0;
      this.#wake.abort();
      this.#wake = new AbortController();
    }
    this.#kick();
  }

  /** Resolves once nothing is queued or sending (or after `timeoutMs`). */
  idle(timeoutMs = Infinity): Promise<boolean> {
    if (!this.#busy()) return Promise.resolve(true);
    return new Promise((resolve) => {
      let timer: ReturnType<Timers["setTimeout"]> | undefined;
      const done = () => {
        this.#options.timers.clearTimeout(timer);
        resolve(!this.#busy());
      };
      this.#idle.push(done);
      if (Number.isFinite(timeoutMs)) {
        timer = this.#options.timers.setTimeout(() => {
          this.#idle = this.#idle.filter((f) => f !== done);
          resolve(false);
        }, timeoutMs);
      }
    });
  }

  /**
   * Stops sending: what is queued fails with `error` (and stays in storage for the next join);
   * a request in flight still settles its messages.
   */
  stop(error: RoomsError): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stopError = error;
    this.#wake.abort();
    for (const entry of this.#entries.filter((e) => e.status === "queued")) {
      entry.status = "failed";
      entry.error = error;
      entry.reject(error);
    }
    this.emit("change", this.pending);
    if (!this.#busy()) { for (const resolve of this.#idle.splice(0)) resolve(); }
  }

  #busy(): boolean {
    return this.#entries.some((e) => e.status === "queued" || e.status === "sending");
  }

  #entry(message: StoredMessage): Entry {
    let resolve!: (id: number) => void;
    let reject!: (error: RoomsError) => void;
    const done = new Promise<number>((yes, no) => {
      resolve = yes;
      reject = no;
    });
    // A failure nobody awaits is not an unhandled rejection; awaiting `done` still sees it.
    done.catch(() => {});
    return {
      client_id: message.client_id,
      body: message.body,
      ...(message.push ? { push: message.push } : {}),
      status: "queued",
      done,
      id: null,
      error: null,
      attempts: 0,
      resolve,
      reject,
    };
  }

  #kick(): void {
    if (this.#running || this.#stopped || !this.#started) return;
    this.#running = true;
    this.#pump().finally(() => {
      this.#running = false;
      if (!this.#busy()) { for (const resolve of this.#idle.splice(0)) resolve(); }
    });
  }

  async #pump(): Promise<void> {
    await this.#loaded;
    let authRetried = false;
    while (!this.#stopped) {
      const queued = this.#entries.filter((e) => e.status === "queued");
      if (queued.length === 0) return;
      const wait = this.#retryAt - this.#options.timers.now();
      if (wait > 0) {
        await sleep(this.#options.timers, wait, this.#wake.signal);
        continue;
      }
      const batch = this.#nextBatch(queued);
      for (const entry of batch) {
        entry.status = "sending";
        entry.attempts++;
      }
      this.#changed();
      try {
        const accepted = await this.#options.send(batch.map(({ client_id, body, push }) => ({
          client_id,
          body,
          ...(push ? { push } : {}),
        })));
        this.#failures = 0;
        this.#retryAfterNetworkError = false;
        authRetried = false;
        this.#settle(batch, accepted);
      } catch (thrown) {
        const error = thrown instanceof RoomsError
          ? thrown
          : new RoomsError(0, "network_error", String(thrown));
        if (this.#stopped) {
          this.#fail(batch, error.retryable ? this.#stopError! : error);
          return;
        }
        if (error.status === 401 && !authRetried && this.#options.refreshAuth) {
          authRetried = true;
          for (const entry of batch) entry.status = "queued";
          await this.#options.refreshAuth().catch(() => {});
          continue;
        }
        if (error.retryable) {
          for (const entry of batch) entry.status = "queued";
          const delayMs = error.retryAfterMs ?? backoffMs(this.#failures, this.#backoff);
          this.#failures++;
          this.#retryAfterNetworkError = error.retryAfterMs === undefined;
          this.#retryAt = this.#options.timers.now() + delayMs;
          this.#changed();
          this.emit("retry", { error, delayMs, messages: batch.length });
        } else {
          authRetried = false;
          this.#fail(batch, error);
        }
      }
    }
  }

  /** The oldest queued messages that fit one request. */
  #nextBatch(queued: Entry[]): Entry[] {
    const max = this.#options.maxPerRequest ?? 50;
    const maxBytes = (this.#options.maxRequestBytes ?? 64 * 1024) - envelopeBytes;
    const batch: Entry[] = [];
    let bytes = 0;
    for (const entry of queued) {
      const size = encoder.encode(
        JSON.stringify({ client_id: entry.client_id, body: entry.body, push: entry.push }),
      ).length + 1;
      if (batch.length > 0 && (batch.length >= max || bytes + size > maxBytes)) break;
      batch.push(entry);
      bytes += size;
    }
    return batch;
  }

  #settle(batch: Entry[], accepted: Accepted[]): void {
    const byClientId = new Map((accepted ?? []).map((a) => [a.client_id, a]));
    const sent: Entry[] = [];
    let duplicates = 0;
    const missing: Entry[] = [];
    for (const entry of batch) {
      const answer = byClientId.get(entry.client_id);
      if (!answer) {
        missing.push(entry);
        continue;
      }
      entry.status = "sent";
      entry.id = answer.id;
      if (answer.duplicate) duplicates++;
      entry.resolve(answer.id);
      sent.push(entry);
    }
    this.#entries = this.#entries.filter((e) => e.status !== "sent");
    if (missing.length > 0) {
      // Not in the answer: not stored. Retrying with the same client_id is safe.
      for (const entry of missing) entry.status = "queued";
    }
    this.#changed();
    if (sent.length > 0) this.emit("sent", sent, { duplicates });
  }

  #fail(entries: Entry[], error: RoomsError): void {
    for (const entry of entries) {
      entry.status = "failed";
      entry.error = error;
      entry.reject(error);
    }
    this.#changed();
    this.emit("failed", entries, error);
  }

  #changed(): void {
    const { storage, storageKey } = this.#options;
    if (storage && storageKey !== undefined) {
      // Unsent: queued, in flight, or stopped by leave() (sent at the next join).
      const unsent = this.#entries
        .filter((e) =>
          e.status === "queued" || e.status === "sending" ||
          (e.error !== null && e.error === this.#stopError)
        )
        .map(({ client_id, body, push }) => ({ client_id, body, ...(push ? { push } : {}) }));
      // After the load, or the save would overwrite what is still to be read.
      this.#loaded.then(() => storage.save(storageKey, unsent)).catch(() => {});
    }
    this.emit("change", this.pending);
  }
}

/** A client_id: a UUID (36 of the allowed `[A-Za-z0-9:_-]`). */
export function newClientId(): string {
  return crypto.randomUUID();
}
