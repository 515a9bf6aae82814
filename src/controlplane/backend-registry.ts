/**
 * The control plane's authoritative, mutable view of clusters and backends. Only the
 * control-plane worker owns one; the data plane sees it only as published snapshots.
 */
import type { AclConfig, ClusterConfig, Config, ListenerConfig } from '../shared/config/schema.ts';
import { DEFAULT_MAGLEV_TABLE_SIZE } from '../shared/config/schema.ts';
import { parseHostPort } from '../shared/address.ts';
import { SluiceError } from '../shared/errors.ts';
import type { Snapshot, SnapshotBackend, SnapshotCluster, SnapshotListener } from '../shared/snapshot/types.ts';
import type { HealthPolicy, HealthRecord } from './health/state-machine.ts';
import { rampFraction } from './health/state-machine.ts';
import type { PassiveCursor } from './health/passive.ts';
import type { RouteEntry } from './runtime-state.ts';
import type { SlotAllocator } from './slot-allocator.ts';
import { AclOverrides } from './acl-overrides.ts';
import { snapshotListener } from './listener-snapshot.ts';

export interface Backend {
  readonly id: string;
  readonly cluster: string;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly slot: number;
  /** The configured weight (config or admin API), before slow start. */
  weight: number;
  health: HealthRecord;
  readonly passive: PassiveCursor;
}

export interface Cluster {
  readonly name: string;
  readonly config: ClusterConfig;
  readonly policy: HealthPolicy;
  readonly backends: Map<string, Backend>;
}

export function backendId(cluster: string, address: string): string {
  return `${cluster}:${address}`;
}

export function healthPolicy(cluster: ClusterConfig): HealthPolicy {
  const check = cluster.health_check;
  const active = check.type !== 'none';
  return {
    rise: active ? check.rise : 1,
    fall: active ? check.fall : 1,
    passiveFailures: cluster.passive.consecutive_failures,
    drainTimeoutMs: cluster.drain_timeout,
    activeChecks: active,
    baseEjectionMs: cluster.outlier.base_ejection_time,
    maxEjectionMs: cluster.outlier.max_ejection_time,
  };
}

/** What a new backend needs besides its address; the registry assigns its slot. */
export interface NewBackend {
  readonly cluster: string;
  readonly address: string;
  readonly weight: number;
  readonly health: HealthRecord;
  readonly passive: PassiveCursor;
  /** Keep this counter slot (recovery from a snapshot) instead of allocating one. */
  readonly slot?: number;
}

export class BackendRegistry {
  private readonly clusterMap = new Map<string, Cluster>();
  /** Rebuilt only when listeners change: publishing compares it by identity. */
  private listeners: readonly SnapshotListener[] = [];
  /** The config the listeners come from, and operators' route and acl changes on top of it. */
  private listenerConfigs: readonly ListenerConfig[] = [];
  private routeOverrides: Readonly<Record<string, readonly RouteEntry[]>> = {};
  private readonly aclOverrides = new AclOverrides();
  private readonly slots: SlotAllocator;
  private readonly byId = new Map<string, Backend>();

  constructor(config: Config, slots: SlotAllocator) {
    this.slots = slots;
    this.setListeners(config);
    for (const cluster of config.clusters) {
      this.clusterMap.set(cluster.name, { name: cluster.name, config: cluster, policy: healthPolicy(cluster), backends: new Map() });
    }
  }

  get size(): number {
    return this.byId.size;
  }

  /**
   * Adopt a reloaded config's listeners and cluster settings. Backends are left to the
   * control plane, which adds and removes them through the health state machine; a cluster
   * the config dropped stays until its last (draining) backend is gone.
   */
  applyConfig(config: Config): void {
    this.setListeners(config);
    for (const cluster of config.clusters) {
      const backends = this.clusterMap.get(cluster.name)?.backends ?? new Map<string, Backend>();
      this.clusterMap.set(cluster.name, { name: cluster.name, config: cluster, policy: healthPolicy(cluster), backends });
    }
  }

  /**
   * Operators' routes, listener name → routes, in place of the config's. The listeners are
   * replaced (and so published) only when what they route to really changed.
   */
  setRouteOverrides(overrides: Readonly<Record<string, readonly RouteEntry[]>>): void {
    this.routeOverrides = overrides;
    const next = this.snapshotListeners();
    if (JSON.stringify(next) !== JSON.stringify(this.listeners)) this.listeners = next;
  }

  /** Adopt a config's listeners; an acl set through the API stays unless the file's own acl for it changed. */
  setListeners(config: Config): void {
    this.listenerConfigs = config.listeners;
    this.aclOverrides.reconcile(config.listeners);
    this.listeners = this.snapshotListeners();
  }

  /** Replace a listener's acl until the file's acl for it changes; false if there is no such listener. */
  setListenerAcl(name: string, acl: AclConfig): boolean {
    const listener = this.listenerConfigs.find((l) => l.name === name);
    if (listener === undefined) return false;
    this.aclOverrides.set(listener, acl);
    this.listeners = this.snapshotListeners();
    return true;
  }

