/**
 * Soak (issue #18): push a million short TCP connections and ten million UDP datagrams
 * through a real Sluice daemon on 127.0.0.1, and check that what it holds comes back.
 * Not a test: it measures, prints a table and a verdict per quantity, and exits non-zero
 * when one does not come back.
 *
 *   nice -n 10 npm run soak                                        # full size (minutes)
 *   npm run soak -- --connections 20000 --datagrams 200000         # quick run
 *   npm run soak -- --help
 *
 * The daemon runs the shipped entry point (src/cli.ts run) on a demo-like config: a TCP
 * listener and a UDP listener, each in front of two echo backends this script starts as
 * child processes, with active health checks on both clusters. It runs with --expose-gc, so
 * that each worker reports its heap after a full collection (src/dataplane/worker.ts), and
 * with its inspector on a loopback port, through which the main thread collects before its
 * heap is read (bench/lib/inspector-gc.ts): without a collection a heap reading says where
 * the GC cycle happened to be, not what is live.
 *
 * Samples: "cold" (before any load), "start" (after a warm-up and an idle wait: one-time
 * growth such as JIT code, V8's young generation and buffer pools is not a leak), every
 * --connections-every connections and --datagrams-every datagrams, and "end" (after the
 * load, once the daemon holds no connection and no session, or after --idle-seconds).
 * Verdicts compare end with start. Every process it starts is stopped by pid on every exit.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { collectGarbage, inspectorUrlFromLog } from './lib/inspector-gc.ts';
import { sumSamples } from './lib/prom-text.ts';
import { rssKiB } from './lib/proc-stats.ts';
import { delay, freePorts, ProcessGroup, type Started } from './lib/procs.ts';
import { shortConnections } from './lib/short-connections.ts';
import { handleDifference, parseSoakOptions, renderTable, SOAK_USAGE, splitResources, total, verdicts, type SoakOptions, type SoakSample } from './lib/soak-report.ts';
import { udpRequests } from './lib/udp-requests.ts';
import { SLUICE_CLI } from './peers/sluice.ts';
import type { ResourceReport } from '../src/shared/messages.ts';

const UDP_SESSION_TIMEOUT_S = 2;
const UDP_LOSS_TIMEOUT_MS = 1000;
const DATAGRAM_BYTES = 64;
const START_TIMEOUT_MS = 60_000;

function log(message: string): void {
  process.stderr.write(`soak: ${message}\n`);
}

// ── peers ─────────────────────────────────────────────────────────────────────

/** One backend process: a TCP echo (half-close aware) and a UDP echo on the given ports. */
const ECHO_BACKEND = `
const net = require('node:net');
const dgram = require('node:dgram');
const [tcpPort, udpPort] = process.argv.slice(1).map(Number);
const tcp = net.createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => s.destroy()); s.pipe(s); });
const udp = dgram.createSocket('udp4');
udp.on('message', (m, r) => udp.send(m, r.port, r.address));
tcp.listen({ port: tcpPort, host: '127.0.0.1', backlog: 4096 }, () => udp.bind(udpPort, '127.0.0.1', () => console.log('ready')));
`;

async function waitForLine(started: Started, text: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (readFileSync(started.logFile, 'utf8').includes(text)) return;
    if (started.child.exitCode !== null || started.child.signalCode !== null) {
      throw new Error(`${started.name} exited at start-up (see ${started.logFile})`);
    }
    if (Date.now() > deadline) throw new Error(`${started.name} did not start within ${START_TIMEOUT_MS} ms (see ${started.logFile})`);
    await delay(100);
  }
}

interface Ports {
  readonly tcp: number;
  readonly udp: number;
  readonly admin: number;
  readonly backends: readonly { readonly tcp: number; readonly udp: number }[];
}

function soakConfig(workers: number, ports: Ports): string {
  const list = (key: 'tcp' | 'udp'): string => ports.backends.map((b) => `      - {address: 127.0.0.1:${b[key]}, weight: 1}`).join('\n');
  // Health checks as in the demo, with a higher `fall` and a longer timeout: on a shared,
  // loaded machine a probe answer can be late, and a backend marked down would turn the
  // soak into a measurement of refusals.
  return `workers: ${workers}
admin:
  listen: 127.0.0.1:${ports.admin}
shutdown:
  drain_timeout: 1s
listeners:
  - name: web
    protocol: tcp
    listen: 127.0.0.1:${ports.tcp}
    cluster: web
  - name: echo
    protocol: udp
    listen: 127.0.0.1:${ports.udp}
    cluster: udp-echo
    udp: {session_timeout: ${UDP_SESSION_TIMEOUT_S}s, max_sessions: 100000, max_replies: 0}
clusters:
  - name: web
    algorithm: round_robin
    connect_timeout: 2s
    idle_timeout: 5m
    health_check: {type: tcp, interval: 3s, timeout: 2s, rise: 2, fall: 10}
    backends:
${list('tcp')}
  - name: udp-echo
    algorithm: round_robin
    health_check: {type: udp, send: ping, expect: ping, interval: 3s, timeout: 2s, rise: 2, fall: 10}
    backends:
${list('udp')}
`;
}

