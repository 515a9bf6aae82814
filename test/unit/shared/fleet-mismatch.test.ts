/** sluice_fleet_snapshot_mismatch: instances routing differently for longer than the grace. */
import { describe, expect, it } from 'vitest';
import { FleetMismatch } from '../../../src/shared/fleet-mismatch.ts';
import type { RegistryStatusReport } from '../../../src/shared/registry-status.ts';

function report(own: string, others: Record<string, string>): RegistryStatusReport {
  const fleet = Object.entries({ me: own, ...others }).map(([instance, hash]) => ({ instance, version: '1', revision: 1, snapshot_hash: hash, started_at: '', age_ms: 0 }));
  return { registry: 'etcd x', instance: 'me', up: true, lastError: undefined, revision: 1, appliedRevision: 1, snapshotHash: own, fleet, reportedAt: 0 };
}

describe('FleetMismatch', () => {
  it.each([
    ['equal hashes', [[0, report('a', { b: 'a', c: 'a' })]], 10_000, 0],
    ['a difference still within the grace', [[0, report('a', { b: 'x' })]], 5000, 0],
    ['a difference past the grace', [[0, report('a', { b: 'x', c: 'y' })]], 5001, 2],
    ['a difference that healed', [[0, report('a', { b: 'x' })], [3000, report('a', { b: 'a' })]], 10_000, 0],
    ['a difference that changed keeps its start', [[0, report('a', { b: 'x' })], [4000, report('a', { b: 'y' })]], 5001, 1],
    ['an instance that left the fleet', [[0, report('a', { b: 'x' })], [1000, report('a', {})]], 10_000, 0],
    ['our own hash moving makes the others differ from then on', [[0, report('a', { b: 'a' })], [2000, report('z', { b: 'a' })]], 6000, 0],
  ] as const)('%s', (_, steps, at, expected) => {
    const m = new FleetMismatch();
    for (const [now, r] of steps) m.update(r, now);
    expect(m.count(at)).toBe(expected);
  });
});
