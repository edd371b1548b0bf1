// End to end through the test stack's gateway with the real supabase-js client.
import assert from "node:assert/strict";
import { signJwt } from "../../../local/keys.ts";
import {
  clientFor,
  createCastAndRooms,
  expectError,
  expectInvalidRequest,
  flushChat,
  invoke,
  messageFields,
  withDb,
} from "../../../local/test-helpers.ts";

const { host, listener, outsider, anonymousListener, rooms: [room, quietRoom] } =
  await createCastAndRooms(2);

// 60 messages that went out (seq 1..60), 12 plays of 3 songs, and a playback state.
await withDb(async (sql) => {
  await sql`insert into public.messages (room_id, user_id, client_id, body)
            select ${room}, ${listener.id}, 'ctx-' || n, 'message ' || n
            from generate_series(1, 60) as n`;
  await flushChat(sql, room);
  const songs = await sql`insert into public.songs (title, artist, duration_ms)
                          values ('A', 'X', 1000), ('B', 'Y', 2000), ('C', 'Z', 3000) returning id`;
  await sql`insert into public.play_history (room_id, song_id, played_at)
            select ${room}, (${songs.map((song) => song.id)}::uuid[])[1 + n % 3],
                   now() - n * interval '1 minute'
            from generate_series(1, 12) as n`;
  await sql`insert into public.playback_state (room_id, song_id, position_ms, is_playing, seq)
            values (${room}, ${songs[0].id}, 42000, true, 7)`;
});

Deno.test("a member gets the whole late-joiner snapshot in one call", async () => {
  const before = Date.now();
  const { status, body } = await invoke(listener.client, `room-context?room_id=${room}`);
  assert.equal(status, 200);
  assert.deepEqual(body.room, {
    id: room,
    name: "E2E room",
    host_id: host.id,
    visibility: "public",
  });
  // The newest 50 messages, oldest first.
  assert.equal(body.chat.length, 50);
  assert.deepEqual(
    body.chat.map((m: { body: string; seq: number }) => [m.body, m.seq]),
    Array.from({ length: 50 }, (_, i) => [`message ${i + 11}`, i + 11]),
  );
  assert.deepEqual(Object.keys(body.chat[0]).sort(), messageFields);
  assert.equal(typeof body.chat[0].id, "number");
  // The newest 10 plays, newest first, each with its song.
  assert.equal(body.history.length, 10);
  const playedAt = body.history.map((h: { played_at: string }) => Date.parse(h.played_at));
  assert.deepEqual(playedAt, [...playedAt].sort((a, b) => b - a));
  assert.deepEqual(Object.keys(body.history[0].song).sort(), [
    "artist",
    "duration_ms",
    "id",
    "title",
  ]);
  assert.equal(body.playback.position_ms, 42000);
  assert.equal(body.playback.is_playing, true);
  assert.equal(body.playback.seq, 7);
  assert.ok(
    body.playback.server_time >= before - 1000 && body.playback.server_time <= Date.now() + 1000,
  );
  assert.deepEqual(body.presence, { type: "detailed", version: 0, total: 0, members: [] });
  assert.ok(body.server_time >= before - 1000 && body.server_time <= Date.now() + 1000);
});

Deno.test("chat_limit and history_limit bound the snapshot", async () => {
  const { body } = await invoke(
    listener.client,
    `room-context?room_id=${room}&chat_limit=3&history_limit=1`,
  );
  assert.deepEqual(body.chat.map((m: { body: string }) => m.body), [
    "message 58",
    "message 59",
    "message 60",
  ]);
  assert.equal(body.history.length, 1);
});

Deno.test("chat is only what went out, ordered by seq: a waiting message is left out, a late commit comes after a higher id", async () => {
  // One that committed late: stored before another (a lower id) but sent after it (seq 62
  // after 61); then one still waiting to go out.
  const [late, early] = await withDb(async (sql) => {
    const sent = (clientId: string, seq: number) =>
      sql`insert into public.messages (room_id, user_id, client_id, body, seq, broadcast_at)
          values (${room}, ${listener.id}, ${clientId}, ${clientId}, ${seq}, now())
          returning id`;
    const [{ id: late }] = await sent("late", 62);
    const [{ id: early }] = await sent("early", 61);
    await sql`insert into public.messages (room_id, user_id, client_id, body)
              values (${room}, ${listener.id}, 'waiting', 'waiting')`;
    return [Number(late), Number(early)];
  });
  assert.ok(late < early);
  const { status, body } = await invoke(
    listener.client,
    `room-context?room_id=${room}&chat_limit=3`,
  );
  assert.equal(status, 200, JSON.stringify(body));
  assert.deepEqual(
    body.chat.slice(1).map((m: { body: string; seq: number; id: number }) => [m.body, m.seq, m.id]),
    [["early", 61, early], ["late", 62, late]],
  );
  assert.deepEqual([body.chat[0].body, body.chat[0].seq], ["message 60", 60]);
});

Deno.test("a room with no chat, plays or playback gives empty lists and null", async () => {
  const { status, body } = await invoke(host.client, `room-context?room_id=${quietRoom}`);
  assert.equal(status, 200);
  assert.deepEqual([body.chat, body.history, body.playback], [[], [], null]);
});

/** room-context with `query`, as `client`. */
const context = (client = listener.client, query = `room_id=${room}`) =>
  invoke(client, `room-context?${query}`);

Deno.test("bad parameters are 400 invalid_request with the validation issues", async () => {
  for (
    const query of [
      "",
      "room_id=not-a-uuid",
      `room_id=${room}&chat_limit=0`,
      `room_id=${room}&chat_limit=201`,
      `room_id=${room}&chat_limit=abc`,
      `room_id=${room}&chat_limit=-1`,
      `room_id=${room}&history_limit=0`,
      `room_id=${room}&history_limit=51`,
      `room_id=${room}&history_limit=1.5`,
    ]
  ) {
    await expectInvalidRequest(context(listener.client, query), query);
  }
});

Deno.test("who may read the snapshot: members only, identified only, and the room must exist", async () => {
  await expectError(context(outsider.client), 403, "not_a_member", "an outsider");
  await expectError(context(anonymousListener.client), 403, "identified_only", "anonymous");
  const elsewhere = `room_id=${crypto.randomUUID()}`;
  await expectError(context(listener.client, elsewhere), 404, "room_not_found", "no such room");
  await expectError(context(clientFor()), 403, "identified_only", "the anon key");
  // A project-signed token with role anon is not a user, whatever its sub says.
  const anonWithSub = await signJwt({
    role: "anon",
    sub: listener.id,
    exp: Math.floor(Date.now() / 1000) + 60,
  });
  await expectError(context(clientFor(anonWithSub)), 403, "identified_only", "anon with a sub");
});

Deno.test("tokens and methods: 401 without or with a bad token, 405 for POST", async () => {
  const noToken = await fetch(
    `${Deno.env.get("SUPABASE_URL")}/functions/v1/room-context?room_id=${room}`,
  );
  assert.equal(noToken.status, 401);
  assert.equal((await noToken.json()).error.code, "not_authenticated");
  await expectError(context(clientFor("not.a.jwt")), 401, "invalid_token", "not a JWT");
  const post = await invoke(listener.client, `room-context?room_id=${room}`, {});
  assert.equal(post.status, 405);
  assert.equal(post.body.error.code, "method_not_allowed");
});
