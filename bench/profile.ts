/**
 * Profile the Sluice data plane under one workload: starts the nginx backend and one
 * Sluice daemon with `--cpu-prof` (every thread writes a .cpuprofile when it exits), runs
 * wrk or iperf3 through it, stops it gracefully, and prints the hottest functions of each
 * data-plane worker's profile by self time.
 *
 *   node bench/profile.ts --mode close --workers 1 --duration 5s [--env K=V]
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/shared/duration.ts';
import { freePorts, ProcessGroup } from './lib/procs.ts';
import { startHttpBackend, startIperfServer } from './peers/backends.ts';
import { startSluiceTarget } from './peers/sluice.ts';
import { runBulk } from './workloads/bulk.ts';
import { runHttpLoad } from './workloads/http-load.ts';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples?: readonly number[];
}

/** Self-time share per function (by sample count), hottest first. */
export function hottest(profile: CpuProfile, top: number): { name: string; share: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const counts = new Map<string, number>();
  let total = 0;
  for (const id of profile.samples ?? []) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const f = node.callFrame;
    const where = f.url === '' ? '' : ` ${f.url.replace(/^.*\/(node:)?/, '')}:${f.lineNumber + 1}`;
    const name = `${f.functionName || '(anonymous)'}${where}`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
    total++;
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, n]) => ({ name, share: n / Math.max(1, total) }));
}

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'close' },
    workers: { type: 'string', default: '1' },
    duration: { type: 'string', default: '5s' },
    env: { type: 'string', multiple: true, default: [] },
    top: { type: 'string', default: '40' },
  },
});
const durationS = (parseDuration(values.duration) ?? 5000) / 1000;
const workers = Number(values.workers);
const env: Record<string, string> = {};
for (const pair of values.env) env[pair.slice(0, pair.indexOf('='))] = pair.slice(pair.indexOf('=') + 1);

const dir = mkdtempSync(path.join(os.tmpdir(), 'sluice-profile-'));
const profileDir = path.join(dir, 'profiles');
const group = new ProcessGroup(dir);
process.on('exit', () => group.killAllNow());
try {
  const [httpPort = 0, iperfPort = 0, adminPort = 0, proxyHttp = 0, proxyIperf = 0] = await freePorts(5);
  await startHttpBackend(group, dir, httpPort, 1, 20_000);
  await startIperfServer(group, iperfPort);
  const target = await startSluiceTarget(group, dir, {
    label: `${workers}w`,
    workers,
    adminPort,
    httpPort: proxyHttp,
    iperfPort: proxyIperf,
    httpBackends: [`127.0.0.1:${httpPort}`],
    iperfBackend: `127.0.0.1:${iperfPort}`,
    env: { ...env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` },
  });
  const mode = values.mode;
  const metrics =
    mode === 'up' || mode === 'down'
      ? await runBulk(target, mode, durationS)
      : await runHttpLoad(target, mode === 'keepalive' || mode === 'latency' ? mode : 'close', {
          durationS,
          threads: 1,
          connections: 64,
        });
  process.stdout.write(`${mode}: ${JSON.stringify(metrics)}\n`);
  const sluice = target.pid === undefined ? undefined : group.find(target.pid);
  if (sluice !== undefined) await group.stop(sluice, 'SIGTERM');
  for (const file of readdirSync(profileDir)) {
    const profile = JSON.parse(readFileSync(path.join(profileDir, file), 'utf8')) as CpuProfile;
    const top = hottest(profile, Number(values.top));
    if (!top.some((t) => t.name.includes('tcp-proxy'))) continue;
    process.stdout.write(`\n${file} (${profile.samples?.length ?? 0} samples)\n`);
    for (const t of top) process.stdout.write(`${(t.share * 100).toFixed(1).padStart(5)}%  ${t.name}\n`);
  }
  process.stdout.write(`\nprofiles in ${profileDir}\n`);
} finally {
  await group.stopAll();
}
