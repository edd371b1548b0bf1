// A stack that exists for one run (tests, benchmarks): its own cluster in a temporary folder and
// its own ports, so the data of `npm start` is never touched. Removed afterwards.
import { closeDb } from "../supabase/functions/_shared/db.ts";
import { anonKey, jwtSecret, serviceRoleKey } from "./keys.ts";
import { type Cluster, cluster, isRunning, stopCluster } from "./postgres.ts";
import { prepareDatabase, setFunctionEnv, startGateway } from "./stack.ts";

// Durability is not what these runs test; a faster cluster is welcome. (Benchmarks that compare
// with durable inserts say so and run pgbench against the same settings.) Commits stay
// synchronous, as on hosted Supabase: logical decoding (the Realtime stand-in) only sees WAL that
// is flushed, and asynchronous commits would hold every broadcast back ~20 ms for the WAL writer;
// with fsync off a synchronous commit costs a write, not a disk flush.
export const throwawaySettings = {
  fsync: "off",
  full_page_writes: "off",
};

/**
 * The cluster of the throw-away stack this process was started for (its `env`: a test under
 * `npm test`), for tests that stop and start its database.
 */
export function throwawayClusterOfEnv(): Cluster {
  return cluster(
    Deno.env.get("TEST_CLUSTER_DIR")!,
    Number(Deno.env.get("TEST_DB_PORT")),
    throwawaySettings,
  );
}

export interface ThrowawayStack {
  cluster: Cluster;
  apiUrl: string;
  dbUrl: string;
  /** Everything a child process (deno test, a benchmark client) needs to reach this stack. */
  env: Record<string, string>;
}

/**
 * Runs `run` against a stack of its own and removes the stack afterwards — also when the run is
 * interrupted (SIGINT, SIGTERM): the gateway and cluster it started are stopped and its folder
 * removed before the process exits, so a killed test or benchmark leaves nothing running.
 */
export async function withThrowawayStack<T>(
  ports: { api: number; db: number },
  run: (stack: ThrowawayStack) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "whatssound-" });
  const c = cluster(dir, ports.db, throwawaySettings);
  const apiUrl = `http://127.0.0.1:${ports.api}`;
  const logFile = `${dir}/gateway.log`;
  let server: Awaited<ReturnType<typeof startGateway>> | undefined;
  let removing: Promise<void> | undefined;
  const remove = () =>
    removing ??= (async () => {
      await server?.shutdown();
      await closeDb();
      if (await isRunning(c).catch(() => false)) await stopCluster(c);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    })();
  const signals = { SIGINT: 130, SIGTERM: 143 } as const;
  const onSignal = Object.fromEntries(
    Object.entries(signals).map(([signal, code]) => [signal, () => {
      console.error(`\n${signal}: stopping the throw-away stack...`);
      remove().finally(() => Deno.exit(code));
    }]),
  );
  for (const [signal, listener] of Object.entries(onSignal)) {
    Deno.addSignalListener(signal as Deno.Signal, listener);
  }
  try {
    await prepareDatabase(c);
    setFunctionEnv(apiUrl, c.url);
    server = await startGateway(
      c.url,
      ports.api,
      (line) => Deno.writeTextFileSync(logFile, line + "\n", { append: true }),
    );
    return await run({
      cluster: c,
      apiUrl,
      dbUrl: c.url,
      env: {
        SUPABASE_URL: apiUrl,
        SUPABASE_ANON_KEY: anonKey,
        SUPABASE_SERVICE_ROLE_KEY: serviceRoleKey,
        SUPABASE_DB_URL: c.url,
        JWT_SECRET: jwtSecret,
        TEST_CLUSTER_DIR: dir,
        TEST_DB_PORT: String(ports.db),
      },
    });
  } finally {
    for (const [signal, listener] of Object.entries(onSignal)) {
      Deno.removeSignalListener(signal as Deno.Signal, listener);
    }
    await remove();
  }
}
