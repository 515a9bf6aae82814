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
}

export interface SnapshotListener {
  readonly name: string;
  readonly cluster: string;
}

export interface Snapshot {
  /** Strictly increasing; equal to the version in the shared header it was published under. */
  readonly version: number;
  readonly clusters: readonly SnapshotCluster[];
  readonly listeners: readonly SnapshotListener[];
}