// ── reading the daemon ──────────────────────────────────────────────────────────

async function getText(url: string): Promise<string> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return response.text();
}

class Daemon {
  readonly started: Started;
  readonly adminUrl: string;
  private readonly inspector: string;

  constructor(started: Started, adminUrl: string) {
    this.started = started;
    this.adminUrl = adminUrl;
    this.inspector = inspectorUrlFromLog(started.logFile);
  }

  async workers(): Promise<ResourceReport[]> {
    const body = JSON.parse(await getText(`${this.adminUrl}/debug/resources`)) as { workers: ResourceReport[] };
    return body.workers;
  }

  /**
   * What the daemon holds now. fds first, before the inspector connection opens one; the
   * workers collect garbage before they report (--expose-gc), the main thread through its
   * inspector when `collect` (not in the idle wait's frequent polls).
   */
  async sample(point: string, connections: number, datagrams: number, collect = true): Promise<SoakSample> {
    const fds = readdirSync(`/proc/${this.started.pid}/fd`).length;
    const workers = await this.workers();
    if (collect) await collectGarbage(this.inspector);
    const metrics = await getText(`${this.adminUrl}/metrics`);
    const { handles, timers } = splitResources(workers.map((w) => w.resources));
    return {
      point,
      connections,
      datagrams,
      fds,
      handles,
      timers,
      heapMainBytes: sumSamples(metrics, 'nodejs_heap_size_used_bytes'),
      heapWorkersBytes: workers.reduce((sum, w) => sum + w.heapUsedBytes, 0),
      rssKiB: rssKiB(this.started.pid),
      openConnections: workers.reduce((sum, w) => sum + w.connections, 0),
      udpSessions: workers.reduce((sum, w) => sum + w.udpSessions, 0),
    };
  }

  async allHealthy(): Promise<boolean> {
    const backends = JSON.parse(await getText(`${this.adminUrl}/backends`)) as { state: string }[];
    return backends.length > 0 && backends.every((b) => b.state === 'healthy');
  }
}

async function startPeers(group: ProcessGroup, dir: string, workers: number): Promise<{ daemon: Daemon; ports: Ports }> {
  const [tcp, udp, admin, ...rest] = await freePorts(7);
  if (tcp === undefined || udp === undefined || admin === undefined || rest.length < 4) throw new Error('no free ports');
  const backends = [
    { tcp: rest[0] ?? 0, udp: rest[1] ?? 0 },
    { tcp: rest[2] ?? 0, udp: rest[3] ?? 0 },
  ];
  const ports: Ports = { tcp, udp, admin, backends };
  await Promise.all(
    backends.map(async (b, i) => {
      const started = group.start(`echo-backend-${i}`, process.execPath, ['-e', ECHO_BACKEND, String(b.tcp), String(b.udp)]);
      await waitForLine(started, 'ready');
    }),
  );
  const configFile = path.join(dir, 'config.yaml');
  writeFileSync(configFile, soakConfig(workers, ports));
  const started = group.start('sluice', process.execPath, ['--expose-gc', '--inspect=127.0.0.1:0', SLUICE_CLI, 'run', '--config', configFile, '--log-level', 'info']);
  await waitForLine(started, '"msg":"sluice started"');
  const daemon = new Daemon(started, `http://127.0.0.1:${admin}`);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await daemon.allHealthy())) {
    if (Date.now() > deadline) throw new Error(`backends not all healthy within ${START_TIMEOUT_MS} ms`);
    await delay(200);
  }
  return { daemon, ports };
}

// ── the run ───────────────────────────────────────────────────────────────────

/** Samples taken one after another, in the order asked for, while the load goes on. */
class Sampler {
  readonly samples: SoakSample[] = [];
  private chain: Promise<void> = Promise.resolve();
  private readonly daemon: Daemon;

  constructor(daemon: Daemon) {
    this.daemon = daemon;
  }

  take(point: string, connections: number, datagrams: number): void {
    this.chain = this.chain.then(async () => {
      const sample = await this.daemon.sample(point, connections, datagrams);
      this.samples.push(sample);
      log(`${point}: fds ${sample.fds}, handles ${total(sample.handles)}, timers ${sample.timers}, RSS ${(sample.rssKiB / 1024).toFixed(1)} MiB, open ${sample.openConnections}, sessions ${sample.udpSessions}`);
    });
  }

  async settled(): Promise<void> {
    await this.chain;
  }
}

/** Until the daemon holds no connection or session and its fds, handles and timers are back at `start`. */
async function waitIdle(daemon: Daemon, start: SoakSample | undefined, seconds: number): Promise<boolean> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const now = await daemon.sample('idle?', 0, 0, false);
    const quiet = now.openConnections === 0 && now.udpSessions === 0;
    const back =
      start === undefined ||
      (now.fds === start.fds && now.timers === start.timers && handleDifference(start.handles, now.handles) === '');
    if (quiet && back) return true;
    if (Date.now() > deadline) return false;
    await delay(500);
  }
}

