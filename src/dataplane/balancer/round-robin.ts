/**
 * Round robin over a cluster's eligible backends.
 *
 * Guarantee: over any n consecutive picks from one cursor with an unchanged set of n
 * eligible backends, each backend is picked exactly once. Each worker keeps its own
 * cursor, so the guarantee holds per worker; with several workers the shares converge.
 * Cost per pick: O(1), no allocation. Memory: one integer per cluster per worker.
 */
import type { SnapshotBackend } from '../../shared/snapshot/types.ts';

export interface Cursor {
  next: number;
}

/** Index into `eligible` of the next backend, or -1 when there is none. */
export function pickRoundRobin(eligible: readonly SnapshotBackend[], cursor: Cursor): number {
  const n = eligible.length;
  if (n === 0) return -1;
  const index = cursor.next % n;
  cursor.next = index + 1;
  return index;
}
