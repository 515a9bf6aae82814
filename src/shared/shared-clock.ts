/**
 * Milliseconds of the system's monotonic clock, the same in every thread of the process: for
 * times that threads write into shared memory and compare (sticky-session expiries, the
 * per-IP rate buckets).
 *
 * Why not the others: `Date.now()` is shared but steps with the wall clock (NTP, an
 * operator, a resumed VM), which would expire every sticky entry at once or keep them an
 * hour too long; `performance.now()` is monotonic but counts from each thread's own start.
 * Both it and `process.hrtime` read libuv's hrtime (CLOCK_MONOTONIC), so one offset, taken
 * when the module loads, makes `performance.now()` process-wide at no cost per call.
 */
const offsetMs = Number(process.hrtime.bigint()) / 1e6 - performance.now();

export function sharedMonotonicMs(): number {
  return performance.now() + offsetMs;
}
