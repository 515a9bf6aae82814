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
 *            reader in another thread sees the value without tearing). A UDP session
 *            counts as an open connection of its backend, so draining and the admin API
 *            see UDP load as they see TCP load.
 * - udpActive: Int32, [worker][backendSlot] — the open UDP sessions among `active`.
 * - listenerUdpSessions: Int32, [worker][listenerSlot] — open UDP sessions per listener.
 * - backend: Float64, [worker][backendSlot][BackendCounter] — monotonic totals; a
 *            double holds integers exactly up to 2^53 (bytes: 9 PB per worker).
 * - listener: Float64, [worker][listenerSlot][ListenerCounter].
 */

export const BackendCounter = {
  connections: 0,
  connectFailures: 1,
  connectTimeouts: 2,
  connectSuccesses: 3,
  /** TCP and UDP payload bytes. */
  bytesFromClient: 4,
  bytesToClient: 5,
  udpDatagramsFromClient: 6,
  udpDatagramsToClient: 7,
  /** UDP sessions created (also counted in `connections`). */
  udpSessions: 8,
} as const;
export type BackendCounter = (typeof BackendCounter)[keyof typeof BackendCounter];
const BACKEND_FIELDS = 9;

/**
 * For a UDP listener, `accepted` counts sessions created, and the `refused*` fields count
 * datagrams that could not start a session.
 */
export const ListenerCounter = {
  accepted: 0,
  refusedNoBackend: 1,
  refusedAllFailed: 2,
  refusedDraining: 3,
  /** Sessions ended to make room under max_sessions (least recently active first). */
  udpSessionsEvicted: 4,
  /** Sessions ended by session_timeout without traffic. */
  udpSessionsExpired: 5,
  /** Datagrams dropped after a session existed: a full send queue, or a session socket that failed. */
  udpDatagramsDropped: 6,
  udpDatagramsFromClient: 7,
  udpDatagramsToClient: 8,
} as const;
export type ListenerCounter = (typeof ListenerCounter)[keyof typeof ListenerCounter];
const LISTENER_FIELDS = 9;

export interface CounterDimensions {
  readonly workers: number;
  readonly backendSlots: number;
  readonly listenerSlots: number;
}

export const DEFAULT_BACKEND_SLOTS = 16_384;
export const DEFAULT_LISTENER_SLOTS = 256;

interface Regions {
  readonly activeOffset: number;
  readonly udpActiveOffset: number;
  readonly listenerUdpOffset: number;
  readonly backendOffset: number;
  readonly listenerOffset: number;
  readonly byteLength: number;
}

function regions(d: CounterDimensions): Regions {
  const activeBytes = d.workers * d.backendSlots * Int32Array.BYTES_PER_ELEMENT;
  const udpActiveOffset = activeBytes;
  const listenerUdpOffset = udpActiveOffset + activeBytes;
  const listenerUdpBytes = d.workers * d.listenerSlots * Int32Array.BYTES_PER_ELEMENT;
  const backendOffset = Math.ceil((listenerUdpOffset + listenerUdpBytes) / 8) * 8;
  const backendBytes = d.workers * d.backendSlots * BACKEND_FIELDS * 8;
  const listenerOffset = backendOffset + backendBytes;
  const listenerBytes = d.workers * d.listenerSlots * LISTENER_FIELDS * 8;
  return { activeOffset: 0, udpActiveOffset, listenerUdpOffset, backendOffset, listenerOffset, byteLength: listenerOffset + listenerBytes };
}

export function createCounterBuffer(d: CounterDimensions): SharedArrayBuffer {
  return new SharedArrayBuffer(regions(d).byteLength);
}

/** Typed views over the counter buffer; shared by the writer and reader helpers. */
export class CounterTables {
  readonly dims: CounterDimensions;
  readonly active: Int32Array;
  readonly udpActive: Int32Array;
  readonly listenerUdpSessions: Int32Array;
  readonly backend: Float64Array;
  readonly listener: Float64Array;

