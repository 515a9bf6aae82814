/**
 * `awaitsTick` lets the control plane skip the tick event for most backends; it is only
 * right if a skipped tick would have changed nothing. Checked over every record reachable
 * from the two first records by up to four events, under both policies: where awaitsTick
 * says no, a tick with or without connections, now or much later, returns the same record.
 */
import { describe, expect, it } from 'vitest';
import {
  awaitsTick,
  initialRecord,
  transition,
  type HealthEvent,
  type HealthPolicy,
  type HealthRecord,
} from '../../../src/controlplane/health/state-machine.ts';

const ACTIVE: HealthPolicy = { rise: 2, fall: 2, passiveFailures: 2, drainTimeoutMs: 1_000, activeChecks: true, baseEjectionMs: 30_000, maxEjectionMs: 300_000 };
const PASSIVE_ONLY: HealthPolicy = { ...ACTIVE, rise: 1, fall: 1, activeChecks: false };

const events = (now: number): HealthEvent[] => [
  { type: 'probe', ok: true, detail: 'ok', now },
  { type: 'probe', ok: false, detail: 'refused', now },
  { type: 'passive', failures: 2, successes: 0, now },
  { type: 'passive', failures: 0, successes: 1, now },
  { type: 'tick', activeConnections: 0, now },
  { type: 'tick', activeConnections: 3, now },
  { type: 'drain', now },
  { type: 'undrain', now },
  { type: 'remove', force: false, now },
  { type: 'source', listed: false, detail: 'gone from the answer', now },
  { type: 'source', listed: true, detail: 'listed again', now },
  { type: 'restore', now },
];

function reachable(policy: HealthPolicy, depth: number): HealthRecord[] {
  const seen = new Map<string, HealthRecord>();
  let frontier = [initialRecord(true, 'up', 0), initialRecord(false, 'down', 0)];
  for (let step = 1; step <= depth; step++) {
    const next: HealthRecord[] = [];
    for (const record of frontier) {
      for (const event of events(step * 10)) {
        const after = transition(record, event, policy);
        const key = JSON.stringify(after);
        if (!seen.has(key)) {
          seen.set(key, after);
          next.push(after);
        }
      }
    }
    frontier = next;
  }
  return [...seen.values()];
}

describe('awaitsTick', () => {
  it.each([
    ['active checks', ACTIVE],
    ['passive only', PASSIVE_ONLY],
  ] as const)('is false only where a tick changes nothing (%s)', (_name, policy) => {
    const records = reachable(policy, 4);
    const skipped = records.filter((r) => !awaitsTick(r, policy));
    for (const record of skipped) {
      for (const tick of [0, 3].flatMap((activeConnections) => [100, 1e12].map((now): HealthEvent => ({ type: 'tick', activeConnections, now })))) {
        expect(transition(record, tick, policy)).toBe(record);
      }
    }
    // Both kinds exist among the reachable records, so the check above is not empty.
    expect(skipped.length).toBeGreaterThan(10);
    expect(records.some((r) => awaitsTick(r, policy))).toBe(true);
  });

  it('waits for an unfinished drain and for a passive ejection to run out', () => {
    const up = initialRecord(true, 'up', 0);
    const draining = transition(up, { type: 'drain', now: 1 }, ACTIVE);
    expect(awaitsTick(draining, ACTIVE)).toBe(true);
    const ejected = transition(up, { type: 'passive', failures: 2, successes: 0, now: 1 }, PASSIVE_ONLY);
    const drainedOut = transition(ejected, { type: 'tick', activeConnections: 0, now: 2 }, PASSIVE_ONLY);
    expect(drainedOut.state).toBe('unhealthy');
    expect(awaitsTick(drainedOut, PASSIVE_ONLY)).toBe(true);
    expect(awaitsTick(drainedOut, ACTIVE)).toBe(false);
    expect(awaitsTick(up, ACTIVE)).toBe(false);
  });
});
