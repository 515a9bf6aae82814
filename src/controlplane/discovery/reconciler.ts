/**
 * Turns what a discovery source reports into what a cluster should hold (pure: `now` is an
 * argument). Same rules for every source:
 * - an address in a good answer is served (its weight, tier and condition from the answer);
 * - an address gone from a non-empty answer drains at once and is removed once it has been
 *   missing for `holdObsolete`; back within that time, it is served again as it was;
 * - an empty answer (NXDOMAIN, no records) is trusted only once it has lasted `holdObsolete`
 *   (resolvers and registries do return spurious empty or truncated answers, haproxy#1160):
 *   until then the set keeps serving; after that every address drains, and is removed after
 *   `holdObsolete` more;
 * - a lookup error keeps the last known set (envoy#2691) for ever when `holdFailure` is 0,
 *   else until errors have lasted `holdFailure`, after which the set drains as if empty.
 * `changed` is false when nothing routing depends on moved, so nothing is published.
 * Cost: O(n) in the known addresses per step.
 */
import type { DiscoveredEndpoint, DiscoveryResult } from './types.ts';

export interface HoldPolicy {
  /** Milliseconds. */
  readonly holdObsolete: number;
  /** Milliseconds; 0 = keep the last set for ever on errors. */
  readonly holdFailure: number;
}

export interface KnownAddress {
  /** As last seen in a good answer. */
  readonly endpoint: DiscoveredEndpoint;
  /** When it stopped being served (gone from an answer, or the whole set given up). */
  readonly missingSince?: number;
}

export interface DiscoveryState {
  readonly known: ReadonlyMap<string, KnownAddress>;
  /** Start of the current run of good but empty answers. */
  readonly emptySince?: number;
  /** Start of the current run of lookup errors. */
  readonly failingSince?: number;
  /** What the last step asked for, per address: `changed` compares against it. */
  readonly published: ReadonlyMap<string, string>;
}

export type DesiredBackend =
  | { readonly action: 'serve'; readonly address: string; readonly weight: number; readonly tier: number; readonly condition: DiscoveredEndpoint['condition'] }
  | { readonly action: 'drain'; readonly address: string }
  | { readonly action: 'remove'; readonly address: string };

export interface ReconcileOutput {
  readonly state: DiscoveryState;
  /** Every known address, plus those removed in this step; sorted by address. */
  readonly desired: readonly DesiredBackend[];
  readonly changed: boolean;
  /** The earliest time at which a step without a new report would change something. */
  readonly wakeAt?: number;
}

export const EMPTY_STATE: DiscoveryState = { known: new Map(), published: new Map() };

/** The backend id of a discovered address: stable across refreshes. */
export function discoveredBackendId(cluster: string, address: string): string {
  return `${cluster}:${address}`;
}

/** One step: a new report from the source. */
export function reconcile(previous: DiscoveryState, result: DiscoveryResult, now: number, policy: HoldPolicy): ReconcileOutput {
  if (result.kind === 'error') return onError(previous, now, policy);
  if (result.endpoints.length === 0) return onEmpty(previous, now, policy);
  const known = new Map<string, KnownAddress>();
  for (const endpoint of result.endpoints) known.set(endpoint.address, { endpoint });
  for (const [address, entry] of previous.known) {
    if (!known.has(address)) known.set(address, { endpoint: entry.endpoint, missingSince: entry.missingSince ?? now });
  }
  return settle(previous, { known, published: previous.published }, now, policy);
}

/** One step without a report: lets holds expire between refreshes (call at `wakeAt`). */
export function expire(previous: DiscoveryState, now: number, policy: HoldPolicy): ReconcileOutput {
  if (previous.failingSince !== undefined) return onError(previous, now, policy);
  if (previous.emptySince !== undefined) return onEmpty(previous, now, policy);
  return settle(previous, previous, now, policy);
}

function onEmpty(previous: DiscoveryState, now: number, policy: HoldPolicy): ReconcileOutput {
  const emptySince = previous.emptySince ?? now;
  const trusted = now - emptySince >= policy.holdObsolete;
  const known = trusted ? giveUp(previous.known, emptySince + policy.holdObsolete) : previous.known;
  const output = settle(previous, { known, emptySince, published: previous.published }, now, policy);
  return trusted ? output : withWake(output, emptySince + policy.holdObsolete);
}

function onError(previous: DiscoveryState, now: number, policy: HoldPolicy): ReconcileOutput {
  const failingSince = previous.failingSince ?? now;
  // Errors after empty answers: the empty run's clock keeps running, errors do not reset it.
  const base = previous.emptySince === undefined ? {} : { emptySince: previous.emptySince };
  if (policy.holdFailure === 0 || now - failingSince < policy.holdFailure) {
    const output = settle(previous, { ...base, known: previous.known, failingSince, published: previous.published }, now, policy);
    return policy.holdFailure === 0 ? output : withWake(output, failingSince + policy.holdFailure);
  }
  const known = giveUp(previous.known, failingSince + policy.holdFailure);
  return settle(previous, { ...base, known, failingSince, published: previous.published }, now, policy);
}

/** Every address still served counts as missing from `since`. */
function giveUp(known: ReadonlyMap<string, KnownAddress>, since: number): Map<string, KnownAddress> {
  const out = new Map<string, KnownAddress>();
  for (const [address, entry] of known) out.set(address, { endpoint: entry.endpoint, missingSince: entry.missingSince ?? since });
  return out;
}

/** Applies the obsolete hold to `next.known` and compares the outcome with what was published. */
function settle(previous: DiscoveryState, next: DiscoveryState, now: number, policy: HoldPolicy): ReconcileOutput {
  const known = new Map<string, KnownAddress>();
  const desired: DesiredBackend[] = [];
  let wakeAt: number | undefined;
  for (const [address, entry] of next.known) {
    if (entry.missingSince === undefined) {
      known.set(address, entry);
      desired.push({ action: 'serve', address, weight: entry.endpoint.weight, tier: entry.endpoint.tier, condition: entry.endpoint.condition });
      continue;
    }
    const removeAt = entry.missingSince + policy.holdObsolete;
    if (now >= removeAt) {
      desired.push({ action: 'remove', address });
      continue;
    }
    known.set(address, entry);
    desired.push({ action: 'drain', address });
    wakeAt = wakeAt === undefined ? removeAt : Math.min(wakeAt, removeAt);
  }
  desired.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  const published = new Map<string, string>();
  for (const entry of desired) if (entry.action !== 'remove') published.set(entry.address, fingerprint(entry));
  const changed = desired.length !== previous.published.size || desired.some((entry) => previous.published.get(entry.address) !== fingerprint(entry));
  const state: DiscoveryState = { ...next, known, published };
  return wakeAt === undefined ? { state, desired, changed } : { state, desired, changed, wakeAt };
}

function withWake(output: ReconcileOutput, at: number): ReconcileOutput {
  return { ...output, wakeAt: output.wakeAt === undefined ? at : Math.min(output.wakeAt, at) };
}

function fingerprint(entry: DesiredBackend): string {
  return entry.action === 'serve' ? `serve ${entry.weight} ${entry.tier} ${entry.condition}` : entry.action;
}
