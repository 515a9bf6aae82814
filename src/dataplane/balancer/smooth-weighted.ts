/**
 * Smooth weighted round robin (`round_robin`, and the weighted choice between a listener's
 * routes): earliest deadline first over per-backend virtual deadlines.
 *
 * Backend i with weight w_i is due for its k-th pick (k = 0, 1, …) at virtual time
 * (k + θ_i) / w_i. θ_i ∈ (0, 1) staggers backends of equal weight: the r-th of the g backends
 * sharing a weight gets θ = (r + ½) / g, so equals take turns instead of arriving together.
 * Each pick takes the backend due first (ties: the lower index) and moves its deadline on.
 *
 * Guarantees, for a fixed set of weights:
 * - Exact shares: in every unit of virtual time each backend is due exactly w_i times, so with
 *   integer weights every W = Σw consecutive picks from the start hold exactly w_i picks of
 *   backend i. Weight 0 is not allowed here: the caller leaves such backends out.
 * - No bursts: while another backend j is eligible, backend i never gets more than
 *   ⌊w_i / w_j⌋ + 1 picks in a row (weights 1:3 → at most 3 in a row, not the whole weight at once
 *   as plain weighted round robin does). Equal weights give strict rotation in index order.
 * - Continuity: a new state can start at the virtual time where the previous one stopped
 *   (`startAfter`), so a snapshot change continues the rotation instead of restarting it.
 * Each worker keeps its own state; the guarantees hold per worker and the sum over workers
 * converges to the same shares.
 *
 * Cost per pick: O(log n) — one binary-heap sift-down over n backends; no allocation.
 * Build: O(n) (heapify). Memory: 4 Float64 + 1 Int32 per backend (36 bytes).
 * Why not a precomputed schedule with an O(1) pick: its length is Σw, up to 10,000 × n
 * entries (400 MB at 10,000 backends of weight 10,000); the heap is small at every size.
 */

/** Virtual time is shifted back by a whole number of periods past this, keeping float precision. */
const RENORMALISE_AT = 2 ** 20;

export interface SmoothWeightedState {
  readonly weights: Float64Array;
  readonly phase: Float64Array;
  /** Picks counted per backend (shifted by whole periods on renormalisation). */
  readonly count: Float64Array;
  readonly due: Float64Array;
  readonly heap: Int32Array;
  /** Virtual time of the last pick. */
  now: number;
}

/**
 * A fresh state over `weights` (each > 0), starting just after virtual time `startAfter`
 * (the `now` of a previous state to continue its rotation; 0 to start from the beginning).
 */
export function createSmoothWeighted(weights: ArrayLike<number>, startAfter = 0): SmoothWeightedState {
  const n = weights.length;
  const state: SmoothWeightedState = {
    weights: Float64Array.from(weights),
    phase: staggeredPhases(weights),
    count: new Float64Array(n),
    due: new Float64Array(n),
    heap: new Int32Array(n),
    now: startAfter >= 0 && startAfter < RENORMALISE_AT ? startAfter : 0,
  };
  for (let i = 0; i < n; i++) {
    const w = state.weights[i] as number;
    if (!(w > 0) || !Number.isFinite(w)) throw new RangeError(`weight ${i} is ${w}; every weight must be > 0`);
    const phase = state.phase[i] as number;
    // The first deadline strictly after `now`.
    const count = Math.max(0, Math.floor(state.now * w - phase) + 1);
    state.count[i] = count;
    state.due[i] = (count + phase) / w;
    state.heap[i] = i;
  }
  heapify(state);
  return state;
}

/** The index of the next backend, or -1 when there is none. */
export function pickSmoothWeighted(state: SmoothWeightedState): number {
  const heap = state.heap;
  if (heap.length === 0) return -1;
  const chosen = heap[0] as number;
  const due = state.due[chosen] as number;
  state.now = due;
  const count = (state.count[chosen] as number) + 1;
  state.count[chosen] = count;
  state.due[chosen] = (count + (state.phase[chosen] as number)) / (state.weights[chosen] as number);
  siftDown(state, 0);
  if (due > RENORMALISE_AT) renormalise(state);
  return chosen;
}

/** θ_i = (r + ½) / g for the r-th (in index order) of the g backends that share i's weight. */
function staggeredPhases(weights: ArrayLike<number>): Float64Array {
  const groupSize = new Map<number, number>();
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i] as number;
    groupSize.set(w, (groupSize.get(w) ?? 0) + 1);
  }
  const seen = new Map<number, number>();
  const phase = new Float64Array(weights.length);
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i] as number;
    const rank = seen.get(w) ?? 0;
    seen.set(w, rank + 1);
    phase[i] = (rank + 0.5) / (groupSize.get(w) ?? 1);
  }
  return phase;
}

/** Shift every deadline back by whole periods; the schedule itself does not change. */
function renormalise(state: SmoothWeightedState): void {
  const shift = Math.floor(state.now);
  for (let i = 0; i < state.heap.length; i++) {
    const w = state.weights[i] as number;
    const count = (state.count[i] as number) - shift * w;
    state.count[i] = count;
    state.due[i] = (count + (state.phase[i] as number)) / w;
  }
  state.now -= shift;
  heapify(state);
}

function before(state: SmoothWeightedState, a: number, b: number): boolean {
  const da = state.due[a] as number;
  const db = state.due[b] as number;
  return da < db || (da === db && a < b);
}

function heapify(state: SmoothWeightedState): void {
  for (let i = (state.heap.length >> 1) - 1; i >= 0; i--) siftDown(state, i);
}

function siftDown(state: SmoothWeightedState, from: number): void {
  const heap = state.heap;
  const n = heap.length;
  const item = heap[from] as number;
  let i = from;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= n) break;
    const right = left + 1;
    let child = left;
    if (right < n && before(state, heap[right] as number, heap[left] as number)) child = right;
    const c = heap[child] as number;
    if (!before(state, c, item)) break;
    heap[i] = c;
    i = child;
  }
  heap[i] = item;
}
