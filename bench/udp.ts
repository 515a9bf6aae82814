/**
 * UDP request-response throughput, side by side in one run on 127.0.0.1: the echo backends
 * directly, nginx `stream` (UDP), and Sluice, with the same backends, clients and payload.
 * Not a test: it measures, prints a table and writes docs/benchmarks-udp.md.
 *
 *   node bench/udp.ts [--seconds 3] [--clients 32] [--size 64] [--workers 1] [--repeat 1]
 *                     [--scenario long|one] [--cpu-prof DIR] [--out docs/benchmarks-udp.md]
 *
 * Two scenarios, because UDP proxies pay very differently for them:
 * - "long sessions": each client sends request after request from one port (syslog, game,
 *   metrics); nginx keeps the session until proxy_timeout, Sluice with max_replies 0.
 * - "one reply per session": DNS-like; nginx `proxy_responses 1`, Sluice `max_replies: 1`,
 *   so every request creates and ends a session (a socket to the backend) in the proxy.
 *
 * Clients run closed loops (send, wait for the reply, send the next) in this process; the
 * two echo backends are child processes. A reply not back within LOSS_TIMEOUT_MS is counted
 * lost and the client moves on. Besides datagrams per second, each proxy's CPU time (user +
 * system, its whole process tree, from /proc) over the measured window divided by the
 * datagrams answered: on a shared machine the least noisy number, since other tenants slow a
 * proxy down but barely change what it burns per datagram. With --repeat N, nginx and Sluice
 * alternate N times per scenario and the table shows medians. With --cpu-prof DIR, Sluice runs
 * with `--cpu-prof` and the hottest functions of its data-plane worker are printed. Installs nginx-light and libnginx-mod-stream with apt-get
 * when nginx or its stream module is missing. Bounded: the whole run ends within
 * --max-seconds, and every process it started is stopped on every exit path.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuSeconds } from './lib/proc-stats.ts';
import { freePorts } from './lib/procs.ts';
import { writeGenerated } from './lib/report-file.ts';
import { median } from './lib/stats.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(ROOT, 'src/cli.ts');
const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const LOSS_TIMEOUT_MS = 500;
const WARMUP_MS = 500;

// `npm run bench` (bench/workloads/udp.ts) imports the load and the configs below; its argv
// is not this script's, and the script's own processes, timers and signals stay the script's.
const { values } = parseArgs({
  ...(import.meta.main ? {} : { args: [] }),
  options: {
    seconds: { type: 'string', default: '3' },
    clients: { type: 'string', default: '32' },
    size: { type: 'string', default: '64' },
    workers: { type: 'string', default: '1' },
    out: { type: 'string', default: path.join(ROOT, 'docs/benchmarks-udp.md') },
    repeat: { type: 'string', default: '1' },
    scenario: { type: 'string' },
    'cpu-prof': { type: 'string' },
    floor: { type: 'boolean', default: false },
    'max-seconds': { type: 'string', default: '240' },
  },
});
const REPEAT = positive('repeat', values.repeat);
const SECONDS = positive('seconds', values.seconds);
const CLIENTS = positive('clients', values.clients);
const SIZE = Math.max(16, positive('size', values.size));
const WORKERS = positive('workers', values.workers);

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${text}`);
  return n;
}

// ── processes: every child is tracked and stopped on every exit path ─────────────
const children = new Set<ChildProcess>();
const work = import.meta.main ? mkdtempSync(path.join(tmpdir(), 'sluice-bench-udp-')) : '';

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const forced = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(forced);
}

async function stopAll(): Promise<void> {
  await Promise.all([...children].map(async (child) => stop(child)));
  rmSync(work, { recursive: true, force: true });
}

const deadline = import.meta.main ? setTimeout(
  () => {
    process.stderr.write(`bench/udp: still running after --max-seconds ${values['max-seconds']}; stopping\n`);
    void stopAll().then(() => process.exit(2));
  },
  positive('max-seconds', values['max-seconds']) * 1000,
) : undefined;
deadline?.unref();
for (const signal of import.meta.main ? (['SIGINT', 'SIGTERM'] as const) : []) {
  process.on(signal, () => {
    void stopAll().then(() => process.exit(130));
  });
}

// ── peers ─────────────────────────────────────────────────────────────────────

function log(message: string): void {
  process.stderr.write(`bench/udp: ${message}\n`);
}

/** nginx with the stream module, installed from Debian packages when missing; else why not. */
function ensureNginx(): { ok: true; version: string } | { ok: false; reason: string } {
  const present = (): boolean => spawnSync('nginx', ['-v']).status === 0 && existsSync(NGINX_STREAM_MODULE);
  if (!present()) {
    log('installing nginx-light and libnginx-mod-stream (apt-get)');
    const install = spawnSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq nginx-light libnginx-mod-stream'], {
      stdio: 'inherit',
      timeout: 300_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (install.status !== 0 || !present()) return { ok: false, reason: 'nginx with the stream module could not be installed' };
  }
  const version = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim().replace(/^nginx version: /, '');
  return { ok: true, version };
}

