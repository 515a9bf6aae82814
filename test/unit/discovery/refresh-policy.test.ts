import { describe, expect, it } from 'vitest';
import { delayAfterAnswer, delayAfterError } from '../../../src/controlplane/discovery/refresh-policy.ts';

const WINDOW = { min: 1_000, max: 30_000, default: 5_000 };

describe('delayAfterAnswer', () => {
  const table: [string, number | undefined, number][] = [
    ['a TTL inside the window', 12, 12_000],
    ['a TTL below min', 0.2, 1_000],
    ['a TTL above max', 3600, 30_000],
    ['TTL 0 → default', 0, 5_000],
    ['no TTL (empty answer without SOA) → default', undefined, 5_000],
  ];
  it.each(table)('%s', (_name, ttl, expected) => {
    expect(delayAfterAnswer(ttl, WINDOW)).toBe(expected);
  });
});

describe('delayAfterError', () => {
  const table: [string, number, number, number][] = [
    ['first failure, lowest jitter: half of min', 1, 0, 500],
    ['first failure, highest jitter: min', 1, 0.999, 1_000],
    ['third failure doubles twice', 3, 0.5, 3_000],
    ['capped at max', 10, 0.999, 29_985],
    ['a huge failure count stays finite and capped', 10_000, 0, 15_000],
  ];
  it.each(table)('%s', (_name, failures, random, expected) => {
    expect(delayAfterError(failures, WINDOW, () => random)).toBe(expected);
  });
});
