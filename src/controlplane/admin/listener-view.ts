import { formatHostPort } from '../../shared/address.ts';
import type { CounterTables } from '../../shared/counters.ts';
import { ListenerCounter } from '../../shared/counters.ts';
import type { ListenerBinding } from '../../shared/messages.ts';
import type { Snapshot } from '../../shared/snapshot/types.ts';

/** A listener as the admin API shows it: its config joined with live counters. */
export interface ListenerView {
  readonly name: string;
  readonly protocol: 'tcp' | 'udp';
  readonly listen: string;
  /** Null only in the moment between a reload's snapshot and its listener change. */
  readonly cluster: string | null;
  /** TCP: connections accepted; UDP: sessions created. */
  readonly connections_total: number;
  /** TCP: connections refused; UDP: datagrams that could not start a session. */
  readonly refused_no_backend: number;
  readonly refused_all_failed: number;
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

/** The listeners the data plane runs, with the cluster each routes to in `snapshot`. */
export function listenerViews(listeners: readonly ListenerBinding[], snapshot: Snapshot, counters: CounterTables): ListenerView[] {
  const clusterOf = new Map(snapshot.listeners.map((l) => [l.name, l.cluster]));
  return listeners.map((l) => {
    const total = (field: ListenerCounter): number => counters.listenerTotal(l.slot, field);
    const view: ListenerView = {
      name: l.name,
      protocol: l.protocol,
      listen: formatHostPort(l.host, l.port),
      cluster: clusterOf.get(l.name) ?? null,
      connections_total: total(ListenerCounter.accepted),
      refused_no_backend: total(ListenerCounter.refusedNoBackend),
      refused_all_failed: total(ListenerCounter.refusedAllFailed),
      refused_draining: total(ListenerCounter.refusedDraining),
      refused_at_limit: total(ListenerCounter.refusedAtLimit),
    };
    if (l.protocol !== 'udp') return view;
    return {
      ...view,
      udp: {
        sessions: counters.listenerUdpSessionsTotal(l.slot),
        sessions_evicted: total(ListenerCounter.udpSessionsEvicted),
        sessions_expired: total(ListenerCounter.udpSessionsExpired),
        datagrams_from_client: total(ListenerCounter.udpDatagramsFromClient),
        datagrams_to_client: total(ListenerCounter.udpDatagramsToClient),
        datagrams_dropped: total(ListenerCounter.udpDatagramsDropped),
      },
    };
  });
}
