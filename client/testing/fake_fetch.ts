// A fetch for unit tests: records each request and answers with what the test's function says;
// and a FunctionsHttp on it, as a room uses one.
import { FunctionsHttp } from "../http.ts";
import type { FakeTimers } from "./fake_timers.ts";

export interface RecordedRequest {
  url: URL;
  method: string;
  headers: Headers;
  // deno-lint-ignore no-explicit-any -- the request bodies the tests inspect
  body: any;
  keepalive: boolean;
  /** Fake time when it was sent. */
  at: number;
}

export type Responder = (request: RecordedRequest, index: number) => Response | Promise<Response>;

/** JSON with a status (and headers). */
export function answer(status: number, body: unknown, headers: Record<string, string> = {}) {
  return Response.json(body, { status, headers });
}

/** The contract's error shape. */
export function errorAnswer(
  status: number,
  code: string,
  headers: Record<string, string> = {},
): Response {
  return answer(status, { error: { code, message: `${code} (test)` } }, headers);
}

function fakeFetch(respond: Responder, now: () => number = Date.now) {
  const requests: RecordedRequest[] = [];
  const fetch = async (
    input: string | URL | Request,
    init: RequestInit = {},
  ): Promise<Response> => {
    const request: RecordedRequest = {
      url: new URL(String(input)),
      method: init.method ?? "GET",
      headers: new Headers(init.headers),
      body: typeof init.body === "string" ? JSON.parse(init.body) : undefined,
      keepalive: Boolean(init.keepalive),
      at: now(),
    };
    requests.push(request);
    return await respond(request, requests.length - 1);
  };
  return { fetch: fetch as typeof globalThis.fetch, requests };
}

/**
 * A FunctionsHttp whose calls go to `respond` (recorded in `requests`) on the fake time of
 * `timers`, with the API key "anon-key" and the session token "user-token".
 */
export function fakeFunctionsHttp(respond: Responder, timers: FakeTimers) {
  const { fetch, requests } = fakeFetch(respond, () => timers.now());
  const http = new FunctionsHttp({
    functionsUrl: "http://functions.test/functions/v1",
    apiKey: "anon-key",
    accessToken: () => Promise.resolve("user-token"),
    fetch,
    now: () => timers.now(),
  });
  return { http, requests };
}

/** chat-send's 202 for the messages of a request, with ids from `ids`. */
export function accepted(
  request: RecordedRequest,
  ids: Map<string, number>,
  nextId: { value: number },
): Response {
  const list = (request.body.messages as { client_id: string }[]).map(({ client_id }) => {
    const duplicate = ids.has(client_id);
    if (!duplicate) ids.set(client_id, nextId.value++);
    return { client_id, id: ids.get(client_id)!, created_at: new Date(0).toISOString(), duplicate };
  });
  return answer(202, { accepted: list });
}
