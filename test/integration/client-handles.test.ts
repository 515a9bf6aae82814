/**
 * The client side on stream handles (issue #18, step 2): on the handles data path a listener
 * without edge settings takes each accepted connection as a libuv stream handle instead of a
 * net.Socket, and its reads land in the worker's shared read buffer like the backend's
 * (docs/data-plane-decisions.md). The TCP suites check every session behaviour on it; this
 * file checks the accept takeover itself and the one way the shared buffer can corrupt
 * client bytes.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/client.ts';
import { freePorts } from '../helpers/ports.ts';
import { dribble } from '../helpers/dribble.ts';
import { closed, daemonOn, hashUntilEnd, sha256, startStreamBackend } from '../helpers/streams.ts';
import { ListenerSet } from '../../src/dataplane/listeners.ts';
import { bindingProblem, type TcpStream } from '../../src/dataplane/stream-handle.ts';
import type { ListenerBinding } from '../../src/shared/messages.ts';

const MIB = 1024 * 1024;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('accepting as stream handles', () => {
  it('gives a listener its accepts as streams, and net.Server those it declines, on one listening socket', async () => {
    expect(bindingProblem()).toBeUndefined();
    const [port] = await freePorts(1);
    if (port === undefined) throw new Error('no port');
    const binding: ListenerBinding = { name: 'web', slot: 0, host: '127.0.0.1', port, protocol: 'tcp' };
    const streams: TcpStream[] = [];
    const sockets: net.Socket[] = [];
    let decline = false;
    const listeners = new ListenerSet(
      (socket) => sockets.push(socket),
      (_binding, error) => {
        throw error;
      },
      (stream) => {
        if (decline) return false;
        streams.push(stream);
        return true;
      },
    );
    cleanups.push(() => {
      listeners.closeAll();
      return Promise.resolve();
    });
    expect(await listeners.apply([binding])).toEqual([]);

    const first = net.connect({ port, host: '127.0.0.1' });
    cleanups.push(async () => Promise.resolve(first.destroy()));
    await new Promise((resolve) => first.once('connect', resolve));
    await eventually(async () => Promise.resolve(streams.length), (n) => n === 1, 5_000);
    expect(sockets).toHaveLength(0);
    const stream = streams[0]!;
    expect(stream.peer()).toMatchObject({ address: '127.0.0.1', port: first.localPort });
    expect(stream.local()).toMatchObject({ address: '127.0.0.1', port });
    stream.close();
    await closed(first);

    decline = true;
    const second = net.connect({ port, host: '127.0.0.1' });
    cleanups.push(async () => Promise.resolve(second.destroy()));
    let got = '';
    second.setEncoding('utf8');
    second.on('data', (text: string) => {
      got += text;
    });
    await eventually(async () => Promise.resolve(sockets.length), (n) => n === 1, 5_000);
    expect(streams).toHaveLength(1);
    const socket = sockets[0]!;
    expect(socket.remotePort).toBe(second.localPort);
    socket.end('from net');
    await closed(second);
    expect(got).toBe('from net');
  });
});

/** A backend that reads each connection slowly (a pause after every chunk) and ends once the client did. */
async function slowHashingBackend(): Promise<{ address: string; hashes: Promise<string>[]; close: () => Promise<void> }> {
  const hashes: Promise<string>[] = [];
  const server = await startStreamBackend((socket) => {
    // The kernel's buffers toward the backend fill first, then stay nearly full, so the
    // proxy's writes to it wait again and again.
    hashes.push(hashUntilEnd(socket, { firstMs: 500, perChunkMs: 20 }).then(({ hash }) => hash));
    socket.once('end', () => socket.end());
  });
  return { ...server, hashes };
}

describe.each(['handles', 'net'])('client reads on the %s data path', (path) => {
  it('carry two clients sending in small pieces to slow backends of one worker intact', async () => {
    const backend = await slowHashingBackend();
    cleanups.push(async () => backend.close());
    const { daemon, port } = await daemonOn(path, backend.address);
    cleanups.push(async () => daemon.stop('SIGKILL'));

    const uploads = [randomBytes(16 * MIB), randomBytes(16 * MIB)];
    await Promise.all(
      uploads.map(async (upload) => {
        const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
        cleanups.push(async () => Promise.resolve(client.destroy()));
        client.resume();
        await new Promise((resolve) => client.once('connect', resolve));
        dribble(client, upload, (next) => setTimeout(next, 1));
        await closed(client);
      }),
    );
    const received = await Promise.all(backend.hashes);
    expect(received.sort()).toEqual(uploads.map(sha256).sort());
  });
});
