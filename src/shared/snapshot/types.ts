/**
 * The routing snapshot: everything a data-plane worker needs to route a new connection.
 * Immutable once published; the control plane builds a whole new one for every change
 * (read-copy-update), so a worker that holds a decoded snapshot never sees it move.
 */

export type BackendState = 'healthy' | 'draining' | 'unhealthy';

export const BACKEND_STATES: readonly BackendState[] = ['healthy', 'draining', 'unhealthy'];

export type Algorithm = 'round_robin' | 'least_connections' | 'random' | 'power_of_two' | 'consistent_hash';

/** What `consistent_hash` hashes: the client's address, or its address and port. */
export type HashKey = 'source_ip' | 'source_ip_port';

/**
 * What an operator asked of a backend through the admin API: nothing, keep it out of
 * rotation (`drain`, until undrained), or take it away (`remove`, once drained).
 */
export type AdminIntent = 'none' | 'drain' | 'remove';

export const ADMIN_INTENTS: readonly AdminIntent[] = ['none', 'drain', 'remove'];

/** With no healthy backend: refuse new clients, or route to every backend an operator left in. */
export type PanicMode = 'refuse' | 'route_all';

export const PANIC_MODES: readonly PanicMode[] = ['refuse', 'route_all'];

export interface SnapshotBackend {
  /** Stable operator-facing id: `${cluster}:${address}`. */
  readonly id: string;
  /** Index of this backend's cells in the shared counters; stable while the backend exists. */
  readonly slot: number;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** Effective weight (0 = receives no new connections): configuredWeight, ramped under slow start. */
  readonly weight: number;
  /** The weight from config or the admin API, before slow start. */
  readonly configuredWeight: number;
  readonly state: BackendState;
  /** Connections this backend may hold at once over all workers; 0 = no limit. */
  readonly maxConnections: number;
  readonly admin: AdminIntent;
  /**
   * The backend's drain has ended (no connection left, or the drain timeout passed): a data
   * plane closes any connection it still holds to it. Always true when unhealthy.
   */
  readonly drained: boolean;
  /** Why the backend is in its state (the last transition), for operators. */
  readonly reason: string;
  /** When that transition happened (ms since the epoch). */
  readonly since: number;
}

export interface SnapshotCluster {
  readonly name: string;
  readonly algorithm: Algorithm;
  /** consistent_hash only (the defaults elsewhere). */
  readonly hashKey: HashKey;
  /** Prime size of the Maglev lookup table (consistent_hash only). */
  readonly maglevTableSize: number;
  /** Session affinity: how long a client keeps its backend without connecting; 0 = off. */
  readonly stickyTtlMs: number;
  readonly stickyMaxEntries: number;
  /** Connections that may wait for a backend below its limit; 0 = no queue. */
  readonly queueSize: number;
  readonly queueTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly panicMode: PanicMode;
  readonly backends: readonly SnapshotBackend[];
  /** Send a PROXY protocol header of this version to backends first; absent = none. */
  readonly sendProxy?: ProxyVersion;
}

export type ProxyVersion = 'v1' | 'v2';

/** One weighted target of a listener. */
export interface SnapshotRoute {
  readonly cluster: string;
  readonly weight: number;
}

export interface SnapshotListener {
  readonly name: string;
  /**
   * The listener's single cluster, or the first of its routes. Null only with `sniRoutes`
   * and no default: a client whose server name matches no route is closed.
   */
  readonly cluster: string | null;
  /**
   * Where new connections go, split by weight (one route of weight 1 for a single cluster);
   * with `sniRoutes`, where those go whose server name matches no route (or who sent none).
   * Empty only with `sniRoutes`.
   */
  readonly routes: readonly SnapshotRoute[];
  // Edge protection and routing. Absent = off, so a plain listener's entry stays small.
  /** Read a PROXY v1/v2 header first; limits and acl then apply to the address it carries. */
  readonly acceptProxy?: boolean;
  /**
   * With acceptProxy: the peers (CIDR blocks, canonical text) allowed to send the header;
   * others are refused. Absent = every peer is trusted (`accept_proxy: true`).
   */
  readonly proxyTrusted?: readonly string[];
  readonly limits?: SnapshotLimits;
  readonly acl?: SnapshotAcl;
  /** Route by TLS server name; exact names before `*.suffix` wildcards. */
  readonly sniRoutes?: readonly SnapshotSniRoute[];
}

/** A listener's `limits`; 0 = that limit is off. */
export interface SnapshotLimits {
  readonly perIpConnections: number;
  /** Connections per second. */
  readonly perIpRate: number;
  readonly burst: number;
  readonly maxConnections: number;
}

/** CIDR blocks in canonical text (`10.0.0.0/8`); each data-plane worker compiles a trie per version. */
export interface SnapshotAcl {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
}

export interface SnapshotSniRoute {
  /** Lower case; `*.example.com` matches any name ending in `.example.com`. */
  readonly serverName: string;
  readonly cluster: string;
}

export interface Snapshot {
  /** Strictly increasing; equal to the version in the shared header it was published under. */
  readonly version: number;
  readonly clusters: readonly SnapshotCluster[];
  readonly listeners: readonly SnapshotListener[];
}
