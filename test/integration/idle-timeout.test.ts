/**
 * idle_timeout is judged by the data plane's sweep (no timer per socket): a connection
 * with no bytes either way for the timeout is closed on both sides, and bytes in either
 * direction keep it open.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { eventually, getJson } from '../helpers/client.ts';
import { startDaemon, tcpConfig, type Daemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';
import { closed } from '../helpers/streams.ts';

const IDLE_MS = 400;
/**
 * For the test of a connection kept open by its bytes: the gaps between its bytes are a
 * tenth of this, so a test process stalled for up to 9/10 of it does not close it early.
 */
const FLOWING_IDLE_MS = 1_500;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(idleMs = IDLE_MS): Promise<{ daemon: Daemon; port: number; backend: TestBackend }> {
  const backend = await startBackend('echo');
  cleanups.push(async () => backend.close());
  const [port, adminPort] = await freePorts(2);
  if (port === undefined || adminPort === undefined) throw new Error('no ports');
  const daemon = await startDaemon(
    tcpConfig({ listenPort: port, adminPort, backends: [backend.address], workers: 1, idleTimeout: `${idleMs}ms` }),
    adminPort,
  );
  cleanups.push(async () => daemon.stop('SIGKILL'));
  return { daemon, port, backend };
}

/** An echoed exchange on an open connection; resolves when the echo came back. */
function echo(socket: net.Socket, text: string): Promise<void> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (chunk: Buffer): void => {
      got += chunk.toString();
      if (got.length < text.length) return;
      socket.off('data', onData);
      resolve();
    };
    socket.on('data', onData);
    socket.write(text);
  });
}

async function connected(port: number): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.on('error', () => undefined);
  cleanups.push(() => Promise.resolve(socket.destroy()));
  await new Promise((resolve) => socket.once('connect', resolve));
  return socket;
}

describe('idle_timeout', () => {
  it('closes a connection idle for idle_timeout, on the client and the backend side', async () => {
    const { daemon, port, backend } = await setup();
    const socket = await connected(port);
    await echo(socket, 'ping');
    const idleSince = Date.now();
    await closed(socket);
    const idleFor = Date.now() - idleSince;
    // Nothing else closes it (the connect timer is done, no drain): no upper bound is
    // needed to know the idle timeout did, and a loaded machine could not meet a tight one.
    expect(idleFor).toBeGreaterThanOrEqual(IDLE_MS - 10);
    console.log(`closed ${idleFor} ms after its last byte (idle_timeout ${IDLE_MS} ms)`);
    expect(await eventually(async () => Promise.resolve(backend.open.size), (open) => open === 0)).toBe(0);
    const list = await getJson<{ active_connections: number }[]>(`${daemon.adminUrl}/backends`);
    expect(list[0]?.active_connections).toBe(0);
  });

  it('keeps a connection open while bytes flow, for many times idle_timeout', async () => {
    const { port } = await setup(FLOWING_IDLE_MS);
    const socket = await connected(port);
    let closedEarly = false;
    socket.once('close', () => (closedEarly = true));
    // Pacing, not synchronisation: gaps without bytes that add up to several timeouts must
    // not close it (a timeout judged on the sum of idle gaps would).
    const until = Date.now() + FLOWING_IDLE_MS * 3;
    for (let i = 0; Date.now() < until && i < 100; i++) {
      await echo(socket, `tick ${i}`);
      await new Promise((resolve) => setTimeout(resolve, FLOWING_IDLE_MS / 10));
    }
    expect(closedEarly).toBe(false);
    // Once the bytes stop, the same connection is closed as idle.
    await closed(socket);
  });
});
