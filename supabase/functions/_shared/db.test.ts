// Runs against the test stack's database (npm test sets SUPABASE_DB_URL).
import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { asCaller, closeDb, db, isDatabaseUnavailable } from "./db.ts";
import type { Claims } from "./auth.ts";

const userId = "00000000-0000-4000-8000-0000000000cc";
const claims: Claims = { sub: userId, role: "authenticated", is_anonymous: true, exp: 4e9 };

Deno.test("asCaller runs as the JWT's role with its claims, like PostgREST", async () => {
  const [row] = await asCaller(
    claims,
    (tx) =>
      tx`select current_user as role, auth.uid() as uid, auth.role() as claim_role,
              auth.jwt()->>'is_anonymous' as is_anonymous`,
  );
  assert.deepEqual({ ...row }, {
    role: "authenticated",
    uid: userId,
    claim_role: "authenticated",
    is_anonymous: "true",
  });
});

Deno.test("asCaller's settings end with its transaction", async () => {
  await asCaller(claims, (tx) => tx`select 1`);
  // More concurrent queries than pooled connections, so every connection is used again.
  const results = await Promise.all(
    Array.from({ length: 12 }, () => db()`select current_user as role, auth.uid() as uid`),
  );
  for (const [row] of results) assert.deepEqual({ ...row }, { role: "postgres", uid: null });
  await closeDb();
});

Deno.test("asCaller rolls back everything when the work fails", async () => {
  await assert.rejects(asCaller({ ...claims, role: "service_role" }, async (tx) => {
    await tx`create table public.should_not_exist (id int)`;
    throw new Error("abort");
  }));
  const [{ exists }] =
    await db()`select to_regclass('public.should_not_exist') is not null as exists`;
  assert.equal(exists, false);
  await closeDb();
});

Deno.test("a refused connection is recognised as the database being unavailable", async () => {
  const closedPort = postgres("postgresql://postgres:postgres@127.0.0.1:1/postgres", {
    connect_timeout: 2,
    max: 1,
  });
  const error = await closedPort`select 1`.catch((e) => e);
  await closedPort.end();
  assert.equal(isDatabaseUnavailable(error), true, String(error));
  assert.equal(isDatabaseUnavailable(new Error("syntax error")), false);
});
