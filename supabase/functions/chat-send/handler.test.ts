// End to end through the test stack's gateway with the real supabase-js client. Broadcasts are
// read back as the rows private.publish writes to realtime.messages (topic room:{id}:chat, event
// chat:batch); the gateway flushes each chat window after the response, so tests poll for them.
import assert from "node:assert/strict";
import {
  actAs,
  clientFor,
  createCast,
  createRoom,
  createUser,
  expectError,
  fixtureDb,
  invoke,
  poll,
  type TestUser,
  withDb,
} from "../../../local/testing.ts";

const setup = fixtureDb();
const { host, listener, outsider, anonymousListener } = await createCast(setup);
// Senders for the tests that need more than one user's rate limit (20/s, bursts of 50).
const senders: TestUser[] = [];
for (let i = 0; i < 5; i++) senders.push(await createUser(setup));

const basicRoom = await createRoom(setup, host, [listener, anonymousListener]);
const idempotencyRoom = await createRoom(setup, host, [listener]);
const capRoom = await createRoom(setup, host, senders);
const rateRoom = await createRoom(setup, host, [listener]);
const pushRoom = await createRoom(setup, host, [listener]);
const sizeRoom = await createRoom(setup, host, senders);
const orderRoom = await createRoom(setup, host, [listener]);
const concurrentRooms: string[] = [];
for (let i = 0; i < 3; i++) {
  concurrentRooms.push(await createRoom(setup, host, senders.slice(0, 4)));
}
await setup.end();

interface Message {
  id: number;
  room_id: string;
  user_id: string;
  client_id: string;
  body: string;
  created_at: string;
}
interface Batch {
  messages: Message[];
  insertedAt: Date;
  /** The size of the published payload as JSON text (without the id realtime.send adds). */
  bytes: number;
}
interface Accepted {
  client_id: string;
  id: number;
  created_at: string;
  duplicate: boolean;
}

/** The chat:batch broadcasts of a room, in the order they were written. */
function batches(room: string): Promise<Batch[]> {
  return withDb(async (sql) => {
    const rows =
      await sql`select payload, inserted_at, octet_length((payload - 'id')::text) as bytes
                           from realtime.messages
                           where topic = ${`room:${room}:chat`} and event = 'chat:batch'
                           order by inserted_at, id`;
    return rows.map((r) => ({
      messages: r.payload.messages as Message[],
      insertedAt: r.inserted_at,
      bytes: r.bytes,
    }));
  });
}

