/**
 * Pieces of the data-path tests that carry bytes through a daemon on a chosen TCP data path
 * (SLUICE_DATA_PATH) and check them by sha256 at the far end.
 */
import net from 'node:net';
import { createHash } from 'node:crypto';
import { startDaemon, tcpConfig, type Daemon } from './daemon.ts';
import { freePorts } from './ports.ts';

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Resolves once `socket` has closed (at once if it already has). */
export function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.closed) resolve();
    else socket.once('close', () => resolve());
  });
}

/** How a slow reader reads: paused for `firstMs` at first, and for `perChunkMs` after every chunk. */
export interface SlowReading {
  readonly firstMs: number;
  readonly perChunkMs: number;
}

/**
 * Read `socket` to its end into a hash; a slow reader (`slow` given) pauses after every chunk
 * (and at first, so the buffers toward it fill and the proxy's writes to it have to wait).
 */
export function hashUntilEnd(socket: net.Socket, slow?: SlowReading): Promise<{ hash: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    if (slow !== undefined) {
      socket.pause();
      setTimeout(() => socket.resume(), slow.firstMs);
    }
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      if (slow === undefined) return;
      socket.pause();
      setTimeout(() => socket.resume(), slow.perChunkMs);
    });
    socket.once('error', reject);
    socket.once('end', () => resolve({ hash: hash.digest('hex'), bytes }));
  });
}

/**
 * A backend on 127.0.0.1 (a port the kernel chooses) that hands each connection, half-open
 * allowed, to `onConnection`; its close destroys the connections still open.
 */
export async function startStreamBackend(onConnection: (socket: net.Socket) => void): Promise<{ address: string; close: () => Promise<void> }> {
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * A daemon of `workers` workers on the `path` data path, its listener in front of `backend`.
 * The caller stops it.
 */
export async function daemonOn(path: string, backend: string, workers = 1): Promise<{ daemon: Daemon; port: number }> {
  const [port, adminPort] = await freePorts(2);
  if (port === undefined || adminPort === undefined) throw new Error('no ports');
  const daemon = await startDaemon(tcpConfig({ listenPort: port, adminPort, backends: [backend], workers }), adminPort, {
    env: { SLUICE_DATA_PATH: path },
  });
  return { daemon, port };
}
