import { describe, expect, it } from 'vitest';
import { METRIC_FAMILIES, type MetricSources } from '../../../src/controlplane/admin/metrics/families.ts';
import { createMetrics } from '../../../src/controlplane/admin/metrics/registry.ts';
import {
  BackendCounter,
  CounterTables,
  createCounterBuffer,
  HealthCounter,
  ListenerCounter,
  WorkerCounter,
  type CounterDimensions,
} from '../../../src/shared/counters.ts';
import { parsePrometheus, select, total } from '../../helpers/metrics.ts';
import { testBackend, testCluster, testSnapshot } from '../../helpers/snapshot.ts';

const DIMS: CounterDimensions = { workers: 2, backendSlots: 8, listenerSlots: 4 };

const SNAPSHOT = testSnapshot({
  version: 7,
  clusters: [
    testCluster({
      backends: [
        testBackend('10.0.0.1:80', { slot: 3, weight: 5, configuredWeight: 5 }),
        testBackend('10.0.0.2:80', { slot: 5, state: 'draining', admin: 'drain' }),
      ],
    }),
  ],
});

function setup(): { counters: CounterTables; render: () => Promise<ReturnType<typeof parsePrometheus>>; text: () => Promise<string> } {
  const counters = new CounterTables(createCounterBuffer(DIMS), DIMS);
  const sources = (): MetricSources => ({
    snapshot: SNAPSHOT,
    counters,
    listeners: [
      { name: 'web', slot: 2, host: '127.0.0.1', port: 8080, protocol: 'tcp' },
      { name: 'dns', slot: 3, host: '127.0.0.1', port: 5353, protocol: 'udp' },
    ],
    restarts: { dataPlane: 1, controlPlane: 0 },
  });
  const metrics = createMetrics(sources, { processMetrics: false });
  return { counters, text: () => metrics.render(), render: async () => parsePrometheus(await metrics.render()) };
}

