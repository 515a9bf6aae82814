/**
 * The two TCP data paths (SLUICE_DATA_PATH=handles, the default where available, and net)
 * carry the same bytes: 64 MiB of random bytes each way, checked by sha256 at both ends,
 * with a slow reader on either side and the client half-closing after its upload. The TCP
 * suites run on the default path, and those that depend on the path again on net (the
 * `net-path` project of vitest.config.ts; docs/data-plane-decisions.md).
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { expectNoLeaks } from '../helpers/resources.ts';
import { dribble } from '../helpers/dribble.ts';
import { daemonOn, hashUntilEnd, sha256, startStreamBackend, type SlowReading } from '../helpers/streams.ts';

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

/** A slow reader's pauses here: 200 ms at first, 1 ms after every chunk. */
const SLOW: SlowReading = { firstMs: 200, perChunkMs: 1 };

/** A backend that hashes what the client sends and answers with `down` while it reads, then ends. */
async function hashingBackend(down: Buffer, slowReader: boolean): Promise<{ address: string; received: Promise<{ hash: string; bytes: number }>; close: () => Promise<void> }> {
  let settle: (value: { hash: string; bytes: number }) => void = () => undefined;
  let fail: (error: Error) => void = () => undefined;
  const received = new Promise<{ hash: string; bytes: number }>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  const server = await startStreamBackend((socket) => {
    hashUntilEnd(socket, slowReader ? SLOW : undefined).then(settle, fail);
    socket.end(down);
  });
  return { ...server, received };
}

describe.each(['handles', 'net'])('the %s data path', (path) => {
  it.each([
    ['client', true, false],
    ['backend', false, true],
  ])('carries 64 MiB each way byte for byte with a slow %s and a half-closing client', async (_slow, slowClient, slowBackend) => {
    const { up, down } = payloads();
    const backend = await hashingBackend(down, slowBackend);
    cleanups.push(async () => backend.close());
    const { daemon, port } = await daemonOn(path, backend.address);
    cleanups.push(async () => daemon.stop('SIGKILL'));

    const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    cleanups.push(async () => Promise.resolve(client.destroy()));
    const reply = hashUntilEnd(client, slowClient ? SLOW : undefined);
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
  return startStreamBackend((socket) => {
    socket.on('error', () => socket.destroy());
    dribble(socket, data, setImmediate);
  });
}

describe.each(['handles', 'net'])('partial reads on the %s data path', (path) => {
  it('reach two slow clients of one worker intact while their writes wait', async () => {
    const data = randomBytes(16 * MIB);
    const backend = await dribblingBackend(data);
    cleanups.push(async () => backend.close());
    const { daemon, port } = await daemonOn(path, backend.address);
    cleanups.push(async () => daemon.stop('SIGKILL'));
    const replies = await Promise.all(
      [0, 1].map(async () => {
        const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
        cleanups.push(async () => Promise.resolve(client.destroy()));
        const reply = hashUntilEnd(client, SLOW);
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
    const echo = await startBackend('echo');
    cleanups.push(async () => echo.close());
    const { daemon, port } = await daemonOn('net', echo.address, 2);
    cleanups.push(async () => daemon.stop('SIGKILL'));
    await expectNoLeaks(daemon, port, 20_000, 32);
  });
});
