/**
 * The EndpointSlices of one Service (`discovery.k8s.io/v1`) -> what the Kubernetes source
 * reports. Pure: the informer's cache in, a sorted, deduplicated endpoint list out.
 *
 * Rules, after the API reference and kube-proxy's EndpointSliceCache:
 * - Only an endpoint's first address is used: the API calls an endpoint's addresses
 *   fungible, and kube-proxy reads only `addresses[0]`.
 * - The port is looked up in each slice's own `ports` (by name, or by number when the
 *   config gives a number): during a rollout that changes a target port, old and new pods
 *   sit in different slices with different numbers under the same name. A slice without
 *   the port contributes nothing.
 * - `IPv4` and `IPv6` slices only; `FQDN` slices (deprecated) are skipped, as kube-proxy does.
 * - Conditions: `ready` (nil = true) -> ready; else `serving` (nil = true) and `terminating`
 *   (nil = false) -> terminating; else not_ready.
 * - An address:port in several slices (a pod moving between slices) is reported once, with
 *   its best condition: the slice controller writes the new slice before pruning the old.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { canonicalHost, formatHostPort } from '../../shared/address.ts';
import type { DiscoveredEndpoint, EndpointCondition } from './types.ts';

/** The fields read here; both raw watch JSON and client-node's `V1EndpointSlice` fit. */
export interface EndpointSliceView {
  readonly addressType: string;
  readonly endpoints?: readonly EndpointView[] | null | undefined;
  readonly ports?: readonly EndpointPortView[] | null | undefined;
}

export interface EndpointView {
  readonly addresses: readonly string[];
  readonly conditions?: EndpointConditionsView | null | undefined;
}

export interface EndpointConditionsView {
  readonly ready?: boolean | null | undefined;
  readonly serving?: boolean | null | undefined;
  readonly terminating?: boolean | null | undefined;
}

export interface EndpointPortView {
  readonly name?: string | null | undefined;
  readonly port?: number | null | undefined;
}

/** A port name (`http`) or number (`8080`), as in `discovery.port`. */
export type PortSelector = string | number;

const RANK: Readonly<Record<EndpointCondition, number>> = { ready: 2, terminating: 1, not_ready: 0 };

export function endpointCondition(conditions: EndpointConditionsView | null | undefined): EndpointCondition {
  if (conditions?.ready ?? true) return 'ready';
  const serving = conditions?.serving ?? true;
  const terminating = conditions?.terminating ?? false;
  return serving && terminating ? 'terminating' : 'not_ready';
}

/** The slice's port number for `selector`, or undefined when the slice does not carry it. */
export function slicePort(ports: readonly EndpointPortView[] | null | undefined, selector: PortSelector): number | undefined {
  const match = ports?.find((p) => (typeof selector === 'number' ? p.port === selector : p.name === selector));
  const port = match?.port;
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65_535 ? port : undefined;
}

/** `host:port` for an address of the slice's type, or undefined when it is not one. */
function endpointAddress(addressType: string, address: string | undefined, port: number): string | undefined {
  if (address === undefined) return undefined;
  if (addressType === 'IPv4' && isIPv4(address)) return formatHostPort(address, port);
  if (addressType === 'IPv6' && isIPv6(address)) return formatHostPort(canonicalHost(address), port);
  return undefined;
}

export function endpointsFromSlices(slices: Iterable<EndpointSliceView>, selector: PortSelector): DiscoveredEndpoint[] {
  const best = new Map<string, EndpointCondition>();
  for (const slice of slices) {
    const port = slicePort(slice.ports, selector);
    if (port === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      const address = endpointAddress(slice.addressType, endpoint.addresses[0], port);
      if (address === undefined) continue;
      const condition = endpointCondition(endpoint.conditions);
      const seen = best.get(address);
      if (seen === undefined || RANK[condition] > RANK[seen]) best.set(address, condition);
    }
  }
  return [...best.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([address, condition]) => ({ address, weight: 1, tier: 0, condition }));
}
