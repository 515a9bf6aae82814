import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { dashboardState, registerDashboardRoutes, type DashboardState } from '../../../src/controlplane/admin/dashboard-routes.ts';
import { BackendCounter, CounterTables, createCounterBuffer, ListenerCounter } from '../../../src/shared/counters.ts';
import type { ListenerBinding } from '../../../src/shared/messages.ts';
import { testBackend, testCluster, testListener, testSnapshot } from '../../helpers/snapshot.ts';

const DIMS = { workers: 2, backendSlots: 8, listenerSlots: 4 };

const SNAPSHOT = testSnapshot({
  version: 4,
  listeners: [testListener({ name: 'web', cluster: 'web' }), testListener({ name: 'api', cluster: 'api' })],
  clusters: [
    testCluster({ name: 'web', backends: [testBackend('10.0.0.1:80', { slot: 1, weight: 2, configuredWeight: 2 })] }),
    testCluster({ name: 'api', backends: [testBackend('10.0.0.2:80', { cluster: 'api', slot: 2, state: 'draining', admin: 'drain' })] }),
  ],
});

const LISTENERS: ListenerBinding[] = [
  { name: 'web', slot: 0, host: '127.0.0.1', port: 8080, protocol: 'tcp' },
  { name: 'api', slot: 3, host: '127.0.0.1', port: 8081, protocol: 'tcp' },
];

const apps: { close: () => Promise<unknown> }[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

function app(counters = new CounterTables(createCounterBuffer(DIMS), DIMS)) {
  const instance = Fastify();
  registerDashboardRoutes(instance, { snapshots: { current: () => SNAPSHOT }, counters, listeners: () => LISTENERS });
  apps.push(instance);
  return instance;
}

describe('dashboard page', () => {
  it('serves the page, its script and style without any external resource', async () => {
    const server = app();
    const page = await server.inject({ url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('<script src="/dashboard.js" defer></script>');
    // Only this server may be contacted: a CDN reference would be refused by the browser.
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.headers['content-security-policy']).toContain("connect-src 'self'");
    expect(page.headers['x-frame-options']).toBe('DENY');

    const script = await server.inject({ url: '/dashboard.js' });
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(script.body).toContain("fetch('/dashboard/state'");
    const style = await server.inject({ url: '/dashboard.css' });
    expect(style.headers['content-type']).toBe('text/css; charset=utf-8');
    for (const body of [page.body, script.body, style.body]) {
      expect(body).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
      expect(body).not.toMatch(/@import|url\(/);
    }
  });

  it('answers /dashboard/state with listeners, clusters and live backend counters', async () => {
    const counters = new CounterTables(createCounterBuffer(DIMS), DIMS);
    const w1 = counters.forWorker(1);
    w1.reserve(1, 0);
    w1.connectionOpened(1);
    w1.bumpBackend(1, BackendCounter.bytesToClient, 1234);
    w1.bumpListener(3, ListenerCounter.accepted);
    w1.bumpListener(3, ListenerCounter.refusedAllFailed);
    const response = await app(counters).inject({ url: '/dashboard/state' });
    const state = response.json<DashboardState>();
    expect(state.snapshot_version).toBe(4);
    expect(state.listeners).toEqual([
      { name: 'web', cluster: 'web', connections_total: 0, refused_total: 0 },
      { name: 'api', cluster: 'api', connections_total: 1, refused_total: 1 },
    ]);
    expect(state.clusters.map((c) => [c.name, c.backends.map((b) => b.id)])).toEqual([
      ['web', ['web:10.0.0.1:80']],
      ['api', ['api:10.0.0.2:80']],
    ]);
    expect(state.clusters[0]?.backends[0]).toMatchObject({ state: 'healthy', weight: 2, active_connections: 1, bytes_to_client: 1234 });
    expect(state.clusters[1]?.backends[0]?.state).toBe('draining');
  });

  it('stamps the state with the server clock so the page can turn totals into rates', () => {
    const counters = new CounterTables(createCounterBuffer(DIMS), DIMS);
    expect(dashboardState(SNAPSHOT, counters, LISTENERS, 1_700_000_000_000).time).toBe(1_700_000_000_000);
  });
});
