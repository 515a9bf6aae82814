/**
 * The two TCP data paths (SLUICE_DATA_PATH=handles, the default where available, and net)
 * carry the same bytes: 64 MiB of random bytes each way, checked by sha256 at both ends,
 * with a slow reader on either side and the client half-closing after its upload. The TCP
 * suites run on the default path, and those that depend on the path again on net (the
 * `net-path` project of vitest.config.ts; docs/data-plane-decisions.md).
 */
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { getJson } from '../helpers/client.ts';
import { startDaemon, tcpConfig, type Daemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';
import { fdsBackTo, idleResources, openFds, resourcesByWorker, shortConnections, type ResourcesJson } from '../helpers/resources.ts';
import { dribble } from '../helpers/dribble.ts';

const MIB = 1024 * 1024;
const PAYLOAD_BYTES = 64 * MIB;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let upload: Buffer | undefined;
let download: Buffer | undefined;
afterAll(() => {
  upload = undefined;
  download = undefined;
});

function payloads(): { up: Buffer; down: Buffer } {
  upload ??= randomBytes(PAYLOAD_BYTES);
  download ??= randomBytes(PAYLOAD_BYTES);
  return { up: upload, down: download };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Read `socket` to its end into a hash; a slow reader pauses after every chunk (and at first,
 * so the buffers toward it fill and the proxy's writes to it have to wait).
 */
function hashUntilEnd(socket: net.Socket, slow: boolean): Promise<{ hash: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    if (slow) {
      socket.pause();
      setTimeout(() => socket.resume(), 200);
    }
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      if (!slow) return;
      socket.pause();
      setTimeout(() => socket.resume(), 1);
    });
    socket.once('error', reject);
    socket.once('end', () => resolve({ hash: hash.digest('hex'), bytes }));
  });
}

/** A backend that hashes what the client sends and answers with `down` while it reads, then ends. */
async function hashingBackend(down: Buffer, slowReader: boolean): Promise<{ address: string; received: Promise<{ hash: string; bytes: number }>; close: () => Promise<void> }> {
  let settle: (value: { hash: string; bytes: number }) => void = () => undefined;
  let fail: (error: Error) => void = () => undefined;
  const received = new Promise<{ hash: string; bytes: number }>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    hashUntilEnd(socket, slowReader).then(settle, fail);
    socket.end(down);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    received,
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function daemonOn(path: string, backend: string, workers = 1): Promise<{ daemon: Daemon; port: number }> {
  const [port, adminPort] = await freePorts(2);
  if (port === undefined || adminPort === undefined) throw new Error('no ports');
  const daemon = await startDaemon(tcpConfig({ listenPort: port, adminPort, backends: [backend], workers }), adminPort, {
    env: { SLUICE_DATA_PATH: path },
  });
  cleanups.push(async () => daemon.stop('SIGKILL'));
  return { daemon, port };
}

describe.each(['handles', 'net'])('the %s data path', (path) => {
  it.each([
    ['client', true, false],
    ['backend', false, true],
  ])('carries 64 MiB each way byte for byte with a slow %s and a half-closing client', async (_slow, slowClient, slowBackend) => {
    const { up, down } = payloads();
    const backend = await hashingBackend(down, slowBackend);
    cleanups.push(async () => backend.close());
    const { port } = await daemonOn(path, backend.address);

    const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    cleanups.push(async () => Promise.resolve(client.destroy()));
    const reply = hashUntilEnd(client, slowClient);
    client.end(up);

    const [fromBackend, atBackend] = await Promise.all([reply, backend.received]);
    expect(atBackend.bytes).toBe(PAYLOAD_BYTES);
    expect(atBackend.hash).toBe(sha256(up));
    expect(fromBackend.bytes).toBe(PAYLOAD_BYTES);
    expect(fromBackend.hash).toBe(sha256(down));
  });
});

/**
 * A backend that sends `data` in pieces of 100 B to 16 KiB, one piece per turn of its event
 * loop, so the proxy's reads are mostly partial (they land in the worker's shared read buffer)
 * while its writes to a slow client wait: a read written without a copy would be overwritten
 * by the next one before the kernel took it.
 */
async function dribblingBackend(data: Buffer): Promise<{ address: string; close: () => Promise<void> }> {
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => socket.destroy());
    dribble(socket, data, setImmediate);
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

describe.each(['handles', 'net'])('partial reads on the %s data path', (path) => {
  it('reach two slow clients of one worker intact while their writes wait', async () => {
    const data = randomBytes(16 * MIB);
    const backend = await dribblingBackend(data);
    cleanups.push(async () => backend.close());
    const { port } = await daemonOn(path, backend.address);
    const replies = await Promise.all(
      [0, 1].map(async () => {
        const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
        cleanups.push(async () => Promise.resolve(client.destroy()));
        const reply = hashUntilEnd(client, true);
        client.end();
        return reply;
      }),
    );
    for (const reply of replies) {
      expect(reply.bytes).toBe(data.length);
      expect(reply.hash).toBe(sha256(data));
    }
  });
});

// The default path's leak check is many-connections.test.ts (100,000 connections); this is the
// net fallback's, which the net-path project does not otherwise give one.
describe('the net data path over many connections', () => {
  it('returns fds, handles and timers to their start values after 20,000 short connections', async () => {
    const echo = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => socket.destroy());
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => new Promise((resolve) => echo.close(resolve)));
    const { port: echoPort } = echo.address() as net.AddressInfo;
    const { daemon, port } = await daemonOn('net', `127.0.0.1:${echoPort}`, 2);
    const pid = daemon.child.pid ?? -1;
    const url = `${daemon.adminUrl}/debug/resources`;
    const start = await getJson<ResourcesJson>(url);
    const startFds = openFds(pid);

    expect(await shortConnections(port, 20_000, 32)).toBe(20_000);

    const end = await idleResources(daemon.adminUrl);
    expect(resourcesByWorker(end)).toEqual(resourcesByWorker(start));
    expect(await fdsBackTo(pid, startFds)).toBe(startFds);
  });
});
