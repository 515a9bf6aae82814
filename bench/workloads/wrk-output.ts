/**
 * Parse what `wrk --latency` prints (pure, so it is tested as a table): requests per
 * second, the latency percentiles, and every kind of error it counts.
 */

export interface WrkSummary {
  readonly requests: number;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  /** Latency percentiles in milliseconds. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Socket errors of every kind plus non-2xx/3xx answers. */
  readonly errors: number;
}

const UNIT_TO_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function duration(value: string | undefined, unit: string | undefined): number {
  if (value === undefined || unit === undefined) return Number.NaN;
  return Number(value) * (UNIT_TO_MS[unit] ?? Number.NaN);
}

/** Returns a summary, or a string saying what the output lacked. */
export function parseWrk(output: string): WrkSummary | string {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(output);
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(output);
  const p50 = /^\s+50(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(output);
  const p99 = /^\s+99(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(output);
  if (rps === null || total === null) return 'no "Requests/sec" or "N requests in" line';
  if (p50 === null || p99 === null) return 'no latency distribution (was --latency given?)';
  let errors = 0;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  if (socket !== null) errors += socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  if (non2xx !== null) errors += Number(non2xx[1]);
  return {
    requests: Number(total[1]),
    seconds: duration(total[2], total[3]) / 1000,
    requestsPerSecond: Number(rps[1]),
    p50Ms: duration(p50[1], p50[2]),
    p99Ms: duration(p99[1], p99[2]),
    errors,
  };
}
