// End to end through the test stack's gateway with the real supabase-js client. The presence
// broadcasts are read back as the rows private.publish writes to realtime.messages (topic
// room:{id}, events presence:member_added / presence:member_removed), written in the request's
// own transaction.
import assert from "node:assert/strict";
import {
  clientFor,
  createRoom,
  createUser,
  expectError,
  expectInvalidRequest,
  fixtureDb,
  holdTransaction,
  invoke,
  lockWaiters,
  type TestUser,
  withDb,
} from "../../../local/test-helpers.ts";

const rounds = 10;

const setup = fixtureDb();
const host = await createUser(setup);
const listener = await createUser(setup);
const other = await createUser(setup);
const outsider = await createUser(setup);
const anonymousListener = await createUser(setup, { anonymous: true });
const racer = await createUser(setup);
// One user per concurrency round, so every round starts from nobody present.
const tabbers: TestUser[] = [];
for (let i = 0; i < rounds; i++) tabbers.push(await createUser(setup));

const storyRoom = await createRoom(setup, host, [listener]);
const errorRoom = await createRoom(setup, host, [listener, other, anonymousListener]);
const raceRoom = await createRoom(setup, host, tabbers);
const getRoom = await createRoom(setup, host, [listener]);
const lockRoom = await createRoom(setup, host, [racer]);
await setup.end();

/** The payloads (without realtime's id) of the presence `event`s about `user` in `room`. */
function broadcasts(room: string, event: string, user: string): Promise<Record<string, unknown>[]> {
  return withDb(async (sql) => {
    const rows = await sql`select payload - 'id' as payload from realtime.messages
                           where topic = ${`room:${room}`} and event = ${event}
                             and payload ->> 'user_id' = ${user}
                           order by inserted_at`;
    return rows.map((r) => r.payload);
  });
}

function join(user: TestUser, room: string, connectionId: string, userInfo?: unknown) {
  return invoke(user.client, "presence", {
    action: "join",
    room_id: room,
    connection_id: connectionId,
    ...(userInfo === undefined ? {} : { user_info: userInfo }),
  });
}
function leave(user: TestUser, room: string, connectionId: string) {
  return invoke(user.client, "presence", {
    action: "leave",
    room_id: room,
    connection_id: connectionId,
  });
}
function heartbeat(user: TestUser, room: string, connectionId: string) {
  return invoke(user.client, "presence", {
    action: "heartbeat",
    room_id: room,
    connection_id: connectionId,
  });
}

Deno.test("three tabs: one member, announced on the first join and the last leave, each with the version it made", async () => {
  const tabs = ["story-tab-1", "story-tab-2", "story-tab-3"];
  const info = { name: "Listener" };
  const joins = [];
  for (const tab of tabs) {
    const r = await join(listener, storyRoom, tab, info);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    joins.push(r.body);
  }
  assert.deepEqual(joins.map((j) => j.member_added), [true, false, false]);
  assert.deepEqual(joins.map((j) => j.me.connections), [1, 2, 3]);
  const me = joins[2].me;
  assert.deepEqual(Object.keys(me).sort(), [
    "connections",
    "info",
    "is_host",
    "last_active",
    "user_id",
  ]);
  assert.equal(me.user_id, listener.id);
  assert.deepEqual(me.info, info);
  assert.equal(me.is_host, false);
  assert.ok(!Number.isNaN(Date.parse(me.last_active)), `last_active ${me.last_active}`);
  // The first presence change of the room is version 1; the other tabs change nothing.
  assert.deepEqual(joins.map((j) => j.presence.version), [1, 1, 1]);
  assert.deepEqual(joins[2].presence, { type: "detailed", version: 1, total: 1, members: [me] });
  assert.deepEqual(await broadcasts(storyRoom, "presence:member_added", listener.id), [
    { user_id: listener.id, info, is_host: false, total: 1, version: 1 },
  ]);

  const first = await leave(listener, storyRoom, tabs[0]);
  const second = await leave(listener, storyRoom, tabs[1]);
  assert.deepEqual([first.status, first.body], [200, { member_removed: false }]);
  assert.deepEqual([second.status, second.body], [200, { member_removed: false }]);
  assert.deepEqual(await broadcasts(storyRoom, "presence:member_removed", listener.id), []);

  const last = await leave(listener, storyRoom, tabs[2]);
  assert.deepEqual([last.status, last.body], [200, { member_removed: true }]);
  assert.deepEqual(await broadcasts(storyRoom, "presence:member_removed", listener.id), [
    { user_id: listener.id, total: 0, version: 2 },
  ]);
  // A snapshot carries the version of the last event it reflects.
  const get = await invoke(listener.client, `presence?room_id=${storyRoom}`);
  assert.deepEqual([get.status, get.body], [200, {
    type: "detailed",
    version: 2,
    total: 0,
    members: [],
  }]);
});

