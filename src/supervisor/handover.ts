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
 *
 * UDP has no accept queue to migrate, but it has sessions: the kernel hashes each client over
 * the port's sockets, so once both processes are bound a client may move to the new one. The
 * old process answers the drain call with its UDP session table (client -> backend, per
 * listener) and closes its UDP sockets in the same step; the new one holds the UDP datagrams
 * it receives until it has seeded its workers with that table (dataplane/udp-handover.ts).
 * The answer is bounded by the listeners' max_sessions and read up to MAX_ANSWER_BYTES.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import type { Logger } from 'pino';
import { parseHostPort } from '../shared/address.ts';
import { SluiceError } from '../shared/errors.ts';
import type { UdpHandoverTable } from '../shared/messages.ts';

const MIGRATE_SYSCTL = '/proc/sys/net/ipv4/tcp_migrate_req';
const HANDOVER_REQUEST_TIMEOUT_MS = 5000;
/** 100,000 sessions take about 9 MB of JSON; far above that is not a Sluice answering. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

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

export interface HandoverOutcome {
  readonly outcome: 'handed-over' | 'no-peer';
  /** The old process's UDP sessions per listener (none from a version without them). */
  readonly udpSessions: readonly UdpHandoverTable[];
}

/** The `udp_sessions` of a drain answer; anything else (an older Sluice, no body) is none. */
export function udpSessionsOf(body: unknown): UdpHandoverTable[] {
  if (typeof body !== 'object' || body === null) return [];
  const tables = (body as { udp_sessions?: unknown }).udp_sessions;
  if (!Array.isArray(tables)) return [];
  const out: UdpHandoverTable[] = [];
  for (const table of tables as unknown[]) {
    const { listener, sessions } = (table ?? {}) as { listener?: unknown; sessions?: unknown };
    if (typeof listener !== 'string' || !Array.isArray(sessions)) continue;
    out.push({ listener, sessions: sessions.filter(isHandoverSession) });
  }
  return out;
}

function isHandoverSession(s: unknown): s is UdpHandoverTable['sessions'][number] {
  if (typeof s !== 'object' || s === null) return false;
  const { client, cluster, backend, idleMs } = s as Record<string, unknown>;
  return typeof client === 'string' && typeof cluster === 'string' && typeof backend === 'string' && typeof idleMs === 'number' && idleMs >= 0;
}

/**
 * Ask the process serving `adminListen` to hand over: it closes its UDP listeners (answering
 * with their sessions), stops accepting and drains.
 */
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
        const status = response.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          response.resume();
          reject(new SluiceError('SLUICE_LISTEN_FAILED', `handover: the running process at ${adminListen} answered HTTP ${status} to POST /drain`));
          return;
        }
        const chunks: Buffer[] = [];
        let bytes = 0;
        response.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > MAX_ANSWER_BYTES) {
            // The old process is draining already: go on without its sessions.
            resolve({ outcome: 'handed-over', udpSessions: [] });
            response.destroy();
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () => {
          // The old process is draining whatever the body says: a body we cannot read costs
          // the UDP sessions' backends, not the handover.
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            parsed = undefined;
          }
          resolve({ outcome: 'handed-over', udpSessions: udpSessionsOf(parsed) });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') resolve({ outcome: 'no-peer', udpSessions: [] });
      else reject(new SluiceError('SLUICE_LISTEN_FAILED', `handover: cannot reach ${adminListen}: ${error.message}`));
    });
    req.end(body);
  });
}

export type PrepareOutcome = 'prepared' | 'no-peer' | 'unsupported';

/**
 * Before binding: ask the process serving `adminListen` to share its UDP sessions among its
 * own workers (POST /handover/prepare), because our sockets joining the port's SO_REUSEPORT
 * group make the kernel move some clients from one of its workers to another. Best effort:
 * an older Sluice (404), no process, or any failure only costs those clients their backend.
 */
export function prepareUdpHandover(adminListen: string, token: string | undefined): Promise<PrepareOutcome> {
  const address = parseHostPort(adminListen);
  if (address === undefined) return Promise.resolve('no-peer');
  return new Promise((resolve) => {
    const req = request(
      {
        host: address.host,
        port: address.port,
        method: 'POST',
        path: '/handover/prepare',
        timeout: HANDOVER_REQUEST_TIMEOUT_MS,
        headers: { 'content-length': 0, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
      },
      (response) => {
        response.resume();
        const status = response.statusCode ?? 0;
        resolve(status >= 200 && status < 300 ? 'prepared' : 'unsupported');
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (error: NodeJS.ErrnoException) => {
      resolve(error.code === 'ECONNREFUSED' ? 'no-peer' : 'unsupported');
    });
    req.end();
  });
}
