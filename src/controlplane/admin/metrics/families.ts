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
import type { DiscoveryStatus } from '../../../shared/discovery-status.ts';
import type { RegistryStatusReport } from '../../../shared/registry-status.ts';
import type { ListenerBinding } from '../../../shared/messages.ts';
import { BACKEND_STATES, type Snapshot, type SnapshotBackend } from '../../../shared/snapshot/types.ts';

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface Sample {
  /** `_bucket`, `_sum` or `_count` for histogram parts; '' for plain samples. */
  readonly suffix: '' | '_bucket' | '_sum' | '_count';
  /** Formatted and escaped label pairs without braces: `cluster="web",backend="10.0.0.1:80"`. */
  readonly labels: string;
  readonly value: number;
}

/** What a scrape reads. */
export interface MetricSources {
  readonly snapshot: Snapshot;
  readonly counters: CounterTables;
  readonly listeners: readonly ListenerBinding[];
  /** Worker restarts the supervisor performed since start, by plane. */
  readonly restarts: { readonly dataPlane: number; readonly controlPlane: number };
  /** The latest status of each discovered cluster (none without discovery). */
  readonly discovery?: readonly DiscoveryStatus[];
  /** Config reloads (SIGHUP, POST /config/reload) since start, by outcome; absent reads as 0. */
  readonly reloads?: { readonly success: number; readonly failure: number };
  /** With `registry:`: the last registry report and the fleet instances out of step for a while. */
  readonly registry?: { readonly status: RegistryStatusReport; readonly mismatched: number };
  /**
   * Per-backend series for at most this many backends, in snapshot order
   * (`admin.metrics_backend_limit`); absent: every backend.
   */
  readonly backendSeriesLimit?: number;
}

export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly collect: (sources: MetricSources) => Sample[];
}

