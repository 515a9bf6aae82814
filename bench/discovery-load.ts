/**
 * What DNS discovery costs a running daemon (issue #16): the same admin requests timed against
 * three real daemons, one after the other on the same machine and the same dnsmasq:
 *
 *   (a) baseline   `--clusters` static clusters of 3 backends each;
 *   (a') same size `--clusters` static clusters listing the `--records` addresses (b) discovers
 *                  in each: the same snapshot size as (b), without refreshes;
 *   (b) discovery  `--clusters` clusters that all discover the same SRV name of `--records`
 *                  records, refreshed every second (refresh min = max = default = 1s), so the
 *                  control plane looks up and reconciles clusters × records endpoints a second.
 *
 * Both also hold one static cluster (whose backend the PATCHes reweight) and one A-record
 * cluster `svc` behind a listener (refresh 200ms), for the DNS change → routed time.
 *
 * Per daemon, over a window of `--seconds`: GET /healthz and PATCH /backends/:id {weight}
 * latency (one request at a time, spread evenly over the window so they meet refreshes at
 * random phases), snapshot publishes beyond the PATCHes' own (`sluice_snapshot_publishes_total`;
 * an unchanged answer must publish nothing), discovery refreshes, CPU seconds (utime + stime
 * of the whole process) and RSS. Then `--changes` DNS changes: the hosts file names a new
 * address for svc.test, dnsmasq re-reads it (SIGHUP), and the clock runs until a connection
 * through the listener reaches the backend at the new address.
 *
 *   node bench/discovery-load.ts [--seconds 20] [--clusters 100] [--records 1000]
 *        [--requests 300] [--changes 20] [--workers 1] [--cpu-prof DIR] [--keep]
 *
 * `--cpu-prof DIR` runs daemon (b) under `--cpu-prof` (one .cpuprofile per thread in DIR);
 * `--keep` keeps the daemons' logs and configs.
 * Loopback only; every process is started by this script and stopped by its pid.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { startDnsmasq, type Dnsmasq } from '../test/helpers/dnsmasq.ts';
import { cpuTimes, loadAverage, rssKiB } from './lib/proc-stats.ts';
import { delay, freePorts, ProcessGroup, type Started } from './lib/procs.ts';
import { sumSamples } from './lib/prom-text.ts';
import { median, percentile } from './lib/stats.ts';
import { SLUICE_CLI } from './peers/sluice.ts';
import { DEFAULT_BACKEND_SLOTS } from '../src/shared/counters.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    clusters: { type: 'string', default: '100' },
    records: { type: 'string', default: '1000' },
    requests: { type: 'string', default: '300' },
    changes: { type: 'string', default: '20' },
    workers: { type: 'string', default: '1' },
    'cpu-prof': { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${text}"`);
  return n;
}

const SECONDS = positive('seconds', values.seconds);
const CLUSTERS = positive('clusters', values.clusters);
const RECORDS = positive('records', values.records);
const REQUESTS = positive('requests', values.requests);
const CHANGES = positive('changes', values.changes);
const WORKERS = positive('workers', values.workers);
// Room for every backend (a') and (b) hold, beside the few static ones, as an operator would give it.
const CAPACITY = CLUSTERS * RECORDS + 16 <= DEFAULT_BACKEND_SLOTS ? undefined : CLUSTERS * RECORDS + 1_024;
const CPU_PROF = values['cpu-prof'] === undefined ? undefined : path.resolve(values['cpu-prof']);
const KEEP = values.keep;

const SRV_NAME = '_api._tcp.test';
const SVC_NAME = 'svc.test';
/** SRV targets: a few hundred names, 4 records (ports) each by default. */
const HOSTS = Math.min(250, Math.max(1, Math.ceil(RECORDS / 4)));
const READY_DEADLINE_MS = 180_000;
const ROUTE_DEADLINE_MS = 10_000;
const PROBE_TIMEOUT_MS = 2_000;
/** Refreshes every discovered cluster must have made before the window opens (warm JIT, settled state). */
const WARM_REFRESHES = 3;

