// R2 small (chaos/scenarios.ts). Waits for the minute's pg_cron sweep: up to 60 s.
import assert from "node:assert/strict";
import { r2GatewayKill, runOnTestStack } from "./scenarios.ts";

Deno.test("R2: a gateway process killed with SIGKILL while chat it accepted waits for its flush: the sweeper sends it all within 60 s, each message in exactly one chat:batch", async () => {
  const figures = await runOnTestStack(r2GatewayKill, {
    rooms: 4,
    messagesPerRoom: 10,
    port: 0,
  });
  assert.equal(figures.messages_accepted, 2 * 4 * 10);
});