describe('metric families', () => {
  it('declares each family once, with a sluice_ name, help and type in the exposition', async () => {
    const names = METRIC_FAMILIES.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
    const text = await setup().text();
    for (const family of METRIC_FAMILIES) {
      expect(family.name).toMatch(/^sluice_[a-z_]+$/);
      expect(text).toContain(`# HELP ${family.name} `);
      expect(text).toContain(`# TYPE ${family.name} ${family.type}`);
    }
  });

  it('sums every worker row per backend, labelled by cluster and backend address', async () => {
    const { counters, render } = setup();
    const w0 = counters.forWorker(0);
    const w1 = counters.forWorker(1);
    w0.reserve(3, 0);
    w0.connectionOpened(3);
    w1.reserve(3, 0);
    w1.connectionOpened(3);
    w1.reserve(5, 0);
    w1.connectionOpened(5);
    w1.release(5);
    w0.bumpBackend(3, BackendCounter.bytesFromClient, 100);
    w1.bumpBackend(3, BackendCounter.bytesFromClient, 50);
    w1.bumpBackend(3, BackendCounter.bytesToClient, 7);
    w0.bumpBackend(5, BackendCounter.connectFailures, 2);
    w0.bumpBackend(5, BackendCounter.connectTimeouts, 1);
    const samples = await render();
    const first = { cluster: 'web', backend: '10.0.0.1:80' };
    const second = { cluster: 'web', backend: '10.0.0.2:80' };
    expect(total(samples, 'sluice_backend_active_connections', first)).toBe(2);
    expect(total(samples, 'sluice_backend_active_connections', second)).toBe(0);
    expect(total(samples, 'sluice_backend_connections_total', first)).toBe(2);
    expect(total(samples, 'sluice_backend_connections_total', second)).toBe(1);
    expect(total(samples, 'sluice_backend_bytes_total', { ...first, direction: 'from_client' })).toBe(150);
    expect(total(samples, 'sluice_backend_bytes_total', { ...first, direction: 'to_client' })).toBe(7);
    expect(total(samples, 'sluice_backend_connect_failures_total', second)).toBe(2);
    expect(total(samples, 'sluice_backend_connect_timeouts_total', second)).toBe(1);
    expect(total(samples, 'sluice_backend_weight', first)).toBe(5);
    // Only the snapshot's backends appear: slot 0 has no series.
    expect(select(samples, 'sluice_backend_connections_total')).toHaveLength(2);
  });

  it('sums UDP sessions and datagrams per backend, and UDP session ends per udp listener only', async () => {
    const { counters, render } = setup();
    const w0 = counters.forWorker(0);
    const w1 = counters.forWorker(1);
    // As the UDP proxy does: reserve the backend's place, then open; close, then release.
    for (const [w, slot] of [[w0, 3], [w1, 3], [w1, 5]] as const) {
      w.reserve(slot, 0);
      w.udpSessionOpened(slot, 3);
    }
    w1.udpSessionClosed(5, 3);
    w1.release(5);
    w0.bumpBackend(3, BackendCounter.udpDatagramsFromClient, 4);
    w1.bumpBackend(3, BackendCounter.udpDatagramsToClient, 3);
    w0.bumpListener(3, ListenerCounter.udpSessionsEvicted);
    w1.bumpListener(3, ListenerCounter.udpSessionsExpired);
    w1.bumpListener(3, ListenerCounter.udpSessionsExpired);
    w1.bumpListener(3, ListenerCounter.udpDatagramsDropped);
    const samples = await render();
    const first = { cluster: 'web', backend: '10.0.0.1:80' };
    const second = { cluster: 'web', backend: '10.0.0.2:80' };
    expect(total(samples, 'sluice_udp_sessions', first)).toBe(2);
    expect(total(samples, 'sluice_udp_sessions', second)).toBe(0);
    expect(total(samples, 'sluice_udp_sessions_total', second)).toBe(1);
    // A UDP session is also an open connection of its backend.
    expect(total(samples, 'sluice_backend_active_connections', first)).toBe(2);
    expect(total(samples, 'sluice_udp_datagrams_total', { ...first, direction: 'from_client' })).toBe(4);
    expect(total(samples, 'sluice_udp_datagrams_total', { ...first, direction: 'to_client' })).toBe(3);
    expect(total(samples, 'sluice_listener_udp_sessions', { listener: 'dns' })).toBe(2);
    expect(total(samples, 'sluice_listener_udp_sessions_ended_total', { listener: 'dns', reason: 'evicted' })).toBe(1);
    expect(total(samples, 'sluice_listener_udp_sessions_ended_total', { listener: 'dns', reason: 'expired' })).toBe(2);
    expect(total(samples, 'sluice_listener_udp_datagrams_dropped_total', { listener: 'dns' })).toBe(1);
    expect(total(samples, 'sluice_listener_connections_total', { listener: 'dns' })).toBe(3);
    // A tcp listener has no UDP series.
    expect(select(samples, 'sluice_listener_udp_sessions', { listener: 'web' })).toEqual([]);
  });

  it('shows each backend state as a 1 among 0s', async () => {
    const samples = await setup().render();
    const states = select(samples, 'sluice_backend_state', { backend: '10.0.0.2:80' }).map((s) => [s.labels['state'], s.value]);
    expect(states).toEqual([
      ['healthy', 0],
      ['draining', 1],
      ['unhealthy', 0],
    ]);
  });

  it('exports the shared histograms as Prometheus histograms in seconds', async () => {
    const { counters, render } = setup();
    counters.forWorker(0).observeConnectLatency(3, 0.3);
    counters.forWorker(1).observeConnectLatency(3, 40);
    counters.forWorker(1).observeConnectionDuration(3, 7000);
    const samples = await render();
    const first = { cluster: 'web', backend: '10.0.0.1:80' };
    const name = 'sluice_backend_connect_duration_seconds';
    expect(total(samples, `${name}_bucket`, { ...first, le: '0.00025' })).toBe(0);
    expect(total(samples, `${name}_bucket`, { ...first, le: '0.0005' })).toBe(1);
    expect(total(samples, `${name}_bucket`, { ...first, le: '0.05' })).toBe(2);
    expect(total(samples, `${name}_bucket`, { ...first, le: '+Inf' })).toBe(2);
    expect(total(samples, `${name}_count`, first)).toBe(2);
    expect(total(samples, `${name}_sum`, first)).toBeCloseTo(0.0403, 6);
    expect(total(samples, 'sluice_backend_connection_duration_seconds_bucket', { ...first, le: '5' })).toBe(0);
    expect(total(samples, 'sluice_backend_connection_duration_seconds_bucket', { ...first, le: '10' })).toBe(1);
  });

  it('reads listener, refusal, control-plane, health, access-log and restart cells', async () => {
    const { counters, render } = setup();
    const w1 = counters.forWorker(1);
    w1.bumpListener(2, ListenerCounter.accepted);
    w1.bumpListener(2, ListenerCounter.accepted);
    w1.bumpListener(2, ListenerCounter.refusedNoBackend);
    w1.bumpWorker(WorkerCounter.accessLogLines);
    const control = counters.forControlPlane();
    control.snapshotPublished();
    control.snapshotPublished();
    control.probeFinished(5, HealthCounter.timeout, 1000);
    control.probeFinished(5, HealthCounter.success, 2);
    const samples = await render();
    expect(total(samples, 'sluice_listener_connections_total', { listener: 'web' })).toBe(2);
    expect(total(samples, 'sluice_listener_refused_total', { listener: 'web', reason: 'no_backend' })).toBe(1);
    expect(total(samples, 'sluice_listener_refused_total', { listener: 'web', reason: 'all_backends_failed' })).toBe(0);
    expect(total(samples, 'sluice_snapshot_version')).toBe(7);
    expect(total(samples, 'sluice_snapshot_publishes_total')).toBe(2);
    expect(total(samples, 'sluice_health_checks_total', { backend: '10.0.0.2:80', result: 'timeout' })).toBe(1);
    expect(total(samples, 'sluice_health_checks_total', { backend: '10.0.0.2:80', result: 'success' })).toBe(1);
    expect(total(samples, 'sluice_health_check_duration_seconds_count', { backend: '10.0.0.2:80' })).toBe(2);
    expect(total(samples, 'sluice_health_check_duration_seconds_sum', { backend: '10.0.0.2:80' })).toBeCloseTo(1.002, 6);
    expect(total(samples, 'sluice_access_log_records_total')).toBe(1);
    expect(total(samples, 'sluice_worker_restarts_total', { plane: 'data' })).toBe(1);
  });

  it('starts a reused backend slot from zero in every table', async () => {
    const { counters, render } = setup();
    counters.forWorker(0).reserve(3, 0);
    counters.forWorker(0).connectionOpened(3);
    counters.forWorker(0).release(3);
    counters.forWorker(1).observeConnectLatency(3, 1);
    counters.forControlPlane().probeFinished(3, HealthCounter.failure, 1);
    counters.resetBackendSlot(3);
    const samples = await render();
    const first = { backend: '10.0.0.1:80' };
    expect(total(samples, 'sluice_backend_connections_total', first)).toBe(0);
    expect(total(samples, 'sluice_backend_connect_duration_seconds_count', first)).toBe(0);
    expect(total(samples, 'sluice_health_checks_total', first)).toBe(0);
    expect(total(samples, 'sluice_health_check_duration_seconds_count', first)).toBe(0);
  });
});

