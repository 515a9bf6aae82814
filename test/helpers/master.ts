/**
 * Run `sluice master` (src/master/master.ts) on a config written to a temp file, and read
 * the JSON log lines of the master and its children (they share its stdout).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, followLogs, writeConfig, type LogLine } from './daemon.ts';

export interface Master {
  readonly child: ChildProcess;
  readonly configFile: string;
  readonly logs: LogLine[];
  readonly exited: Promise<number | null>;
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** The pids of every daemon the master started, in order. */
  childPids(): number[];
  /** SIGKILL the master and every child it started (test cleanup). */
  kill(): Promise<void>;
}

export interface MasterOptions {
  /** The command line for a config file (default: the CLI on this Node, `master --config FILE`). */
  readonly command?: (configFile: string) => string[];
  /** Wait for the master to log its child ready (default true). */
  readonly waitReady?: boolean;
}

export async function startMaster(yaml: string, options: MasterOptions = {}): Promise<Master> {
  const configFile = writeConfig(yaml);
  const [command, ...args] = options.command?.(configFile) ?? [process.execPath, CLI, 'master', '--config', configFile, '--log-level', 'info'];
  const child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const { logs, waitForLog, exited } = followLogs(child, 'master', 60_000);

  const childPids = (): number[] => logs.filter((l) => l['component'] === 'master' && l.msg === 'child started').map((l) => l['child'] as number);
  const master: Master = {
    child,
    configFile,
    logs,
    exited,
    waitForLog,
    childPids,
    kill: async () => {
      for (const pid of [...childPids(), child.pid ?? 0]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      await exited;
    },
  };
  if (options.waitReady !== false) await waitForLog((l) => l['component'] === 'master' && l.msg === 'child ready');
  return master;
}

/** Whether a process is alive (signal 0 probes without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
