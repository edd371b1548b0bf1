// The stand-in's HTTP side through the test stack's gateway (server.ts): the WebSocket connect
// and its statuses (API key, token, vsn), and malformed requests to /realtime/v1, which get a
// 4xx, never a 5xx.
import assert from "node:assert/strict";
import { signJwt, userToken } from "../keys.ts";
import { anonKey, apiUrl, createUser, fixtureDb } from "../test-helpers.ts";
import { otherSecret, upgrade } from "./testing.ts";

const setup = fixtureDb();
const listener = await createUser(setup);
await setup.end();

Deno.test("connect: no API key is 401, a bad one 401, an unknown vsn 403, a good one upgrades", async () => {
  assert.deepEqual(await upgrade("?vsn=2.0.0"), {
    status: 401,
    body: { error: "API key is missing" },
  });
  const forged = await signJwt({ role: "anon", exp: 2000000000 }, otherSecret);
  const bad = await upgrade(`?apikey=${forged}&vsn=2.0.0`);
  assert.equal(bad.status, 401);
  assert.equal(typeof (bad.body as { error?: unknown }).error, "string");
  const expired = await upgrade(`?apikey=${await userToken(listener.id, { expiresIn: -5 })}`);
  assert.deepEqual(expired, { status: 401, body: { error: "Token has expired" } });
  assert.deepEqual(await upgrade(`?apikey=${anonKey}&vsn=3.0.0`), { status: 403, body: undefined });
  assert.deepEqual(await upgrade(`?apikey=${anonKey}&vsn=1.0.0`), {
    status: 101,
    body: undefined,
  });
  assert.deepEqual(await upgrade(`?apikey=${anonKey}`), { status: 101, body: undefined });
});

Deno.test("malformed HTTP to /realtime/v1 gets a 4xx, never a 5xx", async () => {
  const badPath = await fetch(`${apiUrl}/realtime/v1/api/broadcast/%E0%A4%A/events/e`, {
    method: "POST",
    headers: { apikey: anonKey, "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(badPath.status, 422);
  assert.ok((await badPath.json()).errors.messages.length > 0);
  // Upgrade: websocket without the rest of the handshake.
  const halfUpgrade = await fetch(
    `${apiUrl}/realtime/v1/websocket?apikey=${anonKey}&vsn=2.0.0`,
    { headers: { upgrade: "websocket" } },
  );
  assert.equal(halfUpgrade.status, 400);
  await halfUpgrade.body?.cancel();
  const preflight = await fetch(`${apiUrl}/realtime/v1/api/broadcast`, { method: "OPTIONS" });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
  await preflight.body?.cancel();
});
