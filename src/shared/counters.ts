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
 *            A UDP session holds one reservation from its start to its end, so limits,
 *            loads, drains and the admin API see UDP sessions as they see TCP connections.
 * - udpActive: Int32, [worker][backendSlot] — the open UDP sessions among `active`.
 * - listenerUdpSessions: Int32, [worker][listenerSlot] — open UDP sessions per listener.
 * - backend: Float64, [worker][backendSlot][BackendCounter] — monotonic totals; a
 *            double holds integers exactly up to 2^53 (bytes: 9 PB per worker).
 * - listener: Float64, [worker][listenerSlot][ListenerCounter].
 * - connectLatency, connectionDuration: shared histograms (histogram.ts), [worker][backendSlot].
 * - worker: Float64, [worker][WorkerCounter] — per-worker totals not tied to a backend.
 *
 * Control-plane cells (single writer: the control-plane worker; a restarted one continues
 * them, so they too only grow):
 * - health: Float64, [backendSlot][HealthCounter] — active probe results.
 * - healthDuration: shared histogram, [0][backendSlot] — active probe durations.
 * - control: Float64, [ControlCounter] — process-wide control-plane totals.
 * - publishStamp: BigInt64, [PublishStamp] — the version being published and when (wall-clock
 *            µs), written with Atomics before the version becomes visible; each worker reads it
 *            when it takes that version in (shared/snapshot/propagation.ts).
 * - snapshotPropagation: shared histogram, [worker][0] — each worker's publish-to-take-in delay.
 */
import {
  CONNECT_LATENCY_BOUNDS_MS,
  CONNECTION_DURATION_BOUNDS_MS,
  HEALTH_CHECK_DURATION_BOUNDS_MS,
  SNAPSHOT_PROPAGATION_BOUNDS_MS,
  SharedHistogram,
  histogramByteLength,
  type HistogramShape,
} from './histogram.ts';

/**
 * The number of fields in a counter row, derived from its field table so a new counter
 * cannot silently overlap the next row. The fields must be 0..n-1, each used once: a row is
 * indexed as `base + field`.
 */
export function rowWidth(fields: Readonly<Record<string, number>>): number {
  const indices = Object.values(fields).sort((a, b) => a - b);
  indices.forEach((index, i) => {
    if (index !== i) throw new Error(`counter fields must be 0..${indices.length - 1}, each once; got ${indices.join(',')}`);
  });
  return indices.length;
}

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
const BACKEND_FIELDS = rowWidth(BackendCounter);

/**
 * For a UDP listener, `accepted` counts sessions created, and the `refused*` fields count
 * datagrams that could not start a session.
 */
export const ListenerCounter = {
  accepted: 0,
  refusedNoBackend: 1,
  refusedAllFailed: 2,
  refusedDraining: 3,
  /** Every eligible backend was at max_connections and the cluster has no queue (or it was full). */
  refusedAtLimit: 4,
  // Edge protection (each refusal closes the client before any backend is contacted).
  refusedAcl: 5,
  refusedMaxConnections: 6,
  refusedPerIpConnections: 7,
  refusedPerIpRate: 8,
  /** accept_proxy: a malformed header, or the client closed before sending a whole one. */
  refusedProxyHeader: 9,
  refusedProxyTimeout: 10,
  /** sni_routes: not a TLS ClientHello, or the client closed before sending a whole one. */
  refusedTlsHello: 11,
  refusedTlsTimeout: 12,
  /** sni_routes: no route for the server name and no default cluster. */
  refusedSniNoRoute: 13,
  /** Admitted without a per-IP check: the shared table was full (it fails open). */
  limitsTableFull: 14,
  /** Sessions ended to make room under max_sessions (least recently active first). */
  udpSessionsEvicted: 15,
  /** Sessions ended by session_timeout without traffic. */
  udpSessionsExpired: 16,
  /**
   * Datagrams dropped after a session existed: a full send queue, a session socket that
   * failed, or a backend's reply that came after its session ended (a pooled socket's).
   */
  udpDatagramsDropped: 17,
  udpDatagramsFromClient: 18,
  udpDatagramsToClient: 19,
  /** accept_proxy with `trusted`: the peer is not in it, so its header would not be believed. */
  refusedProxyUntrusted: 20,
} as const;
export type ListenerCounter = (typeof ListenerCounter)[keyof typeof ListenerCounter];
const LISTENER_FIELDS = rowWidth(ListenerCounter);

export const WorkerCounter = {
  accessLogLines: 0,
  accessLogDropped: 1,
} as const;
export type WorkerCounter = (typeof WorkerCounter)[keyof typeof WorkerCounter];
const WORKER_FIELDS = rowWidth(WorkerCounter);

