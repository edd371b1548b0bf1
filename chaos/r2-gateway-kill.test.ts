// R2 small (chaos/scenarios.ts). Waits for the minute's pg_cron sweep: up to 60 s.
import assert from "node:assert/strict";
import { r2GatewayKill, testStack } from "./scenarios.ts";

Deno.test("R2: a gateway process killed with SIGKILL while chat it accepted waits for its flush: the sweeper sends it all within 60 s, each message in exactly one chat:batch", async () => {
  const { figures, violations } = await r2GatewayKill(testStack(), {
    rooms: 4,
    messagesPerRoom: 10,
    port: 0,
  });
  console.log(JSON.stringify(figures));
  assert.deepEqual(violations, []);
  assert.equal(figures.messages_accepted, 2 * 4 * 10);
});
