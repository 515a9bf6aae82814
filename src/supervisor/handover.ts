/**
 * Zero-downtime handover between two Sluice processes on the same ports.
 *
 * The new process binds every listener with SO_REUSEPORT next to the old one, so both
 * accept; then it asks the old one (POST /drain {"handover": true} on the shared admin
 * address) to stop accepting and drain, and takes the admin port once the old one let go.
 *
 * Closing a listening socket resets the connections still waiting in its accept queue,
 * unless the kernel migrates them to another socket of the same SO_REUSEPORT group:
 * Linux >= 5.14 does that when net.ipv4.tcp_migrate_req = 1. Without it a handover under
 * load can reset a few connections, so both sides warn about it.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import type { Logger } from 'pino';
import { parseHostPort } from '../shared/address.ts';
import { SluiceError } from '../shared/errors.ts';

const MIGRATE_SYSCTL = '/proc/sys/net/ipv4/tcp_migrate_req';
const HANDOVER_REQUEST_TIMEOUT_MS = 5000;

/** Whether the kernel moves queued connections of a closing SO_REUSEPORT listener to its peers. */
export function kernelMigratesAcceptQueues(): boolean {
  try {
    return readFileSync(MIGRATE_SYSCTL, 'utf8').trim() === '1';
  } catch {
    return false;
  }
}

export function warnUnlessMigrating(log: Logger): void {
  if (kernelMigratesAcceptQueues()) return;
  log.warn(
    { sysctl: 'net.ipv4.tcp_migrate_req' },
    'handover: the kernel does not migrate accept queues of closed listeners; connections queued in the old process may be reset (set net.ipv4.tcp_migrate_req=1, Linux >= 5.14)',
  );
}

export type HandoverOutcome = 'handed-over' | 'no-peer';

/** Ask the process serving `adminListen` to hand over: it stops accepting and drains. */
export function requestHandover(adminListen: string, token: string | undefined): Promise<HandoverOutcome> {
  const address = parseHostPort(adminListen);
  if (address === undefined) return Promise.reject(new SluiceError('SLUICE_CONFIG_INVALID', `bad admin address ${adminListen}`));
  const body = JSON.stringify({ handover: true });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: address.host,
        port: address.port,
        method: 'POST',
        path: '/drain',
        timeout: HANDOVER_REQUEST_TIMEOUT_MS,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        },
      },
      (response) => {
        response.resume();
        const status = response.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve('handed-over');
        else reject(new SluiceError('SLUICE_LISTEN_FAILED', `handover: the running process at ${adminListen} answered HTTP ${status} to POST /drain`));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') resolve('no-peer');
      else reject(new SluiceError('SLUICE_LISTEN_FAILED', `handover: cannot reach ${adminListen}: ${error.message}`));
    });
    req.end(body);
  });
}
