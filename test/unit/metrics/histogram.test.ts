import { describe, expect, it } from 'vitest';
import { SharedHistogram, histogramByteLength, type HistogramShape } from '../../../src/shared/histogram.ts';

const SHAPE: HistogramShape = { rows: 2, keys: 3, bounds: [1, 10, 100] };

function histogram(shape: HistogramShape = SHAPE): SharedHistogram {
  return new SharedHistogram(new SharedArrayBuffer(histogramByteLength(shape)), 0, shape);
}

describe('SharedHistogram', () => {
  it.each([
    ['below the first bound', 0.5, [1, 1, 1]],
    ['exactly on a bound (le is inclusive)', 1, [1, 1, 1]],
    ['between two bounds', 5, [0, 1, 1]],
    ['on the last bound', 100, [0, 0, 1]],
    ['above the last bound (only +Inf)', 1000, [0, 0, 0]],
  ])('puts a value %s in the right cumulative buckets', (_name, value, cumulative) => {
    const h = histogram();
    h.observe(0, 1, value);
    expect(h.read(1)).toEqual({ bounds: [1, 10, 100], cumulative, count: 1, sum: value });
  });

  it('sums every row (one per worker) and keeps keys apart', () => {
    const h = histogram();
    h.observe(0, 2, 3);
    h.observe(1, 2, 30);
    h.observe(1, 2, 300);
    h.observe(1, 0, 0.1);
    expect(h.read(2)).toEqual({ bounds: [1, 10, 100], cumulative: [0, 1, 2], count: 3, sum: 333 });
    expect(h.read(0)).toEqual({ bounds: [1, 10, 100], cumulative: [1, 1, 1], count: 1, sum: 0.1 });
    expect(h.read(1).count).toBe(0);
  });

  it('is read by another view over the same memory (what the main thread does)', () => {
    const buffer = new SharedArrayBuffer(histogramByteLength(SHAPE) + 16);
    const writer = new SharedHistogram(buffer, 16, SHAPE);
    const reader = new SharedHistogram(buffer, 16, SHAPE);
    writer.observe(1, 1, 7);
    expect(reader.read(1).cumulative).toEqual([0, 1, 1]);
  });

  it('zeroes one key in every row on reset, and only that key', () => {
    const h = histogram();
    h.observe(0, 1, 5);
    h.observe(1, 1, 5);
    h.observe(0, 2, 5);
    h.resetKey(1);
    expect(h.read(1)).toEqual({ bounds: [1, 10, 100], cumulative: [0, 0, 0], count: 0, sum: 0 });
    expect(h.read(2).count).toBe(1);
  });

  it('refuses bounds that do not increase', () => {
    expect(() => histogram({ rows: 1, keys: 1, bounds: [1, 1] })).toThrow(RangeError);
  });
});
