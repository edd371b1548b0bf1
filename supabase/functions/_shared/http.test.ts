import assert from "node:assert/strict";
import { anonKey, jwtSecret, userToken } from "../../../local/keys.ts";
import { HttpError } from "./errors.ts";
import { get, handle, post } from "./http.ts";
import { json } from "./responses.ts";
import { z } from "./validation.ts";

Deno.env.set("JWT_SECRET", jwtSecret);
const userId = "00000000-0000-4000-8000-0000000000dd";
const userHeaders = { Authorization: `Bearer ${await userToken(userId)}` };

const handler = handle(
  get(
    { caller: "user_or_service", query: z.object({ n: z.string().regex(/^\d+$/) }) },
    ({ claims, query }) => Promise.resolve(json(200, { sub: claims.sub, n: query.n })),
  ),
  post({ caller: "any_token", body: z.unknown(), maxBytes: 100 }, ({ body }) => {
    const fail = (body as { fail?: string } | null)?.fail;
    if (fail === "http") throw new HttpError(403, "not_host", "Only the host may do this.");
    if (fail === "bug") throw new Error("secret internals");
    if (fail === "db") {
      throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    }
    return Promise.resolve(json(202, body));
  }),
);

function send(body: BodyInit, headers: Record<string, string> = userHeaders) {
  return handler(new Request("http://x/f", { method: "POST", body, headers }));
}

Deno.test("OPTIONS answers the CORS preflight", async () => {
  const response = await handler(new Request("http://x/f", { method: "OPTIONS" }));
  assert.equal(response.status, 204);
  assert.equal(response.headers.get("access-control-allow-origin"), "*");
  assert.match(response.headers.get("access-control-allow-headers")!, /authorization/);
});

Deno.test("an unsupported method is 405 method_not_allowed with Allow", async () => {
  const response = await handler(new Request("http://x/f", { method: "DELETE" }));
  assert.equal(response.status, 405);
  assert.equal(response.headers.get("allow"), "OPTIONS, GET, POST");
  assert.equal((await response.json()).error.code, "method_not_allowed");
});

Deno.test("HttpError becomes the contract's error body with CORS", async () => {
  const response = await send(JSON.stringify({ fail: "http" }));
  assert.equal(response.status, 403);
  assert.equal(response.headers.get("access-control-allow-origin"), "*");
  assert.deepEqual(await response.json(), {
    error: { code: "not_host", message: "Only the host may do this." },
  });
});

Deno.test("an unexpected error is 500 internal_error without internals", async () => {
  const quiet = console.error;
  console.error = () => {};
  try {
    const response = await send(JSON.stringify({ fail: "bug" }));
    assert.equal(response.status, 500);
    const text = await response.text();
    assert.equal(JSON.parse(text).error.code, "internal_error");
    assert.doesNotMatch(text, /secret internals/);
  } finally {
    console.error = quiet;
  }
});

Deno.test("an unreachable database is 503 unavailable with Retry-After", async () => {
  const response = await send(JSON.stringify({ fail: "db" }));
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "5");
  assert.equal((await response.json()).error.code, "unavailable");
});

Deno.test("readJson: malformed JSON and invalid UTF-8 are 400 invalid_request", async () => {
  for (const body of ["{nope", "", new Uint8Array([0x7b, 0xff, 0x7d])]) {
    const response = await send(body);
    assert.equal(response.status, 400);
    assert.equal((await response.json()).error.code, "invalid_request");
  }
});

Deno.test("readJson: bodies over the limit are 413, by header or by streamed size", async () => {
  const big = JSON.stringify({ pad: "x".repeat(100) });
  const declared = await send(big);
  assert.equal(declared.status, 413);
  assert.equal((await declared.json()).error.code, "payload_too_large");
  // A stream has no Content-Length: the limit must hold while reading.
  const stream = new Blob([big]).stream();
  const streamed = await handler(
    new Request("http://x/f", { method: "POST", body: stream, headers: userHeaders }),
  );
  assert.equal(streamed.status, 413);
  assert.equal((await streamed.json()).error.code, "payload_too_large");
});

Deno.test("readJson: a body whose sender goes away mid-upload is 400, not 500", async () => {
  const broken = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode('{"hello": '));
      controller.error(new Error("connection reset by the client"));
    },
  });
  const response = await send(broken);
  assert.equal(response.status, 400);
  assert.equal((await response.json()).error.code, "invalid_request");
});

Deno.test("readJson: a body within the limit is parsed", async () => {
  const response = await send(JSON.stringify({ hello: "world" }));
  assert.equal(response.status, 202);
  assert.deepEqual(await response.json(), { hello: "world" });
});

Deno.test("readJson: what Postgres' jsonb cannot store is 400, not a 500 later", async () => {
  const deep = "[".repeat(33) + "]".repeat(33);
  for (const body of ['"a\\u0000b"', '{"a\\u0000": 1}', '"\\ud800"', '{"x": ["\\udc00"]}', deep]) {
    const response = await send(body);
    assert.equal(response.status, 400, body.slice(0, 40));
    assert.equal((await response.json()).error.code, "invalid_request");
  }
  const allowed = "[".repeat(32) + "]".repeat(32);
  assert.equal((await send(allowed)).status, 202, "32 levels are allowed");
  assert.equal((await send('"\\ud83c\\udfb5 ok"')).status, 202, "a surrogate pair is fine");
});

Deno.test("the caller is checked before the body is read: no token is 401 whatever the body", async () => {
  for (const body of ["{nope", JSON.stringify({ pad: "x".repeat(100) })]) {
    const response = await send(body, {});
    assert.equal(response.status, 401);
    assert.equal((await response.json()).error.code, "not_authenticated");
  }
  assert.equal((await send("{}", { Authorization: `Bearer ${anonKey}` })).status, 202);
});

Deno.test("a user_or_service endpoint refuses the anon key with 403 identified_only", async () => {
  const request = (token: string) =>
    handler(new Request("http://x/f?n=1", { headers: { Authorization: `Bearer ${token}` } }));
  const anon = await request(anonKey);
  assert.equal(anon.status, 403);
  assert.equal((await anon.json()).error.code, "identified_only");
  const user = await request(await userToken(userId));
  assert.equal(user.status, 200);
  assert.deepEqual(await user.json(), { sub: userId, n: "1" });
});

Deno.test("a query string the schema refuses is 400 invalid_request with the issues", async () => {
  const response = await handler(new Request("http://x/f?n=one", { headers: userHeaders }));
  assert.equal(response.status, 400);
  const { error } = await response.json();
  assert.equal(error.code, "invalid_request");
  assert.equal(error.details[0].path, "n");
});
