/**
 * What the control plane reports to the main thread about the registry (etcd): whether it
 * answers, what this instance has applied, and the fleet as the registry lists it. The main
 * thread serves it (GET /fleet, /healthz details, metrics) without a network call of its own.
 */

/** One instance of the fleet, as its leased `instances/<name>` key says. */
export interface FleetInstanceReport {
  readonly instance: string;
  readonly version: string;
  /** The registry revision of the last operator intent the instance applied. */
  readonly revision: number;
  readonly snapshot_hash: string;
  readonly started_at: string;
  /** Milliseconds since the instance last changed its report, when this report was made. */
  readonly age_ms: number;
}

export interface RegistryStatusReport {
  /** Names the registry: `etcd http://127.0.0.1:2379`. */
  readonly registry: string;
  /** This instance's name in the fleet. */
  readonly instance: string;
  readonly up: boolean;
  /** Why the registry is down, while it is. */
  readonly lastError: string | undefined;
  /** The etcd revision this instance's watch has applied. */
  readonly revision: number;
  /** The revision of the last operator intent applied (what the fleet listing compares). */
  readonly appliedRevision: number;
  /** The hash of this instance's routing intent (fleet.ts snapshotHash). */
  readonly snapshotHash: string;
  readonly fleet: readonly FleetInstanceReport[];
  /** Epoch milliseconds: ages in `fleet` are as of this moment. */
  readonly reportedAt: number;
}
