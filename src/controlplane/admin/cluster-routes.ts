/** /clusters and /snapshot: what the published snapshot says, read without asking the control plane. */
import type { FastifyInstance } from 'fastify';
import type { ClusterState } from '../../shared/cluster-state.ts';
import type { CounterTables } from '../../shared/counters.ts';
import type { SnapshotReader } from '../../shared/snapshot/reader.ts';
import type { DiscoveryStatus } from '../../shared/discovery-status.ts';
import type { BackendState } from '../../shared/snapshot/types.ts';
import { ClusterViews, type ClusterView as PolicyView } from './cluster-view.ts';

export interface ClusterView extends PolicyView {
  readonly panic_mode: string;
  /** Listeners that route to this cluster (with any weight). */
  readonly listeners: readonly string[];
  readonly states: Readonly<Record<BackendState, number>>;
  /** Where the backends come from: config.yaml and the admin API, or a discovery source. */
  readonly source: 'static' | 'discovery';
  /** A discovered cluster's source, last sync, last error and current answer. */
  readonly discovery?: DiscoveryView;
}

export interface DiscoveryView {
  readonly source: string;
  readonly up: boolean;
  readonly synced: boolean;
  /** Serving the state file's copy of the last answer: the first lookup after start failed. */
  readonly from_copy: boolean;
  readonly last_sync: string | null;
  readonly last_error: string | null;
  readonly last_error_at: string | null;
  readonly refreshes: DiscoveryStatus['refreshes'];
  readonly answer: DiscoveryStatus['answer'];
}

function discoveryView(status: DiscoveryStatus): DiscoveryView {
  const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    source: status.source,
    up: status.up,
    synced: status.synced,
    from_copy: status.fromCopy,
    last_sync: iso(status.lastSyncAt),
    last_error: status.lastError ?? null,
    last_error_at: iso(status.lastErrorAt),
    refreshes: status.refreshes,
    answer: status.answer,
  };
}

export interface ClusterRouteDeps {
  readonly snapshots: SnapshotReader;
  readonly counters: CounterTables;
  /** A cluster's shared queue and affinity state (undefined in tests without one). */
  readonly clusterState: (cluster: string) => ClusterState | undefined;
  /** The status of each discovered cluster, by name (empty without discovery). */
  readonly discovery?: ReadonlyMap<string, DiscoveryStatus>;
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
      const discovered = deps.discovery?.get(c.name);
      return {
        name,
        algorithm,
        panic_mode: c.panicMode,
        listeners: snapshot.listeners.filter((l) => l.routes.some((r) => r.cluster === c.name)).map((l) => l.name),
        states,
        source: discovered === undefined ? 'static' : 'discovery',
        ...(discovered === undefined ? {} : { discovery: discoveryView(discovered) }),
        ...policy,
      };
    });
  });

  app.get('/snapshot', () => snapshots.current());
}
