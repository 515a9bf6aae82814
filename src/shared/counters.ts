/**
 * Per-backend and per-listener counters in one SharedArrayBuffer, written by the data
 * plane without messages and read by the control plane and /metrics at scrape time.
 *
 * Every cell has exactly one writer: data-plane worker `w` owns row `w` of every table.
 * That is what lets the hot path bump a counter with a plain store instead of a locked
 * read-modify-write, and what keeps totals monotonic across a worker restart (the new
 * worker inherits the row; nothing is reset but the active gauge of the dead worker,
 * whose sockets died with it).
 *
 * - active:  Int32, [worker][backendSlot] — open proxied connections (Atomics, so a
 *            reader in another thread sees the value without tearing).
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
  // Edge protection (each refusal closes the client before any backend is contacted).
  refusedAcl: 4,
  refusedMaxConnections: 5,
  refusedPerIpConnections: 6,
  refusedPerIpRate: 7,
  /** accept_proxy: a malformed header, or the client closed before sending a whole one. */
  refusedProxyHeader: 8,
  refusedProxyTimeout: 9,
  /** sni_routes: not a TLS ClientHello, or the client closed before sending a whole one. */
  refusedTlsHello: 10,
  refusedTlsTimeout: 11,
  /** sni_routes: no route for the server name and no default cluster. */
  refusedSniNoRoute: 12,
  /** Admitted without a per-IP check: the shared table was full (it fails open). */
  limitsTableFull: 13,
} as const;
export type ListenerCounter = (typeof ListenerCounter)[keyof typeof ListenerCounter];
const LISTENER_FIELDS = 14;

export interface CounterDimensions {
  readonly workers: number;
  readonly backendSlots: number;
  readonly listenerSlots: number;
}

export const DEFAULT_BACKEND_SLOTS = 16_384;
export const DEFAULT_LISTENER_SLOTS = 256;

interface Regions {
  readonly activeOffset: number;
  readonly backendOffset: number;
  readonly listenerOffset: number;
  readonly byteLength: number;
}

function regions(d: CounterDimensions): Regions {
  const activeBytes = d.workers * d.backendSlots * Int32Array.BYTES_PER_ELEMENT;
  const backendOffset = Math.ceil(activeBytes / 8) * 8;
  const backendBytes = d.workers * d.backendSlots * BACKEND_FIELDS * 8;
  const listenerOffset = backendOffset + backendBytes;
  const listenerBytes = d.workers * d.listenerSlots * LISTENER_FIELDS * 8;
  return { activeOffset: 0, backendOffset, listenerOffset, byteLength: listenerOffset + listenerBytes };
}

export function createCounterBuffer(d: CounterDimensions): SharedArrayBuffer {
  return new SharedArrayBuffer(regions(d).byteLength);
}

/** Typed views over the counter buffer; shared by the writer and reader helpers. */
export class CounterTables {
  readonly dims: CounterDimensions;
  readonly active: Int32Array;
  readonly backend: Float64Array;
  readonly listener: Float64Array;

  constructor(buffer: SharedArrayBuffer, dims: CounterDimensions) {
    const r = regions(dims);
    if (buffer.byteLength < r.byteLength) {
      throw new RangeError(`counter buffer is ${buffer.byteLength} bytes, needs ${r.byteLength}`);
    }
    this.dims = dims;
    this.active = new Int32Array(buffer, r.activeOffset, dims.workers * dims.backendSlots);
    this.backend = new Float64Array(buffer, r.backendOffset, dims.workers * dims.backendSlots * BACKEND_FIELDS);
    this.listener = new Float64Array(buffer, r.listenerOffset, dims.workers * dims.listenerSlots * LISTENER_FIELDS);
  }

  /** Sum of active connections to a backend over every worker. */
  activeConnections(slot: number): number {
    let sum = 0;
    for (let w = 0; w < this.dims.workers; w++) sum += Atomics.load(this.active, w * this.dims.backendSlots + slot);
    return sum;
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

  /** A dead worker's sockets died with it: its open-connection gauge must not outlive it. */
  clearWorkerActive(worker: number): void {
    const base = worker * this.dims.backendSlots;
    for (let s = 0; s < this.dims.backendSlots; s++) Atomics.store(this.active, base + s, 0);
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

/** Hot-path counter updates for one data-plane worker; every method is O(1), allocation-free. */
export class WorkerCounters {
  private readonly active: Int32Array;
  private readonly backend: Float64Array;
  private readonly listener: Float64Array;
  private readonly activeBase: number;
  private readonly backendBase: number;
  private readonly listenerBase: number;

  constructor(tables: CounterTables, worker: number) {
    this.active = tables.active;
    this.backend = tables.backend;
    this.listener = tables.listener;
    this.activeBase = worker * tables.dims.backendSlots;
    this.backendBase = worker * tables.dims.backendSlots * BACKEND_FIELDS;
    this.listenerBase = worker * tables.dims.listenerSlots * LISTENER_FIELDS;
  }

  connectionOpened(slot: number): void {
    Atomics.add(this.active, this.activeBase + slot, 1);
    this.bumpBackend(slot, BackendCounter.connections, 1);
  }

  connectionClosed(slot: number): void {
    Atomics.sub(this.active, this.activeBase + slot, 1);
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
