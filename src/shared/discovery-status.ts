/**
 * What the main thread knows of one discovered cluster: the control plane reports it after
 * every refresh; /clusters, /metrics and /readyz read it.
 *
 * Cost: a refresh is reported as an update without its answer unless the answer changed, so
 * an unchanged refresh of a 1,000-address answer crosses the thread boundary as a few fields
 * and the main thread's merge is O(1); only a changed answer is copied whole.
 */
export interface DiscoveredAddress {
  readonly address: string;
  readonly weight: number;
  readonly tier: number;
  readonly condition: 'ready' | 'terminating' | 'not_ready';
}

export interface DiscoveryStatus {
  readonly cluster: string;
  /** e.g. `dns srv _api._tcp.service.consul`, `kubernetes shop/web port http`. */
  readonly source: string;
  /** The last refresh succeeded. */
  readonly up: boolean;
  /** A first answer has arrived (the cluster's set is known). */
  readonly synced: boolean;
  /**
   * Discovery has spoken for readiness: a first answer arrived, or a first error did while
   * the state file held this cluster's last answer, which the cluster then serves.
   */
  readonly ready: boolean;
  /** The cluster serves the state file's copy of its last answer (no answer since start yet). */
  readonly fromCopy: boolean;
  /** Epoch milliseconds of the last good answer and of the last error. */
  readonly lastSyncAt: number | undefined;
  readonly lastErrorAt: number | undefined;
  readonly lastError: string | undefined;
  /** The last good answer (or the state file's copy), sorted by address. */
  readonly answer: readonly DiscoveredAddress[];
  readonly refreshes: { readonly answer: number; readonly empty: number; readonly error: number };
}

/** A report: the whole status when the answer changed, else everything but the answer. */
export type DiscoveryStatusUpdate = Omit<DiscoveryStatus, 'answer'> & { readonly answer?: readonly DiscoveredAddress[] };

/** The status after `update`; an update without an answer keeps the previous one (pure, O(1)). */
export function mergeDiscoveryStatus(previous: DiscoveryStatus | undefined, update: DiscoveryStatusUpdate): DiscoveryStatus {
  if (update.answer !== undefined) return { ...update, answer: update.answer };
  return { ...update, answer: previous?.answer ?? [] };
}

/** The same addresses with the same weights, tiers and conditions, both sorted by address. */
export function sameAnswer(a: readonly DiscoveredAddress[], b: readonly DiscoveredAddress[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined || y === undefined || x.address !== y.address || x.weight !== y.weight || x.tier !== y.tier || x.condition !== y.condition) return false;
  }
  return true;
}