const NEEDS_ESCAPE = /[\\"\n]/;

/** A label value as the text format wants it: backslash, quote and newline escaped. */
export function escapeLabelValue(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

export function label(name: string, value: string): string {
  return `${name}="${escapeLabelValue(value)}"`;
}

interface BackendRow {
  readonly backend: SnapshotBackend;
  /** `cluster="…",backend="…"`, formatted once per snapshot. */
  readonly labels: string;
}

/**
 * The label text of every backend with series, built once per snapshot version (snapshots
 * are immutable) and shared by every family: a scrape of 1,000 backends formats each label
 * pair once instead of once per sample. Bounded by the scrape's limit: about 60 samples a
 * backend make 100,000 backends a body past V8's longest string (and past any sane scrape).
 */
const rowsBySnapshot = new WeakMap<Snapshot, { readonly limit: number; readonly rows: BackendRow[] }>();

function backendRows(s: MetricSources): BackendRow[] {
  const limit = s.backendSeriesLimit ?? Number.POSITIVE_INFINITY;
  const cached = rowsBySnapshot.get(s.snapshot);
  if (cached?.limit === limit) return cached.rows;
  const rows: BackendRow[] = [];
  for (const cluster of s.snapshot.clusters) {
    for (const backend of cluster.backends) {
      if (rows.length >= limit) break;
      rows.push({ backend, labels: `${label('cluster', cluster.name)},${label('backend', backend.address)}` });
    }
  }
  rowsBySnapshot.set(s.snapshot, { limit, rows });
  return rows;
}

/** Backends beyond the limit, which have no per-backend series in this scrape. */
function omittedBackends(s: MetricSources): number {
  const total = s.snapshot.clusters.reduce((sum, cluster) => sum + cluster.backends.length, 0);
  return Math.max(0, total - backendRows(s).length);
}

/** One sample per backend in the snapshot. */
function perBackend(read: (s: MetricSources, slot: number, backend: SnapshotBackend) => number) {
  return (s: MetricSources): Sample[] =>
    backendRows(s).map((row) => ({ suffix: '', labels: row.labels, value: read(s, row.backend.slot, row.backend) }));
}

/** One sample per backend and value of an extra label. */
function perBackendAnd<T>(name: string, values: readonly { readonly value: string; readonly of: T }[], read: (s: MetricSources, backend: SnapshotBackend, of: T) => number) {
  const extras = values.map((v) => ({ text: `,${label(name, v.value)}`, of: v.of }));
  return (s: MetricSources): Sample[] =>
    backendRows(s).flatMap((row) =>
      extras.map((extra) => ({ suffix: '' as const, labels: row.labels + extra.text, value: read(s, row.backend, extra.of) })),
    );
}

const leLabels = new WeakMap<readonly number[], string[]>();

/** `le="0.005"` for every bound (ms → s), computed once per bounds array. */
function leLabelsOf(bounds: readonly number[]): string[] {
  let labels = leLabels.get(bounds);
  if (labels === undefined) {
    labels = bounds.map((bound) => `le="${bound / 1000}"`);
    leLabels.set(bounds, labels);
  }
  return labels;
}

/** Prometheus histogram samples for one label set; bounds and sum converted ms → s. */
export function histogramSamples(labels: string, reading: HistogramReading): Sample[] {
  const prefix = labels === '' ? '' : `${labels},`;
  const samples: Sample[] = leLabelsOf(reading.bounds).map((le, i) => ({ suffix: '_bucket', labels: prefix + le, value: reading.cumulative[i] ?? 0 }));
  samples.push({ suffix: '_bucket', labels: `${prefix}le="+Inf"`, value: reading.count });
  samples.push({ suffix: '_sum', labels, value: reading.sum / 1000 });
  samples.push({ suffix: '_count', labels, value: reading.count });
  return samples;
}

function backendHistogram(pick: (counters: CounterTables) => { read: (key: number) => HistogramReading }) {
  return (s: MetricSources): Sample[] => backendRows(s).flatMap((row) => histogramSamples(row.labels, pick(s.counters).read(row.backend.slot)));
}

function single(value: number, labels = ''): Sample {
  return { suffix: '', labels, value };
}

/**
 * Refusal reasons as they appear in `sluice_listener_refused_total{reason}`. A draining TCP
 * listener closes instead of refusing; `draining` counts the datagrams a draining UDP listener
 * (still bound for its open sessions' replies) refused to start a session for. `at_limit`:
 * every eligible backend at max_connections (TCP: and no room in the queue). The edge
 * gate's refusals follow.
 */
export const REFUSAL_REASONS: readonly { readonly reason: string; readonly field: ListenerCounter }[] = [
  { reason: 'no_backend', field: ListenerCounter.refusedNoBackend },
  { reason: 'all_backends_failed', field: ListenerCounter.refusedAllFailed },
  { reason: 'draining', field: ListenerCounter.refusedDraining },
  { reason: 'at_limit', field: ListenerCounter.refusedAtLimit },
  // Edge protection and routing (src/dataplane/edge-gate.ts): closed before any backend.
  { reason: 'acl', field: ListenerCounter.refusedAcl },
  { reason: 'max_connections', field: ListenerCounter.refusedMaxConnections },
  { reason: 'per_ip_connections', field: ListenerCounter.refusedPerIpConnections },
  { reason: 'per_ip_rate', field: ListenerCounter.refusedPerIpRate },
  { reason: 'proxy_header', field: ListenerCounter.refusedProxyHeader },
  { reason: 'proxy_header_timeout', field: ListenerCounter.refusedProxyTimeout },
  { reason: 'proxy_untrusted', field: ListenerCounter.refusedProxyUntrusted },
  { reason: 'tls_hello', field: ListenerCounter.refusedTlsHello },
  { reason: 'tls_hello_timeout', field: ListenerCounter.refusedTlsTimeout },
  { reason: 'sni_no_route', field: ListenerCounter.refusedSniNoRoute },
];

/** Why UDP sessions ended, as they appear in `sluice_listener_udp_sessions_ended_total{reason}`. */
const UDP_SESSION_ENDS: readonly { readonly reason: string; readonly field: ListenerCounter }[] = [
  { reason: 'evicted', field: ListenerCounter.udpSessionsEvicted },
  { reason: 'expired', field: ListenerCounter.udpSessionsExpired },
];

function udpListeners(s: MetricSources): readonly ListenerBinding[] {
  return s.listeners.filter((l) => l.protocol === 'udp');
}

const HEALTH_RESULTS: readonly { readonly result: string; readonly field: HealthCounter }[] = [
  { result: 'success', field: HealthCounter.success },
  { result: 'failure', field: HealthCounter.failure },
  { result: 'timeout', field: HealthCounter.timeout },
];

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
    collect: perBackendAnd(
      'direction',
      [
        { value: 'from_client', of: BackendCounter.bytesFromClient },
        { value: 'to_client', of: BackendCounter.bytesToClient },
      ],
      (s, backend, field) => s.counters.backendTotal(backend.slot, field),
    ),
  },
  {
    name: 'sluice_backend_state',
    help: 'The backend state in the published snapshot: 1 for the current state, 0 for the others.',
    type: 'gauge',
    collect: perBackendAnd(
      'state',
      BACKEND_STATES.map((state) => ({ value: state, of: state })),
      (_s, backend, state) => (backend.state === state ? 1 : 0),
    ),
  },
  {
    name: 'sluice_backend_weight',
    help: 'The backend weight in the published snapshot (0 = no new connections).',
    type: 'gauge',
    collect: perBackend((_s, _slot, backend) => backend.weight),
  },
  {
    name: 'sluice_backend_connect_duration_seconds',
    help: 'Time one successful connect attempt to the backend took.',
    type: 'histogram',
    collect: backendHistogram((c) => c.connectLatency),
  },
  {
    name: 'sluice_backend_connection_duration_seconds',
    help: 'Lifetime of connections proxied to the backend, from accept to close.',
    type: 'histogram',
    collect: backendHistogram((c) => c.connectionDuration),
  },
  {
    name: 'sluice_listener_connections_total',
    help: 'Connections accepted by the listener, including refused ones.',
    type: 'counter',
    collect: (s) => s.listeners.map((l) => single(s.counters.listenerTotal(l.slot, ListenerCounter.accepted), label('listener', l.name))),
  },
  {
    name: 'sluice_listener_refused_total',
    help:
      'Accepted connections closed without being proxied (UDP: datagrams that could not start a session), by reason: no_backend (none eligible), ' +
      'all_backends_failed (every connect attempt failed), draining (UDP only), at_limit (every eligible backend at max_connections, no room in the queue); ' +
      'edge refusals before any backend: acl, max_connections, per_ip_connections, per_ip_rate, proxy_header (malformed or missing), proxy_header_timeout, ' +
      'proxy_untrusted (a peer outside accept_proxy.trusted), ' +
      'tls_hello (not a TLS ClientHello), tls_hello_timeout, sni_no_route.',
    type: 'counter',
    collect: (s) =>
      s.listeners.flatMap((l) =>
        REFUSAL_REASONS.map(({ reason, field }) => single(s.counters.listenerTotal(l.slot, field), `${label('listener', l.name)},${label('reason', reason)}`)),
      ),
  },
  {
    name: 'sluice_listener_limits_table_full_total',
    help: 'Connections admitted without their per-IP check because the shared per-IP table had no free slot (it fails open; max_connections still applies).',
    type: 'counter',
    collect: (s) => s.listeners.map((l) => single(s.counters.listenerTotal(l.slot, ListenerCounter.limitsTableFull), label('listener', l.name))),
  },
  {
    name: 'sluice_udp_sessions',
    help: 'Open UDP sessions to the backend (also counted in sluice_backend_active_connections), summed over every data-plane worker.',
    type: 'gauge',
    collect: perBackend((s, slot) => s.counters.udpSessions(slot)),
  },
  {
    name: 'sluice_udp_sessions_total',
    help: 'UDP sessions created to the backend (also counted in sluice_backend_connections_total).',
    type: 'counter',
    collect: perBackend((s, slot) => s.counters.backendTotal(slot, BackendCounter.udpSessions)),
  },
  {
    name: 'sluice_udp_datagrams_total',
    help: 'UDP datagrams proxied through the backend: direction="from_client" sent to it, "to_client" its replies passed back. Their bytes are in sluice_backend_bytes_total.',
    type: 'counter',
    collect: perBackendAnd(
      'direction',
      [
        { value: 'from_client', of: BackendCounter.udpDatagramsFromClient },
        { value: 'to_client', of: BackendCounter.udpDatagramsToClient },
      ],
      (s, backend, field) => s.counters.backendTotal(backend.slot, field),
    ),
  },
  {
    name: 'sluice_listener_udp_sessions',
    help: 'Open UDP sessions of the listener, summed over every data-plane worker (each worker holds at most max_sessions / workers).',
    type: 'gauge',
    collect: (s) => udpListeners(s).map((l) => single(s.counters.listenerUdpSessionsTotal(l.slot), label('listener', l.name))),
  },
  {
    name: 'sluice_listener_udp_sessions_ended_total',
    help: 'UDP sessions the listener ended early, by reason: evicted (max_sessions reached; least recently active first), expired (session_timeout without traffic).',
    type: 'counter',
    collect: (s) =>
      udpListeners(s).flatMap((l) =>
        UDP_SESSION_ENDS.map(({ reason, field }) => single(s.counters.listenerTotal(l.slot, field), `${label('listener', l.name)},${label('reason', reason)}`)),
      ),
  },
  {
    name: 'sluice_listener_udp_datagrams_dropped_total',
    help: 'Datagrams dropped after a session existed: a full send queue, a session socket that failed, or a late reply to a session that had ended (its socket was pooled).',
    type: 'counter',
    collect: (s) => udpListeners(s).map((l) => single(s.counters.listenerTotal(l.slot, ListenerCounter.udpDatagramsDropped), label('listener', l.name))),
  },
  {
    name: 'sluice_metrics_backends_omitted',
    help: 'Backends without per-backend series in this scrape: beyond admin.metrics_backend_limit, in snapshot order.',
    type: 'gauge',
    collect: (s) => [single(omittedBackends(s))],
  },
  {
    name: 'sluice_snapshot_version',
    help: 'Version of the routing snapshot the data plane routes by.',
    type: 'gauge',
    collect: (s) => [single(s.snapshot.version)],
  },
  {
    name: 'sluice_snapshot_publishes_total',
    help: 'Routing snapshots the control plane published.',
    type: 'counter',
    collect: (s) => [single(s.counters.controlTotal(ControlCounter.snapshotPublishes))],
  },
  {
    name: 'sluice_health_checks_total',
    help: 'Scheduled active health probes of the backend, by result (success, failure, timeout); the probe before a backend is first published is not counted.',
    type: 'counter',
    collect: perBackendAnd(
      'result',
      HEALTH_RESULTS.map(({ result, field }) => ({ value: result, of: field })),
      (s, backend, field) => s.counters.healthTotal(backend.slot, field),
    ),
  },
  {
    name: 'sluice_health_check_duration_seconds',
    help: 'Duration of active health probes of the backend.',
    type: 'histogram',
    collect: backendHistogram((c) => c.healthDuration),
  },
  {
    name: 'sluice_access_log_records_total',
    help: 'Access log lines produced (sampled connections), including dropped ones.',
    type: 'counter',
    collect: (s) => [single(s.counters.workerTotal(WorkerCounter.accessLogLines))],
  },
  {
    name: 'sluice_access_log_dropped_total',
    help: 'Access log lines dropped because the destination fell too far behind.',
    type: 'counter',
    collect: (s) => [single(s.counters.workerTotal(WorkerCounter.accessLogDropped))],
  },
  {
    name: 'sluice_worker_restarts_total',
    help: 'Crashed worker threads the supervisor restarted, by plane (data, control).',
    type: 'counter',
    collect: (s) => [single(s.restarts.dataPlane, label('plane', 'data')), single(s.restarts.controlPlane, label('plane', 'control'))],
  },
  {
    name: 'sluice_config_reloads_total',
    help: 'Config reloads (SIGHUP or POST /config/reload), by result: success, or failure (the file was rejected and the running config stays).',
    type: 'counter',
    collect: (s) => [single(s.reloads?.success ?? 0, label('result', 'success')), single(s.reloads?.failure ?? 0, label('result', 'failure'))],
  },
];
