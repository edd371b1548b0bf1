// Broadcast replay at join (config.broadcast.replay, private channels only): the newest private
// broadcasts of the topic since a moment, read back from realtime.messages as Realtime reads
// them, sent before anything live and marked `replayed`.
import type postgres from "npm:postgres@3.4.9";
import type { Channel } from "./channel.ts";

/** The newest `limit` private broadcasts on `topic` since `sinceMs`, oldest first, as
 * Realtime replays them from realtime.messages. */
async function recentBroadcasts(sql: postgres.Sql, topic: string, sinceMs: number, limit: number) {
  const rows = await sql<{ id: string; event: string; payload: unknown }[]>`
    select id, event, payload from realtime.messages
    where topic = ${topic} and private is true and extension = 'broadcast'
      and event is not null and payload is not null
      and inserted_at >= to_timestamp(${sinceMs / 1000}) at time zone 'utc'
    order by inserted_at desc
    limit ${limit}`;
  return rows.reverse();
}

/** Sends the channel's recent private broadcasts, oldest first, marked `replayed`. */
export async function replayBroadcasts(
  channel: Channel,
  { since, limit }: { since: number; limit: number },
) {
  for (const row of await recentBroadcasts(channel.socket.sql, channel.topic, since, limit)) {
    channel.replayedIds.add(row.id);
    channel.push("broadcast", {
      type: "broadcast",
      event: row.event,
      payload: row.payload,
      meta: { replayed: true, id: row.id },
    });
  }
}
