/**
 * Dependencies for driving the admin app through inject() without a daemon: a fixed
 * snapshot, the given counters, a silent logger, no token, and control-plane ports that
 * refuse with UNAVAILABLE. A test passes in `overrides` the ports it records or answers
 * with, and the listeners and token it is about.
 */
import { pino } from 'pino';
import type { AdminDeps } from '../../src/controlplane/admin/app.ts';
import { createMetrics } from '../../src/controlplane/admin/metrics/registry.ts';
import type { CounterTables } from '../../src/shared/counters.ts';
import type { SnapshotReader } from '../../src/shared/snapshot/reader.ts';
import type { Snapshot } from '../../src/shared/snapshot/types.ts';

const NOT_IN_THIS_TEST = { ok: false, error: 'UNAVAILABLE', message: 'not in this test' } as const;

export function testAdminDeps(snapshot: Snapshot, counters: CounterTables, overrides: Partial<AdminDeps> = {}): AdminDeps {
  return {
    snapshots: { current: () => snapshot } as unknown as SnapshotReader,
    counters,
    readiness: () => ({ status: 'ready', waiting_for: [] }),
    backendHistory: { of: () => undefined },
    workerResources: () => Promise.resolve([]),
    controlPlaneStats: () => Promise.resolve(undefined),
    lifecycle: { drain: () => undefined, reload: () => Promise.resolve({ ok: false, error: 'CONFIG_INVALID', errors: ['no'] }) },
    faults: undefined,
    commands: { run: () => Promise.resolve(NOT_IN_THIS_TEST) },
    routes: { run: () => Promise.resolve(NOT_IN_THIS_TEST) },
    clusterState: () => undefined,
    token: undefined,
    listeners: () => [],
    metrics: createMetrics(() => ({ snapshot, counters, listeners: [], restarts: { dataPlane: 0, controlPlane: 0 } }), { processMetrics: false }),
    logger: pino({ level: 'silent' }),
    ...overrides,
  };
}
