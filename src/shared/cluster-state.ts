/**
 * Per-cluster shared state that is not per backend: the global cells of the connection
 * queue and the sticky-session affinity table. One SharedArrayBuffer per cluster, created by
 * the supervisor before the data-plane workers start and handed to each of them, so every
 * worker sees the same queue length and the same client → backend affinities without a
 * message. The admin API reads the statistics from the same buffer.
 *
 * Layout (Int32 cells):
 *   [0, HEADER_CELLS)                    header: magic, queue cells, statistics, table size
 *   [HEADER_CELLS, +MAX_WORKERS)         connections waiting in each worker's queue
 *   [AFFINITY_OFFSET, +capacity × 5)     affinity entries (shared/balancer/affinity.ts)
 *
 * Writers: every data-plane worker (Atomics only; queue events are rare, so the statistics
 * may be shared cells). Statistics are Int32 cells read as unsigned (they wrap at 2^32).
 */
import { sharedMonotonicMs } from './shared-clock.ts';

const MAGIC = 0x534c4351; // "SLCQ"

export const ClusterCell = {
  magic: 0,
  /** Connections waiting for a backend below its limit, over all workers. */
  queueLength: 1,
  /** Bumped (and notified) when a backend slot frees while someone waits. */
  wake: 2,
  queuedTotal: 3,
  servedAfterWaitTotal: 4,
  timedOutTotal: 5,
  /** Refused at once because the queue was full. */
  overflowTotal: 6,
  /** Clients that closed while waiting. */
  abandonedTotal: 7,
  affinityCapacity: 8,
  /** Affinity expiry times are seconds after this time of the shared monotonic clock (so they fit an Int32). */
  affinityEpochSeconds: 9,
} as const;
export type ClusterCell = (typeof ClusterCell)[keyof typeof ClusterCell];

const HEADER_CELLS = 16;
/** The config allows at most 64 data-plane workers. */
export const MAX_WORKERS = 64;
export const AFFINITY_OFFSET = HEADER_CELLS + MAX_WORKERS;
/** Int32 cells per affinity entry: seq, hash₁, hash₂, backend slot, expiry. */
export const AFFINITY_STRIDE = 5;

/** `nowMs`: on the clock of `sharedMonotonicMs` (shared-clock.ts), which every reader of the table uses. */
export function createClusterStateBuffer(affinityEntries: number, nowMs = sharedMonotonicMs()): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer((AFFINITY_OFFSET + affinityEntries * AFFINITY_STRIDE) * Int32Array.BYTES_PER_ELEMENT);
  const cells = new Int32Array(buffer);
  cells[ClusterCell.magic] = MAGIC;
  cells[ClusterCell.affinityCapacity] = affinityEntries;
  cells[ClusterCell.affinityEpochSeconds] = Math.floor(nowMs / 1000);
  return buffer;
}

export interface QueueStatistics {
  readonly length: number;
  readonly queued_total: number;
  readonly served_after_wait_total: number;
  readonly timed_out_total: number;
  readonly overflow_total: number;
  readonly abandoned_total: number;
}

/** A view over one cluster's buffer. */
export class ClusterState {
  readonly cells: Int32Array;

  constructor(buffer: SharedArrayBuffer) {
    this.cells = new Int32Array(buffer);
    if (this.cells.length < AFFINITY_OFFSET || this.cells[ClusterCell.magic] !== MAGIC) {
      throw new RangeError('not a cluster state buffer');
    }
  }

  get affinityCapacity(): number {
    return this.cells[ClusterCell.affinityCapacity] ?? 0;
  }

  get affinityEpochSeconds(): number {
    return this.cells[ClusterCell.affinityEpochSeconds] ?? 0;
  }

  bump(cell: ClusterCell): void {
    Atomics.add(this.cells, cell, 1);
  }

  /**
   * Take a place in the queue unless `size` connections already wait (over all workers):
   * compare-and-swap on the shared length, so the bound holds across workers.
   */
  tryEnterQueue(worker: number, size: number): boolean {
    let current = Atomics.load(this.cells, ClusterCell.queueLength);
    for (;;) {
      if (current >= size) return false;
      const seen = Atomics.compareExchange(this.cells, ClusterCell.queueLength, current, current + 1);
      if (seen === current) break;
      current = seen;
    }
    Atomics.add(this.cells, HEADER_CELLS + worker, 1);
    return true;
  }

  leaveQueue(worker: number): void {
    Atomics.sub(this.cells, HEADER_CELLS + worker, 1);
    Atomics.sub(this.cells, ClusterCell.queueLength, 1);
  }

  /** Someone waits somewhere: one atomic load, on every release of a queued cluster's slot. */
  get anyoneWaiting(): boolean {
    return Atomics.load(this.cells, ClusterCell.queueLength) > 0;
  }

  /** A slot freed: wake every worker waiting on this cluster's queue. */
  wakeWaiters(): void {
    Atomics.add(this.cells, ClusterCell.wake, 1);
    Atomics.notify(this.cells, ClusterCell.wake);
  }

  /** A dead worker's waiters died with it: give their places back. */
  clearWorker(worker: number): void {
    const held = Atomics.exchange(this.cells, HEADER_CELLS + worker, 0);
    if (held !== 0) Atomics.sub(this.cells, ClusterCell.queueLength, held);
  }

  statistics(): QueueStatistics {
    const read = (cell: ClusterCell): number => Atomics.load(this.cells, cell) >>> 0;
    return {
      length: Math.max(0, Atomics.load(this.cells, ClusterCell.queueLength)),
      queued_total: read(ClusterCell.queuedTotal),
      served_after_wait_total: read(ClusterCell.servedAfterWaitTotal),
      timed_out_total: read(ClusterCell.timedOutTotal),
      overflow_total: read(ClusterCell.overflowTotal),
      abandoned_total: read(ClusterCell.abandonedTotal),
    };
  }
}
