/**
 * Per-backend and per-listener counters in one SharedArrayBuffer, written by the data
 * plane without messages and read by the control plane and /metrics at scrape time.
 *
 * Every cell but one row has exactly one writer: data-plane worker `w` owns row `w` of every
 * table. That is what lets the hot path bump a counter with a plain store instead of a locked
 * read-modify-write, and what keeps totals monotonic across a worker restart (the new
 * worker inherits the row; nothing is reset but the active gauge of the dead worker,
 * whose sockets died with it).
 *
 * - active:  Int32, [worker][backendSlot] — connections this worker has assigned to a
 *            backend: from the moment a connect attempt is reserved until it fails or the
 *            proxied connection closes (Atomics, so other threads read it without tearing).
 * - activeTotal: Int32, [backendSlot] — the same count summed over every worker, kept by
 *            all workers with Atomics.add/sub (the one multi-writer row). It is what
 *            least_connections and power_of_two read, and what max_connections is reserved
 *            against with compare-and-swap, so limits and loads are global, not per worker.
 *            When a worker dies the supervisor subtracts that worker's `active` row from it.
 * - backend: Float64, [worker][backendSlot][BackendCounter] — monotonic totals; a
 *            double holds integers exactly up to 2^53 (bytes: 9 PB per worker).
 * - listener: Float64, [worker][listenerSlot][ListenerCounter].
 */

export const BackendCounter = {
  connections: 0,
  connectFailures: 1,
  connectTimeouts: 2,
  connectSuccesses: 3,
  bytesFromClient: 4,
  bytesToClient: 5,
} as const;
export type BackendCounter = (typeof BackendCounter)[keyof typeof BackendCounter];
const BACKEND_FIELDS = 6;

export const ListenerCounter = {
  accepted: 0,
  refusedNoBackend: 1,
  refusedAllFailed: 2,
  refusedDraining: 3,
  /** Every eligible backend was at max_connections and the cluster has no queue (or it was full). */
  refusedAtLimit: 4,
} as const;
export type ListenerCounter = (typeof ListenerCounter)[keyof typeof ListenerCounter];
const LISTENER_FIELDS = 5;

export interface CounterDimensions {
  readonly workers: number;
  readonly backendSlots: number;
  readonly listenerSlots: number;
}

export const DEFAULT_BACKEND_SLOTS = 16_384;
export const DEFAULT_LISTENER_SLOTS = 256;

interface Regions {
  readonly activeOffset: number;
  readonly activeTotalOffset: number;
  readonly backendOffset: number;
  readonly listenerOffset: number;
  readonly byteLength: number;
}

function regions(d: CounterDimensions): Regions {
  const activeBytes = d.workers * d.backendSlots * Int32Array.BYTES_PER_ELEMENT;
  const activeTotalOffset = activeBytes;
  const activeTotalBytes = d.backendSlots * Int32Array.BYTES_PER_ELEMENT;
  const backendOffset = Math.ceil((activeTotalOffset + activeTotalBytes) / 8) * 8;
  const backendBytes = d.workers * d.backendSlots * BACKEND_FIELDS * 8;
  const listenerOffset = backendOffset + backendBytes;
  const listenerBytes = d.workers * d.listenerSlots * LISTENER_FIELDS * 8;
  return { activeOffset: 0, activeTotalOffset, backendOffset, listenerOffset, byteLength: listenerOffset + listenerBytes };
}

export function createCounterBuffer(d: CounterDimensions): SharedArrayBuffer {
  return new SharedArrayBuffer(regions(d).byteLength);
}

/** Typed views over the counter buffer; shared by the writer and reader helpers. */
export class CounterTables {
  readonly dims: CounterDimensions;
  readonly active: Int32Array;
  readonly activeTotal: Int32Array;
  readonly backend: Float64Array;
  readonly listener: Float64Array;

  constructor(buffer: SharedArrayBuffer, dims: CounterDimensions) {
    const r = regions(dims);
    if (buffer.byteLength < r.byteLength) {
      throw new RangeError(`counter buffer is ${buffer.byteLength} bytes, needs ${r.byteLength}`);
    }
    this.dims = dims;
    this.active = new Int32Array(buffer, r.activeOffset, dims.workers * dims.backendSlots);
    this.activeTotal = new Int32Array(buffer, r.activeTotalOffset, dims.backendSlots);
    this.backend = new Float64Array(buffer, r.backendOffset, dims.workers * dims.backendSlots * BACKEND_FIELDS);
    this.listener = new Float64Array(buffer, r.listenerOffset, dims.workers * dims.listenerSlots * LISTENER_FIELDS);
  }

  /** Connections assigned to a backend over every worker (the global row: one atomic load). */
  activeConnections(slot: number): number {
    return Atomics.load(this.activeTotal, slot);
  }

