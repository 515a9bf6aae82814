import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../src/dataplane/balancer/random.ts';
import { createSmoothWeighted, pickSmoothWeighted, type SmoothWeightedState } from '../../../src/dataplane/balancer/smooth-weighted.ts';

function picks(state: SmoothWeightedState, count: number): number[] {
  return Array.from({ length: count }, () => pickSmoothWeighted(state));
}

function countsOf(sequence: readonly number[], n: number): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const index of sequence) counts[index] = (counts[index] ?? 0) + 1;
  return counts;
}

function longestRun(sequence: readonly number[], index: number): number {
  let longest = 0;
  let run = 0;
  for (const picked of sequence) {
    run = picked === index ? run + 1 : 0;
    longest = Math.max(longest, run);
  }
  return longest;
}

describe('smooth weighted round robin', () => {
  it.each<[string, number[], string]>([
    ['equal weights rotate in index order', [1, 1, 1], '012012012'],
    ['5:1:1 spreads the light backends apart', [5, 1, 1], '01000200100020'],
    ['1:3 never sends the whole weight at once', [1, 3], '10111011'],
    ['3:2:1', [3, 2, 1], '010210010210'],
    ['2:2:1:1:1:1 interleaves both weight groups', [2, 2, 1, 1, 1, 1], '0213041502130415'],
    ['100:300 behaves like 1:3', [100, 300], '1011101110111011'],
    ['one backend', [7], '0000'],
  ])('%s: exact pick sequence', (_name, weights, expected) => {
    expect(picks(createSmoothWeighted(weights), expected.length).join('')).toBe(expected);
  });

  it('answers -1 when there is no backend', () => {
    expect(pickSmoothWeighted(createSmoothWeighted([]))).toBe(-1);
  });

  it.each([[[0, 1]], [[1, -2]], [[Number.NaN]], [[Number.POSITIVE_INFINITY]]])('refuses weights %j (a zero-weight backend is left out by the caller)', (weights) => {
    expect(() => createSmoothWeighted(weights)).toThrow(RangeError);
  });

  it.each([[[1, 3]], [[5, 1, 1]], [[7, 5, 3, 2, 1]], [[10_000, 1]], [[13, 13, 13, 2]]])(
    'gives every backend exactly its weight in each period of Σw picks: %j',
    (weights) => {
      const total = weights.reduce((a, b) => a + b, 0);
      const state = createSmoothWeighted(weights);
      for (let period = 0; period < 5; period++) {
        expect(countsOf(picks(state, total), weights.length)).toEqual(weights);
      }
    },
  );

  it('honours weights over 10,000 picks within 1%', () => {
    const weights = [1, 2, 3, 4, 10];
    const total = weights.reduce((a, b) => a + b, 0);
    const counts = countsOf(picks(createSmoothWeighted(weights), 10_000), weights.length);
    counts.forEach((count, i) => {
      expect(Math.abs(count / 10_000 - (weights[i] ?? 0) / total)).toBeLessThanOrEqual(0.01);
    });
  });

  it('never gives a backend more than ⌊w_i / w_j⌋ + 1 picks in a row while a backend j is eligible (random weight sets)', () => {
    const random = seededRandom(2024);
    for (let trial = 0; trial < 200; trial++) {
      const n = 2 + Math.floor(random() * 8);
      const weights = Array.from({ length: n }, () => 1 + Math.floor(random() * 50));
      const total = weights.reduce((a, b) => a + b, 0);
      const sequence = picks(createSmoothWeighted(weights), total * 3);
      weights.forEach((w, i) => {
        const heaviestOther = Math.max(...weights.filter((_, j) => j !== i));
        expect(longestRun(sequence, i)).toBeLessThanOrEqual(Math.floor(w / heaviestOther) + 1);
      });
    }
  });

  it('continues the rotation in a new state started where the previous one stopped', () => {
    const first = createSmoothWeighted([1, 1, 1]);
    expect(picks(first, 2)).toEqual([0, 1]);
    const next = createSmoothWeighted([1, 1, 1], first.now);
    expect(picks(next, 4)).toEqual([2, 0, 1, 2]);
  });

  it('a continued 1:3 state keeps the same schedule as an uninterrupted one', () => {
    const whole = picks(createSmoothWeighted([1, 3]), 12);
    const first = createSmoothWeighted([1, 3]);
    const before = picks(first, 5);
    const after = picks(createSmoothWeighted([1, 3], first.now), 7);
    expect([...before, ...after]).toEqual(whole);
  });

  it('keeps the schedule across the renormalisation of its virtual clock', () => {
    const fresh = picks(createSmoothWeighted([2, 3, 5]), 30);
    const late = createSmoothWeighted([2, 3, 5], 2 ** 20 - 1);
    const crossing = picks(late, 60);
    expect(late.now).toBeLessThan(10);
    // Started one period before the shift, the sequence is the fresh one, twice.
    expect(crossing).toEqual([...fresh, ...fresh]);
  });

  it('treats fractional weights (slow start) proportionally', () => {
    const counts = countsOf(picks(createSmoothWeighted([0.5, 1.5]), 4_000), 2);
    expect(counts).toEqual([1_000, 3_000]);
  });
});