const targetLines = Array.from({ length: HOSTS }, (_, h) => `127.0.1.${h + 1} n${h}.test`);
const srvArgs = Array.from({ length: RECORDS }, (_, i) => `${SRV_NAME},n${i % HOSTS}.test,${20_000 + i},${i % 2},${(i % 5) + 1}`);
/** What (b) discovers in each cluster, listed statically in (a'): the same snapshot size. */
const discoveredAddresses = Array.from({ length: RECORDS }, (_, i) => `127.0.1.${(i % HOSTS) + 1}:${20_000 + i}`);
/** Where svc.test points for change `i`; a backend listens on each of these. */
const changeAddress = (i: number): string => `127.0.10.${i + 1}`;

type Kind = 'baseline' | 'same-size' | 'discovery';

interface Daemon {
  readonly kind: Kind;
  readonly started: Started;
  readonly admin: string;
  readonly listenPort: number;
}

function config(kind: Kind, adminPort: number, listenPort: number, backendPort: number, resolver: string): string {
  const clusters: string[] = [];
  for (let c = 0; c < CLUSTERS; c++) {
    clusters.push(
      kind === 'baseline'
        ? `  - name: c${c}\n    health_check: {type: none}\n    backends: [${[1, 2, 3].map((b) => `{address: "127.0.2.${b}:${30_000 + c}"}`).join(', ')}]`
        : kind === 'same-size'
          ? `  - name: c${c}\n    health_check: {type: none}\n    backends: [${discoveredAddresses.map((a) => `{address: "${a}"}`).join(', ')}]`
          : `  - name: c${c}\n    health_check: {type: none}\n    discovery: {type: dns, record: srv, name: ${SRV_NAME}, resolvers: ["${resolver}"], refresh: {min: 1s, max: 1s, default: 1s}}`,
    );
  }
  return `workers: ${WORKERS}
${CAPACITY === undefined ? '' : `capacity: {backends: ${CAPACITY}}\n`}admin: {listen: "127.0.0.1:${adminPort}"}
shutdown: {drain_timeout: 1s}
listeners:
  - {name: svc, protocol: tcp, listen: "127.0.0.1:${listenPort}", cluster: svc}
clusters:
  - name: static
    health_check: {type: none}
    backends: [{address: "127.0.3.1:9"}, {address: "127.0.3.2:9"}, {address: "127.0.3.3:9"}]
  - name: svc
    health_check: {type: none}
    discovery: {type: dns, record: a, name: ${SVC_NAME}, port: ${backendPort}, resolvers: ["${resolver}"], refresh: {min: 200ms, max: 200ms, default: 200ms}, hold_obsolete: 1s}
${clusters.join('\n')}
`;
}

async function metrics(admin: string): Promise<string> {
  const response = await fetch(`${admin}/metrics`);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET /metrics: ${response.status} ${text.slice(0, 200)}`);
  return text;
}

interface Counts {
  readonly publishes: number;
  readonly restarts: number;
  readonly refreshes: number;
  readonly errors: number;
}

async function counts(admin: string): Promise<Counts> {
  const text = await metrics(admin);
  return {
    publishes: sumSamples(text, 'sluice_snapshot_publishes_total'),
    restarts: sumSamples(text, 'sluice_worker_restarts_total'),
    refreshes: sumSamples(text, 'sluice_discovery_refreshes_total'),
    errors: sumSamples(text, 'sluice_discovery_refreshes_total', ['result="error"']),
  };
}

/** Polls (bench start-up only) until `check` holds; fails with the daemon's log otherwise. */
async function until(group: ProcessGroup, daemon: Started, what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + READY_DEADLINE_MS;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (daemon.child.exitCode !== null) throw new Error(`${daemon.name} exited while waiting for ${what}:\n${group.tail(daemon)}`);
    if (performance.now() > deadline) throw new Error(`${daemon.name}: no ${what} within ${READY_DEADLINE_MS} ms:\n${group.tail(daemon)}`);
    await delay(200);
  }
}

async function startDaemon(group: ProcessGroup, work: string, kind: Kind, dns: Dnsmasq, backendPort: number): Promise<Daemon> {
  const [adminPort = 0, listenPort = 0] = await freePorts(2);
  const file = path.join(work, `${kind}.yaml`);
  writeFileSync(file, config(kind, adminPort, listenPort, backendPort, dns.address));
  const env = { ...process.env };
  if (kind === 'discovery' && CPU_PROF !== undefined) {
    mkdirSync(CPU_PROF, { recursive: true });
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${CPU_PROF}`.trim();
  }
  const started = group.start(`sluice-${kind}`, process.execPath, [SLUICE_CLI, 'run', '--config', file, '--log-level', 'info'], { env });
  const admin = `http://127.0.0.1:${adminPort}`;
  await until(group, started, 'readiness', async () => (await fetch(`${admin}/readyz`)).status === 200);
  const discovered = kind === 'discovery' ? CLUSTERS + 1 : 1;
  const first = await counts(admin);
  await until(group, started, `${WARM_REFRESHES} more refreshes per discovered cluster`, async () => (await counts(admin)).refreshes >= first.refreshes + WARM_REFRESHES * discovered);
  return { kind, started, admin, listenPort };
}

