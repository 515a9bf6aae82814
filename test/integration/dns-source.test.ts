import { afterEach, describe, expect, it } from 'vitest';
import { DnsSource, lookupEndpoints } from '../../src/controlplane/discovery/dns-source.ts';
import { EMPTY_STATE, reconcile } from '../../src/controlplane/discovery/reconciler.ts';
import type { ReconcileOutput } from '../../src/controlplane/discovery/reconciler.ts';
import { parseResolvers } from '../../src/controlplane/discovery/dns-client.ts';
import type { DnsDiscoveryConfig } from '../../src/shared/config/discovery-schema.ts';
import type { DiscoveryResult } from '../../src/controlplane/discovery/types.ts';
import { eventually } from '../helpers/client.ts';
import { startDnsmasq } from '../helpers/dnsmasq.ts';
import type { Dnsmasq } from '../helpers/dnsmasq.ts';

const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const item of running.splice(0).reverse()) await item.stop();
});

async function dnsmasq(options: Parameters<typeof startDnsmasq>[0]): Promise<Dnsmasq> {
  const server = await startDnsmasq(options);
  running.push(server);
  return server;
}

/** A config as the schema would produce it, with a refresh fast enough for a test. */
function dnsConfig(server: { address: string }, fields: Pick<DnsDiscoveryConfig, 'name' | 'record'> & { port?: number }): DnsDiscoveryConfig {
  return { type: 'dns', resolvers: [server.address], refresh: { min: 20, max: 200, default: 50 }, hold_obsolete: 30_000, hold_failure: 0, ...fields };
}

function startSource(config: DnsDiscoveryConfig, timeoutMs = 1_000): { reports: DiscoveryResult[] } {
  const source = new DnsSource(config, { timeoutMs });
  const reports: DiscoveryResult[] = [];
  source.start((result) => reports.push(result));
  running.push(source);
  return { reports };
}

function addresses(result: DiscoveryResult | undefined): string[] {
  return result?.kind === 'answer' ? result.endpoints.map((endpoint) => endpoint.address) : [];
}

