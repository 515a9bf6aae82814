/**
 * What the load-aware balancers read: each eligible backend's weight and counter slot, and
 * the global per-backend count of assigned connections (one Int32 cell per slot, kept by
 * every data-plane worker with Atomics; see shared/counters.ts).
 *
 * The balancers read those cells with plain element reads, not Atomics.load: an aligned
 * Int32Array read never tears (ECMAScript makes aligned typed-array accesses tear-free), so
 * each read is a count some worker really stored, at most a moment old — all a load
 * estimate needs, since the count moves on right after the pick anyway. Atomics.load costs
 * ~10 ns per cell in V8 against ~1.3 ns for a plain read (measured), which matters when a
 * pick reads up to SCAN_LIMIT cells. Limits are different: max_connections is reserved with
 * compareExchange (shared/counters.ts `reserve`), never decided on a plain read.
 */
export interface LoadView {
  readonly weights: Float64Array;
  readonly slots: Int32Array;
  /** Global assigned-connection counts, indexed by backend slot. */
  readonly active: Int32Array;
}

/**
 * Whether backend a is less loaded than b once given one more connection:
 * (active_a + 1) / w_a < (active_b + 1) / w_b, compared by cross-multiplying (weights > 0).
 * Counting the connection about to be placed makes a heavier backend win among idle ones.
 * Returns -1 (a lighter), 0 (equal) or 1 (b lighter).
 */
export function compareLoad(view: LoadView, a: number, b: number): number {
  const left = ((view.active[view.slots[a] as number] as number) + 1) * (view.weights[b] as number);
  const right = ((view.active[view.slots[b] as number] as number) + 1) * (view.weights[a] as number);
  return left < right ? -1 : left > right ? 1 : 0;
}
