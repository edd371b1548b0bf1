// Where the CPU goes during a benchmark, from /proc (Linux): the machine; this process (the
// gateways, the functions and the Realtime stand-in it hosts), its main thread and its Web Worker
// threads (the load client, the stand-in's replication worker); child processes the benchmark
// names (client processes, a publisher); and the stack's own Postgres cluster by role (client
// backends; the walsender that decodes WAL for the Realtime stand-in; the WAL writer; the rest:
// postmaster, autovacuum, checkpointer, ...). Only the cluster's processes count, not other
// Postgres servers on a shared machine. Two reports of the same samples: CPU per unit of work
// (the load benchmarks) and % of one core per part (realtime-fanout).
const ticksPerSecond = 100; // USER_HZ: 100 on every Linux build that matters (getconf CLK_TCK)

export type PostgresRole = "backends" | "walsender" | "walwriter" | "other";

function read(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined; // gone meanwhile
  }
}

/** [utime + stime in ticks, parent pid] from a /proc/.../stat file. */
function stat(path: string): [number, number] | undefined {
  const line = read(path);
  if (!line) return;
  const fields = line.slice(line.lastIndexOf(")") + 2).split(" ");
  return [Number(fields[11]) + Number(fields[12]), Number(fields[1])];
}

/** A Postgres backend's role, from the title Postgres gives it (its cmdline). */
function postgresRole(pid: string): PostgresRole {
  const title = read(`/proc/${pid}/cmdline`)?.replaceAll("\0", " ") ?? "";
  if (title.includes("walsender")) return "walsender";
  if (title.includes("walwriter")) return "walwriter";
  return /\d+\.\d+\.\d+\.\d+\(\d+\)/.test(title) || title.includes("[local]")
    ? "backends"
    : "other";
}

export interface CpuSnapshot {
  at: number;
  machineBusy: number;
  machineAll: number;
  process: number;
  mainThread: number;
  /** thread id -> ticks of this process's Web Worker threads. */
  workers: Map<string, number>;
  /** name -> ticks of the child processes named. */
  children: Record<string, number>;
  /** pid -> [role, ticks] of the cluster's processes. */
  postgres: Map<string, [PostgresRole, number]>;
}

/**
 * The CPU used so far. `dataDir`: the stack's cluster, whose postmaster.pid names its server;
 * `children`: name -> the pids of child processes to count under that name.
 */
export function cpuSnapshot(dataDir: string, children: Record<string, number[]> = {}): CpuSnapshot {
  const [, ...cpu] = read("/proc/stat")!.split("\n")[0].trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal
  const machineAll = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  const workers = new Map<string, number>();
  for (const task of Deno.readDirSync(`/proc/${Deno.pid}/task`)) {
    if (read(`/proc/${Deno.pid}/task/${task.name}/comm`)?.startsWith("worker-")) {
      const ticks = stat(`/proc/${Deno.pid}/task/${task.name}/stat`)?.[0];
      if (ticks !== undefined) workers.set(task.name, ticks);
    }
  }
  const postmaster = Number(read(`${dataDir}/postmaster.pid`)?.split("\n")[0]);
  const postgres = new Map<string, [PostgresRole, number]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const s = stat(`/proc/${entry.name}/stat`);
    if (!s) continue;
    if (Number(entry.name) === postmaster) postgres.set(entry.name, ["other", s[0]]);
    else if (s[1] === postmaster) postgres.set(entry.name, [postgresRole(entry.name), s[0]]);
  }
  return {
    at: performance.now(),
    machineBusy: machineAll - cpu[3] - cpu[4],
    machineAll,
    process: stat("/proc/self/stat")![0],
    mainThread: stat(`/proc/${Deno.pid}/task/${Deno.pid}/stat`)![0],
    workers,
    children: Object.fromEntries(
      Object.entries(children).map((
        [name, pids],
      ) => [name, pids.reduce((sum, pid) => sum + (stat(`/proc/${pid}/stat`)?.[0] ?? 0), 0)]),
    ),
    postgres,
  };
}

