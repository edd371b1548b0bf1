// health while the database is down: the functions' pool answers 503 unavailable with
// Retry-After, and recovers. Stops the test stack's database, so `npm test` runs this file last
// and on its own.
import assert from "node:assert/strict";
import { anonKey } from "../../../local/keys.ts";
import { startCluster, stopCluster } from "../../../local/postgres.ts";
import { throwawayClusterOfEnv } from "../../../local/throwaway.ts";

const apiUrl = Deno.env.get("SUPABASE_URL")!;
const testCluster = throwawayClusterOfEnv();

async function health() {
  const response = await fetch(`${apiUrl}/functions/v1/health`, {
    headers: { Authorization: `Bearer ${anonKey}` },
  });
  return { response, body: await response.json() };
}

Deno.test("health is 503 unavailable while the database is down, and 200 once it is back", async () => {
  assert.equal((await health()).response.status, 200);
  await stopCluster(testCluster);
  try {
    const { response, body } = await health();
    assert.equal(response.status, 503);
    assert.equal(body.error.code, "unavailable");
    assert.ok(Number(response.headers.get("retry-after")) > 0);
  } finally {
    await startCluster(testCluster);
  }
  const { response, body } = await health();
  assert.equal(response.status, 200);
  assert.equal(body.status, "ok");
});
