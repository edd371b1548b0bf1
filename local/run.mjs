// Entry point of `npm start`, `npm stop` and `npm test` on a fresh clone: nothing may be needed
// before them, so this plain-Node script installs the pinned npm packages (Deno and the Supabase
// CLI among them) when they are missing or stale, then hands over to the Deno tooling in local/.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const commands = {
  start: () => ["local/stack.ts", "start"],
  stop: () => ["local/stack.ts", "stop"],
  reset: () => ["local/stack.ts", "reset"],
  // `npm test -- <files>` runs only those test files (.sql and .ts), on the same fresh stack.
  test: (...files) => ["local/run-tests.ts", ...files],
  // `npm run bench -- <name>` runs bench/<name>.ts.
  bench: (name, ...args) => [`bench/${name}.ts`, ...args],
  // `npm run chaos`: crash, restart and malformed-input scenarios at full size, with figures.
  chaos: (...args) => ["chaos/run.ts", ...args],
};
const [command, ...rest] = process.argv.slice(2);
if (!(command in commands) || (command === "bench" && !rest[0])) {
  console.error("usage: node local/run.mjs start|stop|reset|test|chaos|bench <name>");
  process.exit(2);
}

// The stamp holds the hash of the lockfile node_modules was installed from.
const lockfile = join(root, "package-lock.json");
const stamp = join(root, "node_modules", ".whatssound-lock-hash");
const lockHash = createHash("sha256").update(readFileSync(lockfile)).digest("hex");
const installed = existsSync(stamp) && readFileSync(stamp, "utf8") === lockHash;
if (!installed) {
  console.log("Installing npm packages (npm ci)...");
  const ci = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit" });
  if (ci.status !== 0) process.exit(ci.status ?? 1);
  writeFileSync(stamp, lockHash);
}

// Signals are passed on so the Deno child can stop what it started; its exit code is ours.
const deno = join(root, "node_modules", ".bin", "deno");
const args = ["run", "--allow-all", ...commands[command](...rest)];
const child = spawn(deno, args, { cwd: root, stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
