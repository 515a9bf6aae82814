/**
 * `npm run bench`: Sluice side by side with HAProxy and nginx on this machine, in one run.
 *
 * Installs the peers it lacks (Debian packages), starts the backends (nginx answering a
 * small 200, an iperf3 server) and every proxy configuration on 127.0.0.1, runs each
 * workload against each of them for a bounded time, repeats that for several rounds (the
 * order of the targets rotates, so none always runs first or last), and writes the report.
 * Every process it started is stopped by pid at the end, also on error or Ctrl-C.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensurePeersInstalled, peerVersions } from './lib/install.ts';
import { parseBenchOptions, USAGE, type BenchOptions } from './lib/options.ts';
import { busyFraction, loadAverage, machineCpu } from './lib/proc-stats.ts';
import { delay, descendantPids, freePorts, ProcessGroup } from './lib/procs.ts';
import type { Failure, RoundInfo, RunRecord, Sample, WorkloadId } from './lib/record.ts';
import { writeGenerated } from './lib/report-file.ts';
import { startHttpBackend, startIperfServer } from './peers/backends.ts';
import { targetSpecs, type StartContext, type TargetSpec } from './peers/catalog.ts';
import type { Target } from './peers/target.ts';
import { startPropagationDaemon } from './propagation.ts';
import { renderReport } from './report.ts';
import { runAdminChanges, startAdminChangeTarget } from './workloads/admin-change.ts';
import { runBulk } from './workloads/bulk.ts';
import { runHttpLoad, type Metrics } from './workloads/http-load.ts';
import { runIdleMemory } from './workloads/idle-memory.ts';
import { IDLE_RSS_WORKERS, idleRollup, runSluiceIdleRss } from './workloads/idle-rss.ts';
import { manyBackendsSpec } from './workloads/pick-cost.ts';
import { runPropagation } from './workloads/propagation.ts';
import { runUdp, startUdpTargets, UDP_CLIENTS, UDP_SIZE, type UdpTarget, type UdpWorkload } from './workloads/udp.ts';

/** Pause between measurements so one run's TIME_WAIT sockets and CPU tail do not bleed into the next. */
const SETTLE_MS = 1000;
/** The same for --quick runs, which only prove that everything still works. */
const QUICK_SETTLE_MS = 200;
/** The idle pause of the idle RSS workload (bench/idle-rss.ts's default), and a --quick run's. */
const IDLE_RSS_PAUSE_MS = 10_000;
const QUICK_IDLE_RSS_PAUSE_MS = 1_000;
/** Workloads that run against the long-lived TCP targets (direct, HAProxy, nginx, Sluice). */
const ON_TCP_TARGETS: readonly WorkloadId[] = ['keepalive', 'latency', 'close', 'bulk_up', 'bulk_down', 'pick_cost'];

function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function fdLimit(): number {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const match = /^Max open files\s+(\d+)/m.exec(limits);
  return match === null ? 1024 : Number(match[1]);
}

function machine(): RunRecord['machine'] {
  return {
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    fdLimit: fdLimit(),
  };
}

/** The command as run, for the report; the --note text is shown on its own. */
function commandLine(args: readonly string[]): string {
  const shown = args.filter((arg, i) => arg !== '--note' && args[i - 1] !== '--note' && !arg.startsWith('--note='));
  return `npm run bench${shown.length > 0 ? ` -- ${shown.join(' ')}` : ''}${shown.length < args.length ? ' --note …' : ''}`;
}

