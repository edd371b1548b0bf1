// The outbox with an injected fetch (through FunctionsHttp, as rooms use it) and fake time:
// retries with the same client_id, backoff, Retry-After, duplicates, 4xx, batching, storage.
import assert from "node:assert/strict";
import { RoomsError } from "./http.ts";
import { type Accepted, Outbox, type OutboxStorage, type StoredMessage } from "./outbox.ts";
import { RoomChat } from "./chat.ts";
import {
  accepted,
  answer,
  errorAnswer,
  fakeFunctionsHttp,
  type RecordedRequest,
  type Responder,
} from "./testing/fake_fetch.ts";
import { FakeTimers } from "./testing/fake_timers.ts";

const roomId = "4f9c7c3e-0000-4000-8000-000000000001";

/** An outbox sending chat-send through FunctionsHttp to `respond`. */
function setup(respond: Responder, extra: Partial<ConstructorParameters<typeof Outbox>[0]> = {}) {
  const timers = new FakeTimers();
  const { http, requests } = fakeFunctionsHttp(respond, timers);
  const outbox = new Outbox({
    timers,
    send: async (messages) =>
      (await http.call<{ accepted: Accepted[] }>("chat-send", {
        body: { room_id: roomId, messages },
      }))
        .data.accepted,
    ...extra,
  });
  const chat = new RoomChat({ roomId, http, outbox, timers });
  return { timers, requests, outbox, chat };
}

/** A server that stores each client_id once, answering duplicate: true for a resend. */
function server() {
  const ids = new Map<string, number>();
  const nextId = { value: 100 };
  return { ids, ok: (request: RecordedRequest) => accepted(request, ids, nextId) };
}

const clientIds = (request: RecordedRequest) =>
  (request.body.messages as { client_id: string }[]).map((m) => m.client_id);

Deno.test("outbox: send is queued at once, leaves in one request, done resolves with the id", async () => {
  const store = server();
  const { timers, requests, outbox, chat } = setup((r) => store.ok(r));
  await outbox.start();
  const a = chat.send("hola");
  const b = chat.send("qué tal");
  assert.equal(a.status, "queued");
  assert.deepEqual(chat.pending.map((p) => p.body), ["hola", "qué tal"]);
  await timers.advance(0);
  assert.equal(requests.length, 1, "two sends in one tick: one request");
  const [request] = requests;
  assert.equal(request.url.pathname, "/functions/v1/chat-send");
  assert.equal(request.headers.get("authorization"), "Bearer user-token");
  assert.equal(request.headers.get("apikey"), "anon-key");
  assert.deepEqual(request.body.messages.map((m: StoredMessage) => m.body), ["hola", "qué tal"]);
  assert.match(a.client_id, /^[A-Za-z0-9:_-]{1,64}$/);
  assert.equal(await a.done, 100);
  assert.equal(await b.done, 101);
  assert.equal(a.status, "sent");
  assert.equal(a.id, 100);
  assert.deepEqual(chat.pending, []);
});

Deno.test("outbox: network errors are retried with the same client_id after 1, 2, 5, 10, 10 s", async () => {
  const store = server();
  const { timers, requests, outbox, chat } = setup((r, i) => {
    if (i < 5) throw new TypeError("network down");
    return store.ok(r);
  });
  await outbox.start();
  const start = timers.now();
  const message = chat.send("retry me");
  await timers.advance(60_000);
  assert.equal(requests.length, 6);
  assert.deepEqual(requests.map((r) => r.at - start), [0, 1000, 3000, 8000, 18_000, 28_000]);
  assert.ok(
    requests.every((r) => clientIds(r)[0] === message.client_id),
    "one client_id throughout",
  );
  assert.equal(await message.done, 100);
  assert.equal(message.attempts, 6);
});

Deno.test("outbox: 429 and 503 wait for Retry-After; without it, the backoff of the failures so far", async () => {
  const store = server();
  const { timers, requests, outbox, chat } = setup((r, i) => {
    if (i === 0) return errorAnswer(429, "rate_limited", { "Retry-After": "3" });
    if (i === 1) return errorAnswer(503, "unavailable", { "Retry-After": "5" });
    if (i === 2) return errorAnswer(503, "unavailable");
    return store.ok(r);
  });
  await outbox.start();
  const start = timers.now();
  const message = chat.send("patience");
  const retries: number[] = [];
  outbox.on("retry", ({ delayMs }) => retries.push(delayMs));
  await timers.advance(30_000);
  // The third failure in a row has no Retry-After: the third step of 1, 2, 5, 10 s.
  assert.deepEqual(requests.map((r) => r.at - start), [0, 3000, 8000, 13_000]);
  assert.deepEqual(retries, [3000, 5000, 5000]);
  assert.equal(await message.done, 100);
});

