import { describe, expect, it } from 'vitest';
import { buildRoutingTable } from '../../../src/dataplane/routing-table.ts';
import type { Snapshot, SnapshotListener } from '../../../src/shared/snapshot/types.ts';
import { aclAllowsText } from '../../../src/shared/cidr.ts';

const backend = {
  id: 'x',
  slot: 0,
  address: '127.0.0.1:1',
  host: '127.0.0.1',
  port: 1,
  weight: 1,
  configuredWeight: 1,
  state: 'healthy',
  admin: 'none',
  drained: false,
  reason: 'configured',
  since: 0,
} as const;
const cluster = (name: string) => ({ name, algorithm: 'round_robin', connectTimeoutMs: 1, idleTimeoutMs: 1, panicMode: 'refuse', backends: [backend] }) as const;

function snapshot(listener: SnapshotListener, version = 1): Snapshot {
  return { version, clusters: [cluster('api'), cluster('web'), cluster('star'), cluster('fallback')], listeners: [listener] };
}

describe('SNI routes', () => {
  const table = buildRoutingTable(
    snapshot({
      name: 'tls',
      cluster: 'fallback',
      sniRoutes: [
        { serverName: 'api.example.com', cluster: 'api' },
        { serverName: '*.example.com', cluster: 'web' },
        { serverName: '*.star.example.com', cluster: 'star' },
        { serverName: 'gone.example.com', cluster: 'missing' },
      ],
    }),
  );
  const sni = table.edgeByListener.get('tls')?.sni;

  it.each([
    ['api.example.com', 'api'],
    ['x.example.com', 'web'],
    ['a.b.example.com', 'web'],
    ['a.star.example.com', 'star'],
    ['star.example.com', 'web'],
    ['example.com', 'fallback'],
    ['api.example.org', 'fallback'],
    [undefined, 'fallback'],
  ])('sends %s to %s (exact first, then the longest wildcard, then the default)', (name, expected) => {
    expect(sni?.route(name)?.name).toBe(expected);
  });

  it('has no route for a name whose cluster does not exist, rather than falling back', () => {
    expect(sni?.route('gone.example.com')).toBeUndefined();
  });

  it('has no route without a default cluster', () => {
    const noDefault = buildRoutingTable(snapshot({ name: 'tls', cluster: null, sniRoutes: [{ serverName: 'a.com', cluster: 'api' }] }));
    expect(noDefault.byListener.get('tls')).toBeUndefined();
    expect(noDefault.edgeByListener.get('tls')?.sni?.route(undefined)).toBeUndefined();
    expect(noDefault.edgeByListener.get('tls')?.sni?.route('a.com')?.name).toBe('api');
  });
});

describe('edge policies per snapshot version', () => {
  it('gives a plain listener no policy at all', () => {
    expect(buildRoutingTable(snapshot({ name: 'plain', cluster: 'web' })).edgeByListener.size).toBe(0);
    expect(buildRoutingTable(snapshot({ name: 'plain', cluster: 'web', acl: { allow: [], deny: [] } })).edgeByListener.size).toBe(0);
  });

  it('turns limits into ticks', () => {
    const table = buildRoutingTable(snapshot({ name: 'l', cluster: 'web', limits: { perIpConnections: 3, perIpRate: 20, burst: 20, maxConnections: 9 } }));
    expect(table.edgeByListener.get('l')).toMatchObject({ ipLimits: { perIpConnections: 3, intervalTicks: 5000, toleranceTicks: 19 * 5000 }, maxConnections: 9 });
  });

  it('reuses the compiled acl while its blocks stay the same, and recompiles when they change', () => {
    const acl = { allow: [], deny: ['127.0.0.4/32'] };
    const first = buildRoutingTable(snapshot({ name: 'l', cluster: 'web', acl }, 1));
    const second = buildRoutingTable(snapshot({ name: 'l', cluster: 'web', acl: { allow: [], deny: ['127.0.0.4/32'] } }, 2), first);
    expect(second.edgeByListener.get('l')?.acl).toBe(first.edgeByListener.get('l')?.acl);
    const third = buildRoutingTable(snapshot({ name: 'l', cluster: 'web', acl: { allow: [], deny: ['127.0.0.5/32'] } }, 3), second);
    const compiled = third.edgeByListener.get('l')?.acl;
    expect(compiled).not.toBe(first.edgeByListener.get('l')?.acl);
    expect(compiled === undefined ? undefined : aclAllowsText(compiled, '127.0.0.4')).toBe(true);
    expect(compiled === undefined ? undefined : aclAllowsText(compiled, '127.0.0.5')).toBe(false);
  });

  it('keeps the round-robin cursor of a cluster reached only through SNI', () => {
    const listener: SnapshotListener = { name: 'tls', cluster: null, sniRoutes: [{ serverName: 'a.com', cluster: 'api' }] };
    const first = buildRoutingTable(snapshot(listener, 1));
    const cursor = first.byCluster.get('api')?.cursor;
    expect(buildRoutingTable(snapshot(listener, 2), first).byCluster.get('api')?.cursor).toBe(cursor);
  });
});
