// createRoomsClient: the entry point. One per SupabaseClient (signed in); it holds what the
// rooms share: the function caller, the token keeper and the page's events.

import type { SupabaseClient } from "@supabase/supabase-js";
import { TokenKeeper } from "./auth.ts";
import { type Fetch, FunctionsHttp } from "./http.ts";
import { browserPage, type PageEventSource } from "./lifecycle.ts";
import type { OutboxStorage } from "./outbox.ts";
import { type JoinOptions, Room } from "./room.ts";
import { realTimers, type Timers } from "./timers.ts";

export interface RoomsClientOptions {
  /** A SupabaseClient, signed in (supabase.auth) or given an `accessToken` function. */
  supabase: SupabaseClient;
  /** Where the functions are; by default the Supabase URL's /functions/v1. */
  functionsUrl?: string;
  /** The fetch for function calls (tests inject failures here). */
  fetch?: Fetch;
  /** Where function calls take the token from; by default the one supabase-js gives Realtime. */
  accessToken?: () => Promise<string | null>;
  /** Keeps unsent chat across reloads, e.g. `webStorageOutbox(localStorage)`. */
  storage?: OutboxStorage;
  /** Page events; by default the browser's window and document (none in Deno or Node). */
  page?: { window?: PageEventSource | null; document?: PageEventSource | null };
  /** Retry delays in ms (default 1, 2, 5, 10 s). */
  backoff?: readonly number[];
  /** Presence heartbeat interval (default 20 s; the backend expires a connection after 60 s). */
  heartbeatMs?: number;
  /** A channel not rejoined after this long (with the socket up) is replaced (default 15 s). */
  stuckChannelAfterMs?: number;
  timers?: Timers;
}

export class RoomsClient {
  readonly #options: RoomsClientOptions;
  readonly #http: FunctionsHttp;
  readonly #auth: TokenKeeper;
  readonly #timers: Timers;
  readonly #joins = new Map<string, Promise<Room>>();

  constructor(options: RoomsClientOptions) {
    this.#options = options;
    this.#timers = options.timers ?? realTimers;
    this.#auth = new TokenKeeper({
      supabase: options.supabase,
      timers: this.#timers,
      accessToken: options.accessToken,
    });
    this.#http = new FunctionsHttp({
      functionsUrl: options.functionsUrl ?? functionsUrlOf(options.supabase),
      apiKey: apiKeyOf(options.supabase),
      accessToken: () => this.#auth.token(),
      fetch: options.fetch,
      now: () => this.#timers.now(),
    });
  }

  /**
   * Joins a room: subscribes to its channels, reads its snapshot, merges what arrived
   * meanwhile and joins presence. Joining a room this client is in (or joining) returns that
   * room. Rejects with a RoomsError (`not_a_member`, `room_not_found`, `timeout`, …).
   */
  join(roomId: string, options: JoinOptions = {}): Promise<Room> {
    const existing = this.#joins.get(roomId);
    if (existing) return existing;
    const page = this.#options.page ?? browserPage();
    const room = new Room(roomId, {
      supabase: this.#options.supabase,
      http: this.#http,
      auth: this.#auth,
      timers: this.#timers,
      page: { window: page.window ?? null, document: page.document ?? null },
      backoff: this.#options.backoff,
      storage: this.#options.storage,
      stuckAfterMs: this.#options.stuckChannelAfterMs,
      heartbeatMs: this.#options.heartbeatMs,
      onLeft: () => {
        this.#joins.delete(roomId);
        if (this.#joins.size === 0) this.#auth.stop();
      },
    }, options);
    const joined = room.join(options).then(() => room);
    this.#joins.set(roomId, joined);
    joined.catch(() => this.#joins.delete(roomId));
    return joined;
  }

  /** Leaves every room. */
  async close(): Promise<void> {
    const rooms = await Promise.allSettled([...this.#joins.values()]);
    await Promise.all(
      rooms.flatMap((r) => (r.status === "fulfilled" ? [r.value.leave()] : [])),
    );
    this.#auth.stop();
  }
}

export function createRoomsClient(options: RoomsClientOptions): RoomsClient {
  return new RoomsClient(options);
}

/** `<Supabase URL>/functions/v1`, from what supabase-js holds. */
function functionsUrlOf(supabase: SupabaseClient): string {
  const held = (supabase as unknown as { functionsUrl?: URL | string }).functionsUrl;
  if (held) return String(held);
  const realtime = new URL(supabase.realtime.endpointURL());
  realtime.protocol = realtime.protocol === "wss:" ? "https:" : "http:";
  const base = realtime.pathname.replace(/\/realtime\/v1\/websocket$/, "").replace(/\/+$/, "");
  return `${realtime.origin}${base}/functions/v1`;
}

function apiKeyOf(supabase: SupabaseClient): string {
  const key = supabase.realtime.apiKey ??
    (supabase as unknown as { supabaseKey?: string }).supabaseKey;
  if (!key) throw new TypeError("The SupabaseClient has no API key.");
  return key;
}