/** The ids of a room's stored messages, ascending. */
function storedIds(room: string): Promise<number[]> {
  return withDb(async (sql) => {
    const rows = await sql`select id from public.messages where room_id = ${room} order by id`;
    return rows.map((r) => Number(r.id));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until every id in `ids` has gone out in a chat:batch of `room`; returns the batches. */
async function batchesHolding(room: string, ids: number[], timeoutMs = 2000): Promise<Batch[]> {
  const sent = await poll(() => batches(room), (all) => {
    const seen = new Set(all.flatMap((b) => b.messages.map((m) => m.id)));
    return ids.every((id) => seen.has(id));
  }, timeoutMs);
  const seen = new Set(sent.flatMap((b) => b.messages.map((m) => m.id)));
  const missing = ids.filter((id) => !seen.has(id));
  assert.ok(
    missing.length === 0,
    `${missing.length} of ${ids.length} messages not broadcast within ${timeoutMs} ms, ` +
      `e.g. ${missing.slice(0, 5)}`,
  );
  return sent;
}

function send(client: TestUser["client"], room: string, messages: unknown[]) {
  return invoke(client, "chat-send", { room_id: room, messages });
}

let unique = 0;
/** `count` messages with fresh client_ids. */
function fresh(count: number, prefix = "m"): { client_id: string; body: string }[] {
  return Array.from({ length: count }, () => {
    const clientId = `${prefix}-${++unique}-${crypto.randomUUID().slice(0, 8)}`;
    return { client_id: clientId, body: `body of ${clientId}` };
  });
}

/** Every id once across the batches, ascending in each, at most 200 a batch, no overlap. */
function assertWellFormedBatches(room: string, all: Batch[], ids: number[]) {
  const counts = new Map<number, number>();
  for (const batch of all) {
    assert.ok(batch.messages.length > 0, "no empty batch");
    assert.ok(batch.messages.length <= 200, `a batch of ${batch.messages.length} messages`);
    assert.ok(batch.bytes <= 65536, `a batch payload of ${batch.bytes} bytes`);
    const batchIds = batch.messages.map((m) => m.id);
    for (let i = 1; i < batchIds.length; i++) {
      assert.ok(batchIds[i - 1] < batchIds[i], `ids ascend in a batch: ${batchIds}`);
    }
    for (const m of batch.messages) {
      assert.equal(m.room_id, room);
      counts.set(m.id, (counts.get(m.id) ?? 0) + 1);
    }
  }
  const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  assert.deepEqual(twice, [], "no message in two batches");
  assert.deepEqual([...counts.keys()].sort((a, b) => a - b), ids, "every stored message goes out");
  // The batches' id ranges are disjoint.
  const ranges = all.map((b) => [b.messages[0].id, b.messages.at(-1)!.id]).sort((a, b) =>
    a[0] - b[0]
  );
  for (let i = 1; i < ranges.length; i++) {
    assert.ok(
      ranges[i - 1][1] < ranges[i][0],
      `batches overlap: [${ranges[i - 1]}] and [${ranges[i]}]`,
    );
  }
}

Deno.test("202 with the accepted messages in request order, then one chat:batch of them", async () => {
  const messages = fresh(3, "basic");
  const { status, body } = await send(listener.client, basicRoom, messages);
  assert.equal(status, 202, JSON.stringify(body));
  const accepted = body.accepted as Accepted[];
  assert.deepEqual(accepted.map((a) => a.client_id), messages.map((m) => m.client_id));
  for (const a of accepted) {
    assert.deepEqual(Object.keys(a).sort(), ["client_id", "created_at", "duplicate", "id"]);
    assert.equal(typeof a.id, "number");
    assert.equal(a.duplicate, false);
    assert.ok(!Number.isNaN(Date.parse(a.created_at)), a.created_at);
  }
  const ids = accepted.map((a) => a.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "ids are given in request order");

  const sent = await batchesHolding(basicRoom, ids);
  assert.equal(sent.length, 1, "the three messages go out in one batch");
  const batch = sent[0].messages;
  assert.deepEqual(batch.map((m) => m.id), ids);
  for (const [i, m] of batch.entries()) {
    assert.deepEqual(Object.keys(m).sort(), [
      "body",
      "client_id",
      "created_at",
      "id",
      "room_id",
      "user_id",
    ]);
    assert.equal(m.room_id, basicRoom);
    assert.equal(m.user_id, listener.id);
    assert.equal(m.client_id, messages[i].client_id);
    assert.equal(m.body, messages[i].body);
    assert.equal(Date.parse(m.created_at), Date.parse(accepted[i].created_at));
  }
  // Stored for good: broadcast_at is set, and nothing else is sent afterwards.
  await sleep(400);
  assert.equal((await batches(basicRoom)).length, 1);
  const waiting = await withDb((sql) =>
    sql`select count(*)::int as n from public.messages
        where room_id = ${basicRoom} and broadcast_at is null`
  );
  assert.equal(waiting[0].n, 0);
});

Deno.test("many senders in many rooms at once: each message in exactly one well-formed batch", async () => {
  const requests: Promise<{ status: number; body: unknown }>[] = [];
  for (const [r, room] of concurrentRooms.entries()) {
    for (const [s, sender] of senders.slice(0, 4).entries()) {
      for (let i = 0; i < 10; i++) {
        // 1 to 5 messages a request: 30 a sender and room, within the burst of 50.
        requests.push(send(sender.client, room, fresh(1 + (i + s + r) % 5, `c${r}-${s}-${i}`)));
      }
    }
  }
  const responses = await Promise.all(requests);
  for (const response of responses) {
    assert.equal(response.status, 202, JSON.stringify(response.body));
  }
  const acceptedCount = responses.reduce(
    (n, r) => n + ((r.body as { accepted: Accepted[] }).accepted.length),
    0,
  );
  let stored = 0;
  for (const room of concurrentRooms) {
    const ids = await storedIds(room);
    stored += ids.length;
    const all = await batchesHolding(room, ids, 3000);
    assertWellFormedBatches(room, all, ids);
  }
  assert.equal(stored, acceptedCount);
  assert.equal(stored, 3 * 4 * 30);
});

Deno.test("resending is idempotent: same ids, duplicate: true, no second broadcast", async () => {
  const messages = fresh(2, "idem");
  const first = await send(listener.client, idempotencyRoom, messages);
  assert.equal(first.status, 202, JSON.stringify(first.body));
  const ids = (first.body.accepted as Accepted[]).map((a) => a.id);
  await batchesHolding(idempotencyRoom, ids);

  const again = await send(listener.client, idempotencyRoom, messages);
  assert.equal(again.status, 202, JSON.stringify(again.body));
  assert.deepEqual(
    again.body.accepted,
    (first.body.accepted as Accepted[]).map((a) => ({ ...a, duplicate: true })),
  );
  // A request mixing a resent message and a new one: only the new one is stored.
  const [extra] = fresh(1, "idem-extra");
  const mixed = await send(listener.client, idempotencyRoom, [messages[1], extra]);
  assert.equal(mixed.status, 202, JSON.stringify(mixed.body));
  assert.deepEqual(
    (mixed.body.accepted as Accepted[]).map((a) => [a.client_id, a.duplicate]),
    [[messages[1].client_id, true], [extra.client_id, false]],
  );
  assert.equal(mixed.body.accepted[0].id, ids[1]);
  const extraId = mixed.body.accepted[1].id as number;
  await batchesHolding(idempotencyRoom, [extraId]);
  await sleep(400);
  const all = await batches(idempotencyRoom);
  assertWellFormedBatches(idempotencyRoom, all, await storedIds(idempotencyRoom));
  assert.deepEqual(all.map((b) => b.messages.map((m) => m.id)), [ids, [extraId]]);
});

Deno.test("10 concurrent requests with one client_id store one message, all with its id", async () => {
  const [message] = fresh(1, "race");
  const responses = await Promise.all(
    Array.from({ length: 10 }, () => send(listener.client, idempotencyRoom, [message])),
  );
  for (const r of responses) assert.equal(r.status, 202, JSON.stringify(r.body));
  const accepted = responses.map((r) => (r.body.accepted as Accepted[])[0]);
  assert.equal(new Set(accepted.map((a) => a.id)).size, 1, "one id for all");
  assert.equal(new Set(accepted.map((a) => a.created_at)).size, 1);
  assert.equal(accepted.filter((a) => !a.duplicate).length, 1, "exactly one stored it");
  const rows = await withDb((sql) =>
    sql`select id from public.messages
        where room_id = ${idempotencyRoom} and client_id = ${message.client_id}`
  );
  assert.deepEqual(rows.map((r) => Number(r.id)), [accepted[0].id]);
  await batchesHolding(idempotencyRoom, [accepted[0].id]);
  await sleep(400);
  const all = await batches(idempotencyRoom);
  const occurrences = all.flatMap((b) => b.messages).filter((m) => m.id === accepted[0].id);
  assert.equal(occurrences.length, 1, "broadcast once");
});

Deno.test("250 messages at once: no batch over 200, and all of them go out", async () => {
  const responses = await Promise.all(
    senders.map((sender, s) => send(sender.client, capRoom, fresh(50, `cap${s}`))),
  );
  for (const r of responses) assert.equal(r.status, 202, JSON.stringify(r.body));
  const ids = await storedIds(capRoom);
  assert.equal(ids.length, 250);
  const all = await batchesHolding(capRoom, ids);
  assertWellFormedBatches(capRoom, all, ids);
  assert.ok(all.length >= 2, "250 messages need at least two batches");
});

Deno.test("over the rate limit: 429 rate_limited with Retry-After, and nothing stored", async () => {
  const first = await send(listener.client, rateRoom, fresh(50, "rate-ok"));
  assert.equal(first.status, 202, JSON.stringify(first.body));
  const refusedMessages = fresh(50, "rate-refused");
  const refused = await send(listener.client, rateRoom, refusedMessages);
  assert.equal(refused.status, 429, JSON.stringify(refused.body));
  assert.equal(refused.body.error.code, "rate_limited");
  assert.equal(typeof refused.body.error.message, "string");
  const retryAfter = refused.headers.get("retry-after");
  assert.match(retryAfter ?? "", /^[1-9]\d*$/, `Retry-After: ${retryAfter}`);
  assert.equal(refused.headers.get("access-control-allow-origin"), "*");
  const stored = await withDb((sql) =>
    sql`select count(*)::int as n from public.messages
        where room_id = ${rateRoom} and client_id in ${
      sql(refusedMessages.map((m) => m.client_id))
    }`
  );
  assert.equal(stored[0].n, 0);
  assert.equal((await storedIds(rateRoom)).length, 50);
  // Another user's bucket is their own.
  const other = await send(host.client, rateRoom, fresh(5, "rate-host"));
  assert.equal(other.status, 202, JSON.stringify(other.body));
});

Deno.test("a message with push is accepted and queued in the push outbox", async () => {
  const [withPush] = fresh(1, "push");
  const [plain] = fresh(1, "nopush");
  const push = { title: "New message" };
  const { status, body } = await send(listener.client, pushRoom, [{ ...withPush, push }, plain]);
  assert.equal(status, 202, JSON.stringify(body));
  const [pushedId, plainId] = (body.accepted as Accepted[]).map((a) => a.id);
  const resent = await send(listener.client, pushRoom, [{ ...withPush, push }]);
  assert.equal(resent.status, 202);
  assert.equal(resent.body.accepted[0].duplicate, true);
  const outbox = await withDb((sql) =>
    sql`select channel, event, push, message_id from private.push_outbox
        where message_id in (${pushedId}, ${plainId})`
  );
  assert.deepEqual(outbox.map((row) => ({ ...row, message_id: Number(row.message_id) })), [
    { channel: `room:${pushRoom}:chat`, event: "chat:message", push, message_id: pushedId },
  ]);
  await batchesHolding(pushRoom, [pushedId, plainId]);
});

Deno.test("invalid requests are 400 invalid_request with the validation issues", async () => {
  const ok = fresh(1, "bad")[0];
  const cases: [string, unknown][] = [
    ["missing room_id", { messages: [ok] }],
    ["bad uuid", { room_id: "not-a-uuid", messages: [ok] }],
    ["no messages", { room_id: basicRoom, messages: [] }],
    ["messages missing", { room_id: basicRoom }],
    ["51 messages", { room_id: basicRoom, messages: fresh(51, "many") }],
    ["blank body", { room_id: basicRoom, messages: [{ ...ok, body: "   \n\t " }] }],
    ["empty body", { room_id: basicRoom, messages: [{ ...ok, body: "" }] }],
    ["body of 2001", { room_id: basicRoom, messages: [{ ...ok, body: "x".repeat(2001) }] }],
    ["client_id with a space", { room_id: basicRoom, messages: [{ ...ok, client_id: "a b" }] }],
    ["client_id of 65", { room_id: basicRoom, messages: [{ ...ok, client_id: "c".repeat(65) }] }],
    ["empty client_id", { room_id: basicRoom, messages: [{ ...ok, client_id: "" }] }],
    ["push not an object", { room_id: basicRoom, messages: [{ ...ok, push: "hello" }] }],
    ["push an array", { room_id: basicRoom, messages: [{ ...ok, push: [1, 2] }] }],
    ["a JSON array body", [{ room_id: basicRoom, messages: [ok] }]],
  ];
  for (const [what, payload] of cases) {
    const error = await expectError(
      invoke(listener.client, "chat-send", payload),
      400,
      "invalid_request",
      what,
    );
    assert.ok(Array.isArray(error.details) && error.details.length > 0, `${what}: details`);
  }
  await expectError(
    invoke(listener.client, "chat-send", "this is not JSON"),
    400,
    "invalid_request",
    "a body that is not JSON",
  );
  // The 2000-character limit is inclusive.
  const longest = await send(listener.client, basicRoom, [{ ...ok, body: "y".repeat(2000) }]);
  assert.equal(longest.status, 202, JSON.stringify(longest.body));
  const ids = await storedIds(basicRoom);
  assert.ok(
    !(await withDb((sql) =>
      sql`select 1 from public.messages where room_id = ${basicRoom} and client_id like 'many-%'`
    )).length,
    "nothing of a refused request is stored",
  );
  await batchesHolding(basicRoom, ids);
});

Deno.test("a request body over 64 KiB is 413 payload_too_large", async () => {
  const big = fresh(40, "big").map((m) => ({ ...m, body: "z".repeat(2000) }));
  assert.ok(JSON.stringify({ room_id: basicRoom, messages: big }).length > 64 * 1024);
  await expectError(send(listener.client, basicRoom, big), 413, "payload_too_large", "64 KiB");
});

Deno.test("who may send: members only, identified only, and the room must exist", async () => {
  const messages = fresh(1, "who");
  await expectError(send(outsider.client, basicRoom, messages), 403, "not_a_member", "outsider");
  await expectError(
    send(anonymousListener.client, basicRoom, messages),
    403,
    "identified_only",
    "anonymous member",
  );
  await expectError(send(clientFor(), basicRoom, messages), 403, "identified_only", "anon key");
  await expectError(
    send(listener.client, crypto.randomUUID(), messages),
    404,
    "room_not_found",
    "no such room",
  );
  const stored = await withDb((sql) =>
    sql`select 1 from public.messages where client_id = ${messages[0].client_id}`
  );
  assert.equal(stored.length, 0);
});

Deno.test("tokens and methods: 401 without a token, 405 for GET", async () => {
  const noToken = await fetch(`${Deno.env.get("SUPABASE_URL")}/functions/v1/chat-send`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ room_id: basicRoom, messages: fresh(1, "noauth") }),
  });
  assert.equal(noToken.status, 401);
  assert.equal((await noToken.json()).error.code, "not_authenticated");
  await expectError(
    invoke(clientFor("not.a.jwt"), "chat-send", { room_id: basicRoom, messages: fresh(1) }),
    401,
    "invalid_token",
    "bad token",
  );
  await expectError(invoke(listener.client, "chat-send"), 405, "method_not_allowed", "GET");
});

