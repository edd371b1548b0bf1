// The Realtime stand-in's janitor keeps realtime.messages' daily partitions as Realtime does:
// yesterday … today + 3 made, older than 72 h dropped, owned by supabase_realtime_admin.
import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { asRole } from "../postgres.ts";
import { maintainPartitions } from "./janitor.ts";

const dayMs = 86_400_000;
const partitionOf = (time: number) =>
  `messages_${new Date(time).toISOString().slice(0, 10).replaceAll("-", "_")}`;

async function partitions(sql: postgres.Sql): Promise<Map<string, string>> {
  const rows = await sql<{ name: string; owner: string }[]>`
    select c.relname as name, pg_get_userbyid(c.relowner) as owner
    from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'realtime.messages'::regclass`;
  return new Map(rows.map((row) => [row.name, row.owner]));
}

Deno.test("the janitor makes yesterday … today + 3 and drops the days older than 72 h", async () => {
  const admin = postgres(asRole(Deno.env.get("SUPABASE_DB_URL")!, "supabase_admin"), {
    max: 1,
    onnotice: () => {},
  });
  try {
    const now = Date.now();
    // As if the stack had run ten days ago: the partitions of that time appear.
    const past = await maintainPartitions(admin, new Date(now - 10 * dayMs));
    const pastDays = [-11, -10, -9, -8, -7].map((offset) => partitionOf(now + offset * dayMs));
    assert.deepEqual(past.created.sort(), pastDays.sort());
    assert.deepEqual(past.dropped, []);
    const afterPast = await partitions(admin);
    for (const name of pastDays) assert.equal(afterPast.get(name), "supabase_realtime_admin");

    // Today: those are older than 72 h and go; today's window stays, nothing is missing.
    const today = await maintainPartitions(admin);
    assert.deepEqual(today.created, []);
    assert.deepEqual(today.dropped.sort(), pastDays.sort());
    const kept = await partitions(admin);
    for (const name of pastDays) assert.ok(!kept.has(name), `${name} was dropped`);
    for (const offset of [-1, 0, 1, 2, 3]) {
      assert.equal(kept.get(partitionOf(now + offset * dayMs)), "supabase_realtime_admin");
    }
  } finally {
    await admin.end();
  }
});
