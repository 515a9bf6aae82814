/**
 * Power of two choices (`power_of_two`): draw two backends by weight, keep the one with the
 * lower (active + 1) / weight, read from the global assigned-connection counters.
 *
 * Guarantee: never picks a backend of weight 0 (neither draw can return one); avoids the more
 * loaded of two weighted draws, which keeps the worst backend's load within a small factor of
 * the mean without scanning the cluster (the "power of two choices" result). Ties keep the
 * first draw. The two draws may name the same backend (then it is the pick).
 * Cost per pick: O(1) — two random numbers, two alias lookups, two counter reads; no
 * allocation. Memory: the alias table (one Float64 + one Int32 per backend) and the LoadView.
 */
import { compareLoad, type LoadView } from './load.ts';
import type { Random } from './random.ts';
import { pickWeightedRandom, type AliasTable } from './weighted-random.ts';

export function pickPowerOfTwo(view: LoadView, table: AliasTable, random: Random): number {
  const first = pickWeightedRandom(table, random);
  if (first < 0) return -1;
  const second = pickWeightedRandom(table, random);
  return compareLoad(view, second, first) < 0 ? second : first;
}
