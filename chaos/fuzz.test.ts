// `npm test`'s share of the fuzzing (chaos/fuzz.ts): every property with a modest number of runs
// (FUZZ_RUNS), a fixed seed (FUZZ_SEED) printed with the figures, each counterexample printed on
// failure; then the fuzzed gateway must still serve.
import { defaultSeed, fuzzAll } from "./fuzz.ts";

const runs = Number(Deno.env.get("FUZZ_RUNS") ?? 150);

Deno.test(`fuzz every endpoint and Realtime frames (seed ${defaultSeed}, ${runs} runs per property)`, async () => {
  const { violations } = await fuzzAll({ runs, seed: defaultSeed });
  if (violations.length > 0) throw new Error(violations.join("\n\n"));
});
