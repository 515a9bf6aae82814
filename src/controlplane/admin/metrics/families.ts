/**
 * Every Sluice metric, declared once as data: name, help, type, and how its samples are
 * read at scrape time from the live snapshot and the shared counters. Nothing here is
 * updated per connection or by message: the data plane and the control plane count into
 * shared memory (src/shared/counters.ts), and a scrape sums those cells.
 *
 * Labels: `cluster` and `backend` (the backend's address; the pair is unique) on backend
 * series, `listener` on listener series. A removed backend's series end with it.
 * Durations are exported in seconds (Prometheus convention); they are counted in ms.
 *
 * Monotonicity: counters are sums of cells that only grow (each with one writer), and a
 * restarted worker continues its dead predecessor's row, so no counter goes backwards when
 * a worker restarts. Only the active-connections gauge of a dead worker is cleared (its
 * sockets died with it).
 */
import type { CounterTables } from '../../../shared/counters.ts';
import { BackendCounter, ControlCounter, HealthCounter, ListenerCounter, WorkerCounter } from '../../../shared/counters.ts';
import type { HistogramReading } from '../../../shared/histogram.ts';
import type { ListenerBinding } from '../../../shared/messages.ts';
import { BACKEND_STATES, type Snapshot, type SnapshotBackend } from '../../../shared/snapshot/types.ts';

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface Sample {
  /** Set for histogram parts (`_bucket`, `_sum`, `_count`); otherwise the family name. */
  readonly metricName?: string;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
}

/** What a scrape reads. */
export interface MetricSources {
  readonly snapshot: Snapshot;
  readonly counters: CounterTables;
  readonly listeners: readonly ListenerBinding[];
  /** Worker restarts the supervisor performed since start, by plane. */
  readonly restarts: { readonly dataPlane: number; readonly controlPlane: number };
}

export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly collect: (sources: MetricSources) => Sample[];
}

interface BackendRow {
  readonly cluster: string;
  readonly backend: SnapshotBackend;
}

function backendRows(snapshot: Snapshot): BackendRow[] {
  const rows: BackendRow[] = [];
  for (const cluster of snapshot.clusters) for (const backend of cluster.backends) rows.push({ cluster: cluster.name, backend });
  return rows;
}

function backendLabels(row: BackendRow): Record<string, string> {
  return { cluster: row.cluster, backend: row.backend.address };
}

/** One sample per backend in the snapshot. */
function perBackend(read: (s: MetricSources, slot: number, row: BackendRow) => number) {
  return (s: MetricSources): Sample[] =>
    backendRows(s.snapshot).map((row) => ({ labels: backendLabels(row), value: read(s, row.backend.slot, row) }));
}

/** Prometheus histogram samples for one label set; bounds and sum converted ms → s. */
export function histogramSamples(name: string, labels: Readonly<Record<string, string>>, reading: HistogramReading): Sample[] {
  const samples: Sample[] = reading.bounds.map((bound, i) => ({
    metricName: `${name}_bucket`,
    labels: { ...labels, le: bound / 1000 },
    value: reading.cumulative[i] ?? 0,
  }));
  samples.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: reading.count });
  samples.push({ metricName: `${name}_sum`, labels, value: reading.sum / 1000 });
  samples.push({ metricName: `${name}_count`, labels, value: reading.count });
  return samples;
}

function backendHistogram(name: string, pick: (counters: CounterTables) => { read: (key: number) => HistogramReading }) {
  return (s: MetricSources): Sample[] =>
    backendRows(s.snapshot).flatMap((row) => histogramSamples(name, backendLabels(row), pick(s.counters).read(row.backend.slot)));
}

/** Refusal reasons as they appear in `sluice_listener_refused_total{reason}`. */
export const REFUSAL_REASONS: readonly { readonly reason: string; readonly field: ListenerCounter }[] = [
  { reason: 'no_backend', field: ListenerCounter.refusedNoBackend },
  { reason: 'all_backends_failed', field: ListenerCounter.refusedAllFailed },
  { reason: 'draining', field: ListenerCounter.refusedDraining },
];

const HEALTH_RESULTS: readonly { readonly result: string; readonly field: HealthCounter }[] = [
  { result: 'success', field: HealthCounter.success },
  { result: 'failure', field: HealthCounter.failure },
  { result: 'timeout', field: HealthCounter.timeout },
];

const CONNECT_DURATION = 'sluice_backend_connect_duration_seconds';
const CONNECTION_DURATION = 'sluice_backend_connection_duration_seconds';
const HEALTH_CHECK_DURATION = 'sluice_health_check_duration_seconds';

