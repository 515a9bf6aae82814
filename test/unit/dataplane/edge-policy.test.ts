import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../src/dataplane/balancer/random.ts';
import { buildRoutingTable, chooseCluster, type RoutingEnv } from '../../../src/dataplane/routing-table.ts';
import { aclAllowsText } from '../../../src/shared/cidr.ts';
import type { Snapshot, SnapshotCluster, SnapshotListener } from '../../../src/shared/snapshot/types.ts';
import { testBackend, testCluster, testListener, testSnapshot } from '../../helpers/snapshot.ts';

const backend = testBackend('127.0.0.1:1');

const cluster = (name: string): SnapshotCluster => testCluster({ name, backends: [backend] });

const env: RoutingEnv = { activeTotal: new Int32Array(8), random: seededRandom(1), clusterStates: new Map() };

/** A snapshot of the one listener `l`, with the clusters these tests route to. */
function snapshot(l: SnapshotListener, version = 1): Snapshot {
  return testSnapshot({ version, clusters: ['api', 'web', 'star', 'fallback'].map(cluster), listeners: [l] });
}

describe('SNI routes', () => {
  const table = buildRoutingTable(
    snapshot(
      testListener({
        name: 'tls',
        cluster: 'fallback',
        sniRoutes: [
          { serverName: 'api.example.com', cluster: 'api' },
          { serverName: '*.example.com', cluster: 'web' },
          { serverName: '*.star.example.com', cluster: 'star' },
        ],
      }),
    ),
    env,
  );
  const sni = table.edgeByListener.get('tls')?.sni;

  it.each([
    ['api.example.com', 'api'],
    ['x.example.com', 'web'],
    ['a.b.example.com', 'web'],
    ['a.star.example.com', 'star'],
    ['star.example.com', 'web'],
    ['example.com', undefined],
    ['api.example.org', undefined],
    [undefined, undefined],
  ])('matches %s to %s (exact first, then the longest wildcard; no match is the default routes)', (name, expected) => {
    expect(sni?.match(name)?.name).toBe(expected);
  });

  it('leaves the default to the listener routes, and has none for an SNI-only listener', () => {
    const listenerRoute = table.byListener.get('tls');
    expect(listenerRoute === undefined ? undefined : chooseCluster(listenerRoute)?.name).toBe('fallback');
    const noDefault = buildRoutingTable(snapshot(testListener({ name: 'tls', cluster: null, sniRoutes: [{ serverName: 'a.com', cluster: 'api' }] })), env);
    const route = noDefault.byListener.get('tls');
    expect(route === undefined ? undefined : chooseCluster(route)).toBeUndefined();
    expect(noDefault.edgeByListener.get('tls')?.sni?.match('a.com')?.name).toBe('api');
  });

  it('leaves out a route whose cluster is not in the snapshot', () => {
    const t = buildRoutingTable(snapshot(testListener({ name: 'tls', sniRoutes: [{ serverName: 'gone.example.com', cluster: 'missing' }] })), env);
    expect(t.edgeByListener.get('tls')?.sni?.match('gone.example.com')).toBeUndefined();
  });
});

describe('edge policies per snapshot version', () => {
  it('gives a plain listener no policy at all', () => {
    expect(buildRoutingTable(snapshot(testListener({ name: 'plain' })), env).edgeByListener.size).toBe(0);
    expect(buildRoutingTable(snapshot(testListener({ name: 'plain', acl: { allow: [], deny: [] } })), env).edgeByListener.size).toBe(0);
  });

  it('turns limits into ticks', () => {
    const table = buildRoutingTable(snapshot(testListener({ name: 'l', limits: { perIpConnections: 3, perIpRate: 20, burst: 20, maxConnections: 9 } })), env);
    expect(table.edgeByListener.get('l')).toMatchObject({ ipLimits: { perIpConnections: 3, intervalTicks: 5000, toleranceTicks: 19 * 5000 }, maxConnections: 9 });
  });

  it('reuses the compiled acl while its blocks stay the same, and recompiles when they change', () => {
    const first = buildRoutingTable(snapshot(testListener({ name: 'l', acl: { allow: [], deny: ['127.0.0.4/32'] } }), 1), env);
    const second = buildRoutingTable(snapshot(testListener({ name: 'l', acl: { allow: [], deny: ['127.0.0.4/32'] } }), 2), env, first);
    expect(second.edgeByListener.get('l')?.acl).toBe(first.edgeByListener.get('l')?.acl);
    const third = buildRoutingTable(snapshot(testListener({ name: 'l', acl: { allow: [], deny: ['127.0.0.5/32'] } }), 3), env, second);
    const compiled = third.edgeByListener.get('l')?.acl;
    expect(compiled).not.toBe(first.edgeByListener.get('l')?.acl);
    expect(compiled === undefined ? undefined : aclAllowsText(compiled, '127.0.0.4')).toBe(true);
    expect(compiled === undefined ? undefined : aclAllowsText(compiled, '127.0.0.5')).toBe(false);
  });

  it('carries send_proxy onto the cluster route', () => {
    const s = testSnapshot({ clusters: [{ ...cluster('web'), sendProxy: 'v2' }, cluster('api')], listeners: [testListener({ name: 'l' })] });
    const table = buildRoutingTable(s, env);
    expect(table.byCluster.get('web')?.sendProxy).toBe('v2');
    expect(table.byCluster.get('api')?.sendProxy).toBeUndefined();
  });
});
