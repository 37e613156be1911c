/** A source of uniform numbers in [0, 1), as Math.random. Injected wherever the SDK chooses. */
export type Random = () => number;

/**
 * A small seeded PRNG (mulberry32) so tests and simulations are reproducible. Not for secrets.
 * The seed is any integer; equal seeds give equal sequences.
 */
export function seededRandom(seed: number): Random {
  if (!Number.isInteger(seed)) {
    throw new TypeError(`Cannot seed a random source: 'seed' must be an integer: current value is ${seed}`);
  }
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [0, bound) from `random`; clamped so a source returning 1 stays in range. */
export function randomIndex(random: Random, bound: number): number {
  return Math.min(bound - 1, Math.floor(random() * bound));
}
