/** One thing the workloads measure: the backend itself, or a proxy in front of it. */
export type TargetKind = 'direct' | 'haproxy' | 'nginx' | 'sluice';

export interface Target {
  /** Row label in the report, e.g. `haproxy 1t`, `sluice 2w`. */
  readonly name: string;
  readonly kind: TargetKind;
  /** Threads (HAProxy), worker processes (nginx) or data-plane workers (Sluice); 0 for direct. */
  readonly workers: number;
  /** Where HTTP load goes: the proxy's listener in front of the nginx backend. */
  readonly httpPort: number;
  /** Where iperf3 connects: the proxy's listener in front of the iperf3 server. */
  readonly iperfPort: number;
  /** Root of the process tree whose CPU and memory are the proxy's; undefined for direct. */
  readonly pid: number | undefined;
}
