/**
 * The idle sweep's decisions, apart from the sockets: how often a worker sweeps, and what
 * the sweep does with one session at time `now`. Times are milliseconds of the proxy's
 * monotonic clock (performance.now()), never the wall clock: a wall-clock step must not make
 * every open connection look idle at once (or none for an hour).
 *
 * An idle session is closed between `idle_timeout` and `idle_timeout` plus one sweep period
 * after the sweep last saw its bytes move.
 */

export const SWEEP_INTERVAL_MS = 1000;
export const MIN_SWEEP_INTERVAL_MS = 25;
/** Sweeps per idle timeout at least, so a short timeout is still judged to within a quarter. */
export const SWEEPS_PER_IDLE_TIMEOUT = 4;

/** The sweep period a worker needs for a cluster with this idle timeout. */
export function sweepIntervalFor(idleTimeoutMs: number): number {
  return Math.max(MIN_SWEEP_INTERVAL_MS, Math.min(SWEEP_INTERVAL_MS, Math.floor(idleTimeoutMs / SWEEPS_PER_IDLE_TIMEOUT)));
}

/**
 * What the sweep does with a connected session: `active` (bytes moved since the last sweep:
 * it is active as of now), `idle` (close it), or `open` (leave it). A string literal, so the
 * per-session call allocates nothing.
 */
export type SweepVerdict = 'active' | 'idle' | 'open';

export function sweepVerdict(bytesMoved: boolean, activeAt: number, now: number, idleTimeoutMs: number): SweepVerdict {
  if (bytesMoved) return 'active';
  return now - activeAt >= idleTimeoutMs ? 'idle' : 'open';
}
