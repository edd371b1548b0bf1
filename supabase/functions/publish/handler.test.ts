// End to end through the test stack's gateway with the real supabase-js client: publishing on
// persisted channels through their rules (API.md §4 publish), read back by a Realtime
// subscriber, from history and room-context, and from the rows in the database.
// Each test publishes on rooms of its own: the rate limit is per caller and channel.
import assert from "node:assert/strict";
import {
  apiUrl,
  clientFor,
  createCastAndRooms,
  createRoom,
  createUser,
  expectError,
  expectRateLimited,
  invoke,
  listenPrivate,
  poll,
  serviceRoleKey,
  withDb,
} from "../../../local/test-helpers.ts";

const cast = await createCastAndRooms(10);
const { host, listener, dj, outsider, anonymousListener } = cast;
const [
  queueRoom,
  quietRoom,
  accessRoom,
  batchRoom,
  idRoom,
  raceRoom,
  sizeRoom,
  validationRoom,
  rateRoom,
  corsRoom,
] = cast.rooms;
const notified = await withDb((sql) => createUser(sql));

const service = clientFor(serviceRoleKey);
const publishUrl = `${apiUrl}/functions/v1/publish`;
const queue = (room: string) => `room:${room}:queue`;

interface Published {
  id: string;
  channel: string;
  event: string;
  timestamp: number;
  duplicate: boolean;
}
interface Item {
  id: number;
  event: string;
  data: Record<string, unknown>;
  timestamp: number;
}
interface Message {
  channel: string;
  event: string;
  payload: Record<string, unknown>;
  push?: Record<string, unknown>;
  id?: string;
}

function publish(body: unknown, client = host.client) {
  return invoke(client, "publish", body);
}

/** Asserts that `response` is a 202 for one message, first published (not a duplicate) with
 * `id` on `channel` as `event`, and returns that answer. */
function assertPublishedOnce(
  response: Awaited<ReturnType<typeof publish>>,
  { id, channel, event }: { id: string; channel: string; event: string },
): Published {
  assert.equal(response.status, 202, JSON.stringify(response.body));
  const [published] = response.body.published as Published[];
  assert.deepEqual({ ...published, timestamp: 0 }, {
    id,
    channel,
    event,
    timestamp: 0,
    duplicate: false,
  });
  return published;
}

/** A POST of a raw body, for bodies supabase-js would not send as JSON. */
function post(body: string, token = host.token): Promise<Response> {
  return fetch(publishUrl, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body,
  });
}

/** What a channel got, as the database holds it: history rows in the order of their numbers,
 * and broadcasts (realtime.messages, Realtime's own `id` taken out of the payload) by
 * transaction; the rows of one transaction share inserted_at and have no order of their own. */
function written(channel: string) {
  return withDb(async (sql) => {
    const sent = await sql`select event, payload - 'id' as payload from realtime.messages
                           where topic = ${channel} and extension = 'broadcast'
                           order by inserted_at, payload::text`;
    const kept = await sql`select id, event, data from private.channel_messages
                           where channel = ${channel} order by id`;
    return {
      sent: sent.map((r) => ({ event: r.event as string, payload: r.payload })),
      kept: kept.map((r) => ({ id: String(r.id), event: r.event as string, data: r.data })),
    };
  });
}

/** A broadcast payload without the `id` Realtime adds to it. */
function withoutRealtimeId(payload: Record<string, unknown>) {
  const { id: _id, ...rest } = payload;
  return rest;
}

