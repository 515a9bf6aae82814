/**
 * Randomness is injected into every balancer that needs it, so unit tests replay exact pick
 * sequences. Tests pass a fixed seed; each data-plane worker seeds its own generator from
 * the operating system's randomness at start.
 */

/** A source of uniform numbers in [0, 1). */
export type Random = () => number;

/** mulberry32: a tiny, fast, seedable generator (not for secrets). Same seed, same sequence. */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
