import { describe, expect, it } from 'vitest';
import { pickLeastConnections, SAMPLES, SCAN_LIMIT } from '../../../src/dataplane/balancer/least-connections.ts';
import type { LoadView } from '../../../src/dataplane/balancer/load.ts';
import { seededRandom } from '../../../src/dataplane/balancer/random.ts';

/** Backends at slots 0..n-1 of a counter row shared like the real one. */
function view(weights: number[], active: number[] = []): LoadView & { active: Int32Array } {
  const row = new Int32Array(new SharedArrayBuffer(4 * weights.length));
  active.forEach((a, i) => (row[i] = a));
  return { weights: Float64Array.from(weights), slots: Int32Array.from(weights, (_, i) => i), active: row };
}

/** Pick `count` times, each pick held open (counted as active). */
function holdPicks(v: LoadView, seed: number, count: number): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => {
    const index = pickLeastConnections(v, random);
    Atomics.add(v.active, v.slots[index]!, 1);
    return index;
  });
}

describe('weighted least connections', () => {
  it.each<[string, number[], number[], number]>([
    ['the idle backend among busy ones', [1, 1, 1], [5, 0, 3], 1],
    ['the lowest (active + 1) / weight', [1, 4], [1, 5], 1],
    ['a heavier backend when (active + 1) / weight says so', [1, 2], [1, 4], 0],
    ['the heavier of two idle backends', [1, 3], [0, 0], 1],
  ])('picks %s', (_name, weights, active, expected) => {
    expect(pickLeastConnections(view(weights, active), seededRandom(1))).toBe(expected);
  });

  it.each<[number[], number, string]>([
    [[1, 1, 1, 1], 3, '213023100312'],
    [[1, 2, 3], 3, '212120212120'],
  ])('weights %j, seed %i, every pick held: exact sequence', (weights, seed, expected) => {
    expect(holdPicks(view(weights), seed, expected.length).join('')).toBe(expected);
  });

  it('breaks ties uniformly at random', () => {
    const v = view([1, 1, 1], [2, 2, 2]);
    const random = seededRandom(99);
    const counts = [0, 0, 0];
    for (let i = 0; i < 9_000; i++) counts[pickLeastConnections(v, random)]!++;
    for (const count of counts) expect(Math.abs(count - 3_000)).toBeLessThan(200);
  });

  it('holds connections in proportion to weight over 10,000 picks within 1%', () => {
    const weights = [1, 2, 3, 4];
    const v = view(weights);
    holdPicks(v, 8, 10_000);
    v.active.forEach((count, i) => {
      expect(Math.abs(count / 10_000 - weights[i]! / 10)).toBeLessThanOrEqual(0.01);
    });
  });

  it('reads the shared row, so connections placed by another worker steer this one', () => {
    const v = view([1, 1]);
    const random = seededRandom(4);
    // Another worker holds 50 connections on backend 0 …
    Atomics.add(v.active, 0, 50);
    // … so this worker's next 50 picks all go to backend 1.
    const picks = Array.from({ length: 50 }, () => {
      const index = pickLeastConnections(v, random);
      Atomics.add(v.active, index, 1);
      return index;
    });
    expect(picks.every((index) => index === 1)).toBe(true);
  });

  it(`samples ${SAMPLES} candidates above ${SCAN_LIMIT} backends and still avoids the loaded half`, () => {
    const n = 1_000;
    const v = view(new Array<number>(n).fill(1), Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 100 : 0)));
    const random = seededRandom(12);
    for (let i = 0; i < 1_000; i++) expect(pickLeastConnections(v, random) % 2).toBe(1);
  });

  it('answers -1 when there is no backend', () => {
    expect(pickLeastConnections(view([]), seededRandom(1))).toBe(-1);
  });
});
