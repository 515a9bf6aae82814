/**
 * HTTP load through a target with wrk: keep-alive requests/s (many connections, each
 * reused), new connections/s (`Connection: close`, so every request is a new proxied TCP
 * connection), and unloaded latency (one connection, one request at a time, so the
 * percentiles are the proxy's added delay rather than queueing). Alongside, the CPU time
 * the proxy's processes burnt per request.
 */
import { cpuSeconds } from '../lib/proc-stats.ts';
import { runTool } from '../lib/run-tool.ts';
import type { Target } from '../peers/target.ts';
import { parseWrk } from './wrk-output.ts';

export type HttpMode = 'keepalive' | 'close' | 'latency';

export interface HttpLoadOptions {
  readonly durationS: number;
  readonly threads: number;
  readonly connections: number;
}

export type Metrics = Record<string, number>;

/** wrk overruns its -d by the time its last requests take; beyond this margin it is stuck. */
const WRK_MARGIN_MS = 15_000;

export async function runHttpLoad(target: Target, mode: HttpMode, options: HttpLoadOptions): Promise<Metrics> {
  const connections = mode === 'latency' ? 1 : options.connections;
  const threads = Math.min(options.threads, connections);
  const args = ['--latency', '-t', String(threads), '-c', String(connections), '-d', `${options.durationS}s`];
  if (mode === 'close') args.push('-H', 'Connection: close');
  args.push(`http://127.0.0.1:${target.httpPort}/`);
  const cpuBefore = target.pid === undefined ? 0 : cpuSeconds(target.pid);
  const result = await runTool('wrk', args, options.durationS * 1000 + WRK_MARGIN_MS);
  const cpuUsed = target.pid === undefined ? Number.NaN : cpuSeconds(target.pid) - cpuBefore;
  const summary = parseWrk(result.stdout);
  if (typeof summary === 'string') {
    throw new Error(`wrk against ${target.name}: ${summary}\n${result.stdout}${result.stderr}`);
  }
  return {
    rps: summary.requestsPerSecond,
    p50_ms: summary.p50Ms,
    p99_ms: summary.p99Ms,
    errors: summary.errors,
    cpu_us_per_req: summary.requests > 0 ? (cpuUsed / summary.requests) * 1e6 : Number.NaN,
  };
}
