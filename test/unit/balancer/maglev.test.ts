import { describe, expect, it } from 'vitest';
import { hashAddress } from '../../../src/shared/balancer/hash.ts';
import {
  buildMaglevTable,
  DEFAULT_MAGLEV_TABLE_SIZE,
  maglevShares,
  pickMaglev,
  type MaglevBackend,
} from '../../../src/shared/balancer/maglev.ts';

const M = DEFAULT_MAGLEV_TABLE_SIZE;

function backends(n: number, weight = 1): MaglevBackend[] {
  return Array.from({ length: n }, (_, i) => ({ key: `10.0.${i >> 8}.${i & 255}:8080`, weight }));
}

/** The backend key owning each position. */
function owners(list: readonly MaglevBackend[], size = M): string[] {
  return Array.from(buildMaglevTable(list, size), (index) => list[index]?.key ?? '');
}

function changed(a: readonly string[], b: readonly string[]): number {
  let moved = 0;
  for (let p = 0; p < a.length; p++) if (a[p] !== b[p]) moved++;
  return moved;
}

describe('Maglev consistent hashing', () => {
  it.each<[string, MaglevBackend[], number, string]>([
    ['three equal backends, size 7', [{ key: 'a', weight: 1 }, { key: 'b', weight: 1 }, { key: 'c', weight: 1 }], 7, '0,2,0,2,1,0,1'],
    ['weights 1:2, size 13', [{ key: '10.0.0.1:80', weight: 1 }, { key: '10.0.0.2:80', weight: 2 }], 13, '0,1,1,1,1,1,0,0,1,1,0,1,1'],
  ])('%s: exact table', (_name, list, size, expected) => {
    expect(Array.from(buildMaglevTable(list, size)).join(',')).toBe(expected);
  });

  it('builds the same table whatever the order of the backend list', () => {
    const list = backends(20);
    const shuffled = [...list].reverse();
    expect(owners(shuffled)).toEqual(owners(list));
  });

  it.each([
    ['5 equal backends', [1, 1, 1, 1, 1]],
    ['weights 1:3', [1, 3]],
    ['weights 1:2:7', [1, 2, 7]],
  ])('gives each of %s its weight share of the table within 1%', (_name, weights) => {
    const list = weights.map((weight, i) => ({ key: `127.0.0.${i + 1}:9000`, weight }));
    const total = weights.reduce((a, b) => a + b, 0);
    const shares = maglevShares(buildMaglevTable(list, M), list.length);
    expect(shares.reduce((a, b) => a + b, 0)).toBe(M);
    shares.forEach((owned, i) => {
      expect(Math.abs(owned / M - weights[i]! / total)).toBeLessThanOrEqual(0.01);
    });
  });

  it('gives a zero-weight backend no position, and an all-zero set an empty table', () => {
    const list = [{ key: 'a', weight: 0 }, { key: 'b', weight: 1 }];
    expect(maglevShares(buildMaglevTable(list, 101), 2)).toEqual([0, 101]);
    const empty = buildMaglevTable([{ key: 'a', weight: 0 }], 101);
    expect(empty.length).toBe(0);
    expect(pickMaglev(empty, 12345)).toBe(-1);
  });

  it.each([3, 10, 50])('adding one to %i backends moves at most 1.3/(n+1) of the keys, 1/(n+1) to the new backend', (n) => {
    const before = backends(n + 1).slice(0, n);
    const after = backends(n + 1);
    const a = owners(before);
    const b = owners(after);
    const newKey = after[n]!.key;
    const toNew = b.filter((key) => key === newKey).length;
    expect(Math.abs(toNew / M - 1 / (n + 1))).toBeLessThanOrEqual(0.002);
    expect(changed(a, b) / M).toBeLessThanOrEqual((1 / (n + 1)) * 1.3);
  });

  it.each([3, 10, 50])('removing one of %i backends moves at most 1.3/n of the keys', (n) => {
    const list = backends(n);
    const a = owners(list);
    const b = owners(list.slice(1));
    const removedKey = list[0]!.key;
    // Every key of the removed backend moves, and few others do.
    const ownedByRemoved = a.filter((key) => key === removedKey).length;
    expect(changed(a, b)).toBeGreaterThanOrEqual(ownedByRemoved);
    expect(changed(a, b) / M).toBeLessThanOrEqual((1 / n) * 1.3);
  });

  it('maps a client address to the same backend in every build (every worker, every restart)', () => {
    const list = backends(7);
    const first = buildMaglevTable(list, M);
    const second = buildMaglevTable(backends(7), M);
    for (let i = 1; i < 255; i++) {
      const hash = hashAddress(`127.0.0.${i}`);
      expect(pickMaglev(second, hash)).toBe(pickMaglev(first, hash));
    }
  });

  it('refuses a table size below 2', () => {
    expect(() => buildMaglevTable(backends(1), 1)).toThrow(RangeError);
  });
});
