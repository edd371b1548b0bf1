// A seeded random source (mulberry32) for tests, benchmarks and chaos scenarios: the same seed
// makes the same choices, so simulated delays, drawn targets and senders' plans repeat run to
// run.

export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A uniform number in [min, max). */
export function between(random: () => number, min: number, max: number): number {
  return min + (max - min) * random();
}
