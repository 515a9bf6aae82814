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
import { SLUICE_CLI } from './peers/sluice.ts';

const FAMILY = 'sluice_snapshot_propagation_seconds';

const { values } = parseArgs({ options: { changes: { type: 'string', default: '100' }, workers: { type: 'string', default: '2' } } });
const CHANGES = Number(values.changes);
const WORKERS = Number(values.workers);

interface Bucket {
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

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(tmpdir(), 'sluice-bench-propagation-'));
  const group = new ProcessGroup(work);
  try {
    const [listenPort, adminPort, backendPort] = await freePorts(3);
    const config = path.join(work, 'config.yaml');
    writeFileSync(
      config,
      `workers: ${WORKERS}
admin: {listen: 127.0.0.1:${adminPort}}
listeners:
  - {name: web, listen: 127.0.0.1:${listenPort}, cluster: web}
clusters:
  - name: web
    health_check: {type: none}
    backends: [{address: 127.0.0.1:${backendPort}}]
`,
    );
    const daemon = group.start('sluice', process.execPath, [SLUICE_CLI, 'run', '--config', config]);
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
    const before = readBuckets(await (await fetch(`${admin}/metrics`)).text());
    for (let i = 0; i < CHANGES; i++) {
      const res = await fetch(`${admin}/backends/${id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ weight: 2 + (i % 50) }) });
      if (res.status !== 200) throw new Error(`PATCH answered ${res.status}: ${await res.text()}`);
    }
    // Each worker wakes on every publish; wait for the last ones to be recorded.
    let after = readBuckets(await (await fetch(`${admin}/metrics`)).text());
    for (let i = 0; i < 50 && after.count < before.count + CHANGES * WORKERS; i++) {
      await delay(100);
      after = readBuckets(await (await fetch(`${admin}/metrics`)).text());
    }
    const delta = after.buckets.map((b, i) => ({ le: b.le, cumulative: b.cumulative - (before.buckets[i]?.cumulative ?? 0) }));
    const observed = after.count - before.count;
    const ms = (s: number): string => (s * 1000).toFixed(3);
    process.stdout.write(
      `${CHANGES} admin changes, ${WORKERS} workers: ${observed} observations (of ${CHANGES * WORKERS} possible), ` +
        `p50 ${ms(histogramQuantile(0.5, delta))} ms, p99 ${ms(histogramQuantile(0.99, delta))} ms, ` +
        `mean ${ms((after.sum - before.sum) / Math.max(1, observed))} ms\n` +
        `buckets (le s: count): ${delta.map((b) => `${b.le}: ${b.cumulative}`).join(', ')}\n`,
    );
  } finally {
    await group.stopAll();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
