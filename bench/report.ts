/**
 * Render a bench run as markdown (pure: a RunRecord in, text out): the targets first, then
 * one table per workload with medians over the rounds, the spread, and ratios to the
 * better HAProxy configuration and to the backend reached directly.
 */
import type { RunRecord, Sample, WorkloadId } from './lib/record.ts';
import { spread, type Spread } from './lib/stats.ts';

interface Column {
  readonly key: string;
  readonly label: string;
  readonly digits: number;
}

interface WorkloadView {
  readonly id: WorkloadId;
  readonly title: string;
  readonly about: string;
  readonly primary: Column & { readonly higherIsBetter: boolean };
  readonly extra: readonly Column[];
}

const VIEWS: readonly WorkloadView[] = [
  {
    id: 'keepalive',
    title: 'Keep-alive requests/s',
    about: 'wrk, HTTP/1.1 keep-alive: every connection carries many requests.',
    primary: { key: 'rps', label: 'req/s', digits: 0, higherIsBetter: true },
    extra: [
      { key: 'p50_ms', label: 'p50 ms', digits: 2 },
      { key: 'p99_ms', label: 'p99 ms', digits: 2 },
      { key: 'cpu_us_per_req', label: 'proxy CPU µs/req', digits: 1 },
      { key: 'sys_us_per_req', label: 'of which kernel', digits: 1 },
      { key: 'errors', label: 'errors', digits: 0 },
    ],
  },
  {
    id: 'latency',
    title: 'Unloaded latency',
    about: 'wrk with one connection, one request at a time: the delay a proxy adds without queueing.',
    primary: { key: 'p99_ms', label: 'p99 ms', digits: 3, higherIsBetter: false },
    extra: [
      { key: 'p50_ms', label: 'p50 ms', digits: 3 },
      { key: 'rps', label: 'req/s', digits: 0 },
      { key: 'cpu_us_per_req', label: 'proxy CPU µs/req', digits: 1 },
    ],
  },
  {
    id: 'close',
    title: 'New connections/s',
    about: 'wrk with `Connection: close`: every request is a new client connection and a new backend connection.',
    primary: { key: 'rps', label: 'conn/s', digits: 0, higherIsBetter: true },
    extra: [
      { key: 'p99_ms', label: 'p99 ms', digits: 2 },
      { key: 'cpu_us_per_req', label: 'proxy CPU µs/conn', digits: 1 },
      { key: 'sys_us_per_req', label: 'of which kernel', digits: 1 },
      { key: 'errors', label: 'errors', digits: 0 },
    ],
  },
  {
    id: 'bulk_up',
    title: 'Bulk throughput, client → backend',
    about: 'iperf3, one TCP stream through the proxy.',
    primary: { key: 'gbit_s', label: 'Gbit/s', digits: 2, higherIsBetter: true },
    extra: [{ key: 'cpu_s_per_gib', label: 'proxy CPU s/GiB', digits: 3 }],
  },
  {
    id: 'bulk_down',
    title: 'Bulk throughput, backend → client',
    about: 'iperf3 --reverse, one TCP stream through the proxy.',
    primary: { key: 'gbit_s', label: 'Gbit/s', digits: 2, higherIsBetter: true },
    extra: [{ key: 'cpu_s_per_gib', label: 'proxy CPU s/GiB', digits: 3 }],
  },
  {
    id: 'idle_memory',
    title: 'Memory per idle proxied connection',
    about:
      'A fresh proxy process; N connections each carry one request and answer, then stay open and idle. (RSS after − RSS before) / N, RSS summed over the proxy\'s processes.',
    primary: { key: 'kib_per_conn', label: 'KiB/conn', digits: 2, higherIsBetter: false },
    extra: [
      { key: 'connections', label: 'N', digits: 0 },
      { key: 'rss_before_mib', label: 'RSS before MiB', digits: 1 },
      { key: 'rss_after_mib', label: 'RSS after MiB', digits: 1 },
    ],
  },
  {
    id: 'pick_cost',
    title: 'Pick cost: 1 backend vs a large cluster',
    about: 'New connections/s (as above) through the same Sluice configuration with a one-backend cluster and with a large one.',
    primary: { key: 'rps', label: 'conn/s', digits: 0, higherIsBetter: true },
    extra: [
      { key: 'cpu_us_per_req', label: 'proxy CPU µs/conn', digits: 1 },
      { key: 'sys_us_per_req', label: 'of which kernel', digits: 1 },
      { key: 'errors', label: 'errors', digits: 0 },
    ],
  },
  {
    id: 'admin_change',
    title: 'Admin change → first routed connection',
    about:
      'An admin change adds a backend to an empty cluster. "all workers": from sending the change until a batch of parallel probes (spread over the workers) is answered in full; "answer": until the admin API answered, which it does once the new snapshot is published; "first batch routed": the share of changes whose first probe batch after the answer was routed in full, i.e. seen by every worker at its next accept. One probe batch\'s own duration is the resolution of the "all workers" time; a no-op admin request (GET /healthz, timed before each change) is the HTTP round trip\'s own time, the floor under "answer".',
    primary: { key: 'all_p99_ms', label: 'all workers p99 ms', digits: 2, higherIsBetter: false },
    extra: [
      { key: 'all_p50_ms', label: 'all workers p50 ms', digits: 2 },
      { key: 'answer_p50_ms', label: 'answer p50 ms', digits: 2 },
      { key: 'answer_p99_ms', label: 'answer p99 ms', digits: 2 },
      { key: 'noop_p50_ms', label: 'no-op request p50 ms', digits: 2 },
      { key: 'noop_p99_ms', label: 'no-op request p99 ms', digits: 2 },
      { key: 'first_batch_routed_pct', label: 'first batch routed %', digits: 0 },
      { key: 'probe_batch_p50_ms', label: 'one probe batch p50 ms', digits: 2 },
      { key: 'changes', label: 'changes', digits: 0 },
    ],
  },
];