/** Active health-probe outcomes per backend slot; each probe bumps exactly one. */
export const HealthCounter = {
  success: 0,
  failure: 1,
  timeout: 2,
} as const;
export type HealthCounter = (typeof HealthCounter)[keyof typeof HealthCounter];
const HEALTH_FIELDS = rowWidth(HealthCounter);

export const ControlCounter = {
  snapshotPublishes: 0,
} as const;
export type ControlCounter = (typeof ControlCounter)[keyof typeof ControlCounter];
const CONTROL_FIELDS = rowWidth(ControlCounter);

/** Cells of the publish stamp (BigInt64; see shared/snapshot/propagation.ts for the protocol). */
export const PublishStamp = {
  /** The version about to be published; 0 while the stamp is being rewritten. */
  version: 0,
  /** When its publish began: wall-clock µs (performance.timeOrigin + now(), comparable across threads). */
  atMicros: 1,
} as const;
const STAMP_FIELDS = rowWidth(PublishStamp);

export interface CounterDimensions {
  readonly workers: number;
  readonly backendSlots: number;
  readonly listenerSlots: number;
}

/**
 * Backend counter rows (`capacity.backends`). Each row takes 118 bytes plus 334 bytes per
 * data-plane worker of address space (measured: createCounterBuffer at two sizes); only rows
 * in use are ever touched, so the rest cost no resident memory.
 */
export const DEFAULT_BACKEND_SLOTS = 16_384;
export const MIN_BACKEND_SLOTS = 1_024;
export const MAX_BACKEND_SLOTS = 1_048_576;
export const DEFAULT_LISTENER_SLOTS = 256;

interface Regions {
  readonly activeOffset: number;
  readonly activeTotalOffset: number;
  readonly udpActiveOffset: number;
  readonly listenerUdpOffset: number;
  readonly backendOffset: number;
  readonly listenerOffset: number;
  readonly connectLatencyOffset: number;
  readonly connectionDurationOffset: number;
  readonly workerOffset: number;
  readonly healthOffset: number;
  readonly healthDurationOffset: number;
  readonly controlOffset: number;
  readonly publishStampOffset: number;
  readonly snapshotPropagationOffset: number;
  readonly byteLength: number;
}

function histogramShapes(d: CounterDimensions): {
  connectLatency: HistogramShape;
  connectionDuration: HistogramShape;
  healthDuration: HistogramShape;
  snapshotPropagation: HistogramShape;
} {
  return {
    snapshotPropagation: { rows: d.workers, keys: 1, bounds: SNAPSHOT_PROPAGATION_BOUNDS_MS },
    connectLatency: { rows: d.workers, keys: d.backendSlots, bounds: CONNECT_LATENCY_BOUNDS_MS },
    connectionDuration: { rows: d.workers, keys: d.backendSlots, bounds: CONNECTION_DURATION_BOUNDS_MS },
    healthDuration: { rows: 1, keys: d.backendSlots, bounds: HEALTH_CHECK_DURATION_BOUNDS_MS },
  };
}

function regions(d: CounterDimensions): Regions {
  const shapes = histogramShapes(d);
  const activeBytes = d.workers * d.backendSlots * Int32Array.BYTES_PER_ELEMENT;
  const activeTotalOffset = activeBytes;
  const activeTotalBytes = d.backendSlots * Int32Array.BYTES_PER_ELEMENT;
  const udpActiveOffset = activeTotalOffset + activeTotalBytes;
  const listenerUdpOffset = udpActiveOffset + activeBytes;
  const listenerUdpBytes = d.workers * d.listenerSlots * Int32Array.BYTES_PER_ELEMENT;
  const backendOffset = Math.ceil((listenerUdpOffset + listenerUdpBytes) / 8) * 8;
  const backendBytes = d.workers * d.backendSlots * BACKEND_FIELDS * 8;
  const listenerOffset = backendOffset + backendBytes;
  const listenerBytes = d.workers * d.listenerSlots * LISTENER_FIELDS * 8;
  const connectLatencyOffset = listenerOffset + listenerBytes;
  const connectionDurationOffset = connectLatencyOffset + histogramByteLength(shapes.connectLatency);
  const workerOffset = connectionDurationOffset + histogramByteLength(shapes.connectionDuration);
  const healthOffset = workerOffset + d.workers * WORKER_FIELDS * 8;
  const healthDurationOffset = healthOffset + d.backendSlots * HEALTH_FIELDS * 8;
  const controlOffset = healthDurationOffset + histogramByteLength(shapes.healthDuration);
  const publishStampOffset = controlOffset + CONTROL_FIELDS * 8;
  const snapshotPropagationOffset = publishStampOffset + STAMP_FIELDS * 8;
  return {
    activeOffset: 0,
    activeTotalOffset,
    udpActiveOffset,
    listenerUdpOffset,
    backendOffset,
    listenerOffset,
    connectLatencyOffset,
    connectionDurationOffset,
    workerOffset,
    healthOffset,
    healthDurationOffset,
    controlOffset,
    publishStampOffset,
    snapshotPropagationOffset,
    byteLength: snapshotPropagationOffset + histogramByteLength(shapes.snapshotPropagation),
  };
}

