/**
 * What a data-plane worker derives from one snapshot version: for every listener, the
 * cluster it routes to with that cluster's eligible backends already filtered. Built once
 * per version (never per accept), so the per-accept work is a map lookup and a pick.
 */
import type { Snapshot, SnapshotBackend, SnapshotCluster } from '../shared/snapshot/types.ts';
import type { Cursor } from './balancer/round-robin.ts';

export interface ClusterRoute {
  readonly name: string;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** Backends that may receive new connections: healthy with a weight above zero. */
  readonly eligible: readonly SnapshotBackend[];
  /**
   * Slots of the backends that keep what they already serve (UDP sessions): every backend
   * of the cluster that is not unhealthy. Draining and weight-0 backends are in it; removed
   * and unhealthy ones are not.
   */
  readonly retaining: ReadonlySet<number>;
  /** Carried across versions so a snapshot change does not restart the rotation. */
  readonly cursor: Cursor;
}

export interface RoutingTable {
  readonly snapshot: Snapshot;
  readonly byListener: ReadonlyMap<string, ClusterRoute>;
}

export function isEligible(backend: SnapshotBackend): boolean {
  return backend.state === 'healthy' && backend.weight > 0;
}

function clusterRoute(cluster: SnapshotCluster, previous: ClusterRoute | undefined): ClusterRoute {
  return {
    name: cluster.name,
    connectTimeoutMs: cluster.connectTimeoutMs,
    idleTimeoutMs: cluster.idleTimeoutMs,
    eligible: cluster.backends.filter(isEligible),
    retaining: new Set(cluster.backends.filter((b) => b.state !== 'unhealthy').map((b) => b.slot)),
    cursor: previous?.cursor ?? { next: 0 },
  };
}

export function buildRoutingTable(snapshot: Snapshot, previous?: RoutingTable): RoutingTable {
  const previousByCluster = new Map<string, ClusterRoute>();
  for (const route of previous?.byListener.values() ?? []) previousByCluster.set(route.name, route);

  const clusters = new Map<string, ClusterRoute>();
  for (const cluster of snapshot.clusters) {
    clusters.set(cluster.name, clusterRoute(cluster, previousByCluster.get(cluster.name)));
  }
  const byListener = new Map<string, ClusterRoute>();
  for (const listener of snapshot.listeners) {
    const route = clusters.get(listener.cluster);
    if (route !== undefined) byListener.set(listener.name, route);
  }
  return { snapshot, byListener };
}
