/**
 * Keeps `npm run bench` from rotting: one tiny run of the real harness against every kind
 * of peer (HAProxy, nginx, Sluice), checking that each workload produced numbers, the
 * report was written, and every process the run started is gone. Not a performance test:
 * no number is compared with anything.
 *
 * The peers come from Debian packages. Without them the test is skipped with the reason,
 * except where SLUICE_REQUIRE_BENCH_PEERS=1 (.ci/run sets it after installing them), so
 * CI can never skip it silently.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { missingPackages } from '../../bench/lib/install.ts';
import type { RunRecord } from '../../bench/lib/record.ts';

const RUN = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
const missing = missingPackages();
const required = process.env['SLUICE_REQUIRE_BENCH_PEERS'] === '1';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(missing.length > 0 && !required)(`bench harness smoke run${missing.length > 0 ? ` (skipped: apt-get install ${missing.join(' ')})` : ''}`, () => {
  it('measures every workload against HAProxy, nginx and Sluice and leaves no process behind', async () => {
    expect(missing, 'the bench peers must be installed (npm run bench -- --install-only)').toEqual([]);
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-bench-smoke-'));
    const json = path.join(dir, 'run.json');
    const out = path.join(dir, 'report.md');
    const args = [
      RUN,
      '--quick',
      '--no-install',
      '--workers', '1',
      // pick_cost runs the new-connections (Connection: close) load, so close is covered;
      // udp_one covers udp_long's code (bench/udp.ts's load and configs) but its scenario.
      '--workloads', 'keepalive,bulk_up,udp_one,idle_memory,idle_rss,propagation,pick_cost,admin_change',
      '--idle-connections', '50',
      '--pick-backends', '20',
      '--admin-changes', '3',
      '--json', json,
      '--out', out,
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, stderr).toBe(0);

    const record = JSON.parse(readFileSync(json, 'utf8')) as RunRecord;
    expect(record.failures).toEqual([]);
    const seen = (workload: string): string[] => record.samples.filter((s) => s.workload === workload).map((s) => s.target);
    expect(seen('keepalive')).toEqual(expect.arrayContaining(['direct', 'haproxy 1t', 'nginx 1w', 'sluice 1w']));
    expect(seen('bulk_up')).toHaveLength(4);
    expect(seen('idle_memory')).toEqual(expect.arrayContaining(['haproxy 1t', 'nginx 1w', 'sluice 1w']));
    expect(seen('pick_cost')).toEqual(['sluice 1w', 'sluice 1w 20 backends']);
    expect(seen('admin_change')).toEqual(['sluice 1w']);
    expect(seen('udp_one')).toEqual(expect.arrayContaining(['direct', 'nginx 1w', 'sluice 1w']));
    expect(seen('propagation')).toEqual(['sluice 1w']);
    // The shipped config's 2 workers whatever --workers says, and HAProxy with as many threads.
    expect(seen('idle_rss')).toEqual(['sluice 2w', 'haproxy 2t']);
    for (const s of record.samples.filter((x) => x.workload === 'udp_one')) {
      expect(s.metrics['dgram_s'], s.target).toBeGreaterThan(0);
    }
    expect(record.samples.find((s) => s.workload === 'idle_rss' && s.kind === 'sluice')?.metrics['rss_idle_mib']).toBeGreaterThan(0);
    for (const s of record.samples.filter((x) => x.workload === 'keepalive' || x.workload === 'pick_cost')) {
      expect(s.metrics['rps'], `${s.workload} ${s.target}`).toBeGreaterThan(0);
    }

    const report = readFileSync(out, 'utf8');
    expect(report).toContain('## Against the targets');
    expect(report).toMatch(/\| Process RSS at idle, 2 workers \(demo config\) ≤ 120 MB \| [\d.,]+ MB RSS/);
    expect(report).toContain('| UDP long sessions ≥ 1.0× better nginx stream | not run | – | not run |');
    expect(record.processes.length).toBeGreaterThanOrEqual(7);
    expect(record.processes.filter((p) => alive(p.pid))).toEqual([]);
  }, 180_000); // starts HAProxy, nginx and several Sluice daemons in turn and runs every workload once
});
