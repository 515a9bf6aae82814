/**
 * Delay before restarting a failed watch: doubles per consecutive failure up to a cap, with
 * "equal jitter" (uniform in the upper half) so that many instances that lost the same API
 * server do not come back in lockstep, while a failure loop never spins faster than
 * `initialMs / 2`. Pure: randomness is an argument.
 */
export interface RestartBackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** client-node's own reconnect delays (1 s doubling to 30 s), for the same API server. */
export const WATCH_RESTART_BACKOFF: RestartBackoffPolicy = { initialMs: 1_000, maxMs: 30_000 };

/** `failures` >= 1 consecutive failures; `random()` in [0, 1). */
export function restartDelayMs(policy: RestartBackoffPolicy, failures: number, random: () => number): number {
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(Math.max(failures, 1) - 1, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
