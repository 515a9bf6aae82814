/**
 * The routing snapshot: everything a data-plane worker needs to route a new connection.
 * Immutable once published; the control plane builds a whole new one for every change
 * (read-copy-update), so a worker that holds a decoded snapshot never sees it move.
 */

export type BackendState = 'healthy' | 'draining' | 'unhealthy';

export const BACKEND_STATES: readonly BackendState[] = ['healthy', 'draining', 'unhealthy'];

export type Algorithm = 'round_robin';

export interface SnapshotBackend {
  /** Stable operator-facing id: `${cluster}:${address}`. */
  readonly id: string;
  /** Index of this backend's cells in the shared counters; stable while the backend exists. */
  readonly slot: number;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** Effective weight (0 = receives no new connections). */
  readonly weight: number;
  readonly state: BackendState;
}

export interface SnapshotCluster {
  readonly name: string;
  readonly algorithm: Algorithm;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly backends: readonly SnapshotBackend[];
  /** Send a PROXY protocol header of this version to backends first; absent = none. */
  readonly sendProxy?: ProxyVersion;
}

export type ProxyVersion = 'v1' | 'v2';

export interface SnapshotListener {
  readonly name: string;
  /**
   * Where connections go; with `sniRoutes`, where those go whose server name matches no
   * route (or who sent none). Null only with `sniRoutes`: such connections are closed.
   */
  readonly cluster: string | null;
  // Edge protection and routing. Absent = off, so a plain listener's entry stays small.
  /** Read a PROXY v1/v2 header first; limits and acl then apply to the address it carries. */
  readonly acceptProxy?: boolean;
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
