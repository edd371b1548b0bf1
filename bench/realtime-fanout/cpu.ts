// CPU of the parts of bench/realtime-fanout.ts, from /proc (Linux): this process (the gateway
// and the Realtime stand-in it hosts) and its main thread, given child processes (subscriber
// clients, the publisher), and the stack's own Postgres cluster by role (the walsender that
// streams to the stand-in, the WAL writer, client backends, the rest). Only the cluster's
// processes count, not other Postgres servers on a shared machine.
import { type PostgresRole, postgresRole } from "../ingest/cpu.ts";

const ticksPerSecond = 100; // USER_HZ (getconf CLK_TCK)

function read(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined; // gone meanwhile
  }
}

/** [utime + stime in ticks, parent pid] from /proc/<pid>/stat. */
function stat(path: string): [number, number] | undefined {
  const line = read(path);
  if (!line) return;
  const fields = line.slice(line.lastIndexOf(")") + 2).split(" ");
  return [Number(fields[11]) + Number(fields[12]), Number(fields[1])];
}

export interface CpuSnapshot {
  at: number;
  machineBusy: number;
  machineAll: number;
  self: number;
  mainThread: number;
  children: Record<string, number>;
  /** pid -> [role, ticks] of the cluster's processes. */
  postgres: Map<string, [PostgresRole, number]>;
}

/** `children`: name -> pid; `dataDir`: the cluster, whose postmaster.pid names its server. */
export function cpuSnapshot(children: Record<string, number[]>, dataDir: string): CpuSnapshot {
  const [, ...cpu] = read("/proc/stat")!.split("\n")[0].trim().split(/\s+/).map(Number);
  const machineAll = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
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
    self: stat("/proc/self/stat")![0],
    mainThread: stat(`/proc/${Deno.pid}/task/${Deno.pid}/stat`)![0],
    children: Object.fromEntries(
      Object.entries(children).map((
        [name, pids],
      ) => [name, pids.reduce((sum, pid) => sum + (stat(`/proc/${pid}/stat`)?.[0] ?? 0), 0)]),
    ),
    postgres,
  };
}

/** % of one core each part used between two snapshots, and the machine's busy share. */
export function cpuUsed(a: CpuSnapshot, b: CpuSnapshot) {
  const wallS = (b.at - a.at) / 1000;
  const pct = (ticks: number) => Math.round((ticks / ticksPerSecond / wallS) * 1000) / 10;
  const postgres: Record<PostgresRole | "all", number> = {
    all: 0,
    walsender: 0,
    walwriter: 0,
    backends: 0,
    other: 0,
  };
  for (const [pid, [role, ticks]] of b.postgres) {
    const grown = ticks - (a.postgres.get(pid)?.[1] ?? 0);
    postgres[role] += grown;
    postgres.all += grown;
  }
  return {
    wall_s: Math.round(wallS * 1000) / 1000,
    machine_busy_pct_of_all_cpus: Math.round(
      ((b.machineBusy - a.machineBusy) / Math.max(1, b.machineAll - a.machineAll)) * 1000,
    ) / 10,
    pct_of_one_core: {
      gateway_process: pct(b.self - a.self),
      gateway_main_thread: pct(b.mainThread - a.mainThread),
      ...Object.fromEntries(
        Object.entries(b.children).map(([name, ticks]) => [name, pct(ticks - a.children[name])]),
      ),
      ...Object.fromEntries(
        Object.entries(postgres).map(([role, ticks]) => [`postgres_${role}`, pct(ticks)]),
      ),
    },
  };
}
