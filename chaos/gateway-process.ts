// A gateway in a process of its own, for R2 (chaos/scenarios.ts), which kills it with SIGKILL
// while chat it accepted still waits for its flush timer: the Edge Functions, Realtime and Auth
// stand-ins of local/stack.ts against an existing cluster.
//   deno run --allow-all chaos/gateway-process.ts <db url> <port (0: any free one)>
// Prints one line, `ready <url>`, once it serves; its request log is not kept.
import { setFunctionEnv, startGateway } from "../local/stack.ts";

const [dbUrl, port] = Deno.args;
const server = await startGateway(dbUrl, Number(port), () => {});
// The functions open their pool at the first request, with what this sets.
setFunctionEnv(server.url, dbUrl);
console.log(`ready ${server.url}`);
