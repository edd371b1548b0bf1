// Realtime's REST broadcast end to end through the test stack's gateway (rest.ts): the batch
// endpoint and the single one that supabase-js's channel.httpSend() calls, their 202, 401 and
// 422 answers, and the write check private messages pass, decided by the project's RLS.
import assert from "node:assert/strict";
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.1";
import { signJwt, userToken } from "../keys.ts";
import {
  anonKey,
  apiUrl,
  closeRealtime,
  realtimeClientFor,
  serviceRoleKey,
} from "../test-helpers.ts";
import { castWithRooms, events, joined, otherSecret, received, until } from "./testing.ts";

const { host, listener, dj, outsider, anonymousListener, rooms } = await castWithRooms(1);
const [restRoom] = rooms;

const restUrl = `${apiUrl}/realtime/v1/api/broadcast`;

function restBroadcast(body: unknown, headers: Record<string, string> = {}) {
  return fetch(restUrl, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}`, apikey: anonKey });

Deno.test("REST broadcast: 202 and delivered, meta.id only when an id is given", async () => {
  const client = realtimeClientFor(outsider.token);
  try {
    const topic = `rest-public-${crypto.randomUUID()}`;
    const got = received(await joined(client, topic, { private: false }));
    const response = await restBroadcast({
      messages: [
        { topic, event: "plain", payload: { a: 1 } },
        { topic, event: "with-id", payload: { b: [2] }, id: "client-chosen-id" },
        { topic: `${topic}-elsewhere`, event: "elsewhere", payload: {} },
      ],
    }, bearer(serviceRoleKey));
    assert.equal(response.status, 202);
    assert.equal(await response.text(), "");
    await until("both messages", got, (all) => all.length === 2);
    assert.deepEqual(got, [
      { type: "broadcast", event: "plain", payload: { a: 1 } },
      {
        type: "broadcast",
        event: "with-id",
        payload: { b: [2] },
        meta: { id: "client-chosen-id" },
      },
    ]);

    // The apikey header alone authenticates too.
    const byKey = await restBroadcast(
      { messages: [{ topic, event: "by-apikey", payload: {} }] },
      { apikey: anonKey },
    );
    assert.equal(byKey.status, 202);
    await byKey.body?.cancel();
    await until("the apikey's message", got, (all) => all.length === 3);
    assert.equal(got[2].event, "by-apikey");
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("REST broadcast: a payload keeps a key named __proto__", async () => {
  // z.record rebuilt the payload key by key, which drops __proto__ (it sets the copy's prototype).
  const client = realtimeClientFor(outsider.token);
  try {
    const topic = `rest-proto-${crypto.randomUUID()}`;
    const got = received(await joined(client, topic, { private: false }));
    const payload = JSON.parse('{"__proto__": {"x": 1}, "constructor": 2, "a": 1}');
    const response = await restBroadcast(
      { messages: [{ topic, event: "proto", payload }] },
      bearer(serviceRoleKey),
    );
    assert.equal(response.status, 202);
    await response.body?.cancel();
    await until("the message", got, (all) => all.length === 1);
    assert.deepEqual(got[0].payload, payload);
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("REST broadcast: 401 Unauthorized without a token or with a bad one", async () => {
  const message = { messages: [{ topic: "rest-401", event: "e", payload: {} }] };
  const forged = await signJwt({ role: "service_role", exp: 2000000000 }, otherSecret);
  const attempts: Record<string, string>[] = [
    {},
    { authorization: `Bearer ${forged}` },
    // A bad bearer does not fall back to a good apikey.
    { authorization: `Bearer ${forged}`, apikey: anonKey },
    { authorization: `Bearer ${await userToken(listener.id, { expiresIn: -5 })}` },
    { apikey: "not-a-jwt" },
  ];
  for (const headers of attempts) {
    const response = await restBroadcast(message, headers);
    assert.equal(response.status, 401, JSON.stringify(headers));
    assert.deepEqual(await response.json(), { message: "Unauthorized" });
  }
});

Deno.test("REST broadcast: 422 with Realtime's error shape for bad messages", async () => {
  for (
    const body of [
      "{not json",
      {},
      { messages: [] },
      { messages: [{ topic: "t", event: "e", payload: "not an object" }] },
      { messages: [{ topic: "t", payload: {} }] },
      { messages: [{ topic: "t", event: "e", payload: {} }, { event: "e", payload: {} }] },
    ]
  ) {
    const response = await restBroadcast(body, bearer(serviceRoleKey));
    assert.equal(response.status, 422, JSON.stringify(body));
    const { errors } = await response.json();
    assert.ok(Array.isArray(errors?.messages), JSON.stringify(errors));
    assert.ok(errors.messages.length > 0);
  }
});

Deno.test("REST broadcast: a private message is delivered only from a caller with write rights", async () => {
  const client = realtimeClientFor(dj.token);
  try {
    const topic = `room:${restRoom}:queue`;
    const got = received(await joined(client, topic));
    const message = (event: string) => ({
      messages: [{ topic, event, payload: { event }, private: true }],
    });
    for (
      const [token, event] of [
        [listener.token, "from-listener"],
        [outsider.token, "from-outsider"],
        [anonymousListener.token, "from-anonymous"],
        [anonKey, "from-anon-key"],
      ]
    ) {
      const refused = await restBroadcast(message(event), bearer(token));
      assert.equal(refused.status, 202, "dropped silently");
      await refused.body?.cancel();
    }
    for (const [token, event] of [[host.token, "from-host"], [serviceRoleKey, "from-service"]]) {
      const accepted = await restBroadcast(message(event), bearer(token));
      assert.equal(accepted.status, 202);
      await accepted.body?.cancel();
    }
    await until("the permitted messages", got, (all) => all.length >= 2);
    assert.deepEqual(events(got), ["from-host", "from-service"]);
    // A public message of the same topic does not reach the private channel either.
    const publicOne = await restBroadcast(
      { messages: [{ topic, event: "public", payload: {} }, ...message("last").messages] },
      bearer(serviceRoleKey),
    );
    await publicOne.body?.cancel();
    await until("the last one", got, (all) => all.length >= 3);
    assert.deepEqual(events(got), ["from-host", "from-service", "last"]);
  } finally {
    await closeRealtime(client);
  }
});

Deno.test("REST single endpoint (channel.httpSend): the write check, bytes, 422 for a non-object", async () => {
  const topic = `room:${restRoom}:queue`;
  const [receiver, hostClient, listenerClient] = [dj, host, listener].map((u) =>
    realtimeClientFor(u.token)
  );
  const bytesReceiver = realtimeClientFor(anonKey, { vsn: "2.0.0" });
  try {
    const got = received(await joined(receiver, topic));
    // httpSend needs no subscription; it sends the session's token once the client has it.
    for (const client of [hostClient, listenerClient]) await client.realtime.setAuth();
    const httpSend = (client: SupabaseClient, event: string) =>
      client.channel(topic, { config: { private: true } }).httpSend(event, { event });
    assert.deepEqual(await httpSend(listenerClient, "from-listener"), { success: true });
    assert.deepEqual(await httpSend(hostClient, "from-host"), { success: true });
    await until("the host's message", got, (all) => all.length >= 1);
    assert.deepEqual(got, [{
      type: "broadcast",
      event: "from-host",
      payload: { event: "from-host" },
    }]);

    const publicTopic = `rest-bytes-${crypto.randomUUID()}`;
    const bytesGot = received(await joined(bytesReceiver, publicTopic, { private: false }));
    const bytes = new Uint8Array([1, 2, 3, 0, 255]);
    const sent = await bytesReceiver.channel(publicTopic).httpSend("bytes", bytes.buffer);
    assert.deepEqual(sent, { success: true });
    await until("the bytes", bytesGot, (all) => all.length === 1);
    assert.equal(bytesGot[0].event, "bytes");
    assert.deepEqual(new Uint8Array(bytesGot[0].payload), bytes);

    for (const body of ["[1, 2]", '"text"', "not json"]) {
      const response = await fetch(`${restUrl}/${publicTopic}/events/e`, {
        method: "POST",
        headers: { "content-type": "application/json", ...bearer(serviceRoleKey) },
        body,
      });
      assert.equal(response.status, 422, body);
      assert.ok(Array.isArray((await response.json()).errors?.messages), body);
    }
  } finally {
    await closeRealtime(receiver, hostClient, listenerClient, bytesReceiver);
  }
});
