import type { CounterTables } from '../../shared/counters.ts';
import { ListenerCounter } from '../../shared/counters.ts';
import type { SnapshotListener } from '../../shared/snapshot/types.ts';

/** Refusals by reason, as the admin API names them (each closed the client before any backend). */
const REFUSALS = {
  no_backend: ListenerCounter.refusedNoBackend,
  all_backends_failed: ListenerCounter.refusedAllFailed,
  draining: ListenerCounter.refusedDraining,
  acl: ListenerCounter.refusedAcl,
  max_connections: ListenerCounter.refusedMaxConnections,
  per_ip_connections: ListenerCounter.refusedPerIpConnections,
  per_ip_rate: ListenerCounter.refusedPerIpRate,
  proxy_header: ListenerCounter.refusedProxyHeader,
  proxy_header_timeout: ListenerCounter.refusedProxyTimeout,
  tls_hello: ListenerCounter.refusedTlsHello,
  tls_hello_timeout: ListenerCounter.refusedTlsTimeout,
  sni_no_route: ListenerCounter.refusedSniNoRoute,
} as const satisfies Record<string, ListenerCounter>;

export type RefusalReason = keyof typeof REFUSALS;

/** A listener as the admin API shows it: its snapshot settings joined with live counters. */
export interface ListenerView {
  readonly name: string;
  readonly cluster: string | null;
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
  readonly refused_total: Readonly<Record<RefusalReason, number>>;
  /** Connections admitted without a per-IP check because the shared table was full (fail open). */
  readonly limits_table_full_total: number;
}

export function listenerView(listener: SnapshotListener, counters: CounterTables, slot: number | undefined): ListenerView {
  const total = (field: ListenerCounter): number => (slot === undefined ? 0 : counters.listenerTotal(slot, field));
  const refused = Object.fromEntries(Object.entries(REFUSALS).map(([reason, field]) => [reason, total(field)])) as Record<RefusalReason, number>;
  const limits = listener.limits;
  return {
    name: listener.name,
    cluster: listener.cluster,
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
