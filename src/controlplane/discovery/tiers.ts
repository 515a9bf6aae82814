/**
 * Which discovered addresses take new connections (pure). Addresses are ranked: SRV priority
 * tiers first, and inside a tier ready endpoints before terminating ones (Kubernetes: an
 * endpoint that is serving but terminating is used only while nothing is ready, as kube-proxy
 * does). The listed rank is the best one that has an available backend (up and not taken out
 * by an operator); the next rank serves only while every backend of the better ones is
 * unavailable, which is nginx's `backup` and SRV priority semantics. With nothing available
 * anywhere, the best rank stays listed so a recovering backend is routed at once.
 * Not-ready endpoints are never listed. Cost: O(n) per call.
 */
import type { EndpointCondition } from './types.ts';

export interface TierMember {
  readonly address: string;
  readonly tier: number;
  readonly condition: EndpointCondition;
  /** Healthy by its checks and not drained or removed by an operator. */
  readonly available: boolean;
}

export function rankOf(member: Pick<TierMember, 'tier' | 'condition'>): number {
  return member.tier * 2 + (member.condition === 'terminating' ? 1 : 0);
}

export function listedAddresses(members: readonly TierMember[]): Set<string> {
  let best = Infinity;
  let bestAvailable = Infinity;
  for (const m of members) {
    if (m.condition === 'not_ready') continue;
    const rank = rankOf(m);
    best = Math.min(best, rank);
    if (m.available) bestAvailable = Math.min(bestAvailable, rank);
  }
  const listedRank = bestAvailable === Infinity ? best : bestAvailable;
  const listed = new Set<string>();
  for (const m of members) if (m.condition !== 'not_ready' && rankOf(m) === listedRank) listed.add(m.address);
  return listed;
}
