/**
 * What access logging costs the proxy: two daemons on the same config side by side, one
 * with `access_log: {enabled: false}`, one with `{enabled: true, path: FILE}`, driven in
 * alternating rounds by the same short-connection load (connect, send, read the echo,
 * close), which is the worst case for a per-connection log line. Prints connections per
 * second and daemon CPU per connection for each, and the ratios.
 *
 *   node bench/access-log-cost.ts [--slice 1] [--rounds 15] [--concurrency 32] [--workers 1] [--payload 64] [--sampling 1] [--pin] [--aa]
 *
 * --pin (Linux, taskset): daemons on CPU 1, this load generator and the backend on CPU 0,
 * so the daemon under test never shares a core with the load it is measured under.
 * --aa: both daemons run with the access log off (an A/A run): the ratios it prints are
 * the noise floor of this machine, to read the A/B ratios against.
 *
 * Not a test: numbers depend on the machine and on what else runs on it. Short slices in
 * alternating order (off,on then on,off) make background load hit both variants alike;
 * the summary compares totals over all slices and gives the median of the per-round
 * ratios. CPU per connection (utime+stime of the whole daemon process from /proc) is less
 * sensitive to other load than the rate is.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    slice: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '15' },
    concurrency: { type: 'string', default: '32' },
    workers: { type: 'string', default: '1' },
    payload: { type: 'string', default: '64' },
    sampling: { type: 'string', default: '1' },
    pin: { type: 'boolean', default: false },
    aa: { type: 'boolean', default: false },
  },
});
const DURATION_MS = Number(values.slice) * 1000;
const ROUNDS = Number(values.rounds);
const CONCURRENCY = Number(values.concurrency);
const WORKERS = Number(values.workers);
const PAYLOAD = Buffer.alloc(Number(values.payload), 0x61);
const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const TICKS_PER_SECOND = 100; // USER_HZ on Linux
const PIN = values.pin;

/** The command line, pinned to `cpu` when --pin is given. */
function command(cpu: number, args: string[]): [string, string[]] {
  return PIN ? ['taskset', ['-c', String(cpu), ...args]] : [args[0] ?? '', args.slice(1)];
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** An echo backend in its own process, so it does not share the load generator's loop. */
async function startEchoBackend(): Promise<{ port: number; child: ChildProcess }> {
  const script = `const s = require('node:net').createServer((c) => { c.on('error', () => c.destroy()); c.pipe(c); });
s.listen(0, '127.0.0.1', () => console.log(s.address().port));`;
  const [file, args] = command(0, [process.execPath, '-e', script]);
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  return { port, child };
}

interface Daemon {
  readonly name: string;
  readonly port: number;
  readonly child: ChildProcess;
  readonly accessLog: string | undefined;
}

async function startDaemon(name: string, backendPort: number, accessLog: string | undefined): Promise<Daemon> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-bench-'));
  const file = path.join(dir, 'config.yaml');
  writeFileSync(
    file,
    `workers: ${WORKERS}
admin: {listen: 127.0.0.1:${adminPort}}
access_log: ${accessLog === undefined ? '{enabled: false}' : `{enabled: true, sampling: ${values.sampling}, path: ${accessLog}}`}
listeners: [{name: bench, listen: 127.0.0.1:${port}, cluster: echo}]
clusters: [{name: echo, backends: [{address: 127.0.0.1:${backendPort}}]}]
`,
  );
  const [bin, args] = command(1, [process.execPath, CLI, 'run', '--config', file, '--log-level', 'warn']);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout.resume();
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const response = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${name}: daemon did not start`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // The admin port answers before the workers listen; give them a moment.
  await new Promise((resolve) => setTimeout(resolve, 500));
  return { name, port, child, accessLog };
}

/** utime + stime from a /proc stat file, in seconds. */
function statCpuSeconds(file: string): number {
  const stat = readFileSync(file, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** CPU of the whole daemon process, and of its data-plane threads alone. */
function cpuSeconds(pid: number): { process: number; dataPlane: number } {
  let dataPlane = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').startsWith('sluice-dataplan')) dataPlane += statCpuSeconds(`/proc/${pid}/task/${tid}/stat`);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return { process: statCpuSeconds(`/proc/${pid}/stat`), dataPlane };
}

function oneConnection(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let received = 0;
    socket.on('connect', () => socket.write(PAYLOAD));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= PAYLOAD.length) socket.end();
    });
    socket.on('error', () => resolve(false));
    socket.on('close', () => resolve(received >= PAYLOAD.length));
  });
}

interface Slice {
  readonly connections: number;
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly dataPlaneCpuSeconds: number;
  readonly failed: number;
}

async function load(daemon: Daemon): Promise<Slice> {
  const stopAt = Date.now() + DURATION_MS;
  let ok = 0;
  let failed = 0;
  const cpuBefore = cpuSeconds(daemon.child.pid ?? 0);
  const started = performance.now();
  const lane = async (): Promise<void> => {
    while (Date.now() < stopAt) {
      if (await oneConnection(daemon.port)) ok++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  const cpuAfter = cpuSeconds(daemon.child.pid ?? 0);
  return {
    connections: ok,
    seconds: (performance.now() - started) / 1000,
    cpuSeconds: cpuAfter.process - cpuBefore.process,
    dataPlaneCpuSeconds: cpuAfter.dataPlane - cpuBefore.dataPlane,
    failed,
  };
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function rate(s: Slice): number {
  return s.connections / s.seconds;
}

function cpuPerConnUs(s: Slice): number {
  return (s.cpuSeconds / Math.max(s.connections, 1)) * 1e6;
}

function dataPlaneCpuPerConnUs(s: Slice): number {
  return (s.dataPlaneCpuSeconds / Math.max(s.connections, 1)) * 1e6;
}

function sum(slices: readonly Slice[]): Slice {
  return slices.reduce(
    (a, s) => ({
      connections: a.connections + s.connections,
      seconds: a.seconds + s.seconds,
      cpuSeconds: a.cpuSeconds + s.cpuSeconds,
      dataPlaneCpuSeconds: a.dataPlaneCpuSeconds + s.dataPlaneCpuSeconds,
      failed: a.failed + s.failed,
    }),
    { connections: 0, seconds: 0, cpuSeconds: 0, dataPlaneCpuSeconds: 0, failed: 0 },
  );
}

if (PIN) spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
const backend = await startEchoBackend();
const logFile = path.join(mkdtempSync(path.join(tmpdir(), 'sluice-bench-log-')), 'access.log');
const off = await startDaemon('off', backend.port, undefined);
const on = await startDaemon('on', backend.port, values.aa ? undefined : logFile);
const offSlices: Slice[] = [];
const onSlices: Slice[] = [];
try {
  process.stdout.write(
    `access-log cost: ${ROUNDS} rounds of ${DURATION_MS / 1000}s per variant, ${CONCURRENCY} concurrent short connections of ${PAYLOAD.length} B, ${WORKERS} data-plane worker(s), sampling ${values.sampling}${PIN ? ', daemons pinned to CPU 1' : ''}${values.aa ? ', A/A: access log off in both' : ''}\n`,
  );
  // Warm both up (JIT, connection paths) before measuring.
  await load(off);
  await load(on);
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [off, on] : [on, off];
    for (const daemon of order) (daemon === off ? offSlices : onSlices).push(await load(daemon));
    const a = offSlices[round];
    const b = onSlices[round];
    if (a === undefined || b === undefined) continue;
    process.stdout.write(
      `  round ${String(round + 1).padStart(2)}: off ${rate(a).toFixed(0)} conn/s ${cpuPerConnUs(a).toFixed(1)} µs/conn | on ${rate(b).toFixed(0)} conn/s ${cpuPerConnUs(b).toFixed(1)} µs/conn\n`,
    );
  }
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const lines = values.aa ? 0 : readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '').length;
  const a = sum(offSlices);
  const b = sum(onSlices);
  const rateRatios = offSlices.map((s, i) => rate(onSlices[i] ?? s) / rate(s));
  const cpuRatios = offSlices.map((s, i) => cpuPerConnUs(onSlices[i] ?? s) / cpuPerConnUs(s));
  const dataPlaneRatios = offSlices.map((s, i) => dataPlaneCpuPerConnUs(onSlices[i] ?? s) / dataPlaneCpuPerConnUs(s));
  const describe = (x: Slice): string =>
    `${rate(x).toFixed(0)} conn/s, ${cpuPerConnUs(x).toFixed(1)} µs daemon CPU/conn (data-plane thread ${dataPlaneCpuPerConnUs(x).toFixed(1)} µs), ${x.failed} failed`;
  process.stdout.write(`total off: ${describe(a)}\n`);
  process.stdout.write(`total on : ${describe(b)}; ${lines} access log lines\n`);
  process.stdout.write(
    `on/off throughput: ${(rate(b) / rate(a)).toFixed(3)} over all slices, median per round ${median(rateRatios).toFixed(3)}\n` +
      `on/off CPU per connection: ${(cpuPerConnUs(b) / cpuPerConnUs(a)).toFixed(3)} over all slices, median per round ${median(cpuRatios).toFixed(3)}\n` +
      `on/off data-plane thread CPU per connection: ${(dataPlaneCpuPerConnUs(b) / dataPlaneCpuPerConnUs(a)).toFixed(3)} over all slices, median per round ${median(dataPlaneRatios).toFixed(3)}\n`,
  );
} finally {
  off.child.kill('SIGKILL');
  on.child.kill('SIGKILL');
  backend.child.kill('SIGKILL');
}
