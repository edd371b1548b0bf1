// A fetch for unit tests: records each request and answers with what the test's function says.

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
export function answer(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/** The contract's error shape. */
export function errorAnswer(
  status: number,
  code: string,
  headers: Record<string, string> = {},
): Response {
  return answer(status, { error: { code, message: `${code} (test)` } }, headers);
}

export function fakeFetch(respond: Responder, now: () => number = Date.now) {
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
