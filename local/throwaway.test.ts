// A test or benchmark run that is killed (SIGTERM) or interrupted (SIGINT) stops the gateway
// and cluster it started and removes their folder: nothing is left holding the ports.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { lines } from "./stream-lines.ts";

const root = new URL("..", import.meta.url).pathname;

function isFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** Two ports free right now, chosen by the system: fixed ones would meet a stack that another
 * run on the same machine holds. */
function freePorts(): [number, number] {
  const listeners = [0, 1].map(() => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((listener) => (listener.addr as Deno.NetAddr).port);
  for (const listener of listeners) listener.close();
  return [ports[0], ports[1]];
}

for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
  Deno.test(`${signal} to a run holding a throw-away stack stops its gateway and cluster`, async () => {
    const ports = freePorts();
    const child = new Deno.Command(`${root}node_modules/.bin/deno`, {
      args: ["run", "--allow-all", "local/fixtures/hold-throwaway-stack.ts", ...ports.map(String)],
      cwd: root,
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    try {
      const output = lines(child.stdout);
      let dir = "";
      for await (const line of output) {
        if (line.startsWith("cluster: ")) {
          dir = line.slice("cluster: ".length);
          break;
        }
      }
      assert.ok(existsSync(dir), "the stack's folder exists while it runs");
      assert.ok(!isFree(ports[0]) && !isFree(ports[1]), "the gateway and Postgres listen");

      child.kill(signal);
      for await (const _ of output); // until the child closes its output
      const status = await child.status;
      assert.equal(status.code, code);
      assert.ok(!existsSync(dir), "the stack's folder is removed");
      assert.ok(isFree(ports[0]), "the gateway's port is free");
      assert.ok(isFree(ports[1]), "Postgres's port is free");
    } finally {
      // A failed assertion must not leave the child holding its stack.
      try {
        child.kill("SIGKILL");
      } catch {
        // It has exited.
      }
      await child.status;
    }
  });
}
