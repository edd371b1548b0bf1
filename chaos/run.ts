// `npm run chaos`: the chaos scenarios of issue 15 at full size (chaos/scenarios.ts), on a
// throw-away stack of their own (Postgres on 54422, the gateway on 54421, R2's gateway process
// on 54423), each bounded in time. Prints each scenario's figures and what broke, writes them to
// chaos/results/<name>.json (git-ignored), and exits non-zero when an invariant broke.
//   R1  50 senders, 100,000 messages over 8 rooms (one hot), resends and abandoned requests
//   R2  a gateway process killed with SIGKILL while chat it accepted waits for its flush
//   R4  property-based fuzzing of every endpoint (chaos/fuzz.ts), FUZZ_RUNS (1,000) runs each
//   R3  Postgres stopped for 10 s and started again while 20 senders keep sending (last: it
//       stops the database)
// `npm run chaos -- r1 r3` runs only those.
// For R1 only, the room chat rate limit (20/s per user and room) is raised, as bench/ingest.ts
// does: 50 senders as fast as they can would otherwise spend the run waiting out 429s, and
// what is measured is the send path; `npm test`'s R1 keeps the limit and meets its 429s.
import { existsSync } from "node:fs";
import postgres from "npm:postgres@3.4.9";
import { unexpectedBroadcastWarnings } from "../local/run-tests.ts";
import { withThrowawayStack } from "../local/throwaway.ts";
import {
  type ChaosStack,
  r1Duplicates,
  r2GatewayKill,
  r3DbRestart,
  type ScenarioResult,
} from "./scenarios.ts";

const ports = { api: 54421, db: 54422 };
const gatewayProcessPort = 54423;
const fuzzRuns = Number(Deno.env.get("FUZZ_RUNS") ?? 1000);

/** Runs one scenario, prints its figures and violations, writes chaos/results/<name>.json. */
async function scenario(
  name: string,
  title: string,
  run: () => Promise<ScenarioResult>,
): Promise<boolean> {
  console.log(`\n== ${title}`);
  const started = performance.now();
  let result: ScenarioResult;
  try {
    result = await run();
  } catch (error) {
    result = {
      figures: {},
      violations: [`the scenario failed: ${error instanceof Error ? error.stack : error}`],
    };
  }
  const durationS = Math.round((performance.now() - started) / 100) / 10;
  for (const [key, value] of Object.entries(result.figures)) {
    console.log(`  ${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`);
  }
  console.log(`  (${durationS} s)`);
  if (result.violations.length === 0) console.log("  invariants: all held");
  for (const violation of result.violations) console.log(`  VIOLATION ${violation}`);
  const dir = new URL("./results/", import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  const file = new URL(`${name}.json`, dir);
  await Deno.writeTextFile(
    file,
    JSON.stringify(
      { title, at: new Date().toISOString(), duration_s: durationS, ...result },
      null,
      2,
    ) +
      "\n",
  );
  console.log(`  written to ${file.pathname}`);
  return result.violations.length === 0;
}

/** Raises the room chat rate limit for `work` (see the header), then puts it back. */
async function withoutChatRateLimit<T>(dbUrl: string, work: () => Promise<T>): Promise<T> {
  const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });
  const [before] = await sql`
    select rate_per_second, rate_burst from private.channel_rules
    where namespace = 'room' and kind = 'chat'`;
  await sql`update private.channel_rules set rate_per_second = 1000000, rate_burst = 1000000
            where namespace = 'room' and kind = 'chat'`;
  try {
    return await work();
  } finally {
    await sql`update private.channel_rules
              set rate_per_second = ${before.rate_per_second}, rate_burst = ${before.rate_burst}
              where namespace = 'room' and kind = 'chat'`;
    await sql.end();
  }
}

const only = Deno.args.map((name) => name.toLowerCase());
const wanted = (name: string) => only.length === 0 || only.includes(name);

const held = await withThrowawayStack(ports, async (stack) => {
  const chaos: ChaosStack = {
    apiUrl: stack.apiUrl,
    dbUrl: stack.dbUrl,
    gatewayLog: `${stack.cluster.dir}/gateway.log`,
  };
  const results: boolean[] = [];
  if (wanted("r1")) {
    results.push(
      await scenario(
        "r1-duplicates",
        "R1: 50 senders, 100,000 messages, 10 % resent, abandoned requests",
        () =>
          withoutChatRateLimit(
            stack.dbUrl,
            () =>
              r1Duplicates(chaos, {
                messages: 100_000,
                senders: 50,
                rooms: 8,
                seed: 15,
                boundS: 480,
              }),
          ),
      ),
    );
  }
  if (wanted("r2")) {
    results.push(
      await scenario(
        "r2-gateway-kill",
        "R2: a gateway process killed with SIGKILL while its chat windows are open",
        () =>
          r2GatewayKill(chaos, {
            rooms: 20,
            messagesPerRoom: 20,
            port: gatewayProcessPort,
          }),
      ),
    );
  }
  // R4 is chaos/fuzz.ts's (property-based fuzzing of every endpoint), when it is there.
  if (wanted("r4") && existsSync(new URL("./fuzz.ts", import.meta.url))) {
    const { fuzzAll } = await import("./fuzz.ts");
    results.push(
      await scenario(
        "r4-fuzz",
        `R4: property-based fuzzing of every endpoint, ${fuzzRuns} runs per property`,
        () => fuzzAll({ runs: fuzzRuns }),
      ),
    );
  }
  if (wanted("r3")) {
    results.push(
      await scenario(
        "r3-db-restart",
        "R3: Postgres stopped for 10 s and started again while 20 senders keep sending",
        () =>
          r3DbRestart({ ...chaos, cluster: stack.cluster }, {
            senders: 20,
            rooms: 4,
            beforeMs: 5_000,
            outageMs: 10_000,
            afterMs: 5_000,
          }),
      ),
    );
  }
  // Read before the stack (and its folder) goes.
  const warnings = await unexpectedBroadcastWarnings(stack.cluster.logFile);
  console.log(
    warnings.length === 0
      ? "\nDatabase log: no broadcast was dropped (WarnSendingBroadcastMessage)."
      : `\nDatabase log: realtime.send dropped broadcasts:\n${warnings.join("\n")}`,
  );
  return results.every(Boolean) && warnings.length === 0;
});

console.log(held ? "\nchaos: every invariant held" : "\nchaos: some invariant broke (above)");
Deno.exit(held ? 0 : 1);
