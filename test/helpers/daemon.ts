/**
 * Run the real daemon (src/cli.ts on this Node) on a config written to a temp file, and
 * read its JSON log lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

export interface Daemon {
  readonly child: ChildProcess;
  /** The config file the daemon runs on (rewrite it and send SIGHUP to reload). */
  readonly configFile: string;
  readonly adminUrl: string;
  readonly logs: LogLine[];
  readonly stderr: () => string;
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Send a signal and resolve with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

export function writeConfig(yaml: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-test-'));
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, yaml);
  return file;
}

export function runCli(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
}

/** How long a command or a start-up expected to fail may run before it is killed. */
const RUN_TO_EXIT_LIMIT_MS = 30_000;

/**
 * Run the CLI until it exits (a command, or a daemon expected to fail at start-up). One that
 * does not exit within the limit, such as a daemon that started after all, is killed (code
 * null), so a regression fails the test instead of leaving a daemon behind.
 */
export async function runToExit(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = runCli(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const limit = setTimeout(() => child.kill('SIGKILL'), RUN_TO_EXIT_LIMIT_MS);
  // 'close', not 'exit': 'exit' may come before the last of stdout and stderr is read.
  const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)));
  clearTimeout(limit);
  return { code, stdout, stderr };
}

/** What a test reads of a Sluice process: its JSON log lines (as they arrive) and stderr. */
export interface FollowedProcess {
  readonly logs: LogLine[];
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
  /** Resolves with the first line `predicate` accepts; rejects if the process exits first or on the bound. */
  readonly waitForLog: (predicate: (line: LogLine) => boolean, timeoutMs?: number) => Promise<LogLine>;
}

export function followLogs(child: ChildProcess, name: string, defaultTimeoutMs: number): FollowedProcess {
  const logs: LogLine[] = [];
  let stderr = '';
  const watchers = new Set<() => void>();
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        logs.push({ level: 0, msg: line });
      }
    }
    for (const watcher of watchers) watcher();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  // 'close' (every stdio stream read to its end), not 'exit': after 'exit' the last log lines
  // may still be unread, and a test that reads them once the process has exited would miss them.
  let closed = false;
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      closed = true;
      resolve(code);
    }),
  );
  const waitForLog = (predicate: (line: LogLine) => boolean, timeoutMs = defaultTimeoutMs): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = logs.find(predicate);
        if (found === undefined) return;
        cleanup();
        resolve(found);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`log line not seen in ${timeoutMs} ms; stderr: ${stderr}`));
      }, timeoutMs);
      const onExit = (): void => {
        check();
        cleanup();
        reject(new Error(`the ${name} exited before the log line; stderr: ${stderr}`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        watchers.delete(check);
        child.removeListener('close', onExit);
      };
      watchers.add(check);
      if (closed) onExit();
      else child.once('close', onExit);
      check();
    });
  return { logs, stderr: () => stderr, exited, waitForLog };
}

export interface DaemonOptions {
  /** Extra environment variables (e.g. SLUICE_FAULT_INJECTION=1). */
  readonly env?: Record<string, string>;
  /** Extra arguments after `run --config FILE` (e.g. --takeover). */
  readonly args?: readonly string[];
  /** Run on this existing config file instead of writing `yaml` to a new one. */
  readonly configFile?: string;
}

/** Start the daemon and wait for its start-up line (or its exit). */
export async function startDaemon(yaml: string, adminPort: number, options: DaemonOptions = {}): Promise<Daemon> {
  const configFile = options.configFile ?? writeConfig(yaml);
  const child = runCli(['run', '--config', configFile, '--log-level', 'info', ...(options.args ?? [])], options.env);
  const { logs, stderr, waitForLog, exited } = followLogs(child, 'daemon', 15_000);

  const daemon: Daemon = {
    child,
    configFile,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    logs,
    stderr,
    waitForLog,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
  // A bound, not a measurement: four threads loading TypeScript and probing backends can
  // take many seconds on a loaded 2-core machine.
  await waitForLog((l) => l.msg === 'sluice started', 60_000);
  return daemon;
}

export function tcpConfig(options: {
  listenPort: number;
  adminPort: number;
  backends: string[];
  workers?: number | 'auto';
  connectTimeout?: string;
  idleTimeout?: string;
  drainTimeout?: string;
}): string {
  return `workers: ${options.workers ?? 'auto'}
admin:
  listen: 127.0.0.1:${options.adminPort}
shutdown:
  drain_timeout: ${options.drainTimeout ?? '5s'}
listeners:
  - name: web
    listen: 127.0.0.1:${options.listenPort}
    cluster: web
clusters:
  - name: web
    connect_timeout: ${options.connectTimeout ?? '2s'}
    idle_timeout: ${options.idleTimeout ?? '1m'}
    backends:
${options.backends.map((a) => `      - { address: ${a} }`).join('\n')}
`;
}

export function udpConfig(options: {
  listenPort: number;
  adminPort: number;
  backends: string[];
  workers?: number | 'auto';
  udp?: string;
  healthCheck?: string;
  /** Failed connects in a row that take a backend out (passive); default 5. */
  passiveFailures?: number;
  /** How long a draining backend keeps its connections and sessions; default 30s. */
  backendDrainTimeout?: string;
  drainTimeout?: string;
  /** Log every session to this file. */
  accessLogPath?: string;
}): string {
  return `workers: ${options.workers ?? 2}
admin:
  listen: 127.0.0.1:${options.adminPort}
shutdown:
  drain_timeout: ${options.drainTimeout ?? '5s'}
${options.accessLogPath === undefined ? '' : `access_log: {enabled: true, sampling: 1, path: ${options.accessLogPath}}\n`}listeners:
  - name: dns
    protocol: udp
    listen: 127.0.0.1:${options.listenPort}
    cluster: dns
    udp: ${options.udp ?? '{}'}
clusters:
  - name: dns
    health_check: ${options.healthCheck ?? '{type: none}'}
    passive: {consecutive_failures: ${options.passiveFailures ?? 5}}
    drain_timeout: ${options.backendDrainTimeout ?? '30s'}
    backends:
${options.backends.map((a) => `      - { address: ${a} }`).join('\n')}
`;
}
