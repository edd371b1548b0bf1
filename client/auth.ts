// The session's token, for Realtime and for the functions (CLIENT.md guarantee 4).
// realtime-js takes the token asynchronously, so a channel subscribed before it has one joins
// with the API key: `start()` sets it first. Afterwards the token must reach Realtime before it
// expires, or Realtime closes every private channel: supabase-js passes auth refreshes on, and
// on top of that a timer asks for the token again shortly before `exp` (covering apps that
// give supabase-js an `accessToken` function, and tabs whose refresh timer slept).

import type { SupabaseClient } from "@supabase/supabase-js";
import type { TimerHandle, Timers } from "./timers.ts";

export interface JwtClaims {
  sub?: string;
  exp?: number;
  iat?: number;
  role?: string;
  is_anonymous?: boolean;
  [claim: string]: unknown;
}

/** The claims of a JWT, unverified (the server verifies; this only reads `sub` and `exp`). */
export function decodeJwt(token: string | null | undefined): JwtClaims | null {
  const part = token?.split(".")[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(
      part.length + (4 - part.length % 4) % 4,
      "=",
    );
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims as JwtClaims : null;
  } catch {
    return null;
  }
}

export interface TokenKeeperOptions {
  supabase: SupabaseClient;
  timers: Timers;
  /** Overrides where function calls take their token from. */
  accessToken?: () => Promise<string | null>;
  /** Ask for a fresh token this long before `exp` (at most a quarter of its lifetime). */
  refreshBeforeMs?: number;
}

export class TokenKeeper {
  readonly #options: TokenKeeperOptions;
  #timer: TimerHandle | undefined;
  #unsubscribe: (() => void) | undefined;
  #started: Promise<void> | undefined;
  #stopped = false;

  constructor(options: TokenKeeperOptions) {
    this.#options = options;
  }

  get #realtime() {
    return this.#options.supabase.realtime;
  }

  /** Gives Realtime the session's token (before the first subscribe) and keeps it fresh. */
  start(): Promise<void> {
    this.#stopped = false;
    this.#started ??= (async () => {
      this.#listenToAuth();
      await this.refresh();
    })();
    return this.#started;
  }

  /** Asks supabase-js for the session's token and hands it to Realtime (and its channels). */
  async refresh(): Promise<void> {
    try {
      await this.#realtime.setAuth();
    } finally {
      this.#schedule();
    }
  }

  /** The token for a function call: the session's, refreshed by supabase-js when needed. */
  async token(): Promise<string | null> {
    if (this.#options.accessToken) return await this.#options.accessToken();
    const fromRealtime = this.#realtime.accessToken;
    if (fromRealtime) return await fromRealtime();
    return this.#realtime.accessTokenValue;
  }

  /** The signed-in user's id, from the token Realtime holds. */
  userId(): string | null {
    return decodeJwt(this.#realtime.accessTokenValue)?.sub ?? null;
  }

  stop(): void {
    this.#stopped = true;
    this.#started = undefined;
    this.#options.timers.clearTimeout(this.#timer);
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  /** supabase-js already does this for its own auth; doing it here costs nothing and makes sure. */
  #listenToAuth(): void {
    let auth: SupabaseClient["auth"];
    try {
      auth = this.#options.supabase.auth;
      // With the `accessToken` option, supabase.auth is a proxy that throws on any access.
      if (typeof auth.onAuthStateChange !== "function") return;
    } catch {
      return;
    }
    const { data } = auth.onAuthStateChange((event, session) => {
      if (
        (event === "TOKEN_REFRESHED" || event === "SIGNED_IN") && session?.access_token &&
        session.access_token !== this.#realtime.accessTokenValue
      ) {
        this.#realtime.setAuth(session.access_token).then(() => this.#schedule(), () => {});
      }
    });
    this.#unsubscribe = () => data.subscription.unsubscribe();
  }

  /** Asks again shortly before the current token expires. */
  #schedule(): void {
    const { timers } = this.#options;
    timers.clearTimeout(this.#timer);
    if (this.#stopped) return;
    const claims = decodeJwt(this.#realtime.accessTokenValue);
    if (typeof claims?.exp !== "number") return;
    const expiresAt = claims.exp * 1000;
    const now = timers.now();
    if (expiresAt <= now) return; // Expired: channels closed for it ask again when they rejoin.
    const lifetime = typeof claims.iat === "number" ? expiresAt - claims.iat * 1000 : 3_600_000;
    const margin = Math.min(this.#options.refreshBeforeMs ?? 60_000, Math.max(250, lifetime / 4));
    // Still the same token close to exp: ask again every few seconds until a new one comes.
    const delay = expiresAt - margin > now
      ? expiresAt - margin - now
      : Math.max(250, Math.min(5000, (expiresAt - now) / 2));
    this.#timer = timers.setTimeout(() => {
      this.refresh().catch(() => {});
    }, delay);
  }
}