Deno.test("the host publishes the queue state: a subscriber gets it, history, rewind=1 and room-context serve it", async () => {
  const channel = queue(queueRoom);
  const payload = { songs: [{ id: "s1", title: "First" }, { id: "s2", title: "Second" }], v: 1 };
  const subscriber = await listenPrivate(listener.token, channel);
  try {
    const before = Date.now();
    const response = await publish({ channel, event: "queue:updated", payload });
    assert.equal(response.status, 202, JSON.stringify(response.body));
    assert.equal(response.headers.get("access-control-allow-origin"), "*");
    const [published] = response.body.published as Published[];
    assert.equal(response.body.published.length, 1);
    assert.deepEqual(
      [published.channel, published.event, published.duplicate],
      [channel, "queue:updated", false],
    );
    assert.match(published.id, /^\d+$/, "without an id of its own, the message's number");
    assert.ok(published.timestamp >= before - 1000 && published.timestamp <= Date.now() + 1000);

    await poll(() => Promise.resolve(subscriber.received), (received) => received.length > 0, 5000);
    assert.deepEqual(
      subscriber.received.map((m) => [m.event, withoutRealtimeId(m.payload)]),
      [["queue:updated", payload]],
      "the subscriber receives the event with its payload",
    );

    const item: Item = {
      id: Number(published.id),
      event: "queue:updated",
      data: payload,
      timestamp: published.timestamp,
    };
    const rewound = await invoke(listener.client, `history?channel=${channel}&rewind=1`);
    assert.equal(rewound.status, 200, JSON.stringify(rewound.body));
    assert.deepEqual(rewound.body.items, [item]);
    const history = await invoke(listener.client, `history?channel=${channel}`);
    assert.deepEqual(history.body.items, [item]);
    const context = await invoke(listener.client, `room-context?room_id=${queueRoom}`);
    assert.equal(context.status, 200, JSON.stringify(context.body));
    assert.deepEqual(context.body.queue, item);

    // The dj publishes the next state: it is the queue room-context shows from now on.
    const next = await publish(
      { channel, event: "queue:updated", payload: { songs: [], v: 2 } },
      dj.client,
    );
    assert.equal(next.status, 202, JSON.stringify(next.body));
    const later = await invoke(listener.client, `room-context?room_id=${queueRoom}`);
    assert.deepEqual(later.body.queue, {
      id: Number(next.body.published[0].id),
      event: "queue:updated",
      data: { songs: [], v: 2 },
      timestamp: next.body.published[0].timestamp,
    });
    await poll(() => Promise.resolve(subscriber.received), (received) => received.length > 1, 5000);
    assert.deepEqual(subscriber.received.map((m) => m.payload.v), [1, 2]);
  } finally {
    await subscriber.close();
  }
});

Deno.test("room-context's queue is null for a room whose queue never had a message", async () => {
  const context = await invoke(listener.client, `room-context?room_id=${quietRoom}`);
  assert.equal(context.status, 200, JSON.stringify(context.body));
  assert.ok("queue" in context.body, "the snapshot has a queue key");
  assert.equal(context.body.queue, null);
});

Deno.test("who may publish on the queue: host and dj; a listener, an outsider, an anonymous member and the anon key are refused", async () => {
  const channel = queue(accessRoom);
  const message = { channel, event: "queue:updated", payload: { songs: [] } };
  const listenerRefusal = await publish(message, listener.client);
  assert.equal(listenerRefusal.status, 403, JSON.stringify(listenerRefusal.body));
  assert.equal(typeof listenerRefusal.body.error.code, "string");
  assert.equal(listenerRefusal.headers.get("access-control-allow-origin"), "*");
  await expectError(publish(message, outsider.client), 403, "not_a_member", "outsider");
  await expectError(
    publish(message, anonymousListener.client),
    403,
    "identified_only",
    "anonymous member",
  );
  await expectError(publish(message, clientFor()), 403, "identified_only", "anon key");
  await expectError(publish(message, clientFor("not-a-jwt")), 401, "invalid_token", "bad token");
  // The channels that have their own functions, or none, are closed to users.
  for (
    const other of [`room:${accessRoom}:chat`, `room:${accessRoom}:playback`, `room:${accessRoom}`]
  ) {
    const refused = await publish({ ...message, channel: other, event: "note" });
    assert.equal(refused.status, 403, `${other}: ${JSON.stringify(refused.body)}`);
  }
  assert.deepEqual(await written(channel), { sent: [], kept: [] }, "nothing of the refused");
  for (
    const other of [`room:${accessRoom}:chat`, `room:${accessRoom}:playback`, `room:${accessRoom}`]
  ) {
    assert.deepEqual((await written(other)).sent, [], `nothing broadcast on ${other}`);
  }

  for (const [who, client] of [["host", host.client], ["dj", dj.client]] as const) {
    const accepted = await publish({ ...message, payload: { by: who } }, client);
    assert.equal(accepted.status, 202, `${who}: ${JSON.stringify(accepted.body)}`);
  }
  assert.deepEqual((await written(channel)).kept.map((m) => m.data), [{ by: "host" }, {
    by: "dj",
  }]);
});

