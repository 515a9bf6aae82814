/**
 * Bulk throughput with iperf3 through a target, one TCP stream, in both directions:
 * `up` is client → backend, `down` (iperf3 --reverse) is backend → client. Each proxy
 * copies the two directions with separate code paths in some designs, so both are shown.
 */
import { cpuSeconds } from '../lib/proc-stats.ts';
import { runTool } from '../lib/run-tool.ts';
import type { Target } from '../peers/target.ts';
import type { Metrics } from './http-load.ts';

const IPERF_MARGIN_MS = 20_000;

interface IperfJson {
  readonly error?: string;
  readonly end?: { readonly sum_received?: { readonly bits_per_second?: number; readonly bytes?: number } };
}

export async function runBulk(target: Target, direction: 'up' | 'down', durationS: number): Promise<Metrics> {
  // iperf3 takes whole seconds.
  const seconds = Math.max(1, Math.round(durationS));
  const args = ['--client', '127.0.0.1', '--port', String(target.iperfPort), '--time', String(seconds), '--json'];
  if (direction === 'down') args.push('--reverse');
  const cpuBefore = target.pid === undefined ? 0 : cpuSeconds(target.pid);
  const result = await runTool('iperf3', args, seconds * 1000 + IPERF_MARGIN_MS);
  const cpuUsed = target.pid === undefined ? Number.NaN : cpuSeconds(target.pid) - cpuBefore;
  let parsed: IperfJson;
  try {
    parsed = JSON.parse(result.stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 against ${target.name} printed no JSON: ${result.stdout.slice(0, 500)} ${result.stderr}`);
  }
  const received = parsed.end?.sum_received;
  if (parsed.error !== undefined || received?.bits_per_second === undefined || received.bytes === undefined) {
    throw new Error(`iperf3 against ${target.name}: ${parsed.error ?? 'no end.sum_received in its report'}`);
  }
  const gib = received.bytes / 2 ** 30;
  return {
    gbit_s: received.bits_per_second / 1e9,
    cpu_s_per_gib: gib > 0 ? cpuUsed / gib : Number.NaN,
  };
}
