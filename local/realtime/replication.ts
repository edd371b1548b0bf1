// Rows that realtime.send commits, read from the WAL as Supabase Realtime reads them
// (reference/realtime.md §3): a publication on realtime.messages and a temporary logical slot
// with pgoutput, so only committed rows arrive, in commit order, and nothing is polled.
import postgres from "npm:postgres@3.4.9";

export const publication = "supabase_realtime_messages_publication";

/** A committed broadcast row, as delivery needs it. */
export interface BroadcastRow {
  id: string;
  topic: string;
  event: string;
  private: boolean;
  /** The payload as JSON text, or the bytes of a binary payload. */
  payload: { json: string } | { binary: Uint8Array };
}

export interface Replication {
  close(): Promise<void>;
}

/**
 * Streams every committed broadcast row to `onRow`. Rows missing what Realtime requires
 * (event, topic, private, a payload) are dropped, as Realtime drops them.
 */
export async function streamBroadcasts(
  dbUrl: string,
  onRow: (row: BroadcastRow) => void,
): Promise<Replication> {
  const admin = postgres(dbUrl, { max: 1, onnotice: () => {} });
  try {
    // The server ensures its publication itself, as Realtime does on connect.
    await admin`select 1 from pg_publication where pubname = ${publication}`.then((found) =>
      found.length
        ? undefined
        : admin.unsafe(`create publication ${publication} for table realtime.messages`)
    );
  } finally {
    await admin.end();
  }
  const replication = postgres(dbUrl, {
    publications: publication,
    onnotice: () => {},
  });
  await replication.subscribe("insert", (row, { relation }) => {
    // Partitions publish under their own names (messages_2026_12_04).
    if (!row || relation.schema !== "realtime" || !relation.table.startsWith("messages")) return;
    const broadcast = toBroadcastRow(row);
    if (broadcast) onRow(broadcast);
  });
  return { close: () => replication.end({ timeout: 1 }) };
}

function toBroadcastRow(row: postgres.Row): BroadcastRow | undefined {
  const { id, topic, event, payload, binary_payload: binary } = row;
  if (!id || !topic || !event || row.private === null || row.private === undefined) return;
  if (payload !== null && payload !== undefined) {
    return { id, topic, event, private: row.private, payload: { json: JSON.stringify(payload) } };
  }
  if (binary instanceof Uint8Array) {
    return { id, topic, event, private: row.private, payload: { binary } };
  }
}
