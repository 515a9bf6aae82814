/**
 * A cluster as the admin API shows it (`GET /clusters`): its balancing algorithm and traffic
 * policies from the live snapshot, joined with the shared queue and affinity statistics. For
 * consistent_hash it shows the Maglev table size and the share of the table each eligible
 * backend owns; the table is the one every data-plane worker builds for the same set, computed
 * here on request and cached until the eligible set changes.
 */
import { AffinityTable } from '../../shared/balancer/affinity.ts';
import { buildMaglevTable, DEFAULT_MAGLEV_SEED, maglevShares } from '../../shared/balancer/maglev.ts';
import type { ClusterState, QueueStatistics } from '../../shared/cluster-state.ts';
import type { CounterTables } from '../../shared/counters.ts';
import type { Algorithm, HashKey, Snapshot, SnapshotBackend, SnapshotCluster } from '../../shared/snapshot/types.ts';
import { sharedMonotonicMs } from '../../shared/shared-clock.ts';

export interface TableShare {
  readonly id: string;
  readonly address: string;
  readonly positions: number;
  /** positions / table size, rounded to 6 decimals. */
  readonly share: number;
}

export interface ClusterView {
  readonly name: string;
  readonly algorithm: Algorithm;
  readonly backends: number;
  /** Backends that take new connections (healthy, weight above 0). */
  readonly eligible: number;
  readonly active_connections: number;
  /** consistent_hash only. */
  readonly hash_key?: HashKey;
  readonly maglev?: { readonly table_size: number; readonly shares: readonly TableShare[] };
  readonly sticky?: { readonly ttl_ms: number; readonly max_entries: number; readonly entries: number };
  readonly queue?: { readonly size: number; readonly timeout_ms: number } & QueueStatistics;
}

export interface ClusterViewDeps {
  readonly counters: CounterTables;
  readonly clusterState: (cluster: string) => ClusterState | undefined;
}

function isEligible(b: SnapshotBackend): boolean {
  return b.state === 'healthy' && b.weight > 0;
}

/** Caches Maglev tables by the eligible set they were built for (admin requests repeat). */
export class ClusterViews {
  private readonly deps: ClusterViewDeps;
  private readonly tables = new Map<string, { identity: string; shares: TableShare[] }>();

  constructor(deps: ClusterViewDeps) {
    this.deps = deps;
  }

  all(snapshot: Snapshot, nowMs = sharedMonotonicMs()): ClusterView[] {
    return snapshot.clusters.map((cluster) => this.one(cluster, nowMs));
  }

  one(cluster: SnapshotCluster, nowMs = sharedMonotonicMs()): ClusterView {
    const eligible = cluster.backends.filter(isEligible);
    let active = 0;
    for (const b of cluster.backends) active += this.deps.counters.activeConnections(b.slot);
    const state = this.deps.clusterState(cluster.name);
    return {
      name: cluster.name,
      algorithm: cluster.algorithm,
      backends: cluster.backends.length,
      eligible: eligible.length,
      active_connections: active,
      ...(cluster.algorithm === 'consistent_hash'
        ? { hash_key: cluster.hashKey, maglev: { table_size: cluster.maglevTableSize, shares: this.shares(cluster, eligible) } }
        : {}),
      ...(cluster.stickyTtlMs > 0
        ? { sticky: { ttl_ms: cluster.stickyTtlMs, max_entries: cluster.stickyMaxEntries, entries: stickyEntries(state, nowMs) } }
        : {}),
      ...(cluster.queueSize > 0
        ? { queue: { size: cluster.queueSize, timeout_ms: cluster.queueTimeoutMs, ...(state?.statistics() ?? emptyQueue()) } }
        : {}),
    };
  }

  /**
   * Each eligible backend's positions in the cluster's Maglev table, built as the data plane
   * builds it (every backend, in id order, keyed by id), and its expected share of clients:
   * its own positions plus an even part of the ineligible backends' (spread at lookup).
   */
  private shares(cluster: SnapshotCluster, eligible: readonly SnapshotBackend[]): TableShare[] {
    const size = cluster.maglevTableSize;
    const members = [...cluster.backends].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const identity = `${size}|${members.map((b) => `${b.id}*${b.weight}`).join(',')}|${eligible.map((b) => b.id).join(',')}`;
    const cached = this.tables.get(cluster.name);
    if (cached?.identity === identity) return cached.shares;
    const table = buildMaglevTable(
      members.map((b) => ({ key: b.id, weight: b.weight })),
      size,
      DEFAULT_MAGLEV_SEED,
    );
    const owned = maglevShares(table, members.length);
    const position = new Map(members.map((b, i) => [b.id, i]));
    const positionsOf = (b: SnapshotBackend): number => owned[position.get(b.id) ?? -1] ?? 0;
    // The keys of ineligible backends are spread evenly over the eligible ones (a second hash).
    const orphaned = size - eligible.reduce((sum, b) => sum + positionsOf(b), 0);
    const shares = eligible.map((b) => {
      const positions = positionsOf(b);
      const share = (positions + orphaned / eligible.length) / size;
      return { id: b.id, address: b.address, positions, share: Math.round(share * 1e6) / 1e6 };
    });
    this.tables.set(cluster.name, { identity, shares });
    return shares;
  }
}

function stickyEntries(state: ClusterState | undefined, nowMs: number): number {
  if (state === undefined || state.affinityCapacity === 0) return 0;
  const table = new AffinityTable(state.cells, state.affinityCapacity, state.affinityEpochSeconds);
  return table.size(table.now(nowMs));
}

function emptyQueue(): QueueStatistics {
  return { length: 0, queued_total: 0, served_after_wait_total: 0, timed_out_total: 0, overflow_total: 0, abandoned_total: 0 };
}
