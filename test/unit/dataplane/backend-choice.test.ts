import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../src/dataplane/balancer/random.ts';
import { BackendWalk, reserveSessionBackend } from '../../../src/dataplane/backend-choice.ts';
import { chooseDataPath } from '../../../src/dataplane/data-path.ts';
import { buildRoutingTable, type ClusterRoute } from '../../../src/dataplane/routing-table.ts';
import type { WorkerCounters } from '../../../src/shared/counters.ts';
import type { Algorithm, HashKey } from '../../../src/shared/snapshot/types.ts';
import { testBackend, testCluster, testListener, testSnapshot } from '../../helpers/snapshot.ts';

function route(algorithm: Algorithm, n: number, hashKey?: HashKey): ClusterRoute {
  const backends = Array.from({ length: n }, (_, i) => testBackend(`10.0.0.${i + 1}:80`, { cluster: 'web', slot: i + 1 }));
  const cluster = testCluster({ name: 'web', backends, algorithm, ...(hashKey === undefined ? {} : { hashKey }) });
  const snapshot = testSnapshot({ version: 1, clusters: [cluster], listeners: [testListener({ cluster: 'web', routes: [{ cluster: 'web', weight: 1 }] })] });
  return buildRoutingTable(snapshot, { activeTotal: new Int32Array(64), random: seededRandom(1), clusterStates: new Map() }).byCluster.get('web')!;
}

/** Counters whose backends in `full` have no room; records what was reserved. */
function room(full: number[] = []): WorkerCounters & { reserved: number[] } {
  const reserved: number[] = [];
  return { reserved, reserve: (slot: number) => !full.includes(slot) && reserved.push(slot) > 0 } as unknown as WorkerCounters & { reserved: number[] };
}

describe('backend choice', () => {
  it.each<[HashKey]>([['source_ip'], ['source_ip_port']])('under consistent_hash on %s, a client keeps its backend; the port counts only with source_ip_port', (hashKey) => {
    const r = route('consistent_hash', 5, hashKey);
    const moved = Array.from({ length: 200 }, (_, i) => {
      const address = `192.0.2.${i}`;
      const a = reserveSessionBackend(r, address, 1000, -1, room(), 0)?.slot;
      expect(reserveSessionBackend(r, address, 1000, -1, room(), 0)?.slot).toBe(a);
      return reserveSessionBackend(r, address, 2000, -1, room(), 0)?.slot !== a;
    }).filter(Boolean).length;
    if (hashKey === 'source_ip') expect(moved).toBe(0);
    else expect(moved).toBeGreaterThan(100);
  });

  it('a session handed over from the previous process starts at its backend', () => {
    const r = route('consistent_hash', 3, 'source_ip');
    const own = reserveSessionBackend(r, '192.0.2.7', 1, -1, room(), 0)!;
    const other = r.eligible.findIndex((b) => b.slot !== own.slot);
    expect(reserveSessionBackend(r, '192.0.2.7', 1, -1, room(), 0, other)?.slot).toBe(r.eligible[other]?.slot);
  });

  it.each([
    { case: 'walks on past full backends, each once, and says it saw one full', full: [1, 2], want: [3], sawFull: true },
    { case: 'ends the walk with nothing when every backend is full', full: [1, 2, 3], want: [], sawFull: true },
    { case: 'takes the preferred backend when it has room', full: [], want: [1], sawFull: false },
  ])('$case', ({ full, want, sawFull }) => {
    const r = route('round_robin', 3);
    const walk = new BackendWalk();
    walk.begin(r, 0);
    const counters = room(full);
    const got = walk.next(r, counters);
    expect(got === undefined ? [] : [got.slot]).toEqual(want);
    expect(walk.sawFull).toBe(sawFull);
  });

  it('resumes a walk after a failed attempt with the next backend, and ends after each was tried once', () => {
    const r = route('round_robin', 3);
    const walk = new BackendWalk();
    walk.begin(r, 0);
    const slots = [walk.next(r, room()), walk.next(r, room()), walk.next(r, room()), walk.next(r, room())].map((b) => b?.slot);
    expect(slots.slice(0, 3).sort()).toEqual([1, 2, 3]);
    expect(slots[3]).toBeUndefined();
  });

  it('passes over, in later walks of the same connection, the backends that failed it; a cleared walk forgets them', () => {
    const r = route('round_robin', 3);
    const walk = new BackendWalk();
    walk.begin(r, 0);
    const failed = walk.next(r, room())!;
    walk.failed(failed.slot);
    // Waited in the queue, walks again: the other two, each once, never the failed one.
    walk.begin(r, 0);
    const later = [walk.next(r, room()), walk.next(r, room()), walk.next(r, room())].map((b) => b?.slot);
    expect(later.slice(0, 2).sort()).toEqual([1, 2, 3].filter((slot) => slot !== failed.slot));
    expect(later[2]).toBeUndefined();
    // The other two full: the walk ends with nothing, saying some were full (the session waits for them).
    walk.begin(r, 0);
    expect(walk.next(r, room([1, 2, 3].filter((slot) => slot !== failed.slot)))).toBeUndefined();
    expect(walk.sawFull).toBe(true);
    walk.clear();
    walk.begin(r, 0);
    expect([walk.next(r, room()), walk.next(r, room()), walk.next(r, room())].map((b) => b?.slot).sort()).toEqual([1, 2, 3]);
  });

  it('passes over the backend to avoid when there is another', () => {
    const r = route('consistent_hash', 3, 'source_ip');
    const first = reserveSessionBackend(r, '192.0.2.7', 1, -1, room(), 0)!;
    expect(reserveSessionBackend(r, '192.0.2.7', 1, first.slot, room(), 0)?.slot).not.toBe(first.slot);
  });
});

describe('data path choice', () => {
  const ok = (): undefined => undefined;
  const missing = (): string => 'tcp_wrap has no TCP';
  it.each([
    { setting: undefined, problem: ok, path: 'handles', warns: false },
    { setting: '', problem: ok, path: 'handles', warns: false },
    { setting: 'handles', problem: ok, path: 'handles', warns: false },
    { setting: 'net', problem: missing, path: 'net', warns: false },
    { setting: undefined, problem: missing, path: 'net', warns: true },
    { setting: 'handles', problem: missing, path: 'net', warns: true },
    { setting: 'uring', problem: ok, path: 'net', warns: true },
  ])('SLUICE_DATA_PATH=$setting → $path (warns: $warns)', ({ setting, problem, path, warns }) => {
    const choice = chooseDataPath(setting, problem);
    expect(choice.path).toBe(path);
    expect(choice.warning !== undefined).toBe(warns);
  });

  it('finds every binding the handle path uses in this Node', async () => {
    const { bindingProblem } = await import('../../../src/dataplane/stream-handle.ts');
    expect(bindingProblem()).toBeUndefined();
  });
});
