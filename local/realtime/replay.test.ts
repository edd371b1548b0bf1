// Broadcast replay at join, end to end through the test stack's gateway (replay.ts, and the
// join's checks in connection.ts and join-payload.ts): a private join with
// config.broadcast.replay gets the newest private rows since a moment, oldest first, once; a
// public join, or a since that is no date, is refused.
import assert from "node:assert/strict";
import { closeRealtime, realtimeClientFor, subscribe } from "../test-helpers.ts";
import {
  castWithRooms,
  joined,
  rawSocket,
  type Received,
  received,
  send,
  sleep,
  until,
  uuidPattern,
  waitFor,
} from "./testing.ts";

const { listener, outsider, rooms } = await castWithRooms(1);
const [replayRoom] = rooms;

Deno.test("replay: a private join with config.broadcast.replay gets the newest rows since, oldest first, once", async () => {
  const client = realtimeClientFor(listener.token);
  const outsiderClient = realtimeClientFor(outsider.token);
  const topic = `room:${replayRoom}:queue`;
  try {
    await send(topic, "queue:old", { n: 0 });
    await sleep(20);
    const since = Date.now();
    for (const n of [1, 2, 3]) await send(topic, "queue:item", { n });
    await send(topic, "queue:public", { n: 9 }, false); // not a private row: never replayed

    // Bound before the join: the replayed rows follow its reply at once, and can be read before
    // the code after `await joined(...)` runs.
    let got: Received[] = [];
    await joined(
      client,
      topic,
      { private: true, broadcast: { replay: { since, limit: 2 } } },
      (channel) => got = received(channel),
    );
    await until("two replayed rows", got, (all) => all.length === 2);
    assert.deepEqual(got.map((m) => m.payload.n), [2, 3]);
    for (const m of got) {
      assert.equal(m.event, "queue:item");
      assert.equal((m.meta as { replayed?: boolean }).replayed, true);
      assert.match(m.meta!.id, uuidPattern);
    }
    await send(topic, "queue:item", { n: 4 });
    await until("the next row live", got, (all) => all.length === 3);
    assert.equal(got[2].payload.n, 4);
    assert.equal((got[2].meta as { replayed?: boolean }).replayed, undefined);

    // Replay needs the read right like any private join.
    const { status, error } = await subscribe(
      outsiderClient.channel(topic, {
        config: { private: true, broadcast: { replay: { since, limit: 2 } } },
      }),
    );
    assert.equal(status, "CHANNEL_ERROR");
    assert.match(error!.message, /^Unauthorized: /);
  } finally {
    await closeRealtime(client, outsiderClient);
  }
});

Deno.test("replay on a public channel is refused with UnableToReplayMessages", async () => {
  const raw = await rawSocket("1.0.0");
  try {
    const joinTopic = `realtime:replay-${crypto.randomUUID()}`;
    raw.send({
      topic: joinTopic,
      event: "phx_join",
      payload: { config: { broadcast: { replay: { since: 0 } } } },
      ref: "1",
      join_ref: "1",
    });
    await waitFor("the join reply", () => raw.frames.length === 1);
    const [reply] = raw.frames as { payload: { status: string; response: { reason: string } } }[];
    assert.equal(reply.payload.status, "error");
    assert.match(reply.payload.response.reason, /^UnableToReplayMessages: /);
  } finally {
    await raw.close();
  }
});

Deno.test("replay with a since that is no date is refused with UnableToReplayMessages, not answered then lost", async () => {
  // since = 1e300 used to be answered ok, then fail in Postgres (timestamp out of range).
  const client = realtimeClientFor(listener.token);
  try {
    for (const since of [1e300, -1e300, 1.5, "yesterday", 253_402_300_800_000]) {
      const { status, error } = await subscribe(
        client.channel(`room:${replayRoom}:queue`, {
          config: { private: true, broadcast: { replay: { since: since as number } } },
        }),
      );
      assert.equal(status, "CHANNEL_ERROR", String(since));
      assert.equal(error!.message, "UnableToReplayMessages: Replay params are not valid");
      await client.removeAllChannels();
    }
    // The furthest date there is replays nothing, and the channel lives.
    const { status } = await subscribe(
      client.channel(`room:${replayRoom}:queue`, {
        config: { private: true, broadcast: { replay: { since: 253_402_300_799_999 } } },
      }),
    );
    assert.equal(status, "SUBSCRIBED");
  } finally {
    await closeRealtime(client);
  }
});