interface LoadResult {
  readonly connections: number;
  readonly failedConnections: number;
  readonly datagrams: number;
  readonly lostDatagrams: number;
  readonly udpSockets: number;
  readonly timedOut: boolean;
}

async function pushLoad(o: SoakOptions, ports: Ports, sampler: Sampler | undefined, connections: number, datagrams: number, stop: () => boolean): Promise<LoadResult> {
  const tcp = await shortConnections({
    port: ports.tcp,
    count: connections,
    concurrency: o.concurrency,
    stop,
    onDone: (n) => {
      if (n % o.connectionsEvery === 0 && n < connections) sampler?.take(`${n.toLocaleString('en-US')} conns`, n, 0);
    },
  });
  const done = tcp.ok + tcp.failed;
  const udp = await udpRequests({
    port: ports.udp,
    count: datagrams,
    clients: o.udpClients,
    perSocket: o.perSocket,
    size: DATAGRAM_BYTES,
    lossTimeoutMs: UDP_LOSS_TIMEOUT_MS,
    stop,
    onReply: (n) => {
      if (n % o.datagramsEvery === 0 && n < datagrams) sampler?.take(`${n.toLocaleString('en-US')} dgrams`, done, n);
    },
  });
  return {
    connections: done,
    failedConnections: tcp.failed,
    datagrams: udp.replies,
    lostDatagrams: udp.lost,
    udpSockets: udp.sockets,
    timedOut: stop(),
  };
}

async function run(o: SoakOptions, group: ProcessGroup, dir: string): Promise<number> {
  const { daemon, ports } = await startPeers(group, dir, o.workers);
  const began = Date.now();
  const stop = (): boolean => Date.now() - began > o.maxSeconds * 1000;
  const cold = await daemon.sample('cold', 0, 0);

  if (o.warmupConnections > 0 || o.warmupDatagrams > 0) {
    log(`warm-up: ${o.warmupConnections} connections, ${o.warmupDatagrams} datagrams`);
    await pushLoad({ ...o, connectionsEvery: Infinity, datagramsEvery: Infinity }, ports, undefined, o.warmupConnections, o.warmupDatagrams, stop);
    await waitIdle(daemon, undefined, o.idleSeconds);
  }
  const sampler = new Sampler(daemon);
  sampler.take('start', 0, 0);
  await sampler.settled();
  const start = sampler.samples[0];
  if (start === undefined) throw new Error('no start sample');

  log(`load: ${o.connections} connections (${o.concurrency} at a time), then ${o.datagrams} datagrams (${o.udpClients} clients, a new socket every ${o.perSocket} replies)`);
  const loadBegan = Date.now();
  const load = await pushLoad(o, ports, sampler, o.connections, o.datagrams, stop);
  const loadSeconds = (Date.now() - loadBegan) / 1000;
  sampler.take('after load', load.connections, load.datagrams);
  await sampler.settled();

  const idle = await waitIdle(daemon, start, o.idleSeconds);
  sampler.take('end (idle)', load.connections, load.datagrams);
  await sampler.settled();
  const end = sampler.samples.at(-1);
  if (end === undefined) throw new Error('no end sample');

  const results = verdicts(start, end, o.tolerancePercent);
  const lines = [
    renderTable([cold, ...sampler.samples]),
    '',
    `${load.connections.toLocaleString('en-US')} connections (${load.failedConnections} failed) and ${load.datagrams.toLocaleString('en-US')} datagrams answered (${load.lostDatagrams} lost, ${load.udpSockets.toLocaleString('en-US')} client sockets) in ${loadSeconds.toFixed(0)} s; ${o.workers} workers; idle ${idle ? 'reached' : `NOT reached within ${o.idleSeconds} s`}.`,
    `cold -> start (warm-up): RSS ${(cold.rssKiB / 1024).toFixed(1)} -> ${(start.rssKiB / 1024).toFixed(1)} MiB, fds ${cold.fds} -> ${start.fds}, handles ${total(cold.handles)} -> ${total(start.handles)}, timers ${cold.timers} -> ${start.timers}.`,
    '',
    ...results.map((v) => v.line),
    `tcp failures: ${load.failedConnections} - ${load.failedConnections === 0 ? 'ok' : 'FAILED'} (must be 0)`,
  ];
  if (load.timedOut) lines.push(`INCOMPLETE: stopped by --max-seconds ${o.maxSeconds}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  if (load.timedOut) return 2;
  return results.every((v) => v.ok) && load.failedConnections === 0 ? 0 : 1;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help')) {
    process.stdout.write(`${SOAK_USAGE}\n`);
    return;
  }
  let options: SoakOptions;
  try {
    options = parseSoakOptions(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${SOAK_USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-soak-'));
  const group = new ProcessGroup(dir);
  process.on('exit', () => group.killAllNow());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      void group.stopAll().then(() => process.exit(130));
    });
  }
  let code = 2;
  try {
    code = await run(options, group, dir);
  } catch (error) {
    log(`failed: ${(error as Error).message} (logs in ${dir})`);
  } finally {
    await group.stopAll();
  }
  if (code !== 0) log(`logs kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
  process.exitCode = code;
}

await main();
