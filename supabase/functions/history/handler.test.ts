// End to end through the test stack's gateway with the real supabase-js client.
import assert from "node:assert/strict";
import {
  createCastAndRooms,
  expectError,
  flushChat,
  invoke,
  messageFields,
  withDb,
} from "../../../local/test-helpers.ts";

const { host, listener, outsider, anonymousListener, rooms: [room] } = await createCastAndRooms(1);
const chat = `room:${room}:chat`;

/** Stores `count` messages and sends them (they get their seq), as chat-send and its flush
 * would; with `flush: false` they are stored only, waiting to go out. */
function addMessages(count: number, prefix: string, createdAt = "now()", { flush = true } = {}) {
  return withDb(async (sql) => {
    await sql.unsafe(
      `insert into public.messages (room_id, user_id, client_id, body, created_at)
       select $1, $2, $3 || n, $3 || n, ${createdAt} from generate_series(1, $4) as n`,
      [room, listener.id, prefix, count],
    );
    if (flush) await flushChat(sql, room);
  });
}

/** The seqs of the room's sent messages, ascending. */
async function sentSeqs(): Promise<number[]> {
  const rows = await withDb((sql) =>
    sql`select seq from public.messages where room_id = ${room} and seq is not null order by seq`
  );
  return rows.map((r) => Number(r.seq));
}

function history(query: string, client = listener.client) {
  return invoke(client, `history?${query}`);
}

type Item = { id: number; event: string; data: Record<string, unknown>; timestamp: number };

Deno.test("chat history: newest first by default, with Messages as data", async () => {
  await addMessages(5, "first-");
  const { status, body } = await history(`channel=${chat}&limit=3`);
  assert.equal(status, 200);
  assert.equal(body.channel, chat);
  const items = body.items as Item[];
  assert.deepEqual(items.map((i) => i.data.body), ["first-5", "first-4", "first-3"]);
  assert.deepEqual(items.map((i) => i.data.seq), [5, 4, 3]);
  assert.equal(items[0].event, "chat:message");
  assert.equal(items[0].id, items[0].data.id);
  assert.deepEqual(Object.keys(items[0].data).sort(), messageFields);
  assert.equal(items[0].timestamp, Date.parse(items[0].data.created_at as string));
  assert.equal(typeof body.next_cursor, "string");
});

Deno.test("chat history serves only messages that went out", async () => {
  const sentBefore = await sentSeqs();
  await addMessages(2, "waiting-", "now()", { flush: false });
  const isWaiting = (i: Item) => (i.data.body as string).startsWith("waiting-");
  const newest = await history(`channel=${chat}&limit=10`);
  assert.ok(!(newest.body.items as Item[]).some(isWaiting), "not in a backwards page");
  const rewound = await history(`channel=${chat}&rewind=10`);
  assert.ok(!(rewound.body.items as Item[]).some(isWaiting), "not in a rewind");
  const after = await history(`channel=${chat}&after_seq=${sentBefore.at(-1)}`);
  assert.deepEqual(after.body.items, [], "not after the last seq");
  // The room's next flush sends them; from then on they are served, with their seq.
  await withDb((sql) => flushChat(sql, room));
  const sent = await history(`channel=${chat}&after_seq=${sentBefore.at(-1)}`);
  assert.deepEqual(
    (sent.body.items as Item[]).map((i) => [i.data.body, i.data.seq]),
    [["waiting-1", sentBefore.length + 1], ["waiting-2", sentBefore.length + 2]],
  );
});

/** Walks the chat history page by page (limit 4) from the query `first`, following next_cursor,
 * with two new messages (`label`-…) sent after each of the first three pages; returns the seqs
 * seen. */
async function walk(first: string, label: string): Promise<number[]> {
  const seen: number[] = [];
  let query = `channel=${chat}&limit=4&${first}`;
  for (let page = 0; page < 50; page++) {
    const { status, body } = await history(query);
    assert.equal(status, 200, JSON.stringify(body));
    const items = body.items as Item[];
    seen.push(...items.map((i) => i.data.seq as number));
    if (page < 3) await addMessages(2, `${label}-${page}-`);
    if (!body.next_cursor) return seen;
    assert.equal(items.length, 4, "a page with a next_cursor is full");
    query = `channel=${chat}&limit=4&cursor=${body.next_cursor}`;
  }
  throw new Error("pagination did not end");
}