export const ECHO_BACKEND = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(0, '127.0.0.1', () => console.log(s.address().port));
`;

/**
 * The floor for any proxy on Node's dgram (--floor): a session per client port, a connected
 * socket per session, replies sent from the listener; no routing, counters or timers. What
 * Sluice costs above it is Sluice's; what it costs above nginx down to it is Node's.
 */
const NODE_RELAY = `
const dgram = require('node:dgram');
const [port, ...backends] = process.argv.slice(1).map(Number);
const listener = dgram.createSocket({ type: 'udp4', reusePort: true });
const byPort = new Map();
let next = 0;
listener.on('message', (datagram, client) => {
  let socket = byPort.get(client.port);
  if (socket === undefined) {
    socket = dgram.createSocket('udp4');
    const { port: clientPort, address } = client;
    socket.on('message', (reply) => listener.send(reply, clientPort, address));
    socket.connect(backends[next++ % backends.length], '127.0.0.1');
    byPort.set(client.port, socket);
    socket.once('connect', () => socket.send(datagram));
    return;
  }
  socket.send(datagram);
});
listener.bind(port, '127.0.0.1');
`;

async function startNodeRelay(port: number, backends: readonly number[]): Promise<ChildProcess> {
  const child = track(spawn(process.execPath, ['-e', NODE_RELAY, String(port), ...backends.map(String)], { stdio: ['ignore', 'ignore', 'inherit'] }));
  await waitForEcho(port);
  return child;
}

async function startEchoBackend(): Promise<number> {
  const child = track(spawn(process.execPath, ['-e', ECHO_BACKEND], { stdio: ['ignore', 'pipe', 'inherit'] }));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`echo backend exited with ${code}`)));
    child.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
}

export async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

export interface Scenario {
  readonly name: string;
  readonly oneReply: boolean;
}

export function sluiceUdpConfig(port: number, adminPort: number, backends: readonly number[], scenario: Scenario, workers: number): string {
  return `workers: ${workers}
admin: {listen: 127.0.0.1:${adminPort}}
shutdown: {drain_timeout: 0s}
listeners:
  - name: bench
    protocol: udp
    listen: 127.0.0.1:${port}
    cluster: echo
    udp: {session_timeout: 30s, max_sessions: 100000, max_replies: ${scenario.oneReply ? 1 : 0}}
clusters:
  - name: echo
    backends:
${backends.map((p) => `      - {address: 127.0.0.1:${p}}`).join('\n')}
`;
}

async function startSluice(port: number, backends: readonly number[], scenario: Scenario, profileDir?: string): Promise<ChildProcess> {
  const [adminPort = 0] = await freePorts(1);
  const file = path.join(work, `sluice-${scenario.oneReply ? 'one' : 'long'}.yaml`);
  writeFileSync(file, sluiceUdpConfig(port, adminPort, backends, scenario, WORKERS));
  const env = profileDir === undefined ? process.env : { ...process.env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` };
  const child = track(spawn(process.execPath, [CLI, 'run', '--config', file, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'inherit'], env }));
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString();
      if (seen.includes('"sluice started"')) {
        child.stdout?.removeListener('data', onData);
        child.stdout?.resume();
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`sluice exited with ${code} before it started`)));
  });
  return child;
}

