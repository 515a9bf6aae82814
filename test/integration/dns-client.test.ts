import { afterEach, describe, expect, it } from 'vitest';
import type { Answer, Question } from 'dns-packet';
import { queryDns } from '../../src/controlplane/discovery/dns-client.ts';
import { DnsSource, MAX_TARGET_LOOKUPS, lookupEndpoints } from '../../src/controlplane/discovery/dns-source.ts';
import type { DiscoveryResult } from '../../src/controlplane/discovery/types.ts';
import { eventually } from '../helpers/client.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import type { ScriptedAnswer, TestDnsServer } from '../helpers/dns-server.ts';

const servers: TestDnsServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function server(answer: (question: Question) => ScriptedAnswer): Promise<TestDnsServer> {
  const started = await startDnsServer(answer);
  servers.push(started);
  return started;
}

function resolversOf(...list: TestDnsServer[]): { host: string; port: number }[] {
  return list.map((s) => ({ host: '127.0.0.1', port: s.port }));
}

/**
 * `count` SRV records on `hosts` hosts (record i: host i % hosts, port 10000 + i), with the
 * hosts' A records in the additional section or not. dns-packet does not compress names, so
 * short names keep 1,000 records within one 64 KiB TCP message, as a real server's would.
 */
function srvRecords(count: number, hosts: number, withAddresses: boolean): { answers: Answer[]; additionals: Answer[] } {
  const answers: Answer[] = [];
  const additionals: Answer[] = [];
  for (let i = 0; i < count; i++) {
    answers.push({ type: 'SRV', name: '_api._tcp.example', ttl: 30, data: { priority: i % 2, weight: (i % 5) + 1, port: 10_000 + i, target: `n${i % hosts}.x` } });
  }
  if (withAddresses) for (let h = 0; h < hosts; h++) additionals.push({ type: 'A', name: `n${h}.x`, ttl: 20, data: `10.0.${h >> 8}.${h & 255}` });
  return { answers, additionals };
}

const OPTIONS = { timeoutMs: 300 };

describe('queryDns error classes', () => {
  const table: [string, ScriptedAnswer, string, string][] = [
    ['SERVFAIL', { rcode: 'SERVFAIL' }, 'servfail', 'SERVFAIL'],
    ['REFUSED', { rcode: 'REFUSED' }, 'refused', 'REFUSED'],
    ['silence', { silent: true }, 'timeout', 'udp: no answer within 300 ms'],
  ];
  it.each(table)('%s is an error, never an empty answer', async (_name, scripted, code, message) => {
    const s = await server(() => scripted);
    const lookup = await queryDns('api.example', 'A', { resolvers: resolversOf(s), ...OPTIONS });
    expect(lookup).toEqual({ ok: false, code, message: `127.0.0.1:${s.port}: ${message}` });
  });

  it('NXDOMAIN is a good empty answer carrying the SOA negative TTL', async () => {
    const soa: Answer = { type: 'SOA', name: 'example', ttl: 300, data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 12 } };
    const s = await server(() => ({ rcode: 'NXDOMAIN', authorities: [soa] }));
    const lookup = await queryDns('gone.example', 'A', { resolvers: resolversOf(s), ...OPTIONS });
    expect(lookup).toEqual({ ok: true, nxdomain: true, answers: [], additionals: [], negativeTtl: 12 });
  });

  it('ignores a reply with another id (RFC 5452) and takes the real one', async () => {
    const s = await server((question) => ({
      forgedFirst: [{ type: 'A', name: question.name, ttl: 5, data: '192.0.2.66' }],
      answers: [{ type: 'A', name: question.name, ttl: 5, data: '10.0.0.7' }],
    }));
    const result = await lookupEndpoints({ name: 'api.example', record: 'a', port: 80 }, { resolvers: resolversOf(s), ...OPTIONS });
    expect(addressesOf(result)).toEqual(['10.0.0.7:80']);
  });

  it('asks the next resolver when one fails', async () => {
    const broken = await server(() => ({ rcode: 'SERVFAIL' }));
    const good = await server(() => ({ answers: [{ type: 'A', name: 'api.example', ttl: 5, data: '10.0.0.7' }] }));
    const result = await lookupEndpoints({ name: 'api.example', record: 'a', port: 80 }, { resolvers: resolversOf(broken, good), ...OPTIONS });
    expect(result).toEqual({ kind: 'answer', endpoints: [{ address: '10.0.0.7:80', weight: 1, tier: 0, condition: 'ready' }], ttlSeconds: 5 });
    expect([broken.log, good.log]).toEqual([['udp A api.example'], ['udp A api.example']]);
  });
});

