// End to end through the test stack's gateway with the real supabase-js client. Broadcasts are
// read back as the rows private.publish writes to realtime.messages (topic room:{id}:chat, event
// chat:batch), and where their order matters as a subscriber receives them; the gateway flushes
// each room after the response, so tests poll for them.
import assert from "node:assert/strict";
import { callerQuery } from "../_shared/db.ts";
import { userToken } from "../../../local/keys.ts";
import {
  claimsOf,
  clientFor,
  createCast,
  createRoom,
  createUser,
  expectError,
  expectInvalidRequest,
  expectRateLimited,
  fixtureDb,
  holdTransaction,
  invoke,
  listenPrivate,
  lockWaiters,
  messageFields,
  poll,
  type TestUser,
  withDb,
} from "../../../local/test-helpers.ts";
import type { Message } from "../../../client/types.ts";

const setup = fixtureDb();
const { host, listener, outsider, anonymousListener } = await createCast(setup);
// Senders for the tests that need more than one user's rate limit (20/s, bursts of 50).
const senders: TestUser[] = [];
for (let i = 0; i < 5; i++) senders.push(await createUser(setup));
// Sixteen users sending into one room at once.
const crowd: TestUser[] = [];
for (let i = 0; i < 16; i++) crowd.push(await createUser(setup));

const basicRoom = await createRoom(setup, host, [listener, anonymousListener]);
const idempotencyRoom = await createRoom(setup, host, [listener]);
const capRoom = await createRoom(setup, host, senders);
const rateRoom = await createRoom(setup, host, [listener]);
const pushRoom = await createRoom(setup, host, [listener]);
const sizeRoom = await createRoom(setup, host, senders);
const lateRoom = await createRoom(setup, host, [listener]);
const directRoom = await createRoom(setup, host, [listener]);
const crowdRoom = await createRoom(setup, host, [listener, ...crowd]);
const concurrentRooms: string[] = [];
for (let i = 0; i < 3; i++) {
  concurrentRooms.push(await createRoom(setup, host, senders.slice(0, 4)));
}
await setup.end();

interface Batch {
  messages: Message[];
  /** The size of the published payload as JSON text (without the id realtime.send adds). */
  bytes: number;
}
interface Accepted {
  client_id: string;
  id: number;
  created_at: string;
  duplicate: boolean;
}
/** A stored message: its id and its seq (null until it has gone out). */
interface Stored {
  id: number;
  seq: number | null;
}

/**
 * The chat:batch broadcasts of a room, by their first seq. (Which was written first cannot be
 * read from realtime.messages: batches of one flush share its transaction's inserted_at. The
 * order a subscriber receives them in is checked with a subscriber.)
 */
function batches(room: string): Promise<Batch[]> {
  return withDb(async (sql) => {
    const rows = await sql`select payload, octet_length((payload - 'id')::text) as bytes
                           from realtime.messages
                           where topic = ${`room:${room}:chat`} and event = 'chat:batch'
                           order by (payload -> 'messages' -> 0 ->> 'seq')::bigint, id`;
    return rows.map((r) => ({ messages: r.payload.messages as Message[], bytes: r.bytes }));
  });
}

/** A room's stored messages, by id. */
function stored(room: string): Promise<Stored[]> {
  return withDb(async (sql) => {
    const rows = await sql`select id, seq from public.messages where room_id = ${room} order by id`;
    return rows.map((r) => ({ id: Number(r.id), seq: r.seq === null ? null : Number(r.seq) }));
  });
}

