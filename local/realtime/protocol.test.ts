// Unit tests of the stand-in's wire format (protocol.ts). Binary frames are checked against
// realtime-js's own serializer, the one supabase-js runs, so both directions agree with the real
// client byte for byte.
import assert from "node:assert/strict";
import serializer from "npm:@supabase/realtime-js@2.119.1/dist/main/lib/serializer.js";
import {
  decodeBinary,
  decodeText,
  encodeText,
  encodeUserBroadcast,
  jsonEncoding,
  OutgoingBroadcast,
  ProtocolError,
} from "./protocol.ts";

const realtimeJs = new serializer.default();

/** A client frame exactly as realtime-js puts it on a 2.0.0 socket. */
function clientEncoded(message: {
  join_ref: string | null;
  ref: string | null;
  topic: string;
  event: string;
  payload: Record<string, unknown>;
}): string | Uint8Array {
  let encoded: string | ArrayBuffer | undefined;
  realtimeJs.encode(message, (result: string | ArrayBuffer) => encoded = result);
  return typeof encoded === "string" ? encoded : new Uint8Array(encoded!);
}

/** What realtime-js makes of a server frame. */
// deno-lint-ignore no-explicit-any -- whatever realtime-js decodes
function clientDecoded(data: string | Uint8Array): any {
  let decoded: unknown;
  const raw = typeof data === "string" ? data : data.slice().buffer;
  realtimeJs.decode(raw, (result: unknown) => decoded = result);
  return decoded;
}

Deno.test("decodeText 1.0.0: an object frame, refs as strings or null", () => {
  const text = JSON.stringify({
    topic: "realtime:room",
    event: "phx_join",
    payload: { config: { private: true } },
    ref: "2",
    join_ref: "2",
  });
  assert.deepEqual(decodeText("1.0.0", text), {
    joinRef: "2",
    ref: "2",
    topic: "realtime:room",
    event: "phx_join",
    payload: { config: { private: true } },
  });
  // Heartbeats carry no join_ref; numeric refs (older clients) read as strings.
  assert.deepEqual(
    decodeText("1.0.0", '{"topic":"phoenix","event":"heartbeat","payload":{},"ref":7}'),
    { joinRef: null, ref: "7", topic: "phoenix", event: "heartbeat", payload: {} },
  );
});

Deno.test("decodeText: a ref that is not a string is read as its JSON text, never by its own toString", () => {
  // String({toString: 1}) throws; such a frame used to fail past the decoder, unanswered.
  for (const vsn of ["1.0.0", "2.0.0"] as const) {
    const ref = { toString: 1 };
    const joinRef = [{ toString: {} }];
    const text = vsn === "2.0.0"
      ? JSON.stringify([joinRef, ref, "phoenix", "heartbeat", {}])
      : JSON.stringify({
        topic: "phoenix",
        event: "heartbeat",
        payload: {},
        ref,
        join_ref: joinRef,
      });
    assert.deepEqual(decodeText(vsn, text), {
      joinRef: '[{"toString":{}}]',
      ref: '{"toString":1}',
      topic: "phoenix",
      event: "heartbeat",
      payload: {},
    });
  }
  assert.equal(decodeText("2.0.0", '[true, 2e64, "phoenix", "heartbeat", {}]').ref, "2e+64");
});

Deno.test("decodeText 2.0.0: realtime-js's array frames", () => {
  const join = clientEncoded({
    join_ref: "1",
    ref: "1",
    topic: "realtime:room",
    event: "phx_join",
    payload: { config: { broadcast: { self: false } }, access_token: "jwt" },
  });
  assert.equal(typeof join, "string");
  assert.deepEqual(decodeText("2.0.0", join as string), {
    joinRef: "1",
    ref: "1",
    topic: "realtime:room",
    event: "phx_join",
    payload: { config: { broadcast: { self: false } }, access_token: "jwt" },
  });
  assert.deepEqual(decodeText("2.0.0", '[null,"3","phoenix","heartbeat",{}]'), {
    joinRef: null,
    ref: "3",
    topic: "phoenix",
    event: "heartbeat",
    payload: {},
  });
});

Deno.test("decodeText refuses what is not a frame of its version", () => {
  const bad: [Parameters<typeof decodeText>[0], string][] = [
    ["1.0.0", "not json"],
    ["1.0.0", '["1","1","realtime:room","phx_join",{}]'],
    ["1.0.0", "null"],
    ["1.0.0", '{"topic":1,"event":"phx_join","payload":{},"ref":"1"}'],
    ["1.0.0", '{"topic":"realtime:room","payload":{},"ref":"1"}'],
    ["2.0.0", '{"topic":"realtime:room","event":"phx_join","payload":{},"ref":"1"}'],
    ["2.0.0", '["1","1","realtime:room","phx_join"]'],
    ["2.0.0", '["1","1","realtime:room","phx_join",{},"extra"]'],
    ["2.0.0", '["1","1",null,"phx_join",{}]'],
    ["2.0.0", '["1","1","realtime:room",{},{}]'],
    ["2.0.0", "[1,"],
  ];
  for (const [vsn, text] of bad) {
    assert.throws(() => decodeText(vsn, text), ProtocolError, `${vsn} ${text}`);
  }
});

