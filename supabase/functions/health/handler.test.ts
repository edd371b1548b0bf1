// End to end: the real supabase-js client through the test stack's gateway.
import assert from "node:assert/strict";
import { createClient } from "npm:@supabase/supabase-js@2.119.1";
import postgres from "npm:postgres@3.4.9";

const apiUrl = Deno.env.get("SUPABASE_URL")!;
const anonKey = Deno.env.get("SUPABASE_ANON_KEY")!;
const migrationsDir = new URL("../../migrations", import.meta.url);

async function migrationVersions(): Promise<string[]> {
  const versions: string[] = [];
  for await (const entry of Deno.readDir(migrationsDir)) {
    const match = /^(\d+)_.*\.sql$/.exec(entry.name);
    if (match) versions.push(match[1]);
  }
  return versions.sort();
}

Deno.test("health answers 200 ok with the newest migration, through supabase-js", async () => {
  const supabase = createClient(apiUrl, anonKey, { auth: { persistSession: false } });
  const { data, error } = await supabase.functions.invoke("health", { method: "GET" });
  assert.equal(error, null);
  assert.deepEqual(data, { status: "ok", db: "ok", migration: (await migrationVersions()).at(-1) });
});

Deno.test("every migration file is recorded as applied by supabase db push", async () => {
  const sql = postgres(Deno.env.get("SUPABASE_DB_URL")!, { max: 1 });
  try {
    const rows =
      await sql`select version from supabase_migrations.schema_migrations order by version`;
    assert.deepEqual(rows.map((r) => r.version), await migrationVersions());
  } finally {
    await sql.end();
  }
});

Deno.test("health without a token is 401 not_authenticated, with CORS", async () => {
  const response = await fetch(`${apiUrl}/functions/v1/health`);
  assert.equal(response.status, 401);
  assert.equal(response.headers.get("access-control-allow-origin"), "*");
  assert.equal((await response.json()).error.code, "not_authenticated");
});

Deno.test("health refuses POST with 405", async () => {
  const response = await fetch(`${apiUrl}/functions/v1/health`, {
    method: "POST",
    headers: { Authorization: `Bearer ${anonKey}` },
  });
  assert.equal(response.status, 405);
  assert.equal((await response.json()).error.code, "method_not_allowed");
});
