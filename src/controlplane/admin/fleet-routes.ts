/**
 * GET /fleet: the instances sharing this registry, each with the registry revision of the
 * operator intent it applied, the hash of its routing snapshot and how long ago it last
 * changed its report. Equal revisions and hashes mean the fleet has converged. Read from the
 * control plane's last registry report: no network call on the admin path.
 */
import type { FastifyInstance } from 'fastify';
import type { RegistryStatusReport } from '../../shared/registry-status.ts';
import { sendError } from './errors.ts';

export interface FleetRouteDeps {
  /** The last registry report; undefined without `registry:` (or before its first report). */
  readonly registry?: () => RegistryStatusReport | undefined;
  readonly now?: () => number;
}

export function fleetView(report: RegistryStatusReport, now: number): object {
  const since = Math.max(0, now - report.reportedAt);
  return {
    registry: report.registry,
    up: report.up,
    ...(report.lastError === undefined ? {} : { error: report.lastError }),
    instance: report.instance,
    revision: report.revision,
    applied_revision: report.appliedRevision,
    snapshot_hash: report.snapshotHash,
    instances: report.fleet.map((i) => ({ ...i, age_ms: i.age_ms + since, self: i.instance === report.instance })),
  };
}

export function registerFleetRoutes(app: FastifyInstance, deps: FleetRouteDeps): void {
  app.get('/fleet', async (_request, reply) => {
    const report = deps.registry?.();
    if (report === undefined) {
      return sendError(reply, 404, 'NOT_FOUND', deps.registry === undefined ? 'no fleet: config.yaml has no registry: block' : 'no fleet yet: the registry has not been read');
    }
    return fleetView(report, (deps.now ?? Date.now)());
  });
}