Deno.test("pagination: every message once, in order, while new ones arrive (both directions)", async () => {
  await addMessages(9, "page-");
  const before = await sentSeqs();
  const backwards = await walk("direction=backwards", "during-backwards");
  // New messages are newer than the cursor: a backwards walk shows exactly what existed.
  assert.deepEqual(backwards, [...before].reverse());
  const forwards = await walk("direction=forwards", "during-forwards");
  // A forwards walk reaches the messages that arrived while it ran.
  assert.deepEqual(forwards, await sentSeqs());
});

Deno.test("after_seq: seq N+1, N+2, … oldest first, in pages of limit with next_cursor, while new ones arrive", async () => {
  await addMessages(10, "after-");
  const seqs = await sentSeqs();
  const from = seqs.at(-10)! - 1;
  // Following next_cursor: every message after `from` once, in seq order, new ones included.
  const walked = await walk(`after_seq=${from}`, "during-after-seq");
  const all = await sentSeqs();
  assert.deepEqual(walked, all.filter((seq) => seq > from));
  assert.deepEqual(walked, Array.from({ length: walked.length }, (_, i) => from + 1 + i));
  assert.ok(walked.length >= 16, `the 10 and the 6 that arrived during the walk: ${walked}`);

  // A client that saw seq N asks for after_seq=N, again and again: the same, page by page.
  const caughtUp: number[] = [];
  let last = from;
  for (let round = 0; round < 20; round++) {
    const { status, body } = await history(`channel=${chat}&after_seq=${last}&limit=3`);
    assert.equal(status, 200, JSON.stringify(body));
    const page = (body.items as Item[]).map((i) => i.data.seq as number);
    assert.ok(page.length <= 3);
    if (page.length === 0) {
      assert.equal(body.next_cursor, null);
      break;
    }
    assert.equal(
      body.next_cursor === null,
      page.at(-1) === all.at(-1),
      "next_cursor when more follow",
    );
    caughtUp.push(...page);
    last = page.at(-1)!;
  }
  assert.deepEqual(caughtUp, walked);
  const beyond = await history(`channel=${chat}&after_seq=${all.at(-1)! + 1000}`);
  assert.deepEqual([beyond.status, beyond.body.items, beyond.body.next_cursor], [200, [], null]);
});

Deno.test("start and end are inclusive epoch-ms bounds", async () => {
  const rows = await withDb((sql) =>
    sql`select id, created_at from public.messages
        where room_id = ${room} and seq is not null order by seq limit 3`
  );
  const at = (i: number) => rows[i].created_at.getTime();
  const { body } = await history(`channel=${chat}&direction=forwards&start=${at(0)}&end=${at(0)}`);
  for (const item of body.items as Item[]) assert.equal(item.timestamp, at(0));
  assert.ok((body.items as Item[]).some((i) => i.id === Number(rows[0].id)));
});

Deno.test("rewind: the last N, or those of the last seconds or minutes, oldest first", async () => {
  await addMessages(3, "old-", "now() - interval '10 minutes'");
  await addMessages(4, "recent-");
  const last = await history(`channel=${chat}&rewind=3`);
  assert.deepEqual((last.body.items as Item[]).map((i) => i.data.body), [
    "recent-2",
    "recent-3",
    "recent-4",
  ]);
  assert.equal(last.body.next_cursor, null);
  const seconds = await history(`channel=${chat}&rewind=30s`);
  const bodies = (seconds.body.items as Item[]).map((i) => i.data.body as string);
  assert.ok(!bodies.some((b) => b.startsWith("old-")), "10-minute-old messages are outside 30 s");
  assert.deepEqual(bodies.slice(-4), ["recent-1", "recent-2", "recent-3", "recent-4"]);
  const seqs = (seconds.body.items as Item[]).map((i) => i.data.seq as number);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  assert.ok(seqs.length <= 100);
  const minutes = await history(`channel=${chat}&rewind=15m`);
  assert.ok((minutes.body.items as Item[]).some((i) => (i.data.body as string).startsWith("old-")));
});

