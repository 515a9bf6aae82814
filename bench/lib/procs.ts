/**
 * The processes a bench run starts: each is spawned with its output in a log file, tracked
 * by pid, and stopped by that pid (and the pids of its children, for nginx's workers) when
 * the run ends, whether it ends normally, by an error or by Ctrl-C. Nothing is ever
 * stopped by name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface Started {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  readonly exited: Promise<number | string>;
}

export interface SpawnOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

const STOP_GRACE_MS = 5_000;

export class ProcessGroup {
  private readonly running = new Map<number, Started>();
  private readonly logDir: string;
  private readonly names = new Map<string, number>();

  constructor(logDir: string) {
    this.logDir = logDir;
  }

  start(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): Started {
    // A name may be started again (fresh instances per round): each start gets its own log.
    const seen = (this.names.get(name) ?? 0) + 1;
    this.names.set(name, seen);
    const logFile = path.join(this.logDir, seen === 1 ? `${name}.log` : `${name}.${seen}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawn(command, args, {
      stdio: ['ignore', fd, fd],
      env: options.env ?? process.env,
      cwd: options.cwd ?? this.logDir,
    });
    closeSync(fd);
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${name}: could not start ${command}`);
    const exited = new Promise<number | string>((resolve) => {
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    });
    const started: Started = { name, pid, child, logFile, exited };
    this.running.set(pid, started);
    void exited.then(() => this.running.delete(pid));
    return started;
  }

  /** Stop one process: its children first (by pid), then it; SIGKILL after a grace time. */
  async stop(started: Started, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const children = descendantPids(started.pid);
    if (started.child.exitCode === null && started.child.signalCode === null) {
      started.child.kill(signal);
      const done = await Promise.race([started.exited.then(() => true), delay(STOP_GRACE_MS).then(() => false)]);
      if (!done) {
        started.child.kill('SIGKILL');
        await started.exited;
      }
    }
    // nginx's workers leave with their master; anything left behind is ours to end.
    for (const pid of children) killIfAlive(pid);
  }

  find(pid: number): Started | undefined {
    return this.running.get(pid);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.running.values()].map(async (s) => this.stop(s)));
  }

  /** Synchronous last resort for process exit: SIGKILL every pid still running. */
  killAllNow(): void {
    for (const started of this.running.values()) {
      for (const pid of descendantPids(started.pid)) killIfAlive(pid);
      killIfAlive(started.pid);
    }
  }

  tail(started: Started, lines = 20): string {
    try {
      return readFileSync(started.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}

function killIfAlive(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** Every process below `pid` (children of all its threads, recursively), from /proc. */
export function descendantPids(pid: number): number[] {
  const found: number[] = [];
  const queue = [pid];
  for (let guard = 0; queue.length > 0 && guard < 10_000; guard++) {
    const current = queue.shift() ?? 0;
    for (const child of childPids(current)) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function childPids(pid: number): number[] {
  const result: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return result;
  }
  for (const task of tasks) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (text !== '') for (const p of text.split(/\s+/)) result.push(Number(p));
    } catch {
      // The thread ended while we looked.
    }
  }
  return result;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolve once something listens on TCP `port` (any address), read from /proc/net/tcp so
 * that waiting does not open a connection (an iperf3 server counts a bare connect as a
 * failed test). Rejects after `timeoutMs`, or as soon as `alive` exits.
 */
export async function waitForListen(port: number, timeoutMs = 15_000, alive?: Started): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (isListening(port)) return;
    if (alive !== undefined && (alive.child.exitCode !== null || alive.child.signalCode !== null)) {
      throw new Error(`${alive.name} exited before it listened on port ${port} (see ${alive.logFile})`);
    }
    if (Date.now() > deadline) throw new Error(`nothing listened on port ${port} within ${timeoutMs} ms`);
    await delay(50);
  }
}

const TCP_LISTEN = '0A';

export function isListening(port: number): boolean {
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] === TCP_LISTEN && fields[1]?.endsWith(`:${portHex}`) === true) return true;
    }
  }
  return false;
}

/**
 * Ports below the kernel's ephemeral range that nothing has bound on 127.0.0.1. Not the
 * kernel's own choice (port 0): that comes from the ephemeral range, which the bench's
 * thousands of client connections also draw from, so a listener could lose its port to
 * an outgoing connection between being chosen and being bound.
 */
export async function freePorts(count: number): Promise<number[]> {
  const [low] = ephemeralRange();
  const floor = 10_000;
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count && attempt < 1000; attempt++) {
    const port = floor + Math.floor(Math.random() * (low - floor));
    if (ports.includes(port) || claimed.has(port)) continue;
    if (await canBind(port)) {
      ports.push(port);
      claimed.add(port);
    }
  }
  if (ports.length < count) throw new Error(`found only ${ports.length} of ${count} free ports below ${low}`);
  return ports;
}

/** Ports handed out in this run: never handed out twice, even after their process stopped. */
const claimed = new Set<number>();

function ephemeralRange(): [number, number] {
  try {
    const [low = 32_768, high = 60_999] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return [low, high];
  } catch {
    return [32_768, 60_999];
  }
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
