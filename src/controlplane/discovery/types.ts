/**
 * What a discovery source (DNS, Kubernetes EndpointSlices) reports about one cluster.
 * Sources only observe and report; turning a report into backend commands, holding
 * obsolete addresses and keeping the last known set on errors is the reconciler's job,
 * so every source gets the same semantics.
 */

/** Kubernetes endpoint conditions; DNS answers are always `ready`. */
export type EndpointCondition = 'ready' | 'terminating' | 'not_ready';

export interface DiscoveredEndpoint {
  /** `host:port`, canonical (IPv6 in brackets): the backend id is `cluster:address`. */
  readonly address: string;
  /** Relative weight, >= 1 after mapping (RFC 2782 zero weights are mapped by the source). */
  readonly weight: number;
  /** 0 = the active tier; a higher tier serves only while every lower tier is unavailable. */
  readonly tier: number;
  readonly condition: EndpointCondition;
}

export type DiscoveryResult =
  /** A good answer. Empty (NXDOMAIN, no records, no endpoints) is still an answer. */
  | { readonly kind: 'answer'; readonly endpoints: readonly DiscoveredEndpoint[]; readonly ttlSeconds?: number }
  /** Timeout, SERVFAIL, REFUSED, network or watch failure: the last known set stays. */
  | { readonly kind: 'error'; readonly message: string };

export interface DiscoverySource {
  /** Starts reporting; `report` is called on every refresh, answer or error. */
  start(report: (result: DiscoveryResult) => void): void;
  /** Stops every timer, socket and watch it owns. */
  stop(): Promise<void>;
}