  /** A restarted control plane takes back the acls set through the API from the last snapshot. */
  recoverListenerAcls(snapshot: Snapshot): void {
    this.aclOverrides.recover(this.listenerConfigs, snapshot);
    this.listeners = this.snapshotListeners();
  }

  /** The listeners as snapshots carry them: config, with operators' routes and acls in place of the file's. */
  private snapshotListeners(): SnapshotListener[] {
    return this.listenerConfigs.map((l) => snapshotListener(l, this.aclOverrides.get(l.name), this.routeOverrides[l.name]));
  }

  /** The routes a listener has now (config or operator), or undefined for an unknown listener. */
  listenerRoutes(name: string): readonly RouteEntry[] | undefined {
    return this.listeners.find((l) => l.name === name)?.routes;
  }

  /** Forget a cluster that is no longer configured, once it holds no backend. */
  pruneCluster(name: string, configured: ReadonlySet<string>): void {
    if (!configured.has(name) && this.clusterMap.get(name)?.backends.size === 0) this.clusterMap.delete(name);
  }

  clusters(): IterableIterator<Cluster> {
    return this.clusterMap.values();
  }

  cluster(name: string): Cluster | undefined {
    return this.clusterMap.get(name);
  }

  get(id: string): Backend | undefined {
    return this.byId.get(id);
  }

  all(): IterableIterator<Backend> {
    return this.byId.values();
  }

  /** Adds a backend; throws SLUICE_CONFIG_INVALID for an unknown cluster, a bad address or no free slot. */
  add(entry: NewBackend): Backend {
    const cluster = this.clusterMap.get(entry.cluster);
    if (cluster === undefined) throw new SluiceError('SLUICE_CONFIG_INVALID', `unknown cluster ${entry.cluster}`);
    const target = parseHostPort(entry.address);
    if (target === undefined) throw new SluiceError('SLUICE_CONFIG_INVALID', `bad backend address ${entry.address}`);
    const id = backendId(entry.cluster, entry.address);
    if (this.byId.has(id)) throw new SluiceError('SLUICE_CONFIG_INVALID', `duplicate backend ${id}`);
    let slot = entry.slot;
    if (slot === undefined) {
      slot = this.slots.allocate();
      if (slot < 0) throw new SluiceError('SLUICE_CONFIG_INVALID', `too many backends: no counter slot left for ${id}`);
    } else {
      this.slots.claim(slot);
    }
    const backend: Backend = {
      id,
      cluster: entry.cluster,
      address: entry.address,
      host: target.host,
      port: target.port,
      slot,
      weight: entry.weight,
      health: entry.health,
      passive: entry.passive,
    };
    cluster.backends.set(id, backend);
    this.byId.set(id, backend);
    return backend;
  }

  /** Forgets a backend. Its slot is the caller's to release once no connection counts into it. */
  delete(id: string): Backend | undefined {
    const backend = this.byId.get(id);
    if (backend === undefined) return undefined;
    this.byId.delete(id);
    this.clusterMap.get(backend.cluster)?.backends.delete(id);
    return backend;
  }

  /** The content of the next snapshot at time `now` (the writer assigns its version). */
  snapshotContent(now: number): Omit<Snapshot, 'version'> {
    const clusters = [...this.clusterMap.values()].map((cluster) => snapshotCluster(cluster.config, cluster.backends.values(), now));
    return { clusters, listeners: this.listeners };
  }

  /**
   * The content a snapshot would have after `config` is applied with these operators' routes
   * and `added` backends joined (each counted as `placeholder` makes it), without changing
   * anything: what a change is measured by before it is recorded or published. Backends on
   * their way out stay in it, as they do while they drain.
   */
  projectedContent(
    config: Config,
    routes: Readonly<Record<string, readonly RouteEntry[]>>,
    added: readonly { readonly cluster: string; readonly address: string; readonly weight: number }[],
    placeholder: (cluster: string, address: string, weight: number) => Backend,
    now: number,
    acl?: { readonly listener: string; readonly acl: AclConfig },
  ): Omit<Snapshot, 'version'> {
    const aclOf = (l: ListenerConfig): AclConfig | undefined => (acl?.listener === l.name ? acl.acl : this.aclOverrides.surviving(l));
    const listeners = config.listeners.map((l) => snapshotListener(l, aclOf(l), routes[l.name]));
    const settings = new Map<string, ClusterConfig>(config.clusters.map((c) => [c.name, c]));
    const members = new Map<string, Backend[]>();
    for (const cluster of this.clusterMap.values()) {
      members.set(cluster.name, [...cluster.backends.values()]);
      if (!settings.has(cluster.name) && cluster.backends.size > 0) settings.set(cluster.name, cluster.config);
    }
    for (const a of added) {
      const list = members.get(a.cluster) ?? [];
      list.push(placeholder(a.cluster, a.address, a.weight));
      members.set(a.cluster, list);
    }
    const clusters = [...settings.values()].map((c) => snapshotCluster(c, members.get(c.name) ?? [], now));
    return { clusters, listeners };
  }
}

