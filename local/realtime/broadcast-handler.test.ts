// Broadcasts end to end through the test stack's gateway with supabase-js, on both wire
// protocols: rows that realtime.send commits and client broadcasts (broadcast-handler.ts) reach
// the subscribers allowed to read them, with `self` and `ack` as joined; on private topics a
// client needs the write right; public and private channels of one topic stay apart (hub.ts);
// binary payloads reach 2.0.0 sockets only, and header fields too long for a binary frame go as
// text (protocol.ts).
import assert from "node:assert/strict";
import { anonKey, apiUrl, closeRealtime, realtimeClientFor } from "../test-helpers.ts";
import { castWithRooms, events, joined, received, send, until, uuidPattern } from "./testing.ts";

const { host, listener, dj, outsider, rooms } = await castWithRooms(3);
const [vsnRoom, queueRoom, topicsRoom] = rooms;

for (const vsn of ["1.0.0", "2.0.0"] as const) {
  const otherVsn = vsn === "1.0.0" ? "2.0.0" : "1.0.0";
  Deno.test(`vsn ${vsn}: realtime.send rows and client broadcasts (self, ack) reach private subscribers`, async () => {
    const hostClient = realtimeClientFor(host.token, { vsn });
    const listenerClient = realtimeClientFor(listener.token, { vsn: otherVsn });
    const topic = `room:${vsnRoom}:queue`;
    try {
      assert.match(hostClient.realtime.endpointURL(), new RegExp(`vsn=${vsn}`));
      const hostChannel = await joined(hostClient, topic, {
        private: true,
        broadcast: { self: true, ack: true },
      });
      const hostGot = received(hostChannel);
      const listenerGot = received(await joined(listenerClient, topic));

      const row = { song: "Ünïcødé ♫", nested: { list: [1, 2.5, null, true] } };
      await send(topic, `queue:row:${vsn}`, row);
      for (const got of [hostGot, listenerGot]) {
        await until("the row", got, (all) => all.length === 1);
        assert.equal(got[0].type, "broadcast");
        assert.equal(got[0].event, `queue:row:${vsn}`);
        assert.match(got[0].meta?.id ?? "", uuidPattern);
        assert.deepEqual(got[0].payload, { ...row, id: got[0].meta!.id });
      }

      const pushed = { from: "host", at: 42, text: "emoji 🎶" };
      assert.equal(
        await hostChannel.send({ type: "broadcast", event: `queue:push:${vsn}`, payload: pushed }),
        "ok",
        "acknowledged",
      );
      for (const got of [hostGot, listenerGot]) {
        await until("the client broadcast", got, (all) => all.length === 2);
        assert.deepEqual(got[1], {
          type: "broadcast",
          event: `queue:push:${vsn}`,
          payload: pushed,
        });
      }
    } finally {
      await closeRealtime(hostClient, listenerClient);
    }
  });
}

Deno.test("private room:{id}:queue: host and dj publish, a listener's broadcast is dropped silently", async () => {
  const topic = `room:${queueRoom}:queue`;
  const config = { private: true, broadcast: { ack: true } };
  const [hostClient, djClient, listenerClient] = [host, dj, listener].map((u) =>
    realtimeClientFor(u.token)
  );
  try {
    const hostChannel = await joined(hostClient, topic, config);
    const djChannel = await joined(djClient, topic, config);
    const listenerChannel = await joined(listenerClient, topic, config);
    const [hostGot, djGot, listenerGot] = [hostChannel, djChannel, listenerChannel].map((c) =>
      received(c)
    );

    // No write right: no delivery and no reply, so the acknowledged send times out.
    assert.equal(
      await listenerChannel.send(
        { type: "broadcast", event: "queue:forbidden", payload: { by: "listener" } },
        { timeout: 500 },
      ),
      "timed out",
    );
    assert.equal(
      await hostChannel.send({ type: "broadcast", event: "queue:host", payload: { by: "host" } }),
      "ok",
    );
    assert.equal(
      await djChannel.send({ type: "broadcast", event: "queue:dj", payload: { by: "dj" } }),
      "ok",
    );
    await until("host and dj", listenerGot, (all) => all.length === 2);
    await until("the dj's", hostGot, (all) => all.length === 1);
    await until("the host's", djGot, (all) => all.length === 1);
    assert.deepEqual(events(listenerGot), ["queue:host", "queue:dj"]);
    assert.deepEqual(events(hostGot), ["queue:dj"], "self is off by default");
    assert.deepEqual(events(djGot), ["queue:host"]);
  } finally {
    await closeRealtime(hostClient, djClient, listenerClient);
  }
});

