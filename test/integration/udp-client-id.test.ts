import { afterEach, describe, expect, it } from 'vitest';
import { getJson } from '../helpers/client.ts';
import { startDaemon, udpConfig } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';
import { startUdpBackend, udpClient, type UdpClient } from '../helpers/udp.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Every datagram `c` receives, as text. */
function inbox(c: UdpClient): string[] {
  const got: string[] = [];
  c.socket.on('message', (m: Buffer) => got.push(m.toString()));
  cleanups.push(() => {
    c.close();
    return Promise.resolve();
  });
  return got;
}

describe('UDP sessions are told apart by client address and port', () => {
  it('gives two clients on one source port but different addresses a session each, and each only its own replies', async () => {
    const backends = await Promise.all([startUdpBackend('tagged'), startUdpBackend('tagged')]);
    for (const b of backends) cleanups.push(() => b.close());
    const [port, adminPort] = await freePorts(2);
    if (port === undefined || adminPort === undefined) throw new Error('no ports');
    const daemon = await startDaemon(udpConfig({ listenPort: port, adminPort, backends: backends.map((b) => b.address), workers: 1 }), adminPort);
    cleanups.push(async () => daemon.stop('SIGKILL'));

    // Same port on 127.0.0.1 and 127.0.0.2 (both loopback on Linux): a session key that
    // dropped the address would give both one session and send B's replies to A.
    const a = await udpClient('127.0.0.1');
    const b = await udpClient('127.0.0.2', a.port);
    const gotA = inbox(a);
    const gotB = inbox(b);
    for (let i = 1; i <= 5; i++) {
      const [ra, rb] = await Promise.all([a.request(port, Buffer.from(`a-${i}`)), b.request(port, Buffer.from(`b-${i}`))]);
      expect(ra.toString()).toMatch(new RegExp(`\\|a-${i}$`));
      expect(rb.toString()).toMatch(new RegExp(`\\|b-${i}$`));
    }
    expect(gotA.every((r) => r.includes('|a-'))).toBe(true);
    expect(gotB.every((r) => r.includes('|b-'))).toBe(true);
    // One session each, on the backend it started with (round robin: one backend each).
    const backendOf = (got: string[]): Set<string> => new Set(got.map((r) => r.slice(0, r.indexOf('|'))));
    expect(backendOf(gotA).size).toBe(1);
    expect(backendOf(gotB).size).toBe(1);
    const list = await getJson<{ udp_sessions_total: number }[]>(`${daemon.adminUrl}/backends`);
    expect(list.reduce((n, x) => n + x.udp_sessions_total, 0)).toBe(2);
  });
});
