import { describe, expect, it } from 'vitest';
import type { RunRecord, Sample } from '../../../bench/lib/record.ts';
import { renderReport } from '../../../bench/report.ts';

function sample(workload: Sample['workload'], target: string, round: number, metrics: Record<string, number>): Sample {
  const kind = target === 'direct' ? 'direct' : (target.split(' ')[0] as Sample['kind']);
  return { workload, target, kind, workers: 1, round, metrics };
}

function record(samples: Sample[]): RunRecord {
  return {
    date: '2026-01-01T00:00:00.000Z',
    command: 'npm run bench',
    machine: { cores: 2, cpuModel: 'test cpu', memoryGiB: 4, kernel: '6.1', fdLimit: 20_000 },
    versions: { node: 'v24.0.0', haproxy: '2.6', nginx: '1.22', wrk: '4.1', iperf3: '3.12' },
    settings: {
      rounds: 2,
      durationS: 5,
      wrkThreads: 1,
      wrkConnections: 64,
      idleConnections: 1000,
      pickBackends: 10_000,
      adminChanges: 100,
      sluiceWorkers: 2,
    },
    rounds: [{ round: 1, seconds: 60, load1Before: 1, load1After: 2, machineBusy: 0.5 }],
    samples,
    failures: [{ workload: 'bulk_up', target: 'nginx 1w', round: 2, error: 'iperf3 against nginx 1w: boom' }],
    notes: [{ workload: 'admin_change', note: 'changes made with POST /config/reload' }],
    processes: [],
    note: 'the machine was busy',
  };
}

describe('renderReport', () => {
  const samples = [
    sample('close', 'direct', 1, { rps: 20_000 }),
    sample('close', 'haproxy 1t', 1, { rps: 10_000, cpu_us_per_req: 70 }),
    sample('close', 'haproxy 1t', 2, { rps: 12_000, cpu_us_per_req: 70 }),
    sample('close', 'haproxy 2t', 1, { rps: 7_000 }),
    sample('close', 'sluice 2w', 1, { rps: 8_000, cpu_us_per_req: 100 }),
    sample('close', 'sluice 2w', 2, { rps: 10_000, cpu_us_per_req: 110 }),
    sample('idle_memory', 'haproxy 1t', 1, { kib_per_conn: 3 }),
    sample('idle_memory', 'sluice 2w', 1, { kib_per_conn: 4.5 }),
    sample('admin_change', 'sluice 2w', 1, { all_p99_ms: 4 }),
  ];
  const text = renderReport(record(samples));

  it('states date, machine, versions, command and the operator note', () => {
    expect(text).toContain('2026-01-01T00:00:00.000Z');
    expect(text).toContain('2 cores (test cpu)');
    expect(text).toContain('HAProxy 2.6, nginx 1.22');
    expect(text).toContain('`npm run bench`');
    expect(text).toContain('the machine was busy');
  });

  it('gives medians with the spread and ratios to the better HAProxy and to direct', () => {
    // sluice: median 9,000 over 8,000–10,000; better HAProxy is 1t with median 11,000.
    expect(text).toMatch(/\| sluice 2w \| 9,000 \| 8,000–10,000 \(±11%\) \| 0\.82× \| 0\.45× \|/);
    expect(text).toContain('× haproxy 1t');
  });

  it('checks the targets against the better HAProxy', () => {
    expect(text).toMatch(/New connections\/s ≥ 0\.8× better HAProxy \| 9,000\.00 vs 11,000\.00 \(haproxy 1t\) \| 0\.82× \| met/);
    expect(text).toMatch(/Memory per idle connection ≤ 2× HAProxy \| 4\.50 vs 3\.00 \(haproxy 1t\) KiB \| 1\.50× \| met/);
    expect(text).toMatch(/Admin change visible to all workers: p99 < 5 ms \| 4\.00 ms from sending the change; .*\(via POST \/config\/reload; POST \/backends pending\) \| 0\.80× \| met/);
    // No bulk samples: the check is shown, not judged.
    expect(text).toMatch(/Bulk throughput client → backend ≥ 0\.9× HAProxy \| – Gbit\/s \| – \| n\/a/);
  });

  it('lists failed measurements and workload notes', () => {
    expect(text).toContain('| bulk_up | nginx 1w | 2 | iperf3 against nginx 1w: boom |');
    expect(text).toContain('> changes made with POST /config/reload');
  });

  it.each([
    ['judges the added p99 when the backend itself answers fast', 0.05, /\| \+0\.070 ms vs \+0\.050 ms \| 1\.40× \| met \|/],
    ['does not judge it when the backend’s own p99 shows scheduling noise', 5, /not judged: direct’s own p99 is 5\.000 ms/],
  ])('%s', (_name, directP99, expected) => {
    const latency = [
      sample('latency', 'direct', 1, { p50_ms: 0.01, p99_ms: directP99 }),
      sample('latency', 'haproxy 1t', 1, { p50_ms: 0.03, p99_ms: directP99 + 0.05 }),
      sample('latency', 'sluice 2w', 1, { p50_ms: 0.03, p99_ms: directP99 + 0.07 }),
    ];
    const line = renderReport(record(latency))
      .split('\n')
      .find((l) => l.startsWith('| p99 added latency'));
    expect(line).toMatch(expected);
  });
});