export function createCounterBuffer(d: CounterDimensions): SharedArrayBuffer {
  return new SharedArrayBuffer(regions(d).byteLength);
}

/** Typed views over the counter buffer; shared by the writer and reader helpers. */
export class CounterTables {
  readonly dims: CounterDimensions;
  readonly active: Int32Array;
  readonly activeTotal: Int32Array;
  readonly udpActive: Int32Array;
  readonly listenerUdpSessions: Int32Array;
  readonly backend: Float64Array;
  readonly listener: Float64Array;
  readonly connectLatency: SharedHistogram;
  readonly connectionDuration: SharedHistogram;
  readonly worker: Float64Array;
  readonly health: Float64Array;
  readonly healthDuration: SharedHistogram;
  readonly control: Float64Array;
  readonly publishStamp: BigInt64Array;
  readonly snapshotPropagation: SharedHistogram;

  constructor(buffer: SharedArrayBuffer, dims: CounterDimensions) {
    const r = regions(dims);
    if (buffer.byteLength < r.byteLength) {
      throw new RangeError(`counter buffer is ${buffer.byteLength} bytes, needs ${r.byteLength}`);
    }
    const shapes = histogramShapes(dims);
    this.dims = dims;
    this.active = new Int32Array(buffer, r.activeOffset, dims.workers * dims.backendSlots);
    this.activeTotal = new Int32Array(buffer, r.activeTotalOffset, dims.backendSlots);
    this.udpActive = new Int32Array(buffer, r.udpActiveOffset, dims.workers * dims.backendSlots);
    this.listenerUdpSessions = new Int32Array(buffer, r.listenerUdpOffset, dims.workers * dims.listenerSlots);
    this.backend = new Float64Array(buffer, r.backendOffset, dims.workers * dims.backendSlots * BACKEND_FIELDS);
    this.listener = new Float64Array(buffer, r.listenerOffset, dims.workers * dims.listenerSlots * LISTENER_FIELDS);
    this.connectLatency = new SharedHistogram(buffer, r.connectLatencyOffset, shapes.connectLatency);
    this.connectionDuration = new SharedHistogram(buffer, r.connectionDurationOffset, shapes.connectionDuration);
    this.worker = new Float64Array(buffer, r.workerOffset, dims.workers * WORKER_FIELDS);
    this.health = new Float64Array(buffer, r.healthOffset, dims.backendSlots * HEALTH_FIELDS);
    this.healthDuration = new SharedHistogram(buffer, r.healthDurationOffset, shapes.healthDuration);
    this.control = new Float64Array(buffer, r.controlOffset, CONTROL_FIELDS);
    this.publishStamp = new BigInt64Array(buffer, r.publishStampOffset, STAMP_FIELDS);
    this.snapshotPropagation = new SharedHistogram(buffer, r.snapshotPropagationOffset, shapes.snapshotPropagation);
  }

