import { describe, it, expect } from 'vitest';
import { formatDuration, parseDuration } from '../../../src/shared/duration.ts';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['0ms', 0],
    ['0s', 0],
    ['2s', 2_000],
    ['1.5s', 1_500],
    ['1.1s', 1_100],
    ['0.25s', 250],
    ['5m', 300_000],
    ['1.5m', 90_000],
    ['1h', 3_600_000],
    ['596h', 2_145_600_000],
  ])('reads %s as %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ['', 'empty'],
    ['5', 'no unit'],
    ['s', 'no number'],
    ['-1s', 'negative'],
    ['+1s', 'signed'],
    ['2 s', 'space before the unit'],
    [' 2s', 'leading space'],
    ['2S', 'upper-case unit'],
    ['2d', 'days are not a unit'],
    ['2sec', 'spelled-out unit'],
    ['1.5ms', 'a fraction of a millisecond'],
    ['.5s', 'no leading digit'],
    ['5.s', 'no digits after the point'],
    ['1e3ms', 'exponent'],
    ['2s30ms', 'compound'],
    ['Infinity', 'garbage'],
    ['597h', 'longer than a Node timer can wait'],
  ])('refuses %j (%s)', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [500, '500ms'],
    [1_000, '1s'],
    [1_500, '1.5s'],
    [90_000, '90s'],
    [300_000, '5m'],
    [3_600_000, '1h'],
    [5_400_000, '90m'],
  ])('writes %i ms as %s, which reads back the same', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
    expect(parseDuration(text)).toBe(ms);
  });
});