Deno.test(`two tabs joining at once, then leaving at once: one announcement each (${rounds} rounds)`, async () => {
  for (const [round, user] of tabbers.entries()) {
    const tabs = [`race-${round}-a`, `race-${round}-b`];
    const joins = await Promise.all(tabs.map((tab) => join(user, raceRoom, tab, { round })));
    for (const r of joins) assert.equal(r.status, 200, `round ${round}: ${JSON.stringify(r.body)}`);
    assert.equal(
      joins.filter((r) => r.body.member_added === true).length,
      1,
      `round ${round}: one member_added`,
    );
    assert.deepEqual(
      joins.map((r) => r.body.me.connections).sort(),
      [1, 2],
      `round ${round}: connections`,
    );
    const added = await broadcasts(raceRoom, "presence:member_added", user.id);
    assert.equal(added.length, 1, `round ${round}: one presence:member_added row`);
    // Every change of the room's presence takes the next version: two a round.
    assert.equal(added[0].version, 2 * round + 1, `round ${round}: member_added's version`);

    const leaves = await Promise.all(tabs.map((tab) => leave(user, raceRoom, tab)));
    for (const r of leaves) {
      assert.equal(r.status, 200, `round ${round}: ${JSON.stringify(r.body)}`);
    }
    assert.equal(
      leaves.filter((r) => r.body.member_removed === true).length,
      1,
      `round ${round}: one member_removed: ${JSON.stringify(leaves.map((r) => r.body))}`,
    );
    const removed = await broadcasts(raceRoom, "presence:member_removed", user.id);
    assert.equal(removed.length, 1, `round ${round}: one presence:member_removed row`);
    assert.equal(removed[0].version, 2 * round + 2, `round ${round}: member_removed's version`);
    const left = await withDb((sql) =>
      sql`select (select count(*)::int from private.presence_members
                  where room_id = ${raceRoom} and user_id = ${user.id}) as members,
                 (select count(*)::int from private.presence_connections
                  where room_id = ${raceRoom} and user_id = ${user.id}) as connections`
    );
    assert.deepEqual(
      { ...left[0] },
      { members: 0, connections: 0 },
      `round ${round}: nothing left`,
    );
  }
  const [{ total }] = await withDb((sql) =>
    sql`select total from private.presence_rooms where room_id = ${raceRoom}`
  );
  assert.equal(total, 0, "the room's total is back to 0");
  const get = await invoke(tabbers[0].client, `presence?room_id=${raceRoom}`);
  assert.equal(get.body.version, 2 * rounds, "the snapshot's version is the last event's");
});

