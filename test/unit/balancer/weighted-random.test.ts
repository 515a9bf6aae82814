import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../src/dataplane/balancer/random.ts';
import { buildAliasTable, pickWeightedRandom } from '../../../src/dataplane/balancer/weighted-random.ts';

function draws(weights: number[], seed: number, count: number): number[] {
  const table = buildAliasTable(weights);
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => pickWeightedRandom(table, random));
}

describe('weighted random (alias method)', () => {
  it.each<[number[], number, string]>([
    [[1, 3], 7, '0011111011101101'],
    [[2, 0, 1, 1], 1, '0002230032330300'],
    [[1, 1, 1], 9, '0202220201210202'],
  ])('weights %j with seed %i: exact pick sequence', (weights, seed, expected) => {
    expect(draws(weights, seed, expected.length).join('')).toBe(expected);
  });

  it('gives each column exactly its weight share of the probability mass', () => {
    const weights = [5, 0, 1, 7, 2.5, 0, 9, 1];
    const { probability, alias } = buildAliasTable(weights);
    const total = weights.reduce((a, b) => a + b, 0);
    const n = weights.length;
    const mass = new Array<number>(n).fill(0);
    for (let column = 0; column < n; column++) {
      mass[column] = (mass[column] ?? 0) + (probability[column] ?? 0) / n;
      const borrowed = alias[column] ?? column;
      mass[borrowed] = (mass[borrowed] ?? 0) + (1 - (probability[column] ?? 0)) / n;
    }
    mass.forEach((m, i) => {
      expect(m).toBeCloseTo((weights[i] ?? 0) / total, 12);
    });
  });

  it.each([[[1, 3]], [[1, 1, 1, 1]], [[10, 1, 5, 20]]])('honours weights %j over 10,000 picks within 1%', (weights) => {
    const total = weights.reduce((a, b) => a + b, 0);
    const counts = new Array<number>(weights.length).fill(0);
    for (const index of draws(weights, 11, 10_000)) counts[index] = (counts[index] ?? 0) + 1;
    counts.forEach((count, i) => {
      expect(Math.abs(count / 10_000 - (weights[i] ?? 0) / total)).toBeLessThanOrEqual(0.01);
    });
  });

  it('never picks a zero-weight backend', () => {
    const picked = new Set(draws([0, 1, 0, 2, 0], 5, 10_000));
    expect([...picked].sort()).toEqual([1, 3]);
  });

  it.each([[[]], [[0, 0]]])('answers -1 for %j', (weights) => {
    expect(pickWeightedRandom(buildAliasTable(weights), seededRandom(1))).toBe(-1);
  });

  it('refuses a negative or infinite weight', () => {
    expect(() => buildAliasTable([1, -1])).toThrow(RangeError);
    expect(() => buildAliasTable([Number.POSITIVE_INFINITY])).toThrow(RangeError);
  });
});
