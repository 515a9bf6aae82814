/**
 * Durations as operators write them in config.yaml (`500ms`, `2s`, `1.5s`, `5m`, `1h`) and as
 * the code uses them: a whole number of milliseconds.
 */

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

type Unit = keyof typeof UNIT_MS;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/**
 * Every duration ends up in a timer, and Node fires a setTimeout longer than 2^31-1 ms
 * (about 24.8 days) after 1 ms instead, so a longer value would silently mean "now".
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * Milliseconds for `text`, or `undefined` when it is not a duration: no sign, no spaces, one
 * of the units ms/s/m/h, and a whole number of milliseconds (`1.5ms` is refused rather than
 * rounded, so what runs is exactly what was written).
 */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text);
  if (match === null) return undefined;
  const exact = Number(match[1]) * UNIT_MS[match[2] as Unit];
  // Decimal fractions are not exact in binary (1.1 * 1000 = 1100.0000000000002).
  const ms = Math.round(exact);
  if (Math.abs(exact - ms) > 1e-6) return undefined;
  if (ms > MAX_DURATION_MS) return undefined;
  return ms;
}

/** The shortest way to write `ms` that `parseDuration` reads back as the same value. */
export function formatDuration(ms: number): string {
  if (ms !== 0) {
    if (ms % UNIT_MS.h === 0) return `${ms / UNIT_MS.h}h`;
    if (ms % UNIT_MS.m === 0) return `${ms / UNIT_MS.m}m`;
    if (ms >= UNIT_MS.s) return `${ms / UNIT_MS.s}s`;
  }
  return `${ms}ms`;
}
