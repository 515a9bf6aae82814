/**
 * What the main thread knows of one discovered cluster: the control plane reports it after
 * every refresh; /clusters, /metrics and /readyz read it.
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
  /** Epoch milliseconds of the last good answer and of the last error. */
  readonly lastSyncAt: number | undefined;
  readonly lastErrorAt: number | undefined;
  readonly lastError: string | undefined;
  /** The last good answer, sorted by address. */
  readonly answer: readonly DiscoveredAddress[];
  readonly refreshes: { readonly answer: number; readonly empty: number; readonly error: number };
}
