import type { CounterTables } from '../../shared/counters.ts';
import { ListenerCounter } from '../../shared/counters.ts';

/** What the admin API needs to know of a configured listener. */
export interface ListenerInfo {
  readonly name: string;
  readonly protocol: 'tcp' | 'udp';
  readonly listen: string;
  readonly cluster: string;
  /** Row in the listener counter table. */
  readonly slot: number;
}

/** A listener as the admin API shows it: its config joined with live counters. */
export interface ListenerView {
  readonly name: string;
  readonly protocol: 'tcp' | 'udp';
  readonly listen: string;
  readonly cluster: string;
  /** TCP: connections accepted; UDP: sessions created. */
  readonly connections_total: number;
  /** TCP: connections refused; UDP: datagrams that could not start a session. */
  readonly refused_no_backend: number;
  readonly refused_all_failed: number;
  readonly refused_draining: number;
  readonly udp?: {
    readonly sessions: number;
    readonly sessions_evicted: number;
    readonly sessions_expired: number;
    readonly datagrams_from_client: number;
    readonly datagrams_to_client: number;
    readonly datagrams_dropped: number;
  };
}

export function listenerViews(listeners: readonly ListenerInfo[], counters: CounterTables): ListenerView[] {
  return listeners.map((l) => {
    const total = (field: ListenerCounter): number => counters.listenerTotal(l.slot, field);
    const view: ListenerView = {
      name: l.name,
      protocol: l.protocol,
      listen: l.listen,
      cluster: l.cluster,
      connections_total: total(ListenerCounter.accepted),
      refused_no_backend: total(ListenerCounter.refusedNoBackend),
      refused_all_failed: total(ListenerCounter.refusedAllFailed),
      refused_draining: total(ListenerCounter.refusedDraining),
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
