/**
 * What the master (src/master/master.ts) does on each signal and child event: a pure
 * function of its state, so every case is a row in a table test.
 *
 * Invariants:
 * - At most one child is `current` (it gets SIGHUP) and at most one is `next` (an upgrade
 *   that is starting); `retiring` children were handed over and are draining.
 * - The master never starts a child on its own beyond an upgrade: a current child that dies
 *   makes the master exit (non-zero for a crash), so systemd's Restart= decides.
 * - The master exits only once no child is left, so systemd's view (the unit is up while
 *   its main PID lives) never hides a running Sluice.
 */

export type MasterSignal = 'SIGHUP' | 'SIGUSR1' | 'SIGUSR2' | 'SIGTERM' | 'SIGINT';

export interface MasterState {
  /** The child in charge: it gets SIGHUP. Undefined between its exit and the next one's readiness. */
  readonly current: number | undefined;
  /** The child an upgrade started (with --takeover), until it reports ready or exits. */
  readonly next: number | undefined;
  /** Children that handed their ports over and are draining. */
  readonly retiring: readonly number[];
  readonly stopping: boolean;
  /** The child in charge reported ready: an upgrade before that would race its start-up. */
  readonly ready: boolean;
  /**
   * An upgrade's child exited before it was ready. It may have got as far as asking the
   * current child to hand over, so a current child that then exits 0 has not been stopped
   * on purpose.
   */
  readonly upgradeFailed: boolean;
  /** What the master exits with once no child is left. */
  readonly exitCode: number;
}

export type MasterEvent =
  | { readonly type: 'signal'; readonly signal: MasterSignal }
  | { readonly type: 'spawned'; readonly pid: number }
  | { readonly type: 'ready'; readonly pid: number }
  | { readonly type: 'exit'; readonly pid: number; readonly code: number };

export type MasterAction =
  | { readonly type: 'forward'; readonly signal: NodeJS.Signals; readonly pids: readonly number[] }
  /** Start a child with --takeover, then report it with a `spawned` event. */
  | { readonly type: 'upgrade' }
  | { readonly type: 'log'; readonly level: 'info' | 'warn' | 'error'; readonly msg: string; readonly pid?: number; readonly code?: number }
  | { readonly type: 'exit'; readonly code: number };

export interface Decision {
  readonly state: MasterState;
  readonly actions: readonly MasterAction[];
}

export function initialState(pid: number): MasterState {
  return { current: pid, next: undefined, retiring: [], stopping: false, ready: false, upgradeFailed: false, exitCode: 0 };
}

const defined = (pids: readonly (number | undefined)[]): number[] => pids.filter((p): p is number => p !== undefined);

function onSignal(state: MasterState, signal: MasterSignal): Decision {
  switch (signal) {
    case 'SIGHUP':
      if (state.current === undefined) {
        return { state, actions: [{ type: 'log', level: 'warn', msg: 'reload: no child in charge during the upgrade; the new one reads the config file as it starts' }] };
      }
      return { state, actions: [{ type: 'forward', signal, pids: [state.current] }] };
    case 'SIGUSR1':
      // Draining children write access-log lines too; they must leave the rotated file.
      return { state, actions: [{ type: 'forward', signal, pids: defined([state.current, ...state.retiring]) }] };
    case 'SIGUSR2':
      if (state.stopping) return { state, actions: [{ type: 'log', level: 'warn', msg: 'upgrade refused: stopping' }] };
      if (state.next !== undefined) {
        return { state, actions: [{ type: 'log', level: 'warn', msg: 'upgrade refused: an upgrade is in progress', pid: state.next }] };
      }
      if (!state.ready) return { state, actions: [{ type: 'log', level: 'warn', msg: 'upgrade refused: the child has not reported ready yet' }] };
      return { state, actions: [{ type: 'log', level: 'info', msg: 'upgrade: starting a new child with --takeover' }, { type: 'upgrade' }] };
    case 'SIGTERM':
    case 'SIGINT': {
      // A second stop signal reaches the draining children too: for each it is then the
      // second, which ends it at once, as it does without the master.
      const pids = defined([state.current, state.next, ...(state.stopping ? state.retiring : [])]);
      const forward: MasterAction = { type: 'forward', signal, pids };
      return { state: { ...state, stopping: true }, actions: [forward, ...exitIfDone({ ...state, stopping: true })] };
    }
  }
}

