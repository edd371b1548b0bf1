// `npm run build`'s bundle, used from Node against the test stack: it builds with the same
// command, then a Node process imports the bundle next to the real supabase-js (which the
// bundle leaves to the app), joins a room, sends a message, sees it come back, leaves.
import assert from "node:assert/strict";
import { createCast, createRoom, fixtureDb } from "../local/test-helpers.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const setup = fixtureDb();
const { host, listener } = await createCast(setup);
const room = await createRoom(setup, host, [listener]);
await setup.end();

const buildScript: string =
  JSON.parse(await Deno.readTextFile(`${root}/package.json`)).scripts.build;

Deno.test("npm run build: one ES module, supabase-js left out; it runs in Node", async () => {
  assert.match(
    buildScript,
    /^deno bundle .*--output client\/dist\/whatssound-client\.js client\/mod\.ts$/,
  );
  // Built into a folder of its own below client/dist (so Node finds node_modules above it).
  await Deno.mkdir(`${root}/client/dist`, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${root}/client/dist`, prefix: "test-" });
  try {
    const args = buildScript.split(" ").slice(1).map((arg) =>
      arg === "client/dist/whatssound-client.js" ? `${dir}/whatssound-client.js` : arg
    );
    const build = await new Deno.Command(`${root}/node_modules/.bin/deno`, { args, cwd: root })
      .output();
    assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));
    const bundle = await Deno.readTextFile(`${dir}/whatssound-client.js`);
    assert.ok(
      !/phx_join|class RealtimeClient|class GoTrueClient/.test(bundle),
      "supabase-js is not bundled",
    );
    assert.match(bundle, /export \{[^}]*createRoomsClient/);

    await Deno.writeTextFile(
      `${dir}/run.mjs`,
      `import { createClient } from "@supabase/supabase-js";
       import { createRoomsClient } from "./whatssound-client.js";
       const [url, anonKey, token, roomId] = process.argv.slice(2);
       const supabase = createClient(url, anonKey, { accessToken: async () => token });
       const rooms = createRoomsClient({ supabase });
       const room = await rooms.join(roomId);
       const arrived = new Promise((resolve) =>
         room.chat.on("messages", (added) => added.some((m) => m.body === "from node") && resolve()));
       const id = await room.chat.send("from node").done;
       await arrived;
       console.log(JSON.stringify({ id, state: room.state, count: room.presence.members.count }));
       await room.leave();
       await supabase.removeAllChannels();
       process.exit(0);`,
    );
    const node = await new Deno.Command("node", {
      args: [
        // Node 20 has WebSocket behind a flag (22 has it built in); supabase-js needs it.
        ...(Number(/^v(\d+)/.exec(await nodeVersion())![1]) < 22
          ? ["--experimental-websocket"]
          : []),
        `${dir}/run.mjs`,
        Deno.env.get("SUPABASE_URL")!,
        Deno.env.get("SUPABASE_ANON_KEY")!,
        listener.token,
        room,
      ],
      cwd: dir,
    }).output();
    const out = new TextDecoder().decode(node.stdout);
    assert.equal(node.code, 0, new TextDecoder().decode(node.stderr) + out);
    const result = JSON.parse(out.trim().split("\n").at(-1)!);
    assert.equal(typeof result.id, "number");
    assert.equal(result.state, "live");
    assert.equal(result.count, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function nodeVersion(): Promise<string> {
  const { stdout } = await new Deno.Command("node", { args: ["--version"] }).output();
  return new TextDecoder().decode(stdout).trim();
}
