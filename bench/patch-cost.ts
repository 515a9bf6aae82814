/**
 * What one admin write costs as the snapshot grows (issue #16): a real daemon on a generated
 * config of `--clusters` static clusters × `--backends` backends each (no health checks, so
 * start-up probes nothing), then `--requests` PATCH /backends/:id {weight} one at a time,
 * `--gap` ms apart (so each publish's take-in by the data-plane workers is over before the
 * next write), alternating the weight so every PATCH publishes exactly once. Reports PATCH
 * p50/p99, publishes, CPU seconds of the whole process over the window, and RSS.
 *
 *   node bench/patch-cost.ts [--clusters 100] [--backends 1000] [--requests 100] [--gap 300]
 *        [--workers 1] [--cpu-prof DIR] [--keep]
 *
 * `capacity.backends` is set to the backends listed (rounded up), so 100 × 1,000 starts.
 * `--cpu-prof DIR` runs the daemon under `--cpu-prof` (one .cpuprofile per thread in DIR).
 * Loopback only; the daemon is started by this script and stopped by its pid.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { cpuSeconds, rssKiB } from './lib/proc-stats.ts';
import { delay, freePorts, ProcessGroup } from './lib/procs.ts';
import { sumSamples } from './lib/prom-text.ts';
import { median, percentile } from './lib/stats.ts';
import { SLUICE_CLI, sluiceConfig } from './peers/sluice.ts';
import { MIN_BACKEND_SLOTS } from '../src/shared/counters.ts';

const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '100' },
    backends: { type: 'string', default: '1000' },
    requests: { type: 'string', default: '100' },
    gap: { type: 'string', default: '300' },
    workers: { type: 'string', default: '1' },
    'cpu-prof': { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${text}"`);
  return n;
}

const CLUSTERS = positive('clusters', values.clusters);
const BACKENDS = positive('backends', values.backends);
const REQUESTS = positive('requests', values.requests);
const GAP_MS = positive('gap', values.gap);
const WORKERS = positive('workers', values.workers);
const CPU_PROF = values['cpu-prof'] === undefined ? undefined : path.resolve(values['cpu-prof']);
const READY_DEADLINE_MS = 300_000;

/** A config of CLUSTERS × BACKENDS static backends, plus the capacity they need. */
function config(adminPort: number, listenPort: number): string {
  const clusters = Array.from({ length: CLUSTERS }, (_, c) => ({
    name: `c${String(c).padStart(3, '0')}`,
    backends: Array.from({ length: BACKENDS }, (_, b) => `127.0.${1 + Math.floor(b / 250)}.${1 + (b % 250)}:9`),
  }));
  const text = sluiceConfig({ workers: WORKERS, adminPort, listeners: [{ name: 'l', port: listenPort, cluster: 'c000' }], clusters });
  const capacity = Math.max(MIN_BACKEND_SLOTS, Math.ceil((CLUSTERS * BACKENDS + 16) / 1024) * 1024);
  return `capacity: {backends: ${capacity}}\n${text}`;
}

async function publishes(admin: string): Promise<number> {
  return sumSamples(await (await fetch(`${admin}/metrics`)).text(), 'sluice_snapshot_publishes_total');
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-patch-cost-'));
  const group = new ProcessGroup(dir);
  try {
    const [adminPort = 0, listenPort = 0] = await freePorts(2);
    const file = path.join(dir, 'config.yaml');
    writeFileSync(file, config(adminPort, listenPort));
    const flags = CPU_PROF === undefined ? [] : (mkdirSync(CPU_PROF, { recursive: true }), ['--cpu-prof', '--cpu-prof-dir', CPU_PROF]);
    const startedAt = performance.now();
    const daemon = group.start('sluice', process.execPath, [...flags, SLUICE_CLI, 'run', '--config', file, '--log-level', 'warn']);
    const admin = `http://127.0.0.1:${adminPort}`;
    for (;;) {
      const ready = await fetch(`${admin}/readyz`).then((r) => r.status === 200, () => false);
      if (ready) break;
      if (daemon.child.exitCode !== null) throw new Error(`the daemon exited at start-up (see ${daemon.logFile})`);
      if (performance.now() - startedAt > READY_DEADLINE_MS) throw new Error('the daemon was not ready in time');
      await delay(200);
    }
    const startSeconds = (performance.now() - startedAt) / 1000;
    const id = encodeURIComponent(`c${String(CLUSTERS - 1).padStart(3, '0')}:127.0.1.1:9`);
    const times: number[] = [];
    const before = await publishes(admin);
    const cpuBefore = cpuSeconds(daemon.pid);
    for (let i = 0; i < REQUESTS; i++) {
      await delay(GAP_MS);
      const body = JSON.stringify({ weight: 2 + (i % 2) });
      const t0 = performance.now();
      const response = await fetch(`${admin}/backends/${id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body });
      const text = await response.text();
      times.push(performance.now() - t0);
      if (response.status !== 200) throw new Error(`PATCH: ${response.status} ${text.slice(0, 200)}`);
    }
    const cpuAfter = cpuSeconds(daemon.pid);
    const published = (await publishes(admin)) - before;
    const cpu = cpuAfter - cpuBefore;
    const row = {
      backends: CLUSTERS * BACKENDS,
      workers: WORKERS,
      startSeconds: +startSeconds.toFixed(1),
      patchP50Ms: +median(times).toFixed(2),
      patchP99Ms: +percentile(times, 99).toFixed(2),
      publishes: published,
      cpuMsPerPatch: +((cpu * 1000) / REQUESTS).toFixed(1),
      rssMiB: +(rssKiB(daemon.pid) / 1024).toFixed(0),
    };
    console.log(JSON.stringify(row));
  } finally {
    await group.stopAll();
    if (values.keep) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

await main();
