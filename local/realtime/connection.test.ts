// One socket's wire protocol frame by frame, on bare WebSockets through the test stack's gateway
// (connection.ts, protocol.ts): heartbeat, phx_join and its reply, a row as each version gets
// it, binary broadcasts both ways, a push for a topic not joined, phx_leave and phx_close, and a
// frame that cannot be decoded, which drops the socket.
import assert from "node:assert/strict";
import { broadcastPush, rawSocket, send, until } from "./testing.ts";

const ok = (response: unknown) => ({ status: "ok", response });

Deno.test("vsn 1.0.0 on the wire: heartbeat, join, a row, an unmatched push, leave, a bad frame", async () => {
  const raw = await rawSocket("1.0.0");
  try {
    const topic = `raw-v1-${crypto.randomUUID()}`;
    const joinTopic = `realtime:${topic}`;
    raw.send({ topic: "phoenix", event: "heartbeat", payload: {}, ref: "1" });
    raw.send({
      topic: joinTopic,
      event: "phx_join",
      payload: { config: {} },
      ref: "2",
      join_ref: "2",
    });
    await until("two replies", raw.frames, (all) => all.length === 2);
    // The 1.0.0 serializer sends no join_ref.
    assert.deepEqual(raw.frames, [
      { topic: "phoenix", event: "phx_reply", payload: { status: "ok", response: {} }, ref: "1" },
      {
        topic: joinTopic,
        event: "phx_reply",
        payload: { status: "ok", response: { postgres_changes: [] } },
        ref: "2",
      },
    ]);
    await send(topic, "row", { a: 1 }, false);
    await until("the row", raw.frames, (all) => all.length === 3);
    // deno-lint-ignore no-explicit-any -- a frame as it came
    const row = raw.frames[2] as any;
    assert.deepEqual(row, {
      topic: joinTopic,
      event: "broadcast",
      payload: {
        type: "broadcast",
        event: "row",
        payload: { a: 1, id: row.payload.meta.id },
        meta: { id: row.payload.meta.id },
      },
      ref: null,
    });
    raw.send({ topic: "realtime:elsewhere", event: "broadcast", payload: {}, ref: "3" });
    raw.send({ topic: joinTopic, event: "phx_leave", payload: {}, ref: "4", join_ref: "2" });
    await until("three more frames", raw.frames, (all) => all.length === 6);
    assert.deepEqual(raw.frames.slice(3), [
      {
        topic: "realtime:elsewhere",
        event: "phx_reply",
        payload: { status: "error", response: { reason: "unmatched topic" } },
        ref: "3",
      },
      { topic: joinTopic, event: "phx_reply", payload: { status: "ok", response: {} }, ref: "4" },
      { topic: joinTopic, event: "phx_close", payload: {}, ref: "2" },
    ]);
    raw.send(["2", "5", joinTopic, "phx_join", {}]);
    await raw.closed;
  } finally {
    await raw.close();
  }
});

Deno.test("vsn 2.0.0 on the wire: array frames, binary broadcasts both ways, leave, a bad frame", async () => {
  const raw = await rawSocket("2.0.0");
  try {
    const topic = `raw-v2-${crypto.randomUUID()}`;
    const joinTopic = `realtime:${topic}`;
    raw.send([null, "1", "phoenix", "heartbeat", {}]);
    const config = { broadcast: { self: true, ack: true } };
    raw.send(["2", "2", joinTopic, "phx_join", { config }]);
    await until("two replies", raw.frames, (all) => all.length === 2);
    assert.deepEqual(raw.frames, [
      [null, "1", "phoenix", "phx_reply", ok({})],
      ["2", "2", joinTopic, "phx_reply", ok({ postgres_changes: [] })],
    ]);
    await send(topic, "row", { a: "ä" }, false);
    await until("the row", raw.frames, (all) => all.length === 3);
    // A binary kind 4 frame, decoded by realtime-js.
    // deno-lint-ignore no-explicit-any -- a frame as it came
    const row = raw.frames[2] as any;
    assert.deepEqual(row, {
      join_ref: null,
      ref: null,
      topic: joinTopic,
      event: "broadcast",
      payload: {
        type: "broadcast",
        event: "row",
        payload: { a: "ä", id: row.payload.meta?.id },
        meta: { id: row.payload.meta?.id },
      },
    });

    // A kind 3 push marked JSON whose bytes are not JSON is dropped (no reply, no delivery);
    // a good one is delivered (self) and acknowledged.
    const notJson = broadcastPush(
      "2",
      "3",
      joinTopic,
      "bad",
      new TextEncoder().encode("{no").buffer,
    );
    notJson[6] = 1;
    raw.send(notJson);
    raw.send(broadcastPush("2", "4", joinTopic, "good", { b: [1] }));
    await until("the good push and its ack", raw.frames, (all) => all.length === 5);
    assert.deepEqual(raw.frames.slice(3), [
      {
        join_ref: null,
        ref: null,
        topic: joinTopic,
        event: "broadcast",
        payload: { type: "broadcast", event: "good", payload: { b: [1] } },
      },
      ["2", "4", joinTopic, "phx_reply", ok({})],
    ]);

    raw.send(["2", "5", joinTopic, "phx_leave", {}]);
    await until("two more frames", raw.frames, (all) => all.length === 7);
    assert.deepEqual(raw.frames.slice(5), [
      ["2", "5", joinTopic, "phx_reply", ok({})],
      ["2", "2", joinTopic, "phx_close", {}],
    ]);
    // A 1.0.0 object is not a 2.0.0 frame: the socket is dropped.
    raw.send({ topic: joinTopic, event: "phx_join", payload: {}, ref: "4", join_ref: "4" });
    await raw.closed;
  } finally {
    await raw.close();
  }
});