async function timed(request: () => Promise<Response>, what: string): Promise<number> {
  const startedAt = performance.now();
  const response = await request();
  const body = await response.text();
  const ms = performance.now() - startedAt;
  if (response.status !== 200) throw new Error(`${what}: ${response.status} ${body.slice(0, 200)}`);
  return ms;
}

interface Window {
  readonly healthz: number[];
  readonly patch: number[];
  readonly extraPublishes: number;
  readonly refreshes: number;
  readonly refreshErrors: number;
  /** Crashed worker threads restarted since the daemon started (counted at the window's end). */
  readonly restarts: number;
  readonly cpuSeconds: number;
  readonly userSeconds: number;
  readonly rssMiB: number;
  readonly seconds: number;
  readonly load: number;
}

/** GET /healthz and PATCH, alternating, one at a time, paced evenly over the window. */
async function adminWindow(daemon: Daemon): Promise<Window> {
  const id = encodeURIComponent('static:127.0.3.1:9');
  const healthz: number[] = [];
  const patch: number[] = [];
  const spacingMs = (SECONDS * 1000) / (2 * REQUESTS);
  const before = await counts(daemon.admin);
  const cpuBefore = cpuTimes(daemon.started.pid);
  const startedAt = performance.now();
  for (let i = 0; i < 2 * REQUESTS; i++) {
    const due = startedAt + i * spacingMs;
    const wait = due - performance.now();
    if (wait > 0) await delay(wait);
    if (i % 2 === 0) {
      healthz.push(await timed(() => fetch(`${daemon.admin}/healthz`), 'GET /healthz'));
    } else {
      // Alternating weights: every PATCH changes routing, so each publishes exactly once.
      const body = JSON.stringify({ weight: 2 + (patch.length % 2) });
      patch.push(await timed(() => fetch(`${daemon.admin}/backends/${id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body }), 'PATCH /backends/:id'));
    }
  }
  const seconds = (performance.now() - startedAt) / 1000;
  const cpuAfter = cpuTimes(daemon.started.pid);
  const after = await counts(daemon.admin);
  return {
    healthz,
    patch,
    extraPublishes: after.publishes - before.publishes - patch.length,
    refreshes: after.refreshes - before.refreshes,
    refreshErrors: after.errors - before.errors,
    restarts: after.restarts,
    cpuSeconds: cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system,
    userSeconds: cpuAfter.user - cpuBefore.user,
    rssMiB: rssKiB(daemon.started.pid) / 1024,
    seconds,
    load: loadAverage(),
  };
}

/** The id the backend answered with; undefined when refused, cut or timed out. */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let received = '';
    let settled = false;
    const done = (id: number | undefined): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(id);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(undefined));
    socket.once('error', () => done(undefined));
    socket.once('close', () => done(undefined));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.endsWith('\n')) done(Number(received.trim()));
    });
  });
}

/** One backend per change address, each answering its own index and closing. */
async function startBackends(port: number): Promise<net.Server[]> {
  return Promise.all(
    Array.from({ length: CHANGES + 1 }, async (_, i) => {
      const server = net.createServer((socket) => {
        socket.on('error', () => undefined);
        socket.end(`${i}\n`);
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, changeAddress(i), () => resolve());
      });
      return server;
    }),
  );
}

async function routeTo(port: number, wanted: number): Promise<void> {
  const startedAt = performance.now();
  while ((await probe(port)) !== wanted) {
    if (performance.now() - startedAt > ROUTE_DEADLINE_MS) throw new Error(`${changeAddress(wanted)} not routed within ${ROUTE_DEADLINE_MS} ms`);
  }
}

const hostsFor = (i: number): string[] => [...targetLines, `${changeAddress(i)} ${SVC_NAME}`];

/** DNS change → first connection routed to the new address, `CHANGES` times (after one untimed). */
async function dnsChanges(daemon: Daemon, dns: Dnsmasq): Promise<{ samples: number[]; failure?: string }> {
  const samples: number[] = [];
  try {
    await dns.setHosts(hostsFor(0));
    await routeTo(daemon.listenPort, 0);
    for (let i = 1; i <= CHANGES; i++) {
      const startedAt = performance.now();
      // Probing starts with the edit: routing can follow the re-read before setHosts notices it.
      await Promise.all([dns.setHosts(hostsFor(i)), routeTo(daemon.listenPort, i)]);
      samples.push(performance.now() - startedAt);
    }
    return { samples };
  } catch (error) {
    // The table still reports the rest; the failure is printed under it.
    return { samples, failure: `${daemon.kind}: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/** Discovered backends the control plane could not add (no counter slot left), from its log. */
function slotRefusals(group: ProcessGroup, daemon: Daemon): number {
  return group.tail(daemon.started, Number.MAX_SAFE_INTEGER).split('no counter slot left').length - 1;
}

interface Result {
  readonly window: Window;
  readonly changes: number[];
  readonly changeFailure?: string;
  readonly slotRefusals: number;
  readonly backends: number;
}

const f = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : '–');

function table(a: Result, same: Result, b: Result): string {
  const rows: [string, (r: Result) => number, number][] = [
    ['GET /healthz p50 ms', (r) => median(r.window.healthz), 2],
    ['GET /healthz p99 ms', (r) => percentile(r.window.healthz, 99), 2],
    ['PATCH /backends/:id p50 ms', (r) => median(r.window.patch), 2],
    ['PATCH /backends/:id p99 ms', (r) => percentile(r.window.patch, 99), 2],
    ['publishes beyond the PATCHes', (r) => r.window.extraPublishes, 0],
    ['discovery refreshes', (r) => r.window.refreshes, 0],
    ['of which errors', (r) => r.window.refreshErrors, 0],
    ['worker threads restarted (since start)', (r) => r.window.restarts, 0],
    ['daemon CPU s per s (user+sys)', (r) => r.window.cpuSeconds / r.window.seconds, 3],
    ['daemon RSS MiB (end)', (r) => r.window.rssMiB, 0],
    ['backends held (GET /backends)', (r) => r.backends, 0],
    ['adds refused: no counter slot (log lines)', (r) => r.slotRefusals, 0],
    ['DNS change → routed p50 ms', (r) => median(r.changes), 1],
    ['DNS change → routed p99 ms', (r) => percentile(r.changes, 99), 1],
  ];
  const lines = ["| measure | (a) baseline | (a') static, same size | (b) discovery | b/a | b/a' |", '|---|---|---|---|---|---|'];
  const ratio = (x: number, y: number): string => (y > 0 && Number.isFinite(x) ? `${f(x / y)}×` : '–');
  for (const [label, get, digits] of rows) {
    const [va, vs, vb] = [get(a), get(same), get(b)];
    lines.push(`| ${label} | ${f(va, digits)} | ${f(vs, digits)} | ${f(vb, digits)} | ${ratio(vb, va)} | ${ratio(vb, vs)} |`);
  }
  return lines.join('\n');
}

/**
 * The issue's target in one line: admin p99 under discovery against the same snapshot size
 * without it (a'); and what one cluster refresh costs in CPU beyond that reference.
 */
function verdict(reference: Result, b: Result): string {
  const p99 = (r: Result, get: (w: Window) => number[]): number => percentile(get(r.window), 99);
  const times = (x: number, y: number): string => (y > 0 && Number.isFinite(x) ? `${f(x / y)}×` : '–');
  const cpu = (r: Result): number => r.window.cpuSeconds / r.window.seconds;
  const perRefresh = b.window.refreshes > 0 ? ((cpu(b) - cpu(reference)) * b.window.seconds * 1e6) / b.window.refreshes : Number.NaN;
  return [
    `admin p99 with discovery vs static same size (reference (a') static same size): GET /healthz ${times(p99(b, (w) => w.healthz), p99(reference, (w) => w.healthz))}, PATCH ${times(p99(b, (w) => w.patch), p99(reference, (w) => w.patch))}`,
    // Whole-process CPU of two daemons run one after the other: on a shared machine a
    // difference at or below zero says the refreshes cost less than the noise, nothing more.
    `refresh cost: ${perRefresh > 0 ? `${f(perRefresh, 0)} µs` : `≤ 0 µs (below the noise: ${f(perRefresh, 0)} µs)`} CPU per cluster refresh beyond the reference (${b.window.refreshes} refreshes in ${f(b.window.seconds, 1)} s)`,
  ].join('\n');
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(tmpdir(), 'sluice-bench-discovery-load-'));
  const group = new ProcessGroup(work);
  let dns: Dnsmasq | undefined;
  const servers: net.Server[] = [];
  const abort = (): void => {
    group.killAllNow();
    if (dns !== undefined) process.kill(dns.pid, 'SIGKILL');
    process.exit(130);
  };
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  try {
    dns = await startDnsmasq({ hosts: hostsFor(0), srv: srvArgs });
    const [backendPort = 0] = await freePorts(1);
    servers.push(...(await startBackends(backendPort)));
    const results = new Map<Kind, Result>();
    const loads: number[] = [loadAverage()];
    const kinds = ['baseline', 'same-size', 'discovery'] as const;
    for (const kind of kinds) {
      const daemon = await startDaemon(group, work, kind, dns, backendPort);
      const window = await adminWindow(daemon);
      const backends = ((await (await fetch(`${daemon.admin}/backends`)).json()) as unknown[]).length;
      const changes = await dnsChanges(daemon, dns);
      const result = { window, changes: changes.samples, slotRefusals: slotRefusals(group, daemon), backends };
      results.set(kind, changes.failure === undefined ? result : { ...result, changeFailure: changes.failure });
      loads.push(loadAverage());
      await group.stop(daemon.started);
    }
    const a = results.get('baseline');
    const same = results.get('same-size');
    const b = results.get('discovery');
    if (a === undefined || same === undefined || b === undefined) throw new Error('a daemon gave no result');
    console.log(
      `DNS discovery load: ${CLUSTERS} clusters; (b) refreshes ${SRV_NAME} (${RECORDS} SRV records on ${HOSTS} hosts, dnsmasq) every 1s in each; ` +
        `${REQUESTS} GET /healthz + ${REQUESTS} PATCH over ${SECONDS}s per daemon; ${CHANGES} DNS changes (A record, refresh 200ms); ` +
        `${WORKERS} data-plane worker(s); node ${process.version}; 1-min load average ${loads.map((l) => f(l, 1)).join(' → ')}\n`,
    );
    console.log(table(a, same, b));
    console.log(`\n${verdict(same, b)}`);
    for (const r of [a, same, b]) if (r.changeFailure !== undefined) console.log(`\nDNS changes stopped: ${r.changeFailure} (after ${r.changes.length} timed)`);
    if (CPU_PROF !== undefined) console.log(`\nCPU profiles of (b): ${CPU_PROF}`);
  } finally {
    await group.stopAll();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    await dns?.stop();
    if (KEEP) console.log(`\nlogs and configs kept in ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

await main();
