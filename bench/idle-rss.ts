/**
 * Process memory of the daemon at idle (issue #18): the real daemon on the shipped
 * config.yaml (its listeners, clusters and health checks, with the demo's backends started
 * here on free ports instead of 9001-9003/9101-9102), with 2 data-plane workers. Reads
 * /proc/PID/smaps_rollup once ready, after a bounded load run (N short connections, each
 * one HTTP request and its answer), and again after an idle pause; also each data-plane
 * thread's V8 heap through GET /debug/resources. Prints one table.
 *
 *   node bench/idle-rss.ts [--workers 2] [--connections 20000] [--concurrency 64] [--idle 10s]
 *                          [--env K=V ...] [--cli PATH | --bin PATH] [--trace-modules] [--mappings] [--rounds 1]
 *
 * --env runs the daemon with extra environment variables (a lever under evaluation);
 * --cli runs another checkout's src/cli.ts (before/after on one machine);
 * --bin runs a launcher instead (bin/sluice: the memory settings it sets before the process
 * starts, as installs get them), with what --env adds on top;
 * --trace-modules prints, per thread, the project and package modules it loaded (a
 * resolve hook preloaded with --import). Worker threads started from eval'd code, as
 * src/supervisor/thread-modules.ts starts them, skip --import preloads: with it, only the
 * main thread is listed (run --cli against a checkout before it to see the workers).
 * --mappings prints the largest resident mappings at idle (/proc/PID/smaps), to tell
 * V8 heaps, shared buffers and malloc arenas apart.
 * --rounds N repeats the whole measurement with a fresh daemon and prints the medians.
 *
 * Not a test: RSS depends on the machine, the Node build and on what glibc keeps in its
 * arenas. Compare runs made on the same machine, one after the other.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/shared/duration.ts';
import { cpuSeconds } from './lib/proc-stats.ts';
import { freePorts } from './lib/procs.ts';

// Imported by `npm run bench` (bench/workloads/idle-rss.ts), whose argv is not this script's.
const { values } = parseArgs({
  ...(import.meta.main ? {} : { args: [] }),
  options: {
    workers: { type: 'string', default: '2' },
    connections: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '64' },
    idle: { type: 'string', default: '10s' },
    env: { type: 'string', multiple: true, default: [] },
    cli: { type: 'string', default: fileURLToPath(new URL('../src/cli.ts', import.meta.url)) },
    bin: { type: 'string' },
    'trace-modules': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
    mappings: { type: 'boolean', default: false },
  },
});
const WORKERS = Number(values.workers);
const CONNECTIONS = Number(values.connections);
const CONCURRENCY = Number(values.concurrency);
const IDLE_MS = parseDuration(values.idle);
const ROUNDS = Number(values.rounds);
const EXTRA_ENV = Object.fromEntries(
  values.env.map((pair) => {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`--env wants K=V, got ${pair}`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  }),
);
const SHIPPED_CONFIG = fileURLToPath(new URL('../config.yaml', import.meta.url));
const READY_TIMEOUT_MS = 30_000;
const POLL_MS = 100;
const REQUEST = 'GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n';

/**
 * Logs, per thread, every module resolved outside node: (the project's and packages'),
 * to stderr as `MODULE <threadId> <url>`. Synchronous hooks (Node 24) run in the thread
 * that imports, so each worker reports its own graph.
 */
const TRACE_HOOK = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from 'node:module';
import { threadId } from 'node:worker_threads';
import { writeSync } from 'node:fs';
registerHooks({ resolve(specifier, context, next) {
  const r = next(specifier, context);
  if (!r.url.startsWith('node:')) writeSync(2, 'MODULE ' + threadId + ' ' + r.url + '\\n');
  return r;
} });
`)}`;

export interface Rollup {
  readonly rssKiB: number;
  readonly pssKiB: number;
  readonly anonKiB: number;
  readonly sharedKiB: number;
  readonly threads: number;
}