describe('truncated answers', () => {
  it('retries a truncated UDP answer over TCP', async () => {
    const s = await server((question) => ({ truncate: true, answers: [{ type: 'A', name: question.name, ttl: 5, data: '10.0.0.7' }] }));
    const result = await lookupEndpoints({ name: 'api.example', record: 'a', port: 80 }, { resolvers: resolversOf(s), ...OPTIONS });
    expect(addressesOf(result)).toEqual(['10.0.0.7:80']);
    expect(s.log).toEqual(['udp A api.example', 'tcp A api.example']);
  });

  it('reads 1,000 SRV records with their addresses (over TCP) into 1,000 endpoints', async () => {
    const records = srvRecords(1_000, 250, true);
    const s = await server(() => records);
    const result = await lookupEndpoints({ name: '_api._tcp.example', record: 'srv' }, { resolvers: resolversOf(s), ...OPTIONS });
    expect(s.log).toEqual(['udp SRV _api._tcp.example', 'tcp SRV _api._tcp.example']);
    expect(result.kind).toBe('answer');
    const endpoints = result.kind === 'answer' ? result.endpoints : [];
    expect(endpoints).toHaveLength(1_000);
    expect(endpoints.filter((endpoint) => endpoint.tier === 0)).toHaveLength(500);
    expect(endpoints.find((endpoint) => endpoint.address === '10.0.0.9:10259')).toEqual({ address: '10.0.0.9:10259', weight: 5, tier: 1, condition: 'ready' });
    // The addresses (TTL 20) expire before the SRV records (TTL 30).
    expect(result.kind === 'answer' ? result.ttlSeconds : undefined).toBe(20);
  });
});

describe('SRV targets', () => {
  it('looks up targets the answer gave no address for (A and AAAA)', async () => {
    const s = await server((question) => {
      if (question.type === 'SRV') return srvRecords(3, 3, false);
      if (question.type === 'AAAA') return question.name === 'n1.x' ? { answers: [{ type: 'AAAA', name: question.name, ttl: 4, data: 'fd00::1' }] } : {};
      const index = /n(\d+)/.exec(question.name)?.[1] ?? '9';
      return { answers: [{ type: 'A', name: question.name, ttl: 9, data: `10.0.0.${index}` }] };
    });
    const result = await lookupEndpoints({ name: '_api._tcp.example', record: 'srv' }, { resolvers: resolversOf(s), ...OPTIONS });
    expect(addressesOf(result)).toEqual(['10.0.0.0:10000', '10.0.0.1:10001', '10.0.0.2:10002', '[fd00::1]:10001']);
    expect(result.kind === 'answer' ? result.ttlSeconds : undefined).toBe(4);
    expect(s.log.filter((line) => line.startsWith('udp A '))).toHaveLength(3);
  });

  it('fails the whole refresh (keeping the last set) when a target lookup fails', async () => {
    const s = await server((question) => (question.type === 'SRV' ? srvRecords(2, 2, false) : question.name === 'n1.x' ? { rcode: 'SERVFAIL' } : {}));
    const result = await lookupEndpoints({ name: '_api._tcp.example', record: 'srv' }, { resolvers: resolversOf(s), ...OPTIONS });
    expect(result.kind).toBe('error');
    expect(result.kind === 'error' ? result.message : '').toMatch(/^_api\._tcp\.example SRV target n1\.x A{1,4}: 127\.0\.0\.1:\d+: SERVFAIL$/);
  });

  it(`refuses to look up more than ${MAX_TARGET_LOOKUPS} targets one by one`, async () => {
    const s = await server((question) => (question.type === 'SRV' ? srvRecords(MAX_TARGET_LOOKUPS + 1, MAX_TARGET_LOOKUPS + 1, false) : {}));
    const result = await lookupEndpoints({ name: '_api._tcp.example', record: 'srv' }, { resolvers: resolversOf(s), ...OPTIONS });
    expect(result).toEqual({ kind: 'error', message: `_api._tcp.example SRV: ${MAX_TARGET_LOOKUPS + 1} targets without addresses in the answer; at most ${MAX_TARGET_LOOKUPS} are looked up` });
    expect(s.log).toEqual(['udp SRV _api._tcp.example', 'tcp SRV _api._tcp.example']);
  });
});