describe('DNS discovery against dnsmasq', () => {
  it('reads A records as endpoints on the configured port', async () => {
    const server = await dnsmasq({ hosts: ['10.1.0.2 api.test', '10.1.0.1 api.test', '10.9.9.9 other.test'] });
    const result = await lookupEndpoints({ name: 'api.test', record: 'a', port: 8080 }, { resolvers: parseResolvers([server.address]), timeoutMs: 1_000 });
    expect(result).toEqual({
      kind: 'answer',
      endpoints: [
        { address: '10.1.0.1:8080', weight: 1, tier: 0, condition: 'ready' },
        { address: '10.1.0.2:8080', weight: 1, tier: 0, condition: 'ready' },
      ],
      ttlSeconds: 0,
    });
  });

  it('reads AAAA records as bracketed addresses', async () => {
    const server = await dnsmasq({ hosts: ['fd00::1 api.test', '10.1.0.1 api.test'] });
    const result = await lookupEndpoints({ name: 'api.test', record: 'aaaa', port: 443 }, { resolvers: parseResolvers([server.address]), timeoutMs: 1_000 });
    expect(addresses(result)).toEqual(['[fd00::1]:443']);
  });

  it('sees an A record added and one removed after dnsmasq re-reads its hosts file (SIGHUP)', async () => {
    const server = await dnsmasq({ hosts: ['10.1.0.1 api.test'] });
    const { reports } = startSource(dnsConfig(server, { name: 'api.test', record: 'a', port: 80 }));
    await eventually(() => Promise.resolve(reports.at(-1)), (last) => addresses(last).length === 1);
    expect(addresses(reports.at(-1))).toEqual(['10.1.0.1:80']);

    await server.setHosts(['10.1.0.1 api.test', '10.1.0.2 api.test']);
    await eventually(() => Promise.resolve(reports.at(-1)), (last) => addresses(last).length === 2);
    expect(addresses(reports.at(-1))).toEqual(['10.1.0.1:80', '10.1.0.2:80']);

    await server.setHosts(['10.1.0.2 api.test']);
    await eventually(() => Promise.resolve(reports.at(-1)), (last) => addresses(last).length === 1);
    expect(addresses(reports.at(-1))).toEqual(['10.1.0.2:80']);
    expect(reports.every((report) => report.kind === 'answer')).toBe(true);
  });

  it('maps SRV priorities to tiers and RFC 2782 weights to weights >= 1', async () => {
    const server = await dnsmasq({
      hosts: ['10.2.0.1 a1.test', '10.2.0.2 a2.test', '10.2.0.3 b1.test'],
      srv: ['_api._tcp.test,a1.test,8080,10,0', '_api._tcp.test,a2.test,8081,10,3', '_api._tcp.test,b1.test,9090,20,0'],
      localTtl: 7,
    });
    const result = await lookupEndpoints({ name: '_api._tcp.test', record: 'srv' }, { resolvers: parseResolvers([server.address]), timeoutMs: 1_000 });
    expect(result).toEqual({
      kind: 'answer',
      endpoints: [
        { address: '10.2.0.1:8080', weight: 1, tier: 0, condition: 'ready' },
        { address: '10.2.0.2:8081', weight: 300, tier: 0, condition: 'ready' },
        { address: '10.2.0.3:9090', weight: 1, tier: 1, condition: 'ready' },
      ],
      ttlSeconds: 7,
    });
  });

  it('answers NXDOMAIN with a good, empty answer (not an error)', async () => {
    const server = await dnsmasq({ hosts: ['10.1.0.1 api.test'] });
    for (const [name, record] of [['gone.test', 'a'], ['_gone._tcp.test', 'srv']] as const) {
      const result = await lookupEndpoints({ name, record, port: 80 }, { resolvers: parseResolvers([server.address]), timeoutMs: 1_000 });
      expect(result.kind, name).toBe('answer');
      expect(addresses(result), name).toEqual([]);
    }
  });

  it('reports errors, not empty answers, once dnsmasq is stopped', async () => {
    const server = await dnsmasq({ hosts: ['10.1.0.1 api.test'] });
    const config = dnsConfig(server, { name: 'api.test', record: 'a', port: 80 });
    const { reports } = startSource(config, 100);
    await eventually(() => Promise.resolve(reports.length), (count) => count >= 1);
    expect(addresses(reports[0])).toEqual(['10.1.0.1:80']);

    await running.splice(running.indexOf(server), 1)[0]?.stop();
    const before = reports.length;
    await eventually(() => Promise.resolve(reports.slice(before)), (later) => later.filter((r) => r.kind === 'error').length >= 2);
    const errors = reports.slice(before).filter((report) => report.kind === 'error');
    expect(errors[0]).toEqual({ kind: 'error', message: `api.test A: ${server.address}: udp: no answer within 100 ms` });
  });

  it('end to end with the reconciler: a removed record drains, a dead server keeps the set unchanged', async () => {
    const server = await dnsmasq({ hosts: ['10.1.0.1 api.test', '10.1.0.2 api.test'] });
    const source = new DnsSource(dnsConfig(server, { name: 'api.test', record: 'a', port: 80 }), { timeoutMs: 100 });
    running.push(source);
    const outputs: ReconcileOutput[] = [];
    let state = EMPTY_STATE;
    source.start((result) => {
      const output = reconcile(state, result, Date.now(), { holdObsolete: 60_000, holdFailure: 0 });
      state = output.state;
      outputs.push(output);
    });
    const view = (output: ReconcileOutput | undefined): string[] => output?.desired.map((d) => `${d.address} ${d.action}`) ?? [];
    await eventually(() => Promise.resolve(outputs.length), (count) => count >= 1);
    expect(view(outputs[0])).toEqual(['10.1.0.1:80 serve', '10.1.0.2:80 serve']);

    await server.setHosts(['10.1.0.2 api.test']);
    await eventually(() => Promise.resolve(outputs.at(-1)), (last) => view(last).includes('10.1.0.1:80 drain'));
    expect(view(outputs.at(-1))).toEqual(['10.1.0.1:80 drain', '10.1.0.2:80 serve']);
    // Refreshes that bring nothing new publish nothing.
    const settled = outputs.length;
    await eventually(() => Promise.resolve(outputs.length), (count) => count >= settled + 2);
    expect(outputs.slice(settled).map((output) => output.changed)).toEqual(outputs.slice(settled).map(() => false));

    await running.splice(running.indexOf(server), 1)[0]?.stop();
    const alive = outputs.length;
    await eventually(() => Promise.resolve(outputs.length), (count) => count >= alive + 2);
    expect(outputs.slice(alive).map((output) => [view(output), output.changed])).toEqual(
      outputs.slice(alive).map(() => [['10.1.0.1:80 drain', '10.1.0.2:80 serve'], false]),
    );
  });
});