/** The ids of a room's stored messages, ascending. */
async function storedIds(room: string): Promise<number[]> {
  return (await stored(room)).map((m) => m.id);
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

/**
 * What chat-send promises about a room's batches: every stored message in exactly one batch, as
 * stored (its seq there is its seq in the table); no empty batch, at most 200 messages and 64 KiB
 * a batch; seq ascending in a batch; and the room's seqs 1..N without a hole or a repeat, each
 * batch continuing where the previous one ended.
 */
function assertWellFormedBatches(room: string, all: Batch[], rows: Stored[]) {
  for (const batch of all) {
    assert.ok(batch.messages.length > 0, "no empty batch");
    assert.ok(batch.messages.length <= 200, `a batch of ${batch.messages.length} messages`);
    assert.ok(batch.bytes <= 65536, `a batch payload of ${batch.bytes} bytes`);
    const seqs = batch.messages.map((m) => m.seq);
    for (let i = 1; i < seqs.length; i++) {
      assert.equal(seqs[i], seqs[i - 1] + 1, `seq ascends by one in a batch: ${seqs}`);
    }
    for (const m of batch.messages) assert.equal(m.room_id, room);
  }
  const sent = all.flatMap((b) => b.messages);
  assert.deepEqual(
    sent.map((m) => m.seq),
    Array.from({ length: sent.length }, (_, i) => i + 1),
    "seq 1..N across the batches, each continuing the previous one",
  );
  const seqOf = new Map(rows.map((m) => [m.id, m.seq]));
  assert.deepEqual(
    sent.map((m) => m.id).sort((a, b) => a - b),
    rows.map((m) => m.id),
    "every stored message in exactly one batch",
  );
  for (const m of sent) assert.equal(seqOf.get(m.id), m.seq, `message ${m.id} stored with its seq`);
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

  // A quiet room: the batch leaves at once (leading edge), with the room's first seqs.
  const sent = await batchesHolding(basicRoom, ids);
  assert.equal(sent.length, 1, "the three messages go out in one batch");
  const batch = sent[0].messages;
  assert.deepEqual(batch.map((m) => [m.id, m.seq]), [[ids[0], 1], [ids[1], 2], [ids[2], 3]]);
  for (const [i, m] of batch.entries()) {
    assert.deepEqual(Object.keys(m).sort(), messageFields);
    assert.equal(m.room_id, basicRoom);
    assert.equal(m.user_id, listener.id);
    assert.equal(m.client_id, messages[i].client_id);
    assert.equal(m.body, messages[i].body);
    assert.equal(Date.parse(m.created_at), Date.parse(accepted[i].created_at));
  }
  // Stored for good with their seq and broadcast_at, and nothing is sent again afterwards.
  const rows = await withDb((sql) =>
    sql`select id, seq, broadcast_at is not null as sent from public.messages
        where room_id = ${basicRoom} order by id`
  );
  assert.deepEqual(rows.map((r) => [Number(r.id), Number(r.seq), r.sent]), [
    [ids[0], 1, true],
    [ids[1], 2, true],
    [ids[2], 3, true],
  ]);
  await sleep(400);
  assert.equal((await batches(basicRoom)).length, 1);
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
  let storedCount = 0;
  for (const room of concurrentRooms) {
    const rows = await stored(room);
    storedCount += rows.length;
    const all = await batchesHolding(room, rows.map((m) => m.id), 3000);
    assertWellFormedBatches(room, all, await stored(room));
  }
  assert.equal(storedCount, acceptedCount);
  assert.equal(storedCount, 3 * 4 * 30);
});