/** Waits until `count` backends wait on a lock. */
async function lockWaiters(count: number) {
  const waiting = await poll(
    () =>
      withDb(async (sql) => {
        const [{ n }] = await sql`select count(*)::int as n from pg_stat_activity
                                  where wait_event_type = 'Lock' and datname = current_database()`;
        return n as number;
      }),
    (n) => n >= count,
  );
  assert.ok(waiting >= count, `${count} backends waiting on a lock, saw ${waiting}`);
}

Deno.test("200 waiting messages near the 64 KiB payload limit all go out, in batches within it", async () => {
  const channel = `room:${sizeRoom}:chat`;
  // Keep the room's window open (not due for a minute) while 199 messages are stored, so that
  // nothing is flushed until the 200th arrives and a full batch is due at once.
  await withDb((sql) => sql`select private.open_window(${channel}, interval '1 minute')`);
  const stored = await Promise.all(
    senders.slice(0, 4).map((sender, s) =>
      send(
        sender.client,
        sizeRoom,
        fresh(s === 3 ? 49 : 50, `size${s}`).map((m) => ({ ...m, body: "b".repeat(110) })),
      )
    ),
  );
  for (const r of stored) assert.equal(r.status, 202, JSON.stringify(r.body));
  assert.equal((await batches(sizeRoom)).length, 0, "nothing is flushed yet");
  // The 200th message brings the items to 65,213 bytes of JSON: with the separators and the
  // envelope the whole batch is just over 64 KiB (a batch that size once failed every flush).
  const [{ total, overhead }] = await withDb((sql) =>
    sql`select sum(octet_length(private.message_json(m)::text))::int as total,
               max(octet_length(private.message_json(m)::text) - length(m.body))::int as overhead
        from public.messages m where m.room_id = ${sizeRoom}`
  );
  const [last] = fresh(1, "size4");
  const bodyLength = 65213 - total - overhead - (last.client_id.length - "size0-0-00000000".length);
  assert.ok(bodyLength >= 1 && bodyLength <= 2000, `a body of ${bodyLength}`);
  const full = await send(senders[4].client, sizeRoom, [{ ...last, body: "c".repeat(bodyLength) }]);
  assert.equal(full.status, 202, JSON.stringify(full.body));
  const ids = await storedIds(sizeRoom);
  assert.equal(ids.length, 200);
  const all = await batchesHolding(sizeRoom, ids);
  assertWellFormedBatches(sizeRoom, all, ids);
});

