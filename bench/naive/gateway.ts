// The naive functions (bench/naive/functions: chat-send without batching, the seed's three-query
// late join) on a second gateway in the benchmark's own process, for bench/ingest.ts and
// bench/late-joiner.ts to set against the real ones: the same JWT check and the same pool as the
// stack's gateway, which logs its requests the same way.
import { createGateway, serveGateway } from "../../local/gateway.ts";

const here = new URL(".", import.meta.url).pathname;

/** Serves the naive functions on `port`, logging to naive-gateway.log in `clusterDir`. */
export async function serveNaiveGateway(port: number, clusterDir: string) {
  return serveGateway(
    await createGateway({ functionsDir: `${here}functions`, configPath: `${here}config.toml` }),
    port,
    (line) =>
      Deno.writeTextFileSync(`${clusterDir}/naive-gateway.log`, line + "\n", { append: true }),
  );
}
