/**
 * DNS records to discovered endpoints (pure). SRV (RFC 2782): the lowest priority value is
 * tier 0, the next one tier 1, and so on; weights are relative within a tier and mapped to
 * Sluice weights (1..MAX_WEIGHT) so that a weight-0 record still gets the smallest share
 * instead of none. A/AAAA: every address is an endpoint of weight 1 on the configured port.
 * Addresses come out canonical (`[2001:db8::1]:80`), so a backend id stays the same
 * whatever spelling the server used. Cost: O(n log n) in the records.
 */
import { canonicalHost, formatHostPort } from '../../shared/address.ts';
import type { DiscoveredEndpoint } from './types.ts';

export interface SrvRecord {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  /** A host name; `.` means the service is decidedly not available (RFC 2782). */
  readonly target: string;
}

/** The largest backend weight config and the admin API accept. */
export const MAX_WEIGHT = 10_000;
/** In a tier that mixes zeros and non-zeros, weight 1 weighs this much more than weight 0. */
const ZERO_SHARE_FACTOR = 100;

/**
 * RFC 2782 weights of one tier to Sluice weights (>= 1): all zero → equal (1 each); no zero →
 * as written (scaled down if above MAX_WEIGHT); zeros among non-zeros → a zero gets 1 and the
 * others ZERO_SHARE_FACTOR times their weight (scaled down to fit MAX_WEIGHT; never below 1).
 */
export function mapSrvWeights(weights: readonly number[]): number[] {
  const max = Math.max(0, ...weights);
  if (max === 0) return weights.map(() => 1);
  const hasZero = weights.includes(0);
  const factor = Math.min(hasZero ? ZERO_SHARE_FACTOR : 1, MAX_WEIGHT / max);
  return weights.map((weight) => (weight === 0 ? 1 : Math.max(1, Math.round(weight * factor))));
}

/** The name as DNS compares it: case-insensitive, without the root dot. */
export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/**
 * SRV records to endpoints; `addressesOf(target)` gives the IPs a target resolved to. A
 * target with several addresses yields one endpoint per address, each with the record's
 * weight. An address named twice keeps its lowest tier and, there, its highest weight.
 */
export function srvEndpoints(records: readonly SrvRecord[], addressesOf: (target: string) => readonly string[]): DiscoveredEndpoint[] {
  const usable = records.filter((record) => normalizeName(record.target) !== '');
  const priorities = [...new Set(usable.map((record) => record.priority))].sort((a, b) => a - b);
  const byAddress = new Map<string, DiscoveredEndpoint>();
  priorities.forEach((priority, tier) => {
    const inTier = usable.filter((record) => record.priority === priority);
    const weights = mapSrvWeights(inTier.map((record) => record.weight));
    inTier.forEach((record, index) => {
      const weight = weights[index] ?? 1;
      for (const ip of addressesOf(record.target)) {
        const address = formatHostPort(canonicalHost(ip), record.port);
        const earlier = byAddress.get(address);
        if (earlier !== undefined && (earlier.tier < tier || earlier.weight >= weight)) continue;
        byAddress.set(address, { address, weight, tier, condition: 'ready' });
      }
    });
  });
  return sortEndpoints([...byAddress.values()]);
}

/** A/AAAA answers: every address on `port`, weight 1, tier 0. */
export function addressEndpoints(ips: readonly string[], port: number): DiscoveredEndpoint[] {
  const addresses = new Set(ips.map((ip) => formatHostPort(canonicalHost(ip), port)));
  return sortEndpoints([...addresses].map((address) => ({ address, weight: 1, tier: 0, condition: 'ready' })));
}

/** One order whatever order the server answered in, so equal answers compare equal. */
function sortEndpoints(endpoints: DiscoveredEndpoint[]): DiscoveredEndpoint[] {
  return endpoints.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}
