/**
 * A/B comparison of two Sluice data-plane variants (environment switches) under one
 * workload, built for a noisy shared machine: both daemons run at once, and many short
 * runs alternate A, B, B, A, … so that both see the same background load; the result is
 * the median of the per-pair ratios B/A, for throughput and for the daemon's CPU per
 * request, which is what a data-plane change is judged by.
 *
 *   node bench/ab.ts --a SLUICE_BENCH_COPY=pipe --b '' --mode close --pairs 15 --workers 1
 *   node bench/ab.ts --b-backends 10000 --mode close        # pick cost of a large cluster
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/shared/duration.ts';
import { freePorts, ProcessGroup } from './lib/procs.ts';
import { median } from './lib/stats.ts';
import { startHttpBackend, startIperfServer } from './peers/backends.ts';
import { startSluiceTarget } from './peers/sluice.ts';
import type { Target } from './peers/target.ts';
import { runBulk } from './workloads/bulk.ts';
import { runHttpLoad, type Metrics } from './workloads/http-load.ts';
import { loopbackBackends } from './workloads/pick-cost.ts';

function envOf(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of text.split(',').filter((p) => p.includes('='))) env[pair.slice(0, pair.indexOf('='))] = pair.slice(pair.indexOf('=') + 1);
  return env;
}

const { values } = parseArgs({
  options: {
    a: { type: 'string', default: '' },
    b: { type: 'string', default: '' },
    mode: { type: 'string', default: 'close' },
    pairs: { type: 'string', default: '10' },
    duration: { type: 'string', default: '1s' },
    workers: { type: 'string', default: '1' },
    connections: { type: 'string', default: '32' },
    'a-backends': { type: 'string', default: '1' },
    'b-backends': { type: 'string', default: '1' },
  },
});
const durationS = (parseDuration(values.duration) ?? 1000) / 1000;
const workers = Number(values.workers);
const mode = values.mode;

async function measure(target: Target): Promise<Metrics> {
  if (mode === 'up' || mode === 'down') return runBulk(target, mode, durationS);
  const http = mode === 'keepalive' || mode === 'latency' ? mode : 'close';
  return runHttpLoad(target, http, { durationS, threads: 1, connections: Number(values.connections) });
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'sluice-ab-'));
const group = new ProcessGroup(dir);
process.on('exit', () => group.killAllNow());
try {
  const [httpPort = 0, iperfPort = 0, ...ports] = await freePorts(8);
  await startHttpBackend(group, dir, httpPort, 1, 20_000);
  await startIperfServer(group, iperfPort);
  const backendsFor = (count: number): string[] =>
    count === 1 ? [`127.0.0.1:${httpPort}`] : loopbackBackends(count, httpPort);
  const start = async (label: string, env: Record<string, string>, offset: number, backends: string[]): Promise<Target> =>
    startSluiceTarget(group, dir, {
      label,
      workers,
      adminPort: ports[offset] ?? 0,
      httpPort: ports[offset + 1] ?? 0,
      iperfPort: ports[offset + 2] ?? 0,
      httpBackends: backends,
      iperfBackend: `127.0.0.1:${iperfPort}`,
      env,
    });
  const a = await start('a', envOf(values.a), 0, backendsFor(Number(values['a-backends'])));
  const b = await start('b', envOf(values.b), 3, backendsFor(Number(values['b-backends'])));
  const ratios = new Map<string, number[]>();
  for (let pair = 0; pair < Number(values.pairs); pair++) {
    const order = pair % 2 === 0 ? [a, b] : [b, a];
    const results = new Map<Target, Metrics>();
    for (const t of order) results.set(t, await measure(t));
    const ma = results.get(a) ?? {};
    const mb = results.get(b) ?? {};
    for (const key of Object.keys(ma)) {
      const r = (mb[key] ?? Number.NaN) / (ma[key] ?? Number.NaN);
      if (Number.isFinite(r)) ratios.set(key, [...(ratios.get(key) ?? []), r]);
    }
    process.stderr.write(`pair ${pair + 1}: ${JSON.stringify({ a: ma, b: mb })}\n`);
  }
  process.stdout.write(
    `mode ${mode}, ${workers} worker(s), ${values.pairs} pairs of ${durationS}s; A=[${values.a}] ${values['a-backends']} backend(s), B=[${values.b}] ${values['b-backends']} backend(s)\n`,
  );
  for (const [key, list] of ratios) {
    const sorted = [...list].sort((x, y) => x - y);
    process.stdout.write(
      `  B/A ${key}: median ${median(list).toFixed(3)} (quartiles ${sorted[Math.floor(sorted.length / 4)]?.toFixed(3)}–${sorted[Math.floor((3 * sorted.length) / 4)]?.toFixed(3)})\n`,
    );
  }
} finally {
  await group.stopAll();
}
