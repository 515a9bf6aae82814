/** What one bench run measured, as data: the report is rendered from this, and it is saved as JSON. */
import type { TargetKind } from '../peers/target.ts';

export type WorkloadId = 'keepalive' | 'latency' | 'close' | 'bulk_up' | 'bulk_down' | 'idle_memory' | 'pick_cost' | 'admin_change';

export const ALL_WORKLOADS: readonly WorkloadId[] = [
  'keepalive',
  'latency',
  'close',
  'bulk_up',
  'bulk_down',
  'idle_memory',
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
  };
  readonly rounds: readonly RoundInfo[];
  readonly samples: readonly Sample[];
  readonly failures: readonly Failure[];
  /** What a reader of a workload's numbers must know, e.g. which admin route made the changes. */
  readonly notes: readonly { readonly workload: WorkloadId; readonly note: string }[];
  /** Free text the operator passed with --note, e.g. how loaded the machine was. */
  readonly note: string;
}