/** /proc/PID/smaps_rollup: what the whole process (all its threads) holds resident. */
export function readRollup(pid: number): Rollup {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    rssKiB: field('Rss'),
    pssKiB: field('Pss'),
    anonKiB: field('Anonymous'),
    sharedKiB: field('Shared_Clean') + field('Shared_Dirty'),
    threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? NaN),
  };
}

/** The shipped config with every address moved to a free port and the worker count set. */
function benchConfig(ports: ReadonlyMap<number, number>, workers: number): string {
  const text = readFileSync(SHIPPED_CONFIG, 'utf8').replace(/^workers: .*$/m, `workers: ${workers}`);
  return text.replace(/127\.0\.0\.1:(\d+)/g, (whole, port: string) => {
    const moved = ports.get(Number(port));
    if (moved === undefined) throw new Error(`config.yaml names ${whole}, which this bench does not map`);
    return `127.0.0.1:${moved}`;
  });
}

function startHttpBackend(port: number): Promise<http.Server> {
  const server = http.createServer((_request, response) => response.end('ok\n'));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function startUdpEcho(port: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message, remote) => socket.send(message, remote.port, remote.address));
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, '127.0.0.1', () => resolve(socket));
  });
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url);
  const text = await response.text();
  return { status: response.status, body: text.startsWith('{') || text.startsWith('[') ? JSON.parse(text) : text };
}

