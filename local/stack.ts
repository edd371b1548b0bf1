// `npm start` / `npm stop`: the Docker-free local Supabase stack (API.md §1). Postgres with the
// platform bootstrap, migrations through the real Supabase CLI, and the gateway serving the
// Edge Functions on :54321. Local only: nothing here is deployed.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import postgres from "npm:postgres@3.4.9";
import { closeDb } from "../supabase/functions/_shared/db.ts";
import { createDemoHandler, ensureClientBundle } from "../demo/serve.ts";
import { type AuthSettings, authSettings } from "./auth/config.ts";
import { AuthServer } from "./auth/server.ts";
import { createGateway, serveGateway } from "./gateway.ts";
import { maintainPartitions } from "./realtime/janitor.ts";
import { RealtimeServer } from "./realtime/server.ts";
import { anonKey, jwtSecret, serviceRoleKey } from "./keys.ts";
import {
  asRole,
  assertPortFree,
  type Cluster,
  cluster,
  ensureCluster,
  ensurePackages,
  isRoot,
  isRunning,
  pgBin,
  psqlFile,
  run,
  startCluster,
  stopCluster,
} from "./postgres.ts";

export const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const pidFile = `${root}/.local/stack.pid`;

/**
 * Where the development cluster lives. As root the server runs as the `postgres` OS user, who
 * may not be able to enter the clone's folder (CI clones below /root), so the data goes to a
 * folder of its own keyed by the clone's path; otherwise to the git-ignored `.local/`.
 */
function devClusterDir(): string {
  if (!isRoot) return `${root}/.local/postgres`;
  const key = createHash("sha256").update(root).digest("hex").slice(0, 12);
  return `/var/lib/postgresql/whatssound/${key}`;
}

/**
 * Brings a cluster to the state hosted Supabase would be in after `supabase db push`:
 * running, bootstrapped (local/platform-bootstrap.sql, as the superuser supabase_admin), with
 * the day's partitions of realtime.messages (Realtime makes them when it connects), every
 * migration and the seed — pushed as hosted pushes them: a login role that becomes `postgres`,
 * which is no superuser. Returns whether this call started the server.
 */
export async function prepareDatabase(c: Cluster): Promise<boolean> {
  await ensurePackages();
  if (await ensureCluster(c)) console.log(`Created a database cluster in ${c.dataDir}`);
  let started = false;
  if (!(await isRunning(c))) {
    assertPortFree(c.port, "Postgres");
    await startCluster(c);
    started = true;
  }
  await assertHostedRoles(c);
  await psqlFile(c, `${root}/local/platform-bootstrap.sql`);
  const admin = postgres(c.adminUrl, { max: 1, onnotice: () => {} });
  await maintainPartitions(admin).finally(() => admin.end());
  const push = await run(`${root}/node_modules/.bin/supabase`, [
    "db",
    "push",
    "--db-url",
    `${asRole(c.url, "cli_login_postgres")}?sslmode=disable`,
    "--include-seed",
    "--yes",
    "--workdir",
    root,
  ]);
  if (push.code !== 0) throw new Error(`supabase db push failed:\n${push.stdout}${push.stderr}`);
  console.log((push.stderr + push.stdout).trim());
  return started;
}

/** A cluster made before the local roles matched hosted's has `postgres` as its bootstrap
 * superuser, which cannot be undone in place: say how to start afresh. */
async function assertHostedRoles(c: Cluster): Promise<void> {
  const psql = (url: string, query: string) =>
    run(`${pgBin}/psql`, [url, "-X", "-A", "-t", "-c", query]);
  const admin = await psql(c.adminUrl, "select");
  if (admin.code === 0) return;
  // Over TCP a missing role looks like a wrong password; ask the old superuser instead.
  const bootstrapUser = await psql(c.url, "select rolname from pg_roles where oid = 10");
  if (bootstrapUser.stdout.trim() === "postgres") {
    throw new Error(
      "This local database was made before its roles matched hosted Supabase's (postgres is its " +
        "superuser). `npm run reset` deletes it; the next `npm start` makes it anew with the seed.",
    );
  }
  throw new Error(`Cannot connect to the local database as supabase_admin:\n${admin.stderr}`);
}

/** The environment a deployed function gets, pointing at this stack. */
export function setFunctionEnv(apiUrl: string, dbUrl: string): void {
  Deno.env.set("SUPABASE_URL", apiUrl);
  Deno.env.set("SUPABASE_ANON_KEY", anonKey);
  Deno.env.set("SUPABASE_SERVICE_ROLE_KEY", serviceRoleKey);
  Deno.env.set("SUPABASE_DB_URL", dbUrl);
  Deno.env.set("JWT_SECRET", jwtSecret);
}