function rotate<T>(items: readonly T[], by: number): T[] {
  if (items.length === 0) return [];
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

function selected(spec: Pick<TargetSpec, 'name' | 'kind'>, filter: readonly string[]): boolean {
  return spec.kind === 'direct' || filter.length === 0 || filter.some((f) => spec.name.includes(f));
}

class Bench {
  private readonly options: BenchOptions;
  private readonly group: ProcessGroup;
  private readonly dir: string;
  private readonly samples: Sample[] = [];
  private readonly failures: Failure[] = [];
  private readonly notes: { workload: WorkloadId; note: string }[] = [];
  private readonly rounds: RoundInfo[] = [];
  private context: StartContext | undefined;

  constructor(options: BenchOptions, dir: string) {
    this.options = options;
    this.dir = dir;
    this.group = new ProcessGroup(dir);
  }

  get processes(): ProcessGroup {
    return this.group;
  }

  private wants(workload: WorkloadId): boolean {
    return this.options.workloads.includes(workload);
  }

  async run(): Promise<Omit<RunRecord, 'date' | 'command' | 'machine' | 'versions' | 'note' | 'processes'>> {
    const o = this.options;
    const limit = fdLimit();
    const [httpPort = 0, iperfPort = 0] = await freePorts(2);
    log(`backends: nginx on 0.0.0.0:${httpPort} (loopback clients only), iperf3 on 127.0.0.1:${iperfPort}`);
    await startHttpBackend(this.group, this.dir, httpPort, 1, limit);
    await startIperfServer(this.group, iperfPort);
    const context: StartContext = { group: this.group, dir: this.dir, backends: { httpPort, iperfPort }, fdLimit: limit };
    this.context = context;

    const specs = targetSpecs(o.workers, o.variants).filter((s) => selected(s, o.targetFilter));
    const needsLongLived = o.workloads.some((w) => ON_TCP_TARGETS.includes(w));
    // Everything long-lived starts at once: start-up is most of a quick run.
    const longLived = needsLongLived ? specs : [];
    const mainName = `sluice ${o.workers}w`;
    const wantsMany = this.wants('pick_cost') && longLived.some((s) => s.name === mainName);
    const starting = [...longLived.map((s) => s.name), ...(wantsMany ? [`sluice with ${o.pickBackends} backends`] : [])];
    if (starting.length > 0) log(`starting ${starting.join(', ')}`);
    const udpWorkloads = o.workloads.filter((w): w is UdpWorkload => w === 'udp_one' || w === 'udp_long');
    const [targets, many, admin, udp, propagation] = await Promise.all([
      Promise.all(longLived.map(async (spec) => spec.start(context))),
      wantsMany ? manyBackendsSpec(o.workers, o.pickBackends).start(context) : undefined,
      this.wants('admin_change') ? startAdminChangeTarget(this.group, this.dir, o.workers) : undefined,
      udpWorkloads.length > 0
        ? startUdpTargets(this.group, this.dir, { workloads: udpWorkloads, workers: o.workers, targetFilter: o.targetFilter })
        : new Map<UdpWorkload, UdpTarget[]>(),
      this.wants('propagation') ? startPropagationDaemon(this.group, this.dir, o.workers) : undefined,
    ]);
    const sluiceMain = targets.find((t) => t.name === mainName);

    for (let round = 1; round <= o.rounds; round++) {
      const started = performance.now();
      const cpu = machineCpu();
      const load1Before = loadAverage();
      log(`round ${round}/${o.rounds}`);
      const order = rotate(targets, round - 1);
      for (const mode of ['keepalive', 'latency', 'close'] as const) {
        if (!this.wants(mode)) continue;
        for (const t of order) {
          await this.measure(mode, t, round, async () =>
            runHttpLoad(t, mode, { durationS: o.durationS, threads: o.wrkThreads, connections: o.wrkConnections }),
          );
        }
      }
      for (const direction of ['up', 'down'] as const) {
        const id = direction === 'up' ? 'bulk_up' : 'bulk_down';
        if (!this.wants(id)) continue;
        for (const t of order) await this.measure(id, t, round, async () => runBulk(t, direction, o.durationS));
      }
      for (const [workload, udpTargets] of udp) {
        for (const t of rotate(udpTargets, round - 1)) {
          await this.measure(workload, t, round, async () =>
            runUdp(t, { seconds: o.durationS, clients: UDP_CLIENTS, size: UDP_SIZE }),
          );
        }
      }
      if (this.wants('idle_memory')) {
        for (const spec of rotate(specs, round - 1)) {
          if (spec.kind === 'direct') continue;
          await this.measureFresh(spec, round, 'idle_memory', 'fresh', async (target) =>
            runIdleMemory(target, this.options.idleConnections, this.options.quick),
          );
        }
      }
      if (this.wants('idle_rss')) await this.measureIdleRss(round);
      if (many !== undefined && sluiceMain !== undefined) {
        const pair = round % 2 === 1 ? [sluiceMain, many] : [many, sluiceMain];
        for (const t of pair) {
          await this.measure('pick_cost', t, round, async () =>
            runHttpLoad(t, 'close', { durationS: o.durationS, threads: o.wrkThreads, connections: o.wrkConnections }),
          );
        }
      }
      if (propagation !== undefined) {
        await this.measure('propagation', { name: mainName, kind: 'sluice', workers: o.workers }, round, async () =>
          runPropagation(propagation, o.adminChanges, o.workers),
        );
      }
      if (admin !== undefined) {
        const setup = admin;
        const target: Target = {
          name: `sluice ${o.workers}w`,
          kind: 'sluice',
          workers: o.workers,
          httpPort: setup.listenPort,
          iperfPort: 0,
          pid: setup.instance.started.pid,
        };
        await this.measure('admin_change', target, round, async () => {
          const result = await runAdminChanges(setup, httpPort, o.adminChanges);
          if (result.method !== 'POST /backends' && !this.notes.some((n) => n.workload === 'admin_change')) {
            this.notes.push({
              workload: 'admin_change',
              note: `changes made with ${result.method} (the config file rewritten with the backend added or removed): the admin API has no POST /backends yet; that route skips the config parse and diff, so these numbers bound it from above`,
            });
          }
          return result.metrics;
        });
      }
      this.rounds.push({
        round,
        seconds: (performance.now() - started) / 1000,
        load1Before,
        load1After: loadAverage(),
        machineBusy: busyFraction(cpu, machineCpu()),
      });
    }
    return {
      settings: {
        rounds: o.rounds,
        durationS: o.durationS,
        wrkThreads: o.wrkThreads,
        wrkConnections: o.wrkConnections,
        idleConnections: o.idleConnections,
        pickBackends: o.pickBackends,
        adminChanges: o.adminChanges,
        sluiceWorkers: o.workers,
        workloads: o.workloads,
        udpClients: UDP_CLIENTS,
        udpSize: UDP_SIZE,
        idleRssWorkers: IDLE_RSS_WORKERS,
        idleRssConnections: o.rssConnections,
      },
      rounds: this.rounds,
      samples: this.samples,
      failures: this.failures,
      notes: this.notes,
    };
  }

  private async measure(
    workload: WorkloadId,
    target: Pick<Target, 'name' | 'kind' | 'workers'>,
    round: number,
    body: () => Promise<Metrics | undefined>,
  ): Promise<void> {
    try {
      const metrics = await body();
      if (metrics !== undefined) {
        this.samples.push({ workload, target: target.name, kind: target.kind, workers: target.workers, round, metrics });
        log(`${workload} ${target.name}: ${Object.entries(metrics).map(([k, v]) => `${k}=${v.toFixed(3)}`).join(' ')}`);
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.failures.push({ workload, target: target.name, round, error: message });
      log(`${workload} ${target.name}: FAILED ${message}`);
    }
    await delay(this.options.quick ? QUICK_SETTLE_MS : SETTLE_MS);
  }

  /**
   * Sluice's whole-process memory on the shipped config (a fresh daemon, bench/idle-rss.ts),
   * then a fresh HAProxy with as many threads, idle, as the reference.
   */
  private async measureIdleRss(round: number): Promise<void> {
    const o = this.options;
    const sluiceName = `sluice ${IDLE_RSS_WORKERS}w`;
    if (selected({ name: sluiceName, kind: 'sluice' }, o.targetFilter)) {
      const load = { connections: o.rssConnections, idleMs: o.quick ? QUICK_IDLE_RSS_PAUSE_MS : IDLE_RSS_PAUSE_MS };
      await this.measure('idle_rss', { name: sluiceName, kind: 'sluice', workers: IDLE_RSS_WORKERS }, round, async () => runSluiceIdleRss(load, log));
    }
    const haproxy = targetSpecs(IDLE_RSS_WORKERS, []).find((s) => s.kind === 'haproxy' && s.workers === IDLE_RSS_WORKERS);
    if (haproxy === undefined || !selected(haproxy, o.targetFilter)) return;
    await this.measureFresh(haproxy, round, 'idle_rss', 'fresh-rss', (target) => Promise.resolve(idleRollup(target)));
  }

  /**
   * Idle memory needs a process that has served nothing yet: start one in `<dirPrefix>-r<round>`,
   * measure it with `run`, stop it.
   */
  private async measureFresh(
    spec: TargetSpec,
    round: number,
    workload: WorkloadId,
    dirPrefix: string,
    run: (target: Target) => Promise<Metrics | undefined>,
  ): Promise<void> {
    const context = this.context;
    if (context === undefined) return;
    let target: Target;
    try {
      target = await spec.start({ ...context, dir: path.join(this.dir, `${dirPrefix}-r${round}`) });
    } catch (error) {
      this.failures.push({ workload, target: spec.name, round, error: String(error) });
      return;
    }
    await this.measure(workload, target, round, async () => run(target));
    const started = target.pid === undefined ? undefined : this.group.find(target.pid);
    if (started !== undefined) await this.group.stop(started);
  }
}

async function main(): Promise<void> {
  const facts = { cores: os.availableParallelism(), fdLimit: fdLimit() };
  let options: BenchOptions;
  try {
    options = parseBenchOptions(process.argv.slice(2), facts);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 2;
    return;
  }
  if (options.reportFrom !== undefined) {
    const saved = JSON.parse(readFileSync(options.reportFrom, 'utf8')) as RunRecord;
    const out = options.out ?? 'docs/benchmarks.md';
    writeGenerated(out, renderReport(saved));
    log(`report of ${options.reportFrom} written to ${out}`);
    return;
  }
  ensurePeersInstalled(options.install, log);
  if (options.installOnly) {
    log(`peers installed: ${Object.entries(peerVersions()).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    return;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));
  log(`configs and process logs in ${dir}`);
  const bench = new Bench(options, dir);
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping every process the bench started`);
    void bench.processes.stopAll().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => {
    bench.processes.killAllNow();
    // Workloads borrowed from the standalone scripts (bench/idle-rss.ts) start their own
    // daemon and stop it themselves; on an early exit, end whatever this process started.
    for (const pid of descendantPids(process.pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });

  const date = new Date().toISOString();
  let partial: Awaited<ReturnType<Bench['run']>>;
  try {
    partial = await bench.run();
  } finally {
    await bench.processes.stopAll();
  }
  const record: RunRecord = {
    date,
    command: commandLine(process.argv.slice(2)),
    machine: machine(),
    versions: peerVersions(),
    note: options.note,
    processes: bench.processes.history,
    ...partial,
  };
  const json = options.json ?? path.join('bench', 'results', `${date.replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(json), { recursive: true });
  writeFileSync(json, `${JSON.stringify(record, null, 2)}\n`);
  const report = renderReport(record);
  if (options.out !== undefined) {
    writeGenerated(options.out, report);
    log(`report written to ${options.out}; raw results in ${json}`);
  } else {
    process.stdout.write(report);
    log(`raw results in ${json}`);
  }
  if (record.failures.length > 0) process.exitCode = 1;
}

if (process.argv.includes('--help') || process.argv.includes('-h')) process.stdout.write(`${USAGE}\n`);
else await main();