function exitIfDone(state: MasterState): MasterAction[] {
  const done = state.current === undefined && state.next === undefined && state.retiring.length === 0;
  return done ? [{ type: 'exit', code: state.exitCode }] : [];
}

function onExit(state: MasterState, pid: number, code: number): Decision {
  if (pid === state.next && state.stopping) {
    const next: MasterState = { ...state, next: undefined, exitCode: state.current === undefined ? code : state.exitCode };
    return { state: next, actions: [{ type: 'log', level: 'info', msg: 'child stopped', pid, code }, ...exitIfDone(next)] };
  }
  if (pid === state.next) {
    const next: MasterState = { ...state, next: undefined, upgradeFailed: true, exitCode: state.current === undefined ? 1 : state.exitCode };
    const msg =
      state.current === undefined
        ? 'upgrade failed: the new child exited before it was ready, and the old one is gone; exiting'
        : 'upgrade failed: the new child exited before it was ready; the old one stays in charge';
    return { state: next, actions: [{ type: 'log', level: 'error', msg, pid, code }, ...exitIfDone(next)] };
  }
  if (pid === state.current) {
    if (state.next !== undefined) {
      // The old child handed over before the new one reported ready: the normal order when
      // the old one has no connections to drain.
      const next: MasterState = { ...state, current: undefined };
      return { state: next, actions: [{ type: 'log', level: 'info', msg: 'the old child exited during the upgrade', pid, code }] };
    }
    const exitCode = state.stopping || code !== 0 ? code : state.upgradeFailed ? 1 : 0;
    const next: MasterState = { ...state, current: undefined, exitCode };
    const msg = state.stopping
      ? 'child stopped'
      : code !== 0
        ? 'child exited on its own; exiting so that systemd restarts Sluice'
        : state.upgradeFailed
          ? 'child exited 0 after a failed upgrade had asked it to hand over; exiting 1'
          : 'child drained (POST /drain); exiting';
    return { state: next, actions: [{ type: 'log', level: exitCode === 0 ? 'info' : 'error', msg, pid, code }, ...exitIfDone(next)] };
  }
  if (state.retiring.includes(pid)) {
    const next: MasterState = { ...state, retiring: state.retiring.filter((p) => p !== pid) };
    return { state: next, actions: [{ type: 'log', level: code === 0 ? 'info' : 'warn', msg: 'the old child exited', pid, code }, ...exitIfDone(next)] };
  }
  return { state, actions: [{ type: 'log', level: 'warn', msg: 'an unknown child exited', pid, code }] };
}

export function decide(state: MasterState, event: MasterEvent): Decision {
  switch (event.type) {
    case 'signal':
      return onSignal(state, event.signal);
    case 'spawned':
      return { state: { ...state, next: event.pid }, actions: [] };
    case 'ready': {
      if (event.pid === state.current) return { state: { ...state, ready: true }, actions: [{ type: 'log', level: 'info', msg: 'child ready', pid: event.pid }] };
      if (event.pid !== state.next) return { state, actions: [{ type: 'log', level: 'warn', msg: 'an unknown child reported ready', pid: event.pid }] };
      const retiring = defined([...state.retiring, state.current]);
      const next: MasterState = { ...state, current: event.pid, next: undefined, retiring, ready: true, upgradeFailed: false };
      return { state: next, actions: [{ type: 'log', level: 'info', msg: 'upgrade: the new child is ready and in charge', pid: event.pid }] };
    }
    case 'exit':
      return onExit(state, event.pid, event.code);
    default:
      throw new Error(`unknown master event ${JSON.stringify(event satisfies never)}`);
  }
}
