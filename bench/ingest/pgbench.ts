// pgbench for bench/ingest.ts: the database's side measured without HTTP, the functions or
// postgres.js. Scripts are written at run time into the throwaway cluster's folder.
import type { Cluster } from "../../local/postgres.ts";
import { cpuPerUnit, cpuSnapshot } from "../lib/cpu.ts";
import { round } from "../lib/results.ts";
import { pgbenchId } from "../lib/seed.ts";

const binary = ["/usr/lib/postgresql/15/bin/pgbench", "pgbench"].find((file) => {
  try {
    return Deno.statSync(file).isFile;
  } catch {
    return false;
  }
}) ?? "pgbench";

export interface PgbenchJob {
  /** The stack's cluster: pgbench connects to it, its script files go into its folder, and the
   * CPU of its processes is counted. */
  cluster: Cluster;
  /** The script's file name (without .sql) and its text. */
  name: string;
  script: string;
  clients: number;
  seconds: number;
  /** -M: `prepared` for the best case, `extended` for unnamed statements as the functions'. */
  protocol: "prepared" | "extended";
  /** pgbench variables (-D): text the script uses as :name, sent as a parameter's value. */
  variables?: Record<string, string>;
  /** A script run alongside on one more connection for the same time, e.g. the window flusher;
   * its calls are not counted, its CPU is. */
  alongside?: { name: string; script: string };
}

export interface PgbenchResult {
  command: string;
  calls_per_s: number;
  latency_average_ms: number | null;
  failed_transactions: number;
  /** The CPU used while it ran, per call; pgbench's own is in rest_of_machine. */
  cpu: ReturnType<typeof cpuPerUnit>;
}

function spawn(job: PgbenchJob, clients: number, file: string) {
  const args = [
    "-n",
    "-M",
    job.protocol,
    "-c",
    String(clients),
    "-j",
    String(Math.min(clients, navigator.hardwareConcurrency)),
    "-T",
    String(job.seconds),
    "-f",
    file,
  ];
  const variables = Object.entries(job.variables ?? {}).flatMap((
    [name, value],
  ) => ["-D", `${name}=${value}`]);
  const child = new Deno.Command(binary, {
    args: [...args, ...variables, job.cluster.url],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return { args, child };
}

async function outputOf(child: Deno.ChildProcess) {
  const output = await child.output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  return { code: output.code, text };
}

/** Runs the job's script on `clients` connections for `seconds`; calls/s and CPU per call. */
export async function runPgbench(job: PgbenchJob): Promise<PgbenchResult> {
  const file = `${job.cluster.dir}/${job.name}.sql`;
  await Deno.writeTextFile(file, job.script);
  const { args, child } = spawn(job, job.clients, file);
  let alongside: Deno.ChildProcess | undefined;
  if (job.alongside) {
    const alongsideFile = `${job.cluster.dir}/${job.alongside.name}.sql`;
    await Deno.writeTextFile(alongsideFile, job.alongside.script);
    alongside = spawn(job, 1, alongsideFile).child;
  }
  // The CPU of the middle of the run, its connections open (their backends are gone at the end).
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  await sleep(500);
  const before = cpuSnapshot(job.cluster.dataDir);
  await sleep(Math.max(0, job.seconds * 1000 - 800));
  const after = cpuSnapshot(job.cluster.dataDir);
  const [main, side] = await Promise.all([outputOf(child), alongside && outputOf(alongside)]);
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(main.text);
  if (main.code !== 0 || !tps) throw new Error(`pgbench failed:\n${main.text}`);
  if (side && side.code !== 0) {
    throw new Error(`pgbench (${job.alongside!.name}) failed:\n${side.text}`);
  }
  const latency = /latency average = ([\d.]+) ms/.exec(main.text);
  const failed = /number of failed transactions: (\d+)/.exec(main.text);
  return {
    command: `pgbench ${args.join(" ")} <db>` +
      (job.variables ? ` (-D ${Object.keys(job.variables).join(", ")})` : "") +
      (job.alongside ? ` (and ${job.alongside.name}.sql on 1 more connection)` : ""),
    calls_per_s: round(Number(tps[1])),
    latency_average_ms: latency ? Number(latency[1]) : null,
    failed_transactions: failed ? Number(failed[1]) : 0,
    cpu: cpuPerUnit(before, after, (Number(tps[1]) * (after.at - before.at)) / 1000),
  };
}

/** The user of a pgbench connection, id(0, :client_id + 1): each connection is its own user. */
export const connectionUser = pgbenchId(0, ":client_id + 1");

/** One chat message as chat-send's body has it, unique per call, as jsonb text. */
export const oneMessage = `('[{"client_id": "pgb-' || :client_id || '-' || :n || '", ` +
  `"body": "message ' || :n || ': what a track, who is this?"}]')`;

/** Rooms id(1, first .. first + count - 1), one drawn per call into :r. */
export const drawRoom = (first: number, count: number) =>
  `\\set r random(${first}, ${first + count - 1})\n\\set n random(1, 1000000000000)\n`;
