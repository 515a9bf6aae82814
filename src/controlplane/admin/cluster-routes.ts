/** /clusters and /snapshot: what the published snapshot says, read without asking the control plane. */
import type { FastifyInstance } from 'fastify';
import type { ClusterState } from '../../shared/cluster-state.ts';
import type { CounterTables } from '../../shared/counters.ts';
import type { SnapshotReader } from '../../shared/snapshot/reader.ts';
import type { BackendState } from '../../shared/snapshot/types.ts';
import { ClusterViews, type ClusterView as PolicyView } from './cluster-view.ts';

export interface ClusterView extends PolicyView {
  readonly panic_mode: string;
  /** Listeners that route to this cluster (with any weight). */
  readonly listeners: readonly string[];
  readonly states: Readonly<Record<BackendState, number>>;
}

export interface ClusterRouteDeps {
  readonly snapshots: SnapshotReader;
  readonly counters: CounterTables;
  /** A cluster's shared queue and affinity state (undefined in tests without one). */
  readonly clusterState: (cluster: string) => ClusterState | undefined;
}

export function registerClusterRoutes(app: FastifyInstance, deps: ClusterRouteDeps): void {
  const { snapshots } = deps;
  const views = new ClusterViews({ counters: deps.counters, clusterState: deps.clusterState });

  app.get('/clusters', () => {
    const snapshot = snapshots.current();
    return snapshot.clusters.map((c): ClusterView => {
      const states: Record<BackendState, number> = { healthy: 0, draining: 0, unhealthy: 0 };
      for (const b of c.backends) states[b.state]++;
      const { name, algorithm, ...policy } = views.one(c);
      return {
        name,
        algorithm,
        panic_mode: c.panicMode,
        listeners: snapshot.listeners.filter((l) => l.routes.some((r) => r.cluster === c.name)).map((l) => l.name),
        states,
        ...policy,
      };
    });
  });

  app.get('/snapshot', () => snapshots.current());
}