Deno.test("encodeText: 1.0.0 leaves join_ref out, 2.0.0 is the array realtime-js decodes", () => {
  const frame = {
    joinRef: "4",
    ref: "5",
    topic: "realtime:room",
    event: "phx_reply",
    payload: { status: "ok", response: { postgres_changes: [] } },
  };
  assert.deepEqual(JSON.parse(encodeText("1.0.0", frame)), {
    topic: "realtime:room",
    event: "phx_reply",
    payload: { status: "ok", response: { postgres_changes: [] } },
    ref: "5",
  });
  const v2 = encodeText("2.0.0", frame);
  assert.deepEqual(JSON.parse(v2), ["4", "5", "realtime:room", "phx_reply", frame.payload]);
  assert.deepEqual(clientDecoded(v2), {
    join_ref: "4",
    ref: "5",
    topic: "realtime:room",
    event: "phx_reply",
    payload: frame.payload,
  });
  // Fan-out frames have no refs at all.
  assert.deepEqual(
    JSON.parse(encodeText("2.0.0", { ...frame, joinRef: null, ref: null, event: "presence_diff" })),
    [null, null, "realtime:room", "presence_diff", frame.payload],
  );
});

Deno.test("decodeBinary reads realtime-js's kind 3 broadcast push, JSON and binary payloads", () => {
  const json = clientEncoded({
    join_ref: "12",
    ref: "345",
    topic: "realtime:room:ü",
    event: "broadcast",
    payload: { type: "broadcast", event: "queue:añadido ♫", payload: { song: "Ünïcødé", n: [1] } },
  });
  assert.ok(json instanceof Uint8Array);
  const decoded = decodeBinary(json);
  assert.deepEqual({ ...decoded, payload: undefined }, {
    joinRef: "12",
    ref: "345",
    topic: "realtime:room:ü",
    userEvent: "queue:añadido ♫",
    encoding: jsonEncoding,
    payload: undefined,
  });
  assert.deepEqual(JSON.parse(new TextDecoder().decode(decoded.payload)), {
    song: "Ünïcødé",
    n: [1],
  });

  const bytes = new Uint8Array([0, 255, 7, 1]);
  const binary = decodeBinary(
    clientEncoded({
      join_ref: null,
      ref: null,
      topic: "realtime:room",
      event: "broadcast",
      payload: { type: "broadcast", event: "raw", payload: bytes.buffer },
    }) as Uint8Array,
  );
  assert.equal(binary.joinRef, null, "an empty ref reads as none");
  assert.equal(binary.ref, null);
  assert.equal(binary.encoding, 0);
  assert.deepEqual(binary.payload, bytes);
});

Deno.test("decodeBinary skips the metadata field (persist) and keeps the payload intact", () => {
  const frame = clientEncoded({
    join_ref: "1",
    ref: "2",
    topic: "realtime:room",
    event: "broadcast",
    payload: { type: "broadcast", event: "e", payload: { a: 1 }, persist: true },
  }) as Uint8Array;
  assert.ok(frame[5] > 0, "realtime-js sent metadata");
  const decoded = decodeBinary(frame);
  assert.equal(decoded.userEvent, "e");
  assert.deepEqual(JSON.parse(new TextDecoder().decode(decoded.payload)), { a: 1 });
});

Deno.test("decodeBinary refuses other kinds, bad encodings, truncated frames, non-UTF-8 headers", () => {
  const good = clientEncoded({
    join_ref: "1",
    ref: "2",
    topic: "realtime:room",
    event: "broadcast",
    payload: { type: "broadcast", event: "e", payload: {} },
  }) as Uint8Array;
  const withByte = (index: number, value: number) => {
    const copy = good.slice();
    copy[index] = value;
    return copy;
  };
  const bad: [string, Uint8Array][] = [
    ["empty", new Uint8Array()],
    ["shorter than the header", good.slice(0, 6)],
    ["kind 4 (server to client)", withByte(0, 4)],
    ["kind 0", withByte(0, 0)],
    ["encoding 2", withByte(6, 2)],
    ["a topic longer than the frame", withByte(3, 250)],
    ["header cut short", good.slice(0, 7 + 1 + 1 + 5)],
    ["a topic that is not UTF-8", withByte(7 + 1 + 1, 0xff)],
  ];
  for (const [what, frame] of bad) assert.throws(() => decodeBinary(frame), ProtocolError, what);
});

