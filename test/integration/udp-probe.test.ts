import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { probeUdp } from '../../src/controlplane/health/udp-probe.ts';
import { freeUdpPort } from '../helpers/udp.ts';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** A UDP server on 127.0.0.1 that answers each datagram with `answer(datagram)` (or stays silent). */
async function server(answer: (datagram: Buffer) => Buffer | undefined): Promise<{ port: number; received: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (datagram, remote) => {
    received.push(datagram);
    const reply = answer(datagram);
    if (reply !== undefined) socket.send(reply, remote.port, remote.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  cleanups.push(() => socket.close());
  return { port: socket.address().port, received };
}

function udpHandles(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'UDPWrap').length;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

function timers(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
}

describe('the UDP health probe', () => {
  // Probes that get an answer have a timeout far above any loaded machine's round trip: it
  // only bounds a hang, and they resolve at the reply.
  it('passes when the reply contains the expected text', async () => {
    const backend = await server((d) => Buffer.from(`+${d.toString()} pong`));
    const result = await probeUdp({ host: '127.0.0.1', port: backend.port }, { send: 'ping', expect: 'pong', timeout: 10_000 });
    expect(result).toEqual({ ok: true, detail: 'expected reply', timedOut: false });
    expect(backend.received.map((d) => d.toString())).toEqual(['ping']);
  });

  it('sends and expects hex payloads as bytes', async () => {
    // A DNS-like exchange: the reply echoes the query id and sets the response bit.
    const backend = await server((d) => Buffer.from([d[0] ?? 0, d[1] ?? 0, 0x81, 0x80]));
    const result = await probeUdp(
      { host: '127.0.0.1', port: backend.port },
      { send: 'hex:ab cd 01 00', expect: 'hex:abcd8180', timeout: 10_000 },
    );
    expect(result.ok).toBe(true);
    expect([...(backend.received[0] ?? [])]).toEqual([0xab, 0xcd, 0x01, 0x00]);
  });

  it('passes on any reply when nothing is expected', async () => {
    const backend = await server(() => Buffer.from('whatever'));
    expect(await probeUdp({ host: '127.0.0.1', port: backend.port }, { send: 'ping', timeout: 10_000 })).toEqual({ ok: true, detail: 'reply', timedOut: false });
  });

  it('fails on a reply without the expected text, quoting what came back', async () => {
    const backend = await server(() => Buffer.from('busy'));
    const result = await probeUdp({ host: '127.0.0.1', port: backend.port }, { send: 'ping', expect: 'pong', timeout: 10_000 });
    expect(result).toEqual({ ok: false, detail: 'unexpected reply "busy"', timedOut: false });
  });

  it('fails fast on ICMP port unreachable when nothing listens', async () => {
    const port = await freeUdpPort();
    // Refused, not timed out: the result says which, so no clock is needed to tell.
    const result = await probeUdp({ host: '127.0.0.1', port }, { send: 'ping', expect: 'pong', timeout: 60_000 });
    expect(result).toEqual({ ok: false, detail: 'port unreachable (ECONNREFUSED)', timedOut: false });
  });

  it('fails at the timeout when the backend stays silent', async () => {
    const backend = await server(() => undefined);
    const started = Date.now();
    const result = await probeUdp({ host: '127.0.0.1', port: backend.port }, { send: 'ping', timeout: 200 });
    expect(result).toEqual({ ok: false, detail: 'no reply within 200ms', timedOut: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(backend.received).toHaveLength(1);
  });

  it('leaves no socket or timer behind, whatever the outcome', async () => {
    const silent = await server(() => undefined);
    const answering = await server(() => Buffer.from('pong'));
    const refused = await freeUdpPort();
    // Handles closed earlier finish closing on a later loop turn.
    await settle();
    const before = { udp: udpHandles(), timers: timers() };
    await Promise.all([
      probeUdp({ host: '127.0.0.1', port: silent.port }, { send: 'ping', timeout: 100 }),
      probeUdp({ host: '127.0.0.1', port: answering.port }, { send: 'ping', expect: 'pong', timeout: 10_000 }),
      probeUdp({ host: '127.0.0.1', port: answering.port }, { send: 'ping', expect: 'nope', timeout: 10_000 }),
      probeUdp({ host: '127.0.0.1', port: refused }, { send: 'ping', timeout: 10_000 }),
    ]);
    await settle();
    // Not more than before (the runner's own timers may come and go meanwhile).
    expect(udpHandles()).toBeLessThanOrEqual(before.udp);
    expect(timers()).toBeLessThanOrEqual(before.timers);
  });
});
