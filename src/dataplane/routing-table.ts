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
  /**
   * Backends that may receive new connections: healthy with a weight above zero; or, when
   * none is and the cluster's panic mode is route_all, every backend an operator left in.
   */
  readonly eligible: readonly SnapshotBackend[];
  /** True when `eligible` is the panic set (no backend is healthy). */
  readonly panic: boolean;
  /**
   * This cluster's part of the table's `keep` (slot → id): the backends that keep the UDP
   * sessions they already serve. A UDP session checks it when the version moved, so a
   * session whose backend became unhealthy, ended its drain, or left the cluster moves at
   * its next datagram.
   */
  readonly retaining: ReadonlyMap<number, string>;
  /** Carried across versions so a snapshot change does not restart the rotation. */
  readonly cursor: Cursor;
}

export interface RoutingTable {
  readonly snapshot: Snapshot;
  readonly byListener: ReadonlyMap<string, ClusterRoute>;
  /**
   * Backends an open connection may stay with, slot → id. A backend that is gone, or whose
   * drain ended, is not here: connections still open to it are to be closed.
   */
  readonly keep: ReadonlyMap<number, string>;
}

export function isEligible(backend: SnapshotBackend): boolean {
  return backend.state === 'healthy' && backend.weight > 0;
}

/** In panic, health is ignored but an operator's drain or removal is not. */
export function isPanicEligible(backend: SnapshotBackend): boolean {
  return backend.admin === 'none' && backend.weight > 0;
}

function clusterRoute(cluster: SnapshotCluster, previous: ClusterRoute | undefined): ClusterRoute {
  const healthy = cluster.backends.filter(isEligible);
  const panic = healthy.length === 0 && cluster.panicMode === 'route_all';
  const eligible = panic ? cluster.backends.filter(isPanicEligible) : healthy;
  const retaining = new Map<number, string>();
  for (const b of cluster.backends) if (!b.drained) retaining.set(b.slot, b.id);
  // What a panic routes to an unhealthy backend is not moved by the next version.
  if (panic) for (const b of eligible) retaining.set(b.slot, b.id);
  return {
    name: cluster.name,
    connectTimeoutMs: cluster.connectTimeoutMs,
    idleTimeoutMs: cluster.idleTimeoutMs,
    eligible,
    panic,
    retaining,
    cursor: previous?.cursor ?? { next: 0 },
  };
}

export function buildRoutingTable(snapshot: Snapshot, previous?: RoutingTable): RoutingTable {
  const previousByCluster = new Map<string, ClusterRoute>();
  for (const route of previous?.byListener.values() ?? []) previousByCluster.set(route.name, route);

  const clusters = new Map<string, ClusterRoute>();
  const keep = new Map<number, string>();
  for (const cluster of snapshot.clusters) {
    const route = clusterRoute(cluster, previousByCluster.get(cluster.name));
    clusters.set(cluster.name, route);
    // Not drained, plus what a panic routed to unhealthy backends (not cut by the next version).
    for (const [slot, id] of route.retaining) keep.set(slot, id);
  }
  const byListener = new Map<string, ClusterRoute>();
  for (const listener of snapshot.listeners) {
    const route = clusters.get(listener.cluster);
    if (route !== undefined) byListener.set(listener.name, route);
  }
  return { snapshot, byListener, keep };
}

/** True when some backend connections could stay with under `before` must be closed under `after`. */
export function closesConnections(before: RoutingTable, after: RoutingTable): boolean {
  for (const [slot, id] of before.keep) if (after.keep.get(slot) !== id) return true;
  return false;
}
