import type dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { HandedOverAffinities, handoverSessions, HeldDatagrams } from '../../../src/dataplane/udp-handover.ts';
import { udpSessionsOf } from '../../../src/supervisor/handover.ts';
import type { UdpHandoverSession } from '../../../src/shared/messages.ts';

const session = (client: string, backend: string, idleMs: number): UdpHandoverSession => ({ client, cluster: 'dns', backend, idleMs });
const remote = (port: number): dgram.RemoteInfo => ({ address: '127.0.0.1', family: 'IPv4', port, size: 1 });

describe('HandedOverAffinities', () => {
  const timeoutMs = 1000;
  const cases: { name: string; sessions: UdpHandoverSession[]; capacity: number; take: [string, number][]; expected: (string | undefined)[] }[] = [
    {
      name: 'gives a client its backend once',
      sessions: [session('c:1', 'dns:b1', 0)],
      capacity: 10,
      take: [['c:1', 100], ['c:1', 100]],
      expected: ['dns:b1', undefined],
    },
    {
      name: 'an unknown client has none',
      sessions: [session('c:1', 'dns:b1', 0)],
      capacity: 10,
      take: [['c:2', 100]],
      expected: [undefined],
    },
    {
      name: 'an entry lapses when its session would have timed out on the old side',
      sessions: [session('c:1', 'dns:b1', 600), session('c:2', 'dns:b2', 0)],
      capacity: 10,
      take: [['c:1', 400], ['c:2', 999]],
      expected: [undefined, 'dns:b2'],
    },
    {
      name: 'an already expired session is left out',
      sessions: [session('c:1', 'dns:b1', 1000)],
      capacity: 10,
      take: [['c:1', 0]],
      expected: [undefined],
    },
    {
      name: 'keeps at most capacity entries, the first (most recent) ones',
      sessions: [session('c:1', 'dns:b1', 0), session('c:2', 'dns:b2', 5), session('c:3', 'dns:b1', 9)],
      capacity: 2,
      take: [['c:1', 10], ['c:2', 10], ['c:3', 10]],
      expected: ['dns:b1', 'dns:b2', undefined],
    },
    {
      name: 'a client exported twice (two old workers) keeps the first, most recent entry',
      sessions: [session('c:1', 'dns:b2', 0), session('c:1', 'dns:b1', 50)],
      capacity: 10,
      take: [['c:1', 10]],
      expected: ['dns:b2'],
    },
    {
      name: 'after the last expiry the whole table is dropped',
      sessions: [session('c:1', 'dns:b1', 0), session('c:2', 'dns:b2', 0)],
      capacity: 10,
      take: [['c:1', 1000], ['c:2', 10]],
      expected: [undefined, undefined],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const table = new HandedOverAffinities(c.sessions, 0, timeoutMs, c.capacity);
      expect(c.take.map(([client, now]) => table.take(client, now)?.backend)).toEqual(c.expected);
    });
  }
});

describe('handoverSessions', () => {
  const nodes = [
    { key: 'c:1', lastActive: 10, route: { name: 'dns' }, backend: { id: 'dns:b1' } },
    { key: 'c:2', lastActive: 20, route: { name: 'dns' }, backend: { id: 'dns:b2' } },
    { key: 'c:3', lastActive: 30.4, route: { name: 'web' }, backend: { id: 'web:b3' } },
  ];
  it('exports the most recently active first, with how long each has been idle', () => {
    expect(handoverSessions(nodes, 40, 10)).toEqual([
      { client: 'c:3', cluster: 'web', backend: 'web:b3', idleMs: 10 },
      { client: 'c:2', cluster: 'dns', backend: 'dns:b2', idleMs: 20 },
      { client: 'c:1', cluster: 'dns', backend: 'dns:b1', idleMs: 30 },
    ]);
  });
  it('stops at the limit', () => {
    expect(handoverSessions(nodes, 40, 1).map((s) => s.client)).toEqual(['c:3']);
  });
});

describe('HeldDatagrams', () => {
  it('holds in arrival order up to its count, then refuses', () => {
    const held = new HeldDatagrams(2, 1000);
    expect([held.push(Buffer.from('a'), remote(1)), held.push(Buffer.from('b'), remote(2)), held.push(Buffer.from('c'), remote(3))]).toEqual([true, true, false]);
    expect(held.take().map((h) => `${h.datagram.toString()}@${h.client.port}`)).toEqual(['a@1', 'b@2']);
    expect(held.size).toBe(0);
  });
  it('refuses a datagram over its byte bound, and takes again after a take', () => {
    const held = new HeldDatagrams(10, 4);
    expect([held.push(Buffer.from('abc'), remote(1)), held.push(Buffer.from('de'), remote(2))]).toEqual([true, false]);
    held.take();
    expect(held.push(Buffer.from('de'), remote(2))).toBe(true);
  });
});

describe('udpSessionsOf (the drain answer, new side)', () => {
  const good = session('c:1', 'dns:b1', 3);
  const cases: { name: string; body: unknown; expected: unknown }[] = [
    { name: 'an older Sluice answers without sessions', body: { status: 'draining', handover: true }, expected: [] },
    { name: 'no body', body: undefined, expected: [] },
    { name: 'a table', body: { udp_sessions: [{ listener: 'dns', sessions: [good] }] }, expected: [{ listener: 'dns', sessions: [good] }] },
    {
      name: 'malformed entries are skipped, not fatal',
      body: { udp_sessions: [{ listener: 'dns', sessions: [good, { client: 'c:2' }, { ...good, idleMs: -1 }] }, { listener: 7, sessions: [] }, null] },
      expected: [{ listener: 'dns', sessions: [good] }],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(udpSessionsOf(c.body)).toEqual(c.expected);
    });
  }
});
