import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { eventually, getJson, openEcho, roundTrip, type EchoConnection } from '../helpers/client.ts';
import { startDaemon, tcpConfig, type Daemon } from '../helpers/daemon.ts';
import { scrape, select, seriesKey, total, type PromSample } from '../helpers/metrics.ts';
import { freePorts } from '../helpers/ports.ts';
import type { ResourcesJson } from '../helpers/resources.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function echoBackends(n: number): Promise<TestBackend[]> {
  const started = await Promise.all(Array.from({ length: n }, async () => startBackend('echo')));
  for (const b of started) cleanups.push(async () => b.close());
  return started;
}

async function daemonFor(addresses: string[], env: Record<string, string> = {}): Promise<{ daemon: Daemon; port: number }> {
  const [port, adminPort] = await freePorts(2);
  if (port === undefined || adminPort === undefined) throw new Error('no ports');
  const daemon = await startDaemon(tcpConfig({ listenPort: port, adminPort, backends: addresses, workers: 2 }), adminPort, { env });
  cleanups.push(async () => daemon.stop('SIGKILL'));
  return { daemon, port };
}

async function holdEcho(port: number, n: number): Promise<EchoConnection[]> {
  const held = await Promise.all(Array.from({ length: n }, async () => openEcho(port)));
  for (const c of held) {
    cleanups.push(() => {
      c.socket.destroy();
      return Promise.resolve();
    });
  }
  // An echo proves each connection reached a backend (and is counted as active).
  for (const c of held) expect(await c.exchange('ping')).toBe('ping');
  return held;
}

/**
 * Hold `n` echo connections spread over more than one worker (the kernel picks the worker).
 * `attempts`: how many sets of `n` it opened (and echoed 4 bytes on) to get there. A set that
 * landed on one worker is closed, and the daemon seen to let go of it, before the next: the
 * held ones are then the only open connections, but every set counts in every total, so a
 * caller asserting a total multiplies by `attempts` (by chance, about one run in 32 needs a
 * second set).
 */
async function holdAcrossWorkers(daemon: Daemon, port: number, n: number): Promise<{ held: EchoConnection[]; attempts: number }> {
  const resources = async (): Promise<ResourcesJson> => getJson<ResourcesJson>(`${daemon.adminUrl}/debug/resources`);
  for (let attempt = 1; attempt <= 8; attempt++) {
    const held = await holdEcho(port, n);
    if ((await resources()).workers.filter((w) => w.connections > 0).length > 1) return { held, attempts: attempt };
    for (const c of held) c.socket.destroy();
    await eventually(resources, (r) => r.workers.every((w) => w.connections === 0));
  }
  throw new Error(`${n} connections kept landing on one worker`);
}

const COUNTER_SUFFIXES = ['_total', '_bucket', '_count', '_sum'];

/** Every counter series in `after` that is below its value in `before`. */
function wentBackwards(before: readonly PromSample[], after: readonly PromSample[]): string[] {
  const earlier = new Map(before.filter((s) => s.name.startsWith('sluice_')).map((s) => [seriesKey(s), s.value]));
  return after
    .filter((s) => COUNTER_SUFFIXES.some((suffix) => s.name.endsWith(suffix)))
    .filter((s) => s.value < (earlier.get(seriesKey(s)) ?? 0))
    .map((s) => `${seriesKey(s)}: ${earlier.get(seriesKey(s))} -> ${s.value}`);
}

