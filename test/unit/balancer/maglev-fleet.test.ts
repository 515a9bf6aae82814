/**
 * Consistent hashing that agrees across a fleet: the table follows from the backends' ids,
 * weights, the table size and the seed alone, and eligibility is applied at lookup, so
 * instances that added backends in different orders, or disagree on one backend's health,
 * agree on every key they can.
 */
import { describe, expect, it } from 'vitest';
import { createBalancer, MaglevBalancer } from '../../../src/dataplane/balancer/cluster-balancer.ts';
import { seededRandom } from '../../../src/dataplane/balancer/random.ts';
import { fmix32 } from '../../../src/shared/balancer/hash.ts';
import { buildMaglevTable, MAGLEV_WALK_LIMIT, pickMaglevEligible } from '../../../src/shared/balancer/maglev.ts';
import type { SnapshotBackend } from '../../../src/shared/snapshot/types.ts';
import { testBackend, testCluster } from '../../helpers/snapshot.ts';

const M = 65_537;
const KEYS = 100_000;

function backends(n: number): SnapshotBackend[] {
  return Array.from({ length: n }, (_, i) => testBackend(`10.0.0.${i + 1}:8080`, { slot: i }));
}

function isUp(b: SnapshotBackend): boolean {
  return b.state === 'healthy' && b.weight > 0;
}

/**
 * The backend id each of KEYS client hashes lands on, as one instance would route them: its
 * backends in its own order, its own eligible list (healthy ones, in that order).
 */
function route(list: readonly SnapshotBackend[], previous?: MaglevBalancer): { ids: string[]; balancer: MaglevBalancer } {
  const eligible = list.filter(isUp);
  const cluster = testCluster({ algorithm: 'consistent_hash', maglevTableSize: M, backends: list });
  const balancer = createBalancer(cluster, eligible, previous, { activeTotal: new Int32Array(list.length), random: seededRandom(1) });
  if (!(balancer instanceof MaglevBalancer)) throw new Error('expected a Maglev balancer');
  const ids = Array.from({ length: KEYS }, (_, k) => eligible[balancer.pick(fmix32(k))]?.id ?? '');
  return { ids, balancer };
}

function down(list: readonly SnapshotBackend[], ...ids: string[]): SnapshotBackend[] {
  return list.map((b) => (ids.includes(b.id) ? { ...b, state: 'unhealthy' as const } : b));
}

function moved(a: readonly string[], b: readonly string[]): number[] {
  const keys: number[] = [];
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) keys.push(k);
  return keys;
}

describe('Maglev across a fleet', () => {
  it('builds the same table and routes every key alike whatever order the backends were added in', () => {
    const list = backends(10);
    const shuffled = [list[7]!, list[2]!, list[9]!, list[0]!, list[5]!, list[1]!, list[8]!, list[3]!, list[6]!, list[4]!];
    const a = route(list);
    const b = route(shuffled);
    expect(b.balancer.table).toEqual(a.balancer.table);
    expect(b.ids).toEqual(a.ids);
    expect(new Set(a.ids).size).toBe(10);
  });

  it('depends on the seed: the same seed gives the same table, another seed another one', () => {
    const list = backends(5).map((b) => ({ key: b.id, weight: 1 }));
    expect(buildMaglevTable(list, 101, 7)).toEqual(buildMaglevTable([...list].reverse(), 101, 7).map((i) => 4 - i));
    expect(buildMaglevTable(list, 101, 7)).not.toEqual(buildMaglevTable(list, 101, 0));
  });

  it.each([
    ['healthy', { state: 'unhealthy' as const }],
    ['draining', { state: 'draining' as const, admin: 'drain' as const }],
  ])('moves only the keys of a backend that is not %s, about 1/n of them, spread over the others', (_name, change) => {
    const n = 10;
    const list = backends(n);
    const before = route(list);
    const after = route(list.map((b, i) => (i === 3 ? { ...b, ...change } : b)), before.balancer);
    // Health is applied at lookup: the table is not rebuilt.
    expect(after.balancer.table).toBe(before.balancer.table);
    const keys = moved(before.ids, after.ids);
    expect(keys.every((k) => before.ids[k] === list[3]!.id)).toBe(true);
    expect(keys.length).toBe(before.ids.filter((id) => id === list[3]!.id).length);
    expect(Math.abs(keys.length / KEYS - 1 / n)).toBeLessThanOrEqual(0.01);
    // Its keys go to the other nine in equal parts (1/9 each, ±10 %; a walk by +1 gave 0.60–1.16).
    const to = new Map<string, number>();
    for (const k of keys) to.set(after.ids[k]!, (to.get(after.ids[k]!) ?? 0) + 1);
    expect(to.size).toBe(n - 1);
    for (const count of to.values()) expect(Math.abs(count / keys.length - 1 / (n - 1))).toBeLessThanOrEqual(0.1 / (n - 1));
  });

  it('agrees with an instance where the same backend is down, whatever the order of its list', () => {
    const list = backends(8);
    const a = route(down(list, list[5]!.id));
    const b = route(down([...list].reverse(), list[5]!.id));
    expect(b.ids).toEqual(a.ids);
    expect(a.ids).not.toContain(list[5]!.id);
  });

  it('sends every key to the one backend left when all others are down', () => {
    const list = backends(20);
    const { ids } = route(down(list, ...list.filter((_, i) => i !== 13).map((b) => b.id)));
    expect(new Set(ids)).toEqual(new Set([list[13]!.id]));
  });

  it('routes nothing when no backend is eligible', () => {
    const list = backends(3);
    const { balancer } = route(down(list, ...list.map((b) => b.id)));
    expect(balancer.pick(12345)).toBe(-1);
  });

  it('gives a backend that gains weight only more keys, and one of weight 0 none', () => {
    const list = backends(4);
    const { ids } = route(list.map((b, i) => (i === 0 ? { ...b, weight: 0 } : b)));
    expect(ids).not.toContain(list[0]!.id);
    expect(new Set(ids).size).toBe(3);
  });

  describe('the walk past ineligible entries', () => {
    const target = Int32Array.of(-1, 7);
    const fallback = Int32Array.of(9);
    const KEY = 123_456_789;

    /** The table positions a lookup of KEY reads. */
    function probes(table: Int32Array): number[] {
      const read: number[] = [];
      const spy = new Proxy(table, {
        get(t, property) {
          if (typeof property === 'string' && /^\d+$/.test(property)) read.push(Number(property));
          const value: unknown = Reflect.get(t, property);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(t) : value;
        },
      });
      pickMaglevEligible(spy, target, fallback, KEY);
      return read;
    }

    it('reads at most MAGLEV_WALK_LIMIT distinct entries, then takes the fallback', () => {
      const downOnly = new Int32Array(M);
      const read = probes(downOnly);
      expect(MAGLEV_WALK_LIMIT).toBe(32);
      expect(read.length).toBe(MAGLEV_WALK_LIMIT);
      expect(new Set(read).size).toBe(MAGLEV_WALK_LIMIT);
      expect(read[0]).toBe(KEY % M);
      expect(pickMaglevEligible(downOnly, target, fallback, KEY)).toBe(9);
    });

    it.each([
      ['its own entry', 0],
      ['the last entry it probes', MAGLEV_WALK_LIMIT - 1],
    ])('takes an eligible entry found at %s', (_name, probe) => {
      const table = new Int32Array(M);
      table[probes(new Int32Array(M))[probe]!] = 1;
      expect(pickMaglevEligible(table, target, fallback, KEY)).toBe(7);
      expect(probes(table).length).toBe(probe + 1);
    });
  });
});
