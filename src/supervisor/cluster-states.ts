/**
 * The supervisor's side of the per-cluster shared state (shared/cluster-state.ts): one buffer
 * per cluster, created before the data-plane workers start so every worker gets the same
 * ones, read by the admin API for queue statistics, and corrected when a worker dies.
 */
import { ClusterState, createClusterStateBuffer } from '../shared/cluster-state.ts';
import type { Config } from '../shared/config/schema.ts';
import type { ClusterStateBinding } from '../shared/messages.ts';

export class ClusterStates {
  private readonly byCluster = new Map<string, ClusterState>();

  constructor(config: Config) {
    this.apply(config);
  }

  /**
   * Match the buffers to `config`: a cluster keeps its buffer (queue cells, remembered
   * clients) unless its affinity table changed size. Returns whether anything changed, i.e.
   * whether the workers need the new `bindings()`.
   */
  apply(config: Config): boolean {
    let changed = false;
    const wanted = new Set<string>();
    for (const cluster of config.clusters) {
      wanted.add(cluster.name);
      const entries = cluster.sticky?.max_entries ?? 0;
      const existing = this.byCluster.get(cluster.name);
      if (existing?.affinityCapacity === entries) continue;
      this.byCluster.set(cluster.name, new ClusterState(createClusterStateBuffer(entries)));
      changed = true;
    }
    for (const name of [...this.byCluster.keys()]) {
      if (wanted.has(name)) continue;
      this.byCluster.delete(name);
      changed = true;
    }
    return changed;
  }

  bindings(): ClusterStateBinding[] {
    return [...this.byCluster].map(([cluster, state]) => ({ cluster, buffer: state.cells.buffer as SharedArrayBuffer }));
  }

  get(cluster: string): ClusterState | undefined {
    return this.byCluster.get(cluster);
  }

  /** A dead worker's queued connections died with it. */
  clearWorker(worker: number): void {
    for (const state of this.byCluster.values()) state.clearWorker(worker);
  }
}