describe('GET /metrics', () => {
  it('sums sluice_backend_active_connections to 6 for six connections held across workers, and to 0 after they close', async () => {
    const backends = await echoBackends(2);
    const { daemon, port } = await daemonFor(backends.map((b) => b.address));
    const { held, attempts } = await holdAcrossWorkers(daemon, port, 6);

    const during = await scrape(daemon.adminUrl);
    expect(total(during, 'sluice_backend_active_connections')).toBe(6);
    expect(select(during, 'sluice_backend_active_connections')).toHaveLength(2);

    for (const c of held) c.socket.end();
    const after = await eventually(
      async () => scrape(daemon.adminUrl),
      (samples) => total(samples, 'sluice_backend_active_connections') === 0,
    );
    expect(total(after, 'sluice_backend_active_connections')).toBe(0);
    expect(total(after, 'sluice_backend_connections_total')).toBe(6 * attempts);
    expect(total(after, 'sluice_listener_connections_total')).toBe(6 * attempts);
  });

  it('accounts for every byte and connection of 10 connections sending 100 kB each', async () => {
    const backends = await echoBackends(2);
    const { daemon, port } = await daemonFor(backends.map((b) => b.address));
    const payload = randomBytes(100_000);
    const replies = await Promise.all(Array.from({ length: 10 }, async () => roundTrip(port, payload)));
    for (const reply of replies) expect(reply.equals(payload)).toBe(true);

    // A session's bytes are folded into the counters when both of its sockets closed.
    const samples = await eventually(
      async () => scrape(daemon.adminUrl),
      (s) =>
        total(s, 'sluice_backend_bytes_total', { direction: 'to_client' }) === 1_000_000 &&
        total(s, 'sluice_backend_connection_duration_seconds_count') === 10,
    );
    expect(total(samples, 'sluice_backend_bytes_total', { direction: 'from_client' })).toBe(1_000_000);
    expect(total(samples, 'sluice_backend_bytes_total', { direction: 'to_client' })).toBe(1_000_000);
    expect(total(samples, 'sluice_backend_connections_total')).toBe(10);
    expect(total(samples, 'sluice_listener_connections_total', { listener: 'web' })).toBe(10);
    expect(total(samples, 'sluice_listener_refused_total', { listener: 'web' })).toBe(0);
    // Per backend, bytes match its connections (each worker rotates on its own, so the split
    // between the two backends is not exactly even).
    for (const b of backends) {
      const where = { cluster: 'web', backend: b.address };
      const connections = total(samples, 'sluice_backend_connections_total', where);
      expect(connections).toBeGreaterThan(0);
      expect(total(samples, 'sluice_backend_bytes_total', { ...where, direction: 'from_client' })).toBe(100_000 * connections);
      expect(total(samples, 'sluice_backend_bytes_total', { ...where, direction: 'to_client' })).toBe(100_000 * connections);
    }
    // Every connection is in both histograms, and their +Inf buckets equal their counts.
    expect(total(samples, 'sluice_backend_connect_duration_seconds_count')).toBe(10);
    expect(total(samples, 'sluice_backend_connect_duration_seconds_bucket', { le: '+Inf' })).toBe(10);
    expect(total(samples, 'sluice_backend_connection_duration_seconds_count')).toBe(10);
    expect(total(samples, 'sluice_backend_connection_duration_seconds_sum')).toBeGreaterThan(0);
    expect(total(samples, 'sluice_backend_state', { state: 'healthy' })).toBe(2);
    expect(total(samples, 'sluice_snapshot_version')).toBeGreaterThanOrEqual(1);
    expect(total(samples, 'sluice_snapshot_publishes_total')).toBeGreaterThanOrEqual(1);
    // Node's default process metrics come along.
    expect(select(samples, 'process_cpu_seconds_total')).toHaveLength(1);
    expect(select(samples, 'nodejs_eventloop_lag_seconds')).toHaveLength(1);
  });

  it('counts a connection refused for want of a backend by listener and reason', async () => {
    const [refusedPort] = await freePorts(1);
    const { daemon, port } = await daemonFor([`127.0.0.1:${refusedPort}`]);
    await roundTrip(port, Buffer.from('hi')).catch(() => Buffer.alloc(0));
    const samples = await eventually(
      async () => scrape(daemon.adminUrl),
      (s) => total(s, 'sluice_listener_refused_total', { reason: 'all_backends_failed' }) === 1,
    );
    expect(total(samples, 'sluice_listener_refused_total', { listener: 'web', reason: 'all_backends_failed' })).toBe(1);
    expect(total(samples, 'sluice_backend_connect_failures_total')).toBe(1);
    expect(total(samples, 'sluice_backend_connections_total')).toBe(0);
  });

  it('counts active health probes by result with their durations, and shows the state they lead to', async () => {
    const [alive] = await echoBackends(1);
    const [port, adminPort, refusedPort] = await freePorts(3);
    const daemon = await startDaemon(
      `workers: 1
admin: {listen: 127.0.0.1:${adminPort}}
listeners: [{name: web, listen: 127.0.0.1:${port}, cluster: web}]
clusters:
  - name: web
    health_check: {type: tcp, interval: 100ms, timeout: 50ms, rise: 1, fall: 2}
    backends: [{address: ${alive!.address}}, {address: 127.0.0.1:${refusedPort}}]
`,
      adminPort!,
    );
    cleanups.push(async () => daemon.stop('SIGKILL'));
    const up = { cluster: 'web', backend: alive!.address };
    const down = { cluster: 'web', backend: `127.0.0.1:${refusedPort}` };
    const samples = await eventually(
      async () => scrape(daemon.adminUrl),
      (s) => total(s, 'sluice_health_checks_total', { ...up, result: 'success' }) >= 3 && total(s, 'sluice_health_checks_total', { ...down, result: 'failure' }) >= 3,
    );
    expect(total(samples, 'sluice_health_checks_total', { ...up, result: 'success' })).toBeGreaterThanOrEqual(3);
    expect(total(samples, 'sluice_health_checks_total', { ...up, result: 'failure' })).toBe(0);
    // A refused connect fails at once: a failure, not a timeout.
    expect(total(samples, 'sluice_health_checks_total', { ...down, result: 'failure' })).toBeGreaterThanOrEqual(3);
    expect(total(samples, 'sluice_health_checks_total', { ...down, result: 'timeout' })).toBe(0);
    // Every probe is in the duration histogram too (a scrape may fall between the two
    // stores of the one probe finishing at that moment).
    for (const where of [up, down]) {
      const probes = total(samples, 'sluice_health_checks_total', where);
      expect(Math.abs(total(samples, 'sluice_health_check_duration_seconds_count', where) - probes)).toBeLessThanOrEqual(1);
    }
    expect(total(samples, 'sluice_backend_state', { ...down, state: 'unhealthy' })).toBe(1);
    expect(total(samples, 'sluice_backend_state', { ...up, state: 'healthy' })).toBe(1);
  });

  it('stays consistent while a data-plane worker is restarted: no counter goes backwards, totals stay exact', async () => {
    const backends = await echoBackends(2);
    const { daemon, port } = await daemonFor(
      backends.map((b) => b.address),
      { SLUICE_FAULT_INJECTION: '1' },
    );
    const payload = randomBytes(10_000);
    for (let i = 0; i < 20; i++) await roundTrip(port, payload);
    const { held, attempts } = await holdAcrossWorkers(daemon, port, 6);
    const heldOpen = new Set(held);
    for (const c of held) c.socket.once('close', () => heldOpen.delete(c));
    // Every connection opened to get the held ones spread out echoed 4 bytes each way.
    const opened = 20 + attempts * 6;
    const pingBytes = attempts * 6 * 4;
    // Bytes of open connections reach the counters once a second; wait for the held ones.
    const bytesBefore = 20 * 10_000 + pingBytes;
    let previous = await eventually(
      async () => scrape(daemon.adminUrl),
      (s) => total(s, 'sluice_backend_bytes_total', { direction: 'from_client' }) === bytesBefore,
    );
    expect(total(previous, 'sluice_backend_bytes_total', { direction: 'from_client' })).toBe(bytesBefore);
    expect(total(previous, 'sluice_backend_active_connections')).toBe(6);

    const crash = await fetch(`${daemon.adminUrl}/debug/workers/0/crash`, { method: 'POST' });
    expect(crash.status).toBe(202);

    // Scrape throughout the crash and the restart; every scrape must be monotonic.
    const backwards: string[] = [];
    const deadline = Date.now() + 20_000;
    for (;;) {
      const samples = await scrape(daemon.adminUrl);
      backwards.push(...wentBackwards(previous, samples));
      previous = samples;
      if (total(samples, 'sluice_worker_restarts_total', { plane: 'data' }) >= 1 || Date.now() > deadline) break;
      // Sampling cadence, not synchronisation: the loop ends on the restart counter.
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(backwards).toEqual([]);
    expect(total(previous, 'sluice_worker_restarts_total', { plane: 'data' })).toBe(1);
    await daemon.waitForLog((l) => l.msg === 'data-plane worker restarted');

    // The dead worker's connections closed with it; the gauge follows what clients see.
    await eventually(async () => Promise.resolve(heldOpen.size), (open) => open < 6);
    expect(heldOpen.size).toBeLessThan(6);
    const afterCrash = await eventually(
      async () => scrape(daemon.adminUrl),
      (s) => total(s, 'sluice_backend_active_connections') === heldOpen.size,
    );
    expect(total(afterCrash, 'sluice_backend_active_connections')).toBe(heldOpen.size);
    expect(wentBackwards(previous, afterCrash)).toEqual([]);

    // The restarted worker counts on from its predecessor's row.
    for (let i = 0; i < 20; i++) await roundTrip(port, payload);
    const survivors = [...heldOpen];
    for (const c of survivors) c.socket.end();
    const final = await eventually(
      async () => scrape(daemon.adminUrl),
      (s) => total(s, 'sluice_backend_active_connections') === 0 && total(s, 'sluice_backend_bytes_total', { direction: 'to_client' }) === 40 * 10_000 + pingBytes,
    );
    expect(wentBackwards(afterCrash, final)).toEqual([]);
    expect(total(final, 'sluice_backend_connections_total')).toBe(opened + 20);
    expect(total(final, 'sluice_listener_connections_total')).toBe(opened + 20);
    expect(total(final, 'sluice_backend_bytes_total', { direction: 'from_client' })).toBe(40 * 10_000 + pingBytes);
    expect(total(final, 'sluice_backend_bytes_total', { direction: 'to_client' })).toBe(40 * 10_000 + pingBytes);
    expect(total(final, 'sluice_backend_active_connections')).toBe(0);
  });
});
