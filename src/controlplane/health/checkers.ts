/**
 * Active health probes: one attempt against one backend, always settled within the check's
 * `timeout` (connect and reply included), never throwing, and leaving no socket or timer
 * behind. They run in the control-plane worker, so a slow probe cannot delay the data plane.
 *
 * - tcp: the connect succeeds. With `send`, those bytes are written first; with `expect`,
 *   the reply must contain that text (for plain TCP protocols: `PING` → `+PONG`).
 * - http: `GET path` with a `Host` header (`host`, or the backend's address) gets
 *   `expect_status`. The body is not read; the connection is closed after the status line.
 * - udp: one datagram out (`send`), one back that contains `expect` (udp-probe.ts).
 */
import http from 'node:http';
import net from 'node:net';
import type { ActiveHealthCheckConfig } from '../../shared/config/schema.ts';
import { formatHostPort } from '../../shared/address.ts';
import { probeUdp } from './udp-probe.ts';

export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
}

export interface ProbeResult {
  readonly ok: boolean;
  /** What was seen, for logs and the backend's reason: `HTTP 503, expected 200`. */
  readonly detail: string;
  /** The probe ended because its `timeout` passed (a failure classified as a time-out). */
  readonly timedOut?: boolean;
}

/** A reply bigger than this without the expected text is a failure, not an unbounded buffer. */
export const MAX_EXPECT_BYTES = 64 * 1024;

export function probe(target: ProbeTarget, check: ActiveHealthCheckConfig): Promise<ProbeResult> {
  switch (check.type) {
    case 'http':
      return probeHttp(target, check);
    case 'tcp':
      return probeTcp(target, check);
    case 'udp':
      return probeUdp(target, check);
    default:
      throw new Error(`unknown health check type ${JSON.stringify(check satisfies never)}`);
  }
}

type TcpCheck = Extract<ActiveHealthCheckConfig, { type: 'tcp' }>;
type HttpCheck = Extract<ActiveHealthCheckConfig, { type: 'http' }>;

function probeTcp(target: ProbeTarget, check: TcpCheck): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.host, port: target.port, noDelay: true });
    let received = '';
    let settled = false;
    const finish = (ok: boolean, detail: string, timedOut = false): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners('data');
      socket.destroy();
      resolve({ ok, detail, timedOut });
    };
    const timer = setTimeout(() => {
      finish(false, socket.connecting ? `connect timed out after ${check.timeout}ms` : `no expected reply within ${check.timeout}ms`, true);
    }, check.timeout);
    socket.on('error', (error: NodeJS.ErrnoException) => {
      finish(false, describeError(error));
    });
    socket.on('connect', () => {
      if (check.send !== undefined) socket.write(check.send);
      if (check.expect === undefined) finish(true, 'connected');
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (check.expect !== undefined && received.includes(check.expect)) finish(true, 'expected reply');
      else if (received.length > MAX_EXPECT_BYTES) finish(false, `no ${JSON.stringify(check.expect)} in the first ${MAX_EXPECT_BYTES} bytes`);
    });
    socket.on('end', () => {
      finish(false, `closed before the expected reply (got ${JSON.stringify(received.slice(0, 40))})`);
    });
  });
}

function probeHttp(target: ProbeTarget, check: HttpCheck): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const request = http.request({
      host: target.host,
      port: target.port,
      method: 'GET',
      path: check.path,
      agent: false,
      headers: {
        host: check.host ?? formatHostPort(target.host, target.port),
        'user-agent': 'sluice-health-check',
        connection: 'close',
      },
    });
    const finish = (ok: boolean, detail: string, timedOut = false): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      resolve({ ok, detail, timedOut });
    };
    const timer = setTimeout(() => {
      finish(false, `no HTTP response within ${check.timeout}ms`, true);
    }, check.timeout);
    request.on('response', (response: http.IncomingMessage) => {
      const status = response.statusCode ?? 0;
      response.on('error', ignore);
      finish(status === check.expect_status, `HTTP ${status}${status === check.expect_status ? '' : `, expected ${check.expect_status}`}`);
    });
    request.on('error', (error: NodeJS.ErrnoException) => {
      finish(false, describeError(error));
    });
    request.end();
  });
}

function describeError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return 'connection refused (ECONNREFUSED)';
    case 'ECONNRESET':
      return 'connection reset (ECONNRESET)';
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_VERSION':
      return 'not an HTTP response';
    default:
      return error.code === undefined ? error.message : `${error.message} (${error.code})`;
  }
}

function ignore(): void {
  // The request is destroyed right after the status line; the aborted body has nowhere to go.
}
