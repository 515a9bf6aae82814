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
 * Cost per pick: O(min(n, SCAN_LIMIT)) atomic loads — at most 64 — plus a random number per
 * tie; no allocation. Memory: none beyond the LoadView (built once per snapshot version).
 */
import { compareLoad, type LoadView } from './load.ts';
import type { Random } from './random.ts';

/** Clusters up to this size are scanned whole. */
export const SCAN_LIMIT = 64;
/** Candidates examined in a larger cluster. */
export const SAMPLES = 64;

/** The index of a least-loaded eligible backend, or -1 when there is none. */
export function pickLeastConnections(view: LoadView, random: Random): number {
  const n = view.slots.length;
  if (n === 0) return -1;
  if (n > SCAN_LIMIT) return pickSampled(view, random, n);
  let best = 0;
  let ties = 1;
  for (let i = 1; i < n; i++) {
    const order = compareLoad(view, i, best);
    if (order < 0) {
      best = i;
      ties = 1;
    } else if (order === 0) {
      // Reservoir sampling: after k ties each was kept with probability 1/k.
      ties++;
      if (random() * ties < 1) best = i;
    }
  }
  return best;
}

function pickSampled(view: LoadView, random: Random, n: number): number {
  let best = (random() * n) | 0;
  for (let s = 1; s < SAMPLES; s++) {
    const candidate = (random() * n) | 0;
    if (compareLoad(view, candidate, best) < 0) best = candidate;
  }
  return best;
}
