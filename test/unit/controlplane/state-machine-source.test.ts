import { describe, expect, it } from 'vitest';
import { initialRecord, transition, type HealthEvent, type HealthPolicy, type HealthRecord } from '../../../src/controlplane/health/state-machine.ts';

const POLICY: HealthPolicy = {
  rise: 2,
  fall: 3,
  passiveFailures: 5,
  drainTimeoutMs: 1_000,
  activeChecks: true,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
};
const T0 = 1_000_000;
const at = T0 + 100;
const healthy = initialRecord(true, 'first probe passed: connected', 0);
const unlist: HealthEvent = { type: 'source', listed: false, detail: 'gone from the DNS answer', now: at };
const relist: HealthEvent = { type: 'source', listed: true, detail: 'back in the DNS answer', now: at };
const unlisted: HealthRecord = { ...healthy, listed: false, state: 'draining', drainStartedAt: T0, since: T0, reason: 'gone from the DNS answer' };
const unlistedDown: HealthRecord = { ...unlisted, up: false };
const drainedByOperator: HealthRecord = { ...healthy, admin: 'drain', state: 'draining', drained: true };

type Row = [name: string, from: HealthRecord, event: HealthEvent, expected: Partial<HealthRecord>];

// The `listed` input: what a discovery source says, beside health (`up`) and the operator (`admin`).
const rows: Row[] = [
  ['an unlisted healthy backend drains at once', healthy, unlist, { state: 'draining', listed: false, drainStartedAt: at, reason: 'gone from the DNS answer' }],
  ['unlisting twice changes nothing', unlisted, unlist, { state: 'draining', since: T0 }],
  ['an unlisted backend ends its drain like a health drain', unlisted, { type: 'tick', activeConnections: 0, now: at }, { state: 'unhealthy', drained: true }],
  ['listed again within its drain, it is healthy again', unlisted, relist, { state: 'healthy', listed: true, drained: false, reason: 'back in the DNS answer' }],
  ['listed again while its probes fail, it stays out', unlistedDown, relist, { state: 'draining', listed: true }],
  ['listing does not undo an operator drain', drainedByOperator, relist, { state: 'draining', admin: 'drain' }],
  ['a passing probe does not relist it', unlisted, { type: 'probe', ok: true, detail: 'ok', now: at }, { state: 'draining', listed: false }],
  ['a source removal names its reason', unlisted, { type: 'remove', force: false, now: at, reason: 'gone from the DNS answer for 30s' }, { admin: 'remove', reason: 'gone from the DNS answer for 30s' }],
  ['an operator removal keeps its default reason', healthy, { type: 'remove', force: false, now: at }, { admin: 'remove', reason: 'removed by an operator' }],
];

describe('health state machine: the source input (discovery)', () => {
  it.each(rows)('%s', (_name, from, event, expected) => {
    expect(transition(from, event, POLICY)).toMatchObject(expected);
  });
});
