/**
 * A listener as the admin API shows it: its snapshot settings (routes, edge settings) joined
 * with its live counters summed over every worker; a UDP listener adds its sessions,
 * evictions, expiries and datagrams.
 */
import { formatHostPort } from '../../shared/address.ts';
import type { CounterTables } from '../../shared/counters.ts';
import { ListenerCounter } from '../../shared/counters.ts';
import type { ListenerBinding } from '../../shared/messages.ts';
import type { SnapshotListener } from '../../shared/snapshot/types.ts';
import { REFUSAL_REASONS } from './metrics/families.ts';

/** A listener the supervisor runs, or tried to: `failure` says why it could not be opened. */
export interface BoundListener extends ListenerBinding {
  readonly failure?: string;
}

export interface ListenerView {
  readonly name: string;
  /** serving: the data plane listens; failed: the last reload could not open it (see `error`); absent: never bound. */
  readonly status: 'serving' | 'failed' | 'absent';
  readonly error?: string;
  /** Where the data plane listens; null while it runs no such listener. */
  readonly protocol: 'tcp' | 'udp' | null;
  readonly listen: string | null;
  readonly cluster: string | null;
  /** Where new connections go, split by weight (PATCH /listeners/:name/routes changes it). */
  readonly routes: readonly { readonly cluster: string; readonly weight: number }[];
  readonly accept_proxy: boolean;
  readonly limits: {
    readonly per_ip_connections: number;
    readonly per_ip_rate: number;
    readonly burst: number;
    readonly max_connections: number;
  } | null;
  readonly acl: { readonly allow: readonly string[]; readonly deny: readonly string[] };
  readonly sni_routes: readonly { readonly server_name: string; readonly cluster: string }[];
  /** TCP: connections accepted; UDP: sessions created. */
  readonly accepted_total: number;
  /**
   * By reason, as `sluice_listener_refused_total{reason}` names them (UDP: datagrams that
   * could not start a session).
   */
  readonly refused_total: Readonly<Record<string, number>>;
  /** Connections admitted without a per-IP check because the shared table was full (fail open). */
  readonly limits_table_full_total: number;
  readonly udp?: UdpListenerView;
}

export interface UdpListenerView {
  readonly sessions: number;
  readonly sessions_evicted: number;
  readonly sessions_expired: number;
  readonly datagrams_from_client: number;
  readonly datagrams_to_client: number;
  readonly datagrams_dropped: number;
}

export function listenerView(listener: SnapshotListener, counters: CounterTables, binding: BoundListener | undefined): ListenerView {
  const slot = binding?.slot;
  const total = (field: ListenerCounter): number => (slot === undefined ? 0 : counters.listenerTotal(slot, field));
  // The session gauge is read before the totals: a reader that sees a session gone sees why.
  const udp = binding?.protocol === 'udp' ? udpView(counters, binding.slot, total) : undefined;
  const refused = Object.fromEntries(REFUSAL_REASONS.map(({ reason, field }) => [reason, total(field)]));
  const limits = listener.limits;
  const view: ListenerView = {
    name: listener.name,
    status: binding === undefined ? 'absent' : binding.failure === undefined ? 'serving' : 'failed',
    ...(binding?.failure === undefined ? {} : { error: binding.failure }),
    protocol: binding?.protocol ?? null,
    listen: binding === undefined ? null : formatHostPort(binding.host, binding.port),
    cluster: listener.cluster,
    routes: listener.routes.map((r) => ({ cluster: r.cluster, weight: r.weight })),
    accept_proxy: listener.acceptProxy === true,
    limits:
      limits === undefined
        ? null
        : { per_ip_connections: limits.perIpConnections, per_ip_rate: limits.perIpRate, burst: limits.burst, max_connections: limits.maxConnections },
    acl: { allow: listener.acl?.allow ?? [], deny: listener.acl?.deny ?? [] },
    sni_routes: (listener.sniRoutes ?? []).map((r) => ({ server_name: r.serverName, cluster: r.cluster })),
    accepted_total: total(ListenerCounter.accepted),
    refused_total: refused,
    limits_table_full_total: total(ListenerCounter.limitsTableFull),
  };
  return udp === undefined ? view : { ...view, udp };
}

function udpView(counters: CounterTables, slot: number, total: (field: ListenerCounter) => number): UdpListenerView {
  return {
    sessions: counters.listenerUdpSessionsTotal(slot),
    sessions_evicted: total(ListenerCounter.udpSessionsEvicted),
    sessions_expired: total(ListenerCounter.udpSessionsExpired),
    datagrams_from_client: total(ListenerCounter.udpDatagramsFromClient),
    datagrams_to_client: total(ListenerCounter.udpDatagramsToClient),
    datagrams_dropped: total(ListenerCounter.udpDatagramsDropped),
  };
}