/** The ticks each part used between two snapshots. Processes or threads that ended in between
 * are missing from theirs (and from the machine's busy time only in the rest). */
function ticksBetween(a: CpuSnapshot, b: CpuSnapshot) {
  const postgres: Record<PostgresRole | "all", number> = {
    all: 0,
    backends: 0,
    walsender: 0,
    walwriter: 0,
    other: 0,
  };
  for (const [pid, [role, ticks]] of b.postgres) {
    const grown = ticks - (a.postgres.get(pid)?.[1] ?? 0);
    postgres[role] += grown;
    postgres.all += grown;
  }
  return {
    wallS: (b.at - a.at) / 1000,
    machineBusy: b.machineBusy - a.machineBusy,
    machineAll: Math.max(1, b.machineAll - a.machineAll),
    process: b.process - a.process,
    mainThread: b.mainThread - a.mainThread,
    workers: [...b.workers].reduce((sum, [k, v]) => sum + v - (a.workers.get(k) ?? 0), 0),
    children: Object.fromEntries(
      Object.entries(b.children).map(([name, ticks]) => [name, ticks - a.children[name]]),
    ),
    postgres,
  };
}

/**
 * CPU used between two snapshots: seconds per component, the machine's busy share, and CPU
 * microseconds per `units` (e.g. acknowledged requests).
 */
export function cpuPerUnit(a: CpuSnapshot, b: CpuSnapshot, units: number) {
  const t = ticksBetween(a, b);
  const seconds = {
    gateway_main_thread: t.mainThread / ticksPerSecond,
    load_client_worker: t.workers / ticksPerSecond,
    deno_other_threads: Math.max(0, t.process - t.mainThread - t.workers) / ticksPerSecond,
    postgres: t.postgres.all / ticksPerSecond,
    rest_of_machine: Math.max(0, t.machineBusy - t.process - t.postgres.all) / ticksPerSecond,
  };
  const perUnit = (s: number) => units ? Math.round((s * 1e6) / units) : null;
  const { all: _, ...byRole } = t.postgres;
  return {
    wall_s: Math.round(t.wallS * 1000) / 1000,
    machine_busy_pct: Math.round((t.machineBusy / t.machineAll) * 1000) / 10,
    cpu_s: Object.fromEntries(
      Object.entries(seconds).map(([k, s]) => [k, Math.round(s * 100) / 100]),
    ),
    cpu_us_per_unit: Object.fromEntries(
      Object.entries(seconds).map(([k, s]) => [k, perUnit(s)]),
    ),
    postgres_us_per_unit_by_role: Object.fromEntries(
      Object.entries(byRole).map(([role, ticks]) => [role, perUnit(ticks / ticksPerSecond)]),
    ) as Record<PostgresRole, number | null>,
  };
}

/** One line: "busy 97% · gateway 480 µs, postgres 610 µs, ... per request". */
export function cpuLine(used: ReturnType<typeof cpuPerUnit>, unit = "request"): string {
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

/** % of one core each part used between two snapshots, and the machine's busy share. */
export function cpuShareOfOneCore(a: CpuSnapshot, b: CpuSnapshot) {
  const t = ticksBetween(a, b);
  const pct = (ticks: number) => Math.round((ticks / ticksPerSecond / t.wallS) * 1000) / 10;
  return {
    wall_s: Math.round(t.wallS * 1000) / 1000,
    machine_busy_pct_of_all_cpus: Math.round((t.machineBusy / t.machineAll) * 1000) / 10,
    pct_of_one_core: {
      gateway_process: pct(t.process),
      gateway_main_thread: pct(t.mainThread),
      ...Object.fromEntries(Object.entries(t.children).map(([name, ticks]) => [name, pct(ticks)])),
      ...Object.fromEntries(
        Object.entries(t.postgres).map(([role, ticks]) => [`postgres_${role}`, pct(ticks)]),
      ),
    },
  };
}
