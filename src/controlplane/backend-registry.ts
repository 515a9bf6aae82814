/**
 * The control plane's authoritative, mutable view of clusters and backends. Only the
 * control-plane worker owns one; the data plane sees it only as published snapshots.
 */
import type { ClusterConfig, Config, RouteConfig } from '../shared/config/schema.ts';
import { DEFAULT_MAGLEV_TABLE_SIZE, listenerRoutes } from '../shared/config/schema.ts';
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
  /** This backend's own connection limit, overriding the cluster's. */
  readonly maxConnections?: number;
}

interface ListenerRoutes {
  readonly name: string;
  routes: readonly RouteConfig[];
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
  private readonly listeners: ListenerRoutes[];
  private readonly slots: SlotAllocator;

  constructor(config: Config, slots: SlotAllocator, recovered?: Snapshot) {
    this.slots = slots;
    this.listeners = config.listeners.map((l) => ({ name: l.name, routes: listenerRoutes(l) }));
    const previous = indexBackends(recovered);
    for (const slot of [...previous.values()].map((b) => b.slot)) slots.claim(slot);
    for (const cluster of config.clusters) {
      const backends = new Map<string, Backend>();
      this.clusters.set(cluster.name, { config: cluster, backends });
      for (const entry of cluster.backends) {
        const id = backendId(cluster.name, entry.address);
        const before = previous.get(id);
        const backend = this.createBackend(cluster.name, entry.address, entry.weight, before);
        backends.set(id, withLimit(backend, entry.max_connections));
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
      const c = cluster.config;
      const clusterLimit = c.max_connections ?? 0;
      clusters.push({
        name,
        algorithm: c.algorithm,
        hashKey: c.hash_key ?? 'source_ip',
        maglevTableSize: c.maglev_table_size ?? DEFAULT_MAGLEV_TABLE_SIZE,
        stickyTtlMs: c.sticky?.ttl ?? 0,
        stickyMaxEntries: c.sticky?.max_entries ?? 0,
        queueSize: c.queue?.size ?? 0,
        queueTimeoutMs: c.queue?.timeout ?? 0,
        connectTimeoutMs: c.connect_timeout,
        idleTimeoutMs: c.idle_timeout,
        backends: [...cluster.backends.values()].map((b) => toSnapshotBackend(b, clusterLimit)),
      });
    }
    const listeners = this.listeners.map((l) => ({
      name: l.name,
      cluster: l.routes[0]?.cluster ?? '',
      routes: l.routes.map((r) => ({ cluster: r.cluster, weight: r.weight })),
    }));
    return { clusters, listeners };
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

function toSnapshotBackend(b: Backend, clusterLimit: number): SnapshotBackend {
  const maxConnections = b.maxConnections ?? clusterLimit;
  return { id: b.id, slot: b.slot, address: b.address, host: b.host, port: b.port, weight: b.weight, state: b.state, maxConnections };
}

function withLimit(backend: Backend, maxConnections: number | undefined): Backend {
  const { maxConnections: _previous, ...rest } = backend;
  return maxConnections === undefined ? rest : { ...rest, maxConnections };
}