async function waitReady(adminUrl: string, daemon: ChildProcess): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (daemon.exitCode !== null || daemon.signalCode !== null) throw new Error('the daemon exited before /readyz answered 200');
    try {
      if ((await getJson(`${adminUrl}/readyz`)).status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`/readyz not 200 within ${READY_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** One short connection: connect, one request, read to the proxy's close. */
function oneExchange(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answered = false;
    socket.once('connect', () => socket.end(REQUEST));
    socket.on('data', () => {
      answered = true;
    });
    socket.once('error', reject);
    socket.once('close', () => (answered ? resolve() : reject(new Error('closed without an answer'))));
  });
}

async function loadRun(port: number, total: number, concurrency: number): Promise<number> {
  let next = 0;
  let failures = 0;
  const lane = async (): Promise<void> => {
    while (next < total) {
      next++;
      await oneExchange(port).catch(() => {
        failures++;
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return failures;
}

async function heapsMiB(adminUrl: string): Promise<string> {
  const { body } = await getJson(`${adminUrl}/debug/resources`);
  const workers = (body as { workers?: { worker: number; heapUsedBytes: number }[] }).workers ?? [];
  return workers.map((w) => (w.heapUsedBytes / 2 ** 20).toFixed(1)).join(' / ');
}

export interface Row {
  readonly phase: string;
  readonly rollup: Rollup;
  readonly heaps: string;
}

/** What one measurement does; the script's defaults come from its command line. */
export interface IdleRssSettings {
  readonly workers: number;
  readonly connections: number;
  readonly concurrency: number;
  readonly idleMs: number;
  readonly cli: string;
  /** A launcher to run instead of node `cli` (bin/sluice: the settings installs get); it execs node, so the pid stays the daemon's. */
  readonly bin: string | undefined;
  readonly env: Readonly<Record<string, string>>;
  readonly traceModules: boolean;
  readonly mappings: boolean;
  /** The load run's summary line (the script prints it; the bench logs it). */
  readonly print: (line: string) => void;
}

const FROM_ARGS: IdleRssSettings = {
  workers: WORKERS,
  connections: CONNECTIONS,
  concurrency: CONCURRENCY,
  idleMs: IDLE_MS ?? Number.NaN,
  cli: values.cli,
  bin: values.bin,
  env: EXTRA_ENV,
  traceModules: values['trace-modules'],
  mappings: values.mappings,
  print: (line) => process.stdout.write(line),
};

/** One fresh daemon: RSS ready and idle, after the load run, and after the idle pause. */
export async function measureOnce(settings: IdleRssSettings = FROM_ARGS): Promise<Row[]> {
  // Every address of the shipped config, in order of first mention, moved to a free port.
  const shipped = [...new Set([...readFileSync(SHIPPED_CONFIG, 'utf8').matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1])))];
  const free = await freePorts(shipped.length);
  const ports = new Map(shipped.map((port, i) => [port, free[i] ?? 0]));
  const moved = (port: number): number => ports.get(port) ?? 0;
  const [web, admin] = [moved(8080), moved(9090)];
  const servers = await Promise.all([9001, 9002, 9003].map((p) => startHttpBackend(moved(p))));
  const echoes = await Promise.all([9101, 9102].map((p) => startUdpEcho(moved(p))));
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-idle-rss-'));
  const configFile = path.join(dir, 'config.yaml');
  writeFileSync(configFile, benchConfig(ports, settings.workers));
  const execArgs = settings.traceModules ? ['--import', TRACE_HOOK] : [];
  const args = ['run', '--config', configFile, '--log-level', 'warn'];
  const [command, argv] = settings.bin === undefined ? [process.execPath, [...execArgs, settings.cli, ...args]] : [settings.bin, args];
  const daemon = spawn(command, argv, {
    stdio: ['ignore', 'ignore', settings.traceModules ? 'pipe' : 'inherit'],
    env: { ...process.env, ...settings.env },
  });
  let traced = '';
  daemon.stderr?.on('data', (chunk: Buffer) => {
    traced += chunk.toString('utf8');
  });
  const pid = daemon.pid ?? 0;
  const adminUrl = `http://127.0.0.1:${admin}`;
  const rows: Row[] = [];
  try {
    await waitReady(adminUrl, daemon);
    // Health checks need `rise` probes before the web backends take connections.
    for (let i = 0; i < READY_TIMEOUT_MS / POLL_MS; i++) {
      const { body } = await getJson(`${adminUrl}/backends`);
      const healthy = (body as { cluster: string; state: string }[]).filter((b) => b.cluster === 'web' && b.state === 'healthy');
      if (healthy.length === 3) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    rows.push({ phase: 'ready (idle)', rollup: readRollup(pid), heaps: await heapsMiB(adminUrl) });
    if (settings.mappings) printMappings(pid);
    const cpuBefore = cpuSeconds(pid);
    const loadStart = performance.now();
    const failures = await loadRun(web, settings.connections, settings.concurrency);
    const loadSeconds = (performance.now() - loadStart) / 1000;
    // CPU per connection is the steadier number on a shared machine (bench/lib/proc-stats.ts).
    settings.print(
      `load run: ${(settings.connections / loadSeconds).toFixed(0)} conn/s, daemon CPU ${(((cpuSeconds(pid) - cpuBefore) * 1e6) / settings.connections).toFixed(0)} µs per connection\n`,
    );
    if (failures > 0) process.stderr.write(`load run: ${failures} of ${settings.connections} connections failed\n`);
    rows.push({ phase: `after ${settings.connections} conns`, rollup: readRollup(pid), heaps: await heapsMiB(adminUrl) });
    await new Promise((resolve) => setTimeout(resolve, settings.idleMs));
    rows.push({ phase: `after ${settings.idleMs / 1000}s idle`, rollup: readRollup(pid), heaps: await heapsMiB(adminUrl) });
  } finally {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      const exited = new Promise((resolve) => daemon.once('exit', resolve));
      daemon.kill('SIGTERM');
      await exited;
    }
    for (const s of servers) s.close();
    for (const s of echoes) s.close();
    rmSync(dir, { recursive: true, force: true });
  }
  if (settings.traceModules) printModules(traced);
  return rows;
}

/** The largest resident mappings: size, resident, anonymous and name (or [anon]). */
function printMappings(pid: number): void {
  const maps: { head: string; sizeKiB: number; rssKiB: number; anonKiB: number }[] = [];
  let current: (typeof maps)[number] | undefined;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^([0-9a-f]+-[0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      current = { head: header[2] || '[anon]', sizeKiB: 0, rssKiB: 0, anonKiB: 0 };
      maps.push(current);
      continue;
    }
    const field = /^(Size|Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (field === null || current === undefined) continue;
    if (field[1] === 'Size') current.sizeKiB = Number(field[2]);
    else if (field[1] === 'Rss') current.rssKiB = Number(field[2]);
    else current.anonKiB = Number(field[2]);
  }
  maps.sort((a, b) => b.rssKiB - a.rssKiB);
  process.stdout.write(`largest resident mappings (MiB): size rss anon name; ${maps.length} mappings\n`);
  for (const m of maps.slice(0, 25)) {
    process.stdout.write(`  ${mib(m.sizeKiB)} ${mib(m.rssKiB)} ${mib(m.anonKiB)} ${m.head}\n`);
  }
  const byName = new Map<string, number>();
  for (const m of maps) byName.set(m.head, (byName.get(m.head) ?? 0) + m.rssKiB);
  const named = [...byName].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([n, k]) => `${n} ${mib(k).trim()}`);
  process.stdout.write(`  resident by name: ${named.join('; ')}\n`);
}

/** Per thread: how many modules, and which packages (node_modules/NAME) it loaded. */
function printModules(traced: string): void {
  const byThread = new Map<string, Set<string>>();
  for (const line of traced.split('\n')) {
    const match = /^MODULE (\d+) (.*)$/.exec(line);
    if (match === null) continue;
    const [, thread = '', url = ''] = match;
    const set = byThread.get(thread) ?? new Set<string>();
    set.add(url);
    byThread.set(thread, set);
  }
  for (const [thread, urls] of byThread) {
    const packages = new Map<string, number>();
    let project = 0;
    for (const url of urls) {
      const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
      if (pkg === undefined) project++;
      else packages.set(pkg, (packages.get(pkg) ?? 0) + 1);
    }
    const list = [...packages].map(([name, n]) => `${name}(${n})`).join(' ');
    process.stdout.write(`thread ${thread}: ${project} project modules; packages: ${list || 'none'}\n`);
  }
}

function mib(kib: number): string {
  return (kib / 1024).toFixed(1).padStart(7);
}

function printTable(rows: readonly Row[], title: string): void {
  process.stdout.write(`${title}\n`);
  process.stdout.write(`${'phase'.padEnd(22)} ${'RSS'.padStart(7)} ${'PSS'.padStart(7)} ${'anon'.padStart(7)} ${'shared'.padStart(7)} threads  heap used per data-plane worker (MiB)\n`);
  for (const { phase, rollup, heaps } of rows) {
    process.stdout.write(
      `${phase.padEnd(22)} ${mib(rollup.rssKiB)} ${mib(rollup.pssKiB)} ${mib(rollup.anonKiB)} ${mib(rollup.sharedKiB)} ${String(rollup.threads).padStart(7)}  ${heaps}\n`,
    );
  }
}

function median(numbers: readonly number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

// Runnable as a script; `npm run bench` imports measureOnce.
if (import.meta.main) {
  const runs: Row[][] = [];
  for (let round = 0; round < ROUNDS; round++) runs.push(await measureOnce());
  const env = Object.keys(EXTRA_ENV).length === 0 ? '' : ` env ${values.env.join(' ')}`;
  const header = `sluice ${values.bin ?? values.cli}, ${WORKERS} workers, shipped config.yaml${env}; MiB from /proc/PID/smaps_rollup`;
  const first = runs[0] ?? [];
  if (ROUNDS === 1) printTable(first, header);
  else {
    const medians = first.map((row, i) => {
      const pick = (key: keyof Rollup): number => median(runs.map((r) => r[i]?.rollup[key] ?? NaN));
      return {
        phase: row.phase,
        rollup: { rssKiB: pick('rssKiB'), pssKiB: pick('pssKiB'), anonKiB: pick('anonKiB'), sharedKiB: pick('sharedKiB'), threads: pick('threads') },
        heaps: runs.map((r) => r[i]?.heaps ?? '').join(' | '),
      };
    });
    printTable(medians, `${header}; medians of ${ROUNDS} rounds`);
  }
}