Deno.test("queue history and persist-last playback come from what the backend published", async () => {
  await withDb(async (sql) => {
    for (const n of [1, 2, 3]) {
      await sql`select private.publish(${`room:${room}:queue`}, 'queue:add', ${sql.json({ n })})`;
      await sql`select private.publish(${`room:${room}:playback`}, 'playback:position', ${
        sql.json({ seq: n })
      })`;
    }
  });
  const queue = await history(`channel=room:${room}:queue&direction=forwards`);
  assert.deepEqual((queue.body.items as Item[]).map((i) => [i.event, i.data.n]), [
    ["queue:add", 1],
    ["queue:add", 2],
    ["queue:add", 3],
  ]);
  // limit=1 on a channel with history pages through it, even though it also keeps its last.
  const newest = await history(`channel=room:${room}:queue&limit=1`);
  assert.deepEqual((newest.body.items as Item[]).map((i) => i.data.n), [3]);
  const older = await history(
    `channel=room:${room}:queue&limit=1&cursor=${newest.body.next_cursor}`,
  );
  assert.deepEqual((older.body.items as Item[]).map((i) => i.data.n), [2]);
  const last = await history(`channel=room:${room}:playback&rewind=1`);
  assert.equal(last.status, 200);
  assert.deepEqual((last.body.items as Item[]).map((i) => i.data.seq), [3]);
  const limitOne = await history(`channel=room:${room}:playback&limit=1`);
  assert.deepEqual((limitOne.body.items as Item[]).map((i) => i.data.seq), [3]);
  const more = await history(`channel=room:${room}:playback&limit=2`);
  assert.equal(more.status, 400);
  assert.equal(more.body.error.code, "invalid_request");
});

Deno.test("each error code of the history endpoint", async () => {
  const refused = (query: string, status: number, code: string, client = listener.client) =>
    expectError(history(query, client), status, code, query);
  await refused(`channel=room:${room}`, 404, "not_found");
  await refused(`channel=${chat}`, 403, "not_a_member", outsider.client);
  await refused(`channel=${chat}`, 403, "identified_only", anonymousListener.client);
  await refused(`channel=user:${host.id}:activity`, 403, "user_id_mismatch");
  for (
    const bad of [
      "",
      `channel=nope`,
      `channel=room:${room}:lyrics`,
      `channel=${chat}%00`,
      `channel=${chat}&limit=0`,
      `channel=${chat}&limit=1001`,
      `channel=${chat}&direction=sideways`,
      `channel=${chat}&rewind=101`,
      `channel=${chat}&rewind=0`,
      `channel=${chat}&rewind=5h`,
      `channel=${chat}&rewind=3&limit=3`,
      `channel=${chat}&cursor=garbage`,
      `channel=${chat}&start=-5`,
      // after_seq reads forwards from a seq, on chat channels, and takes only limit.
      `channel=${chat}&after_seq=-1`,
      `channel=${chat}&after_seq=one`,
      `channel=${chat}&after_seq=1.5`,
      `channel=${chat}&after_seq=3&direction=forwards`,
      `channel=${chat}&after_seq=3&direction=backwards`,
      `channel=${chat}&after_seq=3&rewind=3`,
      `channel=${chat}&after_seq=3&start=0`,
      `channel=${chat}&after_seq=3&end=${Date.now()}`,
      `channel=room:${room}:queue&after_seq=0`,
      `channel=room:${room}:playback&after_seq=0`,
      `channel=user:${listener.id}:activity&after_seq=0`,
    ]
  ) await refused(bad, 400, "invalid_request");
  const first = await history(`channel=${chat}&limit=1`);
  await refused(
    `channel=room:${room}:queue&cursor=${first.body.next_cursor}`,
    400,
    "invalid_request",
  );
  await refused(
    `channel=${chat}&after_seq=3&cursor=${first.body.next_cursor}`,
    400,
    "invalid_request",
  );
});

Deno.test("tls_only channels refuse plain-http requests with 403 tls_required", async () => {
  const url = `${
    Deno.env.get("SUPABASE_URL")
  }/functions/v1/history?channel=user:${listener.id}:notifications`;
  const headers = { Authorization: `Bearer ${listener.token}` };
  const plain = await fetch(url, { headers: { ...headers, "x-forwarded-proto": "http" } });
  assert.equal(plain.status, 403);
  assert.equal((await plain.json()).error.code, "tls_required");
  const secure = await fetch(url, { headers });
  assert.equal(secure.status, 200);
  assert.deepEqual((await secure.json()).items, []);
});