  backendTotal(slot: number, field: BackendCounter): number {
    let sum = 0;
    for (let w = 0; w < this.dims.workers; w++) {
      sum += this.backend[(w * this.dims.backendSlots + slot) * BACKEND_FIELDS + field] ?? 0;
    }
    return sum;
  }

  listenerTotal(slot: number, field: ListenerCounter): number {
    let sum = 0;
    for (let w = 0; w < this.dims.workers; w++) {
      sum += this.listener[(w * this.dims.listenerSlots + slot) * LISTENER_FIELDS + field] ?? 0;
    }
    return sum;
  }

  /**
   * A dead worker's sockets died with it: its share of every backend's count leaves the
   * global row, then its own row is cleared. Call only once the worker has exited (its row
   * no longer moves) and before a replacement takes the row over.
   */
  clearWorkerActive(worker: number): void {
    const base = worker * this.dims.backendSlots;
    for (let s = 0; s < this.dims.backendSlots; s++) {
      const held = Atomics.exchange(this.active, base + s, 0);
      if (held !== 0) subtractNotBelowZero(this.activeTotal, s, held);
    }
  }

  /**
   * Reset a backend slot's totals before it is handed to a new backend. Called by the
   * control plane only for a slot with no open connection that no published snapshot names.
   */
  resetBackendSlot(slot: number): void {
    for (let w = 0; w < this.dims.workers; w++) {
      const base = (w * this.dims.backendSlots + slot) * BACKEND_FIELDS;
      this.backend.fill(0, base, base + BACKEND_FIELDS);
    }
  }

  /** The writer for one worker's row. */
  forWorker(worker: number): WorkerCounters {
    return new WorkerCounters(this, worker);
  }
}

/**
 * A thread stopped between its two updates of one reservation could leave the global cell a
 * little off; clamping at zero keeps a crash from ever turning into a negative load.
 */
function subtractNotBelowZero(cells: Int32Array, index: number, amount: number): void {
  let current = Atomics.load(cells, index);
  for (;;) {
    const seen = Atomics.compareExchange(cells, index, current, Math.max(0, current - amount));
    if (seen === current) return;
    current = seen;
  }
}

/** Hot-path counter updates for one data-plane worker; every method is O(1), allocation-free. */
export class WorkerCounters {
  private readonly active: Int32Array;
  /** Shared by every worker: the global assigned count per backend slot. */
  readonly activeTotal: Int32Array;
  private readonly backend: Float64Array;
  private readonly listener: Float64Array;
  private readonly activeBase: number;
  private readonly backendBase: number;
  private readonly listenerBase: number;

  constructor(tables: CounterTables, worker: number) {
    this.active = tables.active;
    this.activeTotal = tables.activeTotal;
    this.backend = tables.backend;
    this.listener = tables.listener;
    this.activeBase = worker * tables.dims.backendSlots;
    this.backendBase = worker * tables.dims.backendSlots * BACKEND_FIELDS;
    this.listenerBase = worker * tables.dims.listenerSlots * LISTENER_FIELDS;
  }

  /**
   * Count one more connection on a backend unless that would exceed `limit` over all workers
   * (0 = no limit). The limit check and the increment are one compare-and-swap on the global
   * cell, so concurrent workers can never together exceed the limit. Lock-free: a retry
   * happens only when another worker changed the cell in between. Pair every `true` with
   * one `release`.
   */
  reserve(slot: number, limit: number): boolean {
    const total = this.activeTotal;
    if (limit <= 0) {
      Atomics.add(total, slot, 1);
    } else {
      let current = Atomics.load(total, slot);
      for (;;) {
        if (current >= limit) return false;
        const seen = Atomics.compareExchange(total, slot, current, current + 1);
        if (seen === current) break;
        current = seen;
      }
    }
    Atomics.add(this.active, this.activeBase + slot, 1);
    return true;
  }

  /** Undo one `reserve`: the attempt failed or the connection closed. */
  release(slot: number): void {
    Atomics.sub(this.active, this.activeBase + slot, 1);
    Atomics.sub(this.activeTotal, slot, 1);
  }

  /** A reserved attempt connected: count it in the backend's connection total. */
  connectionOpened(slot: number): void {
    this.bumpBackend(slot, BackendCounter.connections, 1);
  }

  bumpBackend(slot: number, field: BackendCounter, by: number): void {
    const i = this.backendBase + slot * BACKEND_FIELDS + field;
    this.backend[i] = (this.backend[i] ?? 0) + by;
  }

  bumpListener(slot: number, field: ListenerCounter): void {
    const i = this.listenerBase + slot * LISTENER_FIELDS + field;
    this.listener[i] = (this.listener[i] ?? 0) + 1;
  }
}
