// `npm test`: a fresh, throw-away stack (its own cluster and gateway on ports of their own, so a
// running `npm start` and the developer's data are never touched), then every runner: pgTAP with
// pg_prove, the Deno tests (functions, tooling, end to end through the gateway), and last the
// database-outage test, which stops the database. Ends with `N passed, M failed`.
import { closeDb } from "../supabase/functions/_shared/db.ts";
import { anonKey, jwtSecret, serviceRoleKey } from "./keys.ts";
import { cluster, isRunning, run, stopCluster } from "./postgres.ts";
import { prepareDatabase, root, setFunctionEnv, startGateway } from "./stack.ts";

const apiPort = Number(Deno.env.get("TEST_API_PORT") ?? 54331);
const dbPort = Number(Deno.env.get("TEST_DB_PORT") ?? 54332);
const outageTest = "local/tests/db-outage.test.ts";

interface Tally {
  passed: number;
  failed: number;
}

async function pgProve(dbUrl: string): Promise<Tally> {
  const result = await run("pg_prove", [
    "-d",
    dbUrl,
    "-v",
    "--ext",
    ".sql",
    "-r",
    `${root}/supabase/tests`,
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

async function main(): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "whatssound-test-" });
  // Durability is not under test here; a faster throw-away cluster is.
  const c = cluster(dir, dbPort, {
    fsync: "off",
    synchronous_commit: "off",
    full_page_writes: "off",
  });
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const logFile = `${dir}/gateway.log`;
  let server: Deno.HttpServer | undefined;
  const tallies: Tally[] = [];
  try {
    await prepareDatabase(c);
    setFunctionEnv(apiUrl, c.url);
    server = await startGateway(
      apiPort,
      (line) => Deno.writeTextFileSync(logFile, line + "\n", { append: true }),
    );
    const env = {
      SUPABASE_URL: apiUrl,
      SUPABASE_ANON_KEY: anonKey,
      SUPABASE_SERVICE_ROLE_KEY: serviceRoleKey,
      SUPABASE_DB_URL: c.url,
      JWT_SECRET: jwtSecret,
      TEST_CLUSTER_DIR: dir,
      TEST_DB_PORT: String(dbPort),
    };
    tallies.push(await pgProve(c.url));
    tallies.push(await denoTest(["--ignore=" + outageTest, "supabase/functions", "local"], env));
    tallies.push(await denoTest([outageTest], env));
  } catch (error) {
    console.error(error);
    tallies.push({ passed: 0, failed: 1 });
  } finally {
    await server?.shutdown();
    await closeDb();
    if (await isRunning(c).catch(() => false)) await stopCluster(c);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const passed = tallies.reduce((n, t) => n + t.passed, 0);
  const failed = tallies.reduce((n, t) => n + t.failed, 0);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