Deno.test("validation and rights: each refusal with its status and code", async () => {
  const tab = "error-tab-1";
  await expectError(
    invoke(listener.client, "presence", {
      action: "join",
      room_id: errorRoom,
      connection_id: tab,
      user_id: other.id,
    }),
    403,
    "user_id_mismatch",
    "user_id of another user",
  );
  await expectError(
    join(listener, errorRoom, tab, { bio: "x".repeat(1100) }),
    413,
    "user_info_too_large",
    "user_info over 1024 bytes",
  );
  await expectError(
    join(anonymousListener, errorRoom, tab),
    403,
    "identified_only",
    "anonymous member",
  );
  await expectError(
    invoke(clientFor(), "presence", { action: "join", room_id: errorRoom, connection_id: tab }),
    403,
    "identified_only",
    "anon key",
  );
  await expectError(join(outsider, errorRoom, tab), 403, "not_a_member", "non-member");
  await expectError(
    join(listener, crypto.randomUUID(), tab),
    404,
    "room_not_found",
    "room not found",
  );
  const invalid: [string, unknown][] = [
    ["connection_id of 7", { action: "join", room_id: errorRoom, connection_id: "c".repeat(7) }],
    ["connection_id of 65", { action: "join", room_id: errorRoom, connection_id: "c".repeat(65) }],
    ["connection_id with a space", {
      action: "join",
      room_id: errorRoom,
      connection_id: "with space",
    }],
    ["heartbeat with a bad connection_id", {
      action: "heartbeat",
      room_id: errorRoom,
      connection_id: "short",
    }],
    ["unknown action", { action: "dance", room_id: errorRoom, connection_id: tab }],
    ["no action", { room_id: errorRoom, connection_id: tab }],
    ["missing room_id", { action: "join", connection_id: tab }],
    ["room_id not a uuid", { action: "join", room_id: "room-1", connection_id: tab }],
    ["user_info an array", {
      action: "join",
      room_id: errorRoom,
      connection_id: tab,
      user_info: [1],
    }],
    ["user_info a string", {
      action: "join",
      room_id: errorRoom,
      connection_id: tab,
      user_info: "me",
    }],
  ];
  for (const [what, payload] of invalid) {
    await expectInvalidRequest(invoke(listener.client, "presence", payload), what);
  }
  const stored = await withDb((sql) =>
    sql`select count(*)::int as n from private.presence_connections where room_id = ${errorRoom}`
  );
  assert.equal(stored[0].n, 0, "no refused join stored a connection");

  // The limits are inclusive, and the caller's own user_id is fine.
  const ok = await invoke(listener.client, "presence", {
    action: "join",
    room_id: errorRoom,
    connection_id: "c".repeat(64),
    user_id: listener.id,
  });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.member_added, true);
  const shortest = await join(listener, errorRoom, "c".repeat(8));
  assert.equal(shortest.status, 200, JSON.stringify(shortest.body));
});

Deno.test("user_info of exactly 1024 bytes as JSON is accepted", async () => {
  const info = { bio: "" };
  info.bio = "y".repeat(1024 - JSON.stringify(info).length);
  assert.equal(new TextEncoder().encode(JSON.stringify(info)).length, 1024);
  const r = await join(other, errorRoom, "limit-tab-1", info);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body.me.info, info);
});

Deno.test("user_info keeps keys named __proto__, constructor or toString", async () => {
  // z.record rebuilt user_info key by key, which drops __proto__ (it sets the copy's prototype).
  const room = await withDb((sql) => createRoom(sql, host, [listener]));
  const info = JSON.parse('{"__proto__": {"admin": true}, "constructor": 1, "name": "Ana"}');
  const { status, body } = await join(listener, room, "proto-keys-tab", info);
  assert.equal(status, 200, JSON.stringify(body));
  assert.deepEqual(body.me.info, info);
  assert.equal((await leave(listener, room, "proto-keys-tab")).status, 200);
});

Deno.test("GET returns the detailed Presence to members, 403 to others", async () => {
  const hostJoin = await join(host, getRoom, "get-host-1", { name: "Host" });
  assert.equal(hostJoin.status, 200, JSON.stringify(hostJoin.body));
  const listenerJoin = await join(listener, getRoom, "get-listener-1", { name: "Listener" });
  assert.equal(listenerJoin.status, 200, JSON.stringify(listenerJoin.body));
  const { status, body } = await invoke(listener.client, `presence?room_id=${getRoom}`);
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.type, "detailed");
  assert.equal(body.version, 2);
  assert.equal(body.total, 2);
  assert.deepEqual(body.members.map((m: { user_id: string }) => m.user_id), [host.id, listener.id]);
  assert.deepEqual(body.members[0], hostJoin.body.me);
  assert.equal(body.members[0].is_host, true);
  assert.deepEqual(body.members[1], listenerJoin.body.me);
  assert.deepEqual(listenerJoin.body.presence, body);
  await expectError(
    invoke(outsider.client, `presence?room_id=${getRoom}`),
    403,
    "not_a_member",
    "GET by a non-member",
  );
  await expectError(
    invoke(listener.client, "presence?room_id=nope"),
    400,
    "invalid_request",
    "GET with a bad room_id",
  );
});

