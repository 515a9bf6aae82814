/**
 * Real UDP backends and clients for tests, on 127.0.0.1 with kernel-chosen ports.
 */
import dgram from 'node:dgram';

export interface UdpTestBackend {
  readonly port: number;
  readonly address: string;
  /** Datagrams received so far. */
  received: number;
  /** Source address:port of every datagram received (Sluice's session sockets). */
  readonly peers: Set<string>;
  close(): Promise<void>;
}

/**
 * `echo` sends every datagram back unchanged; `tagged` answers `ADDRESS|payload`, so a
 * client can tell which backend served it.
 */
export async function startUdpBackend(behaviour: 'echo' | 'tagged' = 'tagged', port = 0): Promise<UdpTestBackend> {
  const socket = dgram.createSocket('udp4');
  const peers = new Set<string>();
  socket.on('message', (message, remote) => {
    backend.received++;
    peers.add(`${remote.address}:${remote.port}`);
    const reply = behaviour === 'echo' ? message : Buffer.concat([Buffer.from(`${backend.address}|`), message]);
    socket.send(reply, remote.port, remote.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, '127.0.0.1', () => resolve());
  });
  const bound = socket.address().port;
  let closed = false;
  const backend: UdpTestBackend = {
    port: bound,
    address: `127.0.0.1:${bound}`,
    received: 0,
    peers,
    close: async () => {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
  return backend;
}

export interface UdpClient {
  readonly socket: dgram.Socket;
  readonly port: number;
  /**
   * Send `payload` to 127.0.0.1:`port` and resolve with the first datagram back that
   * `accept` takes; resend after `retryMs` up to `tries` times (UDP may drop), then reject.
   */
  request(port: number, payload: Buffer, options?: { accept?: (reply: Buffer) => boolean; retryMs?: number; tries?: number }): Promise<Buffer>;
  close(): void;
}

/** A client socket bound to `address` (default 127.0.0.1) and `port` (default: the kernel picks). */
export async function udpClient(address = '127.0.0.1', port = 0): Promise<UdpClient> {
  const socket = dgram.createSocket('udp4');
  const waiters = new Set<(reply: Buffer) => void>();
  socket.on('message', (message) => {
    for (const waiter of waiters) waiter(message);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.removeListener('error', reject);
      resolve();
    });
  });
  socket.on('error', () => undefined);
  let closed = false;
  return {
    socket,
    port: socket.address().port,
    request: (target, payload, options = {}) => {
      const accept = options.accept ?? (() => true);
      const retryMs = options.retryMs ?? 1000;
      const tries = options.tries ?? 5;
      return new Promise((resolve, reject) => {
        let sent = 0;
        let timer: NodeJS.Timeout | undefined;
        const waiter = (reply: Buffer): void => {
          if (!accept(reply)) return;
          done();
          resolve(reply);
        };
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(waiter);
        };
        const attempt = (): void => {
          if (sent >= tries) {
            done();
            reject(new Error(`no reply from 127.0.0.1:${target} after ${tries} tries`));
            return;
          }
          sent++;
          if (!closed) socket.send(payload, target, '127.0.0.1');
          timer = setTimeout(attempt, retryMs);
        };
        waiters.add(waiter);
        attempt();
      });
    },
    close: () => {
      if (closed) return;
      closed = true;
      socket.close();
    },
  };
}

/** Run `tasks` with at most `concurrency` in flight; resolves with their results in order. */
export async function inLanes<T>(count: number, concurrency: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return results;
}

/** A UDP port on 127.0.0.1 that was free a moment ago (nothing listens there now). */
export async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}