Deno.test("encodeUserBroadcast: the kind 4 frame realtime-js decodes, with and without meta", () => {
  const payload = new TextEncoder().encode(JSON.stringify({ messages: [{ id: 1, body: "hé" }] }));
  const withMeta = encodeUserBroadcast(
    "realtime:room:chat",
    "chat:batch",
    { id: "3b2a7e2c-0d1f-4a57-9d1e-1c3f0e0b9a11" },
    jsonEncoding,
    payload,
  )!;
  assert.equal(withMeta[0], 4);
  assert.deepEqual(clientDecoded(withMeta), {
    join_ref: null,
    ref: null,
    topic: "realtime:room:chat",
    event: "broadcast",
    payload: {
      type: "broadcast",
      event: "chat:batch",
      payload: { messages: [{ id: 1, body: "hé" }] },
      meta: { id: "3b2a7e2c-0d1f-4a57-9d1e-1c3f0e0b9a11" },
    },
  });

  const bytes = new Uint8Array([9, 8, 7]);
  const decoded = clientDecoded(encodeUserBroadcast("realtime:x", "ü", undefined, 0, bytes)!);
  assert.equal(decoded.payload.event, "ü");
  assert.equal("meta" in decoded.payload, false, "no meta field when there is none");
  assert.deepEqual(new Uint8Array(decoded.payload.payload), bytes);
});

Deno.test("encodeUserBroadcast has no frame for header fields over 255 bytes", () => {
  const payload = new Uint8Array();
  assert.equal(
    encodeUserBroadcast("realtime:" + "t".repeat(247), "e", undefined, 1, payload),
    undefined,
  );
  assert.equal(
    encodeUserBroadcast("realtime:t", "é".repeat(128), undefined, 1, payload),
    undefined,
  );
  assert.equal(
    encodeUserBroadcast("realtime:t", "e", { id: "x".repeat(250) }, 1, payload),
    undefined,
  );
  // 255 bytes exactly still fit.
  const topic = "realtime:" + "t".repeat(246);
  assert.equal(clientDecoded(encodeUserBroadcast(topic, "e", undefined, 0, payload)!).topic, topic);
});

Deno.test("OutgoingBroadcast: the kind 4 frame for 2.0.0 and the text frame for 1.0.0, each made once", () => {
  const json = JSON.stringify({ messages: [{ id: 1, body: "hé" }] });
  const meta = { id: "3b2a7e2c-0d1f-4a57-9d1e-1c3f0e0b9a11" };
  const outgoing = new OutgoingBroadcast("realtime:room:chat", "chat:batch", { json }, meta);
  const v2 = outgoing.encoded("2.0.0");
  const bytes = new TextEncoder().encode(json);
  assert.deepEqual(
    v2,
    encodeUserBroadcast("realtime:room:chat", "chat:batch", meta, jsonEncoding, bytes),
  );
  const v1 = outgoing.encoded("1.0.0");
  const message = { type: "broadcast", event: "chat:batch", payload: JSON.parse(json), meta };
  const frame = { joinRef: null, ref: null, topic: "realtime:room:chat", event: "broadcast" };
  assert.deepEqual(
    JSON.parse(v1 as string),
    JSON.parse(encodeText("1.0.0", { ...frame, payload: message })),
  );
  assert.equal(outgoing.encoded("2.0.0"), v2, "encoded once per protocol");
  assert.equal(outgoing.encoded("1.0.0"), v1);
});

Deno.test("OutgoingBroadcast: the payload goes out as the JSON text it came as", () => {
  // Parsed again, a key named __proto__ would be lost.
  const json = '{"__proto__":{"x":1},"b":[1,2.50]}';
  const outgoing = new OutgoingBroadcast("realtime:t", "e", { json });
  assert.ok((outgoing.encoded("1.0.0") as string).includes(`"payload":${json}`));
  const v2 = outgoing.encoded("2.0.0") as Uint8Array;
  assert.ok(new TextDecoder().decode(v2).endsWith(json));
});

Deno.test("OutgoingBroadcast: binary payloads reach 2.0.0 only; header fields over 255 bytes fall back to 2.0.0's text frame", () => {
  const bytes = new Uint8Array([0, 255, 7]);
  const binary = new OutgoingBroadcast("realtime:t", "raw", { binary: bytes });
  assert.deepEqual(new Uint8Array(clientDecoded(binary.encoded("2.0.0")!).payload.payload), bytes);
  assert.equal(binary.encoded("1.0.0"), undefined, "1.0.0 cannot carry bytes");

  const event = "e".repeat(300);
  const long = new OutgoingBroadcast("realtime:t", event, { json: '{"a":1}' }, { id: "x" });
  const text = long.encoded("2.0.0");
  assert.equal(typeof text, "string");
  assert.deepEqual(JSON.parse(text as string), [null, null, "realtime:t", "broadcast", {
    type: "broadcast",
    event,
    payload: { a: 1 },
    meta: { id: "x" },
  }]);
  assert.equal(
    new OutgoingBroadcast("realtime:t", event, { binary: bytes }).encoded("2.0.0"),
    undefined,
    "bytes have no text frame",
  );
});
