/**
 * Routing snapshots for tests, built from small pieces with every field a test does not
 * care about at its "plain" value: a healthy backend of weight 1 with no limit and no admin
 * intent; a round-robin cluster with sticky sessions, the queue and every edge feature off;
 * a listener with one route to its cluster. A test passes only the values it is about, so
 * those stay visible in the test, and a new snapshot field needs a default here only.
 */
import { DEFAULT_MAGLEV_TABLE_SIZE } from '../../src/shared/config/schema.ts';
import type { Snapshot, SnapshotBackend, SnapshotCluster, SnapshotListener } from '../../src/shared/snapshot/types.ts';

export interface TestBackendOptions extends Partial<SnapshotBackend> {
  /** The cluster the backend belongs to: the first part of its id (`${cluster}:${address}`). */
  readonly cluster?: string;
}

/**
 * A backend at `address` (`host:port` or `[v6]:port`), id `${cluster}:${address}`,
 * cluster `web` unless `options.cluster` says otherwise; slot 0 unless given.
 */
export function testBackend(address: string, options: TestBackendOptions = {}): SnapshotBackend {
  const { cluster = 'web', ...overrides } = options;
  const match = /^\[?([^\]]*)\]?:(\d+)$/.exec(address);
  if (match === null) throw new Error(`testBackend: "${address}" is not host:port`);
  return {
    id: `${cluster}:${address}`,
    slot: 0,
    address,
    host: match[1] ?? '',
    port: Number(match[2]),
    weight: 1,
    configuredWeight: 1,
    state: 'healthy',
    maxConnections: 0,
    admin: 'none',
    drained: false,
    reason: 'test',
    since: 0,
    ...overrides,
  };
}

/** A round-robin cluster named `web` with no backends, every optional policy off. */
export function testCluster(overrides: Partial<SnapshotCluster> = {}): SnapshotCluster {
  return {
    name: 'web',
    algorithm: 'round_robin',
    hashKey: 'source_ip',
    maglevTableSize: DEFAULT_MAGLEV_TABLE_SIZE,
    stickyTtlMs: 0,
    stickyMaxEntries: 0,
    queueSize: 0,
    queueTimeoutMs: 0,
    connectTimeoutMs: 1000,
    idleTimeoutMs: 1000,
    panicMode: 'refuse',
    backends: [],
    ...overrides,
  };
}

/**
 * A listener named `web` on cluster `web`. Its routes follow its cluster: one route of
 * weight 1 to it, or none when the cluster is null (an SNI-only listener), unless given.
 * No edge field is set, so it is a plain listener.
 */
export function testListener(overrides: Partial<SnapshotListener> = {}): SnapshotListener {
  const cluster = overrides.cluster === undefined ? 'web' : overrides.cluster;
  return { name: 'web', cluster, routes: cluster === null ? [] : [{ cluster, weight: 1 }], ...overrides };
}

/** Version 1 of a snapshot with one empty `web` cluster and one `web` listener on it, unless given. */
export function testSnapshot(overrides: Partial<Snapshot> = {}): Snapshot {
  return { version: 1, clusters: [testCluster()], listeners: [testListener()], ...overrides };
}
