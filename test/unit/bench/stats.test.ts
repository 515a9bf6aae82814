import { describe, expect, it } from 'vitest';
import { median, percentile, spread } from '../../../bench/lib/stats.ts';

describe('bench statistics', () => {
  it.each([
    [[5, 1, 3], 50, 3],
    [[1, 2, 3, 4], 50, 2],
    [Array.from({ length: 100 }, (_, i) => i + 1), 99, 99],
    [Array.from({ length: 100 }, (_, i) => i + 1), 100, 100],
    [[7], 99, 7],
  ])('percentile(%j, %d) is the nearest rank %d', (values, p, expected) => {
    expect(percentile(values, p)).toBe(expected);
  });

  it('ignores values that are not finite and answers NaN for none', () => {
    expect(median([Number.NaN, 2, 4, Number.POSITIVE_INFINITY])).toBe(3);
    expect(percentile([], 50)).toBeNaN();
    expect(spread([Number.NaN])).toMatchObject({ count: 0 });
  });

  it('reports median, lowest, highest and count', () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, count: 3 });
  });
});
