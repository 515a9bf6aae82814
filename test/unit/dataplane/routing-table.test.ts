import { describe, expect, it } from 'vitest';
import { MaglevBalancer } from '../../../src/dataplane/balancer/cluster-balancer.ts';
import { seededRandom } from '../../../src/dataplane/balancer/random.ts';
import { buildRoutingTable, chooseCluster, type RoutingEnv } from '../../../src/dataplane/routing-table.ts';
import { ClusterState, createClusterStateBuffer } from '../../../src/shared/cluster-state.ts';
import type { Algorithm, Snapshot, SnapshotBackend, SnapshotCluster } from '../../../src/shared/snapshot/types.ts';
import { testBackend, testCluster, testListener, testSnapshot } from '../../helpers/snapshot.ts';

function backend(cluster: string, i: number, extra: Partial<SnapshotBackend> = {}): SnapshotBackend {
  return testBackend(`10.0.0.${i}:80`, { cluster, slot: i, ...extra });
}

function cluster(name: string, backends: SnapshotBackend[], extra: Partial<SnapshotCluster> = {}): SnapshotCluster {
  return testCluster({ name, backends, ...extra });
}

/** Listener `web` over `routes`; its `cluster` is the first route's. */
function snapshot(version: number, clusters: SnapshotCluster[], routes: { cluster: string; weight: number }[]): Snapshot {
  return testSnapshot({ version, clusters, listeners: [testListener({ cluster: routes[0]?.cluster ?? '', routes })] });
}

function env(states: Record<string, ClusterState> = {}): RoutingEnv {
  return { activeTotal: new Int32Array(64), random: seededRandom(1), clusterStates: new Map(Object.entries(states)) };
}

