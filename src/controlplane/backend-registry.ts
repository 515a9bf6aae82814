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
  readonly config: ClusterConfig;
  readonly backends: Map<string, Backend>;
}

export function backendId(cluster: string, address: string): string {
  return `${cluster}:${address}`;
}

export class BackendRegistry {
  private readonly clusters = new Map<string, Cluster>();
  private readonly listeners: { name: string; cluster: string }[];
  private readonly slots: SlotAllocator;

  constructor(config: Config, slots: SlotAllocator, recovered?: Snapshot) {
    this.slots = slots;
    this.listeners = config.listeners.map((l) => ({ name: l.name, cluster: l.cluster }));
    const previous = indexBackends(recovered);
    for (const slot of [...previous.values()].map((b) => b.slot)) slots.claim(slot);
    for (const cluster of config.clusters) {
      const backends = new Map<string, Backend>();
      this.clusters.set(cluster.name, { config: cluster, backends });
      for (const entry of cluster.backends) {
        const id = backendId(cluster.name, entry.address);
        const before = previous.get(id);
        backends.set(id, this.createBackend(cluster.name, entry.address, entry.weight, before));
        previous.delete(id);
      }
    }
    // Backends added at runtime survive a control-plane restart through the last snapshot.
    for (const [, before] of previous) {
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
