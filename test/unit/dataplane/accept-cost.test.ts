/**
 * The per-accept routing cost does not grow with the number of backends. Not a timing
 * claim: these tests count the work one accept does — shared-memory loads, routing-table
 * rebuilds, and reads of backend fields — for a cluster of 3 and of 1,000 backends, and
 * show the counts are equal. A per-accept path that filtered or scanned backends would read
 * fields of every one of them and fail here.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SnapshotWriter } from '../../../src/controlplane/snapshot-writer.ts';
import { seededRandom } from '../../../src/dataplane/balancer/random.ts';
import { Router } from '../../../src/dataplane/router.ts';
import { chooseCluster, type RoutingEnv } from '../../../src/dataplane/routing-table.ts';
import { createSnapshotBuffer } from '../../../src/shared/snapshot/layout.ts';
import { SnapshotReader } from '../../../src/shared/snapshot/reader.ts';
import type { Algorithm, Snapshot, SnapshotBackend } from '../../../src/shared/snapshot/types.ts';
import { testBackend, testCluster, testListener } from '../../helpers/snapshot.ts';

const ACCEPTS = 2_000;

function content(n: number, algorithm: Algorithm): Omit<Snapshot, 'version'> {
  const backends: SnapshotBackend[] = [];
  for (let i = 0; i < n; i++) {
    // Every tenth backend is out, so the eligible set is a real filter of the cluster.
    const out = i % 10 === 9;
    backends.push(testBackend(`127.0.0.1:${10_000 + i}`, { slot: i, state: out ? 'unhealthy' : 'healthy', drained: out }));
  }
  // The Maglev table stays far larger than 1,000 backends, as a prime table size must.
  return { clusters: [testCluster({ algorithm, maglevTableSize: 65_537, backends })], listeners: [testListener()] };
}

const ALGORITHMS: Algorithm[] = ['round_robin', 'least_connections', 'random', 'power_of_two', 'consistent_hash'];

function env(): RoutingEnv {
  return { activeTotal: new Int32Array(new SharedArrayBuffer(4 * 2_000)), random: seededRandom(7), clusterStates: new Map() };
}

/** What TcpProxy does per accepted client: route, choose the cluster, pick, and read the chosen backend's target. */
function acceptOnce(router: Router, i: number): number {
  const listener = router.routeFor('web');
  const route = listener === undefined ? undefined : chooseCluster(listener);
  if (route === undefined) throw new Error('no route');
  const index = route.balancer.pick(Math.imul(i, 2654435761) >>> 0);
  const backend = route.eligible[index];
  if (backend === undefined) throw new Error('no backend');
  return backend.port + backend.slot + backend.host.length;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('per-accept routing cost', () => {
  function atomicLoadsPerAccept(n: number, algorithm: Algorithm): { loads: number; rebuilds: number } {
    const sab = createSnapshotBuffer();
    new SnapshotWriter(sab).publish(content(n, algorithm));
    const router = new Router(new SnapshotReader(sab), env());
    acceptOnce(router, 0); // the table for this version is built once, here
    const table = router.current();
    const load = vi.spyOn(Atomics, 'load');
    for (let i = 0; i < ACCEPTS; i++) acceptOnce(router, i);
    const loads = load.mock.calls.length;
    load.mockRestore();
    return { loads, rebuilds: router.current() === table ? 0 : 1 };
  }

  it.each(ALGORITHMS)('does one Atomics.load and no table rebuild per accept, with 3 or 1,000 backends (%s)', (algorithm) => {
    const small = atomicLoadsPerAccept(3, algorithm);
    const large = atomicLoadsPerAccept(1_000, algorithm);
    // The one load is the snapshot version check in SnapshotReader.current().
    expect(small).toEqual({ loads: ACCEPTS, rebuilds: 0 });
    expect(large).toEqual(small);
  });

  function backendReadsPerAccept(n: number, algorithm: Algorithm): { perVersion: number; perAccept: number } {
    let reads = 0;
    const counted = content(n, algorithm);
    const observed: Snapshot = {
      version: 1,
      listeners: counted.listeners,
      clusters: counted.clusters.map((c) => ({
        ...c,
        backends: c.backends.map(
          (b) =>
            new Proxy(b, {
              get(target, key, receiver) {
                reads++;
                return Reflect.get(target, key, receiver) as unknown;
              },
            }),
        ),
      })),
    };
    const reader = { current: () => observed } as unknown as SnapshotReader;
    const router = new Router(reader, env());
    const perVersion = reads;
    reads = 0;
    for (let i = 0; i < ACCEPTS; i++) acceptOnce(router, i);
    return { perVersion, perAccept: reads / ACCEPTS };
  }

  it.each(ALGORITHMS)('reads the fields of exactly one backend per accept, with 3 or 1,000 backends (%s)', (algorithm) => {
    const small = backendReadsPerAccept(3, algorithm);
    const large = backendReadsPerAccept(1_000, algorithm);
    // Building the table per version touches every backend (that is where the cost goes)...
    expect(large.perVersion).toBeGreaterThan(100 * small.perVersion);
    // ...and an accept touches host, port and slot of the one it picked.
    expect(small.perAccept).toBe(3);
    expect(large.perAccept).toBe(small.perAccept);
  });
});
