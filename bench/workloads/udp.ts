/**
 * UDP request-response through nginx `stream` and Sluice, side by side with the echo
 * backends reached directly: bench/udp.ts's load (closed-loop clients in this process) and
 * its proxy configurations, run on the bench's process group so every process is tracked
 * and stopped by pid like the others.
 *
 * Two scenarios (bench/udp.ts says why both): `udp_one`, one reply per session (nginx
 * `proxy_responses 1`, Sluice `max_replies: 1`), and `udp_long`, long sessions. Each proxy
 * runs one process per scenario, started once and kept for every round.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { delay, freePorts, type ProcessGroup, type Started } from '../lib/procs.ts';
import type { WorkloadId } from '../lib/record.ts';
import { sluiceCommand } from '../peers/sluice.ts';
import type { TargetKind } from '../peers/target.ts';
import { ECHO_BACKEND, freeUdpPort, measure, nginxUdpConfig, SCENARIOS, sluiceUdpConfig, waitForEcho, type Scenario, type UdpLoad } from '../udp.ts';
import type { Metrics } from './http-load.ts';

export type UdpWorkload = Extract<WorkloadId, 'udp_one' | 'udp_long'>;

/** bench/udp.ts's defaults: 32 closed-loop clients, 64-byte datagrams. */
export const UDP_CLIENTS = 32;
export const UDP_SIZE = 64;
const START_TIMEOUT_MS = 60_000;

export function scenarioOf(workload: UdpWorkload): Scenario {
  const scenario = SCENARIOS.find((s) => s.oneReply === (workload === 'udp_one'));
  if (scenario === undefined) throw new Error(`bench/udp.ts has no scenario for ${workload}`);
  return scenario;
}

export interface UdpTarget {
  readonly name: string;
  readonly kind: TargetKind;
  readonly workers: number;
  /** Where client i sends its datagrams. */
  readonly portFor: (client: number) => number;
  /** The proxy's process (its CPU is counted); undefined for direct. */
  readonly pid: number | undefined;
}

/** A UDP echo backend (bench/udp.ts's) on a port the kernel picks; it prints the port. */
async function startEcho(group: ProcessGroup, name: string): Promise<number> {
  const started = group.start(name, process.execPath, ['-e', ECHO_BACKEND]);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const port = Number(readFileSync(started.logFile, 'utf8').trim().split('\n')[0]);
    if (Number.isInteger(port) && port > 0) return port;
    if (started.child.exitCode !== null) throw new Error(`${name} exited at start-up (see ${started.logFile})`);
    if (Date.now() > deadline) throw new Error(`${name} printed no port within ${START_TIMEOUT_MS} ms`);
    await delay(50);
  }
}

/** Until the proxy echoes (it listens and reaches a backend), or it exits, or the time is up. */
async function waitUntilEchoing(started: Started, port: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      await waitForEcho(port);
      return;
    } catch (error) {
      if (started.child.exitCode !== null) throw new Error(`${started.name} exited at start-up (see ${started.logFile})`, { cause: error });
      if (Date.now() > deadline) throw error;
    }
  }
}

async function startSluiceUdp(group: ProcessGroup, dir: string, backends: readonly number[], scenario: Scenario, workers: number, id: string): Promise<UdpTarget> {
  const [port, [adminPort = 0]] = await Promise.all([freeUdpPort(), freePorts(1)]);
  const home = path.join(dir, `sluice-${id}`);
  mkdirSync(home, { recursive: true });
  const file = path.join(home, 'config.yaml');
  writeFileSync(file, sluiceUdpConfig(port, adminPort, backends, scenario, workers));
  const { command, args } = sluiceCommand();
  const started = group.start(`sluice-${id}`, command, [...args, 'run', '--config', file]);
  await waitUntilEchoing(started, port);
  return { name: `sluice ${workers}w`, kind: 'sluice', workers, portFor: () => port, pid: started.pid };
}

async function startNginxUdp(group: ProcessGroup, dir: string, backends: readonly number[], scenario: Scenario, workers: number, id: string): Promise<UdpTarget> {
  const port = await freeUdpPort();
  const prefix = path.join(dir, `nginx-${workers}w-${id}`);
  mkdirSync(prefix, { recursive: true });
  const conf = path.join(prefix, 'nginx.conf');
  writeFileSync(conf, nginxUdpConfig(prefix, port, backends, scenario, workers));
  const started = group.start(`nginx-${workers}w-${id}`, 'nginx', ['-c', conf, '-p', prefix, '-e', path.join(prefix, 'error.log')]);
  await waitUntilEchoing(started, port);
  return { name: `nginx ${workers}w`, kind: 'nginx', workers, portFor: () => port, pid: started.pid };
}

export interface UdpOptions {
  readonly workloads: readonly UdpWorkload[];
  /** Sluice's worker count; nginx runs at 1 and at this count. */
  readonly workers: number;
  /** Only targets whose name contains one of these (direct always runs); empty = all. */
  readonly targetFilter: readonly string[];
}

/** The echo backends, then every proxy of every scenario asked for: target lists per workload. */
export async function startUdpTargets(group: ProcessGroup, dir: string, options: UdpOptions): Promise<Map<UdpWorkload, UdpTarget[]>> {
  const backends = [await startEcho(group, 'udp-echo-1'), await startEcho(group, 'udp-echo-2')];
  const wanted = (name: string): boolean => options.targetFilter.length === 0 || options.targetFilter.some((f) => name.includes(f));
  const counts = options.workers === 1 ? [1] : [1, options.workers];
  const byWorkload = new Map<UdpWorkload, UdpTarget[]>();
  for (const workload of options.workloads) {
    const scenario = scenarioOf(workload);
    const id = workload === 'udp_one' ? 'udp-one' : 'udp-long';
    const direct: UdpTarget = { name: 'direct', kind: 'direct', workers: 0, portFor: (i) => backends[i % backends.length] ?? 0, pid: undefined };
    const proxies = await Promise.all([
      ...counts.filter((w) => wanted(`nginx ${w}w`)).map(async (w) => startNginxUdp(group, dir, backends, scenario, w, id)),
      ...(wanted(`sluice ${options.workers}w`) ? [startSluiceUdp(group, dir, backends, scenario, options.workers, id)] : []),
    ]);
    byWorkload.set(workload, [direct, ...proxies]);
  }
  return byWorkload;
}

/** One measured run; the proxy's CPU (its whole process tree) is read around the measured window. */
export async function runUdp(target: UdpTarget, load: UdpLoad): Promise<Metrics> {
  const result = await measure(target.portFor, target.pid, load);
  if (result.requestsPerSecond === 0) throw new Error(`no datagram came back through ${target.name}`);
  return {
    dgram_s: result.requestsPerSecond,
    p50_us: result.p50Us,
    p99_us: result.p99Us,
    lost: result.lost,
    cpu_us_per_dgram: result.cpuUsPerDatagram ?? Number.NaN,
  };
}