export const METRIC_FAMILIES: readonly MetricFamily[] = [
  {
    name: 'sluice_backend_active_connections',
    help: 'Open proxied connections to the backend, summed over every data-plane worker.',
    type: 'gauge',
    collect: perBackend((s, slot) => s.counters.activeConnections(slot)),
  },
  {
    name: 'sluice_backend_connections_total',
    help: 'Connections proxied to the backend (counted when the backend connection is established).',
    type: 'counter',
    collect: perBackend((s, slot) => s.counters.backendTotal(slot, BackendCounter.connections)),
  },
  {
    name: 'sluice_backend_connect_failures_total',
    help: 'Failed connect attempts to the backend (refused, reset, unreachable or timed out).',
    type: 'counter',
    collect: perBackend((s, slot) => s.counters.backendTotal(slot, BackendCounter.connectFailures)),
  },
  {
    name: 'sluice_backend_connect_timeouts_total',
    help: 'Connect attempts to the backend that ended at connect_timeout (also counted as failures).',
    type: 'counter',
    collect: perBackend((s, slot) => s.counters.backendTotal(slot, BackendCounter.connectTimeouts)),
  },
  {
    name: 'sluice_backend_bytes_total',
    help: 'Bytes proxied through the backend: direction="from_client" read from clients, "to_client" written to them. Open connections are folded in every second.',
    type: 'counter',
    collect: (s) =>
      backendRows(s.snapshot).flatMap((row) => [
        { labels: { ...backendLabels(row), direction: 'from_client' }, value: s.counters.backendTotal(row.backend.slot, BackendCounter.bytesFromClient) },
        { labels: { ...backendLabels(row), direction: 'to_client' }, value: s.counters.backendTotal(row.backend.slot, BackendCounter.bytesToClient) },
      ]),
  },
  {
    name: 'sluice_backend_state',
    help: 'The backend state in the published snapshot: 1 for the current state, 0 for the others.',
    type: 'gauge',
    collect: (s) =>
      backendRows(s.snapshot).flatMap((row) =>
        BACKEND_STATES.map((state) => ({ labels: { ...backendLabels(row), state }, value: row.backend.state === state ? 1 : 0 })),
      ),
  },
  {
    name: 'sluice_backend_weight',
    help: 'The backend weight in the published snapshot (0 = no new connections).',
    type: 'gauge',
    collect: perBackend((_s, _slot, row) => row.backend.weight),
  },
  {
    name: CONNECT_DURATION,
    help: 'Time one successful connect attempt to the backend took.',
    type: 'histogram',
    collect: backendHistogram(CONNECT_DURATION, (c) => c.connectLatency),
  },
  {
    name: CONNECTION_DURATION,
    help: 'Lifetime of connections proxied to the backend, from accept to close.',
    type: 'histogram',
    collect: backendHistogram(CONNECTION_DURATION, (c) => c.connectionDuration),
  },
  {
    name: 'sluice_listener_connections_total',
    help: 'Connections accepted by the listener, including refused ones.',
    type: 'counter',
    collect: (s) => s.listeners.map((l) => ({ labels: { listener: l.name }, value: s.counters.listenerTotal(l.slot, ListenerCounter.accepted) })),
  },
  {
    name: 'sluice_listener_refused_total',
    help: 'Accepted connections closed without being proxied, by reason: no_backend (none eligible), all_backends_failed (every connect attempt failed), draining.',
    type: 'counter',
    collect: (s) =>
      s.listeners.flatMap((l) =>
        REFUSAL_REASONS.map(({ reason, field }) => ({ labels: { listener: l.name, reason }, value: s.counters.listenerTotal(l.slot, field) })),
      ),
  },
  {
    name: 'sluice_snapshot_version',
    help: 'Version of the routing snapshot the data plane routes by.',
    type: 'gauge',
    collect: (s) => [{ labels: {}, value: s.snapshot.version }],
  },
  {
    name: 'sluice_snapshot_publishes_total',
    help: 'Routing snapshots the control plane published.',
    type: 'counter',
    collect: (s) => [{ labels: {}, value: s.counters.controlTotal(ControlCounter.snapshotPublishes) }],
  },
  {
    name: 'sluice_health_checks_total',
    help: 'Active health probes of the backend, by result (success, failure, timeout).',
    type: 'counter',
    collect: (s) =>
      backendRows(s.snapshot).flatMap((row) =>
        HEALTH_RESULTS.map(({ result, field }) => ({ labels: { ...backendLabels(row), result }, value: s.counters.healthTotal(row.backend.slot, field) })),
      ),
  },
  {
    name: HEALTH_CHECK_DURATION,
    help: 'Duration of active health probes of the backend.',
    type: 'histogram',
    collect: backendHistogram(HEALTH_CHECK_DURATION, (c) => c.healthDuration),
  },
  {
    name: 'sluice_access_log_records_total',
    help: 'Access log lines produced (sampled connections), including dropped ones.',
    type: 'counter',
    collect: (s) => [{ labels: {}, value: s.counters.workerTotal(WorkerCounter.accessLogLines) }],
  },
  {
    name: 'sluice_access_log_dropped_total',
    help: 'Access log lines dropped because the destination fell too far behind.',
    type: 'counter',
    collect: (s) => [{ labels: {}, value: s.counters.workerTotal(WorkerCounter.accessLogDropped) }],
  },
  {
    name: 'sluice_worker_restarts_total',
    help: 'Crashed worker threads the supervisor restarted, by plane (data, control).',
    type: 'counter',
    collect: (s) => [
      { labels: { plane: 'data' }, value: s.restarts.dataPlane },
      { labels: { plane: 'control' }, value: s.restarts.controlPlane },
    ],
  },
];
