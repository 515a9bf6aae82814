/** What one bench run measured, as data: the report is rendered from this, and it is saved as JSON. */
import type { TargetKind } from '../peers/target.ts';

export type WorkloadId =
  | 'keepalive'
  | 'latency'
  | 'close'
  | 'bulk_up'
  | 'bulk_down'
  | 'udp_one'
  | 'udp_long'
  | 'idle_memory'
  | 'idle_rss'
  | 'propagation'
  | 'pick_cost'
  | 'admin_change';

export const ALL_WORKLOADS: readonly WorkloadId[] = [
  'keepalive',
  'latency',
  'close',
  'bulk_up',
  'bulk_down',
  'udp_one',
  'udp_long',
  'idle_memory',
  'idle_rss',
  'propagation',
  'pick_cost',
  'admin_change',
];

export interface Sample {
  readonly workload: WorkloadId;
  readonly target: string;
  readonly kind: TargetKind;
  readonly workers: number;
  readonly round: number;
  readonly metrics: Readonly<Record<string, number>>;
}

export interface Failure {
  readonly workload: WorkloadId;
  readonly target: string;
  readonly round: number;
  readonly error: string;
}

export interface RoundInfo {
  readonly round: number;
  readonly seconds: number;
  readonly load1Before: number;
  readonly load1After: number;
  /** Fraction of all cores busy during the round, every tenant of the machine included. */
  readonly machineBusy: number;
}

export interface RunRecord {
  readonly date: string;
  readonly command: string;
  readonly machine: {
    readonly cores: number;
    readonly cpuModel: string;
    readonly memoryGiB: number;
    readonly kernel: string;
    readonly fdLimit: number;
  };
  readonly versions: Readonly<Record<string, string>>;
  readonly settings: {
    readonly rounds: number;
    readonly durationS: number;
    readonly wrkThreads: number;
    readonly wrkConnections: number;
    readonly idleConnections: number;
    readonly pickBackends: number;
    readonly adminChanges: number;
    readonly sluiceWorkers: number;
    /** The workloads this run was asked for (absent in records from before it was kept). */
    readonly workloads?: readonly WorkloadId[];
    /** Closed-loop UDP clients and datagram size of the UDP workloads. */
    readonly udpClients?: number;
    readonly udpSize?: number;
    /** Data-plane workers of the idle RSS daemon (the shipped config's), and its load run. */
    readonly idleRssWorkers?: number;
    readonly idleRssConnections?: number;
  };
  readonly rounds: readonly RoundInfo[];
  readonly samples: readonly Sample[];
  readonly failures: readonly Failure[];
  /** What a reader of a workload's numbers must know, e.g. which admin route made the changes. */
  readonly notes: readonly { readonly workload: WorkloadId; readonly note: string }[];
  /** Every process the run started (all stopped by pid before the record was written). */
  readonly processes: readonly { readonly name: string; readonly pid: number }[];
  /** Free text the operator passed with --note, e.g. how loaded the machine was. */
  readonly note: string;
}
