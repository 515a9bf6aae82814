/**
 * Weighted least connections (`least_connections`), global across every data-plane worker:
 * the load of a backend is read from the shared assigned-connection counter that all workers
 * update, so a backend holding many connections accepted by one worker is avoided by all.
 *
 * Guarantee: with up to SCAN_LIMIT eligible backends, the pick is a backend with the least
 * (active + 1) / weight at the moment of reading, ties broken uniformly at random. Counters
 * move under other workers while we read (no lock is taken), so two workers may place a
 * connection each on the same least-loaded backend at the same instant; the next picks see
 * both. Above SCAN_LIMIT backends the pick is the least loaded of SAMPLES backends drawn
 * uniformly (with replacement): a bounded cost, and with high probability among the least
 * loaded few percent.
 * Cost per pick: O(min(n, SCAN_LIMIT)) reads of the shared row (plain reads: see load.ts) —
 * at most 256 — plus a random number per tie, or SAMPLES random draws above SCAN_LIMIT; no
 * allocation. Memory: none beyond the LoadView (built once per snapshot version).
 */
import type { LoadView } from './load.ts';
import type { Random } from './random.ts';

/** Clusters up to this size are scanned whole. */
export const SCAN_LIMIT = 256;
/** Candidates examined in a larger cluster. */
export const SAMPLES = 64;

/** The index of a least-loaded eligible backend, or -1 when there is none. */
export function pickLeastConnections(view: LoadView, random: Random): number {
  const n = view.slots.length;
  if (n === 0) return -1;
  if (n > SCAN_LIMIT) return pickSampled(view, random, n);
  const { active, slots, weights } = view;
  // The best so far as (active + 1) and weight; candidates compare by cross-multiplying.
  let best = 0;
  let bestLoad = (active[slots[0] as number] as number) + 1;
  let bestWeight = weights[0] as number;
  let ties = 1;
  for (let i = 1; i < n; i++) {
    const load = (active[slots[i] as number] as number) + 1;
    const weight = weights[i] as number;
    const left = load * bestWeight;
    const right = bestLoad * weight;
    if (left < right) {
      best = i;
      bestLoad = load;
      bestWeight = weight;
      ties = 1;
    } else if (left === right) {
      // Reservoir sampling: after k ties each was kept with probability 1/k.
      ties++;
      if (random() * ties < 1) {
        best = i;
        bestLoad = load;
        bestWeight = weight;
      }
    }
  }
  return best;
}

function pickSampled(view: LoadView, random: Random, n: number): number {
  const { active, slots, weights } = view;
  let best = (random() * n) | 0;
  let bestLoad = (active[slots[best] as number] as number) + 1;
  let bestWeight = weights[best] as number;
  for (let s = 1; s < SAMPLES; s++) {
    const candidate = (random() * n) | 0;
    const load = (active[slots[candidate] as number] as number) + 1;
    const weight = weights[candidate] as number;
    if (load * bestWeight < bestLoad * weight) {
      best = candidate;
      bestLoad = load;
      bestWeight = weight;
    }
  }
  return best;
}