describe('the per-backend series limit', () => {
  const render = async (backendSeriesLimit: number | undefined): Promise<ReturnType<typeof parsePrometheus>> => {
    const counters = new CounterTables(createCounterBuffer(DIMS), DIMS);
    const sources = (): MetricSources => ({
      snapshot: SNAPSHOT,
      counters,
      listeners: [],
      restarts: { dataPlane: 0, controlPlane: 0 },
      ...(backendSeriesLimit === undefined ? {} : { backendSeriesLimit }),
    });
    return parsePrometheus(await createMetrics(sources, { processMetrics: false }).render());
  };

  it.each([
    [undefined, ['10.0.0.1:80', '10.0.0.2:80'], 0],
    [2, ['10.0.0.1:80', '10.0.0.2:80'], 0],
    [1, ['10.0.0.1:80'], 1],
    [0, [], 2],
  ] as const)('limit %s: series for %j, %i omitted', async (limit, backends, omitted) => {
    const samples = await render(limit);
    const labelled = (name: string): string[] => select(samples, name).map((s) => s.labels.backend ?? '');
    expect(labelled('sluice_backend_weight')).toEqual(backends);
    expect(new Set(labelled('sluice_backend_connect_duration_seconds_bucket'))).toEqual(new Set(backends));
    expect(total(samples, 'sluice_metrics_backends_omitted')).toBe(omitted);
  });
});
