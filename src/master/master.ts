/**
 * `sluice master --config FILE`: a small parent that stays the systemd unit's main PID
 * while the daemon under it is replaced (docs/operations.md, "Upgrades under systemd").
 *
 * It runs `bin/sluice run` as a child and passes signals on: SIGHUP (reload) and SIGUSR1
 * (log reopen) to the child, SIGTERM/SIGINT (drain) too, exiting with the child's code.
 * SIGUSR2 upgrades: a new child started from the files on disk takes the ports over from
 * the running one (`run --takeover`, src/supervisor/handover.ts) and is in charge once it
 * reports ready over the IPC channel; a new child that exits first leaves the old one in
 * charge. The master never touches client traffic and restarts nothing on its own: what to
 * do on which event is decided by decide.ts.
 *
 * The master's own code is loaded once: only a change to this file or decide.ts needs a
 * `systemctl restart`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { createLogger, flushLogs } from '../shared/logger.ts';
import { decide, initialState, type MasterAction, type MasterEvent, type MasterSignal, type MasterState } from './decide.ts';

/** What `sluice run` sends its parent over the IPC channel once every listener and the admin API are open. */
export const READY_MESSAGE = { type: 'sluice.ready' } as const;

const SIGNALS: readonly MasterSignal[] = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGTERM', 'SIGINT'];

export interface MasterOptions {
  readonly configFile: string;
  readonly logLevel: string;
  /** The `bin/sluice` to run for each child, found again at each start so new files take effect. */
  readonly sluiceBin: string;
}

/** A child's exit as one code, the shell's way: a signal N is 128 + N. */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal === null ? 0 : constants.signals[signal]);
}

function isReadyMessage(message: unknown): boolean {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === READY_MESSAGE.type;
}

/** Run until no child is left; resolves with the code the master exits with. */
export function runMaster(options: MasterOptions): Promise<number> {
  const log = createLogger(options.logLevel, { component: 'master' });
  const children = new Map<number, ChildProcess>();
  let state: MasterState | undefined;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (finish = resolve));
  const onSignal = (signal: MasterSignal): void => {
    apply({ type: 'signal', signal });
  };

  function apply(event: MasterEvent): void {
    if (state === undefined) return;
    const decision = decide(state, event);
    state = decision.state;
    for (const action of decision.actions) perform(action);
  }

  function perform(action: MasterAction): void {
    switch (action.type) {
      case 'forward':
        for (const pid of action.pids) children.get(pid)?.kill(action.signal);
        return;
      case 'upgrade': {
        const child = startChild(true);
        if (child !== undefined) apply({ type: 'spawned', pid: child });
        return;
      }
      case 'log': {
        const { level, msg, ...fields } = action;
        log[level]({ child: fields.pid, code: fields.code }, msg);
        return;
      }
      case 'exit':
        for (const signal of SIGNALS) process.removeListener(signal, onSignal);
        finish(action.code);
        return;
      default:
        throw new Error(`unknown master action ${JSON.stringify(action satisfies never)}`);
    }
  }

  function startChild(takeover: boolean): number | undefined {
    const args = ['run', '--config', options.configFile, '--log-level', options.logLevel, ...(takeover ? ['--takeover'] : [])];
    // stdout and stderr go straight to the master's (the journal): the master is not in the log path.
    const child = spawn(options.sluiceBin, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const { pid } = child;
    if (pid === undefined) {
      child.once('error', (error) => {
        log.error({ err: error, bin: options.sluiceBin }, takeover ? 'upgrade failed: cannot start a new child' : 'cannot start the child');
        if (!takeover) finish(1);
      });
      return undefined;
    }
    children.set(pid, child);
    child.on('message', (message) => {
      if (isReadyMessage(message)) apply({ type: 'ready', pid });
    });
    child.once('exit', (code, signal) => {
      children.delete(pid);
      apply({ type: 'exit', pid, code: exitCodeOf(code, signal) });
    });
    log.info({ child: pid, takeover }, 'child started');
    return pid;
  }

  for (const signal of SIGNALS) process.on(signal, onSignal);
  const first = startChild(false);
  if (first !== undefined) state = initialState(first);
  return finished.finally(flushLogs);
}
