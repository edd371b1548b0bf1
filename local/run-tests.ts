// `npm test`: a fresh, throw-away stack (its own cluster and gateway on ports of their own, so a
// running `npm start` and the developer's data are never touched), then every runner: pgTAP with
// pg_prove, the Deno tests (functions, tooling, client, demo, chaos, end to end through the
// gateway), and last the disruptive tests, which stop the database. Then a look at the
// database's log: a broadcast that realtime.send dropped fails the run. Ends with
// `N passed, M failed`.
// `npm test -- <files>` runs only the given files (pgTAP's helpers file always runs first).
import { run } from "./postgres.ts";
import { root } from "./stack.ts";
import { withThrowawayStack } from "./throwaway.ts";

const apiPort = Number(Deno.env.get("TEST_API_PORT") ?? 54331);
const dbPort = Number(Deno.env.get("TEST_DB_PORT") ?? 54332);

// Tests that disrupt the shared stack (they stop Postgres) are named `*.disruptive.test.ts`: they
// run after all the others, each in a `deno test` of its own, so that no other test meets their
// outage. A naming convention rather than a list here, so that a new one cannot be forgotten.
const isDisruptive = (file: string) => file.endsWith(".disruptive.test.ts");

interface Tally {
  passed: number;
  failed: number;
}

const helpersTest = "supabase/tests/database/00-helpers.test.sql";

async function pgProve(dbUrl: string, files: string[] | undefined): Promise<Tally> {
  const chosen = files && [helpersTest, ...files.filter((f) => f !== helpersTest)];
  const result = await run("pg_prove", [
    "-d",
    dbUrl,
    "-v",
    ...(chosen
      ? chosen.map((f) => `${root}/${f}`)
      : ["--ext", ".sql", "-r", `${root}/supabase/tests`]),
  ]);
  console.log(result.stdout + result.stderr);
  const passed = result.stdout.match(/^ok \d+/gm)?.length ?? 0;
  const failed = result.stdout.match(/^not ok \d+/gm)?.length ?? 0;
  // A file that dies before its assertions (syntax error, plan mismatch) still fails the run.
  return { passed, failed: result.code !== 0 && failed === 0 ? 1 : failed };
}

async function denoTest(args: string[], env: Record<string, string>): Promise<Tally> {
  const child = new Deno.Command(`${root}/node_modules/.bin/deno`, {
    args: ["test", "--allow-all", ...args],
    cwd: root,
    env: { ...env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    const text = decoder.decode(chunk, { stream: true });
    output += text;
    await Deno.stdout.write(chunk);
  }
  const { code } = await child.status;
  const summary = /(\d+) passed.*?\| (\d+) failed/.exec(output);
  const passed = Number(summary?.[1] ?? 0);
  const failed = Number(summary?.[2] ?? 0);
  return { passed, failed: code !== 0 && failed === 0 ? 1 : failed };
}

/** Every `*.test.ts` below `dirs` (the disruptive ones too; main() keeps them apart, because
 * `deno test --ignore` does not apply to folders named on the command line). */
async function testFiles(dirs: string[]): Promise<string[]> {
  const files: string[] = [];
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(`${root}/${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory && entry.name !== "fixtures") await walk(path);
      else if (entry.name.endsWith(".test.ts")) files.push(path);
    }
  }
  for (const dir of dirs) await walk(dir);
  return files.sort();
}

/**
 * The lines of the database's log where realtime.send swallowed an error (it only warns, and the
 * broadcast is lost), except those of a session that named itself `expects-broadcast-warning`
 * (a test provoking the warning on purpose). The log_line_prefix is "%m [%p] app=%a "
 * (local/postgres.ts).
 */
export async function unexpectedBroadcastWarnings(logFile: string): Promise<string[]> {
  const log = await Deno.readTextFile(logFile);
  return log.split("\n").filter((line) =>
    line.includes("WarnSendingBroadcastMessage") &&
    !/ \[\d+\] app=expects-broadcast-warning /.test(line)
  );
}

async function checkDatabaseLog(logFile: string): Promise<Tally> {
  let lines: string[];
  try {
    lines = await unexpectedBroadcastWarnings(logFile);
  } catch (error) {
    console.error(`Could not read the database log ${logFile}: ${error}`);
    return { passed: 0, failed: 1 };
  }
  if (lines.length === 0) {
    console.log("Database log: no broadcast was dropped (WarnSendingBroadcastMessage).");
    return { passed: 1, failed: 0 };
  }
  console.log(
    `Database log: realtime.send dropped ${lines.length} broadcast(s) (WarnSendingBroadcastMessage):`,
  );
  for (const line of lines) console.log(`  ${line}`);
  return { passed: 0, failed: 1 };
}

async function main(only: string[]): Promise<number> {
  const tallies: Tally[] = [];
  const chosen = (suffix: string) =>
    only.length === 0 ? undefined : only.filter((f) => f.endsWith(suffix));
  try {
    await withThrowawayStack({ api: apiPort, db: dbPort }, async ({ cluster, dbUrl, env }) => {
      const sqlFiles = chosen(".sql");
      const tsFiles = chosen(".ts");
      if (sqlFiles?.length !== 0) tallies.push(await pgProve(dbUrl, sqlFiles));
      const denoFiles = tsFiles ??
        await testFiles(["supabase/functions", "local", "client", "demo", "chaos"]);
      const others = denoFiles.filter((f) => !isDisruptive(f));
      if (others.length > 0) tallies.push(await denoTest(others, env));
      for (const file of denoFiles.filter(isDisruptive)) tallies.push(await denoTest([file], env));
      // Read now: the cluster's folder goes with the stack.
      tallies.push(await checkDatabaseLog(cluster.logFile));
    });
  } catch (error) {
    console.error(error);
    tallies.push({ passed: 0, failed: 1 });
  }
  const passed = tallies.reduce((n, t) => n + t.passed, 0);
  const failed = tallies.reduce((n, t) => n + t.failed, 0);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
