import { describe, expect, it } from 'vitest';
import type { LoadView } from '../../../src/dataplane/balancer/load.ts';
import { pickPowerOfTwo } from '../../../src/dataplane/balancer/power-of-two.ts';
import { seededRandom } from '../../../src/dataplane/balancer/random.ts';
import { buildAliasTable } from '../../../src/dataplane/balancer/weighted-random.ts';

function view(weights: number[], active: number[] = []): LoadView & { active: Int32Array } {
  const row = new Int32Array(new SharedArrayBuffer(4 * Math.max(1, weights.length)));
  active.forEach((a, i) => (row[i] = a));
  return { weights: Float64Array.from(weights), slots: Int32Array.from(weights, (_, i) => i), active: row };
}

function holdPicks(weights: number[], seed: number, count: number): { picks: number[]; active: Int32Array } {
  const v = view(weights);
  const table = buildAliasTable(weights);
  const random = seededRandom(seed);
  const picks = Array.from({ length: count }, () => {
    const index = pickPowerOfTwo(v, table, random);
    Atomics.add(v.active, index, 1);
    return index;
  });
  return { picks, active: v.active };
}

describe('power of two choices', () => {
  it('weights 1:1:2, seed 5, every pick held: exact sequence', () => {
    expect(holdPicks([1, 1, 2], 5, 12).picks.join('')).toBe('202122012202');
  });

  it('honours weights over 10,000 held picks within 1%', () => {
    const weights = [1, 3, 6];
    const { active } = holdPicks(weights, 21, 10_000);
    active.forEach((count, i) => {
      expect(Math.abs(count / 10_000 - weights[i]! / 10)).toBeLessThanOrEqual(0.01);
    });
  });

  it('never picks a zero-weight backend', () => {
    const { picks } = holdPicks([0, 1, 0, 1], 3, 10_000);
    expect(new Set(picks)).toEqual(new Set([1, 3]));
  });

  it('picks a loaded backend only when both draws name it', () => {
    const v = view([1, 1], [100, 0]);
    const table = buildAliasTable([1, 1]);
    const random = seededRandom(77);
    let loaded = 0;
    for (let i = 0; i < 10_000; i++) if (pickPowerOfTwo(v, table, random) === 0) loaded++;
    // Both draws land on backend 0 with probability 1/4.
    expect(Math.abs(loaded / 10_000 - 0.25)).toBeLessThanOrEqual(0.02);
  });

  it('answers -1 when there is no backend', () => {
    expect(pickPowerOfTwo(view([]), buildAliasTable([]), seededRandom(1))).toBe(-1);
  });
});
