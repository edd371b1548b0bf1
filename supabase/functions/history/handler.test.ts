// End to end through the test stack's gateway with the real supabase-js client.
import assert from "node:assert/strict";
import {
  createCast,
  createRoom,
  expectError,
  fixtureDb,
  invoke,
  withDb,
} from "../../../local/testing.ts";

const setup = fixtureDb();
const { host, listener, outsider, anonymousListener } = await createCast(setup);
const room = await createRoom(setup, host, [listener, anonymousListener]);
const chat = `room:${room}:chat`;
await setup.end();

function addMessages(count: number, prefix: string, createdAt = "now()") {
  return withDb((sql) =>
    sql.unsafe(
      `insert into public.messages (room_id, user_id, client_id, body, created_at)
       select $1, $2, $3 || n, $3 || n, ${createdAt} from generate_series(1, $4) as n`,
      [room, listener.id, prefix, count],
    )
  );
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
  assert.equal(items[0].event, "chat:message");
  assert.equal(items[0].id, items[0].data.id);
  assert.equal(items[0].timestamp, Date.parse(items[0].data.created_at as string));
  assert.equal(typeof body.next_cursor, "string");
});

async function walk(direction: string, insertBetween: boolean): Promise<number[]> {
  const seen: number[] = [];
  let query = `channel=${chat}&limit=4&direction=${direction}`;
  for (let page = 0; page < 50; page++) {
    const { status, body } = await history(query);
    assert.equal(status, 200, JSON.stringify(body));
    seen.push(...(body.items as Item[]).map((i) => i.id));
    if (insertBetween && page < 3) await addMessages(2, `during-${direction}-${page}-`);
    if (!body.next_cursor) return seen;
    query = `channel=${chat}&limit=4&cursor=${body.next_cursor}`;
  }
  throw new Error("pagination did not end");
}

Deno.test("pagination: every message once, in order, while new ones arrive (both directions)", async () => {
  await addMessages(9, "page-");
  const before = await withDb((sql) =>
    sql`select id from public.messages where room_id = ${room} order by id`
  );
  const backwards = await walk("backwards", true);
  // New messages are newer than the cursor: a backwards walk shows exactly what existed.
  assert.deepEqual(backwards, before.map((r) => Number(r.id)).reverse());
  const forwards = await walk("forwards", true);
  const after = await withDb((sql) =>
    sql`select id from public.messages where room_id = ${room} order by id`
  );
  // A forwards walk reaches the messages that arrived while it ran.
  assert.deepEqual(forwards, after.map((r) => Number(r.id)));
  assert.equal(new Set(forwards).size, forwards.length);
});

Deno.test("start and end are inclusive epoch-ms bounds", async () => {
  const rows = await withDb((sql) =>
    sql`select id, created_at from public.messages where room_id = ${room} order by id limit 3`
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
  const ids = (seconds.body.items as Item[]).map((i) => i.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
  assert.ok(ids.length <= 100);
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
    ]
  ) await refused(bad, 400, "invalid_request");
  const first = await history(`channel=${chat}&limit=1`);
  await refused(
    `channel=room:${room}:queue&cursor=${first.body.next_cursor}`,
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
