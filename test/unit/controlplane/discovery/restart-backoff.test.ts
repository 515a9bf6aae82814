import { describe, expect, it } from 'vitest';
import { restartDelayMs, WATCH_RESTART_BACKOFF } from '../../../../src/controlplane/discovery/restart-backoff.ts';

describe('restartDelayMs', () => {
  it.each<[number, number, number]>([
    // failures, random, delay
    [1, 0, 500],
    [1, 0.999_999, 1_000],
    [2, 0, 1_000],
    [3, 0.5, 3_000],
    [5, 0, 8_000],
    [6, 0, 15_000],
    [6, 0.999_999, 30_000],
    [50, 0, 15_000],
    [10_000, 0.999_999, 30_000],
    [0, 0, 500],
  ])('failure %d with random %d waits %d ms', (failures, random, expected) => {
    expect(restartDelayMs(WATCH_RESTART_BACKOFF, failures, () => random)).toBe(expected);
  });
});