Deno.test("the service role notifies a user with push: outbox row, and the user reads it back from history", async () => {
  const channel = `user:${notified.id}:notifications`;
  const push = { title: "New follower", body: "Someone follows you" };
  const payload = { kind: "follow", by: host.id };
  const notification = { channel, event: "notification:follow", payload, push, id: "follow-1" };
  const published = assertPublishedOnce(await publish(notification, service), notification);
  const [kept] = (await written(channel)).kept;
  assert.ok(kept, "the notification is kept");

  const outbox = await withDb((sql) =>
    sql`select id, channel, event, push, sent_at from private.push_outbox where channel = ${channel}`
  );
  assert.deepEqual(
    outbox.map((r) => ({ ...r, id: String(r.id) })),
    [{ id: kept.id, channel, event: "notification:follow", push, sent_at: null }],
  );
  assert.deepEqual((await written(channel)).sent, [{ event: "notification:follow", payload }]);
  // The app server retries: no second notification, no second push.
  const retried = await publish(notification, service);
  assert.deepEqual(retried.body.published, [{ ...published, duplicate: true }]);
  const pushes = await withDb((sql) =>
    sql`select count(*)::int as n from private.push_outbox where channel = ${channel}`
  );
  assert.equal(pushes[0].n, 1, "one push");
  assert.equal((await written(channel)).sent.length, 1, "one broadcast");
  // Notifications are tls_only.
  const plain = await fetch(publishUrl, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${serviceRoleKey}`,
      "Content-Type": "application/json",
      "x-forwarded-proto": "http",
    },
    body: JSON.stringify({ ...notification, id: "follow-plain" }),
  });
  assert.equal(plain.status, 403);
  assert.equal((await plain.json()).error.code, "tls_required");

  const history = await invoke(notified.client, `history?channel=${channel}`);
  assert.equal(history.status, 200, JSON.stringify(history.body));
  assert.deepEqual(history.body.items, [{
    id: Number(kept.id),
    event: "notification:follow",
    data: payload,
    timestamp: published.timestamp,
  }]);
  await expectError(
    invoke(host.client, `history?channel=${channel}`),
    403,
    "user_id_mismatch",
    "someone else's notifications",
  );
  // A user cannot publish on their own notifications.
  const own = await publish({ channel, event: "notification:self", payload: {} }, notified.client);
  assert.equal(own.status, 403, JSON.stringify(own.body));

  // Push only where the rule enables it.
  for (const client of [host.client, service]) {
    await expectError(
      publish({ channel: queue(queueRoom), event: "queue:updated", payload: {}, push }, client),
      400,
      "push_not_enabled",
      "push on the queue",
    );
  }
  const queuePushes = await withDb((sql) =>
    sql`select count(*)::int as n from private.push_outbox where channel = ${queue(queueRoom)}`
  );
  assert.equal(queuePushes[0].n, 0);
});

Deno.test("a batch is published in request order: answers, numbers, history and delivery", async () => {
  const channel = queue(batchRoom);
  const subscriber = await listenPrivate(dj.token, channel);
  try {
    const messages = ["added", "moved", "removed", "added", "cleared"].map((what, n) => ({
      channel,
      event: `queue:${what}`,
      payload: { n },
    }));
    const response = await publish({ messages });
    assert.equal(response.status, 202, JSON.stringify(response.body));
    const published = response.body.published as Published[];
    assert.deepEqual(published.map((p) => p.event), messages.map((m) => m.event));
    const ids = published.map((p) => Number(p.id));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "ids ascend in request order");
    assert.equal(new Set(ids).size, ids.length);

    const { sent, kept } = await written(channel);
    assert.deepEqual(
      kept.map((m) => [m.id, m.event, m.data]),
      published.map((p, n) => [
        p.id,
        p.event,
        { n },
      ]),
    );
    assert.deepEqual(sent.map((m) => m.payload.n).sort(), [0, 1, 2, 3, 4], "each broadcast once");
    const history = await invoke(listener.client, `history?channel=${channel}&rewind=5`);
    assert.deepEqual((history.body.items as Item[]).map((i) => i.id), ids, "rewind, oldest first");
    const context = await invoke(listener.client, `room-context?room_id=${batchRoom}`);
    assert.equal(context.body.queue.id, ids.at(-1), "the last of the batch is the queue's last");

    await poll(
      () => Promise.resolve(subscriber.received),
      (received) => received.length >= 5,
      5000,
    );
    assert.deepEqual(
      subscriber.received.map((m) => [m.event, m.payload.n]),
      messages.map((m) => [m.event, m.payload.n]),
      "delivered in request order",
    );
  } finally {
    await subscriber.close();
  }
});

Deno.test("idempotent ids: a resent id answers duplicate with the first timestamp and is not published again", async () => {
  const channel = queue(idRoom);
  const first = await publish({
    channel,
    event: "queue:added",
    payload: { song: "original" },
    id: "add:song_1-x",
  });
  const original = assertPublishedOnce(first, {
    id: "add:song_1-x",
    channel,
    event: "queue:added",
  });

  // A retry, even with another event and payload.
  const again = await publish({
    channel,
    event: "queue:changed",
    payload: { song: "changed" },
    id: "add:song_1-x",
  });
  assert.equal(again.status, 202, JSON.stringify(again.body));
  assert.deepEqual(again.body.published, [{ ...original, duplicate: true }]);

  // In a batch: earlier ids and ids repeated within the batch are duplicates, in place.
  const batch = await publish({
    messages: [
      { channel, event: "queue:a", payload: { song: "a" }, id: "batch-a" },
      { channel, event: "queue:b", payload: { song: "b" }, id: "add:song_1-x" },
      { channel, event: "queue:c", payload: { song: "c" }, id: "batch-a" },
    ],
  });
  assert.equal(batch.status, 202, JSON.stringify(batch.body));
  assert.deepEqual(
    (batch.body.published as Published[]).map((p) => [p.id, p.event, p.duplicate]),
    [["batch-a", "queue:a", false], ["add:song_1-x", "queue:added", true], [
      "batch-a",
      "queue:a",
      true,
    ]],
  );

  const { sent, kept } = await written(channel);
  assert.deepEqual(
    sent.map((m) => m.payload.song).sort(),
    ["a", "original"],
    "each broadcast once",
  );
  assert.deepEqual(kept.map((m) => m.data.song), ["original", "a"], "each kept once");
  const context = await invoke(listener.client, `room-context?room_id=${idRoom}`);
  assert.equal(context.body.queue.data.song, "a", "a duplicate does not become the last message");

  // The same id on another channel is another message.
  const elsewhere = await publish({
    channel: queue(queueRoom),
    event: "queue:added",
    payload: { song: "elsewhere" },
    id: "add:song_1-x",
  });
  assert.equal(elsewhere.status, 202, JSON.stringify(elsewhere.body));
  assert.equal(elsewhere.body.published[0].duplicate, false);
  assert.deepEqual(
    (await written(queue(queueRoom))).kept.filter((m) => m.data.song === "elsewhere").length,
    1,
  );
});

Deno.test("idempotent ids under concurrency: 10 parallel requests with one id publish it once", async () => {
  const channel = queue(raceRoom);
  const responses = await Promise.all(
    Array.from(
      { length: 10 },
      (_, n) => publish({ channel, event: "queue:raced", payload: { n }, id: "raced-1" }),
    ),
  );
  for (const r of responses) assert.equal(r.status, 202, JSON.stringify(r.body));
  const answers = responses.map((r) => (r.body.published as Published[])[0]);
  assert.equal(answers.filter((a) => !a.duplicate).length, 1, "one is published");
  assert.equal(answers.filter((a) => a.duplicate).length, 9, "the others are duplicates");
  assert.equal(new Set(answers.map((a) => a.timestamp)).size, 1, "all with the same timestamp");
  assert.ok(answers.every((a) => a.id === "raced-1" && a.event === "queue:raced"));

  const { sent, kept } = await written(channel);
  assert.equal(sent.length, 1, `one realtime.messages row: ${JSON.stringify(sent)}`);
  assert.equal(kept.length, 1, "one history row");
  const winner = responses.findIndex((r) => !r.body.published[0].duplicate);
  assert.deepEqual(sent[0].payload, { n: winner }, "the one broadcast is the published request's");
});

Deno.test("size limits: a payload over the rule's 64 KiB is 413 and nothing of its batch is written; a body over 1 MiB is 413", async () => {
  const channel = queue(sizeRoom);
  // {"blob": "..."} is 12 bytes of JSON around the string.
  const atLimit = { blob: "x".repeat(65536 - 12) };
  const overLimit = { blob: "x".repeat(65536 - 12 + 1) };
  const small = { channel, event: "queue:small", payload: { small: true } };
  const tooLarge = await publish({
    messages: [small, { channel, event: "queue:big", payload: overLimit }],
  });
  await expectError(Promise.resolve(tooLarge), 413, "payload_too_large", "one byte over");
  assert.equal(tooLarge.headers.get("access-control-allow-origin"), "*");
  assert.deepEqual(await written(channel), { sent: [], kept: [] }, "nothing of the batch");

  const fits = await publish({ channel, event: "queue:big", payload: atLimit });
  assert.equal(fits.status, 202, "a payload of exactly the limit is published");
  assert.equal((await written(channel)).kept.length, 1);

  // 20 messages of 60 KiB: each within the rule, the body over 1 MiB.
  const messages = Array.from({ length: 20 }, (_, n) => ({
    channel,
    event: "queue:bulk",
    payload: { n, blob: "y".repeat(60 * 1024) },
  }));
  const body = JSON.stringify({ messages });
  assert.ok(body.length > 1024 * 1024);
  const bulk = await post(body);
  assert.equal(bulk.status, 413);
  assert.equal((await bulk.json()).error.code, "payload_too_large");
  assert.equal(bulk.headers.get("access-control-allow-origin"), "*");
  assert.equal((await written(channel)).kept.length, 1, "nothing of the oversized body");
});

Deno.test("bad event names and bodies are 400 invalid_request; 50 messages pass and 51 do not", async () => {
  const channel = queue(validationRoom);
  for (
    const event of [
      "chat:batch",
      "chat:message",
      "playback:position",
      "presence:member_added",
      "",
      "has space",
      "slash/y",
      "é",
      "a".repeat(101),
    ]
  ) {
    const error = await expectError(
      publish({ channel, event, payload: {} }),
      400,
      "invalid_request",
      `event ${JSON.stringify(event)}`,
    );
    assert.ok(error.details, `the validation issues of ${JSON.stringify(event)}`);
    // Reserved for the backend, even in a batch and for the service role.
    if (event.includes(":")) {
      await expectError(
        publish({
          messages: [{ channel, event: "queue:ok", payload: {} }, { channel, event, payload: {} }],
        }, service),
        400,
        "invalid_request",
        `${event} in a service role batch`,
      );
    }
  }
  const valid: Message = { channel, event: "queue:ok", payload: {} };
  const bodies: [string, unknown][] = [
    ["an empty object", {}],
    ["an array of messages", [valid]],
    ["a string", "queue:ok"],
    ["a number", 42],
    ["null", null],
    ["no messages", { messages: [] }],
    ["messages not a list", { messages: valid }],
    ["a message and a batch at once", { ...valid, messages: [valid] }],
    ["a batch with another key", { messages: [valid], room_id: validationRoom }],
    ["a message with another key", { ...valid, extra: 1 }],
    ["no channel", { event: "queue:ok", payload: {} }],
    ["no event", { channel, payload: {} }],
    ["no payload", { channel, event: "queue:ok" }],
    ["a list payload", { ...valid, payload: [1, 2] }],
    ["a string payload", { ...valid, payload: "x" }],
    ["a null payload", { ...valid, payload: null }],
    ["a string push", { ...valid, push: "x" }],
    ["an id with a space", { ...valid, id: "has space" }],
    ["an empty id", { ...valid, id: "" }],
    ["an id of 65", { ...valid, id: "i".repeat(65) }],
    ["a number id", { ...valid, id: 7 }],
    ["a channel that does not parse", { ...valid, channel: "room:nope:queue" }],
    ["an unknown kind", { ...valid, channel: `room:${validationRoom}:lyrics` }],
    ["a bad message in a batch", { messages: [valid, { ...valid, event: 5 }] }],
  ];
  for (const [what, body] of bodies) {
    const response = await post(JSON.stringify(body));
    const answer = await response.json();
    assert.equal(response.status, 400, `${what}: ${JSON.stringify(answer)}`);
    assert.equal(answer.error.code, "invalid_request", what);
    assert.equal(response.headers.get("access-control-allow-origin"), "*", what);
  }
  const notJson = await post("{not json");
  assert.equal(notJson.status, 400);
  assert.equal((await notJson.json()).error.code, "invalid_request");
  assert.deepEqual(await written(channel), { sent: [], kept: [] }, "nothing of the refused");

  const fifty = Array.from({ length: 50 }, (_, n) => ({ ...valid, payload: { n } }));
  await expectError(
    publish({ messages: [...fifty, valid] }, service),
    400,
    "invalid_request",
    "51 messages",
  );
  assert.deepEqual((await written(channel)).kept, [], "nothing of the 51");
  const accepted = await publish({ messages: fifty }, service);
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  assert.equal(accepted.body.published.length, 50);
  // Merely starting with "chat" is fine, and so is every allowed character.
  const allowed = await publish({ channel, event: "chatter", payload: {} }, service);
  assert.equal(allowed.status, 202, JSON.stringify(allowed.body));
  const mixed = await publish({ channel, event: "Queue.v2:item_added-1", payload: {} }, service);
  assert.equal(mixed.status, 202, JSON.stringify(mixed.body));
});

Deno.test("over the queue's rate limit (bursts of 20 per caller): 429 rate_limited with Retry-After, nothing written", async () => {
  const channel = queue(rateRoom);
  const batch = (what: string, count: number) => ({
    messages: Array.from({ length: count }, (_, n) => ({
      channel,
      event: `queue:${what}`,
      payload: { n },
    })),
  });
  const burst = await publish(batch("burst", 20));
  assert.equal(burst.status, 202, JSON.stringify(burst.body));
  const refused = publish(batch("over", 10));
  await expectRateLimited(refused, "over the burst");
  assert.match(
    (await refused).headers.get("access-control-expose-headers") ?? "",
    /Retry-After/i,
    "a browser may read Retry-After",
  );
  const { sent, kept } = await written(channel);
  assert.equal(kept.filter((m) => m.event === "queue:over").length, 0);
  assert.equal(sent.filter((m) => m.event === "queue:over").length, 0);
  assert.equal(kept.length, 20);
  // The dj's bucket is their own.
  const djBurst = await publish(batch("dj", 20), dj.client);
  assert.equal(djBurst.status, 202, JSON.stringify(djBurst.body));
});

Deno.test("payload and push keep keys named __proto__, constructor or toString", async () => {
  // They used to be rebuilt key by key, which drops __proto__ (it sets the copy's prototype).
  const room = await withDb((sql) => createRoom(sql, host, cast.members));
  const payload = JSON.parse('{"__proto__": {"x": 1}, "constructor": {"prototype": 1}, "a": [1]}');
  const published = await publish({ channel: queue(room), event: "queue:proto", payload });
  assert.equal(published.status, 202, JSON.stringify(published.body));
  const { body } = await invoke(host.client, `history?channel=${queue(room)}&rewind=1`);
  assert.deepEqual(body.items[0].data, payload);
  assert.equal(Object.keys(body.items[0].data).includes("__proto__"), true);

  const channel = `user:${notified.id}:notifications`;
  const push = JSON.parse('{"__proto__": "p", "toString": "t", "title": "Proto"}');
  const notice = await publish(
    { channel, event: "notification:proto", payload: {}, push },
    service,
  );
  assert.equal(notice.status, 202, JSON.stringify(notice.body));
  const [row] = await withDb((sql) =>
    sql`select push from private.push_outbox where channel = ${channel} and event = 'notification:proto'`
  );
  assert.deepEqual(row.push, push);
});

Deno.test("CORS on the 202 and on errors; OPTIONS preflight; GET is 405", async () => {
  const accepted = await publish({ channel: queue(corsRoom), event: "queue:cors", payload: {} });
  assert.equal(accepted.status, 202);
  assert.equal(accepted.headers.get("access-control-allow-origin"), "*");
  assert.equal(accepted.headers.get("content-type"), "application/json");

  const preflight = await fetch(publishUrl, {
    method: "OPTIONS",
    headers: {
      Origin: "https://app.example",
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "authorization, content-type",
    },
  });
  await preflight.body?.cancel();
  assert.ok(preflight.status === 200 || preflight.status === 204, `${preflight.status}`);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
  assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /POST/);
  assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /authorization/i);

  const get = await fetch(publishUrl, { headers: { Authorization: `Bearer ${host.token}` } });
  const answer = await get.json();
  assert.equal(get.status, 405, JSON.stringify(answer));
  assert.equal(answer.error.code, "method_not_allowed");
  assert.match(get.headers.get("allow") ?? "", /POST/);
  assert.equal(get.headers.get("access-control-allow-origin"), "*");

  const anonymous = await fetch(publishUrl, { method: "POST", body: "{}" });
  const unauthenticated = await anonymous.json();
  assert.equal(anonymous.status, 401, JSON.stringify(unauthenticated));
  assert.equal(unauthenticated.error.code, "not_authenticated");
  assert.equal(anonymous.headers.get("access-control-allow-origin"), "*");
});
