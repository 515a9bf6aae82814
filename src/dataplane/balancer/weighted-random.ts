/**
 * Weighted random (`random`), and the weighted draws of `power_of_two`: Vose's alias method.
 *
 * Guarantee: each pick is independent and returns backend i with probability w_i / Σw;
 * a backend of weight 0 is never returned.
 * Cost per pick: O(1) — one random number, one compare, two array reads; no allocation.
 * Build: O(n), once per snapshot version. Memory: one Float64 and one Int32 per backend.
 */
import type { Random } from './random.ts';

export interface AliasTable {
  /** Chance of keeping column i rather than taking its alias. */
  readonly probability: Float64Array;
  readonly alias: Int32Array;
}

export function buildAliasTable(weights: ArrayLike<number>): AliasTable {
  const n = weights.length;
  const probability = new Float64Array(n);
  const alias = new Int32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const w = weights[i] as number;
    if (!(w >= 0) || !Number.isFinite(w)) throw new RangeError(`weight ${i} is ${w}; weights must be finite and >= 0`);
    total += w;
  }
  if (n === 0 || total === 0) return { probability: new Float64Array(0), alias: new Int32Array(0) };

  // Scaled so the average column holds exactly 1; columns under 1 borrow from one over 1.
  const scaled = new Float64Array(n);
  const small: number[] = [];
  const large: number[] = [];
  for (let i = 0; i < n; i++) {
    scaled[i] = ((weights[i] as number) * n) / total;
    alias[i] = i;
    ((scaled[i] as number) < 1 ? small : large).push(i);
  }
  while (small.length > 0 && large.length > 0) {
    const s = small.pop() as number;
    const l = large.pop() as number;
    probability[s] = scaled[s] as number;
    alias[s] = l;
    const rest = (scaled[l] as number) + (scaled[s] as number) - 1;
    scaled[l] = rest;
    (rest < 1 ? small : large).push(l);
  }
  // What is left holds 1 up to rounding. A zero-weight column always borrows in full above
  // (mass is conserved), but rounding must never let one keep itself.
  let heaviest = 0;
  for (let i = 1; i < n; i++) if ((weights[i] as number) > (weights[heaviest] as number)) heaviest = i;
  for (const i of [...large, ...small]) {
    probability[i] = 1;
    if ((weights[i] as number) === 0) {
      probability[i] = 0;
      alias[i] = heaviest;
    }
  }
  return { probability, alias };
}

/** A backend index drawn with probability proportional to its weight, or -1 when there is none. */
export function pickWeightedRandom(table: AliasTable, random: Random): number {
  const n = table.probability.length;
  if (n === 0) return -1;
  const u = random() * n;
  const column = u | 0;
  return u - column < (table.probability[column] as number) ? column : (table.alias[column] as number);
}