export function nginxUdpConfig(prefix: string, port: number, backends: readonly number[], scenario: Scenario, workers: number): string {
  return `load_module ${NGINX_STREAM_MODULE};
worker_processes ${workers};
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 65536; }
stream {
  upstream echo {
${backends.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
  }
  server {
    listen 127.0.0.1:${port} udp reuseport;
    proxy_pass echo;
    proxy_timeout 30s;
${scenario.oneReply ? '    proxy_responses 1;\n' : ''}  }
}
`;
}

async function startNginx(port: number, backends: readonly number[], scenario: Scenario): Promise<ChildProcess> {
  const prefix = path.join(work, `nginx-${scenario.oneReply ? 'one' : 'long'}`);
  mkdirSync(prefix, { recursive: true });
  const conf = path.join(prefix, 'nginx.conf');
  writeFileSync(conf, nginxUdpConfig(prefix, port, backends, scenario, WORKERS));
  const child = track(spawn('nginx', ['-c', conf, '-p', prefix, '-e', path.join(prefix, 'error.log')], { stdio: ['ignore', 'ignore', 'inherit'] }));
  await waitForEcho(port);
  return child;
}

/** Until a datagram to `port` comes back (the proxy is up), at most 10 s. */
export async function waitForEcho(port: number): Promise<void> {
  const socket = dgram.createSocket('udp4');
  socket.on('error', () => undefined);
  try {
    for (let attempt = 0; attempt < 100; attempt++) {
      const answered = new Promise<boolean>((resolve) => {
        const onMessage = (): void => {
          clearTimeout(timer);
          resolve(true);
        };
        // An attempt that timed out takes its listener along (else they pile up, one per attempt).
        const timer = setTimeout(() => {
          socket.removeListener('message', onMessage);
          resolve(false);
        }, 100);
        socket.once('message', onMessage);
      });
      socket.send('ready?', port, '127.0.0.1');
      if (await answered) return;
    }
    throw new Error(`nothing answers on udp 127.0.0.1:${port}`);
  } finally {
    socket.close();
  }
}

// ── load ──────────────────────────────────────────────────────────────────────

export interface Measurement {
  readonly requestsPerSecond: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly lost: number;
  /** CPU µs (user + system) the proxy's process tree spent per datagram answered; undefined for "direct". */
  readonly cpuUsPerDatagram: number | undefined;
}

export interface UdpLoad {
  readonly seconds: number;
  readonly clients: number;
  readonly size: number;
}

/**
 * `clients` closed-loop clients, client i sending to `portFor(i)`, for WARMUP_MS and then
 * `seconds` measured. Each request carries the client's sequence number; only the reply to
 * the outstanding request counts. `cpuPid`: the proxy whose CPU time is read around the
 * measured window.
 */
