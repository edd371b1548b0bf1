// The daily partitions of realtime.messages, kept as Supabase Realtime keeps them
// (reference/realtime.md §1.1): when the server connects it creates the partitions from
// yesterday to today + 3 (UTC days), its janitor does the same on a timer and drops the
// partitions older than 72 hours. Without a partition for the day, realtime.send fails — and
// says so only as a WARNING — so a stack left running for days needs this as much as hosted does.
import type postgres from "npm:postgres@3.4.9";

const dayMs = 86_400_000;
const retentionMs = 72 * 3_600_000;
const partitionName = /^messages_(\d{4})_(\d{2})_(\d{2})$/;

const utcDay = (time: number) => new Date(Math.floor(time / dayMs) * dayMs);
const isoDay = (day: Date) => day.toISOString().slice(0, 10);

/**
 * Creates the partitions of yesterday … today + 3 that are missing and drops those of days
 * before the day of `now` − 72 h, as Realtime's janitor does. Runs as the superuser; the
 * partitions belong to supabase_realtime_admin.
 */
export async function maintainPartitions(
  sql: postgres.Sql,
  now = new Date(),
): Promise<{ created: string[]; dropped: string[] }> {
  const created: string[] = [];
  const dropped: string[] = [];
  const today = utcDay(now.getTime()).getTime();
  const existing = new Set(
    (await sql<{ name: string }[]>`
      select c.relname as name
      from pg_catalog.pg_inherits i
      join pg_catalog.pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'realtime.messages'::regclass`).map((row) => row.name),
  );
  for (let offset = -1; offset <= 3; offset++) {
    const day = new Date(today + offset * dayMs);
    const name = `messages_${isoDay(day).replaceAll("-", "_")}`;
    if (existing.has(name)) continue;
    const next = new Date(day.getTime() + dayMs);
    // A concurrent janitor (another gateway on the same database) may win the race.
    await sql.unsafe(
      `create table if not exists realtime.${name} partition of realtime.messages
         for values from ('${isoDay(day)}') to ('${isoDay(next)}');
       alter table realtime.${name} owner to supabase_realtime_admin`,
    );
    created.push(name);
  }
  const oldestKept = isoDay(utcDay(now.getTime() - retentionMs));
  for (const name of existing) {
    const match = partitionName.exec(name);
    if (!match || `${match[1]}-${match[2]}-${match[3]}` >= oldestKept) continue;
    await sql.unsafe(`drop table if exists realtime.${name}`);
    dropped.push(name);
  }
  return { created, dropped };
}

/** Keeps the partitions now and every `intervalMs` after; `stop()` ends it. Errors (the
 * database restarting) are reported and the next round tries again. */
export async function startJanitor(sql: postgres.Sql, intervalMs = 3_600_000) {
  await maintainPartitions(sql);
  const timer = setInterval(() => {
    maintainPartitions(sql).catch((error) =>
      console.error(`realtime janitor: ${error instanceof Error ? error.message : error}`)
    );
  }, intervalMs);
  return { stop: () => clearInterval(timer) };
}
