import type { CounterTables } from '../../shared/counters.ts';
import { BackendCounter } from '../../shared/counters.ts';
import type { AdminIntent, BackendState, Snapshot, SnapshotBackend } from '../../shared/snapshot/types.ts';

/** A backend as the admin API shows it: snapshot state joined with live counters. */
export interface BackendView {
  readonly id: string;
  readonly cluster: string;
  readonly address: string;
  /** The configured weight (config or PATCH). */
  readonly weight: number;
  /** The weight routing uses now: lower than `weight` while slow start ramps it up. */
  readonly effective_weight: number;
  readonly state: BackendState;
  /** What an operator asked: none, drain or remove. */
  readonly admin: AdminIntent;
  /** Why the backend is in its state, and since when (ISO 8601). */
  readonly reason: string;
  readonly since: string;
  readonly active_connections: number;
  readonly connections_total: number;
  readonly connect_failures_total: number;
  readonly bytes_from_client: number;
  readonly bytes_to_client: number;
  /** Open UDP sessions (also counted in active_connections). */
  readonly udp_sessions: number;
  readonly udp_sessions_total: number;
  readonly udp_datagrams_from_client: number;
  readonly udp_datagrams_to_client: number;
}

export function backendView(cluster: string, b: SnapshotBackend, counters: CounterTables): BackendView {
  return {
    id: b.id,
    cluster,
    address: b.address,
    weight: b.configuredWeight,
    effective_weight: b.weight,
    state: b.state,
    admin: b.admin,
    reason: b.reason,
    since: new Date(b.since).toISOString(),
    active_connections: counters.activeConnections(b.slot),
    connections_total: counters.backendTotal(b.slot, BackendCounter.connections),
    connect_failures_total: counters.backendTotal(b.slot, BackendCounter.connectFailures),
    bytes_from_client: counters.backendTotal(b.slot, BackendCounter.bytesFromClient),
    bytes_to_client: counters.backendTotal(b.slot, BackendCounter.bytesToClient),
    udp_sessions: counters.udpSessions(b.slot),
    udp_sessions_total: counters.backendTotal(b.slot, BackendCounter.udpSessions),
    udp_datagrams_from_client: counters.backendTotal(b.slot, BackendCounter.udpDatagramsFromClient),
    udp_datagrams_to_client: counters.backendTotal(b.slot, BackendCounter.udpDatagramsToClient),
  };
}

export function backendViews(snapshot: Snapshot, counters: CounterTables): BackendView[] {
  const views: BackendView[] = [];
  for (const cluster of snapshot.clusters) {
    for (const b of cluster.backends) views.push(backendView(cluster.name, b, counters));
  }
  return views;
}

/** The backend with `id` in `snapshot`, with its cluster's name. */
export function findBackend(snapshot: Snapshot, id: string): { cluster: string; backend: SnapshotBackend } | undefined {
  for (const cluster of snapshot.clusters) {
    const backend = cluster.backends.find((b) => b.id === id);
    if (backend !== undefined) return { cluster: cluster.name, backend };
  }
  return undefined;
}
