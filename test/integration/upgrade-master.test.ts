/**
 * `sluice master` as the unit's main PID (src/master/master.ts): an upgrade signal replaces
 * the daemon under it without a failed connection, and reload, stop and a failed upgrade
 * behave as systemd expects. Real processes: the master runs bin/sluice for each child.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { clientLoop, eventually, getJson, openEcho, roundTrip } from '../helpers/client.ts';
import { tcpConfig, type LogLine } from '../helpers/daemon.ts';
import { alive, startMaster, type Master } from '../helpers/master.ts';
import { freePorts } from '../helpers/ports.ts';
import { enableAcceptQueueMigration } from '../helpers/sysctl.ts';
import { UNIT_TEXT, unitCommand, unitKey } from '../helpers/unit-file.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function echoBackends(n: number): Promise<TestBackend[]> {
  const started = await Promise.all(Array.from({ length: n }, async () => startBackend('echo')));
  for (const b of started) cleanups.push(async () => b.close());
  return started;
}

async function master(...args: Parameters<typeof startMaster>): Promise<Master> {
  const started = await startMaster(...args);
  cleanups.push(async () => started.kill());
  return started;
}

function run(argv: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  const [command, ...args] = argv;
  const child = spawn(command!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

const fromMaster = (msg: string) => (l: LogLine): boolean => l['component'] === 'master' && l.msg === msg;

describe('sluice master', () => {
  it('an upgrade signal hands over to a new child under 8 client lanes with zero failed connections; the master keeps its PID; SIGHUP then reloads the new child; SIGTERM drains and exits 0', async () => {
    cleanups.push(enableAcceptQueueMigration());
    const [first, second] = await echoBackends(2);
    const [port, adminPort] = await freePorts(2);
    const yaml = tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: [first!.address], workers: 2 });
    const m = await master(yaml);
    const masterPid = m.child.pid!;
    const [oldChild] = m.childPids();

    const loop = clientLoop(port!, 8);
    m.child.kill('SIGUSR2');
    const ready = await m.waitForLog(fromMaster('upgrade: the new child is ready and in charge'));
    const newChild = ready['child'] as number;
    // The old child's exit, whether before or after the new one reported ready.
    const oldExit = await m.waitForLog((l) => l['component'] === 'master' && l['child'] === oldChild && /^the old child exited/.test(l.msg));
    const { ok, failed } = await loop.stop();

    console.log(`upgrade under the master: ${ok} connections succeeded, ${failed.length} failed`);
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    expect(oldExit['code']).toBe(0);
    expect(alive(oldChild!)).toBe(false);
    expect(newChild).not.toBe(oldChild);
    expect(m.childPids()).toEqual([oldChild, newChild]);
    expect(m.child.exitCode).toBe(null);
    expect(m.child.pid).toBe(masterPid);
    expect((await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status).toBe(200);

    // SIGHUP through the master reaches the child now in charge.
    writeFileSync(m.configFile, yaml.replace(`      - { address: ${first!.address} }\n`, `      - { address: ${first!.address} }\n      - { address: ${second!.address} }\n`));
    m.child.kill('SIGHUP');
    const reloaded = await m.waitForLog((l) => l.msg === 'config reloaded');
    expect(reloaded.pid).toBe(newChild);
    expect(await getJson<unknown[]>(`http://127.0.0.1:${adminPort}/backends`)).toHaveLength(2);

    // SIGTERM through the master drains: an open connection still flows until it closes.
    const held = await openEcho(port!);
    cleanups.push(() => held.socket.destroy());
    m.child.kill('SIGTERM');
    await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status, (status) => status === 503);
    expect(await held.exchange('still here')).toBe('still here');
    expect(m.child.exitCode).toBe(null);
    held.socket.end();
    expect(await m.exited).toBe(0);
    expect(alive(newChild)).toBe(false);
    expect(m.logs.some((l) => l.pid === newChild && l.msg === 'drained; exiting')).toBe(true);
  }, 120_000);

  it('a new child that cannot start (a broken config written before the upgrade) leaves the old child serving; once fixed, the upgrade goes through; a child ignores a stray SIGUSR2', async () => {
    const [echo] = await echoBackends(1);
    const [port, adminPort] = await freePorts(2);
    const yaml = tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: [echo!.address], workers: 1 });
    const m = await master(yaml);
    const [oldChild] = m.childPids();

    // `systemctl kill -s USR2` without --kill-whom=main signals the child too: it must survive.
    process.kill(oldChild!, 'SIGUSR2');
    writeFileSync(m.configFile, `${yaml}clusters: [this is not a cluster list\n`);
    m.child.kill('SIGUSR2');
    const failed = await m.waitForLog(fromMaster('upgrade failed: the new child exited before it was ready; the old one stays in charge'));
    expect(failed['code']).toBe(1);
    expect(failed['child']).not.toBe(oldChild);

    expect(alive(oldChild!)).toBe(true);
    expect((await roundTrip(port!, Buffer.from('after'))).toString()).toBe('after');
    expect((await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status).toBe(200);
    // The old child is still in charge: it gets the reload, and rejects the broken file.
    m.child.kill('SIGHUP');
    const rejected = await m.waitForLog((l) => l.msg === 'reload rejected: the running config stays');
    expect(rejected.pid).toBe(oldChild);
    expect(m.child.exitCode).toBe(null);

    // Fixed, the next upgrade goes through. Idle, the old child may exit before the new one
    // reports ready (a race; the table test has both orders): the master waits for the new one.
    writeFileSync(m.configFile, yaml);
    m.child.kill('SIGUSR2');
    const ready = await m.waitForLog(fromMaster('upgrade: the new child is ready and in charge'));
    await eventually(async () => Promise.resolve(alive(oldChild!)), (a) => !a);
    expect(m.child.exitCode).toBe(null);
    expect(alive(ready['child'] as number)).toBe(true);
    expect((await roundTrip(port!, Buffer.from('upgraded'))).toString()).toBe('upgraded');
  }, 120_000);

  it('the systemd unit\'s commands as a process tree: start, readiness wait, the documented upgrade under 8 client lanes, reload, stop', async () => {
    cleanups.push(enableAcceptQueueMigration());
    const [first, second] = await echoBackends(2);
    const [port, adminPort] = await freePorts(2);
    const yaml = tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: [first!.address], workers: 1 });
    const m = await master(yaml, { command: (config) => unitCommand(unitKey('ExecStart'), config), waitReady: false });
    const mainPid = m.child.pid!;
    expect(await run(unitCommand(unitKey('ExecStartPost'), m.configFile, mainPid))).toEqual({ code: 0, stderr: '' });
    expect((await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status).toBe(200);
    // /readyz turns 200 a moment before the child's ready message reaches the master, which
    // refuses an upgrade until then.
    await m.waitForLog(fromMaster('child ready'));

    // `systemctl kill --kill-whom=main --signal=SIGUSR2 sluice` sends SIGUSR2 to MainPID alone.
    expect(UNIT_TEXT).toContain('systemctl kill --kill-whom=main --signal=SIGUSR2 sluice');
    const loop = clientLoop(port!, 8);
    expect((await run(['/bin/kill', '-USR2', String(mainPid)])).code).toBe(0);
    await m.waitForLog(fromMaster('upgrade: the new child is ready and in charge'));
    const [oldChild, newChild] = m.childPids();
    await eventually(async () => Promise.resolve(alive(oldChild!)), (a) => !a);
    const { ok, failed } = await loop.stop();
    console.log(`upgrade through the unit's commands: ${ok} connections succeeded, ${failed.length} failed`);
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(100);

    writeFileSync(m.configFile, yaml.replace(`      - { address: ${first!.address} }\n`, `      - { address: ${first!.address} }\n      - { address: ${second!.address} }\n`));
    expect((await run(unitCommand(unitKey('ExecReload'), m.configFile, mainPid))).code).toBe(0);
    expect((await m.waitForLog((l) => l.msg === 'config reloaded')).pid).toBe(newChild);

    m.child.kill(unitKey('KillSignal') as NodeJS.Signals);
    expect(await m.exited).toBe(0);
    expect(alive(newChild!)).toBe(false);
  }, 120_000);
});
