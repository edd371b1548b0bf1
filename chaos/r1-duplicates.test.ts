// R1 small (chaos/scenarios.ts; `npm run chaos` runs it with 100,000 messages).
import assert from "node:assert/strict";
import { r1Duplicates, runOnTestStack } from "./scenarios.ts";

Deno.test("R1: 50 senders, 5,000 messages, resends and abandoned requests: every acknowledged message stored once and in exactly one chat:batch (in realtime.messages and at a subscriber), seq 1..N per room, no 5xx", async () => {
  const figures = await runOnTestStack(r1Duplicates, {
    messages: 5000,
    senders: 50,
    rooms: 5,
    seed: 1,
    boundS: 120,
  });
  // The scenario did what it says: messages were sent again, and requests abandoned.
  assert.equal(figures.messages_acknowledged, 5000);
  assert.ok(Number(figures.of_which_resends_of_acknowledged) > 0, "some resends");
  assert.ok(Number(figures.abandoned_mid_flight) > 0, "some abandoned requests");
});