export async function measure(
  portFor: (client: number) => number,
  cpuPid?: number,
  { seconds, clients, size }: UdpLoad = { seconds: SECONDS, clients: CLIENTS, size: SIZE },
): Promise<Measurement> {
  const sockets: dgram.Socket[] = [];
  const latenciesUs: number[] = [];
  let measuring = false;
  let running = true;
  let completed = 0;
  let lost = 0;
  const seqs = new Uint32Array(clients);
  const sentAt = new Float64Array(clients);
  const payloads = Array.from({ length: clients }, () => Buffer.alloc(size, 0x61));

  const send = (i: number): void => {
    const socket = sockets[i];
    const payload = payloads[i];
    if (socket === undefined || payload === undefined || !running) return;
    seqs[i] = (seqs[i] ?? 0) + 1;
    payload.writeUInt32BE(seqs[i] ?? 0, 0);
    sentAt[i] = performance.now();
    socket.send(payload, portFor(i), '127.0.0.1');
  };

  for (let i = 0; i < clients; i++) {
    const socket = dgram.createSocket('udp4');
    socket.on('error', () => undefined);
    socket.on('message', (reply: Buffer) => {
      if (reply.length < 4 || reply.readUInt32BE(0) !== seqs[i]) return;
      if (measuring) {
        completed++;
        latenciesUs.push((performance.now() - (sentAt[i] ?? 0)) * 1000);
      }
      send(i);
    });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    sockets.push(socket);
  }
  const lossCheck = setInterval(() => {
    const now = performance.now();
    for (let i = 0; i < clients; i++) {
      if (now - (sentAt[i] ?? now) > LOSS_TIMEOUT_MS) {
        if (measuring) lost++;
        send(i);
      }
    }
  }, 50);

  for (let i = 0; i < clients; i++) send(i);
  await sleep(WARMUP_MS);
  const cpuBefore = cpuPid === undefined ? undefined : cpuSeconds(cpuPid);
  measuring = true;
  const started = performance.now();
  await sleep(seconds * 1000);
  measuring = false;
  const elapsedS = (performance.now() - started) / 1000;
  const cpuAfter = cpuPid === undefined ? undefined : cpuSeconds(cpuPid);
  running = false;
  clearInterval(lossCheck);
  await Promise.all(sockets.map(async (s) => new Promise<void>((resolve) => s.close(() => resolve()))));

  latenciesUs.sort((a, b) => a - b);
  const at = (q: number): number => latenciesUs[Math.min(latenciesUs.length - 1, Math.floor(q * latenciesUs.length))] ?? 0;
  const cpuS = cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore;
  return {
    requestsPerSecond: completed / elapsedS,
    p50Us: at(0.5),
    p99Us: at(0.99),
    lost,
    cpuUsPerDatagram: cpuS === undefined || completed === 0 ? undefined : (cpuS * 1e6) / completed,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ── run ───────────────────────────────────────────────────────────────────────

interface Row {
  readonly scenario: string;
  readonly target: string;
  readonly round: number;
  readonly result: Measurement | undefined;
}

export const SCENARIOS: readonly Scenario[] = [
  { name: 'long sessions', oneReply: false },
  { name: 'one reply per session (DNS-like)', oneReply: true },
].filter((s) => values.scenario === undefined || s.name.startsWith(values.scenario));
if (SCENARIOS.length === 0) throw new Error(`--scenario must be long or one, got ${values.scenario}`);

async function main(): Promise<void> {
  const loadBefore = loadavg();
  const nginx = ensureNginx();
  if (!nginx.ok) log(`${nginx.reason}: the nginx column stays empty`);
  const backends = [await startEchoBackend(), await startEchoBackend()];
  log(`echo backends on udp ${backends.map((p) => `127.0.0.1:${p}`).join(', ')}; ${CLIENTS} clients, ${SIZE}-byte datagrams, ${SECONDS}s per target`);
  const rows: Row[] = [];
  const note = (scenario: Scenario, target: string, round: number, result: Measurement | undefined): void => {
    rows.push({ scenario: scenario.name, target, round, result });
    if (result === undefined) return;
    const cpu = result.cpuUsPerDatagram === undefined ? '' : `, ${result.cpuUsPerDatagram.toFixed(1)} CPU µs/datagram`;
    log(`${scenario.name} #${round}: ${target} ${result.requestsPerSecond.toFixed(0)}/s${cpu}`);
  };
  for (const scenario of SCENARIOS) {
    for (let round = 1; round <= REPEAT; round++) {
      note(scenario, 'direct', round, await measure((i) => backends[i % backends.length] ?? 0));
      if (nginx.ok) {
        const port = await freeUdpPort();
        const child = await startNginx(port, backends, scenario);
        const result = await measure(() => port, child.pid);
        await stop(child);
        note(scenario, `nginx ${WORKERS}w`, round, result);
      } else {
        note(scenario, `nginx ${WORKERS}w`, round, undefined);
      }
      if (values.floor && !scenario.oneReply) {
        const port = await freeUdpPort();
        const child = await startNodeRelay(port, backends);
        const result = await measure(() => port, child.pid);
        await stop(child);
        note(scenario, 'node relay', round, result);
      }
      const port = await freeUdpPort();
      const profileDir = values['cpu-prof'] === undefined ? undefined : path.resolve(values['cpu-prof'], `${scenario.oneReply ? 'one' : 'long'}-${round}`);
      const child = await startSluice(port, backends, scenario, profileDir);
      const result = await measure(() => port, child.pid);
      await stop(child);
      note(scenario, `sluice ${WORKERS}w`, round, result);
      if (profileDir !== undefined) printHottest(profileDir, `${scenario.name} #${round}`);
    }
  }
  const report = render(rows, { nginx: nginx.ok ? nginx.version : nginx.reason, loadBefore, loadAfter: loadavg() });
  writeGenerated(values.out, report);
  process.stdout.write(report);
  log(`wrote ${values.out}`);
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

/** Self time per function of the data-plane worker's profile (the one that ran udp-proxy.ts), hottest first. */
function printHottest(dir: string, label: string): void {
  for (const file of existsSync(dir) ? readdirSync(dir) : []) {
    const profile = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as { nodes: ProfileNode[]; samples?: number[] };
    if (!profile.nodes.some((n) => n.callFrame.url.endsWith('udp-proxy.ts'))) continue;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const counts = new Map<string, number>();
    const samples = profile.samples ?? [];
    for (const id of samples) {
      const f = byId.get(id)?.callFrame;
      if (f === undefined) continue;
      const name = `${f.functionName || '(anonymous)'}${f.url === '' ? '' : ` ${f.url.replace(/^.*\/(node:)?/, '')}:${f.lineNumber + 1}`}`;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    process.stderr.write(`\n${label}: ${path.join(dir, file)} (${samples.length} samples), self time\n`);
    for (const [name, n] of [...counts.entries()].sort((x, y) => y[1] - x[1]).slice(0, 30)) {
      process.stderr.write(`${((n / Math.max(1, samples.length)) * 100).toFixed(1).padStart(5)}%  ${name}\n`);
    }
  }
}

function render(rows: readonly Row[], env: { nginx: string; loadBefore: number[]; loadAfter: number[] }): string {
  const fmt = (n: number, digits = 0): string =>
    !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const lines: string[] = [];
  const rounds: string[] = [];
  for (const scenario of SCENARIOS) {
    const of = (prefix: string): Measurement[] =>
      rows.filter((r) => r.scenario === scenario.name && r.target.startsWith(prefix) && r.result !== undefined).map((r) => r.result as Measurement);
    const pick = (ms: readonly Measurement[], f: (m: Measurement) => number | undefined): number =>
      median(ms.map(f).filter((x): x is number => x !== undefined));
    // Ratios pair the targets of one round (measured minutes apart at most), then take the median.
    const ratios = (a: string, b: string, f: (m: Measurement) => number | undefined): number[] => {
      const out: number[] = [];
      for (let round = 1; round <= REPEAT; round++) {
        const at = (prefix: string): Measurement | undefined =>
          rows.find((r) => r.scenario === scenario.name && r.round === round && r.target.startsWith(prefix))?.result;
        const x = at(a);
        const y = at(b);
        const fx = x === undefined ? undefined : f(x);
        const fy = y === undefined ? undefined : f(y);
        if (fx !== undefined && fy !== undefined && fy > 0) out.push(fx / fy);
      }
      return out;
    };
    const [direct, nginx, sluice] = [of('direct'), of('nginx'), of('sluice')];
    const rate = (m: Measurement): number => m.requestsPerSecond;
    const cpu = (m: Measurement): number | undefined => m.cpuUsPerDatagram;
    const vsNginx = ratios('sluice', 'nginx', rate);
    const cpuVsNginx = ratios('sluice', 'nginx', cpu);
    const lat = (ms: readonly Measurement[]): string =>
      ms.length === 0 ? '–' : `${fmt(pick(ms, (m) => m.p50Us))} / ${fmt(pick(ms, (m) => m.p99Us))}`;
    lines.push(
      `| ${scenario.name} | ${fmt(pick(direct, rate))} | ${fmt(pick(nginx, rate))} | ${fmt(pick(sluice, rate))} | ` +
        `${fmt(median(ratios('sluice', 'direct', rate)), 2)} | **${fmt(median(vsNginx), 2)}** | ` +
        `${fmt(pick(nginx, cpu), 1)} | ${fmt(pick(sluice, cpu), 1)} | ${fmt(median(cpuVsNginx), 2)} | ` +
        `${lat(direct)} | ${lat(nginx)} | ${lat(sluice)} |`,
    );
    const relay = of('node relay');
    if (relay.length > 0) {
      rounds.push(
        `- ${scenario.name}, the bare Node dgram relay (--floor): ${fmt(pick(relay, rate))}/s, ${fmt(pick(relay, cpu), 1)} CPU µs/datagram, ` +
          `÷ nginx ${fmt(median(ratios('node relay', 'nginx', rate)), 2)} (CPU ${fmt(median(ratios('node relay', 'nginx', cpu)), 2)}).`,
      );
    }
    if (REPEAT > 1) {
      rounds.push(
        `- ${scenario.name}, per round: sluice ÷ nginx ${vsNginx.map((r) => r.toFixed(2)).join(' · ')}; ` +
          `CPU per datagram sluice ÷ nginx ${cpuVsNginx.map((r) => r.toFixed(2)).join(' · ')}.`,
      );
    }
  }
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const lostBy = new Map<string, number>();
  for (const r of rows) {
    const key = `${r.target} ${r.scenario.split(' ')[0] ?? ''}`;
    lostBy.set(key, (lostBy.get(key) ?? 0) + (r.result?.lost ?? 0));
  }
  return `## UDP request-response (\`node bench/udp.ts\`)

Datagrams per second answered, ${CLIENTS} closed-loop clients (send, wait for the echo, send
the next), ${SIZE}-byte datagrams, ${SECONDS} s per target after a ${WARMUP_MS} ms warm-up, two
Node echo backends, everything on 127.0.0.1. nginx \`stream\` and Sluice both run
${WORKERS} worker${WORKERS === 1 ? '' : 's'}; "direct" sends each client straight to one of
the backends. ${REPEAT > 1 ? `${REPEAT} rounds per scenario (direct, nginx, Sluice, in turn); every column is the median over the rounds, ratios the median of each round's ratio. ` : ''}CPU µs/datagram: user + system CPU time of the proxy's whole process
tree over the measured window, divided by the datagrams answered (lower is better). Latency
columns are p50 / p99 round trip in µs.

| scenario | direct /s | nginx /s | sluice /s | sluice ÷ direct | sluice ÷ nginx | nginx CPU µs/dgram | sluice CPU µs/dgram | CPU sluice ÷ nginx | direct p50/p99 | nginx p50/p99 | sluice p50/p99 |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${lines.join('\n')}

${rounds.length > 0 ? `${rounds.join('\n')}\n` : ''}- long sessions: every client keeps one source port, so the proxies keep one session (one
  backend socket) per client: nginx until \`proxy_timeout\`, Sluice with \`max_replies: 0\`.
- one reply per session: nginx \`proxy_responses 1\`, Sluice \`max_replies: 1\`; each
  request creates and ends a session in the proxy.
- "direct" is the same workload in both rows (the proxies' settings do not touch it): the
  gap between its two numbers shows how noisy this run was.
- Lost (no reply within ${LOSS_TIMEOUT_MS} ms, counted and resent, all rounds): ${[...lostBy.entries()].map(([k, n]) => `${k} ${n}`).join(', ')}.

Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, nginx
${env.nginx}, Sluice ${pkg.version}. Load average before / after: ${env.loadBefore.map((l) => l.toFixed(2)).join(' ')} /
${env.loadAfter.map((l) => l.toFixed(2)).join(' ')}. The load generator, the backends and the proxy share
these cores, so the ratios matter more than the absolute numbers.
`;
}


if (import.meta.main) {
  try {
    await main();
  } finally {
    await stopAll();
    clearTimeout(deadline);
  }
}
