// R3 small (chaos/scenarios.ts). Stops the test stack's database, so `npm test` runs it last and
// on its own (local/run-tests.ts: *.disruptive.test.ts).
import assert from "node:assert/strict";
import { r3DbRestart, runOnTestStack } from "./scenarios.ts";

Deno.test("R3: Postgres restarted while senders keep sending: only 503 with Retry-After meanwhile, never another 5xx or a hang; afterwards every acknowledged message stored and broadcast exactly once", async () => {
  const figures = await runOnTestStack(r3DbRestart, {
    senders: 6,
    rooms: 2,
    beforeMs: 1000,
    outageMs: 2000,
    afterMs: 1000,
  });
  assert.equal(figures.other_5xx, 0);
  assert.ok(Number(figures.answers_503) > 0, "some requests met the outage");
});