  /** Connections assigned to a backend over every worker (the global row: one atomic load). */
  activeConnections(slot: number): number {
    return Atomics.load(this.activeTotal, slot);
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

  workerTotal(field: WorkerCounter): number {
    let sum = 0;
    for (let w = 0; w < this.dims.workers; w++) sum += this.worker[w * WORKER_FIELDS + field] ?? 0;
    return sum;
  }

  healthTotal(slot: number, field: HealthCounter): number {
    return this.health[slot * HEALTH_FIELDS + field] ?? 0;
  }

  controlTotal(field: ControlCounter): number {
    return this.control[field] ?? 0;
  }

  /**
   * A dead worker's sockets died with it: its share of every backend's count leaves the
   * global row, then its own rows (connections, UDP sessions) are cleared. Call only once the
   * worker has exited (its rows no longer move) and before a replacement takes them over.
   */
  clearWorkerActive(worker: number): void {
    const base = worker * this.dims.backendSlots;
    for (let s = 0; s < this.dims.backendSlots; s++) {
      const held = Atomics.exchange(this.active, base + s, 0);
      if (held !== 0) subtractNotBelowZero(this.activeTotal, s, held);
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
    this.connectLatency.resetKey(slot);
    this.connectionDuration.resetKey(slot);
    this.health.fill(0, slot * HEALTH_FIELDS, (slot + 1) * HEALTH_FIELDS);
    this.healthDuration.resetKey(slot);
  }

  /** The writer for one worker's row. */
  forWorker(worker: number): WorkerCounters {
    return new WorkerCounters(this, worker);
  }

  /** The writer of the control-plane cells; only the control-plane worker holds one. */
  forControlPlane(): ControlPlaneCounters {
    return new ControlPlaneCounters(this);
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
  private readonly udpActive: Int32Array;
  private readonly listenerUdpSessions: Int32Array;
  private readonly backend: Float64Array;
  private readonly listener: Float64Array;
  private readonly activeBase: number;
  private readonly listenerUdpBase: number;
  private readonly backendBase: number;
  private readonly listenerBase: number;
  private readonly worker: number;
  private readonly connectLatency: SharedHistogram;
  private readonly connectionDuration: SharedHistogram;
  private readonly workerCells: Float64Array;
  private readonly workerBase: number;
  private readonly snapshotPropagation: SharedHistogram;
  /** Read-only here: the control plane writes it. */
  readonly publishStamp: BigInt64Array;

  constructor(tables: CounterTables, worker: number) {
    this.worker = worker;
    this.snapshotPropagation = tables.snapshotPropagation;
    this.publishStamp = tables.publishStamp;
    this.workerCells = tables.worker;
    this.workerBase = worker * WORKER_FIELDS;
    this.active = tables.active;
    this.activeTotal = tables.activeTotal;
    this.udpActive = tables.udpActive;
    this.listenerUdpSessions = tables.listenerUdpSessions;
    this.backend = tables.backend;
    this.listener = tables.listener;
    this.connectLatency = tables.connectLatency;
    this.connectionDuration = tables.connectionDuration;
    this.activeBase = worker * tables.dims.backendSlots;
    this.listenerUdpBase = worker * tables.dims.listenerSlots;
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

  /**
   * A UDP session started on a backend whose place the caller already `reserve`d (the session
   * holds it until `release`): counted as a connection, a UDP session and a listener session.
   */
  udpSessionOpened(backendSlot: number, listenerSlot: number): void {
    Atomics.add(this.udpActive, this.activeBase + backendSlot, 1);
    Atomics.add(this.listenerUdpSessions, this.listenerUdpBase + listenerSlot, 1);
    this.bumpBackend(backendSlot, BackendCounter.connections, 1);
    this.bumpBackend(backendSlot, BackendCounter.udpSessions, 1);
    this.bumpListener(listenerSlot, ListenerCounter.accepted);
  }

  udpSessionClosed(backendSlot: number, listenerSlot: number): void {
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

  bumpWorker(field: WorkerCounter): void {
    const i = this.workerBase + field;
    this.workerCells[i] = (this.workerCells[i] ?? 0) + 1;
  }

  /** One successful connect attempt to the backend in `slot` took `ms`. */
  observeConnectLatency(slot: number, ms: number): void {
    this.connectLatency.observe(this.worker, slot, ms);
  }

  /** A connection proxied to the backend in `slot` lived `ms`, accept to close. */
  observeConnectionDuration(slot: number, ms: number): void {
    this.connectionDuration.observe(this.worker, slot, ms);
  }

  /** This worker took a snapshot version in `ms` after its publish began. */
  observeSnapshotPropagation(ms: number): void {
    this.snapshotPropagation.observe(this.worker, 0, ms);
  }
}

/** Control-plane counter updates (health probes, snapshot publishes); O(1), allocation-free. */
export class ControlPlaneCounters {
  private readonly health: Float64Array;
  private readonly healthDuration: SharedHistogram;
  private readonly control: Float64Array;
  readonly publishStamp: BigInt64Array;

  constructor(tables: CounterTables) {
    this.publishStamp = tables.publishStamp;
    this.health = tables.health;
    this.healthDuration = tables.healthDuration;
    this.control = tables.control;
  }

  /** One active probe of the backend in `slot` ended with `result` after `ms`. */
  probeFinished(slot: number, result: HealthCounter, ms: number): void {
    const i = slot * HEALTH_FIELDS + result;
    this.health[i] = (this.health[i] ?? 0) + 1;
    this.healthDuration.observe(0, slot, ms);
  }

  snapshotPublished(): void {
    this.control[ControlCounter.snapshotPublishes] = (this.control[ControlCounter.snapshotPublishes] ?? 0) + 1;
  }
}
