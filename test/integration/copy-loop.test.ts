/**
 * The copy loop under back-pressure: backend reads of one worker share a read buffer that
 * is replaced whenever a write to a slow client keeps a reference to it. Several slow
 * clients on one worker, each receiving its own random bytes, prove that no read ever
 * overwrites bytes still waiting to be written.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { startDaemon, tcpConfig } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * Send `payload`, half-close, and read the echo slowly: nothing for a while (so the
 * kernel's buffers towards this client fill and the proxy's writes have to wait), then
 * a pause after every chunk.
 */
function slowRoundTrip(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    cleanups.push(() => Promise.resolve(socket.destroy()));
    const chunks: Buffer[] = [];
    socket.on('connect', () => socket.end(payload));
    // Pacing, not synchronisation: the pauses shape the load (writes to this client wait),
    // and the bytes are compared whatever they turn out to be; no pass/fail hangs on them.
    socket.pause();
    setTimeout(() => socket.resume(), 300);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      socket.pause();
      setTimeout(() => socket.resume(), 1);
    });
    socket.on('error', reject);
    socket.on('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
  });
}

describe('copy loop', () => {
  it('delivers every byte intact to several slow clients of one worker at once', async () => {
    const echo = await startBackend('echo');
    cleanups.push(async () => echo.close());
    const [port, adminPort] = await freePorts(2);
    if (port === undefined || adminPort === undefined) throw new Error('no ports');
    const daemon = await startDaemon(tcpConfig({ listenPort: port, adminPort, backends: [echo.address], workers: 1 }), adminPort);
    cleanups.push(async () => daemon.stop('SIGKILL'));

    const payloads = Array.from({ length: 3 }, () => randomBytes(16 * 1024 * 1024));
    const replies = await Promise.all(payloads.map(async (p) => slowRoundTrip(port, p)));
    replies.forEach((reply, i) => {
      expect(reply.length).toBe(payloads[i]!.length);
      expect(reply.equals(payloads[i]!)).toBe(true);
    });
  });
});