/**
 * The gateway with the Realtime and Auth stand-ins and the demo page behind it, on `port` (0:
 * any free one); `auth` overrides the Auth settings config.toml and the environment give (tests
 * shorten the token lifetime with it). `shutdown` stops them all. `dbUrl` is the database as
 * `postgres`; the stand-ins connect as the platform's roles do: Realtime as supabase_admin,
 * Auth as supabase_auth_admin.
 */
export async function startGateway(
  dbUrl: string,
  port: number,
  log?: (line: string) => void,
  { auth: authOverrides }: { auth?: Partial<AuthSettings> } = {},
) {
  const configPath = `${root}/supabase/config.toml`;
  const auth = AuthServer.start(
    asRole(dbUrl, "supabase_auth_admin"),
    await authSettings(configPath, authOverrides),
  );
  const realtime = await RealtimeServer.start(asRole(dbUrl, "supabase_admin"));
  const handler = await createGateway({
    functionsDir: `${root}/supabase/functions`,
    configPath,
    realtime: (req) => realtime.handle(req),
    auth: (req) => auth.handle(req),
    demo: createDemoHandler(),
  });
  const server = serveGateway(handler, port, log);
  return {
    url: `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
    authSettings: auth.settings,
    async shutdown() {
      await realtime.close();
      await server.shutdown();
      await auth.close();
    },
  };
}

async function start(): Promise<void> {
  const apiPort = 54321;
  const c = cluster(devClusterDir(), 54322);
  assertPortFree(apiPort, "API gateway");
  const startedPostgres = await prepareDatabase(c);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  setFunctionEnv(apiUrl, c.url);
  const server = await startGateway(c.url, apiPort);
  // The demo page's bundle is made now, so that the first visit does not wait for it (and a
  // failed build shows here); it is made again whenever client/ changes.
  await ensureClientBundle().catch((error) => console.error(`warning: ${error.message}`));
  await Deno.mkdir(`${root}/.local`, { recursive: true });
  await Deno.writeTextFile(pidFile, String(Deno.pid));

  console.log(`
Started the WhatsSound local stack (Ctrl-C stops it).

       Demo page: ${apiUrl}/demo/ (sign in as a seeded user)
         API URL: ${apiUrl}
   Functions URL: ${apiUrl}/functions/v1
    Realtime URL: ws://127.0.0.1:${apiPort}/realtime/v1/websocket (local stand-in)
        Auth URL: ${apiUrl}/auth/v1 (local stand-in; access tokens last ${server.authSettings.accessTokenTtlS} s)
    Seeded users: host@ dj@ listener@whatssound.test, password whatssound-local
          DB URL: ${c.url}
  Database files: ${c.dataDir}
      JWT secret: ${jwtSecret}
        anon key: ${anonKey}
service_role key: ${serviceRoleKey}
`);

  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    console.log("Stopping...");
    await server.shutdown();
    await closeDb();
    if (startedPostgres) await stopCluster(c);
    await Deno.remove(pidFile).catch(() => {});
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", shutdown);
  Deno.addSignalListener("SIGTERM", shutdown);
}

/** Stops a stack left running: the `npm start` process, then its database if still up. */
async function stop(): Promise<void> {
  let stopped = false;
  if (existsSync(pidFile)) {
    const pid = Number(await Deno.readTextFile(pidFile));
    try {
      Deno.kill(pid, "SIGTERM");
      stopped = true;
      for (let i = 0; i < 150 && existsSync(pidFile); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
    } catch {
      // The process is gone already; its pid file is stale.
    }
    await Deno.remove(pidFile).catch(() => {});
  }
  const c = cluster(devClusterDir(), 54322);
  if (existsSync(`${c.dataDir}/PG_VERSION`) && await isRunning(c)) {
    await stopCluster(c);
    stopped = true;
  }
  console.log(stopped ? "Stopped the local stack." : "The local stack is not running.");
}

/** Stops the stack and deletes its database, so the next start creates it anew (and seeds it). */
async function reset(): Promise<void> {
  await stop();
  await Deno.remove(devClusterDir(), { recursive: true }).catch(() => {});
  console.log("Deleted the local database; `npm start` creates and seeds a new one.");
}

if (import.meta.main) {
  const command = Deno.args[0];
  try {
    if (command === "start") await start();
    else if (command === "stop") await stop();
    else if (command === "reset") await reset();
    else throw new Error("usage: stack.ts start|stop|reset");
  } catch (error) {
    console.error(`error: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
