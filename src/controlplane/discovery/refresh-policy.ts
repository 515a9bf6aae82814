/**
 * When a discovery source asks again (pure; randomness passed in). After an answer: its TTL
 * clamped into [min, max], a TTL of 0 (or none) meaning `default`. After errors: exponential
 * back-off from `min` up to `max`, with "equal jitter" (half fixed, half random) so a fleet
 * that lost its resolver at the same moment does not come back in step.
 */

export interface RefreshWindow {
  /** Milliseconds. */
  readonly min: number;
  readonly max: number;
  readonly default: number;
}

export function delayAfterAnswer(ttlSeconds: number | undefined, window: RefreshWindow): number {
  if (ttlSeconds === undefined || ttlSeconds <= 0) return window.default;
  return Math.min(window.max, Math.max(window.min, ttlSeconds * 1000));
}

/** `failures`: consecutive failed refreshes, >= 1. `random()` in [0, 1). */
export function delayAfterError(failures: number, window: RefreshWindow, random: () => number): number {
  // Capping the exponent keeps 2 ** n finite; min × 2^30 is beyond any max a duration allows.
  const base = Math.min(window.max, window.min * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(base / 2 + (base / 2) * random());
}
