import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, startBlackholeBackend, type TestBackend } from '../helpers/backends.ts';
import { eventually, getJson, manyRoundTrips, roundTrip } from '../helpers/client.ts';
import { startDaemon, tcpConfig, type Daemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';
import { idleResources } from '../helpers/resources.ts';

interface BackendJson {
  id: string;
  address: string;
  state: string;
  active_connections: number;
  connections_total: number;
  connect_failures_total: number;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function backends(n: number, behaviour: 'echo' | 'name'): Promise<TestBackend[]> {
  const started = await Promise.all(Array.from({ length: n }, async () => startBackend(behaviour)));
  for (const b of started) cleanups.push(async () => b.close());
  return started;
}

async function daemonFor(addresses: string[], extra: Partial<Parameters<typeof tcpConfig>[0]> = {}): Promise<{ daemon: Daemon; port: number }> {
  const [port, adminPort] = await freePorts(2);
  if (port === undefined || adminPort === undefined) throw new Error('no ports');
  const daemon = await startDaemon(tcpConfig({ listenPort: port, adminPort, backends: addresses, workers: 2, ...extra }), adminPort);
  cleanups.push(async () => daemon.stop('SIGKILL'));
  return { daemon, port };
}

describe('TCP proxy through the real daemon', () => {
  it.each([
    ['1 byte', 1],
    ['64 KiB', 64 * 1024],
    ['50 MiB', 50 * 1024 * 1024],
  ])('returns %s unchanged when the client half-closes after its write', async (_name, size) => {
    const [echo] = await backends(1, 'echo');
    const { port } = await daemonFor([echo!.address]);
    const payload = randomBytes(size);
    const reply = await roundTrip(port, payload);
    expect(reply.length).toBe(size);
    expect(reply.equals(payload)).toBe(true);
  });

  it('splits 1,000 connections between two backends 50% ± 5% across all workers', async () => {
    const named = await backends(2, 'name');
    const { port } = await daemonFor(named.map((b) => b.address));
    const replies = await manyRoundTrips(port, 1000, 40);
    const share = replies.filter((r) => r === named[0]!.address).length / replies.length;
    expect(replies.every((r) => r === named[0]!.address || r === named[1]!.address)).toBe(true);
    expect(share).toBeGreaterThanOrEqual(0.45);
    expect(share).toBeLessThanOrEqual(0.55);
  });

  it('serves every client through another backend when one refuses connections', async () => {
    const [alive] = await backends(1, 'name');
    const [refusedPort] = await freePorts(1); // nothing listens there: connect gets ECONNREFUSED
    const refused = `127.0.0.1:${refusedPort}`;
    const { daemon, port } = await daemonFor([refused, alive!.address]);
    const replies = await manyRoundTrips(port, 100, 10);
    expect(replies).toEqual(Array.from({ length: 100 }, () => alive!.address));
    const list = await getJson<BackendJson[]>(`${daemon.adminUrl}/backends`);
    expect(list.find((b) => b.address === refused)?.connect_failures_total).toBeGreaterThan(0);
  });

  it('ends a connect attempt that never completes at connect_timeout and serves the client elsewhere', async () => {
    const blackhole = await startBlackholeBackend();
    cleanups.push(async () => blackhole.close());
    const [alive] = await backends(1, 'name');
    const { daemon, port } = await daemonFor([blackhole.address, alive!.address], { workers: 1, connectTimeout: '300ms' });
    // With one worker and round robin, the first connection goes to the black hole.
    const started = Date.now();
    const reply = await roundTrip(port, Buffer.from('hi'));
    const elapsed = Date.now() - started;
    expect(reply.toString()).toBe(alive!.address);
    // Not before connect_timeout; that it was the timeout (and not the kernel's own, minutes
    // later) the failure count and the test's time limit say, so no upper bound here.
    expect(elapsed).toBeGreaterThanOrEqual(290);
    const list = await getJson<BackendJson[]>(`${daemon.adminUrl}/backends`);
    expect(list.find((b) => b.address === blackhole.address)?.connect_failures_total).toBe(1);
  });

  it('returns active counters to 0 and leaves no socket or timer in any worker after clients close', async () => {
    const echoes = await backends(2, 'echo');
    const { daemon, port } = await daemonFor(echoes.map((b) => b.address));
    const held = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const socket = net.connect(port, '127.0.0.1');
        await new Promise((resolve) => socket.once('connect', resolve));
        socket.write('ping');
        await new Promise((resolve) => socket.once('data', resolve));
        return socket;
      }),
    );
    const during = await getJson<BackendJson[]>(`${daemon.adminUrl}/backends`);
    expect(during.reduce((sum, b) => sum + b.active_connections, 0)).toBe(20);

    for (const socket of held) socket.end();
    const after = await eventually(
      async () => getJson<BackendJson[]>(`${daemon.adminUrl}/backends`),
      (list) => list.every((b) => b.active_connections === 0),
    );
    expect(after.map((b) => b.active_connections)).toEqual([0, 0]);
    expect(after.reduce((sum, b) => sum + b.connections_total, 0)).toBe(20);

    const resources = await idleResources(daemon.adminUrl);
    expect(resources.workers).toHaveLength(2);
    for (const worker of resources.workers) {
      expect(worker.connections).toBe(0);
      // Only the listening socket and the message port remain: no client or backend
      // socket, no timer.
      expect(worker.resources['TCPSocketWrap'] ?? 0).toBe(0);
      expect(worker.resources['Timeout'] ?? 0).toBe(0);
      expect(worker.resources['TCPServerWrap']).toBe(1);
    }
  });

  it('stops with exit code 0 on SIGTERM', async () => {
    const [echo] = await backends(1, 'echo');
    const { daemon } = await daemonFor([echo!.address]);
    expect(await daemon.stop('SIGTERM')).toBe(0);
  });
});
