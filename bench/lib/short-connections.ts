/**
 * Short TCP connections against an echo service: each one connects, sends `ping`, half-closes,
 * reads the echo to its end and closes; `concurrency` lanes run one connection at a time each.
 * The client closes first, so the TIME_WAIT sockets are the client's (loopback reuses them:
 * net.ipv4.tcp_tw_reuse=2), not the proxy's. Used by the soak and by the leak tests.
 */
import net from 'node:net';

export interface ShortConnectionsResult {
  /** Connections that got `ping` back whole. */
  readonly ok: number;
  /** Connections that failed (error, or a wrong echo). */
  readonly failed: number;
}

export interface ShortConnectionsOptions {
  readonly port: number;
  readonly count: number;
  readonly concurrency: number;
  /** Called after every finished connection with the number finished so far. */
  readonly onDone?: (finished: number) => void;
  /** Checked before each new connection: true ends the run early (a time bound). */
  readonly stop?: () => boolean;
}

const MESSAGE = 'ping';

function oneConnection(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let got = '';
    let failed = false;
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      got += text;
    });
    socket.once('error', () => {
      failed = true;
    });
    socket.once('end', () => socket.end());
    socket.once('close', () => resolve(!failed && got === MESSAGE));
    socket.end(MESSAGE);
  });
}

export async function shortConnections(options: ShortConnectionsOptions): Promise<ShortConnectionsResult> {
  let started = 0;
  let ok = 0;
  let failed = 0;
  const lane = async (): Promise<void> => {
    while (started < options.count && options.stop?.() !== true) {
      started++;
      if (await oneConnection(options.port)) ok++;
      else failed++;
      options.onDone?.(ok + failed);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, lane));
  return { ok, failed };
}
