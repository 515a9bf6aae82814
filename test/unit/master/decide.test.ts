import { describe, expect, it } from 'vitest';
import { decide, initialState, type MasterEvent, type MasterState } from '../../../src/master/decide.ts';

const OLD = 100;
const NEW = 200;
const DRAINING = 50;

const starting = initialState(OLD);
const running: MasterState = { ...starting, ready: true };
const upgrading: MasterState = { ...running, next: NEW };
const handedOver: MasterState = { ...running, current: NEW, retiring: [OLD] };
const oldGone: MasterState = { ...upgrading, current: undefined };
const failedUpgrade: MasterState = { ...running, upgradeFailed: true };
const stopping: MasterState = { ...running, stopping: true };

const signal = (s: 'SIGHUP' | 'SIGUSR1' | 'SIGUSR2' | 'SIGTERM' | 'SIGINT'): MasterEvent => ({ type: 'signal', signal: s });
const exit = (pid: number, code: number): MasterEvent => ({ type: 'exit', pid, code });

/** The actions without their log lines (asserted apart), so a row reads as what the master does. */
function effects(state: MasterState, event: MasterEvent): unknown[] {
  return decide(state, event).actions.filter((a) => a.type !== 'log');
}

describe('master decisions', () => {
  it.each<[string, MasterState, MasterEvent, unknown[]]>([
    ['SIGHUP reloads the child in charge', running, signal('SIGHUP'), [{ type: 'forward', signal: 'SIGHUP', pids: [OLD] }]],
    ['SIGHUP during an upgrade goes to the old child, still in charge', upgrading, signal('SIGHUP'), [{ type: 'forward', signal: 'SIGHUP', pids: [OLD] }]],
    ['SIGHUP with only a starting child is dropped (it reads the file as it starts)', oldGone, signal('SIGHUP'), []],
    ['SIGUSR1 reaches draining children too: they write access-log lines', { ...handedOver, retiring: [OLD, DRAINING] }, signal('SIGUSR1'), [{ type: 'forward', signal: 'SIGUSR1', pids: [NEW, OLD, DRAINING] }]],
    ['SIGUSR2 starts an upgrade', running, signal('SIGUSR2'), [{ type: 'upgrade' }]],
    ['SIGUSR2 while an upgrade runs is refused', upgrading, signal('SIGUSR2'), []],
    ['SIGUSR2 while stopping is refused', stopping, signal('SIGUSR2'), []],
    ['SIGUSR2 before the first child is ready is refused (it would race its start-up)', starting, signal('SIGUSR2'), []],
    ['SIGUSR2 while an old child still drains starts the next upgrade', handedOver, signal('SIGUSR2'), [{ type: 'upgrade' }]],
    ['SIGTERM drains the child in charge, not the ones already draining', handedOver, signal('SIGTERM'), [{ type: 'forward', signal: 'SIGTERM', pids: [NEW] }]],
    ['SIGTERM during an upgrade stops both children', upgrading, signal('SIGTERM'), [{ type: 'forward', signal: 'SIGTERM', pids: [OLD, NEW] }]],
    ['a second SIGTERM reaches the draining children: for them too it ends at once', { ...handedOver, stopping: true }, signal('SIGTERM'), [{ type: 'forward', signal: 'SIGTERM', pids: [NEW, OLD] }]],
    ['SIGINT is a stop signal like SIGTERM', running, signal('SIGINT'), [{ type: 'forward', signal: 'SIGINT', pids: [OLD] }]],
    ['the stopped child exits 0: the master exits 0', stopping, exit(OLD, 0), [{ type: 'exit', code: 0 }]],
    ['the stopped child exits 1 (drain cut short): the master exits 1', stopping, exit(OLD, 1), [{ type: 'exit', code: 1 }]],
    ['the child crashes: the master exits with its code, for Restart=on-failure', running, exit(OLD, 134), [{ type: 'exit', code: 134 }]],
    ['the child drains on POST /drain: the master exits 0', running, exit(OLD, 0), [{ type: 'exit', code: 0 }]],
    ['the child exits 0 after a failed upgrade asked it to hand over: exit 1, so systemd restarts', failedUpgrade, exit(OLD, 0), [{ type: 'exit', code: 1 }]],
    ['the old child exits before the new one is ready: wait for the new one', upgrading, exit(OLD, 0), []],
    ['the new child fails to start: the old one stays in charge', upgrading, exit(NEW, 1), []],
    ['the new child fails after the old one left: exit 1', oldGone, exit(NEW, 1), [{ type: 'exit', code: 1 }]],
    ['a retired child exits after its drain: the master keeps running', handedOver, exit(OLD, 0), []],
    ['the child in charge exits while a retired one drains: wait for it', { ...handedOver, stopping: true }, exit(NEW, 0), []],
    ['the last retired child exits while stopping: exit with the code of the child that was in charge', { ...stopping, current: undefined, retiring: [OLD], exitCode: 0 }, exit(OLD, 1), [{ type: 'exit', code: 0 }]],
    ['stopping during an upgrade: the new child stopped last decides the code', { ...oldGone, stopping: true }, exit(NEW, 0), [{ type: 'exit', code: 0 }]],
    ['an unknown pid changes nothing', running, exit(999, 1), []],
  ])('%s', (_name, state, event, expected) => {
    expect(effects(state, event)).toEqual(expected);
  });

  it.each<[string, MasterState, MasterEvent, Partial<MasterState>]>([
    ['a started upgrade child is next', running, { type: 'spawned', pid: NEW }, { current: OLD, next: NEW }],
    ['the new child ready: it is in charge, the old one retires', upgrading, { type: 'ready', pid: NEW }, { current: NEW, next: undefined, retiring: [OLD] }],
    ['the new child ready after the old one left', oldGone, { type: 'ready', pid: NEW }, { current: NEW, next: undefined, retiring: [] }],
    ['a ready upgrade clears an earlier failure', { ...failedUpgrade, next: NEW }, { type: 'ready', pid: NEW }, { current: NEW, upgradeFailed: false }],
    ['the first child ready allows upgrades', starting, { type: 'ready', pid: OLD }, running],
    ['a failed upgrade is remembered', upgrading, exit(NEW, 1), { current: OLD, next: undefined, upgradeFailed: true }],
    ['SIGTERM marks the master stopping', running, signal('SIGTERM'), { stopping: true }],
  ])('%s', (_name, state, event, expected) => {
    expect(decide(state, event).state).toMatchObject(expected);
  });

  it('logs why an upgrade failed, and which child', () => {
    expect(decide(upgrading, exit(NEW, 1)).actions).toContainEqual({
      type: 'log',
      level: 'error',
      msg: 'upgrade failed: the new child exited before it was ready; the old one stays in charge',
      pid: NEW,
      code: 1,
    });
  });
});