Deno.test("outbox: a response lost after the commit: the retry answers duplicate, sent once", async () => {
  const store = server();
  const { timers, requests, outbox, chat } = setup((r, i) => {
    const response = store.ok(r); // the server stores it
    if (i === 0) throw new TypeError("connection reset"); // and the answer is lost
    return response;
  });
  await outbox.start();
  let duplicates = -1;
  outbox.on("sent", (_, info) => (duplicates = info.duplicates));
  const message = chat.send("once");
  await timers.advance(1000);
  assert.equal(requests.length, 2);
  assert.equal(store.ids.size, 1, "stored once");
  assert.equal(await message.done, 100);
  assert.equal(message.status, "sent");
  assert.equal(duplicates, 1, "the retry was answered duplicate: true");
});

Deno.test("outbox: other 4xx fail the message with the contract's error; the next ones still go", async () => {
  const store = server();
  const { timers, requests, outbox, chat } = setup((r) =>
    clientIds(r).length === 1 && r.body.messages[0].body === "bad"
      ? errorAnswer(403, "not_a_member")
      : store.ok(r)
  );
  await outbox.start();
  const failed: string[] = [];
  outbox.on("failed", (list, error) => failed.push(`${list.length} ${error.code}`));
  const bad = chat.send("bad");
  await timers.advance(0);
  const good = chat.send("good");
  await timers.advance(0);
  await assert.rejects(
    bad.done,
    (e: unknown) => e instanceof RoomsError && e.status === 403 && e.code === "not_a_member",
  );
  assert.equal(bad.status, "failed");
  assert.equal(bad.error?.code, "not_a_member");
  assert.deepEqual(failed, ["1 not_a_member"]);
  assert.equal(await good.done, 100);
  assert.equal(requests.length, 2, "a 4xx is not retried");
  assert.deepEqual(chat.pending, [bad], "failed messages stay pending until retried or discarded");
  const again = chat.retry(bad)!;
  assert.equal(again.client_id, bad.client_id);
  await timers.advance(0);
  assert.equal(requests.length, 3);
  assert.ok(chat.discard(again));
  assert.deepEqual(chat.pending, []);
});

Deno.test("outbox: invalid bodies fail at once without a request", async () => {
  const { timers, requests, outbox, chat } = setup(() => answer(202, { accepted: [] }));
  await outbox.start();
  for (const body of ["", "   ", "x".repeat(2001)]) {
    const message = chat.send(body);
    assert.equal(message.status, "failed");
    await assert.rejects(
      message.done,
      (e: unknown) => e instanceof RoomsError && e.code === "invalid_request",
    );
  }
  await timers.advance(1000);
  assert.equal(requests.length, 0);
});

Deno.test("outbox: 401 is tried once more after refreshing the token, then fails", async () => {
  let refreshed = 0;
  const { timers, requests, outbox, chat } = setup(() => errorAnswer(401, "invalid_token"), {
    refreshAuth: () => Promise.resolve(void refreshed++),
  });
  await outbox.start();
  const message = chat.send("who am I");
  await timers.advance(0);
  await assert.rejects(
    message.done,
    (e: unknown) => e instanceof RoomsError && e.code === "invalid_token",
  );
  assert.equal(requests.length, 2);
  assert.equal(refreshed, 1);
});

Deno.test("outbox: 120 sends leave in order, 50 a request, one request at a time", async () => {
  const store = server();
  let inFlight = 0;
  let maxInFlight = 0;
  const { timers, requests, outbox, chat } = setup(async (r) => {
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    await new Promise((resolve) => setTimeout(resolve, 1));
    inFlight--;
    return store.ok(r);
  });
  await outbox.start();
  const sent = Array.from({ length: 120 }, (_, i) => chat.send(`m${i}`));
  await timers.advance(0);
  await Promise.all(sent.map((m) => m.done));
  assert.deepEqual(requests.map((r) => r.body.messages.length), [50, 50, 20]);
  assert.deepEqual(requests.flatMap(clientIds), sent.map((m) => m.client_id));
  assert.deepEqual(await Promise.all(sent.map((m) => m.done)), sent.map((_, i) => 100 + i));
  assert.equal(maxInFlight, 1);
});