describe('DnsSource lifecycle', () => {
  it('backs off after errors and recovers on the next good answer', async () => {
    let failing = true;
    const s = await server((question) => (failing ? { rcode: 'SERVFAIL' } : { answers: [{ type: 'A', name: question.name, ttl: 0, data: '10.0.0.7' }] }));
    const source = new DnsSource(
      { type: 'dns', name: 'api.example', record: 'a', port: 80, resolvers: [`127.0.0.1:${s.port}`], refresh: { min: 10, max: 40, default: 20 }, hold_obsolete: 0, hold_failure: 0 },
      { timeoutMs: 300, random: () => 0 },
    );
    const reports: DiscoveryResult[] = [];
    source.start((result) => reports.push(result));
    await eventually(() => Promise.resolve(reports.length), (count) => count >= 3);
    failing = false;
    await eventually(() => Promise.resolve(reports.at(-1)?.kind), (kind) => kind === 'answer');
    await source.stop();
    const count = reports.length;
    expect(reports[0]).toEqual({ kind: 'error', message: `api.example A: 127.0.0.1:${s.port}: SERVFAIL` });
    expect(reports.at(-1)).toEqual({ kind: 'answer', endpoints: [{ address: '10.0.0.7:80', weight: 1, tier: 0, condition: 'ready' }], ttlSeconds: 0 });
    // Nothing is reported after stop(): no timer is left behind.
    await new Promise((resolve) => setImmediate(resolve));
    expect(reports.length).toBe(count);
  });

  it('stop() during a lookup closes its socket and timers at once', async () => {
    const s = await server(() => ({ silent: true }));
    // Sockets of earlier tests finish closing on a later turn of the loop.
    await eventually(() => Promise.resolve(resourceCounts().UDPWrap), (count) => count === 1);
    const before = resourceCounts();
    const source = new DnsSource(
      { type: 'dns', name: 'api.example', record: 'a', port: 80, resolvers: [`127.0.0.1:${s.port}`], refresh: { min: 10, max: 40, default: 20 }, hold_obsolete: 0, hold_failure: 0 },
      { timeoutMs: 60_000 },
    );
    const reports: DiscoveryResult[] = [];
    source.start((result) => reports.push(result));
    await eventually(() => Promise.resolve(s.log.length), (count) => count >= 1);
    expect(resourceCounts().UDPWrap).toBe(before.UDPWrap + 1);
    // Not awaited first: without the abort, stop() would wait out the 60 s query timeout.
    const stopped = source.stop();
    const after = await eventually(() => Promise.resolve(resourceCounts()), (counts) => counts.UDPWrap === before.UDPWrap && counts.Timeout <= before.Timeout);
    expect(after.UDPWrap).toBe(before.UDPWrap);
    expect(after.TCPWrap).toBe(before.TCPWrap);
    // The 60 s query timeout is gone too (a leftover timer of an earlier test may also have fired).
    expect(after.Timeout).toBeLessThanOrEqual(before.Timeout);
    await stopped;
    expect(reports).toEqual([]);
  });
});

function addressesOf(result: DiscoveryResult): string[] {
  return result.kind === 'answer' ? result.endpoints.map((endpoint) => endpoint.address) : [];
}

function resourceCounts(): { UDPWrap: number; TCPWrap: number; Timeout: number } {
  const info = process.getActiveResourcesInfo();
  const count = (kind: string): number => info.filter((entry) => entry === kind).length;
  return { UDPWrap: count('UDPWrap'), TCPWrap: count('TCPWrap'), Timeout: count('Timeout') };
}
