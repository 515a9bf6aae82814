/**
 * Snapshot propagation measured from inside: N admin changes (PATCH a backend's weight, one
 * publish each) against a real daemon, then p50/p99 of `sluice_snapshot_propagation_seconds`
 * read from /metrics (control plane starting the publish → a data-plane worker taking the
 * version in; one observation per worker per version). Not a test.
 *
 *   node bench/propagation.ts [--changes 100] [--workers 2]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { delay, freePorts, ProcessGroup } from './lib/procs.ts';
import { sluiceCommand } from './peers/sluice.ts';

const FAMILY = 'sluice_snapshot_propagation_seconds';

export interface Bucket {
  readonly le: number;
  readonly cumulative: number;
}

/** Prometheus' histogram_quantile: linear interpolation inside the bucket holding rank q·count. */
function histogramQuantile(q: number, buckets: readonly Bucket[]): number {
  const count = buckets.at(-1)?.cumulative ?? 0;
  if (count === 0) return Number.NaN;
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (const { le, cumulative } of buckets) {
    if (cumulative >= rank) {
      if (le === Infinity) return lower;
      return lower + ((le - lower) * (rank - below)) / Math.max(1, cumulative - below);
    }
    lower = le;
    below = cumulative;
  }
  return lower;
}

function readBuckets(text: string): { buckets: Bucket[]; count: number; sum: number } {
  const buckets: Bucket[] = [];
  let count = 0;
  let sum = 0;
  for (const line of text.split('\n')) {
    const bucket = new RegExp(`^${FAMILY}_bucket\\{le="([^"]+)"\\} (\\S+)$`).exec(line);
    if (bucket !== null) buckets.push({ le: bucket[1] === '+Inf' ? Infinity : Number(bucket[1]), cumulative: Number(bucket[2]) });
    if (line.startsWith(`${FAMILY}_count `)) count = Number(line.split(' ')[1]);
    if (line.startsWith(`${FAMILY}_sum `)) sum = Number(line.split(' ')[1]);
  }
  return { buckets, count, sum };
}

/** A daemon with one listener and one backend whose weight the changes move; stopped with `group`. */
export async function startPropagationDaemon(group: ProcessGroup, work: string, workers: number): Promise<{ admin: string; id: string }> {
  const [listenPort, adminPort, backendPort] = await freePorts(3);
  const config = path.join(work, 'propagation.yaml');
  writeFileSync(
    config,
    `workers: ${workers}
admin: {listen: 127.0.0.1:${adminPort}}
listeners:
  - {name: web, listen: 127.0.0.1:${listenPort}, cluster: web}
clusters:
  - name: web
    health_check: {type: none}
    backends: [{address: 127.0.0.1:${backendPort}}]
`,
  );
  const { command, args } = sluiceCommand();
  const daemon = group.start('sluice-propagation', command, [...args, 'run', '--config', config]);
  const admin = `http://127.0.0.1:${adminPort}`;
  for (let i = 0; ; i++) {
    const ok = await fetch(`${admin}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (i > 600) throw new Error(`sluice not ready: ${group.tail(daemon)}`);
    await delay(100);
  }
  const backends = (await (await fetch(`${admin}/backends`)).json()) as { id: string }[];
  const id = backends[0]?.id;
  if (id === undefined) throw new Error('no backend');
  return { admin, id };
}

export interface Propagation {
  /** Observations recorded (at most changes × workers: a worker that skipped a version records nothing). */
  readonly observed: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  /** Cumulative counts per bucket over these changes only. */
  readonly buckets: readonly Bucket[];
}

/** `changes` PATCHes (one publish each), then the histogram's growth over them. */
export async function measurePropagation(admin: string, id: string, changes: number, workers: number): Promise<Propagation> {
  const before = readBuckets(await (await fetch(`${admin}/metrics`)).text());
  for (let i = 0; i < changes; i++) {
    const res = await fetch(`${admin}/backends/${id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ weight: 2 + (i % 50) }) });
    if (res.status !== 200) throw new Error(`PATCH answered ${res.status}: ${await res.text()}`);
  }
  // Each worker wakes on every publish; wait for the last ones to be recorded.
  let after = readBuckets(await (await fetch(`${admin}/metrics`)).text());
  for (let i = 0; i < 50 && after.count < before.count + changes * workers; i++) {
    await delay(100);
    after = readBuckets(await (await fetch(`${admin}/metrics`)).text());
  }
  const buckets = after.buckets.map((b, i) => ({ le: b.le, cumulative: b.cumulative - (before.buckets[i]?.cumulative ?? 0) }));
  const observed = after.count - before.count;
  return {
    observed,
    p50Ms: histogramQuantile(0.5, buckets) * 1000,
    p99Ms: histogramQuantile(0.99, buckets) * 1000,
    meanMs: ((after.sum - before.sum) / Math.max(1, observed)) * 1000,
    buckets,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { changes: { type: 'string', default: '100' }, workers: { type: 'string', default: '2' } } });
  const changes = Number(values.changes);
  const workers = Number(values.workers);
  const work = mkdtempSync(path.join(tmpdir(), 'sluice-bench-propagation-'));
  const group = new ProcessGroup(work);
  try {
    const { admin, id } = await startPropagationDaemon(group, work, workers);
    const result = await measurePropagation(admin, id, changes, workers);
    const ms = (v: number): string => v.toFixed(3);
    process.stdout.write(
      `${changes} admin changes, ${workers} workers: ${result.observed} observations (of ${changes * workers} possible), ` +
        `p50 ${ms(result.p50Ms)} ms, p99 ${ms(result.p99Ms)} ms, mean ${ms(result.meanMs)} ms\n` +
        `buckets (le s: count): ${result.buckets.map((b) => `${b.le}: ${b.cumulative}`).join(', ')}\n`,
    );
  } finally {
    await group.stopAll();
    rmSync(work, { recursive: true, force: true });
  }
}

// Runnable as a script; `npm run bench` imports the functions above.
if (import.meta.main) await main();
