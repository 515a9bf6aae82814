/** GET /fleet from the control plane's last registry report: ages move on with the clock; no registry is 404. */
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { registerFleetRoutes } from '../../../src/controlplane/admin/fleet-routes.ts';
import type { RegistryStatusReport } from '../../../src/shared/registry-status.ts';

const report: RegistryStatusReport = {
  registry: 'etcd http://127.0.0.1:2379',
  instance: 'lb-1',
  up: false,
  lastError: 'connection refused',
  revision: 40,
  appliedRevision: 37,
  snapshotHash: 'aaaa',
  fleet: [
    { instance: 'lb-1', version: '1.0.0', revision: 37, snapshot_hash: 'aaaa', started_at: '2026-01-01T00:00:00.000Z', age_ms: 100 },
    { instance: 'lb-2', version: '1.0.0', revision: 35, snapshot_hash: 'bbbb', started_at: '2026-01-01T00:00:00.000Z', age_ms: 2000 },
  ],
  reportedAt: 1_000_000,
};

async function get(deps: Parameters<typeof registerFleetRoutes>[1]): Promise<{ status: number; body: unknown }> {
  const app = Fastify();
  registerFleetRoutes(app, deps);
  const response = await app.inject({ method: 'GET', url: '/fleet' });
  await app.close();
  return { status: response.statusCode, body: response.json() };
}

describe('GET /fleet', () => {
  it('lists the instances with ages as of now, marking this one', async () => {
    const { status, body } = await get({ registry: () => report, now: () => 1_000_500 });
    expect(status).toBe(200);
    expect(body).toEqual({
      registry: 'etcd http://127.0.0.1:2379',
      up: false,
      error: 'connection refused',
      instance: 'lb-1',
      revision: 40,
      applied_revision: 37,
      snapshot_hash: 'aaaa',
      instances: [
        { ...report.fleet[0], age_ms: 600, self: true },
        { ...report.fleet[1], age_ms: 2500, self: false },
      ],
    });
  });

  it.each([
    ['without a registry', {}, 'no fleet: config.yaml has no registry: block'],
    ['before the first report', { registry: () => undefined }, 'no fleet yet: the registry has not been read'],
  ])('answers 404 %s', async (_, deps, message) => {
    expect(await get(deps)).toEqual({ status: 404, body: { error: 'NOT_FOUND', message } });
  });
});