Deno.test("public and private channels of one topic are separate, for rows and client broadcasts", async () => {
  const topic = `room:${topicsRoom}:queue`;
  const [publicSender, publicReceiver] = [outsider, listener].map((u) =>
    realtimeClientFor(u.token)
  );
  const [privateSender, privateReceiver] = [host, dj].map((u) => realtimeClientFor(u.token));
  try {
    // Acknowledged sends: the server has fanned a broadcast out before it replies, so whatever
    // leaks reaches a receiver before the rows written afterwards.
    const broadcast = { ack: true };
    const publicChannel = await joined(publicSender, topic, { private: false, broadcast });
    const privateChannel = await joined(privateSender, topic, { private: true, broadcast });
    const publicGot = received(await joined(publicReceiver, topic, { private: false }));
    const privateGot = received(await joined(privateReceiver, topic, { private: true }));

    await send(topic, "row:public-1", { n: 1 }, false);
    await send(topic, "row:private-1", { n: 2 }, true);
    assert.equal(
      await publicChannel.send({ type: "broadcast", event: "push:public", payload: {} }),
      "ok",
    );
    assert.equal(
      await privateChannel.send({ type: "broadcast", event: "push:private", payload: {} }),
      "ok",
    );
    await send(topic, "row:public-2", { n: 3 }, false);
    await send(topic, "row:private-2", { n: 4 }, true);
    await until("the public rows", publicGot, (all) => events(all).includes("row:public-2"));
    await until("the private rows", privateGot, (all) => events(all).includes("row:private-2"));
    // Rows arrive after the WAL is read, so a push may overtake the first row; the last row still
    // comes after anything that could leak.
    assert.deepEqual(events(publicGot).sort(), ["push:public", "row:public-1", "row:public-2"]);
    assert.deepEqual(events(privateGot).sort(), ["push:private", "row:private-1", "row:private-2"]);
  } finally {
    await closeRealtime(publicSender, publicReceiver, privateSender, privateReceiver);
  }
});

Deno.test("vsn 2.0.0: binary payloads reach 2.0.0 subscribers as bytes, and no 1.0.0 subscriber", async () => {
  const topic = `binary-${crypto.randomUUID()}`;
  const sender = realtimeClientFor(anonKey, { vsn: "2.0.0" });
  const v2 = realtimeClientFor(anonKey, { vsn: "2.0.0" });
  const v1 = realtimeClientFor(anonKey, { vsn: "1.0.0" });
  try {
    const channel = await joined(sender, topic, { private: false, broadcast: { ack: true } });
    const v2Got = received(await joined(v2, topic, { private: false }));
    const v1Got = received(await joined(v1, topic, { private: false }));
    const bytes = new Uint8Array([0, 1, 2, 253, 254, 255]);
    assert.equal(
      await channel.send({ type: "broadcast", event: "bytes", payload: bytes.buffer }),
      "ok",
    );
    await send(topic, "after-bytes", { n: 1 }, false);
    await until("the row after", v2Got, (all) => all.length === 2);
    await until("the row after", v1Got, (all) => all.length === 1);
    assert.equal(v2Got[0].event, "bytes");
    assert.deepEqual(new Uint8Array(v2Got[0].payload), bytes);
    assert.deepEqual(events(v1Got), ["after-bytes"]);
  } finally {
    await closeRealtime(sender, v2, v1);
  }
});

Deno.test("an event name too long for a binary frame still reaches 2.0.0 and 1.0.0 subscribers", async () => {
  const v2 = realtimeClientFor(anonKey, { vsn: "2.0.0" });
  const v1 = realtimeClientFor(anonKey, { vsn: "1.0.0" });
  const topic = `long-${crypto.randomUUID()}`;
  const event = "e".repeat(300);
  try {
    const got2 = received(await joined(v2, topic, { private: false }));
    const got1 = received(await joined(v1, topic, { private: false }));
    await send(topic, event, { a: 1 }, false);
    const rest = await fetch(`${apiUrl}/realtime/v1/api/broadcast`, {
      method: "POST",
      headers: { apikey: anonKey, "content-type": "application/json" },
      body: JSON.stringify({
        messages: [{ topic, event: "e", payload: { b: 2 }, id: "x".repeat(300) }],
      }),
    });
    assert.equal(rest.status, 202);
    await rest.body?.cancel();
    for (const got of [got2, got1]) {
      await until("the row and the REST message", got, (all) => all.length === 2);
      assert.deepEqual(got.map((m) => m.event).sort(), ["e", event].sort());
    }
    // The gateway is still serving.
    const health = await fetch(`${apiUrl}/functions/v1/health`, {
      headers: { authorization: `Bearer ${anonKey}` },
    });
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await closeRealtime(v2, v1);
  }
});