  constructor(buffer: SharedArrayBuffer, dims: CounterDimensions) {
    const r = regions(dims);
    if (buffer.byteLength < r.byteLength) {
      throw new RangeError(`counter buffer is ${buffer.byteLength} bytes, needs ${r.byteLength}`);
    }
    this.dims = dims;
    this.active = new Int32Array(buffer, r.activeOffset, dims.workers * dims.backendSlots);
    this.udpActive = new Int32Array(buffer, r.udpActiveOffset, dims.workers * dims.backendSlots);
    this.listenerUdpSessions = new Int32Array(buffer, r.listenerUdpOffset, dims.workers * dims.listenerSlots);
    this.backend = new Float64Array(buffer, r.backendOffset, dims.workers * dims.backendSlots * BACKEND_FIELDS);
    this.listener = new Float64Array(buffer, r.listenerOffset, dims.workers * dims.listenerSlots * LISTENER_FIELDS);
  }

  /** Sum of active connections to a backend over every worker. */
  activeConnections(slot: number): number {
    let sum = 0;
    for (let w = 0; w < this.dims.workers; w++) sum += Atomics.load(this.active, w * this.dims.backendSlots + slot);
    return sum;
  }

  /** Open UDP sessions to a backend over every worker. */
  udpSessions(slot: number): number {
    let sum = 0;
    for (let w = 0; w < this.dims.workers; w++) sum += Atomics.load(this.udpActive, w * this.dims.backendSlots + slot);
    return sum;
  }

  /** Open UDP sessions of a listener over every worker. */
  listenerUdpSessionsTotal(slot: number): number {
    let sum = 0;
    for (let w = 0; w < this.dims.workers; w++) sum += Atomics.load(this.listenerUdpSessions, w * this.dims.listenerSlots + slot);
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

  /** A dead worker's sockets died with it: its open-connection and session gauges must not outlive it. */
  clearWorkerActive(worker: number): void {
    const base = worker * this.dims.backendSlots;
    for (let s = 0; s < this.dims.backendSlots; s++) {
      Atomics.store(this.active, base + s, 0);
      Atomics.store(this.udpActive, base + s, 0);
    }
    const listenerBase = worker * this.dims.listenerSlots;
    for (let s = 0; s < this.dims.listenerSlots; s++) Atomics.store(this.listenerUdpSessions, listenerBase + s, 0);
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
  private readonly udpActive: Int32Array;
  private readonly listenerUdpSessions: Int32Array;
  private readonly backend: Float64Array;
  private readonly listener: Float64Array;
  private readonly activeBase: number;
  private readonly listenerUdpBase: number;
  private readonly backendBase: number;
  private readonly listenerBase: number;

  constructor(tables: CounterTables, worker: number) {
    this.active = tables.active;
    this.udpActive = tables.udpActive;
    this.listenerUdpSessions = tables.listenerUdpSessions;
    this.backend = tables.backend;
    this.listener = tables.listener;
    this.activeBase = worker * tables.dims.backendSlots;
    this.listenerUdpBase = worker * tables.dims.listenerSlots;
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

  /** A UDP session is also an open connection of its backend and of its listener. */
  udpSessionOpened(backendSlot: number, listenerSlot: number): void {
    Atomics.add(this.active, this.activeBase + backendSlot, 1);
    Atomics.add(this.udpActive, this.activeBase + backendSlot, 1);
    Atomics.add(this.listenerUdpSessions, this.listenerUdpBase + listenerSlot, 1);
    this.bumpBackend(backendSlot, BackendCounter.connections, 1);
    this.bumpBackend(backendSlot, BackendCounter.udpSessions, 1);
    this.bumpListener(listenerSlot, ListenerCounter.accepted);
  }

  udpSessionClosed(backendSlot: number, listenerSlot: number): void {
    Atomics.sub(this.active, this.activeBase + backendSlot, 1);
    Atomics.sub(this.udpActive, this.activeBase + backendSlot, 1);
    Atomics.sub(this.listenerUdpSessions, this.listenerUdpBase + listenerSlot, 1);
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