Deno.test("heartbeat answers {expires_at, server_time}, 60 s apart; leave of an unknown connection is a no-op", async () => {
  const joined = await join(listener, getRoom, "beat-tab-1");
  assert.equal(joined.status, 200, JSON.stringify(joined.body));
  const before = Date.now();
  const beat = await heartbeat(listener, getRoom, "beat-tab-1");
  assert.equal(beat.status, 200, JSON.stringify(beat.body));
  assert.deepEqual(Object.keys(beat.body).sort(), ["expires_at", "server_time"]);
  const expiresAt = Date.parse(beat.body.expires_at);
  const serverTime = beat.body.server_time;
  assert.equal(typeof serverTime, "number");
  assert.ok(Number.isInteger(serverTime), `server_time ${serverTime} in epoch ms`);
  // The database's clock and ours: within a few seconds of each other on one machine.
  assert.ok(Math.abs(serverTime - before) < 5_000, `server_time ${serverTime}, ours ${before}`);
  assert.ok(
    Math.abs(expiresAt - (serverTime + 60_000)) < 1_000,
    `expires_at ${beat.body.expires_at}`,
  );
  await expectError(
    heartbeat(listener, getRoom, "never-joined-1"),
    404,
    "not_found",
    "unknown connection",
  );

  const unknown = await leave(listener, getRoom, "never-joined-1");
  assert.deepEqual([unknown.status, unknown.body], [200, { member_removed: false }]);
  const gone = await leave(listener, getRoom, "beat-tab-1");
  assert.deepEqual(
    [gone.status, gone.body],
    [200, { member_removed: false }],
    "get-listener-1 is still there",
  );
});

Deno.test("a tab joining while the user's last other tab leaves keeps the member", async () => {
  const first = await join(racer, lockRoom, "lock-tab-1");
  assert.equal(first.status, 200, JSON.stringify(first.body));
  // Hold the member's row so that the join and then the leave queue behind it, in that order.
  const holder = await holdTransaction((tx) =>
    tx`select 1 from private.presence_members
       where room_id = ${lockRoom} and user_id = ${racer.id} for update`
  );
  let joining: ReturnType<typeof join> | undefined;
  let leaving: ReturnType<typeof leave> | undefined;
  try {
    joining = join(racer, lockRoom, "lock-tab-2");
    await lockWaiters(1);
    leaving = leave(racer, lockRoom, "lock-tab-1");
    await lockWaiters(2);
    await holder.commit();
    const [joined, left] = await Promise.all([joining, leaving]);
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    assert.equal(left.status, 200, JSON.stringify(left.body));
    const state = await withDb((sql) =>
      sql`select (select count(*)::int from private.presence_connections
                  where room_id = ${lockRoom} and user_id = ${racer.id}) as connections,
                 (select connections from private.presence_members
                  where room_id = ${lockRoom} and user_id = ${racer.id}) as member_connections`
    );
    assert.deepEqual(
      { joined: joined.body.member_added, left: left.body.member_removed, ...state[0] },
      { joined: false, left: false, connections: 1, member_connections: 1 },
      "lock-tab-2 is live, so the user is still a member with one connection",
    );
    // Nothing changed for the room: no event, and the version is still that of the first join.
    assert.equal(joined.body.presence.version, first.body.presence.version);
    assert.deepEqual(await broadcasts(lockRoom, "presence:member_removed", racer.id), []);
  } finally {
    await joining?.catch(() => {});
    await leaving?.catch(() => {});
    await holder.close();
  }
});
