/**
 * The active health probe of a UDP backend: send the check's `send` payload in one
 * datagram and wait for one datagram back. The probe passes when the reply contains the
 * `expect` payload (any reply, when there is no `expect`); it fails on a reply without it,
 * on ICMP port unreachable (ECONNREFUSED on the connected socket), and when nothing comes
 * back within `timeout`.
 *
 * Always settles within the timeout, never throws, and closes its socket and clears its
 * timer whatever the outcome. Each probe uses a fresh socket (a fresh source port), so a
 * late reply to an earlier probe can never be taken for this one's.
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { decodePayload } from '../../shared/payload.ts';

export interface UdpProbeTarget {
  readonly host: string;
  readonly port: number;
}

export interface UdpProbeCheck {
  /** Payload as written in config: text, or `hex:` and hex digits (shared/payload.ts). */
  readonly send: string;
  readonly expect?: string | undefined;
  /** Milliseconds. */
  readonly timeout: number;
}

export interface UdpProbeResult {
  readonly ok: boolean;
  /** What was seen, for logs and the backend's reason. */
  readonly detail: string;
  /** Failed because its own timer ended it (counted as result="timeout"). */
  readonly timedOut: boolean;
}

/** How much of an unexpected reply the detail quotes. */
const QUOTED_BYTES = 40;

export function probeUdp(target: UdpProbeTarget, check: UdpProbeCheck): Promise<UdpProbeResult> {
  const payload = decodePayload(check.send);
  const expected = check.expect === undefined ? undefined : decodePayload(check.expect);
  return new Promise((resolve) => {
    const socket = dgram.createSocket(isIPv6(target.host) ? 'udp6' : 'udp4');
    let settled = false;
    const finish = (ok: boolean, detail: string, timedOut = false): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', ignore);
      socket.close();
      resolve({ ok, detail, timedOut });
    };
    const timer = setTimeout(() => {
      finish(false, `no reply within ${check.timeout}ms`, true);
    }, check.timeout);
    socket.on('error', (error: NodeJS.ErrnoException) => {
      finish(false, error.code === 'ECONNREFUSED' ? 'port unreachable (ECONNREFUSED)' : error.message);
    });
    socket.on('message', (reply: Buffer) => {
      if (expected === undefined) finish(true, 'reply');
      else if (reply.includes(expected)) finish(true, 'expected reply');
      else finish(false, `unexpected reply ${JSON.stringify(reply.subarray(0, QUOTED_BYTES).toString('latin1'))}`);
    });
    socket.connect(target.port, target.host, () => {
      if (!settled) socket.send(payload);
    });
  });
}

function ignore(): void {
  // The socket is being closed; a late error has nowhere useful to go.
}
