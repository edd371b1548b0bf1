// Runs against the test stack's database (npm test sets SUPABASE_DB_URL).
import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { asCaller, closeDb, db } from "./db.ts";
import { clientErrorFromSql, isDatabaseUnavailable } from "./db-errors.ts";
import type { Claims } from "./auth.ts";

const userId = "00000000-0000-4000-8000-0000000000cc";
const claims: Claims = { sub: userId, role: "authenticated", is_anonymous: true, exp: 4e9 };

Deno.test("asCaller runs its call as the JWT's role with its claims, like PostgREST", async () => {
  const row = await asCaller(
    claims,
    (sql) =>
      sql`jsonb_build_object('role', current_user, 'uid', auth.uid(), 'claim_role', auth.role(),
                             'is_anonymous', auth.jwt()->>'is_anonymous',
                             'proto', current_setting('request.headers')::jsonb->>'x-forwarded-proto')`,
  );
  assert.deepEqual(row, {
    role: "authenticated",
    uid: userId,
    claim_role: "authenticated",
    is_anonymous: "true",
    proto: "https",
  });
});

Deno.test("asCaller's settings end with its statement, failed or not", async () => {
  await asCaller(claims, (sql) => sql`1`);
  await assert.rejects(
    asCaller(claims, (sql) => sql`private.raise_client_error(400, 'invalid_request', 'No.')`),
    /invalid_request/,
  );
  // More concurrent queries than pooled connections, so every connection is used again.
  const results = await Promise.all(
    Array.from({ length: 12 }, () => db()`select current_user as role, auth.uid() as uid`),
  );
  for (const [row] of results) assert.deepEqual({ ...row }, { role: "postgres", uid: null });
  await closeDb();
});

Deno.test("asCaller checks rights inside the called function as the caller, not as postgres", async () => {
  // edge.room_context runs as its caller; anon may not use the private schema it calls into.
  await assert.rejects(
    asCaller({ role: "anon" }, (sql) => sql`edge.room_context(${userId}, 50, 10)`),
    /permission denied for schema private/,
  );
  await closeDb();
});

Deno.test("a write refused by a table's CHECK constraint is a 400, not a 500", async () => {
  // CHECKs run before the foreign key, so no room is needed to reach the body rule.
  const error = await db()`
    insert into public.messages (room_id, user_id, client_id, body)
    values (${userId}, ${userId}, 'check-1', '   ')`.catch((e) => e);
  const mapped = clientErrorFromSql(error);
  assert.equal(mapped?.status, 400);
  assert.equal(mapped?.code, "invalid_request");
  assert.deepEqual(mapped?.details, { constraint: "messages_body_check" });
  assert.equal(clientErrorFromSql(new Error("syntax error")), undefined);
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
  // Postgres shutting down closes the socket as a query is written.
  const broken = Object.assign(new Error("write EPIPE"), { code: "EPIPE" });
  assert.equal(isDatabaseUnavailable(broken), true);
});
