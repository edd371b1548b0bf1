// R1's senders in a Worker (chaos/scenarios.ts), so that sending does not share a thread with
// the gateway that `npm run chaos` serves in its own process.
import { type CrowdPlan, sendCrowd } from "./senders.ts";

// deno-lint-ignore no-explicit-any
const worker = self as any;
worker.onmessage = async (event: MessageEvent<CrowdPlan>) =>
  worker.postMessage(await sendCrowd(event.data));
