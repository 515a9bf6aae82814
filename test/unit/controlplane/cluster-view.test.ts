import { describe, expect, it } from 'vitest';
import { ClusterViews } from '../../../src/controlplane/admin/cluster-view.ts';
import { AffinityTable } from '../../../src/shared/balancer/affinity.ts';
import { ClusterCell, ClusterState, createClusterStateBuffer } from '../../../src/shared/cluster-state.ts';
import { CounterTables, createCounterBuffer } from '../../../src/shared/counters.ts';
import type { SnapshotBackend, SnapshotCluster } from '../../../src/shared/snapshot/types.ts';
import { testBackend, testCluster } from '../../helpers/snapshot.ts';

const dims = { workers: 2, backendSlots: 8, listenerSlots: 1 };

function backend(i: number, extra: Partial<SnapshotBackend> = {}): SnapshotBackend {
  return testBackend(`10.0.0.${i}:80`, { slot: i, ...extra });
}

function cluster(extra: Partial<SnapshotCluster>): SnapshotCluster {
  return testCluster({ backends: [backend(1), backend(2, { weight: 3 }), backend(3, { state: 'unhealthy' })], ...extra });
}

describe('cluster view', () => {
  it('shows the algorithm, eligible backends and global active connections', () => {
    const counters = new CounterTables(createCounterBuffer(dims), dims);
    counters.forWorker(0).reserve(1, 0);
    counters.forWorker(1).reserve(2, 0);
    counters.forWorker(1).reserve(2, 0);
    const view = new ClusterViews({ counters, clusterState: () => undefined }).one(cluster({ algorithm: 'least_connections' }));
    expect(view).toEqual({ name: 'web', algorithm: 'least_connections', backends: 3, eligible: 2, active_connections: 3 });
  });

  it('shows the Maglev table size and each eligible backend’s share of it', () => {
    const counters = new CounterTables(createCounterBuffer(dims), dims);
    const views = new ClusterViews({ counters, clusterState: () => undefined });
    const view = views.one(cluster({ algorithm: 'consistent_hash', hashKey: 'source_ip_port', maglevTableSize: 65_537 }));
    expect(view.hash_key).toBe('source_ip_port');
    expect(view.maglev?.table_size).toBe(65_537);
    const shares = view.maglev?.shares ?? [];
    expect(shares.map((s) => s.address)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    // The table holds every backend (weights 1, 3, 1); the unhealthy one's fifth is spread evenly.
    expect(shares.reduce((sum, s) => sum + s.positions, 0)).toBeCloseTo(65_537 * 0.8, -3);
    expect(shares[0]?.share).toBeCloseTo(0.3, 2);
    expect(shares[1]?.share).toBeCloseTo(0.7, 2);
    // The same set is not rebuilt for the next request.
    expect(views.one(cluster({ algorithm: 'consistent_hash', maglevTableSize: 65_537 })).maglev?.shares).toBe(shares);
  });

  it('shows queue statistics and live affinity entries from the cluster’s shared state', () => {
    const counters = new CounterTables(createCounterBuffer(dims), dims);
    const state = new ClusterState(createClusterStateBuffer(100, 1_000_000));
    state.bump(ClusterCell.queuedTotal);
    state.bump(ClusterCell.queuedTotal);
    state.bump(ClusterCell.timedOutTotal);
    state.tryEnterQueue(0, 5);
    const affinity = new AffinityTable(state.cells, state.affinityCapacity, state.affinityEpochSeconds);
    affinity.remember(1, 2, 1, 600, 0);
    affinity.remember(3, 4, 2, 5, 0);
    const view = new ClusterViews({ counters, clusterState: () => state }).one(
      cluster({ queueSize: 5, queueTimeoutMs: 1000, stickyTtlMs: 600_000, stickyMaxEntries: 100 }),
      1_000_000 + 10_000,
    );
    expect(view.queue).toEqual({
      size: 5,
      timeout_ms: 1000,
      length: 1,
      queued_total: 2,
      served_after_wait_total: 0,
      timed_out_total: 1,
      overflow_total: 0,
      abandoned_total: 0,
    });
    expect(view.sticky).toEqual({ ttl_ms: 600_000, max_entries: 100, entries: 1 });
  });
});