export function formatNumber(value: number, digits: number): string {
  if (!Number.isFinite(value)) return '–';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function formatSigned(value: number, digits: number): string {
  if (!Number.isFinite(value)) return '–';
  return `${value >= 0 ? '+' : '−'}${formatNumber(Math.abs(value), digits)}`;
}

function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : '–';
}

function formatSpread(s: Spread, digits: number): string {
  if (s.count < 2) return '–';
  const half = s.median === 0 ? Number.NaN : ((s.max - s.min) / 2 / Math.abs(s.median)) * 100;
  return `${formatNumber(s.min, digits)}–${formatNumber(s.max, digits)} (±${Number.isFinite(half) ? half.toFixed(0) : '?'}%)`;
}

/** Medians (with spread) of one metric per target, in the order targets first appear. */
class Results {
  private readonly samples: readonly Sample[];

  constructor(samples: readonly Sample[]) {
    this.samples = samples;
  }

  targets(workload: WorkloadId): Sample[] {
    const seen = new Map<string, Sample>();
    for (const s of this.samples) if (s.workload === workload && !seen.has(s.target)) seen.set(s.target, s);
    return [...seen.values()];
  }

  spread(workload: WorkloadId, target: string, key: string): Spread {
    return spread(
      this.samples.filter((s) => s.workload === workload && s.target === target).map((s) => s.metrics[key] ?? Number.NaN),
    );
  }

  median(workload: WorkloadId, target: string, key: string): number {
    return this.spread(workload, target, key).median;
  }