describe('routing table', () => {
  it('offers only healthy backends with a weight above 0, with their connection limits', () => {
    const s = snapshot(
      1,
      [
        cluster('web', [
          backend('web', 1, { maxConnections: 10 }),
          backend('web', 2, { state: 'draining' }),
          backend('web', 3, { state: 'unhealthy' }),
          backend('web', 4, { weight: 0 }),
          backend('web', 5),
        ]),
      ],
      [{ cluster: 'web', weight: 1 }],
    );
    const route = buildRoutingTable(s, env()).byCluster.get('web')!;
    expect(route.eligible.map((b) => b.slot)).toEqual([1, 5]);
    expect([...route.limits]).toEqual([10, 0]);
  });

  it.each<Algorithm>(['round_robin', 'least_connections', 'random', 'power_of_two', 'consistent_hash'])('builds a %s balancer over the eligible backends', (algorithm) => {
    const s = snapshot(1, [cluster('web', [backend('web', 1), backend('web', 2, { state: 'draining' }), backend('web', 3)], { algorithm })], [
      { cluster: 'web', weight: 1 },
    ]);
    const route = buildRoutingTable(s, env()).byCluster.get('web')!;
    expect(route.balancer.algorithm).toBe(algorithm);
    const picked = new Set(Array.from({ length: 200 }, (_, i) => route.balancer.pick(i * 2654435761)));
    expect(picked).toEqual(new Set([0, 1]));
  });

  it('splits connections between routes by weight (90/10 exactly per 100 picks)', () => {
    const s = snapshot(1, [cluster('web', [backend('web', 1)]), cluster('canary', [backend('canary', 2)])], [
      { cluster: 'web', weight: 90 },
      { cluster: 'canary', weight: 10 },
    ]);
    const listener = buildRoutingTable(s, env()).byListener.get('web')!;
    const counts = new Map<string, number>();
    for (let i = 0; i < 1_000; i++) {
      const name = chooseCluster(listener)!.name;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ web: 900, canary: 100 });
  });

  it('sends a canary’s share elsewhere while the canary has no eligible backend', () => {
    const s = snapshot(1, [cluster('web', [backend('web', 1)]), cluster('canary', [backend('canary', 2, { state: 'unhealthy' })])], [
      { cluster: 'web', weight: 90 },
      { cluster: 'canary', weight: 10 },
    ]);
    const listener = buildRoutingTable(s, env()).byListener.get('web')!;
    for (let i = 0; i < 100; i++) expect(chooseCluster(listener)!.name).toBe('web');
  });

  it('leaves out routes of weight 0', () => {
    const s = snapshot(1, [cluster('web', [backend('web', 1)]), cluster('canary', [backend('canary', 2)])], [
      { cluster: 'web', weight: 1 },
      { cluster: 'canary', weight: 0 },
    ]);
    const listener = buildRoutingTable(s, env()).byListener.get('web')!;
    expect(listener.clusters.map((c) => c.name)).toEqual(['web']);
    expect(listener.split).toBeUndefined();
  });

  it('continues the round-robin rotation across snapshot versions', () => {
    const clusters = [cluster('web', [backend('web', 1), backend('web', 2), backend('web', 3)])];
    const routes = [{ cluster: 'web', weight: 1 }];
    const e = env();
    let table = buildRoutingTable(snapshot(1, clusters, routes), e);
    const picks = [table.byCluster.get('web')!.balancer.pick(0), table.byCluster.get('web')!.balancer.pick(0)];
    table = buildRoutingTable(snapshot(2, clusters, routes), e, table);
    picks.push(table.byCluster.get('web')!.balancer.pick(0), table.byCluster.get('web')!.balancer.pick(0));
    expect(picks).toEqual([0, 1, 2, 0]);
  });

  it('reuses the Maglev table across health changes, and rebuilds it when a weight or the set changes', () => {
    const routes = [{ cluster: 'web', weight: 1 }];
    const e = env();
    const hashed = (backends: SnapshotBackend[]): SnapshotCluster => cluster('web', backends, { algorithm: 'consistent_hash' });
    const v1 = buildRoutingTable(snapshot(1, [hashed([backend('web', 1), backend('web', 2)])], routes), e);
    const v2 = buildRoutingTable(snapshot(2, [hashed([backend('web', 1), backend('web', 2, { state: 'draining' })])], routes), e, v1);
    const v3 = buildRoutingTable(snapshot(3, [hashed([backend('web', 1), backend('web', 2, { weight: 2 })])], routes), e, v2);
    const v4 = buildRoutingTable(snapshot(4, [hashed([backend('web', 1)])], routes), e, v3);
    const table = (t: typeof v1): Int32Array => {
      const balancer = t.byCluster.get('web')!.balancer;
      if (!(balancer instanceof MaglevBalancer)) throw new Error('expected a Maglev balancer');
      return balancer.table;
    };
    expect(table(v2)).toBe(table(v1));
    expect(table(v3)).not.toBe(table(v2));
    expect(table(v4)).not.toBe(table(v3));
    expect(new Set(table(v4))).toEqual(new Set([0]));
  });

  it('turns affinity on only where the cluster has a shared table', () => {
    const routes = [{ cluster: 'web', weight: 1 }];
    const sticky = cluster('web', [backend('web', 1), backend('web', 7)], { stickyTtlMs: 90_500, stickyMaxEntries: 10 });
    expect(buildRoutingTable(snapshot(1, [sticky], routes), env()).byCluster.get('web')!.sticky).toBeUndefined();
    const state = new ClusterState(createClusterStateBuffer(10));
    const route = buildRoutingTable(snapshot(1, [sticky], routes), env({ web: state })).byCluster.get('web')!;
    expect(route.sticky?.ttlSeconds).toBe(91);
    expect([...(route.sticky?.indexBySlot ?? [])]).toEqual([
      [1, 0],
      [7, 1],
    ]);
    expect(route.state).toBe(state);
  });

  it('carries the queue policy of the cluster', () => {
    const s = snapshot(1, [cluster('web', [backend('web', 1, { maxConnections: 3 })], { queueSize: 5, queueTimeoutMs: 1000 })], [
      { cluster: 'web', weight: 1 },
    ]);
    expect(buildRoutingTable(s, env()).byCluster.get('web')!.queue).toEqual({ size: 5, timeoutMs: 1000 });
  });
});
