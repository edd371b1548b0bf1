// `npm test`'s share of the fuzzing (chaos/fuzz.ts): every property with a modest number of runs
// (FUZZ_RUNS), a fixed seed (FUZZ_SEED) printed with the figures, the counterexample printed on
// failure; then the fuzzed gateway must still serve.
import { assertStillServes, defaultSeed, fuzzAll, withFuzzTarget } from "./fuzz.ts";

const runs = Number(Deno.env.get("FUZZ_RUNS") ?? 60);

Deno.test(`fuzz (seed ${defaultSeed}, ${runs} runs per property): functions, Auth, Realtime REST and frames`, async () => {
  await withFuzzTarget(async (target) => {
    await fuzzAll({ runs, seed: defaultSeed }, target);
    await assertStillServes(target);
  });
});
