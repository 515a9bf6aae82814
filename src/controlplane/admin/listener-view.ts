/**
 * A listener's live counters for the admin API's /listeners views (listener-routes.ts adds
 * them to the listener's routes): connections (UDP: sessions), refusals, and for a UDP
 * listener its sessions, evictions, expiries and datagrams, summed over every worker.
 */
import { formatHostPort } from '../../shared/address.ts';
import type { CounterTables } from '../../shared/counters.ts';
import { ListenerCounter } from '../../shared/counters.ts';
import type { ListenerBinding } from '../../shared/messages.ts';

export interface ListenerStats {
  readonly protocol: 'tcp' | 'udp';
  readonly listen: string;
  /** TCP: connections accepted; UDP: sessions created. */
  readonly connections_total: number;
  /** TCP: connections refused; UDP: datagrams that could not start a session. */
  readonly refused_no_backend: number;
  readonly refused_all_failed: number;
  /** UDP: datagrams refused while draining (a draining TCP listener is closed instead). */
  readonly refused_draining: number;
  /** Every eligible backend was at max_connections (TCP: and no room in the queue). */
  readonly refused_at_limit: number;
  readonly udp?: {
    readonly sessions: number;
    readonly sessions_evicted: number;
    readonly sessions_expired: number;
    readonly datagrams_from_client: number;
    readonly datagrams_to_client: number;
    readonly datagrams_dropped: number;
  };
}

/** The counters of the listener the data plane runs under `name`, or undefined if it runs none. */
export function listenerStats(bindings: readonly ListenerBinding[], name: string, counters: CounterTables): ListenerStats | undefined {
  const l = bindings.find((b) => b.name === name);
  if (l === undefined) return undefined;
  const total = (field: ListenerCounter): number => counters.listenerTotal(l.slot, field);
  // The session gauge is read before the totals: a reader that sees a session gone sees why.
  const udp =
    l.protocol === 'udp'
      ? {
          sessions: counters.listenerUdpSessionsTotal(l.slot),
          sessions_evicted: total(ListenerCounter.udpSessionsEvicted),
          sessions_expired: total(ListenerCounter.udpSessionsExpired),
          datagrams_from_client: total(ListenerCounter.udpDatagramsFromClient),
          datagrams_to_client: total(ListenerCounter.udpDatagramsToClient),
          datagrams_dropped: total(ListenerCounter.udpDatagramsDropped),
        }
      : undefined;
  const stats: ListenerStats = {
    protocol: l.protocol,
    listen: formatHostPort(l.host, l.port),
    connections_total: total(ListenerCounter.accepted),
    refused_no_backend: total(ListenerCounter.refusedNoBackend),
    refused_all_failed: total(ListenerCounter.refusedAllFailed),
    refused_draining: total(ListenerCounter.refusedDraining),
    refused_at_limit: total(ListenerCounter.refusedAtLimit),
  };
  return udp === undefined ? stats : { ...stats, udp };
}
