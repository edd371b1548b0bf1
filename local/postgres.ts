// PostgreSQL 15 from the system packages, in a cluster of our own: the Docker-free stand-in
// for the database `supabase start` runs. Local only.
import { existsSync } from "node:fs";

export const pgBin = "/usr/lib/postgresql/15/bin";
export const isRoot = Deno.uid() === 0;

interface SystemPackage {
  name: string;
  /** A file the package installs: its absence means the package is missing. */
  file: string;
}

// The server, pg_cron (Supabase Cron), pgTAP, and pg_prove (which `supabase test db` would run
// in a container).
const databasePackages: SystemPackage[] = [
  { name: "postgresql-15", file: `${pgBin}/initdb` },
  { name: "postgresql-15-cron", file: "/usr/share/postgresql/15/extension/pg_cron.control" },
  { name: "postgresql-15-pgtap", file: "/usr/share/postgresql/15/extension/pgtap.control" },
  { name: "libtap-parser-sourcehandler-pgtap-perl", file: "/usr/bin/pg_prove" },
];

/** The browser the demo page's tests drive with playwright-core (a browser download does not
 * work everywhere this runs; Debian's package does). Installed by those tests only, so that
 * `npm start` does not pull in a browser. */
export const browserPackages: SystemPackage[] = [
  { name: "chromium", file: "/usr/bin/chromium" },
];

export interface Cluster {
  /** Folder owned by the server's user, holding `data/` and `postgres.log`. */
  dir: string;
  dataDir: string;
  logFile: string;
  port: number;
  /** As `postgres`, which is no superuser, as on hosted Supabase (what functions and tests use). */
  url: string;
  /** As the superuser `supabase_admin` (the platform: bootstrap, Realtime). */
  adminUrl: string;
  /** Extra server settings (`-c name=value`). */
  settings: Record<string, string>;
}

export function cluster(dir: string, port: number, settings: Record<string, string> = {}): Cluster {
  const url = `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`;
  return {
    dir,
    dataDir: `${dir}/data`,
    logFile: `${dir}/postgres.log`,
    port,
    url,
    adminUrl: asRole(url, "supabase_admin"),
    settings,
  };
}

/** The same database as another of the platform's login roles (every local password is
 * `postgres`). */
export function asRole(url: string, role: string): string {
  const other = new URL(url);
  other.username = role;
  other.password = "postgres";
  return other.href;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; as root, server-side commands run as the `postgres` OS user. */
export async function run(
  command: string,
  args: string[],
  { asServerUser = false, env = {} }: { asServerUser?: boolean; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const [cmd, argv] = asServerUser && isRoot
    ? ["runuser", ["-u", "postgres", "--", command, ...args]]
    : [command, args];
  const output = await new Deno.Command(cmd, { args: argv, env, stdin: "null" }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

async function mustRun(command: string, args: string[], options?: Parameters<typeof run>[2]) {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed:\n${result.stdout}${result.stderr}`);
  }
  return result;
}

/** Installs the missing system packages (by default the database's) with apt-get as root;
 * otherwise says what to install. */
export async function ensurePackages(packages = databasePackages): Promise<void> {
  const missing = packages.filter((p) => !existsSync(p.file)).map((p) => p.name);
  if (missing.length === 0) return;
  if (!isRoot) {
    throw new Error(
      `Missing system packages. Install them with:\n  sudo apt-get install -y ${missing.join(" ")}`,
    );
  }
  console.log(`Installing ${missing.join(", ")} with apt-get...`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const install = ["install", "-y", "-q", "--no-install-recommends", ...missing];
  if ((await run("apt-get", install, { env })).code !== 0) {
    await mustRun("apt-get", ["update", "-q"], { env });
    await mustRun("apt-get", install, { env });
  }
}

/** The `postgres` OS user must own the cluster's folder when we are root. */
async function giveToServerUser(path: string): Promise<void> {
  if (isRoot) await mustRun("chown", ["-R", "postgres:postgres", path]);
}

/** Creates the cluster unless it exists: its bootstrap superuser is `supabase_admin`, as on
 * hosted (password `postgres` over TCP); the bootstrap SQL makes `postgres` and the other roles. */
export async function ensureCluster(c: Cluster): Promise<boolean> {
  if (existsSync(`${c.dataDir}/PG_VERSION`)) return false;
  await Deno.mkdir(c.dir, { recursive: true });
  const pwfile = `${c.dir}/.pwfile`;
  await Deno.writeTextFile(pwfile, "postgres\n");
  await giveToServerUser(c.dir);
  try {
    await mustRun(`${pgBin}/initdb`, [
      "-D",
      c.dataDir,
      "-U",
      "supabase_admin",
      `--pwfile=${pwfile}`,
      "--auth-host=scram-sha-256",
      "--auth-local=trust",
      "--encoding=UTF8",
      "--locale=C.UTF-8",
    ], { asServerUser: true });
  } finally {
    await Deno.remove(pwfile);
  }
  return true;
}

export async function isRunning(c: Cluster): Promise<boolean> {
  return (await run(`${pgBin}/pg_ctl`, ["status", "-D", c.dataDir], { asServerUser: true }))
    .code === 0;
}

export async function startCluster(c: Cluster): Promise<void> {
  const settings: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: c.dataDir,
    timezone: "UTC",
    log_timezone: "UTC",
    // The application name in every log line lets the test run tell a warning a test provokes
    // on purpose (it names itself) from one nobody expected.
    log_line_prefix: "%m [%p] app=%a ",
    // pg_cron as hosted Supabase runs it; jobs run in background workers, not over a login.
    shared_preload_libraries: "pg_cron",
    "cron.database_name": "postgres",
    "cron.use_background_workers": "on",
    max_worker_processes: "16",
    // Broadcasts leave through logical replication of realtime.messages, as on hosted Supabase.
    wal_level: "logical",
    ...c.settings,
  };
  const options = [`-p ${c.port}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}='${v}'`)];
  await mustRun(`${pgBin}/pg_ctl`, [
    "start",
    "-D",
    c.dataDir,
    "-l",
    c.logFile,
    "-w",
    "-t",
    "60",
    "-o",
    options.join(" "),
  ], { asServerUser: true });
}

export async function stopCluster(c: Cluster): Promise<void> {
  await mustRun(`${pgBin}/pg_ctl`, ["stop", "-D", c.dataDir, "-m", "fast", "-w"], {
    asServerUser: true,
  });
}

/** Runs a SQL file with psql as supabase_admin, stopping at the first error. */
export async function psqlFile(c: Cluster, file: string): Promise<void> {
  await mustRun(`${pgBin}/psql`, [c.adminUrl, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", file], {
    env: { PGOPTIONS: "-c client_min_messages=warning" },
  });
}

/** Fails with a message naming the port when something already listens on it. */
export function assertPortFree(port: number, what: string): void {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    throw new Error(
      `Port ${port} (${what}) is already in use. If a WhatsSound stack is running, \`npm stop\` stops it.`,
    );
  }
}