Deno.test("a message stored while a flush waits is not broadcast after higher ids", async () => {
  const channel = `room:${orderRoom}:chat`;
  // An open window that is not due, so only the flush below and the requests' own flushes run.
  await withDb((sql) => sql`select private.open_window(${channel}, interval '1 minute')`);
  const sender = fixtureDb();
  const flusher = fixtureDb();
  let request: ReturnType<typeof send> | undefined;
  try {
    // Sender X (the listener, on a fixture connection) stores x1 and holds its transaction.
    let step!: () => void;
    const secondMessage = new Promise<void>((resolve) => (step = resolve));
    let stored!: () => void;
    const firstStored = new Promise<void>((resolve) => (stored = resolve));
    const x = sender.begin(async (tx) => {
      await actAs(tx, listener);
      const one = [{ client_id: "order-x1", body: "x1" }];
      await tx`select public.send_chat(${orderRoom}, ${tx.json(one)})`;
      stored();
      await secondMessage;
      const two = [{ client_id: "order-x2", body: "x2" }];
      await tx`select public.send_chat(${orderRoom}, ${tx.json(two)})`;
    });
    await Promise.race([firstStored, x]);
    // The window's flush starts; then the host sends r1 through the gateway.
    const flushing = flusher`select private.flush_window(${channel}, true)`.execute();
    await lockWaiters(1);
    request = send(host.client, orderRoom, [{ client_id: "order-r1", body: "r1" }]);
    await lockWaiters(2);
    // X stores x2 and commits; the flush and then r1's request go on.
    step();
    await x;
    await flushing;
    const response = await request;
    assert.equal(response.status, 202, JSON.stringify(response.body));
  } finally {
    await request?.catch(() => {});
    await sender.end();
    await flusher.end();
  }
  const ids = await storedIds(orderRoom);
  assert.equal(ids.length, 3);
  const all = await batchesHolding(orderRoom, ids);
  assertWellFormedBatches(orderRoom, all, ids);
  const inOrder = all.flatMap((b) => b.messages.map((m) => `${m.id}:${m.client_id}`));
  assert.deepEqual(
    all.flatMap((b) => b.messages.map((m) => m.id)),
    ids,
    `broadcast in id order across batches: ${inOrder}`,
  );
});
