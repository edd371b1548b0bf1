// The replication connection of the Realtime stand-in, in a worker of its own so that a lost
// database connection ends only this worker (postgres.js reconnects a subscription by itself and
// throws out of reach when it cannot), and the supervisor in replication.ts starts a new one, as
// Realtime restarts its replication process. Posts "ready", then one BroadcastRow per row, or
// "failed" when the stream breaks.
import postgres from "npm:postgres@3.4.9";
import type { BroadcastRow } from "./replication.ts";

const publication = "supabase_realtime_messages_publication";

declare const self: Worker;

self.onmessage = async ({ data: dbUrl }: MessageEvent<string>) => {
  const admin = postgres(dbUrl, { max: 1, onnotice: () => {} });
  try {
    // Realtime ensures its publication itself when it connects.
    const [found] = await admin`select 1 from pg_publication where pubname = ${publication}`;
    if (!found) await admin.unsafe(`create publication ${publication} for table realtime.messages`);
  } finally {
    await admin.end();
  }
  const replication = postgres(dbUrl, { publications: publication, onnotice: () => {} });
  await replication.subscribe(
    "insert",
    (row, { relation }) => {
      // Partitions publish under their own names (messages_2026_12_04).
      if (!row || relation.schema !== "realtime" || !relation.table.startsWith("messages")) return;
      const broadcast = toBroadcastRow(row);
      if (broadcast) self.postMessage(broadcast);
    },
    undefined,
    // A broken stream: the supervisor ends this worker and starts afresh.
    () => self.postMessage("failed"),
  );
  self.postMessage("ready");
};

/** Rows missing what Realtime requires (event, topic, private, a payload) are dropped, as
 * Realtime drops them. */
function toBroadcastRow(row: postgres.Row): BroadcastRow | undefined {
  const { id, topic, event, payload, binary_payload: binary } = row;
  if (!id || !topic || !event || typeof row.private !== "boolean") return;
  if (payload !== null && payload !== undefined) {
    return { id, topic, event, private: row.private, payload: { json: JSON.stringify(payload) } };
  }
  if (binary instanceof Uint8Array) {
    return { id, topic, event, private: row.private, payload: { binary } };
  }
}
