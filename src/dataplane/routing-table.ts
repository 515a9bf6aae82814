/**
 * What a data-plane worker derives from one snapshot version: for every listener, the
 * clusters it routes to (with their weights), and for every cluster its eligible backends,
 * their connection limits and the balancer over them. Built once per version (never per
 * accept), so the per-accept work is a map lookup, a weighted cluster choice and a pick.
 * State that must outlive a version (rotation positions, Maglev tables, queues) is carried
 * over from the previous table by cluster and listener name.
 */
import type { ClusterState } from '../shared/cluster-state.ts';
import type { HashKey, ProxyVersion, Snapshot, SnapshotBackend, SnapshotCluster, SnapshotListener } from '../shared/snapshot/types.ts';
import { AffinityTable } from '../shared/balancer/affinity.ts';
import { createBalancer, type Balancer, type BalancerEnv } from './balancer/cluster-balancer.ts';
import { createSmoothWeighted, pickSmoothWeighted, type SmoothWeightedState } from './balancer/smooth-weighted.ts';
import { buildEdgePolicy, type EdgePolicy } from './edge-policy.ts';

export interface StickyPolicy {
  readonly table: AffinityTable;
  readonly ttlSeconds: number;
  /** Backend slot → index in `eligible`: a remembered backend counts only while eligible. */
  readonly indexBySlot: ReadonlyMap<number, number>;
}

export interface QueuePolicy {
  readonly size: number;
  readonly timeoutMs: number;
}

export interface ClusterRoute {
  readonly name: string;
  /** The snapshot version this route was built from. */
  readonly version: number;
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
   * The backends that keep the UDP sessions they already serve (slot → id): this cluster's
   * part of the table's `keep`. A UDP session checks it when the version moved, so a session
   * whose backend became unhealthy, ended its drain, or left the cluster moves at its next
   * datagram.
   */
  readonly retaining: ReadonlyMap<number, string>;
  /** max_connections of each eligible backend (same index); 0 = no limit. */
  readonly limits: Int32Array;
  readonly balancer: Balancer;
  /** consistent_hash: what the client hash covers; undefined for other algorithms. */
  readonly hashKey: HashKey | undefined;
  readonly sticky: StickyPolicy | undefined;
  readonly queue: QueuePolicy | undefined;
  /** The cluster's shared cells (queue, affinity), when the supervisor provided them. */
  readonly state: ClusterState | undefined;
  /** A PROXY protocol header to send each backend first (send_proxy). */
  readonly sendProxy: ProxyVersion | undefined;
}

export interface ListenerRoute {
  readonly name: string;
  /** Its clusters with a weight above zero, in route order. */
  readonly clusters: readonly ClusterRoute[];
  /** The weighted choice between `clusters`; undefined with a single cluster. */
  readonly split: SmoothWeightedState | undefined;
}

export interface RoutingTable {
  readonly snapshot: Snapshot;
  readonly byListener: ReadonlyMap<string, ListenerRoute>;
  /** Every cluster, including those reached only through sni_routes. */
  readonly byCluster: ReadonlyMap<string, ClusterRoute>;
  /** Only listeners with edge settings (acl, limits, accept_proxy, sni_routes) are here. */
  readonly edgeByListener: ReadonlyMap<string, EdgePolicy>;
  /**
   * Backends an open connection may stay with, slot → id. A backend that is gone, or whose
   * drain ended, is not here: connections still open to it are to be closed.
   */
  readonly keep: ReadonlyMap<number, string>;
}

export interface RoutingEnv extends BalancerEnv {
  /** Each cluster's shared state buffer view, by cluster name. */
  readonly clusterStates: ReadonlyMap<string, ClusterState>;
}

export function isEligible(backend: SnapshotBackend): boolean {
  return backend.state === 'healthy' && backend.weight > 0;
}

/** In panic, health is ignored but an operator's drain or removal is not. */
export function isPanicEligible(backend: SnapshotBackend): boolean {
  return backend.admin === 'none' && backend.weight > 0;
}

/**
 * The cluster for a new connection on this listener: a weighted choice between its routes;
 * a chosen cluster with no eligible backend gives way to the next route that has one (a
 * canary without a healthy backend does not refuse its share of clients).
 */
