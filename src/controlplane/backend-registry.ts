/**
 * The control plane's authoritative, mutable view of clusters and backends. Only the
 * control-plane worker owns one; the data plane sees it only as published snapshots.
 */
import type { BackendConfig, ClusterConfig, Config, RouteConfig } from '../shared/config/schema.ts';
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
  /** This backend's own connection limit (config), overriding the cluster's. */
  maxConnections?: number;
}

interface ListenerRoutes {
  readonly name: string;
  readonly routes: readonly RouteConfig[];
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
  private listeners: ListenerRoutes[] = [];
  private readonly slots: SlotAllocator;

  constructor(config: Config, slots: SlotAllocator, recovered?: Snapshot) {
    this.slots = slots;
    const previous = indexBackends(recovered);
    for (const backend of previous.values()) slots.claim(backend.slot);
    this.listeners = listenersOf(config);
    for (const cluster of config.clusters) {
      const backends = new Map<string, Backend>();
      this.clusters.set(cluster.name, { config: cluster, backends });
      for (const entry of cluster.backends) {
        const id = backendId(cluster.name, entry.address);
        backends.set(id, withLimit(this.createBackend(cluster.name, entry.address, entry.weight, previous.get(id)), entry));
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
    this.listeners = listenersOf(config);
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
      if (existing === undefined) {
        cluster.backends.set(id, withLimit(this.createBackend(config.name, entry.address, entry.weight), entry));
        continue;
      }
      existing.weight = entry.weight;
      withLimit(existing, entry);
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

function toSnapshotBackend(b: Backend, clusterLimit: number): SnapshotBackend {
  const maxConnections = b.maxConnections ?? clusterLimit;
  return { id: b.id, slot: b.slot, address: b.address, host: b.host, port: b.port, weight: b.weight, state: b.state, maxConnections };
}

/** Give the backend its config entry's own connection limit (or none: the cluster's applies). */
function withLimit(backend: Backend, entry: BackendConfig): Backend {
  if (entry.max_connections === undefined) delete backend.maxConnections;
  else backend.maxConnections = entry.max_connections;
  return backend;
}

function listenersOf(config: Config): ListenerRoutes[] {
  return config.listeners.map((l) => ({ name: l.name, routes: listenerRoutes(l) }));
}