Deno.test("outbox: a request stays under the 64 KiB body limit", async () => {
  const store = server();
  const { timers, requests, outbox, chat } = setup((r) => store.ok(r));
  await outbox.start();
  const big = "€".repeat(2000); // 6000 bytes as UTF-8
  const sent = Array.from({ length: 25 }, () => chat.send(big));
  await timers.advance(0);
  await Promise.all(sent.map((m) => m.done));
  for (const request of requests) {
    const bytes = new TextEncoder().encode(JSON.stringify(request.body)).length;
    assert.ok(bytes <= 64 * 1024, `${bytes} bytes`);
  }
  assert.deepEqual(requests.map((r) => r.body.messages.length), [10, 10, 5]);
});

Deno.test("outbox: offline, sends queue in order; back online, retryNow sends them at once", async () => {
  const store = server();
  let online = false;
  const { timers, requests, outbox, chat } = setup((r) => {
    if (!online) throw new TypeError("Failed to fetch");
    return store.ok(r);
  });
  await outbox.start();
  const first = chat.send("one");
  await timers.advance(100);
  const more = [chat.send("two"), chat.send("three")];
  await timers.advance(2500); // retries at 1 s and 3 s: one at 1 s, failing
  assert.equal(requests.length, 2);
  assert.ok([first, ...more].every((m) => m.status === "queued"));
  online = true;
  outbox.retryNow(); // the browser's `online` event
  await timers.advance(0);
  assert.equal(requests.length, 3);
  assert.deepEqual(clientIds(requests[2]), [first, ...more].map((m) => m.client_id));
  assert.deepEqual(await Promise.all([first, ...more].map((m) => m.done)), [100, 101, 102]);
});

Deno.test("outbox: a storage adapter keeps unsent messages across a reload, sent first and once", async () => {
  const kept = new Map<string, StoredMessage[]>();
  const storage: OutboxStorage = {
    load: (key) => kept.get(key) ?? null,
    save: (key, messages) => void kept.set(key, messages),
  };
  // The first page: offline, two messages, then it is closed.
  const first = setup(() => Promise.reject(new TypeError("offline")), {
    storage,
    storageKey: roomId,
  });
  await first.outbox.start();
  const a = first.chat.send("before reload 1");
  const b = first.chat.send("before reload 2");
  await first.timers.advance(100);
  assert.deepEqual(kept.get(roomId)?.map((m) => m.client_id), [a.client_id, b.client_id]);

  // The reloaded page: the kept messages go first, with their client_ids, then the new one.
  const store = server();
  store.ids.set(a.client_id, 7); // the first one had been stored after all
  const second = setup((r) => store.ok(r), { storage, storageKey: roomId });
  const c = second.chat.send("after reload");
  await second.outbox.start();
  await second.timers.advance(0);
  assert.deepEqual(second.requests.flatMap(clientIds), [a.client_id, b.client_id, c.client_id]);
  assert.equal(store.ids.get(a.client_id), 7, "a duplicate, not a second copy");
  assert.equal(await c.done, 101);
  assert.deepEqual(kept.get(roomId), []);
});

Deno.test("outbox: stop fails what is queued with `left` and keeps it in storage", async () => {
  const kept = new Map<string, StoredMessage[]>();
  const storage: OutboxStorage = {
    load: (key) => kept.get(key) ?? null,
    save: (key, messages) => void kept.set(key, messages),
  };
  const { timers, outbox, chat } = setup(() => Promise.reject(new TypeError("offline")), {
    storage,
    storageKey: roomId,
  });
  await outbox.start();
  const message = chat.send("unsent");
  await timers.advance(10);
  outbox.stop(new RoomsError(0, "left", "left"));
  await assert.rejects(message.done, (e: unknown) => e instanceof RoomsError && e.code === "left");
  await timers.advance(60_000);
  assert.deepEqual(kept.get(roomId)?.map((m) => m.body), ["unsent"]);
});
