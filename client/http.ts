// Calls the Edge Functions with the session's token and turns every failure into a RoomsError
// that says whether trying again can help: network errors, 408, 429 and 5xx can; other 4xx
// cannot. Round-trip times are measured here, for the server clock.

import { parseRetryAfter } from "./retry.ts";

/** The contract's error (API.md §4), or a client-side one (`network_error`, `left`, …). */
export class RoomsError extends Error {
  constructor(
    /** HTTP status; 0 when the request never got an answer. */
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    /** From Retry-After, when the server gave one. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "RoomsError";
  }

  /** Whether sending the same request again may succeed. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

export type Fetch = typeof fetch;

export interface FunctionsHttpOptions {
  /** e.g. `http://127.0.0.1:54321/functions/v1` */
  functionsUrl: string;
  apiKey: string;
  /** The session's access token, asked for at every call (supabase-js refreshes it). */
  accessToken: () => Promise<string | null>;
  fetch?: Fetch;
  /** Local wall clock, for round-trip times. */
  now?: () => number;
}

export interface CallOptions {
  method?: "GET" | "POST";
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** Survives the page being unloaded (presence leave on page hide). */
  keepalive?: boolean;
  signal?: AbortSignal;
}

/** A successful answer, with when the request left and when its answer arrived (local ms). */
export interface Answer<T> {
  status: number;
  data: T;
  sentAt: number;
  receivedAt: number;
}

const clientInfo = "whatssound-client/0.1.0";

export class FunctionsHttp {
  readonly #options: FunctionsHttpOptions;

  constructor(options: FunctionsHttpOptions) {
    this.#options = options;
  }

  async call<T>(name: string, options: CallOptions = {}): Promise<Answer<T>> {
    const { method = options.body === undefined ? "GET" : "POST", query, body } = options;
    const url = new URL(`${this.#options.functionsUrl.replace(/\/+$/, "")}/${name}`);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const now = this.#options.now ?? Date.now;
    const fetchImpl = this.#options.fetch ?? globalThis.fetch;
    let token: string | null;
    try {
      token = await this.#options.accessToken();
    } catch (error) {
      throw new RoomsError(0, "network_error", `Could not get the session's token: ${error}`);
    }
    const headers: Record<string, string> = {
      apikey: this.#options.apiKey,
      Authorization: `Bearer ${token ?? this.#options.apiKey}`,
      "x-client-info": clientInfo,
    };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const sentAt = now();
    let response: Response;
    try {
      response = await fetchImpl(url.href, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        keepalive: options.keepalive,
        signal: options.signal,
      });
    } catch (error) {
      throw new RoomsError(0, "network_error", `${name}: ${errorText(error)}`);
    }
    let parsed: unknown;
    let text = "";
    try {
      text = await response.text();
      parsed = text === "" ? null : JSON.parse(text);
    } catch (error) {
      if (response.ok) {
        throw new RoomsError(
          0,
          "network_error",
          `${name}: the answer was cut: ${errorText(error)}`,
        );
      }
      parsed = null;
    }
    const receivedAt = now();
    if (response.ok) return { status: response.status, data: parsed as T, sentAt, receivedAt };
    const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
    const error = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } })
      ?.error;
    if (error && typeof error.code === "string") {
      throw new RoomsError(
        response.status,
        error.code,
        typeof error.message === "string" ? error.message : error.code,
        error.details,
        retryAfterMs,
      );
    }
    // Not the contract's shape: a proxy, a platform error page, a relay error.
    throw new RoomsError(
      response.status,
      response.status >= 500 ? "unavailable" : "unexpected_response",
      `${name} answered ${response.status}${text ? `: ${text.slice(0, 200)}` : ""}`,
      undefined,
      retryAfterMs,
    );
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
