// Where the CPU goes during a run, from /proc (Linux): this process's main thread (the gateways
// and the functions they run), its Web Worker threads (the load client, the Realtime stand-in's
// replication worker), its other threads (V8 GC, Tokio I/O), every `postgres` process by role
// (client backends; the walsender that decodes WAL for Realtime; the rest: WAL writer,
// autovacuum, checkpointer, ...), and the rest of the machine. Benchmarks only.
const ticksPerSecond = 100; // USER_HZ: 100 on every Linux build that matters (getconf CLK_TCK)

export type PostgresRole = "walsender" | "walwriter" | "backends" | "other";

/** A Postgres process's role, from the title Postgres gives it (its cmdline). */
export function postgresRole(pid: string): PostgresRole {
  const title = read(`/proc/${pid}/cmdline`)?.replaceAll("\0", " ") ?? "";
  if (title.includes("walsender")) return "walsender";
  if (title.includes("walwriter")) return "walwriter";
  return /\d+\.\d+\.\d+\.\d+\(\d+\)/.test(title) || title.includes("[local]")
    ? "backends"
    : "other";
}

/** utime + stime (ticks) from a /proc/.../stat line. */
function cpuTicks(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

function read(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined; // gone meanwhile
  }
}

export interface CpuSnapshot {
  at: number;
  machineBusy: number;
  machineAll: number;
  process: number;
  main: number;
  workers: Map<string, number>;
  /** pid -> [role, ticks] */
  postgres: Map<string, [PostgresRole, number]>;
}

export function cpuSnapshot(): CpuSnapshot {
  const [, ...cpu] = read("/proc/stat")!.split("\n")[0].trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal
  const machineAll = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  const machineBusy = machineAll - cpu[3] - cpu[4];
  const workers = new Map<string, number>();
  for (const task of Deno.readDirSync(`/proc/${Deno.pid}/task`)) {
    if (read(`/proc/${Deno.pid}/task/${task.name}/comm`)?.startsWith("worker-")) {
      const stat = read(`/proc/${Deno.pid}/task/${task.name}/stat`);
      if (stat) workers.set(task.name, cpuTicks(stat));
    }
  }
  const postgres = new Map<string, [PostgresRole, number]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = read(`/proc/${entry.name}/stat`);
    if (stat?.includes("(postgres)")) {
      postgres.set(entry.name, [postgresRole(entry.name), cpuTicks(stat)]);
    }
  }
  return {
    at: performance.now(),
    machineBusy,
    machineAll,
    process: cpuTicks(read("/proc/self/stat")!),
    main: cpuTicks(read(`/proc/${Deno.pid}/task/${Deno.pid}/stat`)!),
    workers,
    postgres,
  };
}

/**
 * CPU used between two snapshots: seconds per component, the machine's busy share, and CPU
 * microseconds per `units` (e.g. acknowledged requests). Processes or threads that ended in
 * between are missing from theirs and land in `rest`.
 */
export function cpuUsed(a: CpuSnapshot, b: CpuSnapshot, units: number) {
  const grown = (before: Map<string, number>, after: Map<string, number>) =>
    [...after].reduce((sum, [k, v]) => sum + v - (before.get(k) ?? 0), 0);
  const workers = grown(a.workers, b.workers);
  const postgresByRole: Record<PostgresRole, number> = {
    backends: 0,
    walsender: 0,
    walwriter: 0,
    other: 0,
  };
  for (const [pid, [role, ticks]] of b.postgres) {
    postgresByRole[role] += ticks - (a.postgres.get(pid)?.[1] ?? 0);
  }
  const postgres = Object.values(postgresByRole).reduce((x, y) => x + y, 0);
  const main = b.main - a.main;
  const process = b.process - a.process;
  const busy = b.machineBusy - a.machineBusy;
  const seconds = {
    gateway_main_thread: main / ticksPerSecond,
    load_client_worker: workers / ticksPerSecond,
    deno_other_threads: Math.max(0, process - main - workers) / ticksPerSecond,
    postgres: postgres / ticksPerSecond,
    rest_of_machine: Math.max(0, busy - process - postgres) / ticksPerSecond,
  };
  const perUnit = Object.fromEntries(
    Object.entries(seconds).map(([k, s]) => [k, units ? Math.round((s * 1e6) / units) : null]),
  );
  return {
    wall_s: Math.round(b.at - a.at) / 1000,
    machine_busy_pct: Math.round((busy / Math.max(1, b.machineAll - a.machineAll)) * 1000) / 10,
    cpu_s: Object.fromEntries(
      Object.entries(seconds).map(([k, s]) => [k, Math.round(s * 100) / 100]),
    ),
    cpu_us_per_unit: perUnit,
    postgres_us_per_unit_by_role: Object.fromEntries(
      Object.entries(postgresByRole).map((
        [role, ticks],
      ) => [role, units ? Math.round((ticks / ticksPerSecond * 1e6) / units) : null]),
    ) as Record<PostgresRole, number | null>,
  };
}

/** One line: "busy 97% · gateway 480 µs, postgres 610 µs, ... per request". */
export function cpuLine(used: ReturnType<typeof cpuUsed>, unit = "request"): string {
  const short: Record<string, string> = {
    gateway_main_thread: "gateway",
    load_client_worker: "client",
    deno_other_threads: "deno other",
    postgres: "postgres",
    rest_of_machine: "rest",
  };
  const roles = Object.entries(used.postgres_us_per_unit_by_role).map(([k, us]) => `${k} ${us}`);
  return `CPU busy ${used.machine_busy_pct}% · per ${unit}: ` +
    Object.entries(used.cpu_us_per_unit).map(([k, us]) =>
      `${short[k]} ${us} µs` + (k === "postgres" ? ` (${roles.join(", ")})` : "")
    ).join(", ");
}
