/**
 * SIGUSR1 reopens the access log (logrotate's `postrotate`): rotating under load neither
 * loses nor repeats a line, and the rotated files' descriptors are closed.
 */
import { existsSync, mkdtempSync, readdirSync, readlinkSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { eventually, roundTrip } from '../helpers/client.ts';
import { startDaemon, tcpConfig, type Daemon } from '../helpers/daemon.ts';
import { scrape, total } from '../helpers/metrics.ts';
import { freePorts } from '../helpers/ports.ts';
import { completeJsonLines } from '../helpers/json-lines.ts';

const ROTATIONS = 10;
/** Connections completed between two rotations, so every rotated file gets lines. */
const CONNECTIONS_PER_FILE = 20;
const CONCURRENCY = 4;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Line {
  bytes_from_client: number;
}

function linesOf(file: string): Line[] {
  return completeJsonLines<Line>(file);
}

/**
 * Connections that each send a different number of bytes (1, 2, 3, …), so every access line
 * names its connection by `bytes_from_client`.
 */
function numberedClients(port: number): { readonly completed: () => number; stop: () => Promise<{ completed: number; failed: string[] }> } {
  let running = true;
  let next = 0;
  let completed = 0;
  const failed: string[] = [];
  const lane = async (): Promise<void> => {
    while (running) {
      const size = ++next;
      try {
        const reply = await roundTrip(port, Buffer.alloc(size, 1), 10_000);
        if (reply.length !== size) failed.push(`connection ${size}: ${reply.length} bytes back`);
        completed++;
      } catch (error) {
        failed.push(`connection ${size}: ${(error as Error).message}`);
      }
    }
  };
  const lanes = Array.from({ length: CONCURRENCY }, lane);
  return {
    completed: () => completed,
    stop: async () => {
      running = false;
      await Promise.all(lanes);
      return { completed, failed };
    },
  };
}

/** Paths of the access-log files the daemon holds open. */
function openLogFiles(pid: number, dir: string): string[] {
  const fds = readdirSync(`/proc/${pid}/fd`);
  return fds
    .map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((target) => target.startsWith(dir));
}

describe('access log reopen (SIGUSR1)', () => {
  it('rotating ten times under load loses and repeats no line, and closes every rotated file', async () => {
    const echo = await startBackend('echo');
    cleanups.push(async () => echo.close());
    const [port, adminPort] = await freePorts(2);
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-rotate-'));
    const file = path.join(dir, 'access.log');
    const daemon: Daemon = await startDaemon(
      `${tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: [echo.address], workers: 2 })}access_log: {enabled: true, path: ${file}}\n`,
      adminPort!,
    );
    cleanups.push(async () => daemon.stop('SIGKILL'));
    const clients = numberedClients(port!);
    const reopened = (): number => daemon.logs.filter((l) => l.msg === 'access log reopened').length;

    const files: string[] = [];
    for (let rotation = 1; rotation <= ROTATIONS; rotation++) {
      const mark = clients.completed() + CONNECTIONS_PER_FILE;
      await eventually(() => Promise.resolve(clients.completed()), (n) => n >= mark, 30_000);
      const rotated = `${file}.${rotation}`;
      renameSync(file, rotated);
      files.push(rotated);
      daemon.child.kill('SIGUSR1');
      await daemon.waitForLog(() => reopened() >= rotation);
      expect(existsSync(file)).toBe(true);
    }
    const mark = clients.completed() + CONNECTIONS_PER_FILE;
    await eventually(() => Promise.resolve(clients.completed()), (n) => n >= mark, 30_000);
    const { completed, failed } = await clients.stop();
    files.push(file);

    expect(failed).toEqual([]);
    // Lines reach the files at most a second after their connection closed.
    const counted = await eventually(
      () => Promise.resolve(files.reduce((sum, f) => sum + linesOf(f).length, 0)),
      (n) => n >= completed,
    );
    expect(counted).toBe(completed);
    const sizes = files.flatMap((f) => linesOf(f).map((l) => l.bytes_from_client));
    expect(new Set(sizes).size).toBe(completed);
    expect(Math.min(...sizes)).toBe(1);
    expect(Math.max(...sizes)).toBe(completed);
    for (const f of files) expect(linesOf(f).length, f).toBeGreaterThan(0);

    const metrics = await scrape(daemon.adminUrl);
    expect(total(metrics, 'sluice_access_log_records_total')).toBe(completed);
    expect(total(metrics, 'sluice_access_log_dropped_total')).toBe(0);
    expect(openLogFiles(daemon.child.pid!, dir)).toEqual([file]);
    // SIGUSR1 would otherwise start Node's inspector.
    expect(daemon.stderr()).not.toContain('Debugger listening');
  }, 120_000);

  it('a data-plane worker restarted after a rotation writes to the new file', async () => {
    const echo = await startBackend('echo');
    cleanups.push(async () => echo.close());
    const [port, adminPort] = await freePorts(2);
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-rotate-'));
    const file = path.join(dir, 'access.log');
    const daemon = await startDaemon(
      `${tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: [echo.address], workers: 1 })}access_log: {enabled: true, path: ${file}}\n`,
      adminPort!,
      { env: { SLUICE_FAULT_INJECTION: '1' } },
    );
    cleanups.push(async () => daemon.stop('SIGKILL'));
    renameSync(file, `${file}.1`);
    daemon.child.kill('SIGUSR1');
    await daemon.waitForLog((l) => l.msg === 'access log reopened');
    expect((await fetch(`${daemon.adminUrl}/debug/workers/0/crash`, { method: 'POST' })).status).toBe(202);
    await daemon.waitForLog((l) => l.msg === 'data-plane worker restarted');

    for (let i = 1; i <= 5; i++) expect((await roundTrip(port!, Buffer.alloc(i, 1))).length).toBe(i);
    const lines = await eventually(() => Promise.resolve(linesOf(file)), (l) => l.length >= 5);
    expect(lines.map((l) => l.bytes_from_client).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(linesOf(`${file}.1`)).toEqual([]);
  }, 60_000);
});
