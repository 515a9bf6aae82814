/**
 * Leak checks over many connections: drive short connections through a daemon, then read
 * what it holds (its open fds, and each data-plane worker's libuv handles and timers from
 * GET /debug/resources) so a test can compare them with the values before the load.
 */
import { readdirSync } from 'node:fs';
import { expect } from 'vitest';
import { shortConnections as runShortConnections } from '../../bench/lib/short-connections.ts';
import type { ResourceReport } from '../../src/shared/messages.ts';
import { eventually, getJson } from './client.ts';
import type { Daemon } from './daemon.ts';

/** GET /debug/resources. */
export interface ResourcesJson {
  readonly workers: readonly ResourceReport[];
}

/**
 * Open, exchange one short message with an echo backend behind `port`, and close `count`
 * connections, `concurrency` at a time. Returns how many got their message back whole.
 */
export async function shortConnections(port: number, count: number, concurrency: number): Promise<number> {
  return (await runShortConnections({ port, count, concurrency })).ok;
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Each worker's handles and timers by kind, keyed by worker index (the part leak checks compare). */
export function resourcesByWorker(report: ResourcesJson): Record<number, Record<string, number>> {
  return Object.fromEntries(report.workers.map((w) => [w.worker, w.resources]));
}

/** GET /debug/resources once no worker holds a connection or a TCP socket any more. */
export async function idleResources(adminUrl: string, timeoutMs = 10_000): Promise<ResourcesJson> {
  return eventually(
    async () => getJson<ResourcesJson>(`${adminUrl}/debug/resources`),
    (r) => r.workers.every((w) => w.connections === 0 && (w.resources['TCPSocketWrap'] ?? 0) === 0),
    timeoutMs,
  );
}

/** Wait until the process `pid` holds `expected` fds again; returns the last count read. */
export async function fdsBackTo(pid: number, expected: number, timeoutMs = 10_000): Promise<number> {
  return eventually(async () => Promise.resolve(openFds(pid)), (n) => n === expected, timeoutMs);
}

/**
 * The leak check: `count` short connections, `concurrency` at a time, through `daemon`'s
 * listener on `port` (in front of an echo backend) all get their message back, and then the
 * daemon's fds and every worker's handles and timers are back at their values before them.
 */
export async function expectNoLeaks(daemon: Daemon, port: number, count: number, concurrency: number): Promise<void> {
  const pid = daemon.child.pid ?? -1;
  const start = await getJson<ResourcesJson>(`${daemon.adminUrl}/debug/resources`);
  const startFds = openFds(pid);

  expect(await shortConnections(port, count, concurrency)).toBe(count);

  const end = await idleResources(daemon.adminUrl);
  expect(resourcesByWorker(end)).toEqual(resourcesByWorker(start));
  expect(await fdsBackTo(pid, startFds)).toBe(startFds);
}
