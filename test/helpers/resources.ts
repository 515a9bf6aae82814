/**
 * Leak checks over many connections: drive short connections through a daemon, then read
 * what it holds (its open fds, and each data-plane worker's libuv handles and timers from
 * GET /debug/resources) so a test can compare them with the values before the load.
 */
import net from 'node:net';
import { readdirSync } from 'node:fs';
import { eventually, getJson } from './client.ts';

export interface ResourcesJson {
  workers: { worker: number; connections: number; udpSessions: number; heapUsedBytes: number; resources: Record<string, number> }[];
}

/**
 * Open, exchange one short message with an echo backend behind `port`, and close `count`
 * connections, `concurrency` at a time. Returns how many got their message back whole.
 */
export async function shortConnections(port: number, count: number, concurrency: number): Promise<number> {
  let started = 0;
  let ok = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      let got = '';
      socket.setEncoding('utf8');
      socket.on('data', (text: string) => {
        got += text;
      });
      socket.once('error', reject);
      socket.once('end', () => {
        if (got === 'ping') ok++;
        socket.end();
      });
      socket.once('close', () => resolve());
      socket.end('ping');
    });
  const lane = async (): Promise<void> => {
    while (started < count) {
      started++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return ok;
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
