/** Command-line options of `npm run bench` (pure: argv and machine facts in, options out). */
import { parseArgs } from 'node:util';
import { parseDuration } from '../../src/shared/duration.ts';
import type { SluiceVariant } from '../peers/catalog.ts';
import { ALL_WORKLOADS, type WorkloadId } from './record.ts';

export const USAGE = `usage: npm run bench -- [options]
  --rounds N             repeat every measurement N times (default 3)
  --duration D           length of each load run, e.g. 5s (default 5s)
  --quick                smoke run: 1 round of 1s, small counts, no report unless --out
  --workloads a,b        only these: ${ALL_WORKLOADS.join(', ')}
  --targets a,b          only targets whose name contains one of these (direct always runs)
  --workers N            Sluice's worker count, also the peers' second setting (default: cores)
  --variant L:K=V,...    also run Sluice with these env vars, labelled L (repeatable);
                         SLUICE_CLI=PATH runs another checkout's src/cli.ts instead
  --idle-connections N   idle proxied connections for the memory workload
  --rss-connections N    short connections of the idle RSS workload's load run (default 20000)
  --pick-backends N      cluster size for the pick-cost workload (default 10000)
  --admin-changes N      admin changes to time, and snapshot publishes for propagation (default 100)
  --wrk-threads N        wrk threads (default 1)
  --wrk-connections N    wrk connections for the keep-alive and close workloads (default 64)
  --out FILE             markdown report (default docs/benchmarks.md; none for --quick)
  --json FILE            raw results (default bench/results/<time>.json)
  --note TEXT            a line for the report, e.g. how busy the machine was
  --no-install           do not apt-get install missing peers; fail instead
  --install-only         install the missing peers and exit (CI does this before the tests)
  --report-from FILE     measure nothing: render the report of a saved raw results file`;

export interface BenchOptions {
  readonly rounds: number;
  readonly durationS: number;
  readonly quick: boolean;
  readonly workloads: readonly WorkloadId[];
  readonly targetFilter: readonly string[];
  readonly workers: number;
  readonly variants: readonly SluiceVariant[];
  readonly idleConnections: number;
  readonly rssConnections: number;
  readonly pickBackends: number;
  readonly adminChanges: number;
  readonly wrkThreads: number;
  readonly wrkConnections: number;
  readonly out: string | undefined;
  readonly json: string | undefined;
  readonly note: string;
  readonly install: boolean;
  readonly installOnly: boolean;
  readonly reportFrom: string | undefined;
}

export interface MachineFacts {
  readonly cores: number;
  readonly fdLimit: number;
}

/** Most idle connections a proxy can hold: two descriptors each, and some to spare. */
export function maxIdleConnections(fdLimit: number): number {
  return Math.max(100, Math.min(10_000, Math.floor((fdLimit - 500) / 2)));
}

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${text}"`);
  return n;
}

export function parseVariant(text: string): SluiceVariant {
  const colon = text.indexOf(':');
  const label = colon > 0 ? text.slice(0, colon) : '';
  if (!/^[a-zA-Z0-9_.-]+$/.test(label)) throw new Error(`--variant "${text}": expected LABEL:KEY=VALUE[,KEY=VALUE]`);
  const env: Record<string, string> = {};
  for (const pair of text.slice(colon + 1).split(',')) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new Error(`--variant "${text}": "${pair}" is not KEY=VALUE`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { label, env };
}

export function parseBenchOptions(argv: readonly string[], machine: MachineFacts): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      rounds: { type: 'string' },
      duration: { type: 'string' },
      quick: { type: 'boolean', default: false },
      workloads: { type: 'string' },
      targets: { type: 'string' },
      workers: { type: 'string' },
      variant: { type: 'string', multiple: true, default: [] },
      'idle-connections': { type: 'string' },
      'rss-connections': { type: 'string' },
      'pick-backends': { type: 'string' },
      'admin-changes': { type: 'string' },
      'wrk-threads': { type: 'string' },
      'wrk-connections': { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
      note: { type: 'string', default: '' },
      'no-install': { type: 'boolean', default: false },
      'install-only': { type: 'boolean', default: false },
      'report-from': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) throw new Error(USAGE);
  const quick = values.quick;
  let durationS = quick ? 1 : 5;
  if (values.duration !== undefined) {
    const ms = parseDuration(values.duration);
    if (ms === undefined || ms < 1000) throw new Error(`--duration must be at least 1s, e.g. 5s; got "${values.duration}"`);
    durationS = ms / 1000;
  }
  const workloads = values.workloads === undefined ? ALL_WORKLOADS : values.workloads.split(',').map((w) => w.trim());
  for (const w of workloads) {
    if (!(ALL_WORKLOADS as readonly string[]).includes(w)) {
      throw new Error(`--workloads: unknown "${w}"; known: ${ALL_WORKLOADS.join(', ')}`);
    }
  }
  const maxIdle = maxIdleConnections(machine.fdLimit);
  const idleConnections = positiveInt('idle-connections', values['idle-connections'], quick ? 200 : maxIdle);
  if (idleConnections > maxIdle) {
    throw new Error(`--idle-connections ${idleConnections} needs more than the ${machine.fdLimit} file descriptors a process may open here (max ${maxIdle})`);
  }
  return {
    rounds: positiveInt('rounds', values.rounds, quick ? 1 : 3),
    durationS,
    quick,
    workloads: workloads as WorkloadId[],
    targetFilter: values.targets === undefined ? [] : values.targets.split(',').map((t) => t.trim()).filter((t) => t !== ''),
    workers: positiveInt('workers', values.workers, machine.cores),
    variants: values.variant.map(parseVariant),
    idleConnections,
    rssConnections: positiveInt('rss-connections', values['rss-connections'], quick ? 200 : 20_000),
    pickBackends: positiveInt('pick-backends', values['pick-backends'], quick ? 100 : 10_000),
    adminChanges: positiveInt('admin-changes', values['admin-changes'], quick ? 5 : 100),
    wrkThreads: positiveInt('wrk-threads', values['wrk-threads'], 1),
    wrkConnections: positiveInt('wrk-connections', values['wrk-connections'], 64),
    out: values.out ?? (quick ? undefined : 'docs/benchmarks.md'),
    json: values.json,
    note: values.note,
    install: !values['no-install'],
    installOnly: values['install-only'],
    reportFrom: values['report-from'],
  };
}
