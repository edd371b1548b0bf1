// Seeding a benchmark's database: ids readable by kind and number (0 users, 1 rooms, 2 songs) in
// TypeScript, in SQL and in pgbench scripts; users; rooms and their members.
import type postgres from "npm:postgres@3.4.9";

/**
 * Runs a benchmark's `seed`, then `vacuum analyze` (the planner's statistics for what it wrote),
 * saying what it seeds and, after, what `count` reads and how long it all took. Returns the
 * counts (the results file keeps them).
 */
export async function seedTimed<T>(
  sql: postgres.Sql,
  what: string,
  seed: () => Promise<void>,
  count: () => Promise<T>,
): Promise<T> {
  console.log(`Seeding ${what}...`);
  const started = performance.now();
  await seed();
  await sql`vacuum analyze`;
  const counts = await count();
  console.log(
    `Seeded ${JSON.stringify(counts)} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return counts;
}

/** The id of user, room or song (kind 0, 1, 2) number `n`: 10000000-0000-4000-8000-00000000000a
 * is room 10. */
export function id(kind: number, n: number): string {
  return `${kind}0000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}

/** The same ids in SQL, as pg_temp.id(kind, n) on `sql`'s (single) connection. */
export async function createIdFunction(sql: postgres.Sql): Promise<void> {
  await sql`
    create function pg_temp.id(kind int, n int) returns uuid language sql immutable as
    $$ select (kind || '0000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid $$`;
}

/** The same ids in a pgbench script, from a pgbench integer expression. */
export const pgbenchId = (kind: number, n: string) =>
  `('${kind}0000000-0000-4000-8000-' || lpad(to_hex(cast(${n} as int)), 12, '0'))::uuid`;

/** Users id(0, first..last) for each [first, last] (needs createIdFunction). */
export async function seedUsers(sql: postgres.Sql, ...ranges: [number, number][]): Promise<void> {
  for (const [first, last] of ranges) {
    await sql`
      insert into auth.users (id, email, is_anonymous)
      select pg_temp.id(0, n), 'u' || n || '@bench.test', false
      from generate_series(${first}::int, ${last}::int) n`;
  }
}

/**
 * Rooms id(1, 1..count), room n ("Room n") hosted by user n (the trigger adds the host's
 * membership); with `privateEveryFifth`, one in five is private (needs createIdFunction).
 */
export async function seedRooms(
  sql: postgres.Sql,
  count: number,
  { privateEveryFifth = false } = {},
): Promise<void> {
  await sql`
    insert into public.rooms (id, name, host_id, visibility)
    select pg_temp.id(1, n), 'Room ' || n, pg_temp.id(0, n),
           case when ${privateEveryFifth}::boolean and n % 5 = 0 then 'private' else 'public' end
    from generate_series(1, ${count}::int) n`;
}

/**
 * Users id(0, 1..users) and rooms 1..rooms as seedRooms makes them, one in five private, each
 * with a dj and eight listeners drawn from users membersFrom..users, so that most of those
 * belong to two or three rooms: the RLS subquery (the caller's rooms) is then not trivially one
 * row. Creates pg_temp.id on `sql`'s single connection.
 */
export async function seedRoomsWithMembers(
  sql: postgres.Sql,
  { users, rooms, membersFrom }: { users: number; rooms: number; membersFrom: number },
): Promise<void> {
  const pool = users - membersFrom + 1;
  await createIdFunction(sql);
  await seedUsers(sql, [1, users]);
  await seedRooms(sql, rooms, { privateEveryFifth: true });
  await sql`
    insert into public.room_members (room_id, user_id, role)
    select pg_temp.id(1, n), pg_temp.id(0, ${membersFrom}::int + (n * 9 + j) % ${pool}::int),
           case when j = 0 then 'dj' else 'listener' end
    from generate_series(1, ${rooms}::int) n, generate_series(0, 8) j`;
}

/** Users id(0, 1..users) and one public room hosted by user 1 with everyone else as listeners
 * (creates pg_temp.id on `sql`'s single connection). */
export async function seedBigRoom(sql: postgres.Sql, room: string, users: number): Promise<void> {
  await createIdFunction(sql);
  await seedUsers(sql, [1, users]);
  // The trigger adds the host's membership.
  await sql`
    insert into public.rooms (id, name, host_id, visibility)
    values (${room}, 'The big room', pg_temp.id(0, 1), 'public')`;
  await sql`
    insert into public.room_members (room_id, user_id, role)
    select ${room}, pg_temp.id(0, n), 'listener' from generate_series(2, ${users}::int) n`;
}