  /** The better HAProxy configuration's median for this metric. */
  bestHaproxy(workload: WorkloadId, key: string, higherIsBetter: boolean): { target: string; value: number } | undefined {
    let best: { target: string; value: number } | undefined;
    for (const t of this.targets(workload)) {
      if (t.kind !== 'haproxy') continue;
      const value = this.median(workload, t.target, key);
      if (!Number.isFinite(value)) continue;
      if (best === undefined || (higherIsBetter ? value > best.value : value < best.value)) best = { target: t.target, value };
    }
    return best;
  }
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function workloadSection(view: WorkloadView, results: Results): string | undefined {
  const targets = results.targets(view.id);
  if (targets.length === 0) return undefined;
  const { primary } = view;
  // A column no target has a number for (a metric this run did not record) is left out.
  const extra = view.extra.filter((c) => targets.some((t) => Number.isFinite(results.median(view.id, t.target, c.key))));
  const best = results.bestHaproxy(view.id, primary.key, primary.higherIsBetter);
  const direct = targets.some((t) => t.kind === 'direct') ? results.median(view.id, 'direct', primary.key) : Number.NaN;
  // Ratio columns only where there is something to compare with.
  const withBest = best !== undefined;
  const withDirect = Number.isFinite(direct);
  const rows = targets.map((t) => {
    const s = results.spread(view.id, t.target, primary.key);
    return [
      t.target,
      formatNumber(s.median, primary.digits),
      formatSpread(s, primary.digits),
      ...(withBest ? [formatRatio(s.median / best.value)] : []),
      ...(withDirect ? [formatRatio(s.median / direct)] : []),
      ...extra.map((c) => formatNumber(results.median(view.id, t.target, c.key), c.digits)),
    ];
  });
  const header = [
    'target',
    `${primary.label} (median)`,
    'spread (min–max)',
    ...(withBest ? [`× ${best.target}`] : []),
    ...(withDirect ? ['× direct'] : []),
    ...extra.map((c) => c.label),
  ];
  return `### ${view.title}\n\n${view.about}\n\n${table(header, rows)}\n`;
}

/** A direct p99 above this (unloaded, loopback) means the tail measures the machine, not proxies. */
const NOISY_DIRECT_P99_MS = 1;

interface TargetCheck {
  readonly goal: string;
  readonly measured: string;
  readonly ratio: number;
  readonly pass: boolean | undefined;
}

function check(goal: string, measured: string, ratio: number, pass: (r: number) => boolean): TargetCheck {
  return { goal, measured, ratio, pass: Number.isFinite(ratio) ? pass(ratio) : undefined };
}

function targetChecks(record: RunRecord, results: Results): TargetCheck[] {
  const sluice = `sluice ${record.settings.sluiceWorkers}w`;
  const many = `sluice ${record.settings.sluiceWorkers}w ${record.settings.pickBackends} backends`;
  const checks: TargetCheck[] = [];
  const vsHaproxy = (workload: WorkloadId, key: string, higher: boolean): { ratio: number; text: string } => {
    const best = results.bestHaproxy(workload, key, higher);
    const own = results.median(workload, sluice, key);
    const ratio = best === undefined ? Number.NaN : own / best.value;
    return { ratio, text: best === undefined ? '–' : `${formatNumber(own, 2)} vs ${formatNumber(best.value, 2)} (${best.target})` };
  };

  const close = vsHaproxy('close', 'rps', true);
  checks.push(check('New connections/s ≥ 0.8× better HAProxy', close.text, close.ratio, (r) => r >= 0.8));
  const keep = vsHaproxy('keepalive', 'rps', true);
  checks.push(check('Keep-alive req/s ≥ 0.8× better HAProxy', keep.text, keep.ratio, (r) => r >= 0.8));

  const directP99 = results.median('latency', 'direct', 'p99_ms');
  const haproxyAdded = results.bestHaproxy('latency', 'p99_ms', false);
  const sluiceAdded = results.median('latency', sluice, 'p99_ms') - directP99;
  const bestAdded = haproxyAdded === undefined ? Number.NaN : haproxyAdded.value - directP99;
  // Over loopback the backend's own p99 is tens of microseconds; when it is milliseconds,
  // the tail is the scheduler's (other tenants), and no proxy's added p99 means anything.
  const noisy = !(directP99 <= NOISY_DIRECT_P99_MS) || !(bestAdded > 0);
  checks.push(
    check(
      'p99 added latency ≤ 1.5× HAProxy’s (unloaded)',
      `${formatSigned(sluiceAdded, 3)} ms vs ${formatSigned(bestAdded, 3)} ms${noisy ? ` (not judged: direct’s own p99 is ${formatNumber(directP99, 3)} ms, the machine’s scheduling noise)` : ''}`,
      noisy ? Number.NaN : sluiceAdded / bestAdded,
      (r) => r <= 1.5,
    ),
  );
  const directP50 = results.median('latency', 'direct', 'p50_ms');
  const haproxyP50 = results.bestHaproxy('latency', 'p50_ms', false);
  const sluiceAddedP50 = results.median('latency', sluice, 'p50_ms') - directP50;
  const bestAddedP50 = haproxyP50 === undefined ? Number.NaN : haproxyP50.value - directP50;
  checks.push(
    check(
      '(info) p50 added latency vs HAProxy’s (unloaded)',
      `${formatSigned(sluiceAddedP50, 3)} ms vs ${formatSigned(bestAddedP50, 3)} ms`,
      bestAddedP50 > 0 ? sluiceAddedP50 / bestAddedP50 : Number.NaN,
      (r) => r <= 1.5,
    ),
  );
  const keepP99 = vsHaproxy('keepalive', 'p99_ms', false);
  checks.push(check('(info) p99 under keep-alive load vs better HAProxy', keepP99.text, keepP99.ratio, (r) => r <= 1.5));

  for (const [id, label] of [
    ['bulk_up', 'client → backend'],
    ['bulk_down', 'backend → client'],
  ] as const) {
    const bulk = vsHaproxy(id, 'gbit_s', true);
    checks.push(check(`Bulk throughput ${label} ≥ 0.9× HAProxy`, `${bulk.text} Gbit/s`, bulk.ratio, (r) => r >= 0.9));
  }
  for (const [id, key, label, unit] of [
    ['close', 'cpu_us_per_req', 'per new connection', 'µs'],
    ['keepalive', 'cpu_us_per_req', 'per keep-alive request', 'µs'],
    ['bulk_up', 'cpu_s_per_gib', 'per GiB client → backend', 's'],
    ['bulk_down', 'cpu_s_per_gib', 'per GiB backend → client', 's'],
  ] as const) {
    const cpu = vsHaproxy(id, key, false);
    checks.push(check(`(info) proxy CPU ${label} vs HAProxy’s`, `${cpu.text} ${unit}`, cpu.ratio, (r) => r <= 1.25));
  }
  const memory = vsHaproxy('idle_memory', 'kib_per_conn', false);
  checks.push(check('Memory per idle connection ≤ 2× HAProxy', `${memory.text} KiB`, memory.ratio, (r) => r <= 2));

  const cpuOne = results.median('pick_cost', sluice, 'cpu_us_per_req');
  const cpuMany = results.median('pick_cost', many, 'cpu_us_per_req');
  checks.push(
    check(
      `Per-accept CPU with ${record.settings.pickBackends} backends within 5% of 1`,
      `${formatNumber(cpuMany, 1)} vs ${formatNumber(cpuOne, 1)} µs/conn`,
      cpuMany / cpuOne,
      (r) => r <= 1.05,
    ),
  );
  const rateOne = results.median('pick_cost', sluice, 'rps');
  const rateMany = results.median('pick_cost', many, 'rps');
  checks.push(
    check(
      `(info) New connections/s with ${record.settings.pickBackends} backends vs 1`,
      `${formatNumber(rateMany, 0)} vs ${formatNumber(rateOne, 0)}`,
      rateMany / rateOne,
      (r) => r >= 0.95,
    ),
  );
  const admin = results.median('admin_change', sluice, 'all_p99_ms');
  const viaReload = record.notes.some((n) => n.workload === 'admin_change' && n.note.includes('/config/reload'));
  const routedFirst = results.median('admin_change', sluice, 'first_batch_routed_pct');
  const batchMs = results.median('admin_change', sluice, 'probe_batch_p50_ms');
  checks.push({
    goal: 'Admin change visible to all workers: p99 < 5 ms',
    measured: `${formatNumber(admin, 2)} ms from sending the change; first probe batch after the answer routed by every worker in ${formatNumber(routedFirst, 0)}% of changes (one batch takes ${formatNumber(batchMs, 2)} ms)${viaReload ? ' (via POST /config/reload; POST /backends pending)' : ''}`,
    ratio: admin / 5,
    pass: Number.isFinite(admin) ? admin < 5 : undefined,
  });
  const answerP99 = results.median('admin_change', sluice, 'answer_p99_ms');
  const noopP99 = results.median('admin_change', sluice, 'noop_p99_ms');
  if (Number.isFinite(noopP99)) {
    checks.push({
      goal: '(info) admin answer p99 vs a no-op admin request’s p99 (the HTTP round trip alone)',
      measured: `${formatNumber(answerP99, 2)} vs ${formatNumber(noopP99, 2)} ms`,
      ratio: answerP99 / noopP99,
      pass: undefined,
    });
  }
  return checks;
}

function scalingSection(record: RunRecord, results: Results): string | undefined {
  const n = record.settings.sluiceWorkers;
  if (n === 1) return undefined;
  const rows: string[][] = [];
  for (const [kind, unit] of [
    ['haproxy', 't'],
    ['nginx', 'w'],
    ['sluice', 'w'],
  ] as const) {
    const ratio = (workload: WorkloadId): string =>
      formatRatio(results.median(workload, `${kind} ${n}${unit}`, 'rps') / results.median(workload, `${kind} 1${unit}`, 'rps'));
    rows.push([kind, ratio('keepalive'), ratio('close')]);
  }
  return `### Scaling from 1 to ${n} workers\n\nMedian requests/s at ${n} workers (threads for HAProxy) divided by the same at 1. The load generator and the backend share the same ${record.machine.cores} cores, so more proxy workers also means more competition for them.\n\n${table(['proxy', 'keep-alive', 'new connections'], rows)}\n`;
}

export function renderReport(record: RunRecord): string {
  const results = new Results(record.samples);
  const s = record.settings;
  const v = record.versions;
  const parts: string[] = [];
  parts.push(`# Benchmarks

Sluice side by side with HAProxy (\`mode tcp\`) and nginx (\`stream\`), all on 127.0.0.1 in one
run, generated by \`npm run bench\` (bench/run.ts). Numbers are medians over ${s.rounds} round(s);
the spread column shows the lowest and highest round. These are benchmarks, not tests.

- **Date**: ${record.date}
- **Machine**: ${record.machine.cores} cores (${record.machine.cpuModel}), ${record.machine.memoryGiB} GiB, Linux ${record.machine.kernel}, ${record.machine.fdLimit} file descriptors per process
- **Versions**: Node ${v['node'] ?? '?'}, HAProxy ${v['haproxy'] ?? '?'}, nginx ${v['nginx'] ?? '?'}, wrk ${v['wrk'] ?? '?'}, iperf3 ${v['iperf3'] ?? '?'}
- **Command**: \`${record.command}\`
- **Settings**: ${s.durationS}s per load run; wrk ${s.wrkThreads} thread(s), ${s.wrkConnections} connections; ${s.idleConnections} idle connections; ${s.pickBackends} backends for the pick cost; ${s.adminChanges} admin changes; Sluice at ${s.sluiceWorkers} worker(s)
- **Load generator, backends and proxies share the same cores**: wrk/iperf3, the backend nginx/iperf3 server and the proxy under test all compete for ${record.machine.cores} cores. "proxy CPU" columns are CPU time of the proxy's own processes divided by the work done, the least noise-sensitive numbers here.
`);
  if (record.note !== '') parts.push(`> **Note**: ${record.note}\n`);
  const busy = record.rounds.map((r) => `round ${r.round}: ${(r.machineBusy * 100).toFixed(0)}% busy, load ${r.load1Before.toFixed(1)}→${r.load1After.toFixed(1)}, ${r.seconds.toFixed(0)} s`);
  if (busy.length > 0) parts.push(`Machine during the rounds (all tenants): ${busy.join('; ')}.\n`);

  const checks = targetChecks(record, results);
  parts.push(
    `## Against the targets\n\nSluice = \`sluice ${s.sluiceWorkers}w\`; "better HAProxy" = the better of its configurations for that metric.\n\n${table(
      ['target', 'measured (Sluice vs reference)', 'ratio', 'status'],
      checks.map((c) => [
        c.goal,
        c.measured,
        formatRatio(c.ratio),
        c.pass === undefined ? 'n/a' : c.goal.startsWith('(info)') ? '' : c.pass ? 'met' : '**not met**',
      ]),
    )}\n`,
  );

  parts.push(
    'How the data path got here (each choice measured against its alternative): [data-plane-decisions.md](data-plane-decisions.md).\n',
  );
  parts.push('## Results\n');
  for (const view of VIEWS) {
    const section = workloadSection(view, results);
    if (section !== undefined) parts.push(section);
    for (const n of record.notes) if (n.workload === view.id) parts.push(`> ${n.note}\n`);
  }
  const scaling = scalingSection(record, results);
  if (scaling !== undefined) parts.push(scaling);
  if (record.failures.length > 0) {
    parts.push(
      `## Failed measurements\n\n${table(
        ['workload', 'target', 'round', 'error'],
        record.failures.map((f) => [f.workload, f.target, String(f.round), f.error.replace(/\s+/g, ' ').slice(0, 200)]),
      )}\n`,
    );
  }
  return parts.join('\n');
}