Deno.test("16 users sending into one room at once: all stored, seq 1..N without a hole, received in seq order", async () => {
  // A member listening with the real supabase-js, joined before anything is sent.
  const subscriber = await listenPrivate<{ messages: Message[] }>(
    listener.token,
    `room:${crowdRoom}:chat`,
    { event: "chat:batch" },
  );
  try {
    const batches = () => subscriber.received.map(({ payload }) => payload.messages);

    // 16 users × 5 requests of 1 to 5 messages (15 a user), all at once.
    const requests: Promise<{ status: number; body: { accepted: Accepted[] } }>[] = [];
    for (const [u, user] of crowd.entries()) {
      for (let i = 0; i < 5; i++) {
        requests.push(send(user.client, crowdRoom, fresh(1 + (u + i) % 5, `crowd${u}-${i}`)));
      }
    }
    const responses = await Promise.all(requests);
    for (const r of responses) assert.equal(r.status, 202, JSON.stringify(r.body));
    const accepted = responses.flatMap((r) => r.body.accepted);
    assert.equal(accepted.length, 16 * 15);
    assert.ok(accepted.every((a) => !a.duplicate));

    // Stored = accepted.
    const acceptedIds = accepted.map((a) => a.id).sort((a, b) => a - b);
    assert.deepEqual(await storedIds(crowdRoom), acceptedIds, "stored is what was accepted");
    const all = await batchesHolding(crowdRoom, acceptedIds, 5000);
    const rows = await stored(crowdRoom);
    assertWellFormedBatches(crowdRoom, all, rows);

    // The subscriber gets every message once, in seq order across its batches.
    const deliveredCount = () => batches().reduce((n, batch) => n + batch.length, 0);
    await poll(() => Promise.resolve(deliveredCount()), (n) => n >= accepted.length, 5000);
    const received = batches();
    const delivered = received.flat();
    assert.deepEqual(
      delivered.map((m) => m.seq),
      Array.from({ length: accepted.length }, (_, i) => i + 1),
      `received in seq order, batch after batch: ${
        received.map((b) => `${b[0].seq}-${b.at(-1)!.seq}`)
      }`,
    );
    const seqOf = new Map(rows.map((m) => [m.id, m.seq]));
    for (const m of delivered) assert.equal(m.seq, seqOf.get(m.id));
    assert.ok(received.every((batch) => batch.length <= 200));
  } finally {
    await subscriber.close();
  }
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
  assertWellFormedBatches(idempotencyRoom, all, await stored(idempotencyRoom));
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
  assertWellFormedBatches(idempotencyRoom, all, await stored(idempotencyRoom));
});

Deno.test("250 messages at once: no batch over 200, and all of them go out", async () => {
  const responses = await Promise.all(
    senders.map((sender, s) => send(sender.client, capRoom, fresh(50, `cap${s}`))),
  );
  for (const r of responses) assert.equal(r.status, 202, JSON.stringify(r.body));
  const ids = await storedIds(capRoom);
  assert.equal(ids.length, 250);
  const all = await batchesHolding(capRoom, ids);
  assertWellFormedBatches(capRoom, all, await stored(capRoom));
  assert.ok(all.length >= 2, "250 messages need at least two batches");
});

