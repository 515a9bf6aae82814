/**
 * The control plane's authoritative, mutable view of clusters and backends. Only the
 * control-plane worker owns one; the data plane sees it only as published snapshots.
 */
import type { ClusterConfig, Config } from '../shared/config/schema.ts';
import { parseHostPort } from '../shared/address.ts';
import { SluiceError } from '../shared/errors.ts';
import type { BackendState, Snapshot, SnapshotBackend, SnapshotCluster } from '../shared/snapshot/types.ts';
import type { SlotAllocator } from './slot-allocator.ts';

export interface Backend {
  readonly id: string;
  readonly cluster: string;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly slot: number;
  weight: number;
  state: BackendState;
}

interface Cluster {
  config: ClusterConfig;
  readonly backends: Map<string, Backend>;
}

/** A backend that left the registry but may still have open connections counting into its slot. */
export interface RetiredBackend {
  readonly id: string;
  readonly slot: number;
}

export function backendId(cluster: string, address: string): string {
  return `${cluster}:${address}`;
}

export class BackendRegistry {
  private readonly clusters = new Map<string, Cluster>();
  private listeners: { name: string; cluster: string }[] = [];
  private readonly slots: SlotAllocator;

  constructor(config: Config, slots: SlotAllocator, recovered?: Snapshot) {
    this.slots = slots;
    const previous = indexBackends(recovered);
    for (const backend of previous.values()) slots.claim(backend.slot);
    this.listeners = config.listeners.map((l) => ({ name: l.name, cluster: l.cluster }));
    for (const cluster of config.clusters) {
      const backends = new Map<string, Backend>();
      this.clusters.set(cluster.name, { config: cluster, backends });
      for (const entry of cluster.backends) {
        const id = backendId(cluster.name, entry.address);
        backends.set(id, this.createBackend(cluster.name, entry.address, entry.weight, previous.get(id)));
        previous.delete(id);
      }
    }
    // Backends added at runtime survive a control-plane restart through the last snapshot.
    for (const before of previous.values()) {
      const cluster = this.clusters.get(before.cluster);
      if (cluster === undefined) slots.release(before.slot);
      else cluster.backends.set(before.id, before);
    }
  }

  get size(): number {
    let n = 0;
    for (const cluster of this.clusters.values()) n += cluster.backends.size;
    return n;
  }

  /**
   * Make the registry match a reloaded config: backends that stay keep their state and
   * slot; new ones are added healthy; removed ones leave routing at once and are returned,
   * so their slots are freed only after their open connections end.
   */
  applyConfig(config: Config, previous: Config): RetiredBackend[] {
    this.listeners = config.listeners.map((l) => ({ name: l.name, cluster: l.cluster }));
    const retired: RetiredBackend[] = [];
    const wanted = new Set(config.clusters.map((c) => c.name));
    for (const [name, cluster] of this.clusters) {
      if (wanted.has(name)) continue;
      for (const b of cluster.backends.values()) retired.push({ id: b.id, slot: b.slot });
      this.clusters.delete(name);
    }
    const previousClusters = new Map(previous.clusters.map((c) => [c.name, c]));
    for (const clusterConfig of config.clusters) {
      retired.push(...this.applyCluster(clusterConfig, previousClusters.get(clusterConfig.name)));
    }
    return retired;
  }

  /** The content of the next snapshot (the writer assigns its version). */
  snapshotContent(): Omit<Snapshot, 'version'> {
    const clusters: SnapshotCluster[] = [];
    for (const [name, cluster] of this.clusters) {
      clusters.push({
        name,
        algorithm: cluster.config.algorithm,
        connectTimeoutMs: cluster.config.connect_timeout,
        idleTimeoutMs: cluster.config.idle_timeout,
        backends: [...cluster.backends.values()].map(toSnapshotBackend),
      });
    }
    return { clusters, listeners: this.listeners.map((l) => ({ ...l })) };
  }

  private applyCluster(config: ClusterConfig, previous: ClusterConfig | undefined): RetiredBackend[] {
    let cluster = this.clusters.get(config.name);
    if (cluster === undefined) {
      cluster = { config, backends: new Map() };
      this.clusters.set(config.name, cluster);
    }
    cluster.config = config;
    const retired: RetiredBackend[] = [];
    const wanted = new Map(config.backends.map((b) => [backendId(config.name, b.address), b]));
    // Only backends the previous config declared can be removed by a reload; backends
    // added at runtime are the operator's, not the file's.
    for (const entry of previous?.backends ?? []) {
      const id = backendId(config.name, entry.address);
      const backend = cluster.backends.get(id);
      if (wanted.has(id) || backend === undefined) continue;
      cluster.backends.delete(id);
      retired.push({ id, slot: backend.slot });
    }
    for (const [id, entry] of wanted) {
      const existing = cluster.backends.get(id);
      if (existing === undefined) cluster.backends.set(id, this.createBackend(config.name, entry.address, entry.weight));
      else existing.weight = entry.weight;
    }
    return retired;
  }

  private createBackend(cluster: string, address: string, weight: number, before?: Backend): Backend {
    if (before !== undefined) return { ...before, weight };
    const target = parseHostPort(address);
    if (target === undefined) throw new SluiceError('SLUICE_CONFIG_INVALID', `bad backend address ${address}`);
    const slot = this.slots.allocate();
    if (slot < 0) throw new SluiceError('SLUICE_CONFIG_INVALID', `too many backends: no counter slot left for ${address}`);
    return { id: backendId(cluster, address), cluster, address, host: target.host, port: target.port, slot, weight, state: 'healthy' };
  }
}

function indexBackends(snapshot: Snapshot | undefined): Map<string, Backend> {
  const byId = new Map<string, Backend>();
  for (const cluster of snapshot?.clusters ?? []) {
    for (const b of cluster.backends) {
      byId.set(b.id, { id: b.id, cluster: cluster.name, address: b.address, host: b.host, port: b.port, slot: b.slot, weight: b.weight, state: b.state });
    }
  }
  return byId;
}

function toSnapshotBackend(b: Backend): SnapshotBackend {
  return { id: b.id, slot: b.slot, address: b.address, host: b.host, port: b.port, weight: b.weight, state: b.state };
}
