/**
 * Restart delay for a crashing worker: doubles per consecutive crash up to a cap, and
 * starts over once a worker has stayed up for `stableAfterMs`. Pure: time is an argument.
 */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly stableAfterMs: number;
}

export const WORKER_RESTART_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 10_000, stableAfterMs: 30_000 };

export interface BackoffState {
  readonly consecutiveCrashes: number;
}

/** The next state and the delay before restarting a worker that ran for `uptimeMs`. */
export function nextRestart(policy: BackoffPolicy, state: BackoffState, uptimeMs: number): { state: BackoffState; delayMs: number } {
  const crashes = uptimeMs >= policy.stableAfterMs ? 1 : state.consecutiveCrashes + 1;
  const delayMs = Math.min(policy.maxMs, policy.initialMs * 2 ** (crashes - 1));
  return { state: { consecutiveCrashes: crashes }, delayMs };
}