Deno.test("over the rate limit: 429 rate_limited with Retry-After, and nothing stored", async () => {
  const first = await send(listener.client, rateRoom, fresh(50, "rate-ok"));
  assert.equal(first.status, 202, JSON.stringify(first.body));
  const refusedMessages = fresh(50, "rate-refused");
  await expectRateLimited(send(listener.client, rateRoom, refusedMessages), "over the limit");
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

Deno.test("push data keeps a key named __proto__", async () => {
  // z.record rebuilt push key by key, which drops __proto__ (it sets the copy's prototype).
  const [message] = fresh(1, "proto");
  const push = JSON.parse('{"__proto__": {"x": 1}, "title": "Proto"}');
  const { status, body } = await send(listener.client, pushRoom, [{ ...message, push }]);
  assert.equal(status, 202, JSON.stringify(body));
  const [row] = await withDb((sql) =>
    sql`select push from private.push_outbox where message_id = ${body.accepted[0].id}`
  );
  assert.deepEqual(row.push, push);
  await batchesHolding(pushRoom, [body.accepted[0].id]);
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
    await expectInvalidRequest(invoke(listener.client, "chat-send", payload), what);
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

Deno.test("a correctly signed token whose sub is not a uuid is 401 invalid_token, on every function", async () => {
  // It used to reach auth.uid()'s cast to uuid and answer 500.
  const badSub = clientFor(await userToken("not-a-uuid"));
  const calls: [string, unknown?][] = [
    ["chat-send", { room_id: basicRoom, messages: fresh(1, "badsub") }],
    ["presence", { action: "join", room_id: basicRoom, connection_id: "badsub-tab" }],
    ["presence", { action: "heartbeat", room_id: basicRoom, connection_id: "badsub-tab" }],
    [`presence?room_id=${basicRoom}`],
    [`room-context?room_id=${basicRoom}`],
    [`history?channel=room:${basicRoom}:chat`],
    ["health"],
  ];
  for (const [path, body] of calls) {
    const error = await expectError(invoke(badSub, path, body), 401, "invalid_token", path);
    assert.match(String(error.message), /sub must be a user id/, path);
  }
});

Deno.test("200 waiting messages near the 64 KiB payload limit all go out, in batches within it", async () => {
  const channel = `room:${sizeRoom}:chat`;
  // A flush of the room holds its turn (the room's private.chat_flushes row) while 200 messages
  // are stored, so that they wait together: every other flush of the room queues behind it.
  const holder = await holdTransaction((tx) => tx`select private.flush_window(${channel})`);
  try {
    const waiting = await Promise.all(
      senders.slice(0, 4).map((sender, s) =>
        send(
          sender.client,
          sizeRoom,
          fresh(s === 3 ? 49 : 50, `size${s}`).map((m) => ({ ...m, body: "b".repeat(100) })),
        )
      ),
    );
    for (const r of waiting) assert.equal(r.status, 202, JSON.stringify(r.body));
    // The requests' flushes wait for the held one; senders did not.
    await lockWaiters(1);
    assert.equal(
      (await batches(sizeRoom)).length,
      0,
      "nothing goes out while a flush holds the room",
    );
    // The 200th message brings the items, numbered 1..200, to 65,213 bytes of JSON: with the
    // separators and the envelope the whole batch is just over 64 KiB (a batch that size once
    // failed every flush).
    const [{ total, overhead }] = await withDb((sql) =>
      sql`select sum(octet_length(jsonb_set(private.message_json(m), '{seq}', to_jsonb(n.seq))::text))::int
                   as total,
                 max(octet_length(jsonb_set(private.message_json(m), '{seq}', '200')::text)
                     - octet_length(m.body) - octet_length(m.client_id))::int as overhead
          from public.messages m
          join (select id, row_number() over (order by id) as seq from public.messages
                where room_id = ${sizeRoom}) as n using (id)`
    );
    const [last] = fresh(1, "size4");
    const bodyLength = 65213 - total - overhead - last.client_id.length;
    assert.ok(bodyLength >= 1 && bodyLength <= 2000, `a body of ${bodyLength}`);
    const full = await send(senders[4].client, sizeRoom, [{
      ...last,
      body: "c".repeat(bodyLength),
    }]);
    assert.equal(full.status, 202, JSON.stringify(full.body));
    assert.equal(
      (await batches(sizeRoom)).length,
      0,
      "still nothing while the flush holds the room",
    );
    await holder.commit();
  } finally {
    await holder.close();
  }
  const ids = await storedIds(sizeRoom);
  assert.equal(ids.length, 200);
  const all = await batchesHolding(sizeRoom, ids);
  assertWellFormedBatches(sizeRoom, all, await stored(sizeRoom));
  assert.ok(all.length >= 2, "200 messages over 64 KiB go out in more than one batch");
});

type HistoryItem = { id: number; event: string; data: Message; timestamp: number };

/** The chat history of `room` after `afterSeq`, as the listener reads it. */
async function historyAfter(room: string, afterSeq: number): Promise<HistoryItem[]> {
  const { status, body } = await invoke(
    listener.client,
    `history?channel=room:${room}:chat&after_seq=${afterSeq}`,
  );
  assert.equal(status, 200, JSON.stringify(body));
  return body.items;
}

Deno.test("a sender's transaction held open across flushes: its message goes out later, with a later seq, and after_seq gets it", async () => {
  // The listener's request stores its message and holds its transaction (on a fixture
  // connection, which fixes the order of events) while the host's messages go out.
  const late = await holdTransaction(async (tx) => {
    const messages = [{ client_id: "late-1", body: "committed late" }];
    const [{ result }] = await callerQuery(
      tx,
      claimsOf(listener),
      (sql) => sql`edge.send_chat(${lateRoom}, ${sql.json(messages)})`,
    );
    return result.accepted[0].id as number;
  });
  const lateId = late.result;
  const early: number[] = [];
  try {
    // No sender waits for another, and no flush waits for an open sender: each of these is
    // accepted and goes out, in a batch of its own, while the listener's transaction is open.
    for (const message of fresh(2, "early")) {
      const r = await send(host.client, lateRoom, [message]);
      assert.equal(r.status, 202, JSON.stringify(r.body));
      early.push(r.body.accepted[0].id);
      await batchesHolding(lateRoom, [early.at(-1)!]);
    }
    const seen = await historyAfter(lateRoom, 0);
    assert.deepEqual(seen.map((i) => [i.id, i.data.seq]), [[early[0], 1], [early[1], 2]]);
    await late.commit();
  } finally {
    await late.close();
  }
  assert.ok(lateId < early[0], `stored first (id ${lateId}), before ${early}`);

  // The next flush of the room (here that of the next request) sends it after what went out.
  const next = await send(host.client, lateRoom, fresh(1, "next"));
  assert.equal(next.status, 202, JSON.stringify(next.body));
  const nextId = next.body.accepted[0].id as number;
  const all = await batchesHolding(lateRoom, [lateId, nextId]);
  assertWellFormedBatches(lateRoom, all, await stored(lateRoom));
  const sent = all.flatMap((b) => b.messages);
  assert.deepEqual(sent.map((m) => m.id), [...early, lateId, nextId], "seq 3 for the late one");
  const batchOf = (id: number) => all.findIndex((b) => b.messages.some((m) => m.id === id));
  assert.ok(batchOf(lateId) > batchOf(early[1]), "in a later batch than what went out before");

  // A reader that had seen seq 2 fetches what followed, and a forwards reader skips nothing.
  const missed = await historyAfter(lateRoom, 2);
  assert.deepEqual(missed.map((i) => [i.id, i.data.seq]), [[lateId, 3], [nextId, 4]]);
  assert.equal(missed[0].event, "chat:message");
  assert.equal(missed[0].data.body, "committed late");
  const everything = await historyAfter(lateRoom, 0);
  assert.deepEqual(everything.map((i) => i.id), [...early, lateId, nextId]);
});

Deno.test("a message written straight into public.messages goes out with the room's next seq", async () => {
  const first = await send(listener.client, directRoom, fresh(2, "direct-sent"));
  assert.equal(first.status, 202, JSON.stringify(first.body));
  await batchesHolding(directRoom, first.body.accepted.map((a: Accepted) => a.id));
  const insert = (clientId: string) =>
    withDb(async (sql) => {
      const [{ id }] = await sql`insert into public.messages (room_id, user_id, client_id, body)
                                 values (${directRoom}, ${listener.id}, ${clientId}, 'written directly')
                                 returning id`;
      return Number(id);
    });

  // Not served before it has gone out.
  const direct = await insert("direct-1");
  assert.deepEqual((await historyAfter(directRoom, 0)).map((i) => i.data.seq), [1, 2]);
  // The room's next flush, here that of the next request, sends it, in id order.
  const next = await send(listener.client, directRoom, fresh(1, "direct-next"));
  assert.equal(next.status, 202, JSON.stringify(next.body));
  const nextId = next.body.accepted[0].id as number;
  let all = await batchesHolding(directRoom, [direct, nextId]);
  const seqOf = (id: number) => all.flatMap((b) => b.messages).find((m) => m.id === id)?.seq;
  assert.deepEqual([seqOf(direct), seqOf(nextId)], [3, 4]);

  // With no request after it, the sweeper pg_cron runs every minute sends it.
  const swept = await insert("direct-2");
  all = await poll(
    async () => {
      await withDb((sql) => sql`select private.flush_due_windows()`);
      return batches(directRoom);
    },
    (found) => found.some((b) => b.messages.some((m) => m.id === swept)),
  );
  assert.equal(seqOf(swept), 5);
  assertWellFormedBatches(directRoom, all, await stored(directRoom));
  assert.deepEqual((await historyAfter(directRoom, 4)).map((i) => i.id), [swept]);
});
