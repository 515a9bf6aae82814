import type { CounterTables } from '../../shared/counters.ts';
import { ListenerCounter } from '../../shared/counters.ts';
import { REFUSAL_REASONS } from './metrics/families.ts';
import type { SnapshotListener } from '../../shared/snapshot/types.ts';


/** A listener as the admin API shows it: its snapshot settings joined with live counters. */
export interface ListenerView {
  readonly name: string;
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
  readonly accepted_total: number;
  /** By reason, as `sluice_listener_refused_total{reason}` names them. */
  readonly refused_total: Readonly<Record<string, number>>;
  /** Connections admitted without a per-IP check because the shared table was full (fail open). */
  readonly limits_table_full_total: number;
}

export function listenerView(listener: SnapshotListener, counters: CounterTables, slot: number | undefined): ListenerView {
  const total = (field: ListenerCounter): number => (slot === undefined ? 0 : counters.listenerTotal(slot, field));
  const refused = Object.fromEntries(REFUSAL_REASONS.map(({ reason, field }) => [reason, total(field)]));
  const limits = listener.limits;
  return {
    name: listener.name,
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
}