export function chooseCluster(listener: ListenerRoute): ClusterRoute | undefined {
  const clusters = listener.clusters;
  if (listener.split === undefined) return clusters[0];
  const first = pickSmoothWeighted(listener.split);
  for (let i = 0; i < clusters.length; i++) {
    const cluster = clusters[(first + i) % clusters.length];
    if (cluster !== undefined && cluster.eligible.length > 0) return cluster;
  }
  return clusters[first];
}

export function buildRoutingTable(snapshot: Snapshot, env: RoutingEnv, previous?: RoutingTable): RoutingTable {
  const byCluster = new Map<string, ClusterRoute>();
  const keep = new Map<number, string>();
  for (const cluster of snapshot.clusters) {
    const route = clusterRoute(cluster, snapshot.version, previous?.byCluster.get(cluster.name), env);
    byCluster.set(cluster.name, route);
    // Not drained, plus what a panic routed to unhealthy backends (not cut by the next version).
    for (const [slot, id] of route.retaining) keep.set(slot, id);
  }
  const byListener = new Map<string, ListenerRoute>();
  const edgeByListener = new Map<string, EdgePolicy>();
  for (const listener of snapshot.listeners) {
    byListener.set(listener.name, listenerRoute(listener, byCluster, previous?.byListener.get(listener.name)));
    const edge = buildEdgePolicy(listener, byCluster, previous?.edgeByListener.get(listener.name));
    if (edge !== undefined) edgeByListener.set(listener.name, edge);
  }
  return { snapshot, byListener, byCluster, edgeByListener, keep };
}

/** True when some backend connections could stay with under `before` must be closed under `after`. */
export function closesConnections(before: RoutingTable, after: RoutingTable): boolean {
  for (const [slot, id] of before.keep) if (after.keep.get(slot) !== id) return true;
  return false;
}

function clusterRoute(cluster: SnapshotCluster, version: number, previous: ClusterRoute | undefined, env: RoutingEnv): ClusterRoute {
  const healthy = cluster.backends.filter(isEligible);
  const panic = healthy.length === 0 && cluster.panicMode === 'route_all';
  const eligible = panic ? cluster.backends.filter(isPanicEligible) : healthy;
  const state = env.clusterStates.get(cluster.name);
  const retaining = new Map<number, string>();
  for (const b of cluster.backends) if (!b.drained) retaining.set(b.slot, b.id);
  // What a panic routes to an unhealthy backend is not moved or cut by the next version.
  if (panic) for (const b of eligible) retaining.set(b.slot, b.id);
  return {
    name: cluster.name,
    version,
    connectTimeoutMs: cluster.connectTimeoutMs,
    idleTimeoutMs: cluster.idleTimeoutMs,
    eligible,
    panic,
    retaining,
    limits: Int32Array.from(eligible, (b) => b.maxConnections),
    balancer: createBalancer(cluster, eligible, previous?.balancer, env),
    hashKey: cluster.algorithm === 'consistent_hash' ? cluster.hashKey : undefined,
    sticky: stickyPolicy(cluster, eligible, state),
    queue: cluster.queueSize > 0 ? { size: cluster.queueSize, timeoutMs: cluster.queueTimeoutMs } : undefined,
    state,
    sendProxy: cluster.sendProxy,
  };
}

function stickyPolicy(
  cluster: SnapshotCluster,
  eligible: readonly SnapshotBackend[],
  state: ClusterState | undefined,
): StickyPolicy | undefined {
  // Without its shared table (a cluster the supervisor has not sized one for yet) affinity is
  // off: clients are still balanced, only not pinned.
  if (cluster.stickyTtlMs <= 0 || state === undefined || state.affinityCapacity === 0) return undefined;
  return {
    table: new AffinityTable(state.cells, state.affinityCapacity, state.affinityEpochSeconds),
    ttlSeconds: Math.max(1, Math.round(cluster.stickyTtlMs / 1000)),
    indexBySlot: new Map(eligible.map((b, index) => [b.slot, index])),
  };
}

function listenerRoute(
  listener: SnapshotListener,
  byCluster: ReadonlyMap<string, ClusterRoute>,
  previous: ListenerRoute | undefined,
): ListenerRoute {
  const clusters: ClusterRoute[] = [];
  const weights: number[] = [];
  for (const route of listener.routes) {
    const cluster = byCluster.get(route.cluster);
    if (cluster === undefined || route.weight <= 0) continue;
    clusters.push(cluster);
    weights.push(route.weight);
  }
  const split = clusters.length > 1 ? createSmoothWeighted(weights, previous?.split?.now ?? 0) : undefined;
  return { name: listener.name, clusters, split };
}