/** One cluster as a snapshot carries it. */
function snapshotCluster(c: ClusterConfig, members: Iterable<Backend>, now: number): SnapshotCluster {
  const limits = connectionLimits(c);
  const backends: SnapshotBackend[] = [];
  for (const b of members) backends.push(toSnapshotBackend(b, now, c.slow_start, limits.get(b.address) ?? c.max_connections ?? 0));
  return {
    name: c.name,
    algorithm: c.algorithm,
    hashKey: c.hash_key ?? 'source_ip',
    maglevTableSize: c.maglev_table_size ?? DEFAULT_MAGLEV_TABLE_SIZE,
    stickyTtlMs: c.sticky?.ttl ?? 0,
    stickyMaxEntries: c.sticky?.max_entries ?? 0,
    queueSize: c.queue?.size ?? 0,
    queueTimeoutMs: c.queue?.timeout ?? 0,
    connectTimeoutMs: c.connect_timeout,
    idleTimeoutMs: c.idle_timeout,
    panicMode: c.panic_mode,
    backends,
    ...(c.send_proxy === undefined ? {} : { sendProxy: c.send_proxy }),
  };
}

/** Backends whose config entry sets its own max_connections (by address). */
function connectionLimits(cluster: ClusterConfig): Map<string, number> {
  const limits = new Map<string, number>();
  for (const entry of cluster.backends) if (entry.max_connections !== undefined) limits.set(entry.address, entry.max_connections);
  return limits;
}

function toSnapshotBackend(b: Backend, now: number, slowStartMs: number, maxConnections: number): SnapshotBackend {
  const h = b.health;
  const state = h.state === 'removed' ? 'draining' : h.state;
  const fraction = state === 'healthy' ? rampFraction(h.rampFrom, now, slowStartMs) : 1;
  return {
    id: b.id,
    slot: b.slot,
    address: b.address,
    host: b.host,
    port: b.port,
    weight: b.weight * fraction,
    configuredWeight: b.weight,
    state,
    maxConnections,
    admin: h.admin,
    drained: h.drained,
    reason: h.reason,
    since: h.since,
  };
}

/** Every field of a published backend equal: nothing routing or operators see has changed. */
export function sameBackend(a: SnapshotBackend, b: SnapshotBackend): boolean {
  return (
    a.id === b.id &&
    a.slot === b.slot &&
    a.weight === b.weight &&
    a.configuredWeight === b.configuredWeight &&
    a.state === b.state &&
    a.maxConnections === b.maxConnections &&
    a.admin === b.admin &&
    a.drained === b.drained &&
    a.reason === b.reason &&
    a.since === b.since
  );
}

/** Every cluster-level field equal (whatever fields clusters carry; backends compared apart). */
function sameClusterSettings(a: SnapshotCluster, b: SnapshotCluster): boolean {
  const { backends: _a, ...settingsA } = a;
  const { backends: _b, ...settingsB } = b;
  return JSON.stringify(settingsA) === JSON.stringify(settingsB);
}

/** True when `next` differs from `previous` in anything a snapshot carries. */
export function contentChanged(previous: Omit<Snapshot, 'version'> | undefined, next: Omit<Snapshot, 'version'>): boolean {
  if (previous === undefined || previous.clusters.length !== next.clusters.length) return true;
  for (let c = 0; c < next.clusters.length; c++) {
    const a = previous.clusters[c];
    const b = next.clusters[c];
    if (a === b) continue;
    if (a === undefined || b === undefined || !sameCluster(a, b)) return true;
  }
  return previous.listeners !== next.listeners;
}

function sameCluster(a: SnapshotCluster, b: SnapshotCluster): boolean {
  if (!sameClusterSettings(a, b) || a.backends.length !== b.backends.length) return false;
  for (let i = 0; i < b.backends.length; i++) {
    const x = a.backends[i];
    const y = b.backends[i];
    if (x === undefined || y === undefined || !sameBackend(x, y)) return false;
  }
  return true;
}

/**
 * `next` with each cluster equal to the one at the same place in `previous` replaced by that
 * (published) object, so the encoder reuses its bytes (codec.ts SnapshotEncoder): a publish
 * then costs what changed, not the whole snapshot. Pure; `next` itself is not changed.
 */
export function reuseUnchanged(previous: Omit<Snapshot, 'version'> | undefined, next: Omit<Snapshot, 'version'>): Omit<Snapshot, 'version'> {
  if (previous === undefined) return next;
  const clusters = next.clusters.map((cluster, c) => {
    const published = previous.clusters[c];
    return published !== undefined && published.name === cluster.name && sameCluster(published, cluster) ? published : cluster;
  });
  return { clusters, listeners: next.listeners };
}
