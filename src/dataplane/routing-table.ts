/**
 * What a data-plane worker derives from one snapshot version: for every listener, the
 * cluster it routes to with that cluster's eligible backends already filtered. Built once
 * per version (never per accept), so the per-accept work is a map lookup and a pick.
 */
import type { ProxyVersion, Snapshot, SnapshotBackend, SnapshotCluster } from '../shared/snapshot/types.ts';
import type { Cursor } from './balancer/round-robin.ts';
import { buildEdgePolicy, type EdgePolicy } from './edge-policy.ts';

export interface ClusterRoute {
  readonly name: string;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** Backends that may receive new connections: healthy with a weight above zero. */
  readonly eligible: readonly SnapshotBackend[];
  /** Carried across versions so a snapshot change does not restart the rotation. */
  readonly cursor: Cursor;
  /** A PROXY protocol header to send each backend first (send_proxy). */
  readonly sendProxy: ProxyVersion | undefined;
}

export interface RoutingTable {
  readonly snapshot: Snapshot;
  readonly byListener: ReadonlyMap<string, ClusterRoute>;
  /** Every cluster, including those reached only through sni_routes. */
  readonly byCluster: ReadonlyMap<string, ClusterRoute>;
  /** Only listeners with edge settings (acl, limits, accept_proxy, sni_routes) are here. */
  readonly edgeByListener: ReadonlyMap<string, EdgePolicy>;
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
    cursor: previous?.cursor ?? { next: 0 },
    sendProxy: cluster.sendProxy,
  };
}

export function buildRoutingTable(snapshot: Snapshot, previous?: RoutingTable): RoutingTable {
  const previousByCluster = previous?.byCluster ?? new Map<string, ClusterRoute>();
  const clusters = new Map<string, ClusterRoute>();
  for (const cluster of snapshot.clusters) {
    clusters.set(cluster.name, clusterRoute(cluster, previousByCluster.get(cluster.name)));
  }
  const byListener = new Map<string, ClusterRoute>();
  const edgeByListener = new Map<string, EdgePolicy>();
  for (const listener of snapshot.listeners) {
    const route = listener.cluster === null ? undefined : clusters.get(listener.cluster);
    if (route !== undefined) byListener.set(listener.name, route);
    const edge = buildEdgePolicy(listener, clusters, previous?.edgeByListener.get(listener.name));
    if (edge !== undefined) edgeByListener.set(listener.name, edge);
  }
  return { snapshot, byListener, byCluster: clusters, edgeByListener };
}
